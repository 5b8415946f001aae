"""Test data and reference measures shared by several test modules and the benchmarks.

Tests import it as ``helpers`` (pytest puts ``tests/`` on ``sys.path``, as there is no
``tests/__init__.py``); the benchmarks, which put the repository root there, as
``tests.helpers``. Trajectories are ``(n_replicas, n_steps, n_features)``, time on axis 1.
"""

import functools
import pickle
from pathlib import Path

import numpy as np
import scipy.linalg
from scipy.optimize import linear_sum_assignment


def rotation_with_decay(radius, angle):
    """Real 2x2 block with eigenvalues radius * exp(+-i angle)."""
    return radius * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def observed_block_system(blocks, n_replicas, n_steps, n_features, seed):
    """Trajectories of x_{t+1} = A x_t seen through a random linear map, and that map.

    A is block-diagonal with one :func:`rotation_with_decay` block per ``(radius, angle)`` in
    ``blocks``, so its eigenvalues are radius * exp(+-i angle). Returns ``(trajectories,
    observation)``: ``(n_replicas, n_steps, n_features)`` and ``(n_features, 2 len(blocks))``;
    each replica starts from its own random state.
    """
    rng = np.random.default_rng(seed)
    system = scipy.linalg.block_diag(*[rotation_with_decay(r, a) for r, a in blocks])
    observation = rng.normal(size=(n_features, system.shape[0]))
    states = np.empty((n_replicas, n_steps, system.shape[0]))
    states[:, 0] = rng.normal(size=(n_replicas, system.shape[0]))
    for step in range(1, n_steps):
        states[:, step] = states[:, step - 1] @ system.T
    return states @ observation.T, observation


def matched_distances(first, second):
    """|a - b| of the optimal one-to-one matching of two eigenvalue sets (SciPy's Hungarian).

    ``min(len(first), len(second))`` distances; the reference the library's own distances
    (PAPER.md, step 5) are tested against.
    """
    cost = np.abs(np.asarray(first)[:, None] - np.asarray(second)[None, :])
    rows, columns = linear_sum_assignment(cost)
    return cost[rows, columns]


def largest_matched_distance(first, second):
    """Largest distance between optimally matched eigenvalues."""
    return matched_distances(first, second).max()


def mean_matched_distance(first, second):
    """Mean distance between optimally matched eigenvalues."""
    return matched_distances(first, second).mean()


@functools.lru_cache(maxsize=2)  # shared by several test modules; callers never mutate it
def trained_fcn_output_weights(n_replicas=4, n_steps=300, width=20, seed=0):
    """(n_replicas, n_steps, 10 * width): output-layer weights of 784 -> width -> 10 ReLU nets.

    Trained with SGD (lr 0.1, batch 60) on Gaussian inputs labelled by a random linear
    teacher; replicas copy one initialisation times (1 + 0.001 U(-1, 1)), as in the paper.
    A realistic test case for the fast solver: a slowly drifting trajectory whose top
    singular value (the mean weights) dominates.
    """
    import torch  # here, so that modules needing only the linear systems stay light

    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(784, 10, generator=generator)
    base = [torch.randn(width, 784, generator=generator) * (2 / 784) ** 0.5,
            torch.randn(10, width, generator=generator) * width**-0.5]
    replicas = [[(w * (1 + 0.001 * (2 * torch.rand(w.shape, generator=generator) - 1)))
                 .requires_grad_() for w in base] for _ in range(n_replicas)]
    weights = np.empty((n_replicas, n_steps, 10 * width))
    for step in range(n_steps):
        inputs = torch.randn(60, 784, generator=generator)
        labels = (inputs @ teacher).argmax(1)
        for index, (hidden, output) in enumerate(replicas):
            logits = torch.relu(inputs @ hidden.T) @ output.T
            loss = torch.nn.functional.cross_entropy(logits, labels)
            gradients = torch.autograd.grad(loss, (hidden, output))
            with torch.no_grad():
                hidden -= 0.1 * gradients[0]
                output -= 0.1 * gradients[1]
            weights[index, step] = output.detach().numpy().ravel()
    return weights


def write_cifar10_folder(folder: Path, images_per_batch: int, seed: int = 0) -> None:
    """Random images in CIFAR-10's python format: data_batch_1..5 and test_batch.

    Each file is a pickled dict: ``b"data"`` (images_per_batch, 3072) uint8, channel-major
    (1024 red, then green, then blue values), and ``b"labels"`` a list of ints in 0..9.
    """
    generator = np.random.default_rng(seed)
    for name in [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]:
        batch = {b"data": generator.integers(0, 256, size=(images_per_batch, 3072), dtype=np.uint8),
                 b"labels": generator.integers(0, 10, size=images_per_batch).tolist()}
        with open(Path(folder) / name, "wb") as stream:
            pickle.dump(batch, stream)


OBSERVATION_MAPS = {  # smooth, invertible maps: conjugate observations of one linear system
    "identity": lambda y: y,
    "cubic": lambda y: y + 0.1 * y**3,
    "tanh": np.tanh,
}


def observed_system_spectra(condition, blocks, observation_map, n_seeds, *, n_replicas=4,
                            n_steps=60, n_features=12, delays=2, noise=1e-3, seed_offset=0,
                            shared=None, variants=True):
    """Long-form spectra of a linear system with prescribed eigenvalues, one estimate per seed.

    Each seed draws its own observation matrix C and initial states, observes the states x_t
    of x_{t+1} = A x_t (A from :func:`rotation_with_decay` ``blocks``) as
    ``y = g(C x / sqrt(n_state)) + noise``, with g one of :data:`OBSERVATION_MAPS`, and
    estimates the Koopman eigenvalues with the project's DMD (``delays``, rank = the state
    dimension), plus its resolution variants when ``variants``. Systems with the same ``blocks``
    are topologically conjugate whatever the map: their answer is "equivalent"; different
    blocks are different dynamics. ``shared``: a dict seed -> random generator state reused by
    every condition with that seed (a paired design: seeds share C and the initial states).
    """
    from study.koopman import fit_koopman
    from study.records import ESTIMATE_RECORDED, spectrum_rows
    from study.resolution import variant_spectra

    system = scipy.linalg.block_diag(*[rotation_with_decay(r, a) for r, a in blocks])
    n_state = system.shape[0]
    rows = []
    for seed in range(seed_offset, seed_offset + n_seeds):
        rng = np.random.default_rng(seed if shared is None else shared[seed])
        observation = rng.normal(size=(n_features, n_state)) / np.sqrt(n_state)
        states = np.empty((n_replicas, n_steps, n_state))
        states[:, 0] = rng.normal(size=(n_replicas, n_state))
        for step in range(1, n_steps):
            states[:, step] = states[:, step - 1] @ system.T
        own = np.random.default_rng([seed, abs(hash(condition)) % 2**32])
        observed = OBSERVATION_MAPS[observation_map](states @ observation.T)
        observed = observed + noise * own.normal(size=observed.shape)
        fit = fit_koopman(observed, delays=delays, rank=n_state)
        estimates = {ESTIMATE_RECORDED: fit.eigenvalues}
        if variants:
            estimates.update(variant_spectra(observed, delays=delays, rank=n_state,
                                             n_eigenvalues=n_state))
        for estimate, eigenvalues in estimates.items():
            rows += spectrum_rows(trial_id=f"{condition}-{seed}", condition=condition, seed=seed,
                                  window_index=0, window_start=0, window_end=n_steps,
                                  eigenvalues=eigenvalues, residual=0.0, estimate=estimate)
    import pandas as pd  # here: the torch-free helpers above need no pandas either

    return pd.DataFrame(rows)


# Two spectral families: FAR differs from NEAR_A by much more than the estimator's spread;
# NEAR_B moves one pair of NEAR_A by a small, real amount (a different system all the same).
NEAR_A = [(0.95, 0.30), (0.90, 0.70), (0.80, 1.20)]
NEAR_B = [(0.95, 0.30), (0.90, 0.70), (0.86, 1.20)]
FAR = [(0.99, 0.10), (0.70, 0.50), (0.60, 1.50)]
