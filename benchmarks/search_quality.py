"""Quality vs budget: mmbench's default search (TPE + hyperband pruning) vs plain random search.

Both searches get the same number of trials, seed and space on one task (default ``av-digits``;
if its data or encoders are unavailable, ``synth-synergy``). For each, the best validation score
so far is read after every finished trial against the wall time since the search started; the
figure is the time each needs to reach a target validation score (default: 98 % of the best
score either search reached) and their ratio.

    python benchmarks/search_quality.py [TASK] [--n-trials 20] [--max-epochs N] [--target 0.9] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, quiet, temporary_stores, timed  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FALLBACK_TASK = "synth-synergy"


def usable_task(name: str, data_root: Path) -> tuple[str, str]:
    """``(task, note)``: ``name`` if its data loads, else the synthetic fallback."""
    from mmbench.tasks.loading import load_task_data
    from mmbench.errors import MmbenchError
    from mmbench.registry import get_registry
    from mmbench.tasks.files import resolve_task

    registry = get_registry()
    try:
        load_task_data(resolve_task(name, registry), registry, root=data_root)
    except MmbenchError as error:
        return FALLBACK_TASK, f"'{name}' unavailable ({error}); fell back to {FALLBACK_TASK}"
    return name, ""


def curve(storage: str, study_name: str) -> list[tuple[float, float]]:
    """``(seconds since the study's first trial started, best value so far)`` after each finished trial."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = [t for t in study.trials if t.datetime_complete is not None]
    if not trials:
        return []
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    best, points = float("-inf"), []
    for trial in sorted(trials, key=lambda t: t.datetime_complete):
        if trial.state.name == "COMPLETE" and trial.value is not None:
            best = max(best, trial.value)
        points.append(((trial.datetime_complete - start).total_seconds(), best))
    return points


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((seconds for seconds, best in points if best >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="av-digits")
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--target", type=float, default=None, help="validation score to reach (default: 98%% of the best)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("MMBENCH_DATA", DEFAULT_DATA)))
    args = parser.parse_args()
    quiet()
    from mmbench.search import SearchSettings, run_search

    task, note = usable_task(args.task, args.data_root)
    _, stores = temporary_stores("quality")
    common = dict(task=task, n_trials=args.n_trials, max_epochs=args.max_epochs, seed=args.seed, device=args.device,
                  data_root=args.data_root, plots=False, log_model=False, **stores)
    runs = {
        "default (TPE + hyperband)": SearchSettings.of(study="default", **common),
        "random (no pruning)": SearchSettings.of(study="random", sampler="random", pruner="none", **common),
    }
    results = {}
    for label, settings in runs.items():
        seconds, outcome = timed(lambda s=settings: run_search(s))
        results[label] = (seconds, outcome, curve(stores["storage"], settings.store.study))
    best = max(o.best_value for _, o, _ in results.values() if o.best_value is not None)
    target = args.target if args.target is not None else 0.98 * best
    print(f"machine: {machine()}")
    print(f"task: {task}{' - ' + note if note else ''}; {args.n_trials} trials each, seed {args.seed}; target val = {target:.4f}")
    reached = {}
    for label, (seconds, outcome, points) in results.items():
        reached[label] = time_to(points, target)
        when = f"{reached[label]:.1f} s" if reached[label] is not None else "not reached"
        print(f"{label:28s} total {seconds:7.1f} s  best val {outcome.best_value:.4f}  "
              f"({outcome.n_complete} complete, {outcome.n_trials - outcome.n_complete} pruned/failed)  time to target: {when}")
    default, random = reached["default (TPE + hyperband)"], reached["random (no pruning)"]
    if default is not None and random is not None:
        print(f"ratio  random / default time to target = {random / max(default, 1e-9):.2f}x")
    else:
        print("ratio  random / default time to target: undefined (a search did not reach the target)")


if __name__ == "__main__":
    main()
