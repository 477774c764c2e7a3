"""Entry-point lookup with lazy loading and "did you mean" suggestions.

Built-in backends, judges and tasks are registered in our own pyproject.toml under the same
entry-point groups a third-party plugin uses, so there is exactly one way in. Nothing is imported
until a name is asked for, which keeps `codal-eval --help` instant and lets one broken plugin
fail alone.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .types import UsageError

GROUPS = {
    "backend": "codal_bench.backends",
    "judge": "codal_bench.judges",
    "task": "codal_bench.tasks",
}


@dataclass
class PluginInfo:
    kind: str
    name: str
    target: str
    package: str
    version: str
    loads: bool | None = None
    error: str | None = None


_LOCAL: dict[str, dict[str, EntryPoint]] = {k: {} for k in GROUPS}


def register(kind: str, name: str, target: str) -> None:
    """Register `module:attr` in this process only (tests, notebooks); plugins use entry points."""
    _LOCAL[kind][name] = EntryPoint(name, target, GROUPS[kind])


def unregister(kind: str, name: str) -> None:
    _LOCAL[kind].pop(name, None)


@functools.lru_cache(maxsize=16)
def _installed(group: str, where: tuple[tuple[str, int], ...]) -> tuple[EntryPoint, ...]:
    """Installed entry points of `group`. Scanning every distribution's metadata costs ~40 ms, and
    the leaderboard asks once per task of each run. Keyed on `sys.path` and its folders'
    modification times, so a plugin installed or made importable later in the process (a test, a
    notebook) is still seen."""
    return tuple(entry_points(group=group))


def _search_path() -> tuple[tuple[str, int], ...]:
    def mtime(p: str) -> int:
        try:
            return os.stat(p or ".").st_mtime_ns
        except OSError:
            return -1

    return tuple((p, mtime(p)) for p in sys.path)


def _entry_points(kind: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = dict(_LOCAL[kind])
    for ep in _installed(GROUPS[kind], _search_path()):
        found.setdefault(ep.name, ep)
    return found


def names(kind: str) -> list[str]:
    return sorted(_entry_points(kind))


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{hint} (known: {', '.join(choices) or 'none'})"


def load(kind: str, name: str) -> Any:
    """The class registered as `name` in the group for `kind`; UsageError with suggestions."""
    eps = _entry_points(kind)
    if name not in eps:
        raise UsageError(f"unknown {kind} {name!r}{suggest(name, sorted(eps))}")
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin is the plugin's problem: say which and why
        raise UsageError(f"{kind} {name!r} ({eps[name].value}) failed to load: {exc}") from exc


def describe_all(check: bool = True) -> list[PluginInfo]:
    """Every registered backend, judge and task, where it came from, and whether it loads."""
    out = []
    for kind in GROUPS:
        for name, ep in sorted(_entry_points(kind).items()):
            dist = ep.dist
            info = PluginInfo(
                kind,
                name,
                ep.value,
                dist.metadata["Name"] if dist else "?",
                dist.version if dist else "?",
            )
            if check:
                try:
                    ep.load()
                    info.loads = True
                except Exception as exc:  # reported, not fatal
                    info.loads = False
                    info.error = f"{type(exc).__name__}: {exc}"
            out.append(info)
    return out


def scoring(task: str) -> Any:
    """The scoring face of task `task` (a class attribute: the task itself is not built)."""
    cls = load("task", task)
    found = getattr(cls, "scoring", None)
    if found is None:
        raise UsageError(f"task {task!r} ({cls.__module__}) has no `scoring`: it cannot be scored")
    return found
