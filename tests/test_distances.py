"""The spectral distance against independent references (POT, SciPy) and hand-computed cases."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import ot
import pytest
from scipy.optimize import linear_sum_assignment

from analysis.distances import (matched_distances, pairwise_distance_matrix,
                                reference_distance_matrix, reference_matched_distances,
                                spectral_distance)
from analysis.matching import assignment_columns


def random_spectrum(rng, size):
    return rng.normal(size=size) + 1j * rng.normal(size=size)


def emd_reference(a, b):
    """POT's exact 1-Wasserstein between uniform measures on two complex point sets."""
    cost = np.abs(a[:, None] - b[None, :])
    return ot.emd2(np.full(a.size, 1 / a.size), np.full(b.size, 1 / b.size), cost)


@pytest.mark.parametrize("size_a, size_b", [(1, 1), (3, 3), (10, 10), (16, 16), (4, 7), (10, 3)])
def test_distance_matches_pot_on_random_sets(size_a, size_b):
    rng = np.random.default_rng(size_a * 100 + size_b)
    for _ in range(20):
        a, b = random_spectrum(rng, size_a), random_spectrum(rng, size_b)
        assert spectral_distance(a, b) == pytest.approx(emd_reference(a, b), rel=1e-9, abs=1e-12)


def test_matched_distances_match_scipy_including_ties():
    rng = np.random.default_rng(0)
    for k in (1, 2, 5, 10, 13):
        first = rng.normal(size=(200, k)) + 1j * rng.normal(size=(200, k))
        second = first[::-1].copy()
        second[:50] = np.round(second[:50])  # many equal costs: ties must not break optimality
        cost = np.abs(first[:, :, None] - second[:, None, :])
        reference = [c[linear_sum_assignment(c)].mean() for c in cost]
        np.testing.assert_allclose(matched_distances(first, second), reference, rtol=1e-12)


def test_zero_on_identical_sets_and_invariant_to_order():
    rng = np.random.default_rng(1)
    a = random_spectrum(rng, 10)
    assert spectral_distance(a, a) == 0.0
    assert spectral_distance(a, rng.permutation(a)) == pytest.approx(0.0, abs=1e-15)


def test_symmetric():
    rng = np.random.default_rng(2)
    for size_b in (10, 6):
        a, b = random_spectrum(rng, 10), random_spectrum(rng, size_b)
        assert spectral_distance(a, b) == pytest.approx(spectral_distance(b, a), rel=1e-12)


def test_hand_computed_equal_sizes():
    # a = {0, 2}, b = {0.1, 2 + 0.3i}: matching 0 -> 0.1 (cost 0.1) and 2 -> 2 + 0.3i (cost 0.3)
    # beats the crossed matching (|0 - (2 + 0.3i)| + |2 - 0.1| > 2), so the mean is (0.1 + 0.3) / 2.
    assert spectral_distance([0, 2], [0.1, 2 + 0.3j]) == pytest.approx(0.2, rel=1e-12)
    # A conjugate pair against its mirror shifted by 0.5 along the real axis: every match costs 0.5.
    assert spectral_distance([1 + 1j, 1 - 1j], [1.5 - 1j, 1.5 + 1j]) == pytest.approx(0.5)


def test_hand_computed_unequal_sizes():
    # {0, 1, 2} (mass 1/3 each) to {0, 2} (mass 1/2 each): 0 and 2 stay (cost 0); the mass 1/3
    # at 1 splits 1/6 to 0 and 1/6 to 2, each moving distance 1: W1 = 1/6 + 1/6 = 1/3.
    assert spectral_distance([0, 1, 2], [0, 2]) == pytest.approx(1 / 3, rel=1e-12)
    # {0, 1} to {0.5}: every unit of mass moves 0.5.
    assert spectral_distance([0, 1], [0.5]) == pytest.approx(0.5, rel=1e-12)


def test_real_pairs_equal_complex_input():
    rng = np.random.default_rng(3)
    a, b = random_spectrum(rng, 8), random_spectrum(rng, 8)
    as_pairs = lambda z: np.column_stack([z.real, z.imag])  # noqa: E731
    assert spectral_distance(as_pairs(a), as_pairs(b)) == pytest.approx(spectral_distance(a, b))


def test_bad_spectra_raise_clear_errors():
    with pytest.raises(ValueError, match="at least one eigenvalue"):
        spectral_distance([], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        spectral_distance([np.nan, 1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(n, 2\) real array"):
        spectral_distance(np.zeros((3, 3)), [1.0])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_pairwise_matrix_equals_pair_by_pair(n_jobs):
    rng = np.random.default_rng(4)
    spectra = [random_spectrum(rng, 10) for _ in range(9)] + [random_spectrum(rng, 6) for _ in range(3)]
    matrix = pairwise_distance_matrix(spectra, n_jobs=n_jobs)
    expected = np.array([[emd_reference(a, b) for b in spectra] for a in spectra])
    np.testing.assert_allclose(matrix, expected, rtol=1e-9, atol=1e-12)
    assert np.all(np.diag(matrix) == 0) and np.array_equal(matrix, matrix.T)


def test_analysis_never_loads_torch_even_through_pot():
    # POT imports torch for its backends unless told not to; the analysis must not load it.
    # numba (the batched solver) loads its extensions when it first compiles or loads a
    # kernel: a matrix is computed too, so that path is covered.
    code = ("import sys, analysis.__main__\n"
            "from analysis.distances import pairwise_distance_matrix, spectral_distance\n"
            "spectral_distance([0, 1, 2], [0, 2])\n"
            "pairwise_distance_matrix([[0, 1], [1, 2], [0, 2]])\n"
            "assert 'ot' in sys.modules and 'numba' in sys.modules\n"
            "assert 'torch' not in sys.modules, sorted(sys.modules)[:5]\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                               capture_output=True, text=True, timeout=120,
                               env={k: v for k, v in os.environ.items() if not k.startswith("POT_")})
    assert completed.returncode == 0, completed.stderr


def wasserstein_2_reference(a, b):
    """POT's exact 2-Wasserstein between uniform measures: sqrt of the optimal mean |a - b|^2."""
    cost = np.abs(a[:, None] - b[None, :]) ** 2
    return np.sqrt(ot.emd2(np.full(a.size, 1 / a.size), np.full(b.size, 1 / b.size), cost))


@pytest.mark.parametrize("size_a, size_b", [(3, 3), (10, 10), (4, 7)])
def test_wasserstein_2_matches_pot_one_pair_and_in_the_matrix(size_a, size_b):
    rng = np.random.default_rng(size_a * 10 + size_b)
    spectra = [random_spectrum(rng, size_a) for _ in range(4)] + [random_spectrum(rng, size_b)]
    matrix = pairwise_distance_matrix(spectra, metric="wasserstein-2", n_jobs=1)
    for i in range(len(spectra)):
        for j in range(i + 1, len(spectra)):
            reference = wasserstein_2_reference(spectra[i], spectra[j])
            assert matrix[i, j] == pytest.approx(reference, rel=1e-9)
            assert spectral_distance(spectra[i], spectra[j], metric="wasserstein-2") == \
                pytest.approx(reference, rel=1e-9)


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="metric=.chebyshev."):
        spectral_distance([1.0], [2.0], metric="chebyshev")


# The batched solver (analysis.matching) against SciPy's linear_sum_assignment, the reference.

def optimal_cost_scipy(costs):
    return np.array([matrix[linear_sum_assignment(matrix)].sum() for matrix in costs])


def matched_cost(costs, columns):
    return np.take_along_axis(costs, columns[:, :, None], axis=2)[:, :, 0].sum(axis=1)


@pytest.mark.parametrize("size", range(1, 13))
def test_batched_solver_reaches_scipys_optimum(size):
    rng = np.random.default_rng(size)
    costs = np.concatenate([
        rng.normal(size=(300, size, size)) ** 2,  # continuous: a unique optimum almost surely
        rng.integers(0, 3, size=(300, size, size)).astype(float),  # many exact ties
        np.ones((5, size, size)),  # every permutation optimal
    ])
    columns = assignment_columns(costs)
    assert np.array_equal(np.sort(columns, axis=1), np.broadcast_to(np.arange(size), columns.shape))
    np.testing.assert_allclose(matched_cost(costs, columns), optimal_cost_scipy(costs),
                               rtol=1e-12, atol=1e-12)


def spectra_with_ties(rng, n_spectra, size):
    """Spectra on a coarse grid, with conjugate pairs and repeated eigenvalues: many equal costs."""
    half = size // 2
    upper = np.round(rng.normal(size=(n_spectra, half)) * 2) / 2 + 1j * np.round(
        np.abs(rng.normal(size=(n_spectra, half))) * 2) / 2
    spectra = np.concatenate([upper, upper.conj()], axis=1)  # conjugate pairs
    if size % 2:
        spectra = np.concatenate([spectra, np.round(rng.normal(size=(n_spectra, 1)))], axis=1)
    if size > 1:
        spectra[::3, 1] = spectra[::3, 0]  # a repeated eigenvalue
    return spectra


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("size", [1, 2, 3, 6, 10, 12])
def test_batched_distances_equal_scipy_on_ties_and_repeated_eigenvalues(power, size):
    rng = np.random.default_rng(10 * size + power)
    first = spectra_with_ties(rng, 400, size)
    second = np.concatenate([spectra_with_ties(rng, 300, size),
                             rng.permuted(first[300:], axis=1)])  # last 100: same sets reordered
    got = matched_distances(first, second, power=power)
    np.testing.assert_allclose(got, reference_matched_distances(first, second, power=power),
                               rtol=1e-12, atol=1e-15)
    assert np.all(got[300:] == 0.0)  # identical sets: the zero-cost matching is found exactly


def training_like_spectra(rng, n_spectra):
    """Ten eigenvalues near the unit circle: real modes and two conjugate pairs."""
    real = 1.0 - rng.gamma(2.0, 0.05, size=(n_spectra, 6))
    pairs = (1.0 - rng.gamma(2.0, 0.05, size=(n_spectra, 2))) * np.exp(
        1j * rng.uniform(0.01, 0.5, size=(n_spectra, 2)))
    return np.concatenate([real, pairs, pairs.conj()], axis=1)


@pytest.mark.parametrize("metric", ["wasserstein-1", "wasserstein-2"])
def test_matrix_equals_the_scipy_reference_path(metric):
    rng = np.random.default_rng(5)
    spectra = list(training_like_spectra(rng, 250)) + [random_spectrum(rng, 10) for _ in range(50)]
    spectra += spectra[:5]  # identical spectra: distance 0 off the diagonal
    matrix = pairwise_distance_matrix(spectra, metric=metric)
    np.testing.assert_allclose(matrix, reference_distance_matrix(spectra, metric=metric),
                               rtol=1e-12, atol=1e-15)
    assert np.array_equal(matrix, matrix.T) and np.all(np.diag(matrix) == 0)
    assert np.all(matrix[np.arange(5), np.arange(300, 305)] == 0) and np.all(matrix[:300, :300][
        ~np.eye(300, dtype=bool)] > 0)


def test_matrix_of_mixed_sizes_equals_the_reference_path():
    # Several sizes: each size's block is solved apart and scattered into the matrix.
    rng = np.random.default_rng(6)
    spectra = [random_spectrum(rng, int(size)) for size in rng.choice([3, 10, 4], size=40)]
    np.testing.assert_allclose(pairwise_distance_matrix(spectra, n_jobs=1),
                               reference_distance_matrix(spectra), rtol=1e-9, atol=1e-12)
