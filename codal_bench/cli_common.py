"""What the commands share: opening the store, parsing list-like flags, the working context
(library output to the log, one progress display) and the end of a command that made a run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


def open_store(path: str | None, readonly: bool = False) -> Any:
    from .store import Store, default_store_path

    return Store(path or default_store_path(), readonly=readonly)


def split_list(value: str | None) -> list[str] | None:
    if not value:
        return None
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{value}: cannot read {value[1:]} ({exc.strerror or exc})") from exc
        return [x.strip() for x in text.replace(",", "\n").splitlines() if x.strip()]
    return [x.strip() for x in value.split(",") if x.strip()]


def data_map(values: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """`--data TASK=PATH` (by task) and bare `--data PATH` (the runner finds its task)."""
    by_task: dict[str, str] = {}
    bare: list[str] = []
    for v in values:
        name, sep, path = v.partition("=")
        if sep and not Path(v).exists():
            by_task[name] = path
        else:
            bare.append(v)
    return by_task, bare


def set_values(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`--set TASK.KEY=VALUE` (repeatable) -> {task: {key: value}}, numbers as numbers."""
    import json

    from .errors import BadFlag

    out: dict[str, dict[str, Any]] = {}
    for v in values:
        name, sep, value = v.partition("=")
        task, dot, key = name.rpartition(".")
        if not sep or not dot or not task or not key:
            raise BadFlag(f"--set {v!r}: expected TASK.KEY=VALUE")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(task, {})[key] = parsed
    return out


def console(stderr: bool = False) -> Any:
    from .termtable import console as make

    return make(stderr=stderr)


@contextmanager
def working(store: str | None, quiet: bool, verbose: bool) -> Iterator[tuple[Any, Path]]:
    """The working part of a command: library output to the log beside the store (unless
    --verbose), and the one progress display, on the terminal's stderr (unless --quiet)."""
    from .logs import library_output, log_path
    from .progress import Progress
    from .store import default_store_path

    path = log_path(store or default_store_path())
    with library_output(path, verbose) as term, Progress(not quiet, term) as progress:
        yield progress, path


def after_run(
    store: Any, run_id: str | None, result: Any, log: Path | None, kw: dict[str, Any]
) -> None:
    """The end of a command that made a run: results files if asked, then the summary."""
    from .report import print_summary
    from .results import metric_entries, warnings_of, write_run_files

    assert run_id is not None  # a run that is not a dry run has an id
    info = store.run(run_id)
    if kw.get("output_path"):
        folder = write_run_files(store, run_id, kw["output_path"], kw.get("log_samples", False))
        click.echo(f"wrote {folder / 'results.json'}", err=True)
    print_summary(
        run_id,
        result.summary,
        result.record,
        store.path,
        result.status,
        name=info.name,
        metrics=metric_entries(result.rows),
        warnings=warnings_of(info),
        log=None if kw.get("verbose") else log,
    )


def outcome_options(f: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--max-error-rate",
                type=click.FloatRange(0, 1),
                default=0.0,
                show_default=True,
                help="Share of answers or grades that may be missing (each scored as a failure) "
                "for the run to count as complete; above it the run is incomplete (exit 1).",
            ),
            click.option(
                "--max-parse-failure-rate",
                type=click.FloatRange(0, 1),
                default=0.5,
                show_default=True,
                help="Share of judge replies without a rating above which the run is invalid "
                "(exit 1); below it they count 0, as published.",
            ),
        ]
    ):
        f = opt(f)
    return f


def check_name(kw: dict[str, Any]) -> None:
    """Bad names and tags fail before anything starts."""
    from .store import check_name

    if kw.get("name"):
        check_name(kw["name"])
    for t in kw.get("tags") or ():
        check_name(t, "tag")
    if kw.get("log_samples") and not kw.get("output_path"):
        raise click.UsageError("--log-samples needs --output-path DIR")
