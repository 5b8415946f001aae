"""How far apart two conditions' spectra are centred, with a bootstrap interval over seeds.

Let d be the 2-Wasserstein distance between spectra (:mod:`analysis.distances`). Where the
spectra of a setup's seeds are perturbations of one another with a stable matching, d is the
Euclidean distance between the matched eigenvalue vectors (over sqrt(k)), and for independent
seeds X, X' of condition A and Y, Y' of condition B

    E d(X, Y)^2  = |mu_A - mu_B|^2 + tr Sigma_A + tr Sigma_B,    E d(X, X')^2 = 2 tr Sigma_A,

so that

    effect^2 = E d(X, Y)^2 - E d(X, X')^2 / 2 - E d(Y, Y')^2 / 2 = |mu_A - mu_B|^2

is the squared distance between the two centres: it measures where the spectra are, and the
spreads cancel (two setups with one centre and different seed-to-seed scatter have effect 0).
Each expectation is estimated by the mean over pairs of distinct seeds, an unbiased
U-statistic, so the estimate of effect^2 can be negative when the true effect is small.

The effect is read against the seed-to-seed spread ``s = sqrt((E d(X, X')^2 + E d(Y, Y')^2)
/ 2)``, the typical distance between two seeds of one setup (the paper's yardstick for
conjugacy): ``ratio = effect / s``. Its interval comes from SciPy's bootstrap over seeds
(percentile method, on the signed ``ratio^2`` and mapped through the square root, which is
monotone):

* **paired** conditions, which hold the same seeds of one source (a sweep, where a seed fixes
  the data split, the batch order, the replica noise and the initialisation of every
  condition): one draw of seeds serves both conditions, so what the seeds share stays shared.
  The between-condition mean then uses pairs of *different* seeds only, so the shared part of
  a seed does not bias the centre distance;
* otherwise each condition's seeds are drawn on their own (stratified bootstrap).

One bootstrap call covers every pair of conditions of two seed groups at once, so a sweep
with a thousand conditions costs a few matrix products per condition.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

EFFECT_COLUMNS = ["condition_a", "condition_b", "n_seeds_a", "n_seeds_b", "paired", "spread_a",
                  "spread_b", "spread", "effect", "effect_low", "effect_high", "ratio",
                  "ratio_low", "ratio_high"]


@dataclass(frozen=True)
class SeedGroup:
    """Conditions of one source that hold exactly the same seeds, in one seed order.

    ``members[c]``: the unit indices of condition ``c``, ordered by seed, so position ``i``
    is the same seed in every member.
    """

    source: str
    seeds: tuple
    members: dict


def seed_groups(units: pd.DataFrame) -> list[SeedGroup]:
    """Group conditions by (source, set of seeds); conditions with one seed are left out."""
    groups: dict[tuple, dict] = {}
    for condition, frame in units.groupby("condition", sort=True):
        if len(frame) < 2:
            continue
        frame = frame.sort_values("seed")
        source = str(frame["source"].iloc[0]) if "source" in frame else ""
        key = (source, tuple(frame["seed"].tolist()))
        groups.setdefault(key, {})[condition] = frame.index.to_numpy()
    return [SeedGroup(source, seeds, members) for (source, seeds), members in groups.items()]


def _counts(indices: np.ndarray, n_items: int) -> np.ndarray:
    """Bootstrap index draws ``(..., n)`` as counts ``(..., n_items)``."""
    indices = np.asarray(indices)
    flat = indices.reshape(-1, indices.shape[-1])
    counts = np.zeros((flat.shape[0], n_items))
    np.add.at(counts, (np.arange(flat.shape[0])[:, None], flat), 1.0)
    return counts


def _quadratic(weights: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``sum_ij w_bi block_ij w_bj`` for each row b of ``weights``."""
    return np.einsum("bi,bi->b", weights @ block, weights)


def _within(weights, block):
    """Mean squared distance over pairs of distinct seeds of one condition, per draw."""
    n_pairs = weights.sum(axis=1) ** 2 - (weights**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _quadratic(weights, block) / n_pairs


def _between(weights_a, weights_b, block, paired):
    """Mean squared distance between the conditions' seeds, per draw (distinct seeds if paired)."""
    if not paired:
        total = np.einsum("bi,bi->b", weights_a @ block, weights_b)
        return total / (weights_a.sum(axis=1) * weights_b.sum(axis=1))
    same_seed = (weights_a**2) @ np.diag(block)
    n_pairs = weights_a.sum(axis=1) ** 2 - (weights_a**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (_quadratic(weights_a, block) - same_seed) / n_pairs


def _ratio_and_effect_squared(between, within_a, within_b):
    effect_squared = between - within_a / 2 - within_b / 2
    spread_squared = (within_a + within_b) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio_squared = np.where(spread_squared > 0, effect_squared / spread_squared,
                                 np.where(effect_squared > 0, np.inf, 0.0))
    return ratio_squared, effect_squared


class _BlockStatistic:
    """The vectorised bootstrap statistic of every pair across two seed groups (or within one)."""

    def __init__(self, squared_distances, first: SeedGroup, second: SeedGroup | None):
        self.paired = second is None
        self.first, self.second = first, first if second is None else second
        names_a, names_b = list(self.first.members), list(self.second.members)
        self.pairs = (list(itertools.combinations(names_a, 2)) if self.paired
                      else list(itertools.product(names_a, names_b)))
        # a is always a member of the first group, b of the second (the first when paired).
        self.blocks = {(a, b): squared_distances[np.ix_(self.first.members[a], self.second.members[b])]
                       for a, b in self.pairs}
        self.within_blocks = {c: squared_distances[np.ix_(m, m)]
                              for group in (self.first, self.second) for c, m in group.members.items()}

    def __call__(self, *indices, axis=-1):
        weights_a = _counts(indices[0], len(self.first.seeds))
        weights_b = weights_a if self.paired else _counts(indices[1], len(self.second.seeds))
        return self.evaluate(weights_a, weights_b)

    def evaluate(self, weights_a, weights_b):
        """``(2 * n_pairs, n_draws)``: signed ratio^2 of every pair, then effect^2."""
        within = {}
        for c, block in self.within_blocks.items():
            weights = weights_a if c in self.first.members else weights_b
            within[c] = _within(weights, block)
        ratios, effects = [], []
        for a, b in self.pairs:
            between = _between(weights_a, weights_b, self.blocks[(a, b)], self.paired)
            ratio_squared, effect_squared = _ratio_and_effect_squared(between, within[a], within[b])
            ratios.append(ratio_squared)
            effects.append(effect_squared)
        return np.stack(ratios + effects)


def _signed_root(values):
    values = np.asarray(values, dtype=float)
    return np.sqrt(np.clip(values, 0.0, None))


def pair_effects(units: pd.DataFrame, squared_distances: np.ndarray, *, confidence: float = 0.90,
                 n_resamples: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """Effect, ratio and their ``confidence`` bootstrap intervals for every pair of conditions.

    ``units``: one row per (condition, seed) with ``condition``, ``seed`` and optional
    ``source``, in the order of ``squared_distances`` (``(n_units, n_units)``, squared
    2-Wasserstein, zero diagonal). Conditions with a single seed get no row here (the caller
    names them). Columns: :data:`EFFECT_COLUMNS`; ``effect`` in eigenvalue units, ``ratio``
    = effect / spread, both the square root of the clipped signed estimate.
    """
    units = units.reset_index(drop=True)
    groups = seed_groups(units)
    rows = []
    for index_a, first in enumerate(groups):
        for second in [None] + groups[index_a + 1:]:
            statistic = _BlockStatistic(squared_distances, first, second)
            if statistic.pairs:
                rows += _block_rows(statistic, confidence, n_resamples, random_state)
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def _block_rows(statistic: _BlockStatistic, confidence, n_resamples, random_state):
    first, second = statistic.first, statistic.second
    data = (np.arange(len(first.seeds)),) if statistic.paired else \
        (np.arange(len(first.seeds)), np.arange(len(second.seeds)))
    point = statistic.evaluate(np.ones((1, len(first.seeds))), np.ones((1, len(second.seeds))))[:, 0]
    # The seed resamples are the same for every block (one generator seed): a sweep's blocks
    # are then bootstrapped jointly over the seeds they share.
    with warnings.catch_warnings():
        # A pair whose every draw gives one value (two conditions at zero distance) is a
        # valid, degenerate interval; SciPy warns about it for every such pair.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(data, statistic, n_resamples=n_resamples, vectorized=True,
                                 paired=False, confidence_level=confidence, method="percentile",
                                 rng=np.random.default_rng(random_state))
    low, high = result.confidence_interval
    n_pairs = len(statistic.pairs)
    rows = []
    for position, (a, b) in enumerate(statistic.pairs):
        spread_a = _spread(statistic.within_blocks[a])
        spread_b = _spread(statistic.within_blocks[b])
        rows.append({
            "condition_a": a, "condition_b": b, "n_seeds_a": len(first.seeds),
            "n_seeds_b": len(second.seeds), "paired": statistic.paired,
            "spread_a": spread_a, "spread_b": spread_b,
            "spread": float(np.sqrt((spread_a**2 + spread_b**2) / 2)),
            "effect": float(_signed_root(point[n_pairs + position])),
            "effect_low": float(_signed_root(low[n_pairs + position])),
            "effect_high": float(_signed_root(high[n_pairs + position])),
            "ratio": float(_signed_root(point[position])),
            "ratio_low": float(_signed_root(low[position])),
            "ratio_high": float(_signed_root(high[position])),
        })
    return rows


def _spread(block: np.ndarray) -> float:
    """Root mean squared distance between distinct seeds of one condition."""
    n = block.shape[0]
    return float(np.sqrt(block.sum() / (n * (n - 1))))
