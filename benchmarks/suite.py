"""Reference results of a benchmark suite: writes ``docs/results.md`` (never edit that file by hand).

For every task of the suite (default ``core``) the script runs, through mmbench's own search:

* one search per **modality alone** (the task restricted by :func:`mmbench.tasks.suites.unimodal_task`,
  ``early`` head on the one encoder), and
* one search per **fusion family** (the search's ``fusion`` choice restricted to the family),

each with ``--n-trials`` trials, then retrains the best configuration of each search with
``--seeds`` seeds in all (:func:`mmbench.runs.evaluation.seeds.rerun_seeds`). Selection is by
validation score; the test metric is reported as mean ± std over the seeds. The markdown
holds, per task: the best unimodal model, the best of each fusion family, the gap between the
best fusion and the best unimodal model, and the task's wall time; then each family's average
rank across tasks. Date, machine, command and budget are written beside the figures.

    python benchmarks/suite.py [--suite core] [--data-root ../shared/data] [--n-trials 1] [--seeds 3]
                               [--max-epochs N] [--tasks a,b] [--workdir DIR] [--output docs/results.md]

A ``--workdir`` keeps the Optuna/MLflow stores: rerunning with the same one resumes (finished
trials and seed reruns are not repeated), so an interrupted run loses at most one training.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, peers_section, quiet, temporary_stores

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

#: fusion families (MultiBench-style grouping); fusions of other plugins go to "other"
FAMILIES: dict[str, tuple[str, ...]] = {
    "concatenation": ("early",),
    "decision-level": ("late", "hybrid"),
    "multiplicative": ("tfn", "lmf", "bilinear"),
    "gating & attention": ("gmu", "film", "cross_attention"),
}
#: training settings fixed for every search of the benchmark, so a one-trial search compares
#: architectures, not learning-rate luck (stated in the output)
FIXED: dict[str, Any] = {"train.lr": 3e-3, "train.batch_size": 64, "train.weight_decay": 1e-5}
MULTIMODAL_FIXED: dict[str, Any] = {"train.aux": "none"}


@dataclass
class Arm:
    """One search of a task: a modality alone or a fusion family; its best configuration over seeds."""

    task: str
    label: str
    unimodal: bool
    combination: str = "-"
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def val_mean(self) -> float:
        return statistics.fmean(self.val) if self.val else float("-inf")

    def cell(self, values: list[float]) -> str:
        if not values:
            return "-"
        mean = statistics.fmean(values)
        return f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="core")
    parser.add_argument("--tasks", default=None, help="comma-separated subset of the suite's tasks")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n-trials", type=int, default=1, help="trials per search (one search per modality and per family)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each search's best configuration")
    parser.add_argument("--max-epochs", type=int, default=None, help="epochs per training (default: each task's)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="fusion families to run")
    parser.add_argument("--exclude-encoders", default="text.transformer",
                        help="encoders left out of every search (default: text.transformer, ~35 s per epoch from scratch "
                             "on 2 CPU cores, which alone would take most of the budget)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: on a shared, loaded CPU more threads only add contention)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep (and resume from) the stores here")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results.md")
    return parser.parse_args(argv)


def allowed_encoders(task: Any, modalities: dict[str, Any], registry: Any, excluded: set[str]) -> dict[str, list[str]]:
    """Modality -> the encoders the task's own search would use, less ``excluded`` (never emptied)."""
    restrictions = dict(task.search.get("encoders") or {})
    allowed = {}
    for name, info in modalities.items():
        names = restrictions.get(name) or restrictions.get(info.kind) or [
            e for e in registry.list_encoders(modality=info.kind) if registry.get_encoder(e).unavailable_reason() is None]
        allowed[name] = [e for e in names if e not in excluded] or list(names)
    return allowed


def run_arm(arm: Arm, task_ref: str, fusions: list[str], fixed: dict[str, Any], args: argparse.Namespace,
            stores: dict[str, str], registry: Any, encoders: dict[str, list[str]] | None = None) -> Arm:
    """Search (``args.n_trials`` trials), then seed reruns of the best configuration; fills ``arm``."""
    from mmbench.runs.evaluation.seeds import rerun_seeds, top_runs
    from mmbench.search import SearchSettings, run_search
    from mmbench.tracking.tracker import TAG, Tracker

    started = time.perf_counter()
    settings = SearchSettings.of(
        task=task_ref, study=f"{arm.task}:{arm.label}".replace(" ", "-"), n_trials=args.n_trials, seed=0, device=args.device,
        data_root=args.data_root, fusions=fusions, encoders=encoders, fixed=fixed, max_epochs=args.max_epochs, pruner="none",
        plots=False, log_model=False, **stores,
    )
    outcome = run_search(settings, registry=registry)
    tracker = Tracker(stores["tracking_uri"])
    rerun_seeds(tracker, outcome.experiment_id, outcome.study, registry, n_seeds=args.seeds, top_k=1,
                data_root=args.data_root, device=args.device)
    best = top_runs(tracker, outcome.experiment_id, outcome.study, 1)
    if best:
        run = best[0]
        seeds = tracker.trial_runs([outcome.experiment_id], extra_filter=f"tags.`{TAG}derived_from` = '{run.info.run_id}'")
        runs = [run, *[r for r in seeds if r.data.tags.get(f"{TAG}kind") == "seed"]][: args.seeds]
        arm.combination = run.data.tags.get(f"{TAG}combination", "?")
        arm.val = [r.data.metrics["val_score"] for r in runs]
        arm.test = [r.data.metrics["test_score"] for r in runs if "test_score" in r.data.metrics]
    arm.seconds = time.perf_counter() - started
    return arm


def run_task(name: str, args: argparse.Namespace, stores: dict[str, str], folder: Path, registry: Any) -> tuple[list[Arm], float, Any]:
    """Every arm of one task; returns the arms, the task's wall seconds and the task."""
    import yaml

    from mmbench.tasks.loading import load_task_data
    from mmbench.tasks.suites import unimodal_task
    from mmbench.tasks.files import resolve_task

    started = time.perf_counter()
    task = resolve_task(name, registry)
    schema = load_task_data(task, registry, root=args.data_root).schema
    excluded = {e.strip() for e in args.exclude_encoders.split(",") if e.strip()}
    arms = []
    for modality in schema.modalities:
        only = unimodal_task(task, modality, schema)
        path = folder / "tasks" / f"{only.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(dict(only.raw), sort_keys=False))
        print(f"[{name}] {modality} alone", flush=True)
        kept = schema.modalities[modality]
        # keyed by kind: the restricted task may name its one modality after its kind
        encoders = {kept.kind: allowed_encoders(task, {modality: kept}, registry, excluded)[modality]}
        arms.append(run_arm(Arm(name, f"{modality} alone", True), str(path), ["early"], dict(FIXED), args, stores, registry,
                            encoders))
    n_modalities = len(schema.modalities)
    for family in args.families.split(","):
        members = [f for f in FAMILIES[family] if f in registry.list_fusions()
                   and registry.get_fusion(f).min_modalities <= n_modalities]
        if members:
            print(f"[{name}] {family}: {', '.join(members)}", flush=True)
            arms.append(run_arm(Arm(name, family, False), name, members, {**FIXED, **MULTIMODAL_FIXED}, args, stores, registry,
                                allowed_encoders(task, schema.modalities, registry, excluded)))
    return arms, time.perf_counter() - started, task


def markdown(results: list[tuple[list[Arm], float, Any]], args: argparse.Namespace, command: str, total: float) -> str:
    """The results page."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    epochs = f"{args.max_epochs} epochs per training" if args.max_epochs else "each task's own epochs (search.max_epochs)"
    fixed = ", ".join(f"`{k}={v}`" for k, v in {**FIXED, **MULTIMODAL_FIXED}.items())
    lines = [
        f"# Reference results: suite `{args.suite}`",
        "",
        "Generated by `benchmarks/suite.py`; do not edit by hand (rerun the command below).",
        "",
        f"- date: {now}",
        f"- machine: {machine()}; torch threads: {args.threads}; the CPU was shared with other jobs, so wall times are upper bounds",
        f"- command: `{command}`",
        (f"- budget: per task, one search per modality alone (`early` head) and one per fusion family, "
         f"{args.n_trials} trial(s) each, {epochs}, fixed {fixed} (the search picks the fusion within the family, "
         f"the encoders and their hyperparameters; left out: {args.exclude_encoders or 'nothing'}); "
         f"the best configuration of each search retrained with "
         f"{args.seeds} seeds. Selection by validation score; **test** metric shown as mean ± std over the seeds."),
        f"- total wall time: {total / 60:.1f} min",
        "",
        "Families: " + "; ".join(f"**{f}** ({', '.join(m)})" for f, m in FAMILIES.items()) + ".",
        "",
    ]
    ranks: dict[str, list[int]] = {}
    for arms, seconds, task in results:
        lines += [f"## {task.name}", "", f"{task.description}", "",
                  f"metric: {task.metric}; wall time: {seconds / 60:.1f} min", "",
                  "| model | best combination | validation | test | seeds |", "|---|---|---|---|---|"]
        unimodal = [a for a in arms if a.unimodal and a.val]
        fused = [a for a in arms if not a.unimodal and a.val]
        top_uni = max(unimodal, key=lambda a: a.val_mean, default=None)
        for arm in sorted(arms, key=lambda a: (not a.unimodal, -a.val_mean)):
            name = f"{arm.label}{' (best unimodal)' if arm is top_uni else ''}"
            combination = arm.combination.replace("|", "\\|")  # a markdown table cell
            lines.append(f"| {name} | `{combination}` | {arm.cell(arm.val)} | {arm.cell(arm.test)} | {len(arm.val)} |")
        if top_uni and fused:
            top_fused = max(fused, key=lambda a: a.val_mean)
            gap = 100 * (statistics.fmean(top_fused.test) - statistics.fmean(top_uni.test))
            gap_val = 100 * (top_fused.val_mean - top_uni.val_mean)
            lines += ["", (f"Best fusion (**{top_fused.label}**) minus best unimodal model (**{top_uni.label}**): "
                           f"**{gap:+.1f}** test points ({gap_val:+.1f} validation points).")]
        for position, arm in enumerate(sorted(fused, key=lambda a: -a.val_mean), start=1):
            ranks.setdefault(arm.label, []).append(position)
        lines.append("")
    if len(results) > 1 and ranks:
        lines += ["## Average rank of the fusion families across tasks", "",
                  "Rank within each task by mean validation score (1 = best), averaged over the tasks (MultiBench-style).", "",
                  "| family | average rank | tasks |", "|---|---|---|"]
        for family, values in sorted(ranks.items(), key=lambda kv: (statistics.fmean(kv[1]), kv[0])):
            lines.append(f"| {family} | {statistics.fmean(values):.2f} | {len(values)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet()
    from mmbench.registry import get_registry
    from mmbench.search.optuna_logs import quiet_libraries
    from mmbench.tasks.suites import select_suite

    quiet_libraries()
    import torch

    torch.set_num_threads(args.threads)
    registry = get_registry()
    unknown = [f for f in args.families.split(",") if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"unknown families {unknown}; available: {', '.join(FAMILIES)}")
    names = select_suite(args.suite, registry, args.data_root)  # data checked before any work
    if args.tasks:
        wanted = args.tasks.split(",")
        names = [n for n in names if n in wanted]
    if args.workdir:
        folder = args.workdir
        folder.mkdir(parents=True, exist_ok=True)
        stores = {"storage": f"sqlite:///{folder / 'optuna.db'}", "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"}
    else:
        folder, stores = temporary_stores("suite")
    command = "python benchmarks/suite.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = time.perf_counter()
    peers = peers_section(args.output)  # vs_peers.py's section of the page stays
    results = []
    for name in names:
        results.append(run_task(name, args, stores, folder, registry))
        # written after every task, so a long run shows its progress (and a crash keeps what was done)
        text = markdown(results, args, command, time.perf_counter() - started)
        args.output.write_text(text + ("\n" + peers if peers else ""), encoding="utf-8")
        print(f"[{name}] done in {results[-1][1] / 60:.1f} min; wrote {args.output}", flush=True)
    print(f"total {(time.perf_counter() - started) / 60:.1f} min; stores in {folder}")


if __name__ == "__main__":
    main()
