"""Progress bars for long stages, on stderr so that stdout stays clean for tables and JSON.

Every live display of a command goes through one `Progress` object: it writes only to the stream
it is given (the terminal's stderr, also while library output is sent to the log file), prints
nothing when disabled (`--quiet`) or when no stage has work, and never captures other output
(rich's default would route stray prints and library warnings into the display).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class Progress:
    """One rich progress display shared by the stages of a run; a no-op when disabled."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream
        self._live: Any = None

    def __enter__(self) -> Progress:
        _current.append(self)
        return self

    def _start(self) -> None:
        """Started on the first bar, so that a run failing early prints no empty display."""
        if self.enabled and self._live is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            from .logs import terminal

            self._live = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream or terminal()),
                redirect_stdout=False,
                redirect_stderr=False,
                transient=False,
            )
            self._live.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if _current and _current[-1] is self:
            _current.pop()
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A bar for one stage; yields `advance(n)`."""
        if total:
            self._start()
        if self._live is None or total == 0:
            yield _ignore
            return
        tid = self._live.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            self._live.advance(tid, n)

        yield advance


_current: list[Progress] = []


def current() -> Progress:
    """The display of the command that is running (a disabled one outside any), for code deep
    in a task (a sandbox's checking bar) that has no progress object handed to it."""
    return _current[-1] if _current else Progress(enabled=False)


def _ignore(n: int = 1) -> None:
    """advance() of a bar that is not shown."""
