"""Protocol presets and per-task sampling: a setting meant for one benchmark stays there."""

from __future__ import annotations

from pathlib import Path

from codal_bench.store import Store
from tests.counting_server import CountingServer, cli, one_error_line

ENV = {"OPENAI_API_KEY": "sk-test-not-a-secret"}


def both(srv: CountingServer, store: Path, codal: Path, heplus: Path, *extra: str) -> list[str]:
    return [
        "--model", "openai:cand", "--base-url", srv.url, "--judge", "openai:judge",
        "--judge-base-url", srv.url, "--data", f"codal-bench={codal}",
        "--data", f"humaneval-plus={heplus}", "--limit", "1", "--quiet", "--store", str(store),
        "--max-parse-failure-rate", "1", *extra,
    ]  # fmt: skip


def test_a_global_sampling_flag_with_several_tasks_is_refused(
    tmp_path: Path, codal_data: Path, heplus_data: Path
) -> None:
    store = tmp_path / "s.sqlite"
    with CountingServer() as srv:
        p = cli(*both(srv, store, codal_data, heplus_data, "--temperature", "0.8"), env=ENV)
        assert srv.any_requests() == 0
    assert p.returncode == 4
    line = one_error_line(p)
    assert "--temperature" in line and "--set" in line, line


def test_set_changes_one_task_only(tmp_path: Path, codal_data: Path, heplus_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    extra = ("--set", "humaneval-plus.temperature=0.8", "--set", "humaneval-plus.max_tokens=300")
    with CountingServer() as srv:
        p = cli(*both(srv, store, codal_data, heplus_data, *extra), env=ENV)
        bodies = {h.model: h.body for h in srv.hits}
        he = [h.body for h in srv.hits_for("cand") if "def " in str(h.body.get("messages"))]
    assert p.returncode in (0, 1), p.stderr
    (run,) = Store(store, readonly=True).runs()
    tasks = run.config.tasks
    assert tasks["humaneval-plus"].sampling["temperature"] == 0.8
    assert tasks["humaneval-plus"].sampling["max_tokens"] == 300
    assert tasks["codal-bench"].sampling["temperature"] == 0.0
    assert tasks["codal-bench"].sampling["max_tokens"] == 1024
    assert bodies and he and all(b["temperature"] == 0.8 for b in he)


def test_protocol_paper_sets_prompts_sampling_and_samples(
    tmp_path: Path, codal_data: Path, heplus_data: Path
) -> None:
    store = tmp_path / "s.sqlite"
    with CountingServer() as srv:
        p = cli(*both(srv, store, codal_data, heplus_data, "--protocol", "paper"), env=ENV)
    assert p.returncode in (0, 1), p.stderr
    (run,) = Store(store, readonly=True).runs()
    he, codal = run.config.tasks["humaneval-plus"], run.config.tasks["codal-bench"]
    assert he.samples == 10 and he.sampling["temperature"] == 0.8 and he.sampling["top_p"] == 0.95
    assert he.sampling["max_tokens"] == 512
    assert codal.samples == 1 and codal.sampling["temperature"] == 0.0
    assert codal.sampling["max_tokens"] == 1024
    assert run.config.options["protocol"] == "paper"
    assert run.config.judge is not None
    assert run.config.judge.templates.get("name") == "paper"


def test_unknown_protocol_is_one_line(tmp_path: Path, codal_data: Path, heplus_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    with CountingServer() as srv:
        p = cli(*both(srv, store, codal_data, heplus_data, "--protocol", "papr"), env=ENV)
    assert p.returncode == 4
    assert "papr" in one_error_line(p)
