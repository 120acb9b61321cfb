"""Progress outside a terminal: plain lines a CI log can show (start, epochs, end of each trial)."""

from __future__ import annotations

import io

from mmbench.search.progress import PlainReporter, QuietReporter, default_reporter


def test_plain_lines_follow_each_trial_from_start_to_end():
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.search_started("tiny", "study", 2, 0)
    reporter.trial_started(0, "early | x1=a", 3)
    reporter.epoch_finished(0, 1, 0.5)
    reporter.epoch_finished(0, 2, 0.75)
    reporter.trial_finished(0, "COMPLETE", 0.75, 0.75)
    reporter.trial_started(1, "late | x1=a", 3)
    reporter.trial_finished(1, "FAIL", None, 0.75, reason="loss became nan")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "search task=tiny study=study trials=0/2 already done"
    assert lines[1] == "trial #0 started [early | x1=a]"
    assert lines[2:4] == ["trial #0 epoch 1/3 val=0.5000", "trial #0 epoch 2/3 val=0.7500"]
    assert lines[4].startswith("trial 1/2 (#0) COMPLETE value=0.7500 best=0.7500") and lines[4].endswith("[early | x1=a]")
    assert lines[6].startswith("trial 2/2 (#1) FAIL value=- best=0.7500") and lines[6].endswith("reason: loss became nan")


def test_quiet_prints_nothing_and_a_pipe_gets_plain_lines():
    assert isinstance(default_reporter(True), QuietReporter) and not isinstance(default_reporter(True), PlainReporter)
    assert isinstance(default_reporter(False), PlainReporter)  # pytest's captured stderr is not a terminal


def test_the_best_value_reported_follows_the_metrics_direction():
    """The progress line's ``best=``: the lowest RMSE of a regression search, the highest accuracy otherwise."""
    from types import SimpleNamespace

    import optuna

    from mmbench.search.objective import Objective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for value in (64.4, 63.3, 74.3):
        study.add_trial(optuna.trial.create_trial(value=value))

    def best(metric: str, value: float | None) -> float | None:
        return Objective._best_value(SimpleNamespace(context=SimpleNamespace(task=SimpleNamespace(metric=metric))), study, value)

    assert best("rmse", None) == 63.3 and best("rmse", 61.0) == 61.0
    assert best("accuracy", None) == 74.3
