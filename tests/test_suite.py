"""Benchmark suites: ``--suite`` selection, missing data, resume, average rank, and the synthetic
family's ordering predicted by construction (issue 10).

The ordering tests run the built-in ``synth-unique`` / ``synth-synergy`` task files as shipped
(2,000 rows) with one fixed configuration (early fusion, small MLPs), so each search is one
short training: on ``synth-unique`` the informative modality alone matches the fusion, on
``synth-synergy`` no modality alone beats chance while the fusion solves the XOR.
(``tests/test_fusions.py`` shows late fusion failing on XOR; ``tests/test_evaluation_end_to_end.py``
the baselines on a smaller unique task: not repeated here.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mmbench import hookimpl
from mmbench.errors import ConfigError, DataError

TINY = """name: {name}
data:
  provider: synthetic
  options: {{n_samples: 160, n_modalities: 2, dim: 4, mode: {mode}, noise: 0.2}}
label: label
metric: accuracy
suites: {suites}
split: {{validation: 0.25, test: 0.25, seed: 0}}
search: {{n_trials: {n_trials}, max_epochs: 2, patience: 2, fusions: [early, late], encoders: {{embedding: [embedding.mlp]}}}}
"""


class _SuitePlugin:
    """A plugin shipping three tiny tasks: two in suite ``tiny`` (budgets 2 and 1), one outside."""

    def __init__(self, folder: Path) -> None:
        specs = [("tiny-a", "redundant", "[tiny, other]", 2), ("tiny-b", "unique", "tiny", 1), ("tiny-c", "mixed", "[]", 1)]
        self.paths = []
        for name, mode, suites, n_trials in specs:
            path = folder / f"{name}.yaml"
            path.write_text(TINY.format(name=name, mode=mode, suites=suites, n_trials=n_trials))
            self.paths.append(path)

    @hookimpl
    def mmbench_tasks(self) -> list[Path]:
        return self.paths


@pytest.fixture
def suite_registry(tmp_path, monkeypatch):
    """The installed plugins plus the tiny suite, also as the CLI's process-wide registry."""
    import mmbench.registry
    from mmbench.registry import load_registry

    folder = tmp_path / "suite-tasks"
    folder.mkdir()
    registry = load_registry(extra_plugins=[("tinysuite", _SuitePlugin(folder))])
    monkeypatch.setattr(mmbench.registry, "_default", registry)
    return registry


def test_builtin_suites_name_the_calibrated_tasks(registry):
    from mmbench.tasks.suites import suite_tasks

    assert suite_tasks("core", registry) == ["av-digits-hard", "petfinder", "synth-redundant", "synth-synergy", "synth-unique"]
    assert suite_tasks("synthetic", registry) == ["synth-mixed", "synth-redundant", "synth-synergy", "synth-unique"]
    with pytest.raises(ConfigError, match=r"unknown suite 'cor'; available: core, .*real.*synthetic"):
        suite_tasks("cor", registry)


def test_suites_must_be_a_list_of_names(tmp_path):
    from mmbench.tasks.suites import suites_of
    from mmbench.tasks.files import load_task_file

    path = tmp_path / "bad.yaml"
    path.write_text(TINY.format(name="bad", mode="unique", suites="{core: 1}", n_trials=1))
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'suites' must be a list"):
        suites_of(load_task_file(path))


def test_missing_data_is_refused_before_any_work_naming_task_and_path(registry, tmp_path):
    from mmbench.tasks.suites import select_suite

    with pytest.raises(DataError, match=r"suite 'core': task 'av-digits-hard' needs .*fsdd/recordings/\*\.wav.*"
                                        r"task 'petfinder' needs .*petfinder/val\.csv.*--data-root"):
        select_suite("core", registry, None)
    # the check looks for the files only (it reads nothing): empty stand-ins satisfy it
    root = tmp_path / "data"
    for relative in ("fsdd/recordings/0_jackson_0.wav", "mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz",
                     "petfinder/val.csv"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).touch()
    with pytest.raises(DataError, match=r"task 'petfinder' needs .*petfinder/test\.csv; not found under --data-root") as error:
        select_suite("core", registry, root)
    assert "av-digits-hard" not in str(error.value)
    (root / "petfinder/test.csv").touch()
    assert select_suite("core", registry, root)[0] == "av-digits-hard"


def test_cli_suite_runs_each_task_with_its_budget_resumes_and_ranks_across_tasks(suite_registry, stores, one_torch_thread):
    import optuna

    from mmbench.cli.app import app
    from mmbench.tracking.leaderboard import average_ranks, leaderboard
    from mmbench.tracking.tracker import Tracker

    runner = CliRunner()
    args = ["search", "--suite", "tiny", "--device", "cpu", "--no-plots", "--quiet", "--storage", stores["storage"],
            "--tracking-uri", stores["tracking_uri"]]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

    def finished() -> dict[str, int]:
        return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(stores["storage"])}

    assert finished() == {"tiny-a": 2, "tiny-b": 1}  # each task's own search.n_trials; tiny-c is not in the suite
    result = runner.invoke(app, args)  # resumed task by task: finished studies run nothing more
    assert result.exit_code == 0, result.output
    assert finished() == {"tiny-a": 2, "tiny-b": 1}
    result = runner.invoke(app, [*args, "--n-trials", "2"])  # --n-trials overrides every task's budget
    assert result.exit_code == 0, result.output
    assert finished() == {"tiny-a": 2, "tiny-b": 2}

    rows = leaderboard(Tracker(stores["tracking_uri"]))
    assert {r.task for r in rows} == {"tiny-a", "tiny-b"}
    ranks = {(r.task, r.combination): r.rank for r in rows}
    for entry in average_ranks(rows):
        own = [rank for (_, combination), rank in ranks.items() if combination == entry["combination"]]
        assert entry["average_rank"] == pytest.approx(sum(own) / len(own)) and entry["n_tasks"] == len(own)
    out = runner.invoke(app, ["leaderboard", "--format", "json", "--tracking-uri", stores["tracking_uri"]])
    assert {e["combination"] for e in json.loads(out.stdout)["average_ranks"]} == {r.combination for r in rows}


def test_cli_suite_user_mistakes(suite_registry):
    from mmbench.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["search", "--suite", "tiyn"])
    assert isinstance(result.exception, ConfigError) and "unknown suite 'tiyn'" in str(result.exception)
    assert "tiny" in str(result.exception) and "core" in str(result.exception)
    result = runner.invoke(app, ["search", "tiny-a", "--suite", "tiny"])
    assert isinstance(result.exception, ConfigError) and "--suite" in str(result.exception)
    result = runner.invoke(app, ["tasks", "--format", "json"])
    suites = {e["name"]: e["suites"] for e in json.loads(result.stdout)}
    assert suites["tiny-a"] == ["tiny", "other"] and suites["tiny-c"] == [] and suites["av-digits-hard"] == ["core", "real"]


def test_unimodal_task_keeps_rows_and_drops_the_other_modalities(registry):
    from mmbench.tasks.loading import load_task_data
    from mmbench.tasks.suites import unimodal_task
    from mmbench.tasks.files import parse_task, resolve_task

    task = parse_task({**yaml.safe_load(TINY.format(name="deg", mode="unique", suites="[]", n_trials=1)),
                       "modalities": {}})
    full = load_task_data(task, registry)
    only = unimodal_task(task, "x1", full.schema)
    assert only.name == "deg[x1]" and only.raw.get("suites") is None
    data = load_task_data(only, registry)
    # one embedding column left: the modality takes its kind's name, the rows stay those of the full task
    assert [(i.kind, i.columns) for i in data.schema.modalities.values()] == [("embedding", ("x1",))]
    assert data.split_sizes == full.split_sizes
    assert data.splits["train"]["x1"] == full.splits["train"]["x1"]
    hard = unimodal_task(resolve_task("av-digits-hard", registry), "image", _schema({"audio": "audio", "image": "image"}))
    assert hard.modalities["audio"] == "ignore" and list(hard.data["degrade"]) == ["image"]
    assert list(hard.search["encoders"]) == ["image"]
    with pytest.raises(ConfigError, match="unknown modality 'text'"):
        unimodal_task(task, "text", full.schema)


def _schema(kinds: dict[str, str]):
    """A stand-in schema (only ``.modalities`` is read) for a task whose data is not at hand."""
    from types import SimpleNamespace

    from mmbench.data.schema import ModalityInfo

    return SimpleNamespace(modalities={name: ModalityInfo(name=name, kind=kind, columns=(name,)) for name, kind in kinds.items()})


# -- the synthetic family: orderings known by construction ------------------------------------

TRAIN = {"lr": 0.01, "batch_size": 64, "weight_decay": 0.0, "max_epochs": 10, "patience": 10}


def _test_accuracy(task, registry, data=None) -> float:
    """Test accuracy of one fixed configuration (early fusion of small MLPs) trained as a trial is."""
    from mmbench.search.trials import TrialConfig
    from mmbench.tasks.loading import load_task_data
    from mmbench.runs.reproduce import config_tensors, train_config

    data = data or load_task_data(task, registry)
    modalities = list(data.schema.modalities)
    config = TrialConfig("early", {"hidden": 32, "n_layers": 1, "dropout": 0.0}, {m: "embedding.mlp" for m in modalities},
                         {m: {"hidden": 16, "n_layers": 1, "dropout": 0.0} for m in modalities}, dict(TRAIN), seed=0)
    infos, tensors = config_tensors(config, data, registry)
    return train_config(config, task, data, infos, tensors, registry)[1].test["accuracy"]


def _scores(name: str, registry) -> dict[str, float]:
    """The built-in task (key ``fusion``) and each of its one-modality restrictions (keys x1, x2)."""
    from mmbench.tasks.loading import load_task_data
    from mmbench.tasks.suites import unimodal_task
    from mmbench.tasks.files import resolve_task

    task = resolve_task(name, registry)
    full = load_task_data(task, registry)
    scores = {"fusion": _test_accuracy(task, registry, full)}
    scores.update({m: _test_accuracy(unimodal_task(task, m, full.schema), registry) for m in full.schema.modalities})
    return scores


def test_synth_unique_informative_modality_alone_matches_fusion(registry, one_torch_thread):
    score = _scores("synth-unique", registry)
    assert score["fusion"] > 0.8, score
    assert abs(score["x1"] - score["fusion"]) < 0.04, score  # x1 (informative: 0) carries all the signal
    assert score["x2"] < 0.6, score  # two balanced classes: chance is 0.5


def test_synth_synergy_no_modality_alone_beats_chance(registry, one_torch_thread):
    score = _scores("synth-synergy", registry)
    assert score["fusion"] > 0.8, score
    assert score["x1"] < 0.6 and score["x2"] < 0.6, score  # XOR: each bit alone says nothing
