"""EvalPlus 0.3.1's codegen prompts and stop strings, read from the installed package with `ast`.

EvalPlus keeps its chat instruction and response prefixes as local variables of `run_codegen()`
in `evalplus/codegen.py`, the OpenAI system message inside `make_request()`, and its stop strings
as module constants and literals of its providers. Reading them from the installed files (never
importing the providers, which would pull vLLM, transformers and the SDKs) keeps codal-eval's
prompts equal to what the installed EvalPlus sends, without copying its text.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..types import CodalError


def _package_dir() -> Path:
    spec = importlib.util.find_spec("evalplus")
    if spec is None or not spec.submodule_search_locations:
        raise CodalError("evalplus is not installed: pip install evalplus==0.3.1")
    return Path(list(spec.submodule_search_locations)[0])


def _tree(rel: str) -> ast.Module:
    path = _package_dir() / rel
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except OSError as exc:
        raise CodalError(f"evalplus file {path} cannot be read: {exc}") from exc


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise CodalError(f"evalplus: no function {name}() where expected (not EvalPlus 0.3.1?)")


def _first_assignment(fn: ast.FunctionDef, name: str) -> str:
    """The value of the first top-level `name = "..."` in a function body (the default)."""
    for node in fn.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == name
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise CodalError(f"evalplus: {fn.name}() assigns no string to {name}")


def _str_list(node: ast.expr, what: str) -> tuple[str, ...]:
    value = ast.literal_eval(node)
    if not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
        raise CodalError(f"evalplus: {what} is not a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class EvalPlusPrompts:
    instruction_prefix: str
    response_prefix: str
    openai_system: str  # the system message of evalplus.gen.util.openai_request.make_request
    eos: tuple[str, ...]  # evalplus.provider.utility.EOS: every provider's base stop strings
    chat_eos: tuple[str, ...]  # what the local providers add for chat models ("\n```\n" in 0.3.1)
    max_new_tokens: int  # DecoderBase's default
    version: str


@lru_cache(maxsize=1)
def evalplus_prompts() -> EvalPlusPrompts:
    run_codegen = _function(_tree("codegen.py"), "run_codegen")
    instruction = _first_assignment(run_codegen, "instruction_prefix")
    response = _first_assignment(run_codegen, "response_prefix")
    system = _first_assignment(
        _function(_tree("gen/util/openai_request.py"), "make_request"), "system_msg"
    )

    eos_node = next(
        (
            n.value
            for n in _tree("provider/utility.py").body
            if isinstance(n, ast.Assign)
            and isinstance(n.targets[0], ast.Name)
            and n.targets[0].id == "EOS"
        ),
        None,
    )
    if eos_node is None:
        raise CodalError("evalplus: provider/utility.py has no EOS list")
    eos = _str_list(eos_node, "EOS")

    # VllmDecoder.__init__: `self.eos += extra_eos_for_direct_completion(...)` for base models,
    # `self.eos += [...]` (a literal) for chat models.
    init = _function(_tree("provider/vllm.py"), "__init__")
    chat = [
        n.value
        for n in ast.walk(init)
        if isinstance(n, ast.AugAssign)
        and isinstance(n.target, ast.Attribute)
        and n.target.attr == "eos"
        and isinstance(n.value, ast.List)
    ]
    if len(chat) != 1:
        raise CodalError("evalplus: cannot find the chat stop strings in provider/vllm.py")
    chat_eos = _str_list(chat[0], "chat stop strings")

    base_init = _function(_tree("provider/base.py"), "__init__")
    names = [a.arg for a in base_init.args.args]
    n_defaults = len(base_init.args.defaults)
    defaults = dict(zip(names[len(names) - n_defaults :], base_init.args.defaults, strict=True))
    if "max_new_tokens" not in defaults:
        raise CodalError("evalplus: DecoderBase has no max_new_tokens default")
    max_new = ast.literal_eval(defaults["max_new_tokens"])

    from importlib.metadata import version

    return EvalPlusPrompts(
        instruction, response, system, eos, chat_eos, int(max_new), version("evalplus")
    )
