"""Search progress for people: a rich live display on a terminal, plain lines in logs.

A reporter receives the search's events; the search never prints directly, so ``--quiet``,
CI logs and embedding applications all get what suits them.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Protocol, TextIO


class Reporter(Protocol):
    """Receives search events (all methods are notifications; none may raise)."""

    def search_started(self, task: str, study: str, n_trials: int, n_done: int) -> None: ...
    def trial_started(self, number: int, combination: str, max_epochs: int) -> None: ...
    def epoch_finished(self, number: int, epoch: int, value: float) -> None: ...
    def trial_finished(self, number: int, state: str, value: float | None, best: float | None, reason: str | None = None) -> None: ...
    def search_finished(self) -> None: ...
    def note(self, text: str) -> None: ...  # one line for the user: a data summary, a stage skipped or cut short
    # optional (the search checks with hasattr): search_budget(deadline) - the --time-limit's time.monotonic() deadline


class QuietReporter:
    """Reports nothing (``--quiet``)."""

    def search_started(self, task: str, study: str, n_trials: int, n_done: int) -> None:
        pass

    def trial_started(self, number: int, combination: str, max_epochs: int) -> None:
        pass

    def epoch_finished(self, number: int, epoch: int, value: float) -> None:
        pass

    def trial_finished(self, number: int, state: str, value: float | None, best: float | None, reason: str | None = None) -> None:
        pass

    def search_finished(self) -> None:
        pass

    def search_budget(self, deadline: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class PlainReporter(QuietReporter):
    """Plain lines for CI logs and pipes, where live bars would be noise: a trial's start, each
    epoch's validation score, and its end (``trial n/N``, state, value, best so far, elapsed,
    combination)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.n_trials = 0
        self.n_finished = 0
        self.started = time.monotonic()
        self.running: dict[int, tuple[str, int]] = {}  # trial number -> (combination, max epochs)
        self.deadline: float | None = None  # --time-limit: the budget decides what remains
        self._lock = threading.Lock()

    def search_started(self, task: str, study: str, n_trials: int, n_done: int) -> None:
        self.n_trials, self.n_finished = n_trials, n_done
        self.started = time.monotonic()
        self._print(f"search task={task} study={study} trials={n_done}/{n_trials or '-'} already done")

    def search_budget(self, deadline: float) -> None:
        self.deadline = deadline

    def note(self, text: str) -> None:
        self._print(f"note: {text}")

    def trial_started(self, number: int, combination: str, max_epochs: int) -> None:
        with self._lock:
            self.running[number] = (combination, max_epochs)
        self._print(f"trial #{number} started [{combination}]")

    def epoch_finished(self, number: int, epoch: int, value: float) -> None:
        """A line per epoch: trials on real data take minutes, and a silent log looks hung."""
        _, max_epochs = self.running.get(number, ("", "?"))
        self._print(f"trial #{number} epoch {epoch}/{max_epochs} val={_fmt(value)}")

    def trial_finished(self, number: int, state: str, value: float | None, best: float | None, reason: str | None = None) -> None:
        with self._lock:
            self.n_finished += 1
            combination, _ = self.running.pop(number, ("", 0))
        elapsed = time.monotonic() - self.started
        if self.deadline is not None:
            remaining = f"{max(0.0, self.deadline - time.monotonic()):.0f}s (time limit)"
        else:
            remaining = _remaining(elapsed, self.n_finished, self.n_trials)
        line = (f"trial {self.n_finished}/{self.n_trials or '-'} (#{number}) {state} value={_fmt(value)} best={_fmt(best)} "
                f"elapsed={elapsed:.0f}s remaining~{remaining} [{combination}]")
        if reason:
            line += f" reason: {reason}"
        self._print(line)

    def _print(self, line: str) -> None:
        with self._lock:
            print(line, file=self.stream, flush=True)


class RichReporter(QuietReporter):
    """Live bars on a terminal: trials n/N with best so far, elapsed and remaining time, and one
    epoch bar per running trial named by its combination."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.trials_bar: Any = None
        self.task = ""
        self.epoch_bars: dict[int, Any] = {}
        self._lock = threading.Lock()

    def search_started(self, task: str, study: str, n_trials: int, n_done: int) -> None:
        self.task = task
        self.progress.start()
        self.trials_bar = self.progress.add_task(self._title(None), total=n_trials or None, completed=n_done)

    def note(self, text: str) -> None:
        self.progress.console.print(f"note: {text}")

    def trial_started(self, number: int, combination: str, max_epochs: int) -> None:
        with self._lock:
            self.epoch_bars[number] = self.progress.add_task(f"  trial {number}: {combination} epochs", total=max_epochs)

    def epoch_finished(self, number: int, epoch: int, value: float) -> None:
        with self._lock:
            bar = self.epoch_bars.get(number)
        if bar is not None:
            self.progress.update(bar, completed=epoch)

    def trial_finished(self, number: int, state: str, value: float | None, best: float | None, reason: str | None = None) -> None:
        with self._lock:
            bar = self.epoch_bars.pop(number, None)
        if bar is not None:
            self.progress.remove_task(bar)
        colour = {"COMPLETE": "green", "PRUNED": "yellow"}.get(state, "red")
        message = f"trial {number} [{colour}]{state}[/] value={_fmt(value)}"
        if reason:
            message += f" ({reason})"
        self.progress.console.print(message)
        if self.trials_bar is not None:
            self.progress.update(self.trials_bar, advance=1, description=self._title(best))

    def _title(self, best: float | None) -> str:
        return f"[bold]{self.task}[/] trials (best {_fmt(best)})"

    def search_finished(self) -> None:
        self.progress.stop()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _remaining(elapsed: float, n_finished: int, n_trials: int) -> str:
    """Naive estimate from the mean trial time so far (pruned trials make it pessimistic)."""
    if n_finished <= 0 or n_trials <= n_finished:
        return "0s"
    return f"{elapsed / n_finished * (n_trials - n_finished):.0f}s"


def default_reporter(quiet: bool) -> Reporter:
    """Quiet if asked, rich bars on a terminal, plain lines otherwise."""
    if quiet:
        return QuietReporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
