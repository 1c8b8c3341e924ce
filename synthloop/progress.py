"""Progress reporting: one protocol, a no-op default, log lines and rich bars for the CLI.

Every long-running public function (``run_pipeline``, ``run_collapse``, ``audit``,
``detect_dataset``, ``scan_dataset``, ``generate_dataset``, ``run_session``, ``train_selfplay``,
``LanguageModel.train``) takes ``progress: Progress | None``: it opens stages with
:meth:`Progress.stage`, counts units with :meth:`Progress.advance` and keeps lines with
:meth:`Progress.log`. Inner loops that only count units inside a stage their caller opened
(the decoding engine, a text backend, a scorer, an episode runner) take that protocol's
``advance`` alone, typed :data:`Advance`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

#: ``Progress.advance`` (or any function of a unit count): what inner loops report to.
Advance = Callable[[int], None]


class Progress(Protocol):
    """Receives progress of long work; libraries call it, front ends draw it."""

    def stage(self, description: str, total: int | None) -> None:
        """Start a stage of ``total`` units (``None``: unknown)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current stage are done."""

    def log(self, message: str) -> None:
        """A line worth keeping on screen."""


class NullProgress:
    """Ignores everything (the library default)."""

    def stage(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        pass


class LogProgress:
    """Plain timestamped lines, one per stage (for logs and non-interactive runs)."""

    def __init__(self, stream=None):
        import sys
        import time

        self._stream = stream or sys.stdout
        self._t0 = time.perf_counter()
        self._clock = time.perf_counter

    def _emit(self, text: str) -> None:
        print(f"[{self._clock() - self._t0:8.1f}s] {text}", file=self._stream, flush=True)

    def stage(self, description: str, total: int | None) -> None:
        self._emit(f"{description} ({total if total is not None else '?'})")

    def advance(self, n: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        self._emit(message)


class StageLines:
    """One dim line per stage on a rich console (for work whose stages matter more than their
    length, e.g. the audit's metric groups); log lines are printed as they come."""

    def __init__(self, console) -> None:
        self._console = console

    def stage(self, description: str, total: int | None) -> None:
        self._console.print(f"[dim]· {description}[/]", highlight=False)

    def advance(self, n: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        self._console.print(message, highlight=False)


class RichProgress(AbstractContextManager):
    """A rich progress bar for the current stage and an overall bar."""

    def __init__(self, overall_total: int | None = None, overall_label: str = "overall"):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _P

        self._p = _P(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self._overall = None
        self._overall_total = overall_total
        self._overall_label = overall_label
        self._task = None

    def __enter__(self) -> RichProgress:
        self._p.start()
        if self._overall_total is not None:
            self._overall = self._p.add_task(self._overall_label, total=self._overall_total)
        return self

    def __exit__(self, *exc) -> None:
        self._p.stop()

    def stage(self, description: str, total: int | None) -> None:
        if self._task is not None:
            self._p.remove_task(self._task)
        self._task = self._p.add_task(f"  {description}", total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._p.advance(self._task, n)

    def step_overall(self, n: int = 1) -> None:
        if self._overall is not None:
            self._p.advance(self._overall, n)

    def log(self, message: str) -> None:
        self._p.console.log(message)
