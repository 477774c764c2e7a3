"""Tables that stay readable at any terminal width, 80 columns included.

A plain rich table squeezes every column to fit, which at 80 columns leaves scores without names.
Here each column has a priority: the table is tried with every column, then without the least
important ones, one at a time, until it fits; the columns marked essential (a rank, a run's name)
are never dropped and never broken. If even those do not fit, each row becomes a small block: the
essential cells on one line, the rest as `header value` pairs folded below it. What was left out
is said in a line under the table, so nothing disappears silently.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Cell = Any  # str or rich Text


@dataclass
class Col:
    key: str
    header: str
    priority: int = 50  # higher is kept longer; ESSENTIAL is never dropped
    right: bool = False  # numbers
    whole: bool = False  # never wrapped (names, ids, numbers)
    max_width: int | None = None  # a long free-text cell wraps within this
    min_width: int = 10  # a wrapping column narrower than this is dropped instead


ESSENTIAL = 100


def width(default: int = 160) -> int:
    """The width to lay out for: the terminal's, else COLUMNS, else `default` (pipes, files)."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    env = os.environ.get("COLUMNS", "")
    return int(env) if env.isdigit() and int(env) > 0 else default


def console(out: Any = None, stderr: bool = False, w: int | None = None) -> Any:
    """A rich Console that lays out for `width()` and marks no text up by guessing."""
    from rich.console import Console

    stream = out if out is not None else (sys.stderr if stderr else sys.stdout)
    tty = stream.isatty() if hasattr(stream, "isatty") else False
    # Into a pipe or a file with no width asked for, a sentence stays on one line (grep-able).
    soft = not tty and not os.environ.get("COLUMNS", "").isdigit()
    return Console(
        file=stream,
        width=w or width(),
        highlight=False,
        force_terminal=tty or None,
        soft_wrap=soft,
    )


def _table(cols: Sequence[Col], rows: Sequence[dict[str, Cell]], **kw: Any) -> Any:
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", **kw)
    for c in cols:
        t.add_column(
            c.header,
            justify="right" if c.right else "left",
            no_wrap=c.whole,
            overflow="fold",
            max_width=c.max_width,
            min_width=None if c.whole else c.min_width,
        )
    for r in rows:
        t.add_row(*[r.get(c.key, "") for c in cols], style=r.get("_style"))
    return t


def _fits(renderable: Any, w: int) -> bool:
    from rich.console import Console

    probe = Console(width=w, file=open(os.devnull, "w"))  # noqa: SIM115 - closed below
    try:
        m = probe.measure(renderable)
        return m.minimum <= w
    finally:
        probe.file.close()


def fit(
    cols: Sequence[Col],
    rows: Sequence[dict[str, Cell]],
    w: int,
    *,
    title: str | None = None,
    caption: str | None = None,
    min_share: float = 0.4,
) -> Any:
    """The widest layout of `rows` that fits in `w` columns (see the module docstring); a table
    that would keep fewer than `min_share` of its columns becomes blocks instead."""
    from rich.console import Group
    from rich.text import Text

    shown = list(cols)
    # Title and caption are lines of their own, so a long run name in them is never centred
    # and broken to the table's width.
    head = [Text(title, style="bold", overflow="fold")] if title else []
    tail = [Text(caption, style="dim", overflow="fold")] if caption else []
    # One row of each column's widest cell lays the columns out as the full table would, so
    # trying a layout costs the same for 5 rows as for 500.
    probe_row = {
        c.key: max((r.get(c.key, "") for r in rows), key=lambda x: len(_plain(x)), default="")
        for c in cols
    }
    while True:
        if len(shown) < min_share * len(cols):
            break
        probe = _table(shown, [probe_row])
        if _widest(shown, rows) <= w and _fits(probe, w) and _headers_whole(probe, shown, w):
            t = _table(shown, rows)
            hidden = [c.header for c in cols if c not in shown]
            if hidden:
                tail.append(Text(f"(not shown at {w} columns: {', '.join(hidden)})", style="dim"))
            return Group(*head, t, *tail)
        droppable = [c for c in shown if c.priority < ESSENTIAL]
        if not droppable:
            break
        shown.remove(min(reversed(droppable), key=lambda c: c.priority))
    return blocks(cols, rows, w, title=title, caption=caption)


def _headers_whole(table: Any, cols: Sequence[Col], w: int) -> bool:
    """Rendered at `w`, the header row shows every unbreakable column's header in full (rich
    crops the last column when its sums come out a column short)."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=w, highlight=False, color_system=None).print(table)
    head = buf.getvalue().splitlines()[0] if buf.getvalue() else ""
    return all(c.header in head for c in cols if c.whole)


def _widest(cols: Sequence[Col], rows: Sequence[dict[str, Cell]]) -> int:
    """Lower bound of the table's width from the unbreakable cells alone (3 per column gap)."""
    need = 0
    for c in cols:
        if c.whole:
            cells = [_plain(r.get(c.key, "")) for r in rows] + [c.header]
            need += max(max(len(x) for x in s.splitlines() or [""]) for s in cells)
        else:
            need += c.min_width
    return need + 2 * max(0, len(cols) - 1)


def _plain(cell: Cell) -> str:
    return cell.plain if hasattr(cell, "plain") else str(cell)


def _one_line(cell: Cell) -> str:
    return " ".join(_plain(cell).split("\n"))


def blocks(
    cols: Sequence[Col],
    rows: Sequence[dict[str, Cell]],
    w: int,
    *,
    title: str | None = None,
    caption: str | None = None,
) -> Any:
    """One block per row: essential cells on the first line, the rest folded beneath."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text(title, style="bold")] if title else []
    head = [c for c in cols if c.priority >= ESSENTIAL]
    rest = [c for c in cols if c.priority < ESSENTIAL]
    for r in rows:
        first = Text("  ").join(Text(_one_line(r.get(c.key, ""))) for c in head)
        first.stylize("bold")
        parts.append(first)
        pairs = [
            f"{c.header} {_one_line(r.get(c.key, ''))}"
            for c in rest
            if _plain(r.get(c.key, "")).strip() not in ("", "–")
        ]
        for line in pieces(pairs, w - 4):
            parts.append(_indented(line, w))
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def pieces(parts: list[str], w: int, sep: str = " · ") -> list[str]:
    """Facts joined into lines of at most `w` columns, never splitting one fact."""
    lines: list[str] = []
    for p in parts:
        if lines and len(lines[-1]) + len(sep) + len(p) <= w:
            lines[-1] += sep + p
        else:
            lines.append(p)
    return lines


def _indented(text: str, w: int, indent: int = 4) -> Any:
    from rich.padding import Padding
    from rich.text import Text

    return Padding(Text(text, overflow="fold"), (0, 0, 0, indent), expand=False)


def wrap_note(text: str, style: str | None = None) -> Any:
    """A long line of prose: wrapped at spaces, folded only inside a word longer than a line."""
    from rich.text import Text

    return Text(text, style=style or "", overflow="fold")
