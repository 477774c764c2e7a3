"""Progress bars for long stages, on stderr so that stdout stays clean for tables and JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """One rich progress display shared by the stages of a run; a no-op when disabled."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._live: Any = None

    def __enter__(self) -> Progress:
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

            self._live = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._live.__enter__()

    def __exit__(self, *exc: Any) -> None:
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


def _ignore(n: int = 1) -> None:
    """advance() of a bar that is not shown."""
