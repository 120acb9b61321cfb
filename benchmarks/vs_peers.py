"""mmbench beside its peers at a fixed wall-clock budget: writes the "vs peers" section of ``docs/results.md``.

For each task (default ``petfinder`` and ``av-digits-hard``) and each budget (default 120 s and
600 s), in alternating order: ``mmbench search TASK --time-limit BUDGET`` in a fresh store (its
best leaderboard row by validation: an ensemble, a trial or a classical baseline), then AutoGluon
Tabular with ``time_limit=BUDGET`` when ``autogluon.tabular`` is importable (optional, never a
test dependency; tasks with tabular or text columns only). Beside them, once per task, the
classical baselines of :mod:`mmbench.train.classical` alone (the ones the first search recorded,
else fitted here). Every system sees the task's own
split (the ``PreparedData`` splits; AutoGluon gets train, validation as tuning data, test).

Usage::

    python benchmarks/vs_peers.py --data-root ../shared/data [--tasks petfinder,av-digits-hard]
                                  [--budgets 120,600] [--output docs/results.md] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEERS_END, PEERS_START, machine, quiet, temporary_stores, write_peers_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="petfinder,av-digits-hard")
    parser.add_argument("--budgets", default="120,600", help="Comma-separated seconds.")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results.md")
    parser.add_argument("--no-write", action="store_true", help="Print the table only.")
    return parser.parse_args(argv)


def load(task_name: str, data_root: Path) -> tuple[Any, Any]:
    from mmbench.registry import get_registry
    from mmbench.tasks.files import resolve_task
    from mmbench.tasks.loading import load_task_data

    registry = get_registry()
    task = resolve_task(task_name, registry)
    return task, load_task_data(task, registry, root=data_root)


def scores(proba: Any, labels: Any, n_classes: int) -> dict[str, float]:
    from mmbench.train.metrics import probability_metrics

    return probability_metrics(proba, labels, n_classes)


def classical_rows(task_name: str, data: Any) -> list[dict[str, Any]]:
    from mmbench.train.classical import CLASSICAL_MODELS, fit_classical

    rows = []
    n_classes = len(data.schema.classes)
    for name in CLASSICAL_MODELS:
        started = time.perf_counter()
        fitted = fit_classical(name, data)
        if fitted is None:
            continue
        val = scores(fitted.val_proba, data.labels("validation").numpy(), n_classes)
        test = scores(fitted.test_proba, data.labels("test").numpy(), n_classes)
        rows.append({"task": task_name, "system": f"classical `{name}` alone", "budget": "-",
                     "wall": time.perf_counter() - started, "val": val["accuracy"], "test": test["accuracy"],
                     "macro_f1": test["macro_f1"]})
    return rows


def recorded_classical_rows(task_name: str, tracker: Any) -> list[dict[str, Any]]:
    """The classical baselines the search itself fitted (``mmbench.role=classical`` runs), as rows."""
    rows = []
    for run in tracker.trial_runs(list(tracker.task_experiments(task_name)), role="classical"):
        metrics = run.data.metrics
        if "val_score" in metrics:
            rows.append({"task": task_name, "system": f"classical `{run.data.tags['mmbench.classical']}` alone (fitted by the search)",
                         "budget": "-", "wall": metrics["duration_s"], "val": metrics["val_accuracy"],
                         "test": metrics["test_accuracy"], "macro_f1": metrics["test_macro_f1"]})
    return rows


def mmbench_row(task_name: str, budget: float, data_root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One ``mmbench search`` at the budget in a fresh store: its best leaderboard row by validation,
    and the classical baselines it recorded."""
    from mmbench.tracking.leaderboard import leaderboard
    from mmbench.tracking.tracker import Tracker

    folder, stores = temporary_stores(f"peers-{task_name}")
    help_text = subprocess.run(["mmbench", "search", "--help"], capture_output=True, text=True).stdout
    limit = "--time-limit" if "--time-limit" in help_text else "--timeout"
    command = ["mmbench", "search", task_name, "--data-root", str(data_root), limit, str(budget), "--quiet",
               "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"]]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=folder)
    wall = time.perf_counter() - started
    tracker = Tracker(stores["tracking_uri"])
    rows = leaderboard(tracker, task=task_name)
    best = max(rows, key=lambda r: r.val_score)
    run = tracker.client.get_run(best.run_id)
    row = {"task": task_name, "system": f"mmbench `{limit} {budget:g}` (best row: `{best.combination}`)", "budget": f"{budget:g} s",
           "wall": wall, "val": best.val_score, "test": best.test_score, "macro_f1": run.data.metrics.get("test_macro_f1")}
    return row, recorded_classical_rows(task_name, tracker)


def autogluon_row(task_name: str, data: Any, budget: float) -> dict[str, Any] | None:
    """AutoGluon Tabular on the same split and columns (text as its n-gram features), or ``None``."""
    try:
        from autogluon.tabular import TabularPredictor
    except ImportError:
        return None
    from mmbench.train.classical import columns_of, frame

    columns = columns_of(data.schema, data.splits["train"])
    if not (columns.numeric or columns.categorical or columns.text):
        return None
    label = "__label__"
    tables = {}
    for split in ("train", "validation", "test"):
        table = frame(data.splits[split], columns)
        table[label] = data.labels(split).numpy()
        tables[split] = table
    folder, _ = temporary_stores(f"autogluon-{task_name}")
    started = time.perf_counter()
    predictor = TabularPredictor(label=label, path=str(folder / "ag"), verbosity=0, eval_metric="accuracy").fit(
        tables["train"], tuning_data=tables["validation"], time_limit=budget)
    wall = time.perf_counter() - started
    n_classes = len(data.schema.classes)

    def proba(split: str) -> Any:
        import numpy as np

        frame_ = predictor.predict_proba(tables[split].drop(columns=[label]))
        full = np.zeros((len(frame_), n_classes))
        for column in frame_.columns:
            full[:, int(column)] = frame_[column].to_numpy()
        return full

    val = scores(proba("validation"), tables["validation"][label].to_numpy(), n_classes)
    test = scores(proba("test"), tables["test"][label].to_numpy(), n_classes)
    return {"task": task_name, "system": "AutoGluon Tabular (text as n-grams)", "budget": f"{budget:g} s", "wall": wall,
            "val": val["accuracy"], "test": test["accuracy"], "macro_f1": test["macro_f1"]}


def markdown(rows: list[dict[str, Any]], command: str, load_before: float, load_after: float) -> str:
    lines = [PEERS_START, "## mmbench beside its peers at a fixed budget", "",
             "Generated by `benchmarks/vs_peers.py`; do not edit by hand (rerun the command below).", "",
             f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}; load average {load_before:.1f} before, {load_after:.1f} after "
             "(other jobs shared the CPU: wall times are upper bounds)",
             f"- command: `{command}`",
             "- same split for every system (the task's own); accuracy on validation and test, macro-F1 on test; "
             "AutoGluon only where it is installed", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        lines += [f"### {task}", "", "| system | budget | wall time (s) | val acc | test acc | test macro-F1 |", "|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["task"] == task):
            f1 = "-" if r["macro_f1"] is None else f"{r['macro_f1']:.4f}"
            lines.append(f"| {r['system'].replace('|', chr(92) + '|')} | {r['budget']} | {r['wall']:.1f} | {r['val']:.4f} | {r['test']:.4f} | {f1} |")
        lines.append("")
    return "\n".join([*lines, PEERS_END]) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet()
    command = "python benchmarks/vs_peers.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    data_root = args.data_root.resolve()
    for task_name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        _, data = load(task_name, data_root)
        classical: list[dict[str, Any]] = []
        for budget in [float(b) for b in args.budgets.split(",")]:  # alternating: mmbench, then the peer, per budget
            row, recorded = mmbench_row(task_name, budget, data_root)
            rows.append(row)
            classical = classical or recorded
            peer = autogluon_row(task_name, data, budget)
            if peer is not None:
                rows.append(peer)
            print(markdown(rows, command, load_before, os.getloadavg()[0]), flush=True)
        rows += classical or classical_rows(task_name, data)  # the search's own, else fitted here (e.g. --no-classical)
    section = markdown(rows, command, load_before, os.getloadavg()[0])
    if not args.no_write:
        write_peers_section(args.output, section)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
