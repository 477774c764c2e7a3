"""Command line: parse, call into the package, print. No logic lives here.

Imports are deferred into the commands so that `codal-eval --help` stays instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click_default_group import DefaultGroup

from .types import CodalError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

_TASK_HELP = "Comma-separated tasks (default: the built-in ones, codal-bench,humaneval-plus)."


def _store(path: str | None, readonly: bool = False) -> Any:
    from .store import Store, default_store_path

    return Store(path or default_store_path(), readonly=readonly)


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{value}: cannot read {value[1:]} ({exc.strerror or exc})") from exc
        return [x.strip() for x in text.replace(",", "\n").splitlines() if x.strip()]
    return [x.strip() for x in value.split(",") if x.strip()]


def _data_map(values: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
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


def _settings(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`--set TASK.KEY=VALUE` (repeatable) -> {task: {key: value}}, numbers as numbers."""
    import json

    from .types import BadFlag

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


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


@click.group("codal-eval", cls=DefaultGroup, default="run", default_if_no_args=False)
@click.version_option(package_name="codal-eval")
def _group() -> None:
    """Evaluate a code LLM on CODAL-Bench and HumanEval+, and file it in a leaderboard.

    `codal-eval --model SPEC --judge SPEC` runs the default command (run).
    """


# DefaultGroup is untyped; the commands below only need the click.Group interface.
cli: click.Group = _group


def _model_options(f: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--base-url", help="OpenAI-compatible server for the model (e.g. vllm serve)."
            ),
            click.option(
                "-M",
                "model_kv",
                multiple=True,
                metavar="KEY=VALUE",
                help="Backend option for the model.",
            ),
            click.option("--concurrency", type=click.IntRange(1), default=8, show_default=True),
        ]
    ):
        f = opt(f)
    return f


def _judge_options(f: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--judge",
                help="Judge model spec (gpt-4, claude-…, a checkpoint dir, smollm2, BACKEND:NAME).",
            ),
            click.option(
                "--judge-templates",
                help="Judge template set: a name under judges/ or a folder (ours or upstream).",
            ),
            click.option(
                "--reference",
                help="Reference column: gpt-4-turbo, gpt-3.5-turbo or claude-3-sonnet-20240229.",
            ),
            click.option("--judge-base-url", help="OpenAI-compatible server for the judge."),
            click.option(
                "-J",
                "judge_kv",
                multiple=True,
                metavar="KEY=VALUE",
                help="Backend option for the judge.",
            ),
            click.option(
                "--judge-concurrency", type=click.IntRange(1), default=8, show_default=True
            ),
            click.option(
                "--judge-repeats",
                type=click.IntRange(1),
                default=1,
                show_default=True,
                help="Grade each answer K times (measures the judge's own noise).",
            ),
        ]
    ):
        f = opt(f)
    return f


def _outcome_options(f: F) -> F:
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


def _store_option(f: F) -> F:
    return click.option("--store", type=click.Path(dir_okay=False), help="Results store (SQLite).")(
        f
    )


@cli.command("run")
@click.option(
    "--model",
    required=True,
    help="Model spec: a checkpoint dir, gpt-4o, claude-…, smollm2, BACKEND:NAME.",
)
@_model_options
@_judge_options
@click.option("--tasks", default="", help=_TASK_HELP)
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Items per CODAL preference (first N tasks for HumanEval+).",
)
@click.option("--task-ids", help="Comma-separated item ids, or @FILE.")
@click.option("--data", multiple=True, metavar="[TASK=]PATH", help="Local data file (offline).")
@click.option(
    "--principles",
    metavar="NAME|FILE",
    help="Candidate guidelines: paper (default), codal-eval, or a principles.json (entry 0).",
)
@click.option(
    "--prompt-set",
    metavar="NAME",
    help="A task's named candidate prompts, e.g. evalplus (default), paper or codal-eval.",
)
@click.option(
    "--protocol",
    metavar="NAME",
    help="A published protocol for every task: prompts, sampling, samples and judge templates "
    "(paper, evalplus, codal-eval; flags given as well win).",
)
@click.option(
    "--sanitize", is_flag=True, help="Extract the code of raw replies in a samples file first."
)
@click.option(
    "--upstream",
    metavar="DIR",
    envvar="CODAL_BENCH_UPSTREAM",
    help="A folder laid out like the paper's repository, instead of downloading its prompt files.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="TASK.KEY=VALUE",
    help="A sampling setting of one task: temperature, top_p, max_tokens, seed or samples.",
)
@click.option("--samples", type=click.IntRange(1), help="Samples per HumanEval+ task (for pass@k).")
@click.option("--temperature", type=float)
@click.option("--top-p", type=float)
@click.option("--max-tokens", type=click.IntRange(1))
@click.option("--seed", type=int)
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds per request."
)
@click.option(
    "--dry-run", is_flag=True, help="Count requests and tokens (cache hits included); send nothing."
)
@click.option("--max-cost", type=float, help="Stop before spending more than this many USD.")
@_outcome_options
@click.option(
    "--refresh",
    type=click.Choice(["candidate", "judge", "all"]),
    help="Ask again instead of using stored answers (candidate), grades (judge) or both; "
    "the old rows stay in the store.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_store_option
def run_cmd(**kw: Any) -> None:
    """Generate, grade and record one model's run.

    Exit codes: 0 the run is complete; 1 it finished incomplete (missing answers or grades
    beyond --max-error-rate: run the same command again to resume) or invalid (the judge's
    replies mostly had no rating); 2 usage error; 4 could not start (bad input, an endpoint or
    the sandbox failed its check before anything was sent).
    """
    from .config import RunOptions, backend_options
    from .report import print_dry_run, print_summary
    from .runner import run

    tasks = _split(kw["tasks"]) or []
    data, data_files = _data_map(kw["data"])
    if kw["upstream"]:  # read by the task that fetches the paper's prompt files
        os.environ["CODAL_BENCH_UPSTREAM"] = str(kw["upstream"])
    m_opts = backend_options(kw["model_kv"], kw["base_url"], "-M")
    j_opts = backend_options(kw["judge_kv"], kw["judge_base_url"], "-J")
    opts = RunOptions(
        model=kw["model"],
        judge=kw["judge"],
        tasks=tasks,
        limit=kw["limit"],
        task_ids=_split(kw["task_ids"]),
        data=data,
        data_files=data_files,
        principles=kw["principles"],
        prompt_set=kw["prompt_set"],
        protocol=kw["protocol"],
        sanitize=kw["sanitize"],
        settings=_settings(kw["settings"]),
        reference=kw["reference"],
        judge_templates=kw["judge_templates"],
        model_options=m_opts,
        judge_options=j_opts,
        concurrency=kw["concurrency"],
        judge_concurrency=kw["judge_concurrency"],
        samples=kw["samples"],
        temperature=kw["temperature"],
        top_p=kw["top_p"],
        max_tokens=kw["max_tokens"],
        seed=kw["seed"],
        judge_repeats=kw["judge_repeats"],
        dry_run=kw["dry_run"],
        max_cost=kw["max_cost"],
        timeout_s=kw["timeout"],
        max_error_rate=kw["max_error_rate"],
        max_parse_failure_rate=kw["max_parse_failure_rate"],
        refresh=kw["refresh"],
    )
    from .progress import Progress

    opened: list[Any] = []

    def open_store() -> Any:  # opened only once the input has been checked
        opened.append(_store(kw["store"]))
        return opened[0]

    with Progress(enabled=not kw["quiet"]) as progress:
        result = run(opts, open_store, progress)
    if result.dry_run is not None:
        print_dry_run(result.dry_run)
        return
    print_summary(result.run_id, result.summary, result.record, opened[0].path, result.status)
    if result.status != "complete":
        sys.exit(1)


@cli.command("grade")
@click.argument("run_id")
@_judge_options
@_outcome_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_store_option
def grade_cmd(run_id: str, **kw: Any) -> None:
    """Re-grade a stored run's answers with another judge or templates (no new generation).

    Exit codes as for run: 0 complete, 1 incomplete or invalid, 2 usage, 4 could not start.
    """
    from .config import backend_options
    from .progress import Progress
    from .regrade import regrade
    from .report import print_summary

    j_opts = backend_options(kw["judge_kv"], kw["judge_base_url"], "-J")
    store = _store(kw["store"])
    with Progress(enabled=not kw["quiet"]) as progress:
        result = regrade(
            store,
            run_id,
            judge=kw["judge"],
            judge_options=j_opts,
            judge_templates=kw["judge_templates"],
            reference=kw["reference"],
            judge_repeats=kw["judge_repeats"],
            concurrency=kw["judge_concurrency"],
            progress=progress,
            max_error_rate=kw["max_error_rate"],
            max_parse_failure_rate=kw["max_parse_failure_rate"],
        )
    print_summary(result.run_id, result.summary, result.record, store.path, result.status)
    if result.status != "complete":
        sys.exit(1)


@cli.command("export")
@click.argument("run_id")
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False), help="File to write (default: stdout)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "bundle"]),
    default="jsonl",
    show_default=True,
    help="jsonl: per-sample rows; bundle: a portable baseline for `check --baseline FILE`.",
)
@_store_option
def export_cmd(run_id: str, out: str | None, fmt: str, store: str | None) -> None:
    """Per-sample results of a run as JSONL, or the whole run as a baseline bundle."""
    from .report import export_jsonl

    s = _store(store, readonly=True)
    if fmt == "bundle":
        from .gate.bundle import export_bundle

        if not out:
            raise click.UsageError("--format bundle needs --out FILE")
        info = export_bundle(s, run_id, Path(out))
        click.echo(f"wrote bundle {out} ({info['items']} rows, sha256 {info['sha256']})", err=True)
        return
    if out:
        with open(out, "w", encoding="utf-8") as f:
            n = export_jsonl(s, run_id, f)
        click.echo(f"wrote {n} rows to {out}", err=True)
    else:
        export_jsonl(s, run_id, sys.stdout)


@cli.command("leaderboard")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["terminal", "markdown", "csv", "json", "html"]),
    default="terminal",
    show_default=True,
)
@click.option(
    "--out", type=click.Path(file_okay=False), help="Write every format into this folder."
)
@click.option("--seed", type=int, default=0, show_default=True)
@_store_option
def leaderboard_cmd(fmt: str, out: str | None, seed: int, store: str | None) -> None:
    """Rank every run in the store, comparable runs only, with rank intervals."""
    from .leaderboard import compile_leaderboard, render, write_all

    lb = compile_leaderboard(_store(store, readonly=True), seed=seed)
    if out:
        for p in write_all(lb, Path(out)):
            click.echo(f"wrote {p}", err=True)
        return
    text = render(lb, fmt)
    if text:
        click.echo(text)


@cli.command("check")
@click.option("--model", required=True, help="The new checkpoint (model spec).")
@click.option(
    "--baseline",
    required=True,
    help="A bundle file (from `export --format bundle`; an existing file wins), a run id in "
    "the store, or a model spec (its stored run, or one made now).",
)
@click.option(
    "--baseline-sha256", metavar="HEX", help="Refuse a bundle file whose SHA-256 differs."
)
@_judge_options
@_model_options
@click.option("--tasks", default="", help="Gate only these of the baseline's tasks (comma list).")
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Gate on the first N items per group of the baseline (per preference; first N tasks).",
)
@click.option(
    "--samples",
    type=click.IntRange(1),
    help="Samples per item of execution-graded tasks; must match the baseline (or make one).",
)
@click.option(
    "--temperature", type=float, help="Sampling temperature of a baseline made by this check."
)
@click.option("--data", multiple=True, metavar="[TASK=]PATH", help="Local data file (offline).")
@click.option("--max-drop", multiple=True, metavar="METRIC=VALUE", help="Allowed drop per metric.")
@click.option(
    "--inconclusive", type=click.Choice(["pass", "fail"]), default="fail", show_default=True
)
@click.option("--junit", type=click.Path(dir_okay=False))
@click.option("--summary-md", type=click.Path(dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@_store_option
def check_cmd(**kw: Any) -> None:
    """CI regression gate: exit 0 pass, 1 regression, 3 inconclusive, 4 could not run.

    \b
    Recommended size (a seeded simulation with judge SD 1.5 and 10 % of pass/fail verdicts
    flipping each way: an unchanged model passes >= 80 % of the time, a drop of twice a
    margin fails >= 80 %): a baseline run of every item with --samples 10 --temperature 0.8
    (100 rated items per preference, 164 executed tasks), the default margins (rating average
    0.4, each preference 1.0, pass@1 0.05) and --inconclusive fail. Smaller runs end
    inconclusive more often; the report prints how many items or samples a metric needs.
    """
    from .gate import check

    code = check(_store(kw["store"]), **{k: v for k, v in kw.items() if k != "store"})
    sys.exit(code)


@cli.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--top", type=int, default=10, show_default=True, help="CODAL items to show.")
@_store_option
def diff_cmd(run_a: str, run_b: str, top: int, store: str | None) -> None:
    """What changed between two runs, and which items flipped."""
    from .gate import diff_runs, render_diff

    d = diff_runs(_store(store, readonly=True), run_a, run_b)
    _console().print(render_diff(d, top=top))


@cli.command("judge-audit")
@click.option("--judge", required=True, help="Judge model spec to audit (as for run --judge).")
@click.option(
    "--judge-templates",
    help="Judge template set: a name under judges/ or a folder (the audit is tied to its hash).",
)
@click.option("--judge-base-url", help="OpenAI-compatible server for the judge.")
@click.option("-J", "judge_kv", multiple=True, metavar="KEY=VALUE", help="Backend option.")
@click.option("--judge-concurrency", type=click.IntRange(1), default=8, show_default=True)
@click.option(
    "--run",
    "run_id",
    help="A stored HumanEval+ run whose answers the judge rates (default: the built-in audit set).",
)
@click.option(
    "--preference",
    help="Which of the judge's prompts rates the answers (default: instruction-following).",
)
@click.option("--data", type=click.Path(dir_okay=False), help="Problems file for the built-in set.")
@click.option("--limit", type=click.IntRange(1), help="Built-in set: only its first N problems.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report.")
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds per request."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_store_option
def judge_audit_cmd(**kw: Any) -> None:
    """How well a judge's ratings separate answers that pass their tests from ones that fail."""
    from .config import backend_options
    from .judging import auditor
    from .progress import Progress

    audit = auditor()
    store = _store(kw["store"])
    with Progress(enabled=not kw["quiet"]) as progress:
        result = audit(
            store,
            judge=kw["judge"],
            judge_options=backend_options(kw["judge_kv"], kw["judge_base_url"], "-J"),
            judge_templates=kw["judge_templates"],
            run=kw["run_id"],
            preference=kw["preference"],
            data=kw["data"],
            limit=kw["limit"],
            concurrency=kw["judge_concurrency"],
            timeout_s=kw["timeout"],
            seed=kw["seed"],
            progress=progress,
        )
    if kw["json_path"]:
        result.write_json(kw["json_path"])
    _console().print(result.renderable())


@cli.command("plugins")
def plugins_cmd() -> None:
    """Every backend, judge and task: where it came from and whether it loads."""
    from rich.table import Table

    from .registry import describe_all

    table = Table(title="codal-eval plugins")
    for col in ("kind", "name", "package", "target", "loads"):
        table.add_column(col)
    for p in describe_all():
        ok = "[green]yes[/]" if p.loads else f"[red]no[/] {p.error}"
        table.add_row(p.kind, p.name, f"{p.package} {p.version}", p.target, ok)
    _console().print(table)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line for the user's errors, exit codes from the design card."""
    try:
        cli.main(args=argv, prog_name="codal-eval", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # click turns Ctrl-C into Abort; every finished batch is already in the store.
        click.echo(
            "codal-eval: interrupted; finished answers and grades are stored — run the same "
            "command again to resume",
            err=True,
        )
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CodalError as exc:
        click.echo(f"codal-eval: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a file we were pointed at: one line, never a traceback
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"codal-eval: error:{where} {exc.strerror or exc}", err=True)
        sys.exit(4)
    except SystemExit:
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
