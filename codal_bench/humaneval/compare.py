"""Comparing a candidate's outputs with expected ones, in the parent, by EvalPlus' rules.

The child sends values, never objects: `decode` rebuilds plain builtins from the typed JSON that
`child.typed` writes, so no candidate-defined `__eq__` ever runs here. Most tasks compare digests
(exact match); tasks whose expected outputs are floats, or that have an `atol` or the special
`find_zero` oracle, compare values with the rules below.
"""

from __future__ import annotations

import math
from typing import Any


class Undecodable(ValueError):
    """The child sent something that is not a well-formed typed value."""


class _Opaque:
    """Stands for an object of a type we do not rebuild: equal to nothing, not even itself."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


def decode(v: Any) -> Any:
    """Rebuild a value from `child.typed`'s encoding (scalars plain, containers tagged)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if not isinstance(v, list) or not v or not isinstance(v[0], str):
        raise Undecodable(repr(v)[:80])
    tag, rest = v[0], v[1:]
    try:
        if tag == "L":
            return [decode(e) for e in rest]
        if tag == "T":
            return tuple(decode(e) for e in rest)
        if tag == "D":
            if len(rest) % 2:
                raise Undecodable("odd dict")
            return {decode(k): decode(x) for k, x in zip(rest[0::2], rest[1::2], strict=False)}
        if tag == "S":
            return {decode(e) for e in rest}
        if tag == "F":
            return frozenset(decode(e) for e in rest)
        if tag == "I":
            return int(rest[0], 16)
        if tag == "C":
            return complex(float(rest[0]), float(rest[1]))
        if tag == "B":
            return bytes.fromhex(rest[0])
        if tag == "?":
            return _Opaque()
    except (TypeError, ValueError, IndexError, RecursionError) as e:
        raise Undecodable(str(e)[:80]) from e
    raise Undecodable(f"unknown tag {tag!r}")


def is_floats(x: Any) -> bool:
    """EvalPlus' test for "this expected output is floating point"."""
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def poly(xs: list[Any], x: Any) -> float:
    """HumanEval/32's polynomial, as its prompt defines it."""
    return float(sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs)))


def _allclose(out: Any, exp: Any, atol: float) -> bool:
    """`numpy.allclose` on equal shapes only.

    A deliberate deviation from EvalPlus 0.3.1, which lets numpy broadcast: there an output
    ``[[]]`` "matches" ``[7.7]`` (shapes (1, 0) and (1,) broadcast to an empty array). Here a
    shape that differs from the expected output's is a wrong answer.
    """
    import numpy as np  # only value-mode tasks get here

    a, b = np.asarray(out), np.asarray(exp)
    if a.shape != b.shape or a.dtype == object or b.dtype == object:
        return False
    return bool(np.allclose(a, b, rtol=1e-07, atol=atol))


def match_values(
    outs: list[Any], exps: list[Any], inputs: list[Any], atol: float, entry_point: str
) -> int | None:
    """Index of the first output that fails EvalPlus' checks, or None if all pass.

    Mirrors EvalPlus 0.3.1 in order, including that once an expected output is a float the
    tolerance of 1e-6 stays on for the later inputs of the same group, and that a failed check
    ends the group. Unlike 0.3.1, a `find_zero` output within `atol` counts as a pass, and
    tolerant comparison needs equal shapes (see `_allclose`).
    """
    for i, (out, exp) in enumerate(zip(outs, exps, strict=False)):
        try:
            if entry_point == "find_zero":
                if not abs(poly(inputs[i][0], out)) <= atol:
                    return i
                continue
            exact = out == exp
            if atol == 0 and is_floats(exp):
                atol = 1e-6
            if not exact and atol != 0:
                if type(out) is not type(exp):
                    return i
                if isinstance(exp, (list, tuple)) and len(out) != len(exp):
                    return i
                if not _allclose(out, exp, atol):
                    return i
            elif not exact:
                return i
        except Exception:
            return i
    if len(outs) < len(exps):
        return len(outs)
    return None
