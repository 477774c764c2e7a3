"""The paper's prompt files, fetched from the authors' repository at a pinned commit.

CODAL-Bench's judge prompts, the candidate guideline sentences and the paper's HumanEval+ script
live in `martin-wey/CodeUltraFeedback`. Like the data, they are downloaded at run time (never
shipped with codal-eval), checked against pinned sha256 values, cached, and read with `ast`: the
files are Python source, and are never imported or executed.

Where the files come from, first match wins:
1. a folder set with `use_upstream_dir(DIR)` (the CLI's `--upstream DIR`),
2. `$CODAL_BENCH_UPSTREAM` (a folder laid out like the repository: `src/templates/...`),
3. the cache (`<cache dir>/upstream/<commit>/...`), filled on first use from the GitHub raw URL of
   the pinned commit (or `$CODAL_BENCH_UPSTREAM_URL`, a mirror: base URL + path in the repository).
A file whose bytes differ from the pinned hash is refused wherever it comes from.
"""

from __future__ import annotations

import ast
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..types import UsageError

REPOSITORY = "martin-wey/CodeUltraFeedback"
COMMIT = "0525dde72c243b6c86af540432409f6f2efe1fd7"
RAW_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/"
ENV = "CODAL_BENCH_UPSTREAM"
URL_ENV = "CODAL_BENCH_UPSTREAM_URL"  # a mirror of the raw files: BASE + path inside the repository

TEMPLATES_FILE = "src/templates/single_grading_templates.py"
PRINCIPLES_FILE = "src/templates/principles.py"
HUMANEVAL_FILE = "evalplus/generate.py"
PINNED = {
    TEMPLATES_FILE: "0f871dfb4b339b7448da2736208def7573fff94c7c815c4af5e87db38991c938",
    PRINCIPLES_FILE: "971322e633df7b43aeffb029b9c8d3de69a0660cdbc476649015ec66b0e307aa",
    HUMANEVAL_FILE: "726d0d18738494a08f389009db0884e637e6a60e042a374b929cd6503cb774fd",
}

_override: Path | None = None


def use_upstream_dir(path: str | Path | None) -> None:
    """Read the upstream files from `path` (laid out like the repository); None: back to default."""
    global _override
    _override = None if path is None else Path(path).expanduser()
    _parsed.cache_clear()


def _where() -> tuple[str, Path | None]:
    if _override is not None:
        return "--upstream", _override
    env = os.environ.get(ENV)
    if env:
        return f"${ENV}", Path(env).expanduser()
    return "cache", None


def upstream_cache() -> Path:
    from ..resources import cache_dir

    return cache_dir() / "upstream" / COMMIT


def source_dir() -> Path:
    """The folder the files are read from: the override, else the cache."""
    return _where()[1] or upstream_cache()


def _check(rel: str, data: bytes, origin: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != PINNED[rel]:
        raise UsageError(
            f"{origin}: sha256 {got[:12]}… is not the pinned {PINNED[rel][:12]}… of {rel} at "
            f"{REPOSITORY}@{COMMIT[:7]}; refusing a changed prompt file"
        )
    return data


def fetch(rel: str, base_url: str | None = None) -> bytes:
    """The verified bytes of one pinned file, downloaded into the cache if need be."""
    if rel not in PINNED:
        raise UsageError(f"{rel} is not a pinned upstream file (known: {', '.join(PINNED)})")
    how, folder = _where()
    if folder is not None:
        path = folder / rel
        if not path.is_file():
            raise UsageError(
                f"{how} {folder}: {rel} does not exist (expected a folder laid out like "
                f"{REPOSITORY} at commit {COMMIT[:7]})"
            )
        return _check(rel, path.read_bytes(), str(path))
    cached = upstream_cache() / rel
    if cached.is_file():
        return _check(rel, cached.read_bytes(), str(cached))
    url = (base_url or os.environ.get(URL_ENV) or RAW_URL) + rel
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            data = bytes(resp.read())
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot download {url} ({exc}); offline, point ${ENV} or --upstream at a folder "
            f"laid out like {REPOSITORY}"
        ) from exc
    _check(rel, data, url)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, cached)
    return data


# -- reading string constants with ast --------------------------------------------------------


def _module(rel: str, base_url: str | None) -> ast.Module:
    return ast.parse(fetch(rel, base_url).decode("utf-8"), filename=rel)


def _assignments(tree: ast.Module) -> dict[str, ast.expr]:
    out: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                out[target.id] = node.value
    return out


def _string(node: ast.expr, what: str) -> str:
    value = ast.literal_eval(node)
    if not isinstance(value, str):
        raise UsageError(f"upstream {what} is not a string constant")
    return value


@dataclass(frozen=True)
class PaperPrompts:
    """What the paper's CODAL-Bench pipeline sends, read from the pinned files."""

    system: str  # single_grading_system_prompt
    templates: dict[str, str]  # preference -> str.format template (instruction/reference/response)
    principles: dict[str, list[str]]  # preference -> guideline sentences; [0] is the candidate's
    sha256: dict[str, str]  # file -> sha256 (the pinned values, verified)

    def describe(self) -> dict[str, Any]:
        return {"repository": REPOSITORY, "commit": COMMIT, "files": dict(self.sha256)}


@dataclass(frozen=True)
class PaperHumanEvalPrompts:
    """The system prompt and user format of the paper's HumanEval+ script (`code_generate`)."""

    system: str
    user_format: str  # one `{}` for the task prompt (contract type "none": the prompt as is)
    sha256: str


def _read_codal(base_url: str | None) -> PaperPrompts:
    names = _assignments(_module(TEMPLATES_FILE, base_url))
    try:
        system = _string(names["single_grading_system_prompt"], "single_grading_system_prompt")
        mapping = names["single_grading_templates"]
    except KeyError as exc:
        raise UsageError(f"{TEMPLATES_FILE}: no assignment to {exc.args[0]}") from None
    if not isinstance(mapping, ast.Dict):
        raise UsageError(f"{TEMPLATES_FILE}: single_grading_templates is not a dict literal")
    templates: dict[str, str] = {}
    for k, v in zip(mapping.keys, mapping.values, strict=True):
        if k is None or not isinstance(v, ast.Name) or v.id not in names:
            raise UsageError(f"{TEMPLATES_FILE}: single_grading_templates maps to unknown names")
        templates[_string(k, "template key")] = _string(names[v.id], v.id)
    principles_node = _assignments(_module(PRINCIPLES_FILE, base_url)).get("principles")
    if principles_node is None:
        raise UsageError(f"{PRINCIPLES_FILE}: no assignment to principles")
    principles = ast.literal_eval(principles_node)
    if not isinstance(principles, dict) or not all(
        isinstance(v, list) and v and all(isinstance(s, str) for s in v)
        for v in principles.values()
    ):
        raise UsageError(f"{PRINCIPLES_FILE}: principles is not a dict of lists of strings")
    sha = {f: PINNED[f] for f in (TEMPLATES_FILE, PRINCIPLES_FILE)}
    return PaperPrompts(system, templates, principles, sha)


def _read_humaneval(base_url: str | None) -> PaperHumanEvalPrompts:
    tree = _module(HUMANEVAL_FILE, base_url)
    fn = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "code_generate"),
        None,
    )
    if fn is None:
        raise UsageError(f"{HUMANEVAL_FILE}: no function code_generate")
    found: dict[str, str] = {}
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        name, value = node.targets[0].id, node.value
        if name == "system_prompt" and isinstance(value, ast.Constant):
            found[name] = _string(value, name)
        elif (  # instruction = ("...{}").format(construct_contract_prompt(...))
            name == "instruction"
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "format"
            and isinstance(value.func.value, ast.Constant)
        ):
            found[name] = _string(value.func.value, name)
    if set(found) != {"system_prompt", "instruction"}:
        raise UsageError(f"{HUMANEVAL_FILE}: cannot find system_prompt and instruction")
    system, user = found["system_prompt"], found["instruction"]
    return PaperHumanEvalPrompts(system, user, PINNED[HUMANEVAL_FILE])


@lru_cache(maxsize=8)
def _parsed(kind: str, where: str, base_url: str | None) -> Any:
    return _read_codal(base_url) if kind == "codal" else _read_humaneval(base_url)


def paper_prompts(base_url: str | None = None) -> PaperPrompts:
    """The paper's CODAL judge prompts and principles (fetched, verified and parsed once)."""
    result: PaperPrompts = _parsed("codal", str(source_dir()), base_url)
    return result


def paper_humaneval_prompts(base_url: str | None = None) -> PaperHumanEvalPrompts:
    """The paper's HumanEval+ generation prompts from its `evalplus/generate.py`."""
    result: PaperHumanEvalPrompts = _parsed("humaneval", str(source_dir()), base_url)
    return result
