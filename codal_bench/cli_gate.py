"""Commands that compare: the CI regression gate (check) and the judge audit."""

from __future__ import annotations

import sys
from typing import Any

import click

from .cli_common import check_name, console, open_store, working
from .cli_options import (
    bootstrap_seed,
    chatter_options,
    judge_endpoint_options,
    judge_options,
    model_options,
    run_outputs,
    store_option,
    timeout_option,
)


@click.command("check")
@click.option("--model", required=True, metavar="SPEC", help="The new checkpoint (model spec).")
@click.option(
    "--baseline-sha256", metavar="HEX", help="Refuse a bundle file whose SHA-256 differs."
)
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
    "--temperature",
    type=float,
    help="Sampling temperature of a baseline made by this check, for its tasks graded without "
    "a model judge (like --samples).",
)
@click.option("--data", multiple=True, metavar="[TASK=]PATH", help="Local data file (offline).")
@click.option(
    "--baseline",
    required=True,
    metavar="RUN|SPEC|BUNDLE",
    help="A bundle file, a run id or name in the store, or a model spec (run if not stored).",
)
@judge_options
@model_options
@click.option(
    "--max-drop",
    multiple=True,
    metavar="METRIC=VALUE",
    show_default="each metric's own margin",
    help="Allowed drop per metric, repeatable (e.g. humaneval-plus=0.05).",
)
@click.option(
    "--inconclusive",
    type=click.Choice(["pass", "fail"]),
    default="fail",
    show_default=True,
    help="What an inconclusive metric does to the check.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False), metavar="FILE", help="Write a JUnit XML report."
)
@click.option(
    "--summary-md",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the full result as JSON.",
)
@bootstrap_seed
@run_outputs
@chatter_options
@store_option
def check_cmd(**kw: Any) -> None:
    """CI regression gate: exit 0 pass, 1 regression, 3 inconclusive, 4 could not run.

    The candidate runs on exactly the baseline's items and settings; --name and --tag label the
    candidate's run.

    \b
    Examples:
      codal-eval check --model ./new-ckpt --baseline gpt4o-base --junit report.xml
      codal-eval check --model ./ckpt --baseline ./base-ckpt --max-drop humaneval-plus=0.05

    \b
    Recommended size (a seeded simulation with judge SD 1.5 and 10 % of pass/fail verdicts
    flipping each way: an unchanged model passes >= 80 % of the time, a drop of twice a
    margin fails >= 80 %): a baseline run of every item with --samples 10 --temperature 0.8
    (100 rated items per preference, 164 executed tasks), the default margins (rating average
    0.4, each preference 1.0, pass@1 0.05) and --inconclusive fail. Smaller runs end
    inconclusive more often; the report prints how many items or samples a metric needs.
    """
    from .gate import check

    check_name(kw)
    store = open_store(kw.pop("store"))
    kw["seed"] = kw.pop("bootstrap_seed")
    kw["tags"] = list(kw["tags"])
    verbose = kw.pop("verbose")
    with working(str(store.path), True, verbose):  # check shows its own progress (--quiet)
        code = check(store, **kw)
    sys.exit(code)


@click.command("judge-audit")
@click.option(
    "--judge", required=True, metavar="SPEC", help="Judge model spec to audit (as for run --judge)."
)
@click.option(
    "--judge-templates",
    metavar="NAME|DIR",
    show_default="the judge's own set",
    help="Judge template set: a name under judges/ or a folder (the audit is tied to its hash).",
)
@judge_endpoint_options
@click.option(
    "--run",
    "run_id",
    metavar="RUN",
    help="A stored HumanEval+ run whose answers the judge rates (default: the built-in audit set).",
)
@click.option(
    "--preference",
    show_default="instruction-following",
    help="Which of the judge's prompts rates the answers.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    help="Problems file for the built-in audit set (offline).",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    show_default="every problem",
    help="Built-in set: only its first N problems.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the audit report as JSON.",
)
@timeout_option
@bootstrap_seed
@chatter_options
@store_option
def judge_audit_cmd(**kw: Any) -> None:
    """How well a judge's ratings separate answers that pass their tests from ones that fail.

    \b
    Examples:
      codal-eval judge-audit --judge gpt-4 --limit 40
      codal-eval judge-audit --judge smollm2 --run my-run --json audit.json
    """
    from .config import backend_options
    from .judging import auditor

    audit = auditor()
    store = open_store(kw["store"])
    with working(str(store.path), kw["quiet"], kw["verbose"]) as (progress, _log):
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
            seed=kw["bootstrap_seed"],
            progress=progress,
        )
    if kw["json_path"]:
        result.write_json(kw["json_path"])
    console().print(result.renderable())
