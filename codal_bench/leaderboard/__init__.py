"""The leaderboard: tables of comparable runs (`model`), and their formats (`formats`, `html`)."""

from __future__ import annotations

from pathlib import Path

from .model import FORMATS, Leaderboard, RunScores, Table, compile_leaderboard

__all__ = [
    "FORMATS",
    "Leaderboard",
    "RunScores",
    "Table",
    "compile_leaderboard",
    "render",
    "write_all",
]


def render(lb: Leaderboard, fmt: str) -> str:
    """The leaderboard as text in one format (the terminal format has ANSI colour on a tty)."""
    if fmt == "html":
        from .html import page

        return page(lb)
    from .formats import render_text

    return render_text(lb, fmt)


def write_all(lb: Leaderboard, out_dir: Path) -> list[Path]:
    """leaderboard.md / .csv / .json / .html in out_dir; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("json", "json"), ("html", "html")):
        p = out_dir / f"leaderboard.{ext}"
        p.write_text(render(lb, fmt), encoding="utf-8")
        paths.append(p)
    return paths
