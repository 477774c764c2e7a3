"""Nothing lost, nothing leaked (issue 8): kill -9 and resume, Ctrl-C, two runs on one store,
secrets, full or read-only disks.

Every test runs the real CLI in a subprocess against `CountingServer`, a local OpenAI/Anthropic
compatible server that records every request, so "no finished item was requested twice" and "no
paid request was made" are proven by what the server saw, and "results equal" by comparing
`codal-eval export` of the runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from codal_bench.store import Store
from tests.counting_server import (
    CountingServer,
    cli,
    messages_key,
    one_error_line,
    prompt_of,
    reply_for,
    stored_generations,
)

ENV = {"OPENAI_API_KEY": "sk-test-not-a-secret", "ANTHROPIC_API_KEY": "sk-ant-test-not-a-secret"}


def run_args(
    srv: CountingServer, store: Path, data: Path, *, model: str = "cand", judge: str = "judge",
    limit: int = 2, concurrency: int = 1, judge_concurrency: int = 1,
) -> list[str]:  # fmt: skip
    return [
        "--model", f"openai:{model}", "--base-url", srv.url,
        "--judge", f"openai:{judge}", "--judge-base-url", srv.url,
        "--tasks", "codal-bench", "--data", str(data), "--limit", str(limit),
        "--concurrency", str(concurrency), "--judge-concurrency", str(judge_concurrency),
        "--quiet", "--store", str(store),
    ]  # fmt: skip


def popen(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "codal_bench.cli", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV, **(env or {})},
    )  # fmt: skip


def export(store: Path, run_id: str) -> list[dict[str, Any]]:
    """`codal-eval export RUN` without the run id, in a stable order."""
    p = cli("export", run_id, "--store", str(store))
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    for r in rows:
        r.pop("run_id")
    return sorted(rows, key=lambda r: (r["task_id"], r["sample_index"], r["repeat"]))


def complete_run(store: Path) -> str:
    done = [r for r in Store(store, readonly=True).runs() if r.status == "complete"]
    assert len(done) == 1, [(r.run_id, r.status) for r in Store(store, readonly=True).runs()]
    return done[0].run_id


def stored_ok(store: Path, model: str) -> set[tuple[tuple[str, str], ...]]:
    """Messages of the generations of `model` stored as answers (not errors)."""
    return {
        g["messages"]
        for g in stored_generations(store)
        if g["model"] == model and g["error"] is None
    }


def hit_keys(hits: list[Any]) -> list[tuple[tuple[str, str], ...]]:
    return [messages_key(h.body.get("messages", [])) for h in hits]


def wait_for(cond: Any, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"run ended (rc {proc.returncode}) before the signal:\n{err}")
        assert time.monotonic() < end, "timed out waiting for the run to get half way"
        time.sleep(0.02)


def integrity_ok(store: Path) -> None:
    conn = sqlite3.connect(store)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


# -- 1. kill -9 mid-run, then resume -------------------------------------------------------

LIMIT_KILL = 10  # 10 items per preference: 50 candidate and 50 judge requests


@pytest.fixture(scope="module")
def reference_export(tmp_path_factory: pytest.TempPathFactory, codal_data: Path) -> Any:
    """The uninterrupted run on a fresh store, exported (and its request counts)."""
    store = tmp_path_factory.mktemp("reference") / "ref.sqlite"
    with CountingServer() as srv:
        p = cli(*run_args(srv, store, codal_data, limit=LIMIT_KILL, concurrency=4,
                          judge_concurrency=4), env=ENV)  # fmt: skip
        assert p.returncode == 0, p.stderr
        counts = (srv.count("cand"), srv.count("judge"))
    assert counts == (50, 50)
    return export(store, complete_run(store))


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["cand", "judge"])
def test_kill9_at_half_way_then_resume_equals_uninterrupted_run(
    phase: str, store_path: Path, codal_data: Path, reference_export: list[dict[str, Any]]
) -> None:
    n = 50
    with CountingServer(delay_s=0.08) as srv:
        args = run_args(srv, store_path, codal_data, limit=LIMIT_KILL)
        model = "openai:cand" if phase == "cand" else "openai:judge"
        proc = popen(args)
        try:
            # Half of this phase's requests answered, and at least one batch committed (the
            # dispatcher commits every 2 s), so that the resume has something to skip.
            wait_for(
                lambda: srv.count(phase) >= n // 2 and len(stored_ok(store_path, model)) > 0, proc
            )
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        before = {m: stored_ok(store_path, m) for m in ("openai:cand", "openai:judge")}
        assert 0 < len(before[model]) < n, "kill was not mid-phase"
        first = len(srv.hits)
        killed = [r for r in Store(store_path, readonly=True).runs()]
        assert [r.status for r in killed] == ["running"]  # SIGKILL leaves no chance to say more

        p = cli(*args, env=ENV)
        assert p.returncode == 0, p.stderr
        again = srv.hits[first:]

    for prefix, spec in (("cand", "openai:cand"), ("judge", "openai:judge")):
        asked = hit_keys([h for h in again if h.model == prefix])
        assert len(asked) == len(set(asked)), f"{prefix}: a request was sent twice in the resume"
        assert not set(asked) & before[spec], f"{prefix}: a stored answer was requested again"
        # Exactly what was not stored is asked again: every item answered once in the store.
        assert len(asked) == n - len(before[spec])
        assert set(asked) | before[spec] == stored_ok(store_path, spec)
        assert len(stored_ok(store_path, spec)) == n

    final = export(store_path, complete_run(store_path))
    assert len(final) == n
    assert final == reference_export  # answers, statuses, ratings and rationales equal
    integrity_ok(store_path)


# -- 2. Ctrl-C ------------------------------------------------------------------------------


def _interrupt(
    phase: str, store_path: Path, codal_data: Path, limit: int
) -> tuple[CountingServer, list[str], int, subprocess.CompletedProcess[str]]:
    srv = CountingServer(delay_s=0.1).__enter__()  # the caller stops it
    args = run_args(srv, store_path, codal_data, limit=limit, concurrency=2, judge_concurrency=2)
    proc = popen(args)
    try:
        wait_for(lambda: srv.count(phase) >= 6, proc)
        at_signal = srv.count(phase)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    except BaseException:
        srv.stop()
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return srv, args, at_signal, done


def _check_interrupted(
    done: subprocess.CompletedProcess[str], store_path: Path, model: str, at_signal: int
) -> None:
    assert done.returncode == 130, done.stderr
    line = one_error_line(done)
    assert "interrupted" in line and "resume" in line, line
    runs = Store(store_path, readonly=True).runs()
    assert [r.status for r in runs] == ["interrupted"]
    gens = [g for g in stored_generations(store_path) if g["model"] == model]
    # A worker sends its next request only after it has handed the previous answer over, so
    # at most `concurrency` (2) of the requests the server saw were unanswered at the signal:
    # everything else was written when the run stopped.
    assert len(gens) >= at_signal - 2
    for g in gens:  # and every stored answer is whole
        assert g["error"] is None
        expected = reply_for(model.split(":", 1)[1], prompt_of({"messages": _msgs(g)}))
        assert g["text"] == expected


def _msgs(g: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in g["messages"]]


def test_ctrl_c_stores_what_finished_marks_interrupted_and_resumes(
    store_path: Path, codal_data: Path
) -> None:
    srv, args, at_signal, done = _interrupt("cand", store_path, codal_data, limit=2)
    try:
        _check_interrupted(done, store_path, "openai:cand", at_signal)
        (stopped,) = Store(store_path, readonly=True).runs()
        before = stored_ok(store_path, "openai:cand")
        first = len(srv.hits)
        p = cli(*args, env=ENV)
        assert p.returncode == 0, p.stderr
    finally:
        srv.stop()
    asked = hit_keys([h for h in srv.hits[first:] if h.model == "cand"])
    assert not set(asked) & before
    assert len(asked) == 10 - len(before)
    # The same command resumes the same run: one run, now complete.
    (resumed,) = Store(store_path, readonly=True).runs()
    assert (resumed.run_id, resumed.status) == (stopped.run_id, "complete")
    rows = Store(store_path, readonly=True).results(complete_run(store_path))
    assert len(rows) == 10 and {r["status"] for r in rows} == {"rated"}


@pytest.mark.slow
def test_ctrl_c_while_judging_keeps_judge_answers(store_path: Path, codal_data: Path) -> None:
    srv, args, at_signal, done = _interrupt("judge", store_path, codal_data, limit=4)
    try:
        _check_interrupted(done, store_path, "openai:judge", at_signal)
        assert len(stored_ok(store_path, "openai:cand")) == 20
        judged = stored_ok(store_path, "openai:judge")
        first = len(srv.hits)
        p = cli(*args, env=ENV)
        assert p.returncode == 0, p.stderr
    finally:
        srv.stop()
    again = srv.hits[first:]
    assert not [h for h in again if h.model == "cand"]
    asked = hit_keys([h for h in again if h.model == "judge"])
    assert not set(asked) & judged and len(asked) == 20 - len(judged)


# -- 3. two runs at once on one store ------------------------------------------------------


@pytest.mark.slow
def test_two_runs_at_once_on_one_store(store_path: Path, codal_data: Path) -> None:
    n = 50
    with CountingServer(delay_s=0.01) as srv:
        procs = {
            m: popen(
                run_args(
                    srv,
                    store_path,
                    codal_data,
                    model=m,
                    limit=10,
                    concurrency=4,
                    judge_concurrency=4,
                )
            )  # fmt: skip
            for m in ("cand-a", "cand-b")
        }
        results = {m: p.communicate(timeout=600) for m, p in procs.items()}
        for m, p in procs.items():
            assert p.returncode == 0, results[m][1]
        hits = list(srv.hits)

    # They really ran at the same time: each one's requests overlap the other's in time.
    span = {m: [h.t for h in hits if h.model == m] for m in procs}
    assert min(span["cand-a"]) < max(span["cand-b"]) and min(span["cand-b"]) < max(span["cand-a"])
    # Nothing asked twice, nothing lost.
    for m in procs:
        asked = Counter(hit_keys([h for h in hits if h.model == m]))
        assert len(asked) == n and max(asked.values()) == 1
    assert len([h for h in hits if h.model == "judge"]) == 2 * n

    integrity_ok(store_path)
    store = Store(store_path, readonly=True)
    runs = store.runs()
    assert sorted(r.model for r in runs) == ["openai:cand-a", "openai:cand-b"]
    assert {r.status for r in runs} == {"complete"}
    gens = stored_generations(store_path)
    for r in runs:
        rows = store.results(r.run_id)
        assert len(rows) == n and len({x["item_id"] for x in rows}) == n
        assert {x["status"] for x in rows} == {"rated"}
        assert r.record.counts["requests_sent"] == 2 * n  # its answers and their grades
        model = r.model.split(":", 1)[1]
        mine = [g for g in gens if g["model"] == r.model]
        assert len(mine) == n
        for g in mine:
            assert g["text"] == reply_for(model, prompt_of({"messages": _msgs(g)}))
        for x in rows:
            out = x["details"]["judge_output"]
            assert x["rating"] == float(out.rsplit("Rating: ", 1)[1])
    assert len([g for g in gens if g["model"] == "openai:judge"]) == 2 * n


# -- 5. secrets ----------------------------------------------------------------------------


def _markers() -> dict[str, str]:
    tag = uuid.uuid4().hex
    return {
        "OPENAI_API_KEY": f"sk-OPENAIMARKER{tag}",
        "ANTHROPIC_API_KEY": f"sk-ant-ANTHROPICMARKER{tag}",
        "-M api_key": f"sk-OPTIONMARKER{tag}",
    }


def _files_with(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            found += [f"{f}: {s[:12]}…" for s in secrets if s.encode() in data]
    return found


@pytest.mark.slow
def test_api_keys_never_reach_store_records_exports_reports_or_output(
    tmp_path: Path, codal_data: Path
) -> None:
    marks = _markers()
    secrets = list(marks.values())
    home = tmp_path / "home"
    env = {
        "OPENAI_API_KEY": marks["OPENAI_API_KEY"],
        "ANTHROPIC_API_KEY": marks["ANTHROPIC_API_KEY"],
        "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
        "CODAL_BENCH_CACHE": str(home / "codal-cache"),
    }  # fmt: skip
    store = tmp_path / "results.sqlite"
    outputs: list[subprocess.CompletedProcess[str]] = []
    with CountingServer() as srv:
        base = ["--tasks", "codal-bench", "--data", str(codal_data), "--limit", "1", "--quiet",
                "--store", str(store)]  # fmt: skip
        # Candidate on OpenAI (key from the environment), judge on Anthropic (likewise).
        outputs.append(cli("--model", "openai:cand", "--base-url", srv.url,
                           "--judge", "anthropic:judge", "--judge-base-url", srv.root,
                           *base, env=env))  # fmt: skip
        # A key given as a backend option instead.
        outputs.append(cli("--model", "openai:cand2", "--base-url", srv.url,
                           "-M", f"api_key={marks['-M api_key']}", "-M", "top_k=40",
                           "--judge", "openai:judge", "--judge-base-url", srv.url,
                           *base, env=env))  # fmt: skip
        for p in outputs:
            assert p.returncode == 0, p.stderr
        run_ids = [r.run_id for r in Store(store, readonly=True).runs()]
        assert len(run_ids) == 2
        outputs.append(cli("grade", run_ids[0], "--judge", "openai:judge2", "--judge-base-url",
                           srv.url, "--quiet", "--store", str(store), env=env))  # fmt: skip
        assert outputs[-1].returncode == 0, outputs[-1].stderr
        auth = [h.headers.get("authorization", h.headers.get("x-api-key", "")) for h in srv.hits]
    # The keys were really in use: the server received each of them.
    for s in secrets:
        assert any(s in a for a in auth), f"{s[:12]}… never sent: the test would prove nothing"

    outputs.append(cli("export", run_ids[0], "--store", str(store), env=env))
    outputs.append(cli("export", run_ids[1], "-o", str(tmp_path / "export.jsonl"),
                       "--store", str(store), env=env))  # fmt: skip
    outputs.append(cli("diff", run_ids[0], run_ids[1], "--store", str(store), env=env))
    outputs.append(cli("leaderboard", "--format", "json", "--store", str(store), env=env))
    # Every format (terminal, markdown, csv, json, html) as files.
    outputs.append(cli("leaderboard", "--out", str(tmp_path / "board"), "--store", str(store),
                       env=env))  # fmt: skip
    for p in outputs:
        assert p.returncode == 0, p.stderr
        for s in secrets:
            assert s not in p.stdout and s not in p.stderr, p.args

    # The store (main file, and -wal/-shm if present), run records, exports, reports, caches.
    assert (tmp_path / "board").is_dir() and list((tmp_path / "board").iterdir())
    assert _files_with(tmp_path, secrets) == []
    info = Store(store, readonly=True)
    for r in info.runs():
        text = json.dumps([r.config, r.record])
        assert not any(s in text for s in secrets)
    # The non-secret option is kept (the filter drops credentials, not everything).
    assert any(r.config.model_options.get("top_k") == "40" for r in info.runs())


def test_key_echoed_in_a_server_error_is_not_stored(tmp_path: Path, codal_data: Path) -> None:
    """A server (or proxy) that repeats the credentials in its error message: the error is
    stored (so the item is retried next time) and shown, but never with the key in it."""
    marks = _markers()
    secret = marks["OPENAI_API_KEY"]
    store = tmp_path / "results.sqlite"
    with CountingServer() as srv:
        p = cli("--model", "openai:echo-key", "--base-url", srv.url, "--judge", "openai:judge",
                "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(codal_data),
                "--limit", "1", "--quiet", "--store", str(store),
                env={"OPENAI_API_KEY": secret})  # fmt: skip
        assert any(secret in h.headers.get("authorization", "") for h in srv.hits)
    assert secret not in p.stdout and secret not in p.stderr
    errors = [g["error"] for g in stored_generations(store)]
    assert errors and all(e for e in errors)  # stored as errors, not answers
    assert _files_with(tmp_path, [secret]) == []


def test_sandbox_child_sees_no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from codal_bench.executors.sandbox import SandboxExecutor

    marks = _markers()
    monkeypatch.setenv("OPENAI_API_KEY", marks["OPENAI_API_KEY"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", marks["ANTHROPIC_API_KEY"])
    program = (
        "import json, os, glob\n"
        "print(json.dumps(dict(os.environ)))\n"
        "seen = {}\n"
        "for p in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        seen[p] = open(p, 'rb').read().decode('latin-1')\n"
        "    except OSError as e:\n"
        "        seen[p] = 'unreadable'\n"
        "print(json.dumps(seen))\n"
    )
    res = SandboxExecutor().run(program, b"", cpu_s=5, wall_s=20)
    assert res.status == "ok", res
    env, procs = res.outputs
    assert "PATH" in env and procs  # the child did report what it sees
    blob = res.stdout_tail + res.stderr_tail + json.dumps(res.outputs)
    for s in marks.values():
        assert s not in blob
    assert "OPENAI_API_KEY" not in env and "ANTHROPIC_API_KEY" not in env


# -- 6. full or read-only disk -------------------------------------------------------------

_MAKE_STORE = "from codal_bench.store import Store; Store({path!r}).close()"
_FILL = "(head -c 1000000 /dev/zero > {d}/filler 2>/dev/null; true)"


@pytest.mark.parametrize(
    ("setup", "word"),
    [
        pytest.param("mount -t tmpfs -o size=16k tmpfs {d}", "full", id="tiny-fresh"),
        pytest.param("mount -t tmpfs -o size=64k tmpfs {d}", "full", id="small-fresh"),
        pytest.param("mount -t tmpfs -o size=256k tmpfs {d} && {py} -c \"{make}\" && " + _FILL,
                     "full", id="existing-filled"),
        pytest.param("mount -t tmpfs -o ro tmpfs {d}", "read-only", id="ro-fresh"),
        pytest.param("mount -t tmpfs -o size=256k tmpfs {d} && {py} -c \"{make}\" && "
                     "mount -o remount,ro {d}", "read-only", id="ro-existing"),
    ],
)  # fmt: skip
def test_full_or_read_only_store_fails_before_any_request(
    setup: str, word: str, tmp_path: Path, codal_data: Path
) -> None:
    d = tmp_path / "mnt"
    d.mkdir()
    store = d / "s.sqlite"
    with CountingServer() as srv:
        cmd = shlex.join(
            [sys.executable, "-m", "codal_bench.cli", *run_args(srv, store, codal_data, limit=1)]
        )
        make = _MAKE_STORE.format(path=str(store))
        script = setup.format(d=d, py=sys.executable, make=make) + f" && {cmd}"
        p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                           env={**os.environ, **ENV}, timeout=120)  # fmt: skip
        assert srv.count() == 0, "a request was sent although the store cannot take the answers"
    assert p.returncode == 4, p.stderr  # could not start
    line = one_error_line(p)
    assert line.startswith("codal-eval: error:") and str(store) in line, line
    low = line.replace(str(tmp_path), "TMP").lower()  # the tmp path itself says "full"
    ok = ("full" in low or "no space" in low) if word == "full" else ("read-only" in low)
    assert ok, f"the message does not say the disk is {word}: {line}"
