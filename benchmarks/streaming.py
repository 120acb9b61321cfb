"""Data larger than memory: a search whose preprocessed images exceed the process's memory limit.

A folder of generated class-per-folder PNGs (``--rows`` images of ``--side`` pixels, 10 classes told
apart by stripe frequency) is searched with ``image.cnn`` three times, one after another:

1. under a memory cgroup of ``--limit-gb`` with everything forced into RAM (``--memory-budget-gb 1000``):
   expected to be killed by the kernel (the tensors alone are larger than the limit);
2. under the same limit with the default budget: mmbench reads the cgroup limit, spills the image
   tensors to memory-mapped files and streams them (expected to finish);
3. without a limit, in memory: the reference for time and accuracy.

It needs root and a cgroup memory controller (v1 or v2) for the limit; without them it says so and
runs 2 with ``--memory-budget-gb 0`` (forced streaming) and 3.

    sudo python benchmarks/streaming.py [--rows 60000] [--side 48] [--limit-gb 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, temporary_stores  # noqa: E402

CLASSES = 10


def write_images(root: Path, rows: int, side: int) -> float:
    """``rows`` PNGs under ``root/<class>/``; returns the seconds it took."""
    import numpy as np
    from PIL import Image

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    columns = np.arange(side)[None, :, None]
    for label in range(CLASSES):
        (root / str(label)).mkdir(parents=True)
    for index in range(rows):
        label = index % CLASSES
        stripes = 127 + 100 * np.sin(columns * (label + 1) * np.pi / side + rng.uniform(0, np.pi))
        pixels = stripes + rng.normal(0, 40, size=(side, side, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / str(label) / f"{index}.png")
    return time.perf_counter() - started


def memory_cgroup(name: str, limit: int) -> Path | None:
    """A memory cgroup limited to ``limit`` bytes (v2 or v1), or ``None`` where none can be made."""
    for folder, limit_file in ((Path("/sys/fs/cgroup") / name, "memory.max"), (Path("/sys/fs/cgroup/memory") / name, "memory.limit_in_bytes")):
        if limit_file == "memory.max" and "memory" not in _read(Path("/sys/fs/cgroup/cgroup.controllers")):
            continue
        try:
            folder.mkdir(exist_ok=True)
            (folder / limit_file).write_text(str(limit))
            return folder
        except OSError:
            continue
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def peak_usage(group: Path | None) -> float | None:
    """The cgroup's peak memory in GB (v1 ``max_usage_in_bytes``, v2 ``memory.peak``)."""
    for name in ("memory.max_usage_in_bytes", "memory.peak"):
        text = _read(group / name) if group else ""
        if text.strip().isdigit():
            return int(text) / 1e9
    return None


def search(task: Path, stores: dict[str, str], study: str, extra: list[str], group: Path | None) -> tuple[int, float, str]:
    """Run ``mmbench search`` (inside ``group`` when given); exit code, wall seconds, last output line."""
    command = [sys.executable, "-m", "mmbench.cli", "search", str(task), "--study", study, "--n-trials", "1", "--max-epochs", "1",
               "--encoders", "image=image.cnn", "--no-plots", "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"],
               "-q", *extra]

    def enter() -> None:
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    started = time.perf_counter()
    result = subprocess.run(command, preexec_fn=enter, capture_output=True, text=True, check=False)  # noqa: PLW1509 - joins the cgroup
    last = (result.stderr.strip().splitlines() or [""])[-1][:160]
    return result.returncode, time.perf_counter() - started, last


def trial_figures(tracking_uri: str, study: str) -> dict[str, str]:
    """val_accuracy, epoch_seconds, peak_rss_mb and the streamed tag of the study's trial run."""
    connection = sqlite3.connect(tracking_uri.removeprefix("sqlite:///"))
    run = connection.execute(
        "select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid where t.key = 'mmbench.study' and t.value = ? "
        "and exists (select 1 from tags p where p.run_uuid = r.run_uuid and p.key = 'mmbench.trial')", (study,)
    ).fetchone()
    if run is None:
        return {}
    figures = {key: f"{value:.4g}" for key, value in connection.execute(
        "select key, value from latest_metrics where run_uuid = ? and key in ('val_accuracy', 'epoch_seconds', 'peak_rss_mb')", run)}
    tag = connection.execute("select value from tags where run_uuid = ? and key = 'mmbench.streamed'", run).fetchone()
    figures["streamed"] = tag[0] if tag else "-"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--side", type=int, default=48)
    parser.add_argument("--limit-gb", type=float, default=2.0)
    args = parser.parse_args()
    folder, stores = temporary_stores("streaming")
    os.environ["MMBENCH_CACHE"] = str(folder / "cache")
    os.environ["MMBENCH_SPILL_DIR"] = str(folder / "spill")
    seconds = write_images(folder / "images", args.rows, args.side)
    task = folder / "stripes.yaml"
    task.write_text(
        f"name: stripes\ndata:\n  provider: imagefolder\n  options: {{path: {folder / 'images'}}}\n"
        "label: label\nmetric: accuracy\nsplit: {validation: 0.15, test: 0.15, seed: 0}\n"
    )
    tensor_gb = args.rows * 3 * args.side * args.side * 4 / 1e9
    print(f"machine: {machine()}")
    print(f"data: {args.rows} PNGs of {args.side}x{args.side} RGB written in {seconds:.0f} s; "
          f"preprocessed float32 tensors {tensor_gb:.2f} GB")
    limit = int(args.limit_gb * 1e9)
    probe = memory_cgroup(f"mmbench-streaming-{os.getpid()}-probe", limit)
    runs = []
    if probe is None:
        print("no memory cgroup could be made (needs root and a cgroup memory controller): no limit, streaming forced")
        runs.append(("streamed (forced, no limit)", "streamed", ["--memory-budget-gb", "0"], False))
    else:
        probe.rmdir()
        runs.append((f"in memory, {args.limit_gb:g} GB limit", "in-memory-limited", ["--memory-budget-gb", "1000"], True))
        runs.append((f"default budget, {args.limit_gb:g} GB limit", "streamed", [], True))
    runs.append(("in memory, no limit", "in-memory", ["--memory-budget-gb", "1000"], False))
    results = {}
    for label, study, extra, limited in runs:
        group = memory_cgroup(f"mmbench-streaming-{os.getpid()}-{study}", limit) if limited else None
        code, wall, last = search(task, stores, study, extra, group)
        peak = peak_usage(group)
        if group is not None:
            group.rmdir()
        figures = trial_figures(stores["tracking_uri"], study)
        results[study] = figures
        outcome = "finished" if code == 0 else ("killed by the kernel (out of memory)" if code in (-9, 137) else f"exit {code}: {last}")
        print(f"{label:32s}: {outcome}; {wall:6.1f} s" + (f"; cgroup peak {peak:.2f} GB" if peak else "")
              + (f"; trial {json.dumps(figures)}" if figures else ""))
    streamed, reference = results.get("streamed", {}), results.get("in-memory", {})
    if "epoch_seconds" in streamed and "epoch_seconds" in reference:
        ratio = float(streamed["epoch_seconds"]) / float(reference["epoch_seconds"])
        print(f"ratio  streamed / in-memory epoch time = {ratio:.2f}")


if __name__ == "__main__":
    main()
