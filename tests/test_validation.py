"""The OMD / OGD / bisection validation problem (PAPER.md): the paper's outcome and its parts.

Measured with study.koopman (delays 4, rank None = numerical rank), 2026-11-23:
  exact grid:   OMD-OGD 0.0081 (paper ~0.008); OMD-bisection 0.60, OGD-bisection 0.61
                (Hungarian on the 6 bisection eigenvalues; 1-Wasserstein 0.675);
                OMD/OGD spectra real in [0.558, 0.998] / [0.556, 1.0005] (paper: [0.55, 1.0]).
  jitter 0.1:   seeds 0, 1: OMD-OGD 0.0135, 0.0101; OMD-bisection 0.748, 0.723 (10 each).
  The paper's ~0.75 on the exact grid is reproduced only by keeping all 10 SVD triplets
  without a rank tolerance (0.765 / 0.772): there, 4 of the 10 bisection eigenvalues come from
  singular values ~1e-15 (rounding), because b0 - a0 is the same vector for all 25 grid pairs
  and the bisection data have rank 6 (test below). study.koopman refuses such triplets.
"""

import numpy as np
import pytest
from scipy.optimize import minimize

from study.koopman import fit_koopman, koopman_eigenvalues
from study.koopman.dmd import snapshot_matrices
from study.validation import (bisection_step, ogd_step, omd_step, start_grid,
                              validation_trajectories)

from helpers import mean_matched_distance


def spectra(grid_jitter=0.0, random_state=0):
    return {method: koopman_eigenvalues(
        validation_trajectories(method, grid_jitter=grid_jitter, random_state=random_state),
        delays=4) for method in ("omd", "ogd", "bisection")}


def test_paper_outcome_omd_and_ogd_conjugate_bisection_not():
    eigenvalues = spectra()
    omd_ogd = mean_matched_distance(eigenvalues["omd"], eigenvalues["ogd"])
    omd_bisection = mean_matched_distance(eigenvalues["omd"], eigenvalues["bisection"])
    ogd_bisection = mean_matched_distance(eigenvalues["ogd"], eigenvalues["bisection"])
    print(f"OMD-OGD {omd_ogd:.4f} (paper 0.008); OMD-bisection {omd_bisection:.3f}, "
          f"OGD-bisection {ogd_bisection:.3f} (paper 0.75)")
    assert len(eigenvalues["omd"]) == len(eigenvalues["ogd"]) == 10
    assert omd_ogd == pytest.approx(0.0081, abs=0.002)
    assert min(omd_bisection, ogd_bisection) > 50 * omd_ogd
    for method in ("omd", "ogd"):
        assert np.all(eigenvalues[method].imag == 0)
        assert 0.55 < eigenvalues[method].real.min() and eigenvalues[method].real.max() < 1.001


@pytest.mark.parametrize("random_state", [0, 1, 2])
def test_jittered_grids_give_the_same_verdict_with_full_rank_bisection(random_state):
    eigenvalues = spectra(grid_jitter=0.1, random_state=random_state)
    assert all(len(values) == 10 for values in eigenvalues.values())
    omd_ogd = mean_matched_distance(eigenvalues["omd"], eigenvalues["ogd"])
    assert omd_ogd < 0.03  # measured 0.0135, 0.0101 for seeds 0, 1
    for method in ("omd", "ogd"):
        assert mean_matched_distance(eigenvalues[method], eigenvalues["bisection"]) > 0.6


def test_bisection_on_the_exact_grid_has_rank_six():
    # b0 - a0 = (1/7 + 4/3) (1, 1) for every pair, so z_t - z_0 moves along one shared line:
    # the Hankel vectors span 1 (the z_0 offsets off that line) + 5 (delay slots) dimensions
    lower = start_grid("bisection_lower", np.zeros((25, 2)), 0.0)
    upper = start_grid("bisection_upper", np.zeros((25, 2)), 0.0)
    np.testing.assert_allclose(upper - lower, np.full((25, 2), 1 / 7 + 4 / 3), atol=1e-15)
    fit = fit_koopman(validation_trajectories("bisection"), delays=4)
    assert fit.rank == 6
    first, _ = snapshot_matrices(list(validation_trajectories("bisection")), 4)
    singular = np.linalg.svd(first, compute_uv=False)
    assert singular[5] > 0.1 and singular[6] < 1e-12 * singular[0]


def test_omd_and_ogd_are_conjugate_through_the_exponential():
    # from x0 = exp(u0) both discretise dx = -x^2 sec^2(x) dt: their paths agree to O(eta)
    u = start_grid("ogd", np.zeros((25, 2)), 0.0)
    x = np.exp(u)
    for _ in range(99):
        x, u = omd_step(x, 0.01), ogd_step(u, 0.01)
    np.testing.assert_allclose(x, np.exp(u), atol=2e-3)
    assert np.abs(x - np.exp(u)).max() > 1e-6  # not the same map, only conjugate flows


def test_bregman_projection_onto_the_box_is_clipping():
    # argmin_{y in box} D_R(y, x), R = -sum log, solved numerically, equals clip(x)
    def bregman(y, x):
        return np.sum(-np.log(y) + np.log(x) + (y - x) / x)

    for x in ([0.005, 0.5], [1.7, 0.002], [0.3, 2.0]):
        x = np.array(x)
        solution = minimize(bregman, np.full(2, 0.5), args=(x,), bounds=[(0.01, 1.0)] * 2,
                            method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
        np.testing.assert_allclose(solution.x, np.clip(x, 0.01, 1.0), atol=1e-6)


def test_omd_step_follows_the_mirror_formula():
    x = np.array([[0.3, 0.8]])
    expected = 1 / (1 / x + 0.01 / np.cos(x) ** 2)  # -1/x_new = -1/x - eta sec^2(x)
    np.testing.assert_allclose(omd_step(x, 0.01), expected, rtol=1e-15)


def test_bisection_keeps_the_root_bracketed_and_halves_the_bracket():
    lower, upper = np.array([[-1.0, -0.5]]), np.array([[0.4, 1.1]])
    for _ in range(30):
        width = upper - lower
        lower, upper = bisection_step(lower, upper)
        np.testing.assert_allclose(upper - lower, width / 2)
        assert np.sum(np.tan(lower)) <= 0 <= np.sum(np.tan(upper))


def test_trajectory_shapes_starts_and_jitter():
    omd = validation_trajectories("omd")
    assert omd.shape == (25, 100, 2) and omd.dtype == np.float64
    np.testing.assert_allclose(omd[:, 0], start_grid("omd", np.zeros((25, 2)), 0.0))
    np.testing.assert_allclose(omd[6, 0], [0.3, 0.3])  # grid index 6 = (row 1, column 1)
    jittered = validation_trajectories("omd", grid_jitter=0.5, random_state=3)
    np.testing.assert_array_equal(jittered, validation_trajectories(
        "omd", grid_jitter=0.5, random_state=3))
    assert 0 < np.abs(jittered[:, 0] - omd[:, 0]).max() <= 0.5 * 0.2
    with pytest.raises(ValueError, match="method must be one of"):
        validation_trajectories("adam")


def test_the_literal_recipe_keeps_rounding_level_triplets_on_the_exact_grid():
    # The literal recipe with all 10 SVD triplets (no tolerance) on the exact grid: 4 of the
    # bisection triplets have singular values at rounding level, so 4 of its eigenvalues are
    # rounding noise. Their values differ from one CPU to the next (0.743 here, 0.765 on
    # another), so only what does not depend on the rounding is asserted: the 4 rounding-level
    # triplets, and a distance from OMD of the paper's order (about 0.75) whatever they are.
    def all_triplets(method):
        first, second = snapshot_matrices(list(validation_trajectories(method)), 4)
        left, singular, right_t = np.linalg.svd(first, full_matrices=False)
        return singular, np.linalg.eigvals(left.T @ second @ right_t.T / singular)

    singular, bisection = all_triplets("bisection")
    _, omd = all_triplets("omd")
    assert len(bisection) == 10 and np.sum(singular < 1e-12 * singular[0]) == 4
    assert 0.5 < mean_matched_distance(omd, bisection) < 1.0
