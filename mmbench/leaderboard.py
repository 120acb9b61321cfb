"""The leaderboard: a query over the trial runs in MLflow, ranked by validation metric.

Per task, each combination (fusion + encoder per modality) is represented by its best trial by
**validation** score; the test score stands beside it and never decides a rank. Across tasks,
each combination's average rank (MultiBench-style) over the tasks it was run on.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from mmbench.tracking import TAG, Tracker

FORMATS = ("table", "markdown", "csv", "json")


@dataclass
class Row:
    """One combination on one task."""

    task: str
    rank: int
    combination: str
    fusion: str
    metric: str
    val_score: float
    test_score: float | None
    n_trials: int
    n_parameters: int | None
    duration_s: float | None
    run_id: str


def leaderboard(tracker: Tracker, *, task: str | None = None, fusion: str | None = None, top: int | None = None) -> list[Row]:
    """Rows for every task (or one), ranked by validation score within each task."""
    experiments = tracker.task_experiments(task)
    if not experiments:
        return []
    runs = tracker.trial_runs(list(experiments), extra_filter=f"tags.`{TAG}state` = 'COMPLETE'")
    grouped: dict[tuple[str, str], list] = defaultdict(list)
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        if "val_score" not in metrics or (fusion and tags.get(f"{TAG}fusion") != fusion):
            continue
        grouped[(tags.get(f"{TAG}task", experiments.get(run.info.experiment_id, "?")), tags.get(f"{TAG}combination", "?"))].append(run)
    rows: list[Row] = []
    for (task_name, combination), group in grouped.items():
        best = max(group, key=lambda r: _finite(r.data.metrics["val_score"]))
        metrics, tags = best.data.metrics, best.data.tags
        rows.append(Row(
            task=task_name,
            rank=0,
            combination=combination,
            fusion=tags.get(f"{TAG}fusion", "?"),
            metric=tags.get(f"{TAG}metric", "?"),
            val_score=metrics["val_score"],
            test_score=metrics.get("test_score"),
            n_trials=len(group),
            n_parameters=int(metrics["n_parameters"]) if "n_parameters" in metrics else None,
            duration_s=metrics.get("duration_s"),
            run_id=best.info.run_id,
        ))
    rows.sort(key=lambda r: (r.task, -_finite(r.val_score), r.combination))
    ranked: list[Row] = []
    for task_name in sorted({r.task for r in rows}):
        task_rows = [r for r in rows if r.task == task_name]
        for position, row in enumerate(task_rows, start=1):
            row.rank = position
        ranked.extend(task_rows[:top] if top else task_rows)
    return ranked


def average_ranks(rows: Sequence[Row]) -> list[dict[str, object]]:
    """Per combination: mean rank over the tasks it appears in, and on how many tasks."""
    ranks: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        ranks[row.combination].append(row.rank)
    summary = [
        {"combination": c, "average_rank": sum(r) / len(r), "n_tasks": len(r)} for c, r in ranks.items()
    ]
    return sorted(summary, key=lambda s: (s["average_rank"], -s["n_tasks"], s["combination"]))


def render(rows: Sequence[Row], fmt: str) -> str:
    """The rows as ``markdown``, ``csv`` or ``json`` text (``table`` is printed by :func:`print_table`)."""
    if fmt == "json":
        return json.dumps({"rows": [asdict(r) for r in rows], "average_ranks": average_ranks(rows)}, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
        return out.getvalue()
    header = ["task", "rank", "combination", "metric", "val", "test", "trials", "params", "time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines) + "\n"


def print_table(rows: Sequence[Row]) -> None:
    """A rich table per task plus the average-rank table when several tasks are shown."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no completed trials yet: run [bold]mmbench search[/] first")
        return
    for task_name in sorted({r.task for r in rows}):
        table = Table(title=f"{task_name}", title_justify="left")
        for column in ("rank", "combination", "metric", "val", "test", "trials", "params", "time (s)"):
            table.add_column(column, justify="left" if column in ("combination", "metric") else "right",
                             overflow="fold", min_width=30 if column == "combination" else None)
        for row in rows:
            if row.task == task_name:
                table.add_row(*_cells(row)[1:])
        console.print(table)
    if len({r.task for r in rows}) > 1:
        table = Table(title="average rank across tasks", title_justify="left")
        for column in ("combination", "average rank", "tasks"):
            table.add_column(column)
        for entry in average_ranks(rows):
            table.add_row(str(entry["combination"]), f"{entry['average_rank']:.2f}", str(entry["n_tasks"]))
        console.print(table)


def _cells(row: Row) -> list[str]:
    return [
        row.task,
        str(row.rank),
        row.combination,
        row.metric,
        f"{row.val_score:.4f}",
        "-" if row.test_score is None else f"{row.test_score:.4f}",
        str(row.n_trials),
        "-" if row.n_parameters is None else f"{row.n_parameters:,}",
        "-" if row.duration_s is None else f"{row.duration_s:.1f}",
    ]


def _finite(value: float) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf
