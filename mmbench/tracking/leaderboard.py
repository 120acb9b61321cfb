"""The leaderboard: a query over the trial, ensemble and classical-baseline runs in MLflow, ranked by validation metric.

Per task, each combination (fusion + encoder per modality) is represented by its best
configuration by **validation** score; the test score stands beside it and never decides a
rank. A configuration run with several seeds (same parameters, tag ``mmbench.seed`` differs)
is summarised as mean ± std over its seeds, and ranked by the mean; a k-fold run (``split.folds``)
of one seed shows the mean ± std over its folds. Across tasks, each
combination's average rank (MultiBench-style) over the tasks it was run on. In a
multi-objective search (``--objectives metric,latency|params``) the rows on the Pareto front
of validation score against the second objective are marked. Each task's class balance per split
is shown with it, and rows whose validation score never leaves the majority-class score are
flagged (:mod:`mmbench.tracking.balance`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from mmbench.tracking.balance import Balance, majority_tolerance, never_leaves, study_balances, task_balance_lines
from mmbench.tracking.ranking import rank_key
from mmbench.tracking.comparison import best_unimodal, fusion_gains, mark_within_noise
from mmbench.tracking.layout import ROLE_CLASSICAL, ROLE_ENSEMBLE, ROLE_TRIAL
from mmbench.tracking.tracker import TAG, Tracker

FORMATS = ("table", "markdown", "csv", "json")
#: Roles of the runs that are leaderboard rows (``ensemble | N members``, ``baseline | lightgbm``).
ROW_ROLES = (ROLE_TRIAL, ROLE_ENSEMBLE, ROLE_CLASSICAL)
#: run metric holding each second objective of ``--objectives``
SECOND_OBJECTIVE_METRICS = {"latency": "latency_ms", "params": "n_parameters"}


@dataclass
class Row:
    """One combination on one task (its best configuration, averaged over that configuration's seeds)."""

    task: str
    rank: int
    combination: str
    fusion: str
    metric: str
    val_score: float
    val_std: float | None
    test_score: float | None
    test_std: float | None
    n_seeds: int
    n_trials: int
    n_parameters: int | None
    duration_s: float | None
    latency_ms: float | None
    pareto: bool | None
    run_id: str
    fusion_gain: float | None = None  # val score over the best unimodal baseline (mmbench.runs.evaluation.baselines)
    within_noise: bool | None = None  # mean within noise of the task's top row (mmbench.tracking.comparison)
    majority: bool | None = None  # val score never leaves the majority-class score (None: not recorded)
    n_folds: int | None = None  # k-fold runs: folds per run (scores are means over them; one seed: std over them)


def leaderboard(tracker: Tracker, *, task: str | None = None, fusion: str | None = None, top: int | None = None,
                all_fingerprints: bool = False, notes: list[str] | None = None,
                balances: dict[str, dict[str, Any]] | None = None) -> list[Row]:
    """Rows for every task (or one), ranked by validation score within each task.

    Only the runs of one data version are ranked together: per task, those with the data
    fingerprint of its latest run (runs without a fingerprint tag are kept); how many were
    left out is appended to ``notes``. Equal scores are ordered by :mod:`mmbench.tracking.ranking`
    (the earlier trial first), the rule the study's best trial and saved model follow.

    Args:
        tracker: where the runs are.
        task: only this task.
        fusion: only combinations with this fusion (their ranks are those of the full table).
        top: only the best ``top`` shown combinations of each task.
        all_fingerprints: rank the runs of every data fingerprint together.
        notes: receives one line per task whose runs of other fingerprints were left out.
        balances: receives task -> its class balance and majority-class score (:func:`_mark_majority`),
            for the tasks whose studies recorded them.
    """
    experiments = tracker.task_experiments(task)
    if not experiments:
        return []
    # trials, plus the rows that keep them honest: ensembles of them and classical baselines
    runs = [run for role in ROW_ROLES for run in tracker.trial_runs(list(experiments), role=role, extra_filter=f"tags.`{TAG}state` = 'COMPLETE'")]
    by_task: dict[str, list[Any]] = defaultdict(list)
    for run in runs:
        if "val_score" in run.data.metrics:
            by_task[run.data.tags.get(f"{TAG}task", experiments.get(run.info.experiment_id, "?"))].append(run)
    grouped: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for task_name, task_runs in by_task.items():
        for run in task_runs if all_fingerprints else _latest_fingerprint(task_name, task_runs, notes):
            grouped[(task_name, run.data.tags.get(f"{TAG}combination", "?"))].append(run)
    rows = [_row(task_name, combination, group) for (task_name, combination), group in grouped.items()]
    fusion_gains(rows, best_unimodal(tracker, list(experiments)))
    trial_of = {run.info.run_id: _trial_number(run) for group in grouped.values() for run in group}
    run_of = {run.info.run_id: run for group in grouped.values() for run in group}
    recorded = study_balances(tracker, list(experiments))
    rows.sort(key=lambda r: (r.task, *_negated(rank_key(r.val_score, trial_of.get(r.run_id), r.metric)), r.combination))
    ranked: list[Row] = []
    for task_name in sorted({r.task for r in rows}):
        task_rows = [r for r in rows if r.task == task_name]
        for position, row in enumerate(task_rows, start=1):
            row.rank = position
        _mark_pareto(task_rows, runs_of_task=[run for (t, _), group in grouped.items() if t == task_name for run in group])
        mark_within_noise(task_rows)
        summary = _mark_majority(task_rows, run_of, recorded)
        if summary is not None and balances is not None:
            balances[task_name] = summary
        shown = [r for r in task_rows if not fusion or r.fusion == fusion]  # ranks stay those of the full table
        ranked.extend(shown[:top] if top else shown)
    return ranked


def _mark_majority(rows: list[Row], run_of: dict[str, Any], recorded: dict[str, Balance]) -> dict[str, Any] | None:
    """Flag the rows whose validation score never leaves the majority-class score: the classical
    ``majority`` baseline's where the task has that row, else the score recorded with the row's
    study (else with the top recorded row's). Returns the task's class balance (that top row's
    study's) and majority-class score, or ``None`` when neither is known (an older store)."""
    def record_of(row: Row) -> Balance | None:
        return recorded.get(run_of[row.run_id].data.tags.get("mlflow.parentRunId", ""))

    shown = next((b for b in map(record_of, rows) if b is not None), None)
    classical = next((r for r in rows if run_of[r.run_id].data.tags.get(f"{TAG}classical") == "majority"), None)
    if shown is None and classical is None:
        return None
    for row in rows:
        baseline = _majority_score(row.metric, classical, record_of(row) or shown)
        if baseline is not None:
            row.majority = never_leaves(row.val_score, baseline, row.metric)
    metric = rows[0].metric
    score = _majority_score(metric, classical, shown)
    from_classical = classical is not None and classical.metric == metric
    return {"task_type": shown.task_type if shown else None, "splits": shown.splits if shown else {},
            "majority": {"metric": metric, "val_score": score, "tolerance": None if score is None else majority_tolerance(score),
                         "from": classical.combination if from_classical else "recorded with the study"}}


def _majority_score(metric: str, classical: Row | None, balance: Balance | None) -> float | None:
    if classical is not None and classical.metric == metric:
        return classical.val_score
    value = balance.majority.get(metric) if balance is not None else None
    return value if value is not None and math.isfinite(value) else None


def _latest_fingerprint(task_name: str, runs: list[Any], notes: list[str] | None) -> list[Any]:
    """The runs of the data fingerprint of the task's latest run (and runs without one)."""
    tagged = [run for run in runs if run.data.tags.get(f"{TAG}fingerprint")]
    if not tagged:
        return runs
    latest = max(tagged, key=lambda run: run.info.start_time or 0).data.tags[f"{TAG}fingerprint"]
    kept = [run for run in runs if run.data.tags.get(f"{TAG}fingerprint", latest) == latest]
    if len(kept) < len(runs) and notes is not None:
        notes.append(f"task '{task_name}': {len(runs) - len(kept)} run(s) of other data fingerprints left out "
                     f"(ranking data fingerprint {latest[:12]} of the latest run; --all-fingerprints ranks all)")
    return kept


def _trial_number(run: Any) -> int | None:
    text = run.data.tags.get(f"{TAG}trial", "")
    return int(text) if text.isdigit() else None


def _earliest_trial(runs: list[Any]) -> int | None:
    return min((n for n in map(_trial_number, runs) if n is not None), default=None)


def _negated(key: tuple[float, int]) -> tuple[float, int]:
    return (-key[0], -key[1])


def _config_key(run: Any) -> str:
    """A configuration's identity across seeds: every parameter except the seed."""
    return json.dumps({k: v for k, v in sorted(run.data.params.items()) if k != "seed"})


def _row(task_name: str, combination: str, group: list[Any]) -> Row:
    by_config: dict[str, list[Any]] = defaultdict(list)
    for run in group:
        by_config[_config_key(run)].append(run)

    def mean_val(runs: list[Any]) -> float:
        return statistics.fmean(_finite(r.data.metrics["val_score"]) for r in runs)

    # equal scores: the configuration and the run of the earliest trial (mmbench.tracking.ranking)
    metric = group[0].data.tags.get(f"{TAG}metric")  # rmse: lower is better (mmbench.train.metrics.metric_direction)
    chosen = max(by_config.values(), key=lambda runs: rank_key(mean_val(runs), _earliest_trial(runs), metric))
    best = max(chosen, key=lambda r: rank_key(r.data.metrics["val_score"], _trial_number(r), metric))
    tags = best.data.tags
    vals = [r.data.metrics["val_score"] for r in chosen]
    tests = [r.data.metrics["test_score"] for r in chosen if "test_score" in r.data.metrics]
    return Row(
        task=task_name,
        rank=0,
        combination=combination,
        fusion=tags.get(f"{TAG}fusion", "?"),
        metric=tags.get(f"{TAG}metric", "?"),
        val_score=statistics.fmean(vals),
        val_std=statistics.stdev(vals) if len(vals) > 1 else chosen[0].data.metrics.get(f"val_{metric}_std"),
        test_score=statistics.fmean(tests) if tests else None,
        test_std=statistics.stdev(tests) if len(tests) > 1 else chosen[0].data.metrics.get(f"test_{metric}_std"),
        n_seeds=len({r.data.tags.get(f"{TAG}seed") for r in chosen}),
        n_trials=len(group),
        n_parameters=_mean_int(chosen, "n_parameters"),
        duration_s=_mean(chosen, "duration_s"),
        latency_ms=_mean(chosen, "latency_ms"),
        pareto=None,
        run_id=best.info.run_id,
        n_folds=_mean_int(chosen, "n_folds"),
    )


def _mark_pareto(rows: list[Row], *, runs_of_task: list[Any]) -> None:
    """Mark rows not dominated in (validation score better, second objective down)."""
    objectives = {r.data.tags.get(f"{TAG}objectives", "metric") for r in runs_of_task}
    second = next((o.split(",")[1] for o in objectives if "," in o), None)
    if second is None:
        return
    attribute = "latency_ms" if second == "latency" else "n_parameters"
    from mmbench.train.metrics import metric_sign

    points = [(r, metric_sign(r.metric) * r.val_score, getattr(r, attribute)) for r in rows]  # rmse: lower is better
    for row, score, cost in points:
        if cost is None:
            row.pareto = False
            continue
        row.pareto = not any(
            other_cost is not None and other_score >= score and other_cost <= cost and (other_score > score or other_cost < cost)
            for _, other_score, other_cost in points
        )


def average_ranks(rows: Sequence[Row]) -> list[dict[str, object]]:
    """Per combination: mean rank over the tasks it appears in, and on how many tasks."""
    ranks: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        ranks[row.combination].append(row.rank)
    summary = [{"combination": c, "average_rank": sum(r) / len(r), "n_tasks": len(r)} for c, r in ranks.items()]
    return sorted(summary, key=lambda s: (s["average_rank"], -s["n_tasks"], s["combination"]))


def render(rows: Sequence[Row], fmt: str, balances: dict[str, dict[str, Any]] | None = None) -> str:
    """The rows as ``markdown``, ``csv`` or ``json`` text (``table`` is printed by :func:`print_table`).

    ``json`` holds ``rows``, ``average_ranks`` and ``class_balance`` (task -> ``balances`` entry
    of :func:`leaderboard`); ``csv`` one line per row with every :class:`Row` field; ``markdown``
    a per-row table, the class balance lines, then the average-rank table when several tasks are shown.
    """
    balances = balances or {}
    if fmt == "json":
        return json.dumps({"rows": [asdict(r) for r in rows], "average_ranks": average_ranks(rows),
                           "class_balance": {t: b for t, b in balances.items() if any(r.task == t for r in rows)}}, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
        return out.getvalue()
    header = ["task", *_HEADER]
    lines = [_md_line(header), "|" + "---|" * len(header)]
    lines += [_md_line([row.task, *_cells(row)]) for row in rows]
    balance_text = [line for task_name in sorted({r.task for r in rows}) for line in task_balance_lines(task_name, balances.get(task_name))]
    if balance_text:
        lines += ["", *balance_text]
    if len({r.task for r in rows}) > 1:
        lines += ["", _md_line(["combination", "average rank", "tasks"]), "|---|---|---|"]
        lines += [_md_line([str(e["combination"]), f"{e['average_rank']:.2f}", str(e["n_tasks"])]) for e in average_ranks(rows)]
    return "\n".join(lines) + "\n"


def _md_line(cells: Sequence[str]) -> str:
    """A markdown table line; the ``|`` inside a combination name is escaped."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


_HEADER = ["rank", "combination", "metric", "val", "test", "gain", "seeds", "trials", "params", "time (s)", "pareto", "≈top",
           "≈majority"]


def print_table(rows: Sequence[Row], console: Any, balances: dict[str, dict[str, Any]] | None = None) -> None:
    """A rich table per task on ``console`` (a ``rich`` Console) with its class balance below it
    (``balances`` of :func:`leaderboard`), and the average ranks across several tasks."""
    from rich.table import Table

    if not rows:
        console.print("no completed trials yet: run [bold]mmbench search[/] first")
        return
    for task_name in sorted({r.task for r in rows}):
        table = Table(title=f"{task_name}", title_justify="left")
        for column in _HEADER:
            table.add_column(column, justify="left" if column in ("combination", "metric") else "right",
                             overflow="fold", min_width=30 if column == "combination" else None)
        for row in rows:
            if row.task == task_name:
                table.add_row(*_cells(row))
        console.print(table)
        for line in task_balance_lines(task_name, (balances or {}).get(task_name)):
            console.print(line, markup=False, highlight=False)
    if len({r.task for r in rows}) > 1:
        table = Table(title="average rank across tasks", title_justify="left")
        for column in ("combination", "average rank", "tasks"):
            table.add_column(column)
        for entry in average_ranks(rows):
            table.add_row(str(entry["combination"]), f"{entry['average_rank']:.2f}", str(entry["n_tasks"]))
        console.print(table)


def _cells(row: Row) -> list[str]:
    return [
        str(row.rank),
        row.combination,
        row.metric,
        _pm(row.val_score, row.val_std),
        _pm(row.test_score, row.test_std),
        "-" if row.fusion_gain is None else f"{row.fusion_gain:+.4f}",
        str(row.n_seeds) + (f" · {row.n_folds} folds" if row.n_folds else ""),
        str(row.n_trials),
        "-" if row.n_parameters is None else f"{row.n_parameters:,}",
        "-" if row.duration_s is None else f"{row.duration_s:.1f}",
        {None: "", True: "*", False: ""}[row.pareto],
        {None: "", True: "≈", False: ""}[row.within_noise],
        {None: "", True: "≈", False: ""}[row.majority],
    ]


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _mean(runs: list[Any], metric: str) -> float | None:
    values = [r.data.metrics[metric] for r in runs if metric in r.data.metrics]
    return statistics.fmean(values) if values else None


def _mean_int(runs: list[Any], metric: str) -> int | None:
    value = _mean(runs, metric)
    return None if value is None else int(round(value))


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf
