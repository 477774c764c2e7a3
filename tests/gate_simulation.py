"""A seeded simulation of the CI gate under realistic noise (issue 16, acceptance 4).

Noise model, per simulated gate (fresh items every gate):
- ratings (the judged benchmark): each item has a true quality q ~ N(6.5, 1.5) clipped to
  [1.5, 9.5]; every judge call returns round(q + N(0, 1.5)) clipped to 1..10, independently for
  the baseline and the candidate (and for each judge repeat; an item's score is their mean).
- pass/fail (the executed benchmark): 164 tasks; task i passes its plus tests with probability
  p_i ~ Beta(0.51, 0.274) (mean 0.65, E[p(1-p)] = 0.10, so one greedy sample per task flips
  10 % of the verdicts each way between two checkpoints), its base tests with
  b_i = p_i + 0.3·p_i·(1 - p_i) >= p_i; one uniform draw per sample decides both
  (base if u < b_i, plus if u < p_i). Each run draws `samples` samples per task.
- a true drop of a metric by D: ratings of the affected items lowered by D before the judge's
  noise (all preferences for the average, one preference for a preference metric); pass
  probabilities scaled by (1 - D / mean) so the expected pass rate drops by exactly D (plus
  only for the plus metric; base and plus together for the base metric).

The differences are fed, as arrays of G gates, through `codal_bench.gate.decide` — the code
`check` runs — with the check's own defaults (10 000 bootstrap replicates, seed 0, alpha 0.05,
Holm over every gated metric).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codal_bench.codal.scores import PREFERENCES
from codal_bench.gate import stats as gs
from codal_bench.gate.decide import MetricInput, decide, exit_codes, test_metric

RATING_SD = 1.5
N_TASKS = 164
BETA = (0.51, 0.274)


@dataclass
class Settings:
    per_pref: int  # rated items per preference
    samples: int  # samples per executed task
    margins: dict[str, float]  # every gated metric's allowed drop
    judge_repeats: int = 1
    inconclusive: str = "fail"
    tasks: tuple[str, ...] = ("ratings", "pass")


@dataclass
class Outcome:
    exit_codes: Any  # (G,)
    decisions: dict[str, Any] = field(default_factory=dict)  # metric -> (G,) codes

    def share(self, code: int) -> float:
        return float(np.mean(self.exit_codes == code))

    def metric_share(self, name: str, code: int) -> float:
        return float(np.mean(self.decisions[name] == code))


def _ratings(rng: np.random.Generator, q: Any, repeats: int) -> Any:
    calls = np.clip(np.rint(q[..., None] + rng.normal(0, RATING_SD, q.shape + (repeats,))), 1, 10)
    return calls.mean(axis=-1)


def simulate(s: Settings, drop: str | None, gates: int = 1000, seed: int = 0) -> Outcome:
    """G gates of one case: `drop` names the metric that truly drops by twice its margin."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, MetricInput] = {}
    if "ratings" in s.tasks:
        diffs = {}
        for pref in PREFERENCES:
            q = np.clip(rng.normal(6.5, 1.5, (s.per_pref, gates)), 1.5, 9.5)
            shift = 0.0
            if drop == "codal-average":
                shift = 2 * s.margins["codal-average"]
            elif drop == f"codal-{pref}":
                shift = 2 * s.margins[drop]
            base = _ratings(rng, q, s.judge_repeats)
            cand = _ratings(rng, q - shift, s.judge_repeats)
            diffs[pref] = base - cand
        for pref in PREFERENCES:
            name = f"codal-{pref}"
            inputs[name] = MetricInput([diffs[pref]], [1.0], s.margins[name], default_sd=2.5)
        inputs["codal-average"] = MetricInput(
            [diffs[p] for p in PREFERENCES],
            [1 / len(PREFERENCES)] * len(PREFERENCES),
            s.margins["codal-average"],
            default_sd=2.5,
        )
    if "pass" in s.tasks:
        p = rng.beta(*BETA, size=(N_TASKS, gates))
        b = p + 0.3 * p * (1 - p)
        p2, b2 = p.copy(), b.copy()
        if drop == "humaneval-plus":
            p2 = p * (1 - 2 * s.margins[drop] / p.mean(axis=0))
        elif drop == "humaneval":
            f = 1 - 2 * s.margins[drop] / b.mean(axis=0)
            b2, p2 = b * f, np.minimum(p, b * f)
        u1 = rng.uniform(size=(N_TASKS, gates, s.samples))
        u2 = rng.uniform(size=(N_TASKS, gates, s.samples))
        for name, x1, x2 in (("humaneval-plus", p, p2), ("humaneval", b, b2)):
            d = (u1 < x1[..., None]).mean(axis=-1) - (u2 < x2[..., None]).mean(axis=-1)
            inputs[name] = MetricInput(
                [d], [1.0], s.margins[name], binary=s.samples == 1, samples=s.samples
            )
    names = list(inputs)
    tests = [
        test_metric(
            inputs[n], n_tests=len(names), n_boot=10000, seed=0, alpha=gs.ALPHA, bounds=False
        )
        for n in names
    ]
    _, codes = decide([inputs[n] for n in names], tests, gs.ALPHA)
    return Outcome(exit_codes(codes, s.inconclusive), dict(zip(names, codes, strict=True)))
