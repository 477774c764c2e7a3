"""Acceptance 4: at the recommended settings, a seeded simulation of 1,000 gates per case.

The whole gate (every default metric, Holm over all of them, `--inconclusive fail`) must exit 0
for an unchanged model in at least 80 % of runs, and exit 1 in at least 80 % of runs when one
metric truly drops by twice its margin, for each metric in turn. The noise model is in
`tests/gate_simulation.py`; the figures are printed (run with -s) and quoted in the README.
"""

from __future__ import annotations

import pytest

from codal_bench.codal.scores import AVERAGE, PREFERENCES, preference_metric
from codal_bench.gate.decide import PASS, REGRESSION
from codal_bench.humaneval.scores import metric as he_metric
from tests.gate_simulation import Settings, simulate

GATES = 1000


def recommended() -> Settings:
    """The README's recommended settings: every item (100 per preference, 164 tasks), 10 samples
    per task, and the metrics' default margins (which the recommendation adopts)."""
    margins = {preference_metric(p).name: preference_metric(p).gate_margin for p in PREFERENCES}
    margins[AVERAGE.name] = AVERAGE.gate_margin
    margins["humaneval-plus"] = he_metric("plus", 1).gate_margin
    margins["humaneval"] = he_metric("base", 1).gate_margin
    clean = {k: float(v) for k, v in margins.items() if v is not None}
    assert len(clean) == 8
    return Settings(per_pref=100, samples=10, margins=clean, inconclusive="fail")


def test_recommended_margins_are_within_the_issue_bounds() -> None:
    s = recommended()
    assert s.margins["humaneval-plus"] <= 0.05 and s.margins["humaneval"] <= 0.05
    assert s.margins["codal-average"] <= 0.5


@pytest.mark.slow
def test_recommended_settings_pass_unchanged_and_catch_twice_the_margin() -> None:
    s = recommended()
    unchanged = simulate(s, None, GATES, seed=1)
    lines = [f"unchanged: exit 0 in {unchanged.share(0):.1%}, exit 3 in {unchanged.share(3):.1%}"]
    for name in unchanged.decisions:
        lines.append(f"  {name}: cleared in {unchanged.metric_share(name, PASS):.1%}")
    powers = {}
    for i, name in enumerate(unchanged.decisions):
        out = simulate(s, name, GATES, seed=100 + i)
        powers[name] = out.share(1)
        lines.append(
            f"{name} drops by {2 * s.margins[name]:g}: exit 1 in {out.share(1):.1%} "
            f"(this metric a regression in {out.metric_share(name, REGRESSION):.1%})"
        )
    print("\n".join(lines))
    assert unchanged.share(0) >= 0.80, lines
    assert unchanged.share(1) <= 0.05, lines  # Holm: false regressions stay rare
    for name, power in powers.items():
        assert power >= 0.80, (name, lines)
