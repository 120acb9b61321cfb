"""mmbench beside its peers at a fixed wall-clock budget: writes the "vs peers" section of ``docs/results.md``.

For each task (default ``petfinder`` at 120 s and 600 s, ``av-digits-hard`` at 300 s) and each
budget, in alternating order: ``mmbench search TASK --time-limit BUDGET`` in a fresh store and
with a cold cache (``MMBENCH_CACHE`` in the run's folder: frozen-encoder features and decoded media
are computed within the budget, as on data mmbench has not seen; its best leaderboard row by
validation: an ensemble, a trial or a classical baseline), then AutoGluon
Tabular with ``time_limit=BUDGET`` (tasks with tabular or text columns only). AutoGluon runs in
its own interpreter (``--autogluon-python``, a separate virtual environment: it is an optional
benchmark dependency, never a test dependency) through ``_autogluon_fit.py``, fed the task's own
split as files: the same train, validation (its tuning data) and test rows mmbench uses. Beside
them, once per task, the classical baselines of :mod:`mmbench.train.classical` alone (the ones the
first search recorded, else fitted here), and, where ``benchmarks/suite.py`` measured one, the
suite's best unimodal model, with the gap mmbench's best row makes over it. Each task's block of
the section carries its own date, load and command, so tasks can be measured in separate runs.

Usage::

    python benchmarks/vs_peers.py --data-root ../shared/data [--tasks petfinder,av-digits-hard:300]
                                  [--budgets 120,600] [--autogluon-python /work/agvenv/bin/python]
                                  [--output docs/results.md] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEERS_END, PEERS_START, machine, peers_section, quiet, temporary_stores, write_peers_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AUTOGLUON_FIT = Path(__file__).resolve().with_name("_autogluon_fit.py")
LABEL = "__label__"  # the label column of the files AutoGluon reads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="petfinder,av-digits-hard:300",
                        help="Comma-separated tasks; NAME:B1:B2 gives a task its own budgets (seconds).")
    parser.add_argument("--budgets", default="120,600", help="Comma-separated seconds, for tasks without their own.")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--autogluon-python", default=os.environ.get("MMBENCH_AUTOGLUON_PYTHON", sys.executable),
                        help="Interpreter that has autogluon.tabular (default: $MMBENCH_AUTOGLUON_PYTHON, else this one); "
                             "AutoGluon is skipped when it cannot import it.")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results.md")
    parser.add_argument("--no-write", action="store_true", help="Print the table only.")
    return parser.parse_args(argv)


def task_budgets(tasks: str, budgets: str) -> list[tuple[str, list[float]]]:
    """``petfinder,av-digits-hard:300`` and ``120,600`` -> each task with its budgets."""
    default = [float(b) for b in budgets.split(",") if b.strip()]
    found = []
    for spec in (t.strip() for t in tasks.split(",") if t.strip()):
        name, *own = spec.split(":")
        found.append((name, [float(b) for b in own] or default))
    return found


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


def load_now() -> float:
    """The 1-minute load average (what ``uptime`` shows first)."""
    return os.getloadavg()[0]


def classical_rows(task_name: str, data: Any) -> list[dict[str, Any]]:
    from mmbench.train.classical import CLASSICAL_MODELS, fit_classical

    rows = []
    n_classes = len(data.schema.classes)
    for name in CLASSICAL_MODELS:
        load_start, started = load_now(), time.perf_counter()
        fitted = fit_classical(name, data)
        if fitted is None:
            continue
        val = scores(fitted.val_proba, data.labels("validation").numpy(), n_classes)
        test = scores(fitted.test_proba, data.labels("test").numpy(), n_classes)
        rows.append({"task": task_name, "system": f"classical `{name}` alone", "budget": "-", "models": "1", "load": load_start,
                     "wall": time.perf_counter() - started, "val": val["accuracy"], "test": test["accuracy"],
                     "macro_f1": test["macro_f1"]})
    return rows


def recorded_classical_rows(task_name: str, tracker: Any, load: float) -> list[dict[str, Any]]:
    """The classical baselines the search itself fitted (``mmbench.role=classical`` runs), as rows."""
    rows = []
    for run in tracker.trial_runs(list(tracker.task_experiments(task_name)), role="classical"):
        metrics = run.data.metrics
        if "val_score" in metrics:
            rows.append({"task": task_name, "system": f"classical `{run.data.tags['mmbench.classical']}` alone (fitted by the search)",
                         "budget": "-", "models": "1", "load": load, "wall": metrics["duration_s"], "val": metrics["val_accuracy"],
                         "test": metrics["test_accuracy"], "macro_f1": metrics["test_macro_f1"]})
    return rows


def mmbench_row(task_name: str, budget: float, data_root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One ``mmbench search`` at the budget in a fresh store: its best leaderboard row by validation,
    and the classical baselines it recorded."""
    from mmbench.tracking.leaderboard import leaderboard
    from mmbench.tracking.tracker import Tracker

    folder, stores = temporary_stores(f"peers-{task_name}")
    command = ["mmbench", "search", task_name, "--data-root", str(data_root), "--time-limit", f"{budget:g}", "--quiet",
               "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"]]
    print(f"[{task_name}] {shlex.join(command)}  (load {load_now():.1f})", flush=True)
    load_start, started = load_now(), time.perf_counter()
    # a cold cache, as on data mmbench has not seen: no frozen-encoder features or decoded media from an earlier run
    subprocess.run(command, check=True, cwd=folder, env={**os.environ, "MMBENCH_CACHE": str(folder / "cache")})
    wall = time.perf_counter() - started
    tracker = Tracker(stores["tracking_uri"])
    rows = leaderboard(tracker, task=task_name)
    best = max(rows, key=lambda r: r.val_score)
    run = tracker.client.get_run(best.run_id)
    trials = tracker.trial_runs(list(tracker.task_experiments(task_name)), extra_filter="tags.`mmbench.state` = 'COMPLETE'")
    row = {"task": task_name, "system": f"mmbench `--time-limit {budget:g}` (best row: `{best.combination}`)", "budget": f"{budget:g} s",
           "models": f"{len(trials)} trials", "load": load_start, "wall": wall, "val": best.val_score, "test": best.test_score,
           "macro_f1": run.data.metrics.get("test_macro_f1")}
    print(f"[{task_name}] {wall:.1f} s, store {stores['tracking_uri']}", flush=True)
    return row, recorded_classical_rows(task_name, tracker, load_start)


def autogluon_available(python: str) -> bool:
    return subprocess.run([python, "-c", "import autogluon.tabular"], capture_output=True).returncode == 0


def autogluon_row(task_name: str, data: Any, budget: float, python: str) -> dict[str, Any] | None:
    """AutoGluon Tabular in its own interpreter on the same split and columns (text as its n-gram features), or ``None``."""
    import numpy as np
    import pandas as pd

    from mmbench.train.classical import columns_of, frame

    columns = columns_of(data.schema, data.splits["train"])
    if not (columns.numeric or columns.categorical or columns.text):
        return None
    folder, _ = temporary_stores(f"autogluon-{task_name}")
    for split in ("train", "validation", "test"):
        table = frame(data.splits[split], columns)
        table[LABEL] = data.labels(split).numpy()
        table.to_csv(folder / f"{split}.csv", index=False)
    n_classes = len(data.schema.classes)
    strings = columns.categorical + columns.text
    spec = {"categorical": columns.categorical, "text": columns.text, "n_classes": n_classes,
            "numeric": [c for c in table.columns if c not in {*strings, LABEL}]}
    (folder / "columns.json").write_text(json.dumps(spec))
    print(f"[{task_name}] AutoGluon time_limit={budget:g} in {folder} (load {load_now():.1f})", flush=True)
    load_start, started = load_now(), time.perf_counter()
    subprocess.run([python, str(AUTOGLUON_FIT), str(folder), f"{budget:g}"], check=True)
    wall = time.perf_counter() - started
    fit = json.loads((folder / "fit.json").read_text())

    def proba(split: str) -> Any:
        frame_ = pd.read_csv(folder / f"proba_{split}.csv")
        full = np.zeros((len(frame_), n_classes))
        for column in frame_.columns:
            full[:, int(column)] = frame_[column].to_numpy()
        return full

    val = scores(proba("validation"), data.labels("validation").numpy(), n_classes)
    test = scores(proba("test"), data.labels("test").numpy(), n_classes)
    return {"task": task_name, "system": f"AutoGluon Tabular (text as n-grams; best model `{fit['best']}`, fit {fit['seconds']:.0f} s)",
            "budget": f"{budget:g} s", "models": f"{fit['models']} models", "load": load_start, "wall": wall,
            "val": val["accuracy"], "test": test["accuracy"], "macro_f1": test["macro_f1"]}


def suite_reference(path: Path, task_name: str) -> tuple[dict[str, Any], float] | None:
    """The best unimodal model of ``benchmarks/suite.py``'s table for the task in ``path`` (a row, and
    the suite's best-fusion gap in test points), or ``None`` where the suite has none."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    text = text.replace(peers_section(path), "")
    block = re.search(rf"^## {re.escape(task_name)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if block is None:
        return None
    row = re.search(r"^\| (.+?) \(best unimodal\) \| `(.+?)` \| ([\d.]+) ± [\d.]+ \| ([\d.]+) ± [\d.]+ \| (\d+) \|$", block.group(1), re.M)
    gap = re.search(r"minus best unimodal model .*?: \*\*([+-][\d.]+)\*\* test points", block.group(1))
    if row is None or gap is None:
        return None
    combination = row.group(2).replace("\\|", "|")  # unescaped: task_block escapes every row's bars
    return ({"task": task_name, "system": f"best unimodal model of `benchmarks/suite.py` ({row.group(1)}: `{combination}`, "
             f"mean of {row.group(5)} seeds, table above)", "budget": "-", "models": "-", "load": None, "wall": None,
             "val": float(row.group(3)), "test": float(row.group(4)), "macro_f1": None}, float(gap.group(1)))


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def task_block(task_name: str, rows: list[dict[str, Any]], command: str, load_before: float,
               reference: tuple[dict[str, Any], float] | None) -> str:
    """The task's part of the section: when, where, how, and the table."""
    lines = [f"### {task_name}", "", f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}; load average (1 min, as `uptime` shows) {load_before:.1f} before, {load_now():.1f} after; "
             "each row's load at its start is in the table (runs alternate, so both systems see the same load)",
             f"- command: `{command}`", "",
             "| system | budget | wall time (s) | trials / models | load at start | val acc | test acc | test macro-F1 |",
             "|---|---|---|---|---|---|---|---|"]
    shown = rows + ([reference[0]] if reference else [])
    for r in shown:
        lines.append(f"| {r['system'].replace('|', chr(92) + '|')} | {r['budget']} | {_number(r['wall'], 1)} | {r['models']} | "
                     f"{_number(r['load'], 1)} | {r['val']:.4f} | {r['test']:.4f} | {_number(r['macro_f1'], 4)} |")
    if reference:
        for r in (r for r in rows if r["system"].startswith("mmbench")):
            lines += ["", f"mmbench at {r['budget']} minus the suite's best unimodal model: **{100 * (r['test'] - reference[0]['test']):+.1f}** "
                      f"test points (the suite's best fusion family: {reference[1]:+.1f})."]
    return "\n".join(lines) + "\n"


def merged_section(path: Path, blocks: dict[str, str]) -> str:
    """The section with these tasks' blocks replaced (or added) and every other task's block kept."""
    old = peers_section(path)
    kept: dict[str, str] = {}
    for part in re.split(r"^(?=### )", old.replace(PEERS_END, ""), flags=re.M)[1:]:
        kept[part.splitlines()[0][4:].strip()] = part.rstrip("\n") + "\n"
    kept.update(blocks)
    header = [PEERS_START, "## mmbench beside its peers at a fixed budget", "",
              "Generated by `benchmarks/vs_peers.py`; do not edit by hand (rerun the command of a task's block).",
              "The same split for every system (the task's own); accuracy on validation and test, macro-F1 on test; "
              "AutoGluon Tabular (its own virtual environment, `--autogluon-python`) only on tasks with tabular or text columns. "
              "Wall times include start-up (imports, data preparation); mmbench starts with a cold cache "
              "(its frozen-encoder features and decoded media are computed inside the budget).", ""]
    return "\n".join(header) + "\n" + "\n".join(kept.values()) + "\n" + PEERS_END + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet()
    command = "python benchmarks/vs_peers.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    data_root = args.data_root.resolve()
    with_autogluon = autogluon_available(args.autogluon_python)
    if not with_autogluon:
        print(f"AutoGluon Tabular not importable by {args.autogluon_python}: left out", flush=True)
    for task_name, budgets in task_budgets(args.tasks, args.budgets):
        load_before, rows = load_now(), []
        _, data = load(task_name, data_root)
        classical: list[dict[str, Any]] = []
        reference = suite_reference(args.output, task_name)
        for budget in budgets:  # alternating: mmbench, then the peer, per budget
            row, recorded = mmbench_row(task_name, budget, data_root)
            rows.append(row)
            classical = classical or recorded
            peer = autogluon_row(task_name, data, budget, args.autogluon_python) if with_autogluon else None
            if peer is not None:
                rows.append(peer)
            print(task_block(task_name, rows, command, load_before, reference), flush=True)
        rows += classical or classical_rows(task_name, data)  # the search's own, else fitted here (e.g. --no-classical)
        block = task_block(task_name, rows, command, load_before, reference)
        print(block, flush=True)
        if not args.no_write:  # task by task: a later task's failure keeps the figures measured before it
            write_peers_section(args.output, merged_section(args.output, {task_name: block}))
            print(f"wrote the {task_name} block of {args.output}", flush=True)


if __name__ == "__main__":
    main()
