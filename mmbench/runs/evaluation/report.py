"""``mmbench report --task T``: one self-contained HTML page per task.

Sections: leaderboard (mean ± std over seeds, fusion gain over the best unimodal baseline,
rows within noise of the top), robustness curves, efficiency scatter with its Pareto front
(validation score against batched latency) and modality contributions. Everything is read
from the tracking store (the report is a query, like the leaderboard); figures are PNGs
embedded as base64 and the CSS is inline, so the file can be mailed or opened offline. The
page is also logged on the task's latest study run (``report/report.html``).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    from mmbench.tracking.leaderboard import Row

#: section ids, in page order (tests check each is present)
SECTIONS = ("leaderboard", "robustness", "efficiency", "contributions")
REPORT_ARTIFACT_DIR = "report"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #4c72b0;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.85rem;width:100%}th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:right}
th{background:#f0f3f8}td.l,th.l{text-align:left}tr.noise td{background:#fffbe6}.muted{color:#777}
figure{display:inline-block;margin:.5rem 1rem .5rem 0;vertical-align:top}figcaption{font-size:.8rem;color:#555;max-width:520px}
img{max-width:520px;border:1px solid #eee}.empty{color:#777;font-style:italic}
"""


def _figure_png(figure: Any) -> str:
    from mmbench.tracking.artifacts import _pyplot

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    _pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(encoded: str, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fmt(value: float | None, digits: int = 4, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pm(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else (_fmt(mean) if std is None else f"{mean:.4f} ± {std:.4f}")


def leaderboard_section(rows: list[Row], latency: dict[str, float] | None = None) -> str:
    """The task's leaderboard as an HTML table (``latency``: run id -> batched ms per example)."""
    latency = latency or {}
    if not rows:
        return '<p class="empty">No completed trials: run <code>mmbench search</code> first.</p>'
    head = ["rank", "combination", "val", "test", "gain vs unimodal", "seeds", "trials", "params", "latency ms", "≈ top"]
    lines = ["<table><tr>" + "".join(f'<th class="{"l" if h == "combination" else ""}">{h}</th>' for h in head) + "</tr>"]
    for row in rows:
        cells = [str(row.rank), html.escape(row.combination), _pm(row.val_score, row.val_std), _pm(row.test_score, row.test_std),
                 _fmt(row.fusion_gain, signed=True), str(row.n_seeds), str(row.n_trials),
                 "-" if row.n_parameters is None else f"{row.n_parameters:,}", _fmt(latency.get(row.run_id, row.latency_ms), 3),
                 {None: "", True: "≈", False: ""}[row.within_noise]]
        css = ' class="noise"' if row.within_noise else ""
        lines.append(f"<tr{css}>" + "".join(f'<td class="{"l" if i == 1 else ""}">{c}</td>' for i, c in enumerate(cells)) + "</tr>")
    lines.append("</table>")
    metric = rows[0].metric
    lines.append(f'<p class="muted">Ranked by validation {html.escape(metric)} (mean over seeds); test beside it. '
                 "Gain: validation score minus the best unimodal baseline (<code>--baselines</code>). "
                 "≈: within noise of the top row (difference under 2 standard errors, <code>--seeds</code>).</p>")
    return "\n".join(lines)


def _evaluated(tracker: Tracker, runs: list[Any], name: str) -> list[tuple[Any, dict[str, Any]]]:
    from mmbench.runs.reproduce import read_artifact

    found = []
    for run in runs:
        if run.data.tags.get(f"{TAG}evaluated.{name}") != "true":
            continue
        text = read_artifact(tracker, run.info.run_id, f"evaluation/{name}.json")
        if text is not None:  # an artifact store that lost the file: skip the run, keep the report
            found.append((run, json.loads(text)))
    return found


def _run_figure(run: Any, draw: Callable[..., Any], report: Any) -> str:
    """One evaluated run's figure, titled and captioned with its combination and run id."""
    combination = run.data.tags.get(f"{TAG}combination", run.info.run_id)
    return _img(_figure_png(draw(report, title=combination[:60])), f"{combination} (run {run.info.run_id[:8]})")


def robustness_section(tracker: Tracker, runs: list[Any]) -> str:
    """Noise curves and a missing-modality table for every run evaluated with ``--robustness``."""
    from mmbench.runs.evaluation.robustness import RobustnessReport, robustness_figure

    found = _evaluated(tracker, runs, "robustness")
    if not found:
        return '<p class="empty">No robustness evaluation yet: run <code>mmbench search --robustness</code> or <code>mmbench evaluate RUN_ID --robustness</code>.</p>'
    parts = []
    for run, content in found:
        fields = {k: v for k, v in content.items() if k not in ("relative", "effective")}
        report = RobustnessReport(**fields)
        parts.append(_run_figure(run, robustness_figure, report))
        header = "".join(f"<th>{html.escape(m)}</th>" for m in report.missing)
        missing = "".join(f"<td>{_fmt(v)}</td>" for v in report.missing.values())
        relative = "".join(f"<td>{_fmt(report.relative.get(m))}</td>" for m in report.missing)
        effective = "".join(f"<td>{_fmt(report.effective.get(m))}</td>" for m in report.missing)
        parts.append(
            f'<table><tr><th class="l">{html.escape(report.split)} {html.escape(report.metric)}: clean {_fmt(report.clean)}, '
            f"all removed {_fmt(report.floor)}</th>{header}</tr>"
            f'<tr><td class="l">modality removed</td>{missing}</tr>'
            f'<tr><td class="l">relative robustness (noise)</td>{relative}</tr>'
            f'<tr><td class="l">effective robustness (noise)</td>{effective}</tr></table>'
        )
    return "\n".join(parts)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (cost down, score up), sorted by cost.

    Example:
        >>> pareto_front([(1.0, 0.8), (2.0, 0.9), (3.0, 0.85), (0.5, 0.5)])
        [3, 0, 1]
    """
    front = [
        i for i, (cost, score) in enumerate(points)
        if not any(c <= cost and s >= score and (c < cost or s > score) for c, s in points)
    ]
    return sorted(front, key=lambda i: points[i][0])


def efficiency_section(runs: list[Any]) -> str:
    """Validation score against batched latency per finished trial, Pareto front drawn."""
    from mmbench.tracking.artifacts import _pyplot

    points, labels, plotted = [], [], []
    for run in runs:
        metrics = run.data.metrics
        cost = metrics.get("latency_ms_batched", metrics.get("latency_ms"))
        if cost is not None and "val_score" in metrics:
            points.append((cost, metrics["val_score"]))
            labels.append(run.data.tags.get(f"{TAG}fusion", "?"))
            plotted.append(run)
    if not points:
        return '<p class="empty">No trial recorded its latency yet (metric <code>latency_ms_batched</code>).</p>'
    front = pareto_front(points)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4))
    for fusion in sorted(set(labels)):
        chosen = [p for p, label in zip(points, labels) if label == fusion]
        axis.scatter([p[0] for p in chosen], [p[1] for p in chosen], label=fusion, alpha=0.75)
    axis.plot([points[i][0] for i in front], [points[i][1] for i in front], color="black", linewidth=1, drawstyle="steps-post",
              label="Pareto front")
    axis.set_xscale("log")
    axis.set_xlabel("inference latency, ms per example (batched)")
    axis.set_ylabel("validation score")
    axis.legend(fontsize=7)
    figure.tight_layout()
    rows = "".join(
        f'<tr><td class="l">{html.escape(plotted[i].data.tags.get(f"{TAG}combination", "?"))}</td>'
        f"<td>{points[i][1]:.4f}</td><td>{points[i][0]:.3f}</td></tr>"
        for i in front
    )
    table = f'<table><tr><th class="l">on the Pareto front</th><th>val</th><th>latency ms</th></tr>{rows}</table>'
    return _img(_figure_png(figure), f"{len(points)} finished trials; black: Pareto front") + table


def contributions_section(tracker: Tracker, runs: list[Any]) -> str:
    """Shapley and ablation bars for every run evaluated with contributions."""
    from mmbench.runs.evaluation.contributions import ContributionReport, contributions_figure

    found = _evaluated(tracker, runs, "contributions")
    if not found:
        return '<p class="empty">No contribution analysis yet: run <code>mmbench search --robustness</code> or <code>mmbench evaluate RUN_ID --contributions</code>.</p>'
    parts = []
    for run, content in found:
        report = ContributionReport(**content)
        parts.append(_run_figure(run, contributions_figure, report))
        cells = "".join(f"<tr><td class='l'>{html.escape(m)}</td><td>{_fmt((report.shapley or {}).get(m))}</td>"
                        f"<td>{report.share[m]:.1f} %</td><td>{_fmt(report.ablation[m])}</td></tr>" for m in report.ablation)
        parts.append(f"<table><tr><th class='l'>modality</th><th>Shapley</th><th>share</th><th>ablation drop</th></tr>{cells}</table>")
    return "\n".join(parts)


def build_report(tracker: Tracker, task: str) -> str:
    """The HTML page of one task.

    Raises:
        TrackingError: no runs of ``task`` in the store.
    """
    from mmbench.tracking.leaderboard import leaderboard

    experiments = tracker.task_experiments(task)
    rows = leaderboard(tracker, task=task)
    runs = tracker.trial_runs(list(experiments), extra_filter=f"tags.`{TAG}state` = 'COMPLETE'")
    runs.sort(key=lambda r: -r.data.metrics.get("val_score", float("-inf")))
    bodies = {
        "leaderboard": ("Leaderboard", leaderboard_section(rows, {
            r.info.run_id: r.data.metrics["latency_ms_batched"] for r in runs if "latency_ms_batched" in r.data.metrics})),
        "robustness": ("Robustness: missing and noisy modalities", robustness_section(tracker, runs)),
        "efficiency": ("Efficiency: score against cost", efficiency_section(runs)),
        "contributions": ("Modality contributions", contributions_section(tracker, runs)),
    }
    sections = "\n".join(f'<section id="{key}"><h2>{title}</h2>\n{body}\n</section>' for key, (title, body) in bodies.items())
    title = f"mmbench report: {html.escape(task)}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}</style></head>'
            f'<body><h1>{title}</h1><p class="muted">{len(runs)} finished trial runs, {len(rows)} combinations.</p>\n'
            f"{sections}\n</body></html>\n")


def write_report(tracker: Tracker, task: str, output: str | Path | None = None) -> Path:
    """Write the page (default ``report-<task>.html``) and log it on the task's latest study run."""
    page = build_report(tracker, task)
    path = Path(output or f"report-{task}.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    experiments = list(tracker.task_experiments(task))
    studies = tracker.search_runs(experiments, filter_string=f"tags.`{TAG}role` = 'study'",
                                         order_by=["attributes.start_time DESC"], max_results=1)
    if studies:
        tracker.log_artifact(studies[0].info.run_id, str(path), REPORT_ARTIFACT_DIR)
    return path
