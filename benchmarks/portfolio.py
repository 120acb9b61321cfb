"""Derive the search portfolio (``mmbench/search/portfolio.json``) from the runs of suite searches.

For every task in the MLflow stores (``--tracking-uri``, repeatable: e.g. the suite's store and
the stores ``vs_peers.py`` prints for its real-data searches), the finished trials of all stores
together (less those a ``--time-limit`` cut short) are ranked by validation score, normalised by
the task's best (1.0 = the best trial of that task); the ``--per-task`` best of each task, within
``--min-score`` of its best, become candidates, named by modality *kind* (so they apply to any
task with those kinds). Candidates of the same combination keep their better
score; the ``--size`` best by normalised score are kept and stored cheapest first (trial seconds),
which is the order the search enqueues them in. ``--keep-other-tasks`` keeps the entries the
stored portfolio derived from tasks these stores do not hold (from earlier runs of this script),
so real-data runs can be added without rerunning the synthetic ones.

    mmbench search --suite core --data-root ../shared/data   # or any searches into one store
    python benchmarks/portfolio.py --tracking-uri sqlite:///mlflow.db [--tracking-uri ...]
                                   [--per-task 2] [--size 8] [--min-score 0.9] [--keep-other-tasks]
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "mmbench" / "search" / "portfolio.json"
TRAIN_KEYS = ("lr", "weight_decay", "batch_size")


def config_of(params: dict[str, str]) -> dict[str, Any]:
    """A trial's flat MLflow params -> a portfolio entry (encoders by kind, hyperparameters by prefix)."""
    value = lambda text: yaml.safe_load(text)  # noqa: E731 - params are logged as text
    fusion = params["fusion"]
    entry: dict[str, Any] = {"fusion": fusion, "encoders": {}, "encoder_params": {}, "train": {},
                             "fusion_params": {k.split(".", 2)[2]: value(v) for k, v in params.items()
                                               if k.startswith(f"fusion.{fusion}.")}}
    for key, encoder in sorted(params.items()):
        if key.count(".") != 1 or not key.startswith("encoder."):
            continue
        modality, kind = key.split(".", 1)[1], encoder.split(".", 1)[0]
        if kind in entry["encoders"]:  # two modalities of one kind: the first one's encoder stands for both
            continue
        prefix = f"encoder.{modality}.{encoder.split('.', 1)[1]}."
        entry["encoders"][kind] = encoder
        entry["encoder_params"][kind] = {k[len(prefix):]: value(v) for k, v in params.items() if k.startswith(prefix)}
    entry["train"] = {k: value(params[f"train.{k}"]) for k in TRAIN_KEYS if f"train.{k}" in params}
    return entry


def task_runs(tracking_uris: list[str]) -> dict[str, list[Any]]:
    """Task name -> its finished trials with a validation score, over every store (trials a
    ``--time-limit`` stopped before their last epoch left out)."""
    from mmbench.search.budget import STOPPED_TAG
    from mmbench.tracking.tracker import Tracker

    found: dict[str, list[Any]] = {}
    for uri in tracking_uris:
        tracker = Tracker(uri)
        for experiment_id, task in tracker.task_experiments().items():
            runs = [r for r in tracker.trial_runs([experiment_id], extra_filter="tags.`mmbench.state` = 'COMPLETE'")
                    if "val_score" in r.data.metrics and STOPPED_TAG not in r.data.tags]  # a trial cut by --time-limit: not its config's score
            found.setdefault(task, []).extend(runs)
    return {task: runs for task, runs in found.items() if runs}


def derive(tracking_uris: list[str], *, per_task: int, size: int, min_score: float = 0.0,
           keep: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The portfolio from these stores' trials (each within ``min_score`` of its task's best), plus
    the ``keep`` entries of tasks they do not hold."""
    candidates: dict[str, list[dict[str, Any]]] = {}
    runs_of = task_runs(tracking_uris)
    kept = [e for e in keep if e.get("task") not in runs_of]
    for task, runs in sorted(runs_of.items()):
        best = max(r.data.metrics["val_score"] for r in runs) or 1.0
        near_best = [r for r in runs if r.data.metrics["val_score"] >= min_score * best]
        for run in sorted(near_best, key=lambda r: -r.data.metrics["val_score"])[:per_task]:
            entry = config_of(run.data.params)
            entry.update(score=round(run.data.metrics["val_score"] / best, 4),
                         seconds=round(run.data.metrics.get("duration_s", 0.0), 1), task=task)
            candidates.setdefault(json.dumps([entry["fusion"], entry["encoders"]], sort_keys=True), []).append(entry)
    for entry in kept:
        candidates.setdefault(json.dumps([entry["fusion"], entry["encoders"]], sort_keys=True), []).append(entry)
    best_of = [max(group, key=lambda e: e["score"]) for group in candidates.values()]
    chosen = sorted(best_of, key=lambda e: -e["score"])[:size]
    return {"derived_by": "benchmarks/portfolio.py", "date": datetime.date.today().isoformat(),
            "tasks": sorted({*runs_of, *(e["task"] for e in kept)}), "configs": sorted(chosen, key=lambda e: e["seconds"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", action="append", help="an MLflow store of searches (repeatable; default sqlite:///mlflow.db)")
    parser.add_argument("--per-task", type=int, default=2)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--min-score", type=float, default=0.9, help="a candidate's validation score relative to its task's best")
    parser.add_argument("--keep-other-tasks", action="store_true",
                        help="keep the entries --out already holds for tasks these stores do not hold")
    options = parser.parse_args()
    keep = json.loads(options.out.read_text())["configs"] if options.keep_other_tasks and options.out.exists() else []
    portfolio = derive(options.tracking_uri or ["sqlite:///mlflow.db"], per_task=options.per_task, size=options.size,
                       min_score=options.min_score, keep=keep)
    options.out.write_text(json.dumps(portfolio, indent=1) + "\n")
    for entry in portfolio["configs"]:
        print(f"{entry['seconds']:7.1f} s  score {entry['score']:.3f}  {entry['fusion']} | {entry['encoders']}  ({entry['task']})")
    print(f"{len(portfolio['configs'])} configurations from {len(portfolio['tasks'])} tasks -> {options.out}")


if __name__ == "__main__":
    main()
