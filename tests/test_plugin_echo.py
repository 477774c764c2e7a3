"""The example plugin package, pip-installed as a user would, reached through entry points."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from codal_bench import registry
from codal_bench.types import Message, Request, SamplingParams

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin-echo"


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def echo_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pip-install a copy (building in the checkout would leave build/ and egg-info behind)."""
    try:
        version("codal-echo")
        was_installed = True
    except PackageNotFoundError:
        was_installed = False
    src = tmp_path_factory.mktemp("plugin") / "plugin-echo"
    shutil.copytree(EXAMPLE, src)
    _pip("install", "--no-build-isolation", "--no-deps", "--no-index", str(src))
    importlib.invalidate_caches()
    yield
    if not was_installed:  # leave the environment as we found it
        _pip("uninstall", "-y", "codal-echo")
        importlib.invalidate_caches()


def test_entry_point_loads_and_answers(echo_installed: None) -> None:
    assert "echo" in registry.names("backend")
    cls = registry.load("backend", "echo")
    backend = cls("x")
    req = Request.make(backend.identity(), [Message("user", "say hi")], SamplingParams())
    (gen,) = backend.generate([req])
    assert gen.key == req.key and gen.ok
    assert gen.text.startswith("say hi") and "\nRating: " in gen.text
    info = [p for p in registry.describe_all() if p.kind == "backend" and p.name == "echo"]
    assert info and info[0].package == "codal-echo" and info[0].loads is True


def test_full_run_through_the_cli(echo_installed: None, codal_data: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    import codal_bench.cli as cli
    from codal_bench.store import Store

    store = tmp_path / "s.sqlite"
    args = ["--model", "echo:x", "--judge", "echo:j", "--tasks", "codal-bench", "--limit", "1",
            "--data", str(codal_data), "--store", str(store)]  # fmt: skip
    result = CliRunner().invoke(cli.cli, args)
    assert result.exit_code == 0, result.output
    s = Store(store, readonly=True)
    (run,) = s.runs()
    rows = s.results(run.run_id)
    assert rows and all(r["answer"] and r["status"] == "rated" for r in rows)


def test_plugins_command_shows_it(echo_installed: None) -> None:
    from click.testing import CliRunner

    import codal_bench.cli as cli

    result = CliRunner().invoke(cli.cli, ["plugins"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "echo" in x)
    assert "codal-echo" in line
