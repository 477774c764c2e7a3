"""The paper's prompt files: pinned download, cache, offline override, and reading them with ast.

The files are served from a loopback HTTP server (and from file://) laid out like GitHub's raw
URLs; the expected values come from running the upstream modules themselves with runpy (the test
may execute them; codal-eval never does) and from the upstream-prompts/ text copies in ../shared.
"""

from __future__ import annotations

import functools
import json
import os
import runpy
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from codal_bench.codal import upstream
from codal_bench.codal.scores import PREFERENCES
from codal_bench.codal.task import CodalBenchTask
from codal_bench.codal.templates import UPSTREAM_SYSTEM, UPSTREAM_USER, load_templates
from codal_bench.types import UsageError
from tests.counting_server import CountingServer, cli, one_error_line


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No override, an empty cache of our own, and no parse result kept between tests."""
    monkeypatch.delenv(upstream.ENV, raising=False)
    monkeypatch.delenv(upstream.URL_ENV, raising=False)
    monkeypatch.setenv("CODAL_BENCH_CACHE", str(tmp_path / "cache"))
    upstream.use_upstream_dir(None)
    yield
    upstream.use_upstream_dir(None)


class RawServer:
    """Serves a folder at http://127.0.0.1:PORT/<commit>/<path>, counting GETs; bounded life."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: list[str] = []
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.paths.append(self.path)
                super().do_GET()

        self.httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.timer = threading.Timer(120, self.stop)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{upstream.COMMIT}/"

    def __enter__(self) -> RawServer:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


def _mirror(upstream_src: Path, tmp_path: Path) -> Path:
    """A folder laid out like raw.githubusercontent.com/<repo>/<commit>/."""
    root = tmp_path / "www"
    shutil.copytree(upstream_src, root / upstream.COMMIT)
    return root


def _run_module(path: Path) -> dict[str, Any]:
    return runpy.run_path(str(path))


def test_values_equal_what_the_upstream_modules_define(upstream_src: Path) -> None:
    upstream.use_upstream_dir(upstream_src)
    got = upstream.paper_prompts()
    mod = _run_module(upstream_src / upstream.TEMPLATES_FILE)
    assert got.system == mod["single_grading_system_prompt"]
    assert got.templates == mod["single_grading_templates"]
    assert got.principles == _run_module(upstream_src / upstream.PRINCIPLES_FILE)["principles"]
    assert set(got.templates) == set(PREFERENCES) == set(got.principles)
    assert got.sha256 == {f: upstream.PINNED[f] for f in got.sha256}


def test_values_equal_the_text_copies(upstream_src: Path, upstream_prompts: Path) -> None:
    upstream.use_upstream_dir(upstream_src)
    ts = load_templates()  # the default set
    assert ts.name == "paper" and ts.syntax == "str.format"
    sys_txt = (upstream_prompts / UPSTREAM_SYSTEM).read_bytes().decode("utf-8")
    assert ts.render_system(instruction="i", reference="r", response="a") == sys_txt
    values = {"instruction": "Do {x}.\r\n", "reference": "ref\n", "response": "ans {}\n\n"}
    for pref in PREFERENCES:
        txt = (upstream_prompts / UPSTREAM_USER.format(preference=pref)).read_bytes()
        assert ts.render_user(pref, **values) == txt.decode("utf-8").format(**values)
    principles = json.loads((upstream_prompts / "principles.json").read_text())
    task = CodalBenchTask()
    assert task.guidelines == {p: principles[p][0] for p in PREFERENCES}
    assert task.prompt_set["name"] == "paper"
    assert task.describe()["prompt_set"]["upstream"]["files"] == {
        upstream.PRINCIPLES_FILE: upstream.PINNED[upstream.PRINCIPLES_FILE]
    }
    assert ts.describe()["upstream"]["commit"] == upstream.COMMIT
    from codal_bench.codal.judge import LLMJudge

    class NoBackend:
        def identity(self) -> dict[str, Any]:
            return {}

    judge = LLMJudge(NoBackend(), model_name="gpt-3.5-turbo")  # type: ignore[arg-type]
    judge.reference_for(["gpt-4-turbo_response", "gpt-3.5-turbo_response"])
    assert judge.describe() == {"templates": ts.describe(), "reference": "gpt-3.5-turbo_response"}


def test_paper_humaneval_prompts_from_generate_py(upstream_src: Path) -> None:
    upstream.use_upstream_dir(upstream_src)
    got = upstream.paper_humaneval_prompts()
    source = (upstream_src / upstream.HUMANEVAL_FILE).read_text()
    # The constants sit inside code_generate as adjacent string literals; spot-check the joins.
    assert got.system.startswith("Your task is") and got.system.endswith(" tags.\n")
    assert got.user_format.count("{}") == 1 and got.user_format.endswith(":\n\n{}")
    assert (
        got.user_format.splitlines()[0] in source
        and got.sha256 == upstream.PINNED[upstream.HUMANEVAL_FILE]
    )


def test_download_is_pinned_and_cached(upstream_src: Path, tmp_path: Path) -> None:
    root = _mirror(upstream_src, tmp_path)
    with RawServer(root) as srv:
        first = upstream.paper_prompts(base_url=srv.base)
        assert sorted(srv.paths) == sorted(
            f"/{upstream.COMMIT}/{f}" for f in (upstream.TEMPLATES_FILE, upstream.PRINCIPLES_FILE)
        )
    cached = upstream.upstream_cache() / upstream.TEMPLATES_FILE
    assert cached.read_bytes() == (upstream_src / upstream.TEMPLATES_FILE).read_bytes()
    # Second run, server gone: everything comes from the cache.
    upstream.use_upstream_dir(None)  # drops parsed values, so the files are read again
    again = upstream.paper_prompts(base_url=srv.base)
    assert again == first
    assert load_templates().render_system() == first.system
    # A cache file changed on disk is refused too, not trusted.
    cached.write_bytes(cached.read_bytes().replace(b"impartial", b"partial", 1))
    upstream.use_upstream_dir(None)
    with pytest.raises(UsageError, match="refusing a changed prompt file"):
        upstream.paper_prompts()


def test_a_changed_byte_is_refused(upstream_src: Path, tmp_path: Path) -> None:
    root = _mirror(upstream_src, tmp_path)
    f = root / upstream.COMMIT / upstream.PRINCIPLES_FILE
    data = bytearray(f.read_bytes())
    data[100] ^= 0x01
    f.write_bytes(bytes(data))
    with RawServer(root) as srv, pytest.raises(UsageError) as err:
        upstream.paper_prompts(base_url=srv.base)
    msg = str(err.value)
    assert "\n" not in msg and "sha256" in msg and upstream.PRINCIPLES_FILE in msg
    assert not (upstream.upstream_cache() / upstream.PRINCIPLES_FILE).exists()  # not cached


def test_file_url_and_missing_file(upstream_src: Path, tmp_path: Path) -> None:
    root = _mirror(upstream_src, tmp_path)
    got = upstream.paper_humaneval_prompts(base_url=(root / upstream.COMMIT).as_uri() + "/")
    assert got.sha256 == upstream.PINNED[upstream.HUMANEVAL_FILE]
    (root / upstream.COMMIT / upstream.TEMPLATES_FILE).unlink()
    with pytest.raises(UsageError, match="cannot download .*CODAL_BENCH_UPSTREAM"):
        upstream.fetch(upstream.TEMPLATES_FILE, base_url=(root / upstream.COMMIT).as_uri() + "/")


def test_override_folder_missing_or_changed_file(upstream_src: Path, tmp_path: Path) -> None:
    d = tmp_path / "up"
    shutil.copytree(upstream_src, d)
    (d / upstream.PRINCIPLES_FILE).unlink()
    upstream.use_upstream_dir(d)
    with pytest.raises(UsageError, match=r"principles.py does not exist .*laid out like"):
        CodalBenchTask()
    shutil.copy(upstream_src / upstream.PRINCIPLES_FILE, d / upstream.PRINCIPLES_FILE)
    t = d / upstream.TEMPLATES_FILE
    t.write_bytes(t.read_bytes() + b"\n")
    upstream.use_upstream_dir(d)
    with pytest.raises(UsageError, match="sha256"):
        load_templates("paper")
    # Our own wording needs no upstream file at all.
    assert load_templates("codal-eval").name == "codal-eval"
    assert CodalBenchTask(principles="codal-eval").prompt_set["name"] == "codal-eval"


def test_cli_changed_file_is_one_line_and_sends_nothing(
    upstream_src: Path, tmp_path: Path, codal_data: Path
) -> None:
    d = tmp_path / "up"
    shutil.copytree(upstream_src, d)
    t = d / upstream.TEMPLATES_FILE
    t.write_bytes(t.read_bytes().replace(b"Rating", b"Score", 1))
    with CountingServer() as srv:
        p = cli(
            "--model", "openai:cand", "--judge", "openai:judge", "--base-url", srv.url,
            "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(codal_data),
            "--limit", "1", "--store", str(tmp_path / "s.sqlite"),
            env={upstream.ENV: str(d), "OPENAI_API_KEY": "x"},
        )  # fmt: skip
        assert srv.count() == 0
    assert p.returncode == 4, p.stderr  # bad input: could not start
    line = one_error_line(p)
    assert "sha256" in line and upstream.TEMPLATES_FILE in line


def test_cli_downloads_through_a_mirror_then_runs_offline(
    upstream_src: Path, tmp_path: Path, codal_data: Path
) -> None:
    """The download path end to end: the CLI fetches the files once, then needs no server."""
    root = _mirror(upstream_src, tmp_path)
    env = {"OPENAI_API_KEY": "x", "CODAL_BENCH_CACHE": str(tmp_path / "cache")}
    with CountingServer() as api:
        args = [
            "--model", "openai:cand", "--judge", "openai:judge", "--base-url", api.url,
            "--judge-base-url", api.url, "--tasks", "codal-bench", "--data", str(codal_data),
            "--limit", "1", "--store", str(tmp_path / "s.sqlite"),
        ]  # fmt: skip
        with RawServer(root) as raw:
            p = cli(*args, env={**env, upstream.URL_ENV: raw.base})
            assert p.returncode == 0, p.stderr
            assert len(raw.paths) == 2
        p2 = cli(*args, "--max-tokens", "99", env={**env, upstream.URL_ENV: raw.base})
        assert p2.returncode == 0, p2.stderr
        assert api.count("cand") == 10  # the second run really ran (new candidate settings)


def test_make_demo_points_the_override_at_shared(repo_root: Path, upstream_src: Path) -> None:
    """Acceptance 6: `make demo` reads the paper's files from ../shared, never the network."""
    p = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(repo_root),
         "--eval", "print-upstream: ; @echo \"$$CODAL_BENCH_UPSTREAM\"", "print-upstream"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != upstream.ENV},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    folder = Path(p.stdout.strip())
    assert folder.resolve() == upstream_src.resolve()
    upstream.use_upstream_dir(folder)
    assert upstream.paper_prompts().system and upstream.paper_humaneval_prompts().system
