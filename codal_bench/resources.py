"""Finds the data folders (tasks/, judges/, leaderboard/) in a checkout or inside the wheel.

A checkout wins, so that editing a YAML file or a template in the repository takes effect without
reinstalling; an installed wheel carries its own copy under codal_bench/_data/.
"""

from __future__ import annotations

import os
from pathlib import Path

from .types import CodalError

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder `name` (tasks, judges or leaderboard)."""
    override = os.environ.get(f"CODAL_BENCH_{name.upper()}_DIR")
    candidates = [Path(override)] if override else []
    candidates += [_PKG.parent / name, _PKG / "_data" / name]
    for c in candidates:
        if c.is_dir():
            return c
    raise CodalError(
        f"data folder {name!r} not found (looked in {', '.join(map(str, candidates))})"
    )


def cache_dir() -> Path:
    """Where converted models, expected outputs and downloads are kept."""
    env = os.environ.get("CODAL_BENCH_CACHE")
    base = (
        Path(env)
        if env
        else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codal-eval"
    )
    base.mkdir(parents=True, exist_ok=True)
    return base
