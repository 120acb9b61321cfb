"""How well does ensemble selection generalise from a small validation split? Replays recorded searches.

Ensemble selection (:mod:`mmbench.search.ensemble`) picks members and weights on validation
predictions; with a few hundred validation rows and a dozen candidates it can fit the noise of
those rows. This script measures that on the stored predictions of finished searches (no model is
retrained): the validation and test rows of every candidate are pooled, then redrawn many times
into a selection part (as many rows as validation had) and an evaluation part (the rest). On each
draw every strategy selects on the selection part only and is scored on the evaluation part; the
table gives each strategy's mean evaluation score (and its standard error over the draws) beside
the best single candidate chosen on the same selection rows, which is what a leaderboard ranked by
validation would pick without an ensemble.

Usage (stores of earlier searches, e.g. the ones ``vs_peers.py`` prints)::

    python benchmarks/ensemble_selection.py --store sqlite:////tmp/mmbench-bench-peers-petfinder-XXXX/mlflow.db \
        [--store ...] --task petfinder [--draws 40]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet  # noqa: E402


#: Bootstrap draws of the selection rows for the bagged strategies.
BAGS = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", action="append", required=True, help="MLflow tracking URI of a finished search (repeatable).")
    parser.add_argument("--task", required=True)
    parser.add_argument("--draws", type=int, default=40, help="Random redraws of the selection rows per store.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def strategies(metric: str, n_classes: int) -> dict[str, Callable[[list[Any], Any, int], tuple[float, ...]]]:
    """Name -> ``select(val_probas, val_labels, seed)`` returning one weight per candidate."""
    import numpy as np

    from mmbench.search.ensemble import best_single, cross_checked_selection, log_likelihood, metric_score, select_ensemble

    score = metric_score(metric, n_classes)

    def single(probas: list[Any], labels: Any, seed: int) -> tuple[float, ...]:
        return best_single(probas, labels, score=score).weights

    def by_metric(probas: list[Any], labels: Any, seed: int) -> tuple[float, ...]:
        return select_ensemble(probas, labels, score=score, seed=seed).weights

    def by_log_likelihood(probas: list[Any], labels: Any, seed: int) -> tuple[float, ...]:
        return select_ensemble(probas, labels, score=log_likelihood, seed=seed).weights

    def bagged(probas: list[Any], labels: Any, seed: int) -> tuple[float, ...]:
        """Selection on bootstrap draws of the selection rows, weights averaged (Caruana et al. 2004)."""
        rng = np.random.default_rng(seed)
        total = np.zeros(len(probas))
        for _ in range(BAGS):
            rows = rng.integers(0, len(labels), len(labels))
            total += by_log_likelihood([p[rows] for p in probas], labels[rows], seed)
        return tuple(total / total.sum())

    def cross_checked(**options: Any) -> Callable[[list[Any], Any, int], tuple[float, ...]]:
        def select(probas: list[Any], labels: Any, seed: int) -> tuple[float, ...]:
            return cross_checked_selection(probas, labels, metric=score, seed=seed, **options).selection.weights
        return select

    return {"best single candidate": single,
            "cross-checked, one-standard-error rule, 5 folds x 2 (mmbench since 2026-12-04, second session)": cross_checked(),
            "cross-checked, best mean, 5 folds x 2": cross_checked(one_standard_error=False),
            "greedy on log likelihood (mmbench 2026-12-04, first session)": by_log_likelihood,
            f"greedy on {metric} (mmbench before)": by_metric, f"greedy on log likelihood, bagged ({BAGS} bootstraps)": bagged}



def replay(members: list[Any], metric: str, draws: int, seed: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per strategy, its evaluation score on each draw, and that of the leaderboard's best row (the
    ensemble or the best single candidate, whichever scores higher on the selection rows)."""
    import numpy as np

    from mmbench.search.ensemble import combine, metric_score

    first = members[0].predictions
    probas = [np.concatenate([m.predictions.val_proba, m.predictions.test_proba]) for m in members]
    labels = np.concatenate([first.val_labels, first.test_labels])
    n_classes, n_select = probas[0].shape[1], len(first.val_labels)
    score = metric_score(metric, n_classes)
    chosen = strategies(metric, n_classes)
    found: dict[str, list[float]] = {name: [] for name in chosen}
    board: dict[str, list[float]] = {name: [] for name in chosen}
    rng = np.random.default_rng(seed)
    for draw in range(draws):
        order = rng.permutation(len(labels))
        select, evaluate = order[:n_select], order[n_select:]
        single = max(probas, key=lambda p: score(labels[select], p[select]))
        for name, strategy in chosen.items():
            weights = strategy([p[select] for p in probas], labels[select], draw)
            found[name].append(score(labels[evaluate], combine([p[evaluate] for p in probas], weights)))
            # the leaderboard ranks the ensemble beside its candidates by the selection rows' score
            wins = score(labels[select], combine([p[select] for p in probas], weights)) >= score(labels[select], single[select])
            board[name].append(found[name][-1] if wins else score(labels[evaluate], single[evaluate]))
    return found, board


def on_recorded_split(members: list[Any], metric: str, seed: int) -> dict[str, float]:
    """Per strategy, the test score of what it selects on the search's own validation rows: one draw,
    the one a search reports (noisy: a few hundred test rows)."""
    from mmbench.search.ensemble import combine, metric_score

    first = members[0].predictions
    score = metric_score(metric, first.val_proba.shape[1])
    chosen = strategies(metric, first.val_proba.shape[1])
    return {name: score(first.test_labels, combine([m.predictions.test_proba for m in members],
                                                    strategy([m.predictions.val_proba for m in members], first.val_labels, seed)))
            for name, strategy in chosen.items()}


def main(argv: list[str] | None = None) -> None:
    import numpy as np

    from mmbench.search.ensemble_stage import gather_members
    from mmbench.tracking.tracker import Tracker

    args = parse_args(argv)
    quiet()
    for uri in args.store:
        tracker = Tracker(uri)
        experiments = list(tracker.task_experiments(args.task))
        members = [m for experiment in experiments for m in gather_members(tracker, experiment)]
        metric = tracker.client.get_run(members[0].run_id).data.tags.get("mmbench.metric", "accuracy")
        print(f"\n{uri}: {len(members)} candidates ({', '.join(sorted({m.combination for m in members}))}), "
              f"{len(members[0].predictions.val_labels)} selection rows, {args.draws} draws, metric {metric}")
        results, board = replay(members, metric, args.draws, args.seed)
        recorded = on_recorded_split(members, metric, args.seed)
        print(f"| strategy | mean evaluation {metric} (std error) | leaderboard's best row: mean evaluation {metric} "
              f"| test {metric}, selected on the recorded validation split |\n|---|---|---|---|")
        for name, values in results.items():
            print(f"| {name} | {np.mean(values):.4f} ({np.std(values) / np.sqrt(len(values)):.4f}) | {np.mean(board[name]):.4f} "
                  f"| {recorded[name]:.4f} |")


if __name__ == "__main__":
    main()
