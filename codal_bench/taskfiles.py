"""Reading the task YAML files under tasks/ (and any YAML the user hands us) with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .resources import data_dir
from .types import UsageError


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping; a syntax error names the file, line and column."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UsageError(f"{where}: malformed YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: malformed YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top level")
    return data


def task_config(name: str) -> dict[str, Any]:
    """The YAML that declares task `name` (tasks/<name>.yaml)."""
    path = data_dir("tasks") / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(f"task {name!r} has no declaration file {path}")
    return read_yaml(path)
