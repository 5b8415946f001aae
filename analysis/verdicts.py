"""Verdicts: every pair of conditions is equivalent, distinct or undetermined.

The question is the paper's, "do these two setups train the same way?", asked as an
equivalence test (Lakens 2017; the two one-sided tests): the effect is the distance between
the two conditions' spectral centres in units of their seed-to-seed spread
(:mod:`analysis.effects`), and the margin says how close is "the same". With a
``confidence`` bootstrap interval [low, high] for the effect ratio:

* **equivalent** when high < margin (the centres are provably within the margin),
* **distinct** when low > margin (provably beyond it),
* **undetermined** otherwise, with the number of seeds that would likely settle it, and
  always when either condition has fewer than :data:`MIN_SEEDS_FOR_VERDICT` seeds.

At confidence 0.90 this is the two one-sided tests at level 0.05 each. More seeds only narrow
the interval around the true effect, so a true effect inside the margin tends to
"equivalent", never to "distinct"; a difference test, by contrast, resolves any finite
difference away once there are enough seeds.

The margin is never below the estimator's resolution (:mod:`analysis.resolution`): for a pair
whose coarser resolution exceeds ``margin`` spreads, the margin becomes that resolution, so a
difference the estimator cannot resolve is never called distinct.
"""

from __future__ import annotations

import math

import numpy as np

EQUIVALENT, DISTINCT, UNDETERMINED = "equivalent", "distinct", "undetermined"
VERDICTS = (EQUIVALENT, DISTINCT, UNDETERMINED)
MAX_SEEDS_NEEDED = 10_000  # beyond this an estimate of the seeds needed means "not in practice"
# Fewer seeds than this per condition leave a pair undetermined whatever its interval: a
# bootstrap over 2 seeds draws one seed twice half the time and then sees no spread at all
# (two seeds of each of two conditions gave "equivalent, effect 0, interval 0-0"), and 6 is
# the fewest at which the calibration (tests/benchmarks/calibrate_verdicts.py) measured the
# verdicts: no false "equivalent" there.
MIN_SEEDS_FOR_VERDICT = 6


def interval_inclusion(low: float, high: float, margin: float) -> str:
    """Equivalent when the interval lies below the margin, distinct when above it."""
    if high < margin:
        return EQUIVALENT
    if low > margin:
        return DISTINCT
    return UNDETERMINED


DECISION_RULES = {"interval-inclusion": interval_inclusion}


def decide(rule: str, low: float, high: float, margin: float, n_seeds: int) -> str:
    """The verdict of the registered ``rule``, undetermined below the minimum seeds.

    ``n_seeds`` is the smaller condition's seed count; the minimum applies to every rule,
    since no rule can trust an interval bootstrapped from too few seeds.
    """
    if n_seeds < MIN_SEEDS_FOR_VERDICT:
        return UNDETERMINED
    return DECISION_RULES[rule](low, high, margin)


def applied_margin(margin: float, resolution: float, spread: float) -> tuple[float, str]:
    """The margin in spreads for one pair, and what set it ("seed spread" or "resolution")."""
    if np.isfinite(resolution) and spread > 0 and resolution / spread > margin:
        return resolution / spread, "resolution"
    return margin, "seed spread"


def seeds_needed(ratio: float, low: float, high: float, margin: float, n_seeds: int) -> float:
    """Seeds per condition that would likely put the interval on one side of the margin.

    The interval's half-width on the side facing the margin shrinks as 1 / sqrt(n); the
    answer is the n at which it would just reach the margin from the current estimate.
    NaN when already decided; :data:`MAX_SEEDS_NEEDED` + 1 when the estimate sits on the
    margin (no number of seeds would settle it in practice).
    """
    if high < margin or low > margin:
        return float("nan")
    gap = margin - ratio
    half_width = (high - ratio) if gap > 0 else (ratio - low)
    if abs(gap) < 1e-12 or half_width <= 0:
        return float(MAX_SEEDS_NEEDED + 1)
    needed = n_seeds * (half_width / abs(gap)) ** 2
    return float(min(math.ceil(needed), MAX_SEEDS_NEEDED + 1))
