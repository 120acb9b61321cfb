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
