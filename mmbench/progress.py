"""Search progress for people: a rich live display on a terminal, plain lines in logs.

A reporter receives the search's events; the search never prints directly, so ``--quiet``,
CI logs and embedding applications all get what suits them.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Reporter(Protocol):
    """Receives search events (all methods are notifications; none may raise)."""

    def search_started(self, task: str, study: str, n_trials: int, n_done: int) -> None: ...
    def trial_started(self, number: int, combination: str, max_epochs: int) -> None: ...
    def epoch_finished(self, number: int, epoch: int, value: float) -> None: ...
    def trial_finished(self, number: int, state: str, value: float | None, best: float | None, reason: str | None = None) -> None: ...
    def search_finished(self) -> None: ...


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


class PlainReporter(QuietReporter):
    """One line per trial: for CI logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.n_trials = 0
        self.started = time.monotonic()
        self.combinations: dict[int, str] = {}

    def search_started(self, task: str, study: str, n_trials: int, n_done: int) -> None:
        self.n_trials = n_trials
        self.started = time.monotonic()
        print(f"search task={task} study={study} trials={n_done}/{n_trials} already done", file=self.stream, flush=True)

    def trial_started(self, number: int, combination: str, max_epochs: int) -> None:
        self.combinations[number] = combination

    def trial_finished(self, number: int, state: str, value: float | None, best: float | None, reason: str | None = None) -> None:
        shown = "-" if value is None else f"{value:.4f}"
        best_shown = "-" if best is None else f"{best:.4f}"
        line = f"trial {number} {state} value={shown} best={best_shown} elapsed={time.monotonic() - self.started:.0f}s [{self.combinations.pop(number, '')}]"
        if reason:
            line += f" reason: {reason}"
        print(line, file=self.stream, flush=True)


class RichReporter(QuietReporter):
    """Live bars on a terminal: trials n/N, the current combination's epochs, best so far."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.trials_bar = None
        self.epoch_bars: dict[int, int] = {}
        self.best: float | None = None

    def search_started(self, task: str, study: str, n_trials: int, n_done: int) -> None:
        self.progress.start()
        self.trials_bar = self.progress.add_task(f"[bold]{task}[/] trials (best -)", total=n_trials, completed=n_done)

    def trial_started(self, number: int, combination: str, max_epochs: int) -> None:
        self.epoch_bars[number] = self.progress.add_task(f"  trial {number}: {combination}", total=max_epochs)

    def epoch_finished(self, number: int, epoch: int, value: float) -> None:
        if number in self.epoch_bars:
            self.progress.update(self.epoch_bars[number], completed=epoch)

    def trial_finished(self, number: int, state: str, value: float | None, best: float | None, reason: str | None = None) -> None:
        bar = self.epoch_bars.pop(number, None)
        if bar is not None:
            self.progress.remove_task(bar)
        shown = "-" if value is None else f"{value:.4f}"
        message = f"trial {number} [{'green' if state == 'COMPLETE' else 'yellow' if state == 'PRUNED' else 'red'}]{state}[/] value={shown}"
        if reason:
            message += f" ({reason})"
        self.progress.console.print(message)
        if self.trials_bar is not None:
            best_text = "-" if best is None else f"{best:.4f}"
            self.progress.update(self.trials_bar, advance=1, description=f"[bold]trials[/] (best {best_text})")

    def search_finished(self) -> None:
        self.progress.stop()


def default_reporter(quiet: bool) -> Reporter:
    """Quiet if asked, rich bars on a terminal, plain lines otherwise."""
    if quiet:
        return QuietReporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
