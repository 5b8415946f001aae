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
