"""The sandbox child's digests: equal exactly when Python `==` says the outputs are equal.

Expected outputs are kept as digests, so a digest that split equal values would fail honest
candidates, and one that merged unequal values would pass wrong ones.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from types import ModuleType

import pytest

import codal_bench.humaneval as humaneval_pkg


def _child() -> ModuleType:
    path = Path(humaneval_pkg.__file__).with_name("child.py")
    spec = importlib.util.spec_from_file_location("codal_child_under_test", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _child()
BIG = 5000  # above the child's threshold for its array path
SMALL = 100


@pytest.mark.parametrize("n", [SMALL, BIG])
def test_equal_numbers_of_other_types_share_a_digest(n: int) -> None:
    ints = list(range(n))
    assert child.digest(ints) == child.digest([float(i) for i in ints])
    assert child.digest(ints) == child.digest([i if i % 2 else float(i) for i in ints])
    zeros = [0.0] * n
    assert child.digest(zeros) == child.digest([-0.0] * n) == child.digest([0] * n)
    assert child.digest([True] + ints[1:]) == child.digest([1] + ints[1:])


@pytest.mark.parametrize("n", [SMALL, BIG])
def test_unequal_numbers_get_different_digests(n: int) -> None:
    base = [0.5] * n
    assert child.digest(base) != child.digest([0.5] * (n - 1) + [0.25])
    big = 2**53 + 1  # not a double: must not collide with its rounded float
    assert child.digest([big] * n) != child.digest([float(big)] * n)
    assert child.digest([10**400] * n) == child.digest([10**400] * n)
    assert child.digest([10**400] * n) != child.digest([10**400 + 1] * n)
    assert child.digest(base) != child.digest(tuple(base))
    nan = [float("nan")] * n  # nan equals nothing, not even itself
    assert child.digest(nan) != child.digest(nan)


def test_both_number_paths_give_the_same_bytes() -> None:
    values = [i * 0.25 - 7 for i in range(BIG)]
    packed = struct.pack(f"<{BIG}d", *values)
    assert child._doubles(values, list) == packed
    assert child._doubles(tuple(values), tuple) == packed
    assert child._doubles(values[:SMALL], list) == packed[: 8 * SMALL]


def test_strings_hash_their_length_and_utf8() -> None:
    text = "héllo\ud800" * 10_000  # a lone surrogate must hash, not crash
    want = child.blake2b(
        f"s{len(text)}:{text}".encode("utf-8", "surrogatepass"), digest_size=16
    ).hexdigest()
    assert child.digest(text) == want
    assert child.digest("ab") != child.digest("ab ")
