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
(bias-corrected and accelerated by default, on the signed ``ratio^2`` and mapped through
the square root, which is monotone; the percentile method is an option):

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

# Pairs judged by one bootstrap call: SciPy keeps every draw of every output, 2 x 4,000 x
# 2,000 floats (128 MB) here. Every call draws the same seeds (one generator seed), so the
# chunks of one sweep are bootstrapped jointly.
MAX_PAIRS_PER_CALL = 4000
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


def _quadratic_forms(weights: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """``sum_ij w_bi B_mij w_bj`` for every draw b and block m: ``(n_blocks, n_draws)``.

    ``blocks``: ``(n_blocks, n, n)``; one matrix product over all blocks side by side.
    """
    n_blocks, n = blocks.shape[:2]
    side_by_side = blocks.transpose(1, 0, 2).reshape(n, n_blocks * n)  # (n, m * n)
    products = (weights @ side_by_side).reshape(-1, n_blocks, n)  # (B, m, n)
    return np.einsum("bmj,bj->mb", products, weights)


def _distinct_pairs(weights: np.ndarray) -> np.ndarray:
    """Number of pairs of distinct units in each draw: ``(sum w)^2 - sum w^2``."""
    return weights.sum(axis=1) ** 2 - (weights**2).sum(axis=1)


def _ratio_and_effect_squared(between, within_a, within_b):
    effect_squared = between - within_a / 2 - within_b / 2
    spread_squared = (within_a + within_b) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio_squared = np.where(spread_squared > 0, effect_squared / spread_squared,
                                 np.where(effect_squared > 0, np.inf, 0.0))
    return ratio_squared, effect_squared


class _BlockStatistic:
    """The vectorised bootstrap statistic of the pairs of ``rows`` (conditions of the first
    group) with the second group's conditions (with the later ones of the first, when paired)."""

    def __init__(self, squared_distances, first: SeedGroup, second: SeedGroup | None, rows):
        self.paired = second is None
        self.first, self.second = first, first if second is None else second
        names_b = list(self.second.members)
        order = {name: position for position, name in enumerate(names_b)}
        self.partners = {a: [b for b in names_b if not self.paired or order[b] > order[a]] for a in rows}
        self.pairs = [(a, b) for a in rows for b in self.partners[a]]
        self.cross, self.same_seed = {}, {}
        for a, partners in self.partners.items():
            columns = np.concatenate([self.second.members[b] for b in partners]) if partners else []
            self.cross[a] = squared_distances[np.ix_(self.first.members[a], np.asarray(columns, dtype=int))]
            if self.paired and partners:  # d(a at seed i, b at seed i), for every partner b
                self.same_seed[a] = np.stack([np.diag(squared_distances[np.ix_(
                    self.first.members[a], self.second.members[b])]) for b in partners])
        self.within_blocks = {id(group): np.stack([squared_distances[np.ix_(m, m)] for m in group.members.values()])
                              for group in (self.first, self.second)}

    def __call__(self, *indices, axis=-1):
        # SciPy hands draws with leading batch axes (jackknife samples, batches of draws);
        # the two samples' batch shapes broadcast against each other.
        indices = [np.asarray(i) for i in indices]
        batch = np.broadcast_shapes(*(i.shape[:-1] for i in indices))
        indices = [np.broadcast_to(i, batch + i.shape[-1:]) for i in indices]
        weights_a = _counts(indices[0], len(self.first.seeds))
        weights_b = weights_a if self.paired else _counts(indices[1], len(self.second.seeds))
        values = self.evaluate(weights_a, weights_b)  # (2 * n_pairs, prod(batch))
        return values.reshape(values.shape[:1] + batch)

    def within(self, group: SeedGroup, weights) -> dict:
        """Mean squared distance over pairs of distinct seeds, per condition and draw."""
        with np.errstate(invalid="ignore", divide="ignore"):
            means = _quadratic_forms(weights, self.within_blocks[id(group)]) / _distinct_pairs(weights)
        return dict(zip(group.members, means))

    def evaluate(self, weights_a, weights_b):
        """``(2 * n_pairs, n_draws)``: signed ratio^2 of every pair, then effect^2."""
        within_a = self.within(self.first, weights_a)
        within_b = within_a if self.paired else self.within(self.second, weights_b)
        n_draws, n_b = weights_a.shape[0], weights_b.shape[1]
        ratios, effects = [], []
        for a, partners in self.partners.items():
            if not partners:
                continue
            products = (weights_a @ self.cross[a]).reshape(n_draws, len(partners), n_b)
            total = np.einsum("bpj,bj->pb", products, weights_b)  # (partners, draws)
            with np.errstate(invalid="ignore", divide="ignore"):
                if self.paired:
                    between = (total - self.same_seed[a] @ (weights_a**2).T) / _distinct_pairs(weights_a)
                else:
                    between = total / (weights_a.sum(axis=1) * weights_b.sum(axis=1))
            partner_within = np.stack([within_b[b] for b in partners])
            ratio_squared, effect_squared = _ratio_and_effect_squared(between, within_a[a], partner_within)
            ratios.append(ratio_squared)
            effects.append(effect_squared)
        return np.concatenate(ratios + effects)


def _signed_root(values):
    values = np.asarray(values, dtype=float)
    return np.sqrt(np.clip(values, 0.0, None))


def pair_effects(units: pd.DataFrame, squared_distances: np.ndarray, *, confidence: float = 0.90,
                 n_resamples: int = 2000, random_state: int = 0,
                 interval_method: str = "BCa") -> pd.DataFrame:
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
            for chunk in _row_chunks(first, second):
                statistic = _BlockStatistic(squared_distances, first, second, chunk)
                if statistic.pairs:
                    rows += _block_rows(statistic, confidence, n_resamples, random_state,
                                        interval_method)
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def _row_chunks(first: SeedGroup, second: SeedGroup | None):
    """The first group's conditions in runs of at most :data:`MAX_PAIRS_PER_CALL` pairs."""
    names = list(first.members)
    n_partners = len(second.members) if second is not None else None
    chunk, n_pairs = [], 0
    for position, name in enumerate(names):
        pairs = n_partners if n_partners is not None else len(names) - position - 1
        if chunk and n_pairs + pairs > MAX_PAIRS_PER_CALL:
            yield chunk
            chunk, n_pairs = [], 0
        chunk.append(name)
        n_pairs += pairs
    if chunk:
        yield chunk


def _block_rows(statistic: _BlockStatistic, confidence, n_resamples, random_state, interval_method):
    first, second = statistic.first, statistic.second
    data = (np.arange(len(first.seeds)),) if statistic.paired else \
        (np.arange(len(first.seeds)), np.arange(len(second.seeds)))
    ones_a, ones_b = np.ones((1, len(first.seeds))), np.ones((1, len(second.seeds)))
    point = statistic.evaluate(ones_a, ones_b)[:, 0]
    spreads = {c: float(np.sqrt(value[0])) for c, value in statistic.within(first, ones_a).items()}
    spreads.update({c: float(np.sqrt(value[0])) for c, value in statistic.within(second, ones_b).items()})
    # The seed resamples are the same for every block (one generator seed): a sweep's blocks
    # are then bootstrapped jointly over the seeds they share.
    with warnings.catch_warnings():
        # A pair whose every draw gives one value (two conditions at zero distance) is a
        # valid, degenerate interval; SciPy warns about it for every such pair.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(data, statistic, n_resamples=n_resamples, vectorized=True,
                                 paired=False, confidence_level=confidence, method=interval_method,
                                 rng=np.random.default_rng(random_state))
    low, high = (np.array(bound, dtype=float) for bound in result.confidence_interval)
    if interval_method == "BCa":
        # BCa is undefined where every draw gives one value or the jackknife is flat; the
        # percentile interval of the same draws is the honest fallback there.
        distribution = result.bootstrap_distribution
        tail = (1 - confidence) / 2
        fallback_low, fallback_high = np.quantile(distribution, [tail, 1 - tail], axis=-1)
        low = np.where(np.isfinite(low), low, fallback_low)
        high = np.where(np.isfinite(high), high, fallback_high)
    n_pairs = len(statistic.pairs)
    # The square roots of all pairs in one call each (ratios first, then effects, evaluate's
    # order): one call per value took 0.9 s for the 3,160 pairs of 80 conditions (loaded
    # machine), and 400 conditions have 25 times the pairs.
    ratio, effect = _signed_root(point[:n_pairs]), _signed_root(point[n_pairs:])
    ratio_low, effect_low = _signed_root(low[:n_pairs]), _signed_root(low[n_pairs:])
    ratio_high, effect_high = _signed_root(high[:n_pairs]), _signed_root(high[n_pairs:])
    rows = []
    for position, (a, b) in enumerate(statistic.pairs):
        spread_a, spread_b = spreads[a], spreads[b]
        rows.append({
            "condition_a": a, "condition_b": b, "n_seeds_a": len(first.seeds),
            "n_seeds_b": len(second.seeds), "paired": statistic.paired,
            "spread_a": spread_a, "spread_b": spread_b,
            "spread": float(np.sqrt((spread_a**2 + spread_b**2) / 2)),
            "effect": float(effect[position]),
            "effect_low": float(effect_low[position]),
            "effect_high": float(effect_high[position]),
            "ratio": float(ratio[position]),
            "ratio_low": float(ratio_low[position]),
            "ratio_high": float(ratio_high[position]),
        })
    return rows
