"""Judge template sets: upstream files render exactly like str.format; ours render strictly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codal_bench.codal.scores import PREFERENCES
from codal_bench.codal.templates import (
    UPSTREAM_SYSTEM,
    UPSTREAM_USER,
    load_templates,
)
from codal_bench.types import UsageError

# Values chosen to trip a non-identical renderer: braces, jinja syntax, CRLF, trailing newlines.
VALUES = {
    "instruction": "Write f(x) -> {x: 1}.\r\nUse {{ jinja }} and {% raw %} text.\n",
    "reference": "def f(x):\n    return {'x': 1}\n\n",
    "response": "```python\nprint('{}'.format(1))\n```\n\n\n",
}


@pytest.mark.parametrize("pref", PREFERENCES)
def test_upstream_render_is_str_format_byte_for_byte(pref: str, upstream_prompts: Path) -> None:
    ts = load_templates(str(upstream_prompts))
    assert ts.syntax == "str.format"
    raw = (upstream_prompts / UPSTREAM_USER.format(preference=pref)).read_bytes().decode("utf-8")
    expected = raw.format(**VALUES)
    got = ts.render_user(pref, **VALUES)
    assert got.encode("utf-8") == expected.encode("utf-8")
    assert got.endswith("### Output\n")  # the final newline jinja2 would have dropped


def test_upstream_system_prompt_is_sent_verbatim(upstream_prompts: Path) -> None:
    ts = load_templates(str(upstream_prompts))
    raw = (upstream_prompts / UPSTREAM_SYSTEM).read_bytes().decode("utf-8")
    assert ts.render_system(**VALUES) == raw


def test_upstream_crlf_files_keep_their_line_ends(tmp_path: Path, upstream_prompts: Path) -> None:
    for f in upstream_prompts.glob("codal_judge_*.txt"):
        (tmp_path / f.name).write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    ts = load_templates(str(tmp_path))
    raw = (tmp_path / UPSTREAM_USER.format(preference="style")).read_bytes().decode("utf-8")
    assert ts.render_user("style", **VALUES) == raw.format(**VALUES)
    assert "\r\n" in ts.render_user("style", **VALUES)


def test_upstream_unsafe_or_unknown_placeholders_rejected(
    tmp_path: Path, upstream_prompts: Path
) -> None:
    for f in upstream_prompts.glob("codal_judge_*.txt"):
        shutil.copy(f, tmp_path / f.name)
    target = tmp_path / UPSTREAM_USER.format(preference="style")
    target.write_text(target.read_text() + "{response.__class__}\n")
    with pytest.raises(UsageError, match="not allowed"):
        load_templates(str(tmp_path))
    target.write_text("{answer}\n")
    with pytest.raises(UsageError, match="answer"):
        load_templates(str(tmp_path))
    (tmp_path / UPSTREAM_USER.format(preference="style")).unlink()
    with pytest.raises(UsageError, match="missing"):
        load_templates(str(tmp_path))


def test_our_templates_render_every_preference_strictly() -> None:
    ts = load_templates("codal-eval")
    assert ts.syntax == "jinja2"
    assert set(ts.preferences) == set(PREFERENCES)
    assert ts.settings() == {
        "rating_regex": r"\bRating:\s*(\d+)\b",
        "scale": [1.0, 10.0],
        "temperature": 0.0,
        "max_tokens": 1024,
    }
    for pref in PREFERENCES:
        out = ts.render_user(pref, **VALUES)
        for v in VALUES.values():
            assert v in out  # inserted as is: no escaping, no jinja evaluation of the values
        assert out.endswith("\n")
        assert "Rating:" in out and "Rationale:" in out
    assert ts.render_system(**VALUES).strip()


def test_our_templates_missing_variable_is_an_error() -> None:
    ts = load_templates("codal-eval")
    with pytest.raises(UsageError, match="response"):
        ts.render_user("style", instruction="i", reference="r")


def test_our_templates_are_not_the_upstream_text(upstream_prompts: Path) -> None:
    """Our wording is our own: no upstream sentence appears in our templates."""
    ours = "\n".join(p.read_text() for p in load_templates("codal-eval").folder.glob("*.jinja"))
    for f in upstream_prompts.glob("codal_judge_*.txt"):
        for line in f.read_text().splitlines():
            if len(line) > 40:
                assert line.strip() not in ours


def _copy_codal(tmp_path: Path) -> Path:
    dst = tmp_path / "mine"
    shutil.copytree(load_templates("codal-eval").folder, dst)
    return dst


def test_hash_changes_with_any_file_or_setting(tmp_path: Path) -> None:
    base = load_templates("codal-eval").sha256
    d = _copy_codal(tmp_path)
    assert load_templates(str(d)).sha256 == base  # same files elsewhere: same hash
    (d / "user_style.jinja").write_text((d / "user_style.jinja").read_text() + "\n")
    h1 = load_templates(str(d)).sha256
    assert h1 != base
    y = d / "judge.yaml"
    y.write_text(y.read_text().replace("max_tokens: 1024", "max_tokens: 512"))
    assert load_templates(str(d)).sha256 not in (base, h1)


def test_unknown_name_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown judge templates 'codl'.*codal"):
        load_templates("codl")
    with pytest.raises(UsageError, match="does not exist"):
        load_templates(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="not a judge template folder"):
        load_templates(str(tmp_path))


def test_missing_template_file(tmp_path: Path) -> None:
    d = _copy_codal(tmp_path)
    (d / "user_style.jinja").unlink()
    with pytest.raises(UsageError, match="user_style.jinja does not exist"):
        load_templates(str(d))


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    d = _copy_codal(tmp_path)
    (d / "judge.yaml").write_text("name: x\nuser:\n  style: [unclosed\nscale: [1, 10]\n")
    with pytest.raises(UsageError) as err:
        load_templates(str(d))
    msg = str(err.value)
    assert "judge.yaml:" in msg and "malformed YAML" in msg
    line = int(msg.split("judge.yaml:")[1].split(":")[0])
    assert line in (3, 4)


def test_jinja_syntax_error_and_unknown_variable_fail_at_load(tmp_path: Path) -> None:
    d = _copy_codal(tmp_path)
    (d / "user_style.jinja").write_text("ok\n{% if %}\n")
    with pytest.raises(UsageError, match=r"user_style.jinja:2"):
        load_templates(str(d))
    (d / "user_style.jinja").write_text("{{ answer }}\n")
    with pytest.raises(UsageError, match="undefined variable.*answer"):
        load_templates(str(d))


def test_yaml_can_declare_str_format_templates(tmp_path: Path) -> None:
    d = tmp_path / "fmt"
    d.mkdir()
    (d / "sys.txt").write_text("Judge {{fairly}}.\n")
    (d / "u.txt").write_text("Q: {instruction}\nR: {reference}\nA: {response}\n")
    (d / "judge.yaml").write_text(
        "syntax: str.format\nsystem: sys.txt\nuser:\n  style: u.txt\ntemperature: 0.7\n"
    )
    ts = load_templates(str(d))
    assert ts.render_user("style", **VALUES) == (d / "u.txt").read_text().format(**VALUES)
    assert ts.temperature == 0.7 and ts.max_tokens == 1024
    with pytest.raises(UsageError, match="no user template for preference 'explanation'"):
        ts.render_user("explanation", **VALUES)
