"""Portable baselines (issue 16, acceptance 2): export a run as a bundle, gate against it in a
store that never saw the run, and refuse every way a bundle can be wrong or hostile."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codal_bench import gate
from codal_bench.gate.bundle import BundleError, export_bundle, import_bundle, load_bundle
from codal_bench.store import Store
from tests.counting_server import CountingServer, cli, one_error_line
from tests.test_gate_stats import write_run

ENV = {"OPENAI_API_KEY": "sk-test-not-a-secret"}


def _he(n: int, broken: int) -> dict[str, list[tuple[bool, bool]]]:
    return {f"HumanEval/{i}": [(i >= broken, i >= broken)] for i in range(n)}


@pytest.fixture()
def bundle(tmp_path: Path) -> tuple[Path, str]:
    origin = Store(tmp_path / "origin.sqlite")
    run_id = write_run(origin, "replay:canon.jsonl", humaneval=_he(164, 0))
    info = export_bundle(origin, run_id, tmp_path / "baseline.codal-bundle")
    path = Path(info["path"])
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # reproducible: exporting again gives the same bytes
    again = export_bundle(origin, run_id, tmp_path / "again.codal-bundle")
    assert again["sha256"] == info["sha256"]
    return path, info["sha256"]


def _fake_candidates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The candidate run is written straight into the store: `fake:N` breaks the first N tasks."""
    made: list[str] = []

    def run_like(st: Store, base_id: str, model: str, judge: Any, progress: Any = None,
                 items: Any = None, **kw: Any) -> str:  # fmt: skip
        made.append(write_run(st, model, humaneval=_he(164, int(model.split(":")[1]))))
        return made[-1]

    monkeypatch.setattr("codal_bench.rerun.run_like", run_like)
    return made


def test_round_trip_in_a_fresh_store(
    tmp_path: Path, bundle: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sha = bundle
    _fake_candidates(monkeypatch)
    fresh = Store(tmp_path / "fresh.sqlite")
    kw: dict[str, Any] = {"quiet": True, "n_boot": 2000}
    assert gate.check(fresh, model="fake:0", baseline=str(path), **kw) == 0
    assert (
        gate.check(
            fresh, model="fake:15", baseline=str(path), max_drop=("humaneval-plus=0.03",), **kw
        )
        == 1
    )
    # pinned by the file's hash: accepted
    assert gate.check(fresh, model="fake:0", baseline=str(path), baseline_sha256=sha, **kw) == 0
    # imported once: the same content maps to the same baseline run
    runs = [r for r in fresh.runs() if r.run_id.startswith("bundle-")]
    assert len(runs) == 1 and runs[0].config.command == "bundle"
    assert runs[0].record.summary == Store(tmp_path / "origin.sqlite").runs()[0].record.summary


def test_changed_byte_and_edited_bundle_exit_4(
    tmp_path: Path, bundle: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sha = bundle
    _fake_candidates(monkeypatch)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    flipped = tmp_path / "flipped.codal-bundle"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(BundleError) as info:
        gate.check(Store(tmp_path / "a.sqlite"), model="fake:0", baseline=str(flipped), quiet=True)
    assert info.value.exit_code == 4

    # an edit that recomputes the inner checksum (every baseline task failed → candidate "better")
    payload = json.loads(gzip.decompress(path.read_bytes()))
    for g in payload["grades"]:
        g["status"], g["details"]["plus"] = "fail", "fail"
    body = {k: v for k, v in payload.items() if k != "sha256"}
    from codal_bench.types import canonical_json

    payload["sha256"] = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    edited = tmp_path / "edited.codal-bundle"
    edited.write_bytes(gzip.compress(canonical_json(payload).encode(), mtime=0))
    load_bundle(edited)  # internally consistent: only the pinned hash can catch it
    with pytest.raises(BundleError, match="SHA-256") as info:
        gate.check(
            Store(tmp_path / "b.sqlite"),
            model="fake:0",
            baseline=str(edited),
            baseline_sha256=sha,
            quiet=True,
        )
    assert info.value.exit_code == 4
    # a newer format version is refused with a clear word
    payload["version"] = 99
    payload["sha256"] = hashlib.sha256(
        canonical_json({k: v for k, v in payload.items() if k != "sha256"}).encode()
    ).hexdigest()
    newer = tmp_path / "newer.codal-bundle"
    newer.write_bytes(gzip.compress(canonical_json(payload).encode(), mtime=0))
    with pytest.raises(BundleError, match="upgrade codal-eval"):
        load_bundle(newer)


def test_imported_keys_are_namespaced(tmp_path: Path, bundle: tuple[Path, str]) -> None:
    """The content-keyed cache can never find a bundle's answer or grade for another run."""
    path, _ = bundle
    fresh = Store(tmp_path / "fresh.sqlite")
    imported = import_bundle(fresh, path)
    rows = fresh.results(imported.run_id)
    assert len(rows) == 164
    assert all(r["gen_key"].startswith("bundle:") and r["grade_key"].startswith("bundle:")
               for r in rows)  # fmt: skip
    conn = sqlite3.connect(fresh.path)
    keys = [k for (k,) in conn.execute("SELECT key FROM grades UNION SELECT key FROM generations")]
    assert keys and all(k.startswith("bundle:") for k in keys)


# -- through the real command line, with a loopback judge and candidate ----------------------------


def _run(srv: CountingServer, store: Path, data: Path, limit: int = 10) -> str:
    p = cli(
        "--model", "openai:cand", "--base-url", srv.url, "--judge", "openai:judge-1",
        "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(data),
        "--limit", str(limit), "--store", str(store), "--quiet", env=ENV,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return Store(store).runs()[-1].run_id


def test_bundle_through_the_cli(tmp_path: Path, codal_data: Path) -> None:
    with CountingServer() as srv:
        origin = tmp_path / "origin.sqlite"
        run_id = _run(srv, origin, codal_data)
        bundle = tmp_path / "baseline.codal-bundle"
        p = cli("export", run_id, "--format", "bundle", "-o", str(bundle), "--store", str(origin))
        assert p.returncode == 0, p.stderr
        sha = hashlib.sha256(bundle.read_bytes()).hexdigest()
        assert sha in p.stderr
        before = srv.count()
        fresh = tmp_path / "fresh.sqlite"
        base = [
            "check", "--model", "openai:cand", "--base-url", srv.url, "--baseline", str(bundle),
            "--data", str(codal_data), "--store", str(fresh), "--quiet",
        ]  # fmt: skip

        # the bundle names its judge's URL: not contacted unless named again → one line, exit 4
        p = cli(*base, env=ENV)
        assert p.returncode == 4, p.stderr
        line = one_error_line(p)
        assert srv.url in line and "--judge-base-url" in line
        assert srv.count() == before  # nothing was sent anywhere

        p = cli(*base, "--judge-base-url", srv.url, "--baseline-sha256", sha, env=ENV)
        assert p.returncode == 0, p.stdout + p.stderr
        # nothing from the bundle was reused: 50 answers and 50 grades asked for again
        assert (srv.count("cand"), srv.count("judge")) == (100, 100)  # 50 + 50 each
        runs = Store(fresh).runs()
        cand = [r for r in runs if not r.run_id.startswith("bundle-")]
        assert len(cand) == 1
        assert not any("bundle:" in str(r["gen_key"]) + str(r["grade_key"])
                       for r in Store(fresh).results(cand[0].run_id))  # fmt: skip
        # a wrong pin: exit 4, one line
        p = cli(*base, "--judge-base-url", srv.url, "--baseline-sha256", "0" * 64, env=ENV)
        assert p.returncode == 4 and "SHA-256" in one_error_line(p)


def test_endpoint_guard_applies_to_judged_tasks_only(tmp_path: Path) -> None:
    """A bundle whose judge was at some URL: gating only execution-graded tasks needs no judge,
    so nothing is refused; gating the judged task without naming a judge URL is exit 4."""
    from codal_bench.gate.baseline import Selection, resolve
    from codal_bench.progress import Progress

    origin = Store(tmp_path / "origin.sqlite")
    codal = {("style", f"s{i}"): [7.0] for i in range(3)}
    run_id = write_run(origin, "m", codal=codal, humaneval=_he(5, 0))
    info = origin.run(run_id)
    info.config.options = {"judge": "openai:judge-x", "tasks": list(info.config.tasks),
                           "judge_options": {"base_url": "http://198.51.100.7:8000/v1",
                                             "api_key": "dropped", "timeout": "30"}}  # fmt: skip
    info.config.tasks["codal-bench"].judged = True
    with origin.transaction() as c:
        from codal_bench.types import canonical_json

        c.execute("UPDATE runs SET config=? WHERE run_id=?",
                  (canonical_json(info.config.to_dict()), run_id))  # fmt: skip
    path = tmp_path / "b.codal-bundle"
    export_bundle(origin, run_id, path)
    fresh = Store(tmp_path / "fresh.sqlite")
    progress = Progress(enabled=False)
    base_id, _ = resolve(fresh, str(path), None, Selection(["humaneval-plus"]), {}, progress)
    stored = fresh.run(base_id).config.options
    assert stored["judge_options"] == {"timeout": "30"}  # the endpoint never reaches the store
    with pytest.raises(BundleError, match="198.51.100.7") as err:
        resolve(fresh, str(path), None, Selection(), {}, progress)
    assert err.value.exit_code == 4
    named = {"judge_options": {"base_url": "http://127.0.0.1:1/v1"}}
    assert resolve(fresh, str(path), None, Selection(), named, progress)[0] == base_id
