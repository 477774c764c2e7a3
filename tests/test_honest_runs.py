"""Honest runs: a failure is loud and never looks like a result (issue 13's acceptance).

Loopback servers stand in for the candidate and the judge: `CountingServer` answers OpenAI chat
completions (and a models listing, which is what the preflight asks) and can be told to answer
HTTP 500 (`broken`) or to reply without a rating (`muted`) for a model name.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from codal_bench.store import Store
from tests.counting_server import CountingServer, cli

ENV = {"OPENAI_API_KEY": "sk-test-not-a-secret"}


def args(cand: str, judge: str, store: Path, data: Path, *extra: str) -> list[str]:
    return [
        "--model", "openai:cand", "--base-url", cand, "--judge", "openai:judge",
        "--judge-base-url", judge, "--tasks", "codal-bench", "--data", str(data),
        "--limit", "1", "--quiet", "--store", str(store), *extra,
    ]  # fmt: skip


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nothing listens there now: connections are refused
    return port


def ranked_run_ids(store: Path) -> set[str]:
    p = cli("leaderboard", "--format", "json", "--store", str(store))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    return {r["run_id"] for t in doc["tables"] for r in t["rows"] if r["run_id"]}


def test_judge_refusing_connections_stops_before_the_candidate(
    tmp_path: Path, codal_data: Path
) -> None:
    port = closed_port()
    store = tmp_path / "s.sqlite"
    with CountingServer() as cand:
        t0 = time.monotonic()
        p = cli(*args(cand.url, f"http://127.0.0.1:{port}/v1", store, codal_data), env=ENV)
        took = time.monotonic() - t0
        assert cand.any_requests() == 0  # not one request of any kind to the candidate
    assert p.returncode == 4, p.stderr
    assert took < 30, took
    last = p.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{port}" in last and "Traceback" not in p.stderr, p.stderr
    assert not store.exists() or not Store(store, readonly=True).runs()


def test_judge_answering_500_leaves_an_incomplete_run_that_resumes(
    tmp_path: Path, codal_data: Path
) -> None:
    store = tmp_path / "s.sqlite"
    with CountingServer() as srv:
        srv.broken = {"judge"}
        p = cli(*args(srv.url, srv.url, store, codal_data), env=ENV)
        assert p.returncode == 1, p.stderr
        (run,) = Store(store, readonly=True).runs()
        assert run.status == "incomplete"
        assert run.run_id not in ranked_run_ids(store)
        # the error and its count, once per endpoint, and the run's state last
        err = p.stderr
        assert f"judge at 127.0.0.1:{srv.port}: 5 request(s) failed" in err, err
        assert "InternalServerError" in err and "500" in err, err
        assert (
            err.strip().splitlines()[-1] == f"codal-eval: run {run.run_id} is incomplete (exit 1)"
        )

        srv.broken = set()
        before = {m: srv.count(m) for m in ("cand", "judge")}
        p = cli(*args(srv.url, srv.url, store, codal_data), env=ENV)
        assert p.returncode == 0, p.stderr
        assert srv.count("cand") == before["cand"]  # the answers were stored: none asked again
        assert srv.count("judge") - before["judge"] == 5  # only the missing grades
    (again,) = Store(store, readonly=True).runs()  # the same run, resumed and now complete
    assert (again.run_id, again.status) == (run.run_id, "complete")
    assert run.run_id in ranked_run_ids(store)


def test_judge_without_ratings_is_invalid_and_refresh_judge_asks_again(
    tmp_path: Path, codal_data: Path
) -> None:
    store = tmp_path / "s.sqlite"
    with CountingServer() as srv:
        srv.muted = {"judge"}
        p = cli(*args(srv.url, srv.url, store, codal_data), env=ENV)
        assert p.returncode == 1, p.stderr
        (run,) = Store(store, readonly=True).runs()
        assert run.status == "invalid" and run.run_id not in ranked_run_ids(store)
        line = next(x for x in p.stderr.splitlines() if "no usable rating" in x)
        assert "openai:judge" in line and "5 of 5" in line and "I cannot decide." in line, line

        srv.muted = set()
        same = cli(*args(srv.url, srv.url, store, codal_data), env=ENV)
        assert same.returncode == 1  # the cached replies are still the unusable ones
        before = {m: srv.count(m) for m in ("cand", "judge")}
        p = cli(*args(srv.url, srv.url, store, codal_data, "--refresh", "judge"), env=ENV)
        assert p.returncode == 0, p.stderr
        assert srv.count("cand") == before["cand"]
        assert srv.count("judge") - before["judge"] == 5  # exactly those grades, asked again
    (fixed,) = Store(store, readonly=True).runs()
    assert (fixed.run_id, fixed.status) == (run.run_id, "complete")
    rows = Store(store, readonly=True).results(fixed.run_id)
    assert {r["status"] for r in rows} == {"rated"}


def test_fully_cached_rerun_sends_nothing_at_all(tmp_path: Path, codal_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    with CountingServer() as srv:
        first = cli(*args(srv.url, srv.url, store, codal_data), env=ENV)
        assert first.returncode == 0, first.stderr
        assert srv.gets  # the first run checked the endpoints before sending
        n = srv.any_requests()
        again = cli(*args(srv.url, srv.url, store, codal_data), env=ENV)
        assert again.returncode == 0, again.stderr
        assert srv.any_requests() == n  # no completion, no models listing


def test_dry_run_prices_the_judge_on_its_own_line(tmp_path: Path, codal_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    with CountingServer() as srv:
        p = cli(*args(srv.url, srv.url, store, codal_data, "--dry-run"), env=ENV)
        assert srv.any_requests() == 0
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    cand = next(x for x in lines if x.startswith("dry run: candidate:"))
    judge = next(x for x in lines if x.startswith("dry run: judge:"))
    assert "5 requests to send (0 cached)" in cand, p.stdout
    assert "5 requests to send (0 cached)" in judge and "$" in judge, p.stdout


def test_check_sends_judge_prompts_only_where_the_baseline_did(
    tmp_path: Path, codal_data: Path
) -> None:
    """The baseline was judged at URL1; OPENAI_BASE_URL points elsewhere (URL2): `check` without
    --judge reuses the baseline's judge and its base URL, and URL2 never hears from it."""
    store = tmp_path / "s.sqlite"
    with CountingServer() as one, CountingServer() as two:
        base = cli(*args(one.url, one.url, store, codal_data), env=ENV)
        assert base.returncode == 0, base.stderr
        (baseline,) = Store(store, readonly=True).runs()
        judged_before = one.count("judge")
        p = cli(
            "check", "--model", "openai:cand-2", "--base-url", one.url,
            "--baseline", baseline.run_id, "--store", str(store), "--quiet",
            env={**ENV, "OPENAI_BASE_URL": two.url},
        )  # fmt: skip
        assert p.returncode in (0, 1, 3), p.stderr
        assert two.any_requests() == 0
        assert one.count("judge") - judged_before == 5  # every judge request went to URL1
        assert one.count("cand-2") == 5


def test_check_refuses_a_judge_host_the_baseline_did_not_use(
    tmp_path: Path, codal_data: Path
) -> None:
    """A baseline judged through OPENAI_BASE_URL=URL1 (no base URL on its command line): with the
    variable now at URL2, `check` stops with one line instead of sending prompts there."""
    store = tmp_path / "s.sqlite"
    with CountingServer() as one, CountingServer() as two:
        base = cli(
            "--model", "openai:cand", "--judge", "openai:judge", "--tasks", "codal-bench",
            "--data", str(codal_data), "--limit", "1", "--quiet", "--store", str(store),
            env={**ENV, "OPENAI_BASE_URL": one.url},
        )  # fmt: skip
        assert base.returncode == 0, base.stderr
        (baseline,) = Store(store, readonly=True).runs()
        p = cli(
            "check", "--model", "openai:cand-2", "--base-url", one.url,
            "--baseline", baseline.run_id, "--store", str(store), "--quiet",
            env={**ENV, "OPENAI_BASE_URL": two.url},
        )  # fmt: skip
        assert two.any_requests() == 0
        assert one.count("cand-2") == 0  # refused before the candidate was asked anything
    assert p.returncode == 4, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{one.port}" in line and "--judge-base-url" in line, line
