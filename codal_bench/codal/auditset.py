"""The built-in judge-audit set: correct solutions and mechanically broken variants of them.

For people without a run of their own. Each problem's canonical solution is normalised (parsed and
printed again with `ast.unparse`, which drops comments and re-quotes strings), then edited once:

- one *correct* variant, edited without changing what it computes (a local variable renamed, a
  comparison written the other way round, `a < b` as `b > a`, or a returned expression bound to
  a name first);
- *broken* variants, each with one small edit that does change it (a comparison operator flipped
  or made inclusive, an integer constant off by one, an arithmetic or boolean operator swapped,
  and, as a last resort, the first `return` made to return None).

Every variant is one edit away from the same normalised code, so the size of its difference from
the reference (the canonical solution as published) does not tell a correct variant from a broken
one: the judge has to read the code. The sandbox then grades every variant; a correct variant that
fails or a broken one that passes (an edit that changed nothing observable) is dropped, and no
variant's text equals the reference's.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

STEP = 8  # every 8th problem: 21 of HumanEval+'s 164, spread over the whole set
BROKEN_PER_PROBLEM = 2

_MIRROR: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE,
    ast.Eq: ast.Eq, ast.NotEq: ast.NotEq,
}  # fmt: skip
_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}  # fmt: skip
_ARITH: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One answer of the audit set, before the sandbox has graded it."""

    task_id: str
    kind: str  # "correct:rename", "broken:comparison", ...
    expect_pass: bool
    answer: str


def picked(problems: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """The fixed problems of the set (every STEP-th, in file order), the first `limit` of them."""
    chosen = problems[::STEP]
    return chosen[:limit] if limit is not None else chosen


def variants(problem: dict[str, Any]) -> list[Variant]:
    """Every candidate variant of one problem, correct ones first, in a fixed order."""
    source = problem["prompt"] + problem["canonical_solution"]
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out: list[Variant] = []
    preserving: tuple[tuple[str, Callable[[ast.FunctionDef], bool]], ...] = (
        ("rename", _rename), ("mirror", _mirror), ("bind", _bind_return),
    )  # fmt: skip
    for kind, edit in preserving:
        v = _edited(tree, problem["entry_point"], edit)
        if v is not None:
            out.append(Variant(problem["task_id"], f"correct:{kind}", True, _fenced(v)))
            break
    for kind, edit in _BREAKS:
        v = _edited(tree, problem["entry_point"], edit)
        if v is not None:
            out.append(Variant(problem["task_id"], f"broken:{kind}", False, _fenced(v)))
    reference = reference_text(problem)
    return [v for v in out if v.answer != reference]


def reference_text(problem: dict[str, Any]) -> str:
    """What the judge sees as the reference answer: the canonical solution as published."""
    return str(problem["prompt"] + problem["canonical_solution"])


def select(graded: list[tuple[Variant, str]]) -> list[tuple[Variant, str]]:
    """Keep variants whose sandbox verdict agrees with their intent: per problem the first
    correct one that passes and the first BROKEN_PER_PROBLEM broken ones that do not."""
    kept: list[tuple[Variant, str]] = []
    seen: dict[tuple[str, bool], int] = {}
    for v, status in graded:
        if (status == "pass") != v.expect_pass:
            continue
        n = seen.get((v.task_id, v.expect_pass), 0)
        if n < (1 if v.expect_pass else BROKEN_PER_PROBLEM):
            kept.append((v, status))
            seen[(v.task_id, v.expect_pass)] = n + 1
    return kept


def _fenced(code: str) -> str:
    return f"```python\n{code}\n```\n"


def _edited(
    tree: ast.Module, entry_point: str, edit: Callable[[ast.FunctionDef], bool]
) -> str | None:
    """The program with `edit` applied to its entry point, or None when the edit does not apply."""
    copied = copy.deepcopy(tree)
    fn = next(
        (n for n in copied.body if isinstance(n, ast.FunctionDef) and n.name == entry_point), None
    )
    if fn is None or not edit(fn):
        return None
    return ast.unparse(ast.fix_missing_locations(copied))


def _body_nodes(fn: ast.FunctionDef) -> Iterator[ast.AST]:
    """Nodes of the function body in a fixed order, the docstring left out."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    for stmt in body:
        yield from ast.walk(stmt)


def _rename(fn: ast.FunctionDef) -> bool:
    params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)}
    stored = [
        n.id
        for n in _body_nodes(fn)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in params
    ]
    if not stored:
        return False
    old = stored[0]
    new = f"{old}_value"
    for n in _body_nodes(fn):
        if isinstance(n, ast.Name) and n.id == old:
            n.id = new
    return True


def _mirror(fn: ast.FunctionDef) -> bool:
    for n in _body_nodes(fn):
        if isinstance(n, ast.Compare) and len(n.ops) == 1 and type(n.ops[0]) in _MIRROR:
            n.left, n.comparators = n.comparators[0], [n.left]
            n.ops = [_MIRROR[type(n.ops[0])]()]
            return True
    return False


def _bind_return(fn: ast.FunctionDef) -> bool:
    for i, stmt in enumerate(fn.body):
        if isinstance(stmt, ast.Return) and stmt.value is not None:
            name = "result_value"
            fn.body[i : i + 1] = [
                ast.Assign([ast.Name(name, ast.Store())], stmt.value),
                ast.Return(ast.Name(name, ast.Load())),
            ]
            return True
    return False


def _flip_comparison(fn: ast.FunctionDef) -> bool:
    for n in _body_nodes(fn):
        if isinstance(n, ast.Compare) and type(n.ops[0]) in _FLIP:
            n.ops = [_FLIP[type(n.ops[0])](), *n.ops[1:]]
            return True
    return False


def _off_by_one(fn: ast.FunctionDef) -> bool:
    for n in _body_nodes(fn):
        if isinstance(n, ast.Constant) and type(n.value) is int:
            n.value += 1
            return True
    return False


def _swap_arithmetic(fn: ast.FunctionDef) -> bool:
    for n in _body_nodes(fn):
        if isinstance(n, ast.BinOp | ast.AugAssign) and type(n.op) in _ARITH:
            n.op = _ARITH[type(n.op)]()
            return True
    return False


def _swap_boolean(fn: ast.FunctionDef) -> bool:
    for n in _body_nodes(fn):
        if isinstance(n, ast.BoolOp):
            n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
            return True
    return False


def _return_none(fn: ast.FunctionDef) -> bool:
    for n in _body_nodes(fn):
        if isinstance(n, ast.Return) and n.value is not None:
            n.value = ast.Constant(None)
            return True
    return False


_BREAKS: tuple[tuple[str, Callable[[ast.FunctionDef], bool]], ...] = (
    ("comparison", _flip_comparison),
    ("constant", _off_by_one),
    ("arithmetic", _swap_arithmetic),
    ("boolean", _swap_boolean),
    ("return", _return_none),
)
