"""Two-sample permutation tests on a distance matrix, and Holm's correction.

A test of *identical distributions*: the null is that the seed labels are exchangeable between
the two conditions, which two setups with one centre but different seed-to-seed spreads
violate. It is evidence beside the verdicts (:mod:`analysis.verdicts`), never the verdict.

Pure numpy. The statistic is the mean between-group distance minus the mean within-group
distance (pooled over both groups); with the group sizes fixed it is an increasing function of
the summed between-group distance, which is what is computed for every relabeling. Paired
designs (the two conditions hold the same seeds, which share their data split, batch order and
initialisation) relabel *within* each seed: a relabeling swaps, or not, the two units of each
seed, so what a seed shares with its partner is never mistaken for a condition effect.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

MAX_EXACT_RELABELINGS = 200_000  # above this, enumerating all relabelings costs too much memory


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of one two-sample permutation test on a distance matrix."""

    statistic: float  # mean between minus mean pooled within
    p_value: float
    n_relabelings: int  # relabelings evaluated (all of them when exact)
    exact: bool
    min_attainable_p: float  # the smallest p-value this design can produce


def permutation_test(distances: np.ndarray, n_first: int, *, n_permutations: int,
                     rng: np.random.Generator, paired: bool = False) -> PermutationResult:
    """Two-sample permutation test on a ``(n, n)`` distance matrix, first ``n_first`` vs rest.

    Statistic: mean between-group distance minus mean within-group distance (pooled).
    ``paired``: both groups hold the same seeds in the same order (row ``i`` and row
    ``n_first + i`` are one seed), and relabelings swap within seeds only.
    """
    n_total = distances.shape[0]
    n_second = n_total - n_first
    if n_first < 2 or n_second < 2:
        raise ValueError(f"each group needs >= 2 members; got {n_first} and {n_second}")
    if paired and n_first != n_second:
        raise ValueError(f"a paired test needs groups of equal size; got {n_first} and {n_second}")
    observed = np.zeros(n_total, dtype=bool)
    observed[:n_first] = True  # the caller orders the first group's members first
    n_relabelings = 2**n_first if paired else math.comb(n_total, n_first)
    exact = n_relabelings <= min(n_permutations + 1, MAX_EXACT_RELABELINGS)
    if paired:
        swaps = (all_swaps(n_first) if exact
                 else rng.integers(0, 2, size=(n_permutations, n_first)).astype(float))
        labels = np.concatenate([1.0 - swaps, swaps], axis=1)
    elif exact:
        labels = all_relabelings(n_total, n_first)
    else:
        order = np.argsort(rng.random((n_permutations, n_total)), axis=1)
        labels = (order < n_first).astype(float)
    between = _between_sums(distances, labels)
    observed_between = _between_sums(distances, observed[None])[0]
    # A relative tolerance keeps relabelings equal to the observed one (up to rounding) counted.
    at_least = np.count_nonzero(between >= observed_between * (1 - 1e-12) - 1e-300)
    if exact:
        p_value = at_least / n_relabelings
        mirror = 2 if n_first == n_second else 1  # a relabeling and its mirror give equal sums
        min_p = mirror / n_relabelings
    else:
        p_value = (1 + at_least) / (1 + n_permutations)
        min_p = 1 / (1 + n_permutations)
    between_mean, within_mean = _group_means(distances, observed)
    return PermutationResult(between_mean - within_mean, float(p_value), int(labels.shape[0]),
                             exact, float(min_p))


@functools.lru_cache(maxsize=32)
def all_relabelings(n_total: int, n_first: int) -> np.ndarray:
    """Every choice of ``n_first`` members out of ``n_total``, as 0/1 rows (read-only, cached)."""
    members = np.array(list(itertools.combinations(range(n_total), n_first)), dtype=np.intp)
    labels = np.zeros((members.shape[0], n_total))
    np.put_along_axis(labels, members, 1.0, axis=1)
    labels.setflags(write=False)
    return labels


@functools.lru_cache(maxsize=32)
def all_swaps(n_seeds: int) -> np.ndarray:
    """Every swap pattern of ``n_seeds`` seed pairs, as 0/1 rows (read-only, cached)."""
    swaps = ((np.arange(2**n_seeds)[:, None] >> np.arange(n_seeds)) & 1).astype(float)
    swaps.setflags(write=False)
    return swaps


def _between_sums(distances, labels):
    """Sum of between-group distances for each 0/1 labeling (rows of ``labels``)."""
    first = np.asarray(labels, dtype=float)
    # sum_i,j l_i D_ij (1 - l_j) = l . (D 1) - l . (D l). einsum, not BLAS: a threaded BLAS
    # call on these thin matrices is ~100x slower when the cores are shared.
    first_distances = np.einsum("pi,ij->pj", first, distances)
    return np.einsum("pj,pj->p", first, distances.sum(axis=0) - first_distances)


def _group_means(distances, in_first):
    """Mean between-group and mean pooled within-group distance for one labeling."""
    between = distances[np.ix_(in_first, ~in_first)]
    within = [distances[np.ix_(m, m)][np.triu_indices(m.sum(), k=1)] for m in (in_first, ~in_first)]
    return float(between.mean()), float(np.concatenate(within).mean())


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over all tests)."""
    p_values = np.asarray(p_values, dtype=float)
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted
