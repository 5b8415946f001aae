"""The identical-distribution permutation test (evidence beside the verdicts) and Holm."""

import numpy as np
import pytest

from analysis.permutation import all_swaps, holm_adjust, permutation_test

RNG = np.random.default_rng


def test_permutation_test_exact_hand_computed():
    # Two groups of 3; within distances 0.1, between 1. Among the C(6, 3) = 20 relabelings only
    # the observed split and its mirror reach the largest between-sum, so p = 2 / 20.
    groups = np.array([0, 0, 0, 1, 1, 1])
    distances = np.where(groups[:, None] == groups[None, :], 0.1, 1.0)
    np.fill_diagonal(distances, 0.0)
    result = permutation_test(distances, 3, n_permutations=9999, rng=RNG(0))
    assert result.exact and result.n_relabelings == 20
    assert result.p_value == pytest.approx(2 / 20)
    assert result.min_attainable_p == pytest.approx(2 / 20)
    assert result.statistic == pytest.approx(0.9)


def test_paired_test_swaps_within_seeds_only():
    # Same groups, paired by seed: 2^3 = 8 swap patterns; only "no swap" and "swap all" keep
    # the groups apart, so p = 2 / 8 (an unpaired test would enumerate 20 relabelings).
    groups = np.array([0, 0, 0, 1, 1, 1])
    distances = np.where(groups[:, None] == groups[None, :], 0.1, 1.0)
    np.fill_diagonal(distances, 0.0)
    result = permutation_test(distances, 3, n_permutations=9999, rng=RNG(0), paired=True)
    assert result.exact and result.n_relabelings == 8
    assert result.p_value == pytest.approx(2 / 8)
    assert all_swaps(3).shape == (8, 3) and len({tuple(row) for row in all_swaps(3)}) == 8


def test_paired_test_holds_its_level_where_seeds_share_a_component():
    # No condition effect, a per-seed component shared by both conditions (weight 0.7): the
    # unpaired relabelling is far too conservative here; relabelling within seeds is not.
    rejections, n_draws = 0, 200
    for draw in range(n_draws):
        rng = RNG(draw)
        shared = rng.normal(size=(10, 3))
        points = np.concatenate([0.7 * shared + 0.3 * rng.normal(size=(10, 3)),
                                 0.7 * shared + 0.3 * rng.normal(size=(10, 3))])
        distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
        result = permutation_test(distances, 10, n_permutations=999, rng=rng, paired=True)
        rejections += result.p_value <= 0.05
    assert 0.02 <= rejections / n_draws <= 0.09  # the nominal 0.05, within sampling error


def test_permutation_test_monte_carlo_when_enumeration_is_too_large():
    rng = RNG(0)
    points = rng.normal(size=(40, 2))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    result = permutation_test(distances, 20, n_permutations=999, rng=rng)
    assert not result.exact and result.n_relabelings == 999
    assert 1 / 1000 <= result.p_value <= 1  # (1 + count) / (1 + n)
    with pytest.raises(ValueError, match="each group needs >= 2"):
        permutation_test(distances[:5, :5], 1, n_permutations=99, rng=rng)


def test_holm_hand_computed():
    # Sorted p: 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, 1*0.04 = 0.04 -> running max.
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
