"""`mmbench search` + `mmbench leaderboard` end to end, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna

from tests.cli import run_cli


def test_search_then_leaderboard_agree_with_optuna(stores, tiny_task):
    result = run_cli("search", str(tiny_task()), "--n-trials", "4", "--max-epochs", "3", "--quiet",
                     "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"])
    assert result.returncode == 0, result.stderr

    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert len(study.trials) == 4

    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(stores["tracking_uri"])
    experiments = tracker.task_experiments("tiny")
    runs = tracker.trial_runs(list(experiments))
    assert len(runs) == len(study.trials)
    by_trial = {int(r.data.tags["mmbench.trial"]): r for r in runs}
    for trial in study.trials:
        run = by_trial[trial.number]
        assert run.data.tags["mmbench.state"] == trial.state.name
        if trial.state.name == "COMPLETE":
            assert abs(run.data.metrics["val_score"] - trial.value) < 1e-9

    board = run_cli("leaderboard", "--format", "json", "--tracking-uri", stores["tracking_uri"])
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)["rows"]
    best_complete = max(t.value for t in study.trials if t.state.name == "COMPLETE")
    assert rows[0]["rank"] == 1
    assert abs(rows[0]["val_score"] - best_complete) < 1e-9


def test_resume_runs_only_the_missing_trials(stores, tiny_task):
    common = ["--quiet", "--max-epochs", "2", "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"]]
    task = str(tiny_task())
    assert run_cli("search", task, "--n-trials", "2", *common).returncode == 0
    assert run_cli("search", task, "--n-trials", "3", *common).returncode == 0
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert len(study.trials) == 3

    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(stores["tracking_uri"])
    runs = tracker.trial_runs(list(tracker.task_experiments("tiny")))
    assert sorted(int(r.data.tags["mmbench.trial"]) for r in runs) == [0, 1, 2]
    parents = tracker.client.search_runs(list(tracker.task_experiments("tiny")), "tags.`mmbench.role` = 'study'")
    assert len(parents) == 1


def test_unknown_task_is_one_line_exit_2():
    result = run_cli("search", "synth-mixd")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown task 'synth-mixd'; available: ")
    assert lines[0].endswith("(did you mean 'synth-mixed'?)")
    assert "Traceback" not in result.stderr


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from mmbench.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'mlflow', 'torchmetrics', 'transformers', 'optuna', 'datasets') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="
