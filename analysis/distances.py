"""The paper's distance between Koopman spectra, and fast pairwise distance matrices.

Each eigenvalue is a point (Re lambda, Im lambda) of the complex plane. For two sets of equal
size k, the distance is the mean Euclidean distance under the optimal one-to-one matching
(Hungarian algorithm), which equals the 1-Wasserstein distance between the two uniform
empirical measures (the paper's step 5; both members of a conjugate pair count). For sets of
unequal size it is the exact optimal-transport (1-Wasserstein) cost between the uniform
measures, computed with POT's ``ot.emd2``; for equal sizes the two definitions coincide
(Birkhoff: the optimal transport plan between uniform measures of equal size is a permutation).
The same holds for the p-Wasserstein distance with the cost ``|a - b| ** p``; the registered
metrics (:data:`METRICS`) are the paper's p = 1 and p = 2, which the verdicts use.

The matrix over many spectra is where the time goes (2,000 spectra: 2 million pairs). SciPy's
``linear_sum_assignment`` solves a 10 x 10 problem in about 2 microseconds; a plain loop spends
most of its ~10 microseconds a pair building the cost matrix and summing the matched costs in
Python. Here the cost matrices of a chunk of pairs are built in one numpy operation, the loop
only calls the solver, the matched costs are summed in one operation afterwards, and chunks are
spread over worker processes. Exact: every pair is solved by the same Hungarian solver.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

logger = logging.getLogger(__name__)

PAIRS_PER_CHUNK = 50_000  # one chunk's (pairs, k, k) cost array is 40 MB for k = 10
PARALLEL_MIN_PAIRS = 200_000  # below this, starting worker processes costs more than it saves


def as_points(spectrum) -> np.ndarray:
    """A spectrum as an ``(n_eigenvalues, 2)`` float array of (Re, Im) points.

    Accepts a 1-D complex array or an ``(n_eigenvalues, 2)`` real array.
    """
    values = np.asarray(spectrum)
    if np.iscomplexobj(values) or values.ndim == 1:
        values = np.asarray(values, dtype=complex).ravel()
        points = np.column_stack([values.real, values.imag])
    elif values.ndim == 2 and values.shape[1] == 2:
        points = values.astype(float)
    else:
        raise ValueError(
            f"a spectrum must be a 1-D complex array or an (n, 2) real array; got shape {values.shape}"
        )
    if points.shape[0] == 0:
        raise ValueError("a spectrum must hold at least one eigenvalue; got an empty array")
    if not np.all(np.isfinite(points)):
        raise ValueError("a spectrum holds non-finite eigenvalues (NaN or Inf)")
    return points


@dataclass(frozen=True)
class SpectralMetric:
    """A distance between eigenvalue sets: the p-Wasserstein distance between uniform measures.

    ``power`` p: the ground cost is ``|a - b| ** p`` and the distance the p-th root of the
    optimal mean cost. p = 1 is the paper's distance (mean matched |Δλ|); p = 2 is the root mean
    square matched |Δλ|, the metric of the verdicts: where spectra are small perturbations of one
    another it is the Euclidean distance between the matched eigenvalue vectors, so squared
    distances decompose into centre and spread (see :mod:`analysis.effects`).
    """

    name: str
    power: int
    description: str


METRICS = {metric.name: metric for metric in (
    SpectralMetric("wasserstein-1", 1, "mean matched |Δλ| (the paper's distance)"),
    SpectralMetric("wasserstein-2", 2, "root mean square matched |Δλ|"),
)}
DEFAULT_METRIC = "wasserstein-1"


def get_metric(name: str) -> SpectralMetric:
    """The registered metric called ``name``; a clear error naming the choices otherwise."""
    if name not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}; got metric={name!r}")
    return METRICS[name]


def spectral_distance(a, b, *, metric: str = DEFAULT_METRIC) -> float:
    """p-Wasserstein distance between the uniform measures on two eigenvalue sets.

    ``a``, ``b``: 1-D complex arrays of eigenvalues, or ``(n, 2)`` real arrays of (Re, Im).
    Equal sizes: the optimal one-to-one matching (Hungarian) of the cost ``|a - b| ** p``.
    Unequal sizes: exact optimal transport with POT ``ot.emd2`` (uniform weights). Symmetric,
    zero on identical sets. ``metric``: a name in :data:`METRICS`.
    """
    power = get_metric(metric).power
    points_a, points_b = as_points(a), as_points(b)
    cost = np.linalg.norm(points_a[:, None, :] - points_b[None, :, :], axis=-1) ** power
    if points_a.shape[0] == points_b.shape[0]:
        rows, cols = linear_sum_assignment(cost)
        return float(cost[rows, cols].mean() ** (1 / power))
    weights_a = np.full(points_a.shape[0], 1.0 / points_a.shape[0])
    weights_b = np.full(points_b.shape[0], 1.0 / points_b.shape[0])
    return float(_optimal_transport().emd2(weights_a, weights_b, cost) ** (1 / power))


def _optimal_transport():
    """POT, imported only when sets of unequal size occur.

    ``import ot`` imports torch (and JAX, TensorFlow, CuPy) when installed, for its array
    backends; the analysis passes numpy arrays only and must never load torch (import rules),
    so those backends are switched off unless the environment already says otherwise.
    """
    for framework in ("PYTORCH", "JAX", "CUPY", "TENSORFLOW"):
        os.environ.setdefault(f"POT_BACKEND_DISABLE_{framework}", "1")
    import ot

    return ot


def pairwise_distance_matrix(spectra: Sequence, *, metric: str = DEFAULT_METRIC,
                             n_jobs: int = 2) -> np.ndarray:
    """Symmetric ``(n_spectra, n_spectra)`` matrix of :func:`spectral_distance` values.

    ``spectra``: a sequence of 1-D complex arrays (or ``(n, 2)`` real arrays). Pairs of equal
    size are solved in chunks (:func:`matched_distances`), over ``n_jobs`` worker processes when
    there are many; pairs of unequal size use ``ot.emd2`` one by one.
    """
    points = [as_points(spectrum) for spectrum in spectra]
    n_spectra = len(points)
    distances = np.zeros((n_spectra, n_spectra))
    sizes = np.array([p.shape[0] for p in points])
    for size in np.unique(sizes):
        members = np.flatnonzero(sizes == size)
        stack = np.stack([p[:, 0] + 1j * p[:, 1] for p in (points[i] for i in members)])
        first, second = np.triu_indices(members.size, k=1)
        values = _equal_size_distances(stack, first, second, power=get_metric(metric).power,
                                       n_jobs=n_jobs)
        distances[members[first], members[second]] = values
    for first, second in zip(*np.triu_indices(n_spectra, k=1)):
        if sizes[first] != sizes[second]:
            distances[first, second] = spectral_distance(points[first], points[second], metric=metric)
    return distances + distances.T


def matched_distances(first_spectra: np.ndarray, second_spectra: np.ndarray, *,
                      power: int = 1) -> np.ndarray:
    """p-Wasserstein distance for each row pair of two ``(n_pairs, k)`` complex stacks."""
    # |a - b| from real and imaginary parts in place: several times faster than np.abs on a
    # complex array (hypot guards against overflow that eigenvalues near 1 never reach).
    cost = first_spectra.real[:, :, None] - second_spectra.real[:, None, :]  # (n_pairs, k, k)
    cost *= cost
    imaginary = first_spectra.imag[:, :, None] - second_spectra.imag[:, None, :]
    imaginary *= imaginary
    cost += imaginary
    if power != 2:  # the squared modulus is already the p = 2 cost
        np.power(cost, power / 2, out=cost)
    matched_columns = np.empty(first_spectra.shape, dtype=np.intp)
    solve = linear_sum_assignment
    for position, matrix in enumerate(cost):
        matched_columns[position] = solve(matrix)[1]  # rows come back as 0, 1, ..., k - 1
    matched = np.take_along_axis(cost, matched_columns[:, :, None], axis=2)
    mean_cost = matched[:, :, 0].mean(axis=1)
    return mean_cost if power == 1 else mean_cost ** (1 / power)


def _chunk_distances(stack, first, second, power):
    return matched_distances(stack[first], stack[second], power=power)


def _equal_size_distances(stack, first, second, *, power, n_jobs):
    """Distances for index pairs (first[p], second[p]) of a ``(n, k)`` complex stack."""
    bounds = [(start, start + PAIRS_PER_CHUNK) for start in range(0, first.size, PAIRS_PER_CHUNK)]
    if n_jobs <= 1 or first.size < PARALLEL_MIN_PAIRS:
        parts = [_chunk_distances(stack, first[a:b], second[a:b], power) for a, b in bounds]
    else:
        # "spawn": safe whatever threads the caller runs (fork can deadlock with threads).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
            parts = list(pool.map(_chunk_distances, [stack] * len(bounds),
                                  [first[a:b] for a, b in bounds], [second[a:b] for a, b in bounds],
                                  [power] * len(bounds)))
    return np.concatenate(parts) if parts else np.zeros(0)
