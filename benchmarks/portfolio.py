"""Derive the search portfolio (``mmbench/search/portfolio.json``) from the runs of suite searches.

For every task in the MLflow store, the finished trials are ranked by validation score, normalised
by the task's best (1.0 = the best trial of that task); the ``--per-task`` best of each task become
candidates, named by modality *kind* (so they apply to any task with those kinds). Candidates of
the same combination keep their better score; the ``--size`` best by normalised score are kept and
stored cheapest first (mean trial seconds), which is the order the search enqueues them in.

    mmbench search --suite core --data-root ../shared/data   # or any searches into one store
    python benchmarks/portfolio.py --tracking-uri sqlite:///mlflow.db [--per-task 2] [--size 8]
"""

from __future__ import annotations

import argparse
import datetime
import json
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


def derive(tracking_uri: str, *, per_task: int, size: int) -> dict[str, Any]:
    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(tracking_uri)
    candidates: dict[str, dict[str, Any]] = {}
    tasks, used = tracker.task_experiments(), set()
    for experiment_id, task in sorted(tasks.items(), key=lambda item: item[1]):
        runs = [r for r in tracker.trial_runs([experiment_id], extra_filter="tags.`mmbench.state` = 'COMPLETE'")
                if "val_score" in r.data.metrics]
        if not runs:
            continue
        used.add(task)
        best = max(r.data.metrics["val_score"] for r in runs) or 1.0
        for run in sorted(runs, key=lambda r: -r.data.metrics["val_score"])[:per_task]:
            entry = config_of(run.data.params)
            entry.update(score=round(run.data.metrics["val_score"] / best, 4),
                         seconds=round(run.data.metrics.get("duration_s", 0.0), 1), task=task)
            key = json.dumps([entry["fusion"], entry["encoders"]], sort_keys=True)
            if key not in candidates or candidates[key]["score"] < entry["score"]:
                candidates[key] = entry
    chosen = sorted(candidates.values(), key=lambda e: -e["score"])[:size]
    return {"derived_by": "benchmarks/portfolio.py", "date": datetime.date.today().isoformat(),
            "tasks": sorted(used), "configs": sorted(chosen, key=lambda e: e["seconds"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--per-task", type=int, default=2)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()
    portfolio = derive(options.tracking_uri, per_task=options.per_task, size=options.size)
    options.out.write_text(json.dumps(portfolio, indent=1) + "\n")
    for entry in portfolio["configs"]:
        print(f"{entry['seconds']:7.1f} s  score {entry['score']:.3f}  {entry['fusion']} | {entry['encoders']}  ({entry['task']})")
    print(f"{len(portfolio['configs'])} configurations from {len(portfolio['tasks'])} tasks -> {options.out}")


if __name__ == "__main__":
    main()
