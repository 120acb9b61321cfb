"""Data past the memory budget: spilled in chunks to memory-mapped files, trained on from disk,
with the same results as in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from mmbench.data.storage import spill
from mmbench.data.storage.prefetch import read_ahead
from mmbench.data.preprocess.base import EmbeddingPreprocessor
from mmbench.data.storage.spill import SpillFolder, cgroup_room, is_spilled, memory_budget, remove_stale
from mmbench.errors import ConfigError, DataError


@pytest.fixture
def spill_dir(tmp_path, monkeypatch):
    folder = tmp_path / "spill"
    monkeypatch.setenv(spill.SPILL_VARIABLE, str(folder))
    monkeypatch.setattr(spill, "CHUNK_ROWS", 16)
    return folder


def _load(tiny_task, registry, n_samples=120):
    from mmbench.tasks.loading import load_task_data
    from mmbench.tasks.files import resolve_task

    return load_task_data(resolve_task(str(tiny_task(n_samples=n_samples)), registry), registry)


class RecordingPreprocessor(EmbeddingPreprocessor):
    """The default embedding preprocessing, recording how many rows each transform call got."""

    calls: ClassVar[list[int]] = []

    def transform(self, split):
        RecordingPreprocessor.calls.append(split.num_rows)
        return super().transform(split)


def test_a_modality_past_the_budget_is_transformed_in_chunks_into_spill_files(tiny_task, registry, spill_dir, monkeypatch):
    data = _load(tiny_task, registry)
    expected = data.tensors({"x1": EmbeddingPreprocessor(data.schema.modalities["x1"])})[1]
    data = _load(tiny_task, registry)
    data.memory_budget = 0
    monkeypatch.setattr(RecordingPreprocessor, "calls", [])
    _, tensors = data.tensors({"x1": RecordingPreprocessor(data.schema.modalities["x1"])})
    assert max(RecordingPreprocessor.calls) <= 32  # never the whole split at once: the sample, then chunks of 16
    assert sum(RecordingPreprocessor.calls[1:]) == 120  # after the size sample, every row once
    for split in ("train", "validation", "test"):
        values = tensors[split].inputs["x1"]["values"]
        assert is_spilled(values) and tensors[split].streamed == ["x1"]
        assert any(path.name.startswith("x1-") and f"-{split}-values" in path.name for path in spill_dir.rglob("*.npy"))
        assert torch.equal(values, expected[split].inputs["x1"]["values"])
    assert data.notes["streamed_modalities"] == ["x1"]


def test_modalities_stay_in_memory_while_they_fit_the_budget(tiny_task, registry, spill_dir):
    data = _load(tiny_task, registry)
    one_modality = 120 * 4 * 4  # rows x dim x float32
    data.memory_budget = int(one_modality * 1.5)
    _, tensors = data.tensors({name: EmbeddingPreprocessor(info) for name, info in data.schema.modalities.items()})
    assert tensors["train"].streamed == ["x2"]  # x1 fitted, x2 would have gone past the budget


class PerCallPadding(EmbeddingPreprocessor):
    """Pads to the longest row of each call: a shape that changes between chunks."""

    def transform(self, split):
        values = super().transform(split)["values"]
        return {"values": torch.nn.functional.pad(values, (0, split.num_rows % 3))}


def test_a_preprocessor_whose_shape_changes_between_chunks_is_named(tiny_task, registry, spill_dir):
    data = _load(tiny_task, registry)
    data.memory_budget = 0
    with pytest.raises(DataError, match=r"PerCallPadding of 'x1-.*': rows \d+-\d+ came out as .* fitted on train"):
        data.tensors({"x1": PerCallPadding(data.schema.modalities["x1"])})


def test_bfloat16_tensors_round_trip_through_spill_files(tmp_path):
    import datasets

    class Halves(EmbeddingPreprocessor):
        def transform(self, split):
            return {"values": super().transform(split)["values"].to(torch.bfloat16)}

    from mmbench.data.schema import ModalityInfo

    rows = datasets.Dataset.from_dict({"e": np.random.default_rng(0).normal(size=(40, 3)).tolist()})
    preprocessor = Halves(ModalityInfo(name="e", kind="embedding", columns=("e",)))
    spilled = SpillFolder(tmp_path).transform(preprocessor, rows, "e")["values"]
    assert spilled.dtype == torch.bfloat16 and torch.equal(spilled, preprocessor.transform(rows)["values"])


def test_streamed_and_in_memory_searches_give_the_same_results(tiny_task, search_settings, registry, stores, spill_dir):
    import optuna

    from mmbench.search.study import run_search
    from mmbench.tracking.tracker import Tracker

    task = tiny_task(n_samples=160)
    common = dict(n_trials=2, sampler="random", pruner="none", log_model=False)
    in_memory = run_search(search_settings(task, study="memory", **common), registry=registry)
    streamed = run_search(search_settings(task, study="streamed", memory_budget_gb=0, **common), registry=registry)

    def values(name):
        return [t.values for t in optuna.load_study(study_name=name, storage=stores["storage"]).trials]

    assert values("streamed") == values("memory")
    client = Tracker(stores["tracking_uri"]).client
    runs = [client.get_run(o.best_run_id).data for o in (in_memory, streamed)]
    assert runs[0].metrics["test_accuracy"] == runs[1].metrics["test_accuracy"]
    assert "mmbench.streamed" not in runs[0].tags and runs[1].tags["mmbench.streamed"] == "x1,x2"
    notes = client.download_artifacts(streamed.parent_run_id, "data_notes.json", str(spill_dir.parent / "notes"))
    assert json.loads(Path(notes).read_text())["streamed_modalities"] == ["x1", "x2"]


def test_a_bad_budget_is_a_one_line_error(tiny_task, stores, capsys, monkeypatch):
    from mmbench.cli.app import main

    with pytest.raises(ConfigError, match="--memory-budget-gb must be 0"):
        memory_budget(-1)
    monkeypatch.setenv(spill.BUDGET_VARIABLE, "lots")
    with pytest.raises(ConfigError, match="MMBENCH_MEMORY_BUDGET_GB='lots'"):
        memory_budget()
    monkeypatch.setenv(spill.BUDGET_VARIABLE, "0.5")
    assert memory_budget() == 500_000_000 and memory_budget(2) == 2_000_000_000
    argv = ["mmbench", "search", str(tiny_task()), "--memory-budget-gb", "-1", "--storage", stores["storage"],
            "--tracking-uri", stores["tracking_uri"], "-q"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "--memory-budget-gb must be a finite number in 0..1000000, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_a_cgroup_memory_limit_bounds_the_available_memory(tmp_path, layout):
    proc = tmp_path / "cgroup"
    if layout == "v1":
        proc.write_text("4:memory:/jobs/42\n0::/\n")
        folder, limit, usage, inactive = tmp_path / "fs" / "memory" / "jobs" / "42", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"
    else:
        proc.write_text("0::/jobs/42\n")
        folder, limit, usage, inactive = tmp_path / "fs" / "jobs" / "42", "memory.max", "memory.current", "inactive_file"
    folder.mkdir(parents=True)
    (folder / limit).write_text("1000000\n")
    (folder / usage).write_text("700000\n")
    (folder / "memory.stat").write_text(f"anon 500000\n{inactive} 100000\n")
    assert cgroup_room(proc, tmp_path / "fs") == 400_000  # limit - usage + reclaimable page cache
    (folder / limit).write_text("max\n" if layout == "v2" else f"{2**63 - 4096}\n")
    assert cgroup_room(proc, tmp_path / "fs") is None


def test_folders_of_dead_processes_of_this_host_are_removed(tmp_path):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    (tmp_path / f"{dead.pid}@{host}+abc").mkdir()
    (tmp_path / f"{os.getpid()}@{host}+def").mkdir()
    (tmp_path / f"{dead.pid}@another-node+ghi").mkdir()  # a live process elsewhere on a shared scratch disk
    assert remove_stale(tmp_path) == [tmp_path / f"{dead.pid}@{host}+abc"]
    assert (tmp_path / f"{os.getpid()}@{host}+def").is_dir() and (tmp_path / f"{dead.pid}@another-node+ghi").is_dir()


def test_the_spill_folder_is_removed_when_the_process_exits(tmp_path):
    root = tmp_path / "spill"
    script = (
        "import torch, datasets; from pathlib import Path\n"
        "from mmbench.data.storage.spill import SpillFolder\n"
        "from mmbench.data.preprocess.base import EmbeddingPreprocessor\n"
        "from mmbench.data.schema import ModalityInfo\n"
        "rows = datasets.Dataset.from_dict({'e': [[1.0, 2.0]] * 5})\n"
        "folder = SpillFolder(Path(r'%s'))\n"
        "folder.transform(EmbeddingPreprocessor(ModalityInfo(name='e', kind='embedding', columns=('e',))), rows, 'e')\n"
        "print(sorted(p.name for p in folder.path.iterdir()))\n" % root
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "e-values.npy" in result.stdout  # written while the process ran
    assert list(root.iterdir()) == []  # and gone after


def test_read_ahead_keeps_order_raises_where_it_failed_and_stops_with_the_consumer():
    assert list(read_ahead(iter(range(10)))) == list(range(10))

    def failing():
        yield 1
        raise ValueError("row 2 unreadable")

    seen = []
    with pytest.raises(ValueError, match="row 2"):
        for item in read_ahead(failing()):
            seen.append(item)
    assert seen == [1]

    produced = []

    def endless():
        for i in range(10**6):
            produced.append(i)
            yield i

    before = set(threading.enumerate())  # other tests' background threads may end meanwhile: compare sets
    for item in read_ahead(endless(), depth=2):
        if item == 3:
            break
    time.sleep(0.2)
    assert len(produced) <= 3 + 1 + 2 + 1  # the consumed items, the read-ahead depth, one in flight
    assert not set(threading.enumerate()) - before  # the producer thread ended


def test_spilled_batches_are_read_ahead_in_a_thread_and_in_memory_ones_directly(tmp_path, monkeypatch):
    import mmbench.train.loop as train_module
    from mmbench.data.prepared import SplitTensors

    values = torch.randn(10, 3)
    spilled = SpillFolder(tmp_path).empty("x-values", (10, 3), torch.float32)
    spilled[:] = values
    read_ahead_batches = []
    original = train_module.read_ahead

    def recording(items, *args, **kwargs):
        for item in original(items, *args, **kwargs):
            read_ahead_batches.append(item)
            yield item

    monkeypatch.setattr(train_module, "read_ahead", recording)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(10)
    in_memory = list(train_module.batches(SplitTensors({"x": {"values": values}}, labels), 4, torch.device("cpu"), order=order))
    assert read_ahead_batches == []
    streamed = list(train_module.batches(SplitTensors({"x": {"values": spilled}}, labels), 4, torch.device("cpu"), order=order))
    assert len(read_ahead_batches) == 3  # every spilled batch came through the read-ahead
    for (a, ya), (b, yb) in zip(in_memory, streamed, strict=True):
        assert torch.equal(a["x"]["values"], b["x"]["values"]) and torch.equal(ya, yb)
