"""CountSketch (study.koopman.sketch): a seeded linear map, and what it does to DMD eigenvalues.

Measured 2026-11-23 (mean Hungarian-matched distance to the true/raw spectrum, 5 sketch seeds):
  12-dim linear system in P = 2000 observables, rank None, delays 0:
    s >= 12 (injective on the data span): 0 (< 1e-13);  s = 10: 0.11-0.18;  s = 8: 0.17-0.23;
    s = 6: 0.25-0.32;  s = 4: 0.22-0.36;  s = 2: 0.16-0.35 (not monotone below the rank).
  trained FCN output weights (200 features), delays 4, rank 10 (truncated):
    s = 200: 0.006-0.014;  s = 50: 0.004-0.016;  s = 12: 0.010-0.015 — the same size as the
    seed-to-seed distance of that run (0.011): with rank truncation a sketch changes the inner
    product and so which 10-dim subspace is kept. Record raw observables when P is small.
"""

import tracemalloc

import numpy as np
import pytest
import torch

from study.koopman import koopman_eigenvalues
from study.koopman.sketch import CountSketch

from helpers import mean_matched_distance, observed_block_system, trained_fcn_output_weights

BLOCKS = [(0.99, 0.05), (0.97, 0.2), (0.95, 0.4), (0.9, 0.8), (0.85, 1.3), (0.8, 2.0)]


def lifted_linear_system(n_features=2000, n_replicas=3, n_steps=60, seed=0):
    """(trajectories (n_replicas, n_steps, P), lift (P, 12), true eigenvalues (12,))."""
    trajectories, lift = observed_block_system(BLOCKS, n_replicas, n_steps, n_features, seed)
    true = np.array([radius * np.exp(sign * 1j * angle) for radius, angle in BLOCKS
                     for sign in (1, -1)])
    return trajectories, lift, true


def sketch_stack(sketch, trajectories):
    n_replicas, n_steps, n_features = trajectories.shape
    return sketch.transform(trajectories.reshape(-1, n_features)).reshape(n_replicas, n_steps, -1)


def test_sketch_is_the_linear_map_of_its_dense_matrix_in_numpy_and_torch():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 1000))
    sketch = CountSketch(1000, 37, random_state=5)
    dense = sketch.to_dense()
    assert np.all(np.count_nonzero(dense, axis=0) == 1)  # one signed bucket per coordinate
    assert set(np.unique(dense)) == {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(sketch.transform(values), values @ dense.T, atol=1e-12)
    from_torch = sketch.transform(torch.from_numpy(values).to(torch.float32))
    assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.float64
    np.testing.assert_allclose(from_torch.numpy(), values.astype(np.float32) @ dense.T,
                               atol=1e-9)
    mixed = sketch.transform(2.0 * values[0] - 3.0 * values[1])
    np.testing.assert_allclose(mixed, 2.0 * sketch.transform(values[0])
                               - 3.0 * sketch.transform(values[1]), atol=1e-12)


def test_chunked_hashing_equals_one_chunk_and_is_seeded():
    values = np.random.default_rng(2).normal(size=(2, 5000))
    whole = CountSketch(5000, 64, random_state=9).transform(values)
    chunked = CountSketch(5000, 64, random_state=9, chunk_size=777)
    np.testing.assert_allclose(chunked.transform(values), whole, atol=1e-12)
    np.testing.assert_allclose(chunked.transform(torch.from_numpy(values)).numpy(), whole,
                               atol=1e-12)
    # the index_add_ path used for tensors on accelerators, run here on the CPU
    np.testing.assert_allclose(chunked._transform_torch(torch.from_numpy(values)).numpy(),
                               whole, atol=1e-12)
    assert not np.allclose(CountSketch(5000, 64, random_state=10).transform(values), whole)


def test_hashing_memory_is_per_chunk_not_per_coordinate():
    n_features = 2**23  # an O(P) int64 index array alone would take 64 MiB
    values = np.ones(n_features)
    sketch = CountSketch(n_features, 1024, random_state=0)  # chunks of 2**18
    tracemalloc.start()
    sketched = sketch.transform(values)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    # S 1 sums the signs: compare with the signs hashed directly (one chunk at a time)
    signs = sum(sketch._hashes_numpy(start, min(start + 2**18, n_features))[1].sum()
                for start in range(0, n_features, 2**18))
    assert sketched.shape == (1024,) and sketched.sum() == pytest.approx(signs)


@pytest.mark.parametrize("sketch_dimension, delays", [(12, 0), (16, 0), (40, 2)])
def test_eigenvalues_unchanged_when_the_sketch_is_injective_on_the_data_span(
        sketch_dimension, delays):
    # theorem (study.koopman.sketch docstring): nonzero eig(A_tilde) = nonzero eig(X^+ X'), and an
    # injective linear map T of observables whose span contains X' gives (TX)^+ (TX') = X^+ X'
    trajectories, lift, true = lifted_linear_system()
    sketch = CountSketch(trajectories.shape[2], sketch_dimension, random_state=4)
    restricted = sketch.to_dense() @ lift  # S on the 12-dim data span
    assert np.linalg.matrix_rank(restricted) == 12  # injective there
    raw = koopman_eigenvalues(trajectories, delays=delays)
    sketched = koopman_eigenvalues(sketch_stack(sketch, trajectories), delays=delays)
    assert mean_matched_distance(raw, true) < 1e-8
    assert len(sketched) == len(raw) and mean_matched_distance(sketched, raw) < 1e-8


@pytest.mark.parametrize("sketch_dimension, low, high", [(10, 0.05, 0.3), (8, 0.1, 0.35),
                                                         (4, 0.1, 0.5)])
def test_eigenvalues_move_a_measured_amount_when_the_sketch_is_not_injective(
        sketch_dimension, low, high):
    trajectories, _, true = lifted_linear_system()
    distances = [mean_matched_distance(koopman_eigenvalues(sketch_stack(
        CountSketch(trajectories.shape[2], sketch_dimension, random_state=seed),
        trajectories)), true) for seed in range(5)]
    assert low < min(distances) and max(distances) < high, distances


def test_truncated_fcn_spectrum_moves_by_about_a_seed_to_seed_distance():
    weights = trained_fcn_output_weights()
    raw = koopman_eigenvalues(weights, delays=4, rank=10)
    for sketch_dimension in (200, 50, 12):
        sketched = koopman_eigenvalues(sketch_stack(
            CountSketch(weights.shape[2], sketch_dimension, random_state=0), weights),
            delays=4, rank=10)
        assert mean_matched_distance(sketched, raw) < 0.03  # measured 0.004-0.016
