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

The matrix over many spectra is where the time goes: 10,000 spectra are 50 million pairs.
SciPy's ``linear_sum_assignment`` takes about 2 microseconds for a 10 x 10 problem, about half
of it (on spectra close to one another) the Python call rather than the solve, and building each
pair's cost matrix and collecting the matched costs takes as much again; over 50 million pairs
that is minutes even on two processes (141 s of a 211 s analysis of 10,000 units on a quiet
2-core machine, as results/README.md records). So the matrix is filled by a batched solver
compiled with numba (:mod:`analysis.matching`): the algorithm SciPy uses, run over all pairs in
one compiled loop on threads, each pair's cost computed from the two spectra inside the loop and
each value written straight into the matrix. Measured against the SciPy path in the same run on
a 2-core machine busy with other work (``tests/benchmarks/bench_distances.py``, 1,000 spectra,
499,500 pairs): 0.47 of its time on one thread (2.1 against 4.6 us a pair); a second thread
gained nothing there, the cores being taken. The 10,000-unit verdicts benchmark went from 741 s
(645 s of distances) to 198 s (109 s), both runs on that busy machine. Exact: every pair gets
its optimum, equal to SciPy's to rounding. :func:`reference_distance_matrix` is the same matrix
with SciPy's solver for every pair, the reference that the tests and the benchmark compare
against.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from analysis.matching import fill_distance_matrix, matched_point_distances


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
    size are solved by the batched solver (:func:`analysis.matching.fill_distance_matrix`) on
    ``n_jobs`` threads; pairs of unequal size use ``ot.emd2`` one by one.
    """
    def fill(stack, power, out):
        fill_distance_matrix(stack, power=power, out=out, n_threads=n_jobs)

    return _distance_matrix(spectra, metric, fill)


def reference_distance_matrix(spectra: Sequence, *, metric: str = DEFAULT_METRIC) -> np.ndarray:
    """The matrix of :func:`pairwise_distance_matrix` with SciPy's solver for every pair.

    The reference that the batched solver is tested and timed against: each equal-size pair
    is solved by ``linear_sum_assignment`` (:func:`reference_matched_distances`, one process).
    """
    def fill(stack, power, out):
        for start in range(0, stack.shape[0], REFERENCE_ROWS_PER_CHUNK):
            rows = np.arange(start, min(start + REFERENCE_ROWS_PER_CHUNK, stack.shape[0]))
            first, second = np.nonzero(rows[:, None] < np.arange(stack.shape[0])[None, :])
            first = rows[first]
            values = reference_matched_distances(stack[first], stack[second], power=power)
            out[first, second] = values
            out[second, first] = values
        np.fill_diagonal(out, 0.0)

    return _distance_matrix(spectra, metric, fill)


REFERENCE_ROWS_PER_CHUNK = 50  # rows of the upper triangle per chunk: at most 50 n pairs at once


def _distance_matrix(spectra, metric, fill_equal_size):
    """The distance matrix, ``fill_equal_size(stack, power, out)`` solving each equal-size group.

    ``stack`` is the ``(m, k)`` complex stack of one size's spectra and ``out`` its ``(m, m)``
    block, to be filled whole. With a single size (the usual case) the block is the matrix
    itself, so nothing of the matrix's size is allocated twice.
    """
    power = get_metric(metric).power
    points = [as_points(spectrum) for spectrum in spectra]
    n_spectra = len(points)
    sizes = np.array([p.shape[0] for p in points], dtype=int)
    groups = {int(size): np.flatnonzero(sizes == size) for size in np.unique(sizes)}
    distances = np.zeros((n_spectra, n_spectra))
    for members in groups.values():
        stack = np.stack([points[i][:, 0] + 1j * points[i][:, 1] for i in members])
        if members.size == n_spectra:
            fill_equal_size(stack, power, distances)
        else:
            block = np.empty((members.size, members.size))
            fill_equal_size(stack, power, block)
            distances[np.ix_(members, members)] = block
    for size_a, size_b in itertools.combinations(groups, 2):
        for first in groups[size_a]:
            for second in groups[size_b]:
                value = spectral_distance(points[first], points[second], metric=metric)
                distances[first, second] = distances[second, first] = value
    return distances


def matched_distances(first_spectra: np.ndarray, second_spectra: np.ndarray, *,
                      power: int = 1) -> np.ndarray:
    """p-Wasserstein distance for each row pair of two ``(n_pairs, k)`` complex stacks.

    The batched solver (:func:`analysis.matching.matched_point_distances`).
    """
    return matched_point_distances(first_spectra, second_spectra, power=power)


def reference_matched_distances(first_spectra: np.ndarray, second_spectra: np.ndarray, *,
                                power: int = 1) -> np.ndarray:
    """:func:`matched_distances` with one SciPy ``linear_sum_assignment`` call per pair."""
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
