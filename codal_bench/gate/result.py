"""The gate's result types, margins and run-compatibility checks (see `gate` for the rule).

Kept apart from the statistics so that the reports and the CLI can import the data shapes
without pulling in numpy and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..types import BadFlag, CodalError
from .diff import DiffResult

ALPHA = 0.05

Decision = Literal["pass", "regression", "inconclusive"]


class CheckError(CodalError):
    """The check could not run (baseline missing, different item sets, nothing to compare)."""

    exit_code = 4


@dataclass
class MetricResult:
    name: str
    task: str
    kind: str  # "rating" (a mean score) or "pass" (a pass rate)
    n_items: int
    baseline: float
    candidate: float
    drop: float
    lo: float  # one-sided 95 % lower bound of the drop
    hi: float  # one-sided 95 % upper bound of the drop
    margin: float
    noise_floor: float | None  # one-sided 95 % A/A band of the judge, when repeats measured it
    p_no_drop: float  # one-sided test of H0: drop <= 0 (informative)
    p_margin: float  # one-sided test of H0: drop <= max(margin, noise_floor) (decides)
    p_adjusted: float  # Holm-adjusted p_margin
    se: float
    mdd: float  # smallest true drop called a regression with 80 % power
    test: str
    decision: Decision = "inconclusive"
    reason: str = ""
    excluded: int = 0
    elapsed_s: float = 0.0
    discordant: tuple[int, int] | None = None  # (pass→fail, fail→pass) for one-sample pass@1
    p_pass: float = 1.0  # one-sided test of H0: drop >= margin (below alpha: pass)
    need_items: int | None = None  # items to decide a drop of the margin (stats.required_factor)
    need_samples: int | None = None  # or samples per item on these items (pass rates)


@dataclass
class CheckResult:
    baseline_run: str
    candidate_run: str
    baseline_model: str
    candidate_model: str
    metrics: list[MetricResult]
    alpha: float = ALPHA
    inconclusive_policy: str = "fail"
    n_boot: int = 10000
    seed: int = 0
    diff: DiffResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all pass, 1 any regression, 3 inconclusive under `--inconclusive fail`."""
        decisions = {m.decision for m in self.metrics}
        if "regression" in decisions:
            return 1
        if "inconclusive" in decisions and self.inconclusive_policy == "fail":
            return 3
        return 0

    @property
    def verdict(self) -> str:
        return {0: "pass", 1: "regression", 3: "inconclusive"}[self.exit_code]


def parse_max_drop(pairs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """`--max-drop METRIC=VALUE` (repeatable) → {metric: margin}."""
    out: dict[str, float] = {}
    for p in pairs:
        name, sep, value = p.partition("=")
        try:
            margin = float(value)
        except ValueError:
            margin = -1.0
        if not sep or not name.strip() or not margin >= 0:
            raise BadFlag(f"--max-drop {p!r}: expected METRIC=VALUE with VALUE >= 0")
        out[name.strip()] = margin
    return out


def margin_for(name: str, default: float, max_drop: dict[str, float]) -> float:
    """User margin by full name, then by the unprefixed name (a task's variant), else the
    metric's own default (its task's `gate_margin`)."""
    short = name.rsplit("/", 1)[-1]
    for key in (name, short):
        if key in max_drop:
            return max_drop[key]
    return default


def check_same_settings(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Refuse to compare runs whose tasks were not run alike (`codal_bench.comparable`)."""
    from .. import comparable

    diffs = [
        f"{a['task']}.{k}" for k in comparable.differences(a, b) if k not in ("items", "n_items")
    ]
    if diffs:
        raise CheckError(
            "baseline and candidate were run with different settings "
            f"({', '.join(diffs)}): rerun the candidate like the baseline"
        )


def check_same_items(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> None:
    ia = {(r["task"], r["item_id"]) for r in rows_a}
    ib = {(r["task"], r["item_id"]) for r in rows_b}
    if ia != ib:
        only_a, only_b = sorted(ia - ib), sorted(ib - ia)
        ex = ", ".join(f"{t}:{i}" for t, i in (only_a + only_b)[:5])
        raise CheckError(
            f"baseline and candidate cover different items ({len(only_a)} only in the baseline, "
            f"{len(only_b)} only in the candidate, e.g. {ex})"
        )
