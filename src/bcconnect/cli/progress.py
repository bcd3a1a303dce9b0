"""Progress bars for long commands: counts and rates on a terminal, nothing at all otherwise.

::

    with Bars("syncing") as bars:
        bars.update("rl4", completed=1200)               # unknown total: a count and a rate
        bars.update("persons", completed=50, total=200)  # known total: a bar, a count of the total, a rate

Bars draw on stderr only when it is a terminal (``enabled`` says so); redirected or piped, a command prints only
its result lines, and the structured logs carry the events.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text


class _CountColumn(ProgressColumn):
    """``1,200`` or ``1,200/5,000``."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        return Text(f"{done}/{int(task.total):,}" if task.total is not None else done)


class _RateColumn(ProgressColumn):
    """Items per second over rich's recent window."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"– {self.unit}/s")


class Bars:
    """One bar per named piece of work (an adapter, a resource type); a context manager."""

    def __init__(self, what: str, *, unit: str = "records", stream: TextIO | None = None, enabled: bool | None = None):
        out = stream if stream is not None else sys.stderr
        self.enabled = out.isatty() if enabled is None else enabled
        self._tasks: dict[str, TaskID] = {}
        self._progress = Progress(
            TextColumn(f"{what} [bold]{{task.description}}"),
            BarColumn(),
            _CountColumn(),
            TextColumn(unit),
            _RateColumn(unit),
            TimeElapsedColumn(),
            console=Console(file=out, force_terminal=self.enabled or None),
            transient=False,
            disable=not self.enabled,
        )

    def __enter__(self) -> Bars:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, name: str, *, completed: int, total: int | None = None) -> None:
        """Set ``name``'s count (and total, when known); the bar appears on first use."""
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = self._progress.add_task(name, total=total)
        self._progress.update(task, completed=completed, total=total)

    def advance(self, name: str, amount: int = 1, *, total: int | None = None) -> None:
        """Add ``amount`` to ``name``'s count."""
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = self._progress.add_task(name, total=total)
        self._progress.advance(task, amount)
