"""Acceptance 1 on the wire: a default CODAL-Bench run sends the paper's prompts byte for byte.

The CLI runs in a subprocess against a loopback server that records every request body. The
expected messages are computed from the upstream modules executed by runpy (codal-eval itself only
reads them with ast) and from the data file, never from codal-eval's own code.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

from codal_bench.codal import upstream
from codal_bench.codal.scores import PREFERENCES
from tests.counting_server import CountingServer, cli, messages_key, reply_for

CLAUDE = "claude-3-sonnet-20240229_response"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _first(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first n rows of each preference (what --limit n selects)."""
    taken: dict[str, int] = {}
    out = []
    for r in rows:
        if taken.get(r["preference"], 0) < n:
            taken[r["preference"]] = taken.get(r["preference"], 0) + 1
            out.append(r)
    return out


def _run(srv: CountingServer, tmp: Path, data: Path, *extra: str) -> None:
    p = cli(
        "--model", "openai:cand", "--judge", "openai:judge", "--base-url", srv.url,
        "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(data),
        "--limit", "2", "--store", str(tmp / "s.sqlite"), *extra,
        env={"OPENAI_API_KEY": "x"},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr


def test_default_run_sends_the_papers_prompts(
    upstream_src: Path, codal_data: Path, tmp_path: Path
) -> None:
    grading = runpy.run_path(str(upstream_src / upstream.TEMPLATES_FILE))
    system, templates = grading["single_grading_system_prompt"], grading["single_grading_templates"]
    principles = runpy.run_path(str(upstream_src / upstream.PRINCIPLES_FILE))["principles"]
    rows = _first(_rows(codal_data), 2)
    assert {r["preference"] for r in rows} == set(PREFERENCES) and len(rows) == 10

    with CountingServer() as srv:
        _run(srv, tmp_path, codal_data)  # CODAL_BENCH_UPSTREAM points at ../shared (conftest)
        cand, judge = srv.hits_for("cand"), srv.hits_for("judge")

    want_cand = {
        messages_key([
            {"role": "system", "content": ""},
            {"role": "user", "content": principles[r["preference"]][0] + "\n\n" + r["instruction"]},
        ])
        for r in rows
    }  # fmt: skip
    assert len(cand) == 10 and {messages_key(h.body["messages"]) for h in cand} == want_cand
    # Byte for byte: the bodies as sent (JSON-decoded strings) equal the expected strings exactly.
    answer_of = {messages_key(h.body["messages"]): reply_for("cand", h.prompt) for h in cand}
    want_judge = set()
    for r in rows:
        key = messages_key([
            {"role": "system", "content": ""},
            {"role": "user", "content": principles[r["preference"]][0] + "\n\n" + r["instruction"]},
        ])  # fmt: skip
        user = templates[r["preference"]].format(
            instruction=r["instruction"], reference=r[CLAUDE], response=answer_of[key]
        )
        want_judge.add((("system", system), ("user", user)))
    assert len(judge) == 10
    assert {messages_key(h.body["messages"]) for h in judge} == want_judge
    assert all(h.body["temperature"] == 0 for h in judge + cand)


def test_empty_reference_cell_is_an_error_of_that_item(codal_data: Path, tmp_path: Path) -> None:
    """Never judged against another column: one item errs, is counted, and sends no judge call."""
    rows = _first(_rows(codal_data), 1)
    for r in rows:
        r["gpt-4-turbo_response"] = "GPT4-ANSWER for " + r["instruction"][:20]
    rows[2][CLAUDE] = ""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with CountingServer() as srv:
        p = cli(
            "--model", "openai:cand", "--judge", "openai:judge", "--base-url", srv.url,
            "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(data),
            "--reference", "claude-3-sonnet-20240229", "--store", str(tmp_path / "s.sqlite"),
            env={"OPENAI_API_KEY": "x"},
        )  # fmt: skip
        judge_prompts = [h.prompt for h in srv.hits_for("judge")]
    assert len(judge_prompts) == 4
    assert not any("GPT4-ANSWER" in x for x in judge_prompts)
    assert p.returncode in (0, 1), p.stderr
    export = _export(tmp_path / "s.sqlite")
    bad = [x for x in export if x["status"] == "judge_error"]
    assert len(bad) == 1 and bad[0]["item_id"] and bad[0]["group"] == rows[2]["preference"]
    assert bad[0]["details"]["reference_missing"] is True
    assert "reference missing" in bad[0]["details"]["error"]
    summary = _export_summary(tmp_path / "s.sqlite")
    assert summary["errors"] == 1


def _export(store: Path) -> list[dict[str, Any]]:
    from codal_bench.store import Store

    s = Store(store)
    (run,) = s.runs()
    return list(s.results(run.run_id))


def _export_summary(store: Path) -> dict[str, Any]:
    from codal_bench.summary import run_summary

    return run_summary(_export(store))
