"""Projected DMD (study.koopman): known spectra, PyDMD agreement, replicas, delays, bad input."""

import numpy as np
import pytest
from pydmd import DMD

from study.koopman import (KoopmanInputError, NonFiniteSnapshotError, RankTooLargeError,
                           TooFewStepsError, ZeroRankError, fit_koopman, koopman_eigenvalues)
from study.koopman.dmd import snapshot_matrices

from helpers import largest_matched_distance, observed_block_system, trained_fcn_output_weights


BLOCKS = [(0.99, 0.05), (0.95, 0.3), (0.9, 1.1), (0.8, 2.5)]
TRUE_EIGENVALUES = np.array([r * np.exp(s * 1j * a) for r, a in BLOCKS for s in (1, -1)])


def linear_trajectories(n_replicas=1, n_steps=60, n_observables=8, seed=0):
    """(n_replicas, n_steps, n_observables): x_{t+1} = A x_t seen through a random invertible map."""
    return observed_block_system(BLOCKS, n_replicas, n_steps, n_observables, seed)[0]


def test_recovers_prescribed_complex_eigenvalues_through_a_random_invertible_map():
    trajectory = linear_trajectories(n_observables=8)[0]  # square map: invertible
    fit = fit_koopman(trajectory)
    assert fit.rank == 8 and fit.n_pairs == 59
    assert largest_matched_distance(fit.eigenvalues, TRUE_EIGENVALUES) < 1e-8
    assert fit.residual < 1e-10
    # exact modes reproduce the first snapshot from the amplitudes
    np.testing.assert_allclose((fit.modes @ fit.amplitudes).real, trajectory[0], atol=1e-8)


def test_delays_recover_damped_oscillations_from_a_scalar_observation():
    steps = np.arange(80)
    signal = sum(weight * r**steps * np.cos(a * steps + phase)
                 for (r, a), weight, phase in zip(BLOCKS, [1.0, 0.7, 0.5, 0.3], [0, 1, 2, 3]))
    eigenvalues = koopman_eigenvalues(signal.reshape(-1, 1), delays=7)  # 8-dim embedding
    assert largest_matched_distance(eigenvalues, TRUE_EIGENVALUES) < 1e-8


def test_stacked_replicas_recover_the_shared_system():
    replicas = linear_trajectories(n_replicas=4, n_steps=5, n_observables=12)
    # 4 pairs per replica cannot span the 8-dim state alone; 16 stacked pairs can
    assert largest_matched_distance(koopman_eigenvalues(replicas), TRUE_EIGENVALUES) < 1e-8


def test_pairs_are_never_formed_across_replicas():
    replicas = linear_trajectories(n_replicas=3, n_steps=6, n_observables=8, seed=1)
    stacked = koopman_eigenvalues(replicas)
    assert largest_matched_distance(stacked, TRUE_EIGENVALUES) < 1e-8
    # gluing the replicas end to end invents two pairs (last of r, first of r + 1) that the
    # system never produced: the spectrum is wrong
    glued = koopman_eigenvalues(replicas.reshape(-1, 8))
    assert largest_matched_distance(glued, TRUE_EIGENVALUES) > 1e-2
    first, second = snapshot_matrices(list(replicas), delays=0)
    assert first.shape == (8, 15)
    np.testing.assert_array_equal(second[:, 4], replicas[0, 5])  # replica 0 ends its pairs
    np.testing.assert_array_equal(first[:, 5], replicas[1, 0])  # replica 1 starts afresh


def test_ragged_replica_lists_pair_inside_each_replica():
    replicas = linear_trajectories(n_replicas=2, n_steps=9, n_observables=8, seed=2)
    ragged = [replicas[0], replicas[1, :5]]
    assert largest_matched_distance(koopman_eigenvalues(ragged), TRUE_EIGENVALUES) < 1e-8
    first, _ = snapshot_matrices(ragged, delays=1)
    assert first.shape == (16, 7 + 3)


@pytest.mark.parametrize("rank", [None, 6, 3])
def test_agrees_with_pydmd_exact_dmd(rank):
    rng = np.random.default_rng(3)
    trajectory = linear_trajectories(n_steps=40, n_observables=10)[0]
    trajectory = trajectory + 1e-3 * rng.normal(size=trajectory.shape)  # full-rank data
    fit = fit_koopman(trajectory, rank=rank, solver="svd")
    reference = DMD(svd_rank=-1 if rank is None else rank, exact=True)
    reference.fit(trajectory.T)  # PyDMD is (space, time)
    assert largest_matched_distance(fit.eigenvalues, reference.eigs) < 1e-8


def test_golden_damped_cosine():
    # x_t = 0.9**t * cos(0.5 t), t = 0..19, delays 1: x_{t+2} = 2 r cos(a) x_{t+1} - r^2 x_t
    # with r = 0.9, a = 0.5, so the eigenvalues are r e^{+-ia} = 0.7898243057013355
    # +- 0.4314829847437827 i (written out, not recomputed).
    steps = np.arange(20)
    signal = (0.9**steps * np.cos(0.5 * steps)).reshape(-1, 1)
    eigenvalues = koopman_eigenvalues(signal, delays=1)
    np.testing.assert_allclose(eigenvalues, [0.7898243057013355 + 0.4314829847437827j,
                                             0.7898243057013355 - 0.4314829847437827j],
                               atol=1e-12)


def test_constant_trajectory_is_a_fixed_point_with_eigenvalue_one():
    constant = np.tile([1.0, -2.0, 3.0], (10, 1))
    fit = fit_koopman(constant, delays=2)
    assert fit.rank == 1
    np.testing.assert_allclose(fit.eigenvalues, [1.0], atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_replica_step_and_feature(bad):
    replicas = np.ones((2, 10, 3))
    replicas[1, 7, 2] = bad
    with pytest.raises(NonFiniteSnapshotError, match="at step 7 of replica 1 \\(feature 2\\)"):
        koopman_eigenvalues(replicas)


def test_all_zero_data_has_rank_zero():
    with pytest.raises(ZeroRankError, match="rank 0"):
        koopman_eigenvalues(np.zeros((10, 4)))


def test_too_few_steps_for_the_delays():
    with pytest.raises(TooFewStepsError, match="replica 1 has 5 steps; delays=4 needs at least 6"):
        koopman_eigenvalues([np.ones((8, 2)), np.ones((5, 2))], delays=4)


def test_rank_above_the_numerical_rank_is_an_error_not_a_clip():
    trajectory = linear_trajectories(n_observables=20)[0]  # rank 8 data in 20 dims
    with pytest.raises(RankTooLargeError, match="rank=9 exceeds the numerical rank 8"):
        koopman_eigenvalues(trajectory, rank=9)
    assert koopman_eigenvalues(trajectory, rank=8).shape == (8,)


@pytest.mark.parametrize("arguments, message", [
    ({"delays": -1}, "delays must be an int >= 0; got -1"),
    ({"rank": 0}, "rank must be None or an int >= 1; got 0"),
    ({"solver": "qr"}, "solver must be one of"),
])
def test_bad_parameters_name_the_value(arguments, message):
    with pytest.raises(KoopmanInputError, match=message):
        fit_koopman(np.ones((10, 2)), **arguments)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(KoopmanInputError, match="reshape\\(-1, 1\\)"):
        koopman_eigenvalues(np.ones(10))
    with pytest.raises(KoopmanInputError, match="replica 1 has 3 features, replica 0 has 2"):
        koopman_eigenvalues([np.ones((10, 2)), np.ones((10, 3))])


def drifting_mean_trajectories(n_replicas=3, n_steps=400, n_features=150, seed=0):
    """x_t = x_0 + t v + sum_j c_j r_j^t cos(a_j t) m_j + noise: top singular value dominant."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n_steps)[:, None]
    mean = 5.0 * rng.normal(size=n_features)  # sigma_1 / sigma_10 ~ 1e3 in this data
    drift = 0.002 * rng.normal(size=n_features)
    trajectories = []
    for _ in range(n_replicas):
        modes = sum(rng.normal(size=n_features) * 0.99**steps * np.cos(angle * steps)
                    for angle in (0.02, 0.1, 0.3))
        noise = 1e-3 * np.cumsum(rng.normal(size=(n_steps, n_features)), axis=0)
        trajectories.append(mean + drift * steps + 0.05 * modes + noise)
    return np.stack(trajectories)


@pytest.mark.parametrize("make_data, delays", [(trained_fcn_output_weights, 4),
                                               (drifting_mean_trajectories, 6)])
def test_fast_solver_matches_the_full_svd_recipe(make_data, delays):
    data = make_data()
    reference = fit_koopman(data, delays=delays, rank=10, solver="svd")
    fast = fit_koopman(data, delays=delays, rank=10, solver="auto")
    assert fast.solver == "gram"  # auto takes the fast route on problems this large
    # measured: ~1e-14 (FCN) and ~4e-14 (drift); the contract is 1e-6
    assert largest_matched_distance(fast.eigenvalues, reference.eigenvalues) < 1e-6
    np.testing.assert_allclose(fast.singular_values, reference.singular_values, rtol=1e-10)
    assert fast.residual == pytest.approx(reference.residual, rel=1e-6)
    # modes times amplitudes do not depend on how each eigenvector was scaled
    np.testing.assert_allclose(fast.modes * fast.amplitudes,
                               reference.modes * reference.amplitudes, atol=1e-8)


def test_fast_solver_handles_ragged_replicas():
    data = drifting_mean_trajectories(n_features=60)
    ragged = [data[0], data[1, :250], data[2, :333]]
    reference = fit_koopman(ragged, delays=3, rank=8, solver="svd")
    fast = fit_koopman(ragged, delays=3, rank=8, solver="gram")
    assert fast.solver == "gram" and fast.n_pairs == reference.n_pairs == 396 + 246 + 329
    assert largest_matched_distance(fast.eigenvalues, reference.eigenvalues) < 1e-8


def test_fast_solver_falls_back_to_the_svd_and_its_errors_on_low_rank_data():
    trajectory = linear_trajectories(n_steps=200, n_observables=100)[0]  # rank 8 in 100 dims
    with pytest.raises(RankTooLargeError, match="rank=12 exceeds the numerical rank 8"):
        fit_koopman(trajectory, delays=0, rank=12, solver="gram")
    fit = fit_koopman(trajectory, delays=0, rank=8, solver="gram")
    assert largest_matched_distance(fit.eigenvalues, TRUE_EIGENVALUES) < 1e-8
