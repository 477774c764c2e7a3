"""Options shared by several commands, each with its help, default and environment variable.

Kept beside `cli.py` so that every command spells a shared option the same way: `--store` (and
`CODAL_BENCH_STORE`), the model and judge options, `--name`/`--tag`, `--output-path DIR` (always
a folder), `--quiet`/`--verbose`. Only click is imported here: `--help` must stay instant.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

STORE_ENV = "CODAL_BENCH_STORE"


def default_store_text() -> str:
    """The default store path as help shows it (the same rule as `store.default_store_path`)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "codal-eval" / "results.sqlite")


def _apply(f: F, opts: list[Callable[[F], F]]) -> F:
    for opt in reversed(opts):
        f = opt(f)
    return f


def store_option(f: F) -> F:
    return click.option(
        "--store",
        type=click.Path(dir_okay=False),
        envvar=STORE_ENV,
        show_envvar=True,
        show_default=default_store_text(),
        help=f"Results store, an SQLite file (also read from ${STORE_ENV}).",
    )(f)


def model_options(f: F) -> F:
    return _apply(
        f,
        [
            click.option(
                "--base-url",
                metavar="URL",
                help="OpenAI-compatible server for the model, e.g. http://127.0.0.1:8000/v1 "
                "(the openai SDK also reads $OPENAI_BASE_URL).",
            ),
            click.option(
                "-M",
                "model_kv",
                multiple=True,
                metavar="KEY=VALUE",
                help="Backend option for the model, repeatable (e.g. -M max_model_len=4096).",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1),
                default=8,
                show_default=True,
                help="Requests in flight at once to the model's server.",
            ),
        ],
    )


def judge_endpoint_options(f: F) -> F:
    """Where the judge is and how hard to drive it: shared by every command that calls a judge."""
    return _apply(
        f,
        [
            click.option(
                "--judge-base-url",
                metavar="URL",
                help="OpenAI-compatible server for the judge model.",
            ),
            click.option(
                "-J",
                "judge_kv",
                multiple=True,
                metavar="KEY=VALUE",
                help="Backend option for the judge, repeatable (like -M for the model).",
            ),
            click.option(
                "--judge-concurrency",
                type=click.IntRange(1),
                default=8,
                show_default=True,
                help="Requests in flight at once to the judge's server.",
            ),
        ],
    )


def timeout_option(f: F) -> F:
    return click.option(
        "--timeout",
        type=float,
        default=300.0,
        show_default=True,
        help="Seconds allowed per request.",
    )(f)


def judge_options(f: F) -> F:
    f = judge_endpoint_options(f)
    return _apply(
        f,
        [
            click.option(
                "--judge",
                metavar="SPEC",
                help="Judge model spec: gpt-4, claude-…, a checkpoint dir, smollm2, BACKEND:NAME.",
            ),
            click.option(
                "--judge-templates",
                metavar="NAME|DIR",
                show_default="the judge's own set",
                help="Judge template set: a name under judges/ or a folder (ours or upstream).",
            ),
            click.option(
                "--reference",
                metavar="MODEL",
                show_default="chosen for the judge",
                help="Reference answers the judge compares with: gpt-4-turbo, gpt-3.5-turbo "
                "or claude-3-sonnet-20240229.",
            ),
            click.option(
                "--judge-repeats",
                type=click.IntRange(1),
                default=1,
                show_default=True,
                help="Grade each answer K times (measures the judge's own noise).",
            ),
        ],
    )


def run_outputs(f: F) -> F:
    """--name, --tag, --output-path, --log-samples: what a command that makes runs records."""
    return _apply(
        f,
        [
            click.option(
                "--name",
                metavar="NAME",
                help="Name for the new run, unique in the store; usable wherever a run id is.",
            ),
            click.option(
                "--tag",
                "tags",
                multiple=True,
                metavar="TAG",
                help="Label the new run with TAG (repeatable); `runs --tag TAG` filters by it.",
            ),
            click.option(
                "--output-path",
                type=click.Path(file_okay=False),
                metavar="DIR",
                help="Also write DIR/<run name or id>/results.json (a folder per run).",
            ),
            click.option(
                "--log-samples",
                is_flag=True,
                help="With --output-path: also write samples.jsonl (prompts, answers, verdicts, "
                "judge prompts and replies).",
            ),
        ],
    )


def chatter_options(f: F) -> F:
    return _apply(
        f,
        [
            click.option("--quiet", is_flag=True, help="Show no progress bars on stderr."),
            click.option(
                "--verbose",
                is_flag=True,
                help="Show library logs (vLLM, torch, transformers, httpx) on the terminal "
                "instead of only in codal-eval.log beside the store.",
            ),
        ],
    )


def bootstrap_seed(f: F) -> F:
    return click.option(
        "--bootstrap-seed",
        type=int,
        default=0,
        show_default=True,
        help="Seed of the bootstrap resampling behind intervals (not a sampling seed).",
    )(f)
