"""The paper's distance between Koopman spectra, and fast pairwise distance matrices.

Each eigenvalue is a point (Re lambda, Im lambda) of the complex plane. For two sets of equal
size k, the distance is the mean Euclidean distance under the optimal one-to-one matching
(Hungarian algorithm), which equals the 1-Wasserstein distance between the two uniform
empirical measures (PAPER.md, step 5; both members of a conjugate pair count). For sets of
unequal size it is the exact optimal-transport (1-Wasserstein) cost between the uniform
measures, computed with POT's ``ot.emd2``; for equal sizes the two definitions coincide
(Birkhoff: the optimal transport plan between uniform measures of equal size is a permutation).

The matrix over many spectra solves the assignment problems of all equal-size pairs together:
:func:`batched_assignment_cost` is the shortest-augmenting-path (Jonker-Volgenant) algorithm
that SciPy's ``linear_sum_assignment`` uses, written over a batch axis so that every numpy
operation serves thousands of pairs at once. It is exact (same optimum as SciPy, to rounding),
not an approximation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

logger = logging.getLogger(__name__)

PAIRS_PER_CHUNK = 20_000  # keeps one chunk's (pairs, k, k) cost array near 16 MB for k = 10


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


def spectral_distance(a, b) -> float:
    """1-Wasserstein distance between the uniform measures on two eigenvalue sets.

    ``a``, ``b``: 1-D complex arrays of eigenvalues, or ``(n, 2)`` real arrays of (Re, Im).
    Equal sizes: mean Euclidean distance under the optimal one-to-one matching (Hungarian).
    Unequal sizes: exact optimal transport with POT ``ot.emd2`` (uniform weights, Euclidean
    ground cost). Symmetric, zero on identical sets.
    """
    points_a, points_b = as_points(a), as_points(b)
    cost = np.linalg.norm(points_a[:, None, :] - points_b[None, :, :], axis=-1)  # (n_a, n_b)
    if points_a.shape[0] == points_b.shape[0]:
        return float(batched_assignment_cost(cost[None])[0] / points_a.shape[0])
    weights_a = np.full(points_a.shape[0], 1.0 / points_a.shape[0])
    weights_b = np.full(points_b.shape[0], 1.0 / points_b.shape[0])
    return float(_optimal_transport().emd2(weights_a, weights_b, cost))


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


def batched_assignment_cost(cost: np.ndarray) -> np.ndarray:
    """Minimum total cost of a perfect matching for each of a batch of square cost matrices.

    ``cost``: ``(n_problems, k, k)`` float array; returns ``(n_problems,)``. Shortest augmenting
    paths with Dijkstra on reduced costs (Jonker and Volgenant 1987; Crouse 2016, the variant in
    SciPy's ``linear_sum_assignment``): one row is added to the matching at a time, so the
    Python-level loop runs at most k (k + 1) / 2 Dijkstra steps whatever the batch size.
    """
    cost = np.asarray(cost, dtype=float)
    n_problems, k, _ = cost.shape
    state = _MatchingState(n_problems, k)
    for current_row in range(k):
        sink, min_value, path = _shortest_augmenting_path(cost, state, current_row)
        _update_duals(state, current_row, min_value)
        _augment(state, sink, path, current_row)
    problems = np.arange(n_problems)[:, None]
    return cost[problems, np.arange(k)[None, :], state.col_for_row].sum(axis=1)


class _MatchingState:
    """Dual variables and the partial matching of a batch of assignment problems."""

    def __init__(self, n_problems: int, k: int):
        self.u = np.zeros((n_problems, k))  # row duals
        self.v = np.zeros((n_problems, k))  # column duals
        self.col_for_row = np.full((n_problems, k), -1)
        self.row_for_col = np.full((n_problems, k), -1)
        self.path_costs = np.zeros((n_problems, k))  # Dijkstra labels of the last search
        self.scanned_rows = np.zeros((n_problems, k), dtype=bool)
        self.scanned_cols = np.zeros((n_problems, k), dtype=bool)


def _shortest_augmenting_path(cost, state, current_row):
    """Dijkstra from ``current_row`` to the nearest free column, for every problem at once.

    The first step is taken by all problems together (no column scanned yet); most then reach
    a free column at once, and only the rest continue, in a compacted batch.
    """
    n_problems, k, _ = cost.shape
    batch = np.arange(n_problems)
    labels = cost[:, current_row, :] - state.u[:, current_row, None] - state.v  # (n, k)
    path = np.full((n_problems, k), current_row)
    state.scanned_rows.fill(False)
    state.scanned_rows[:, current_row] = True
    state.scanned_cols.fill(False)
    column = np.argmin(labels, axis=1)
    min_value = labels[batch, column]
    state.scanned_cols[batch, column] = True
    owner = state.row_for_col[batch, column]
    sink = np.where(owner == -1, column, -1)
    state.path_costs = labels
    searching = np.flatnonzero(owner != -1)
    if searching.size:
        _continue_search(cost, state, searching, owner[searching], path, min_value, sink)
    return sink, min_value, path


def _continue_search(cost, state, index, row, path, min_value, sink):
    """Further Dijkstra steps for the problems ``index`` whose search has not ended."""
    labels, paths = state.path_costs[index], path[index]
    scanned_cols, scanned_rows = state.scanned_cols[index], state.scanned_rows[index]
    values = min_value[index]
    k = cost.shape[1]
    # Flat views: one integer gather is much cheaper than indexing with two index arrays.
    cost_rows, u_flat = cost.reshape(-1, k), state.u.reshape(-1)
    row_for_col_flat = state.row_for_col.reshape(-1)
    while index.size:
        local = np.arange(index.size)
        scanned_rows[local, row] = True
        flat_row = index * k + row
        reduced = cost_rows.take(flat_row, axis=0)
        reduced -= (u_flat.take(flat_row) - values)[:, None]
        reduced -= state.v.take(index, axis=0)
        improves = reduced < labels
        improves &= ~scanned_cols
        np.copyto(labels, reduced, where=improves)
        np.copyto(paths, row[:, None], where=improves)
        candidates = np.where(scanned_cols, np.inf, labels)
        column = np.argmin(candidates, axis=1)
        values = candidates[local, column]
        scanned_cols[local, column] = True
        owner = row_for_col_flat.take(index * k + column)
        free = owner == -1
        if free.any():
            done = index[free]
            state.path_costs[done], path[done] = labels[free], paths[free]
            state.scanned_cols[done], state.scanned_rows[done] = scanned_cols[free], scanned_rows[free]
            min_value[done], sink[done] = values[free], column[free]
            keep = ~free
            index, row, labels, paths = index[keep], owner[keep], labels[keep], paths[keep]
            scanned_cols, scanned_rows, values = scanned_cols[keep], scanned_rows[keep], values[keep]
        else:
            row = owner


def _update_duals(state, current_row, min_value):
    """Keep reduced costs non-negative and matched edges tight (Crouse 2016, algorithm 1)."""
    gap_rows = min_value[:, None] - np.take_along_axis(
        state.path_costs, np.maximum(state.col_for_row, 0), axis=1)
    rows_to_shift = state.scanned_rows.copy()
    rows_to_shift[:, current_row] = False
    state.u += np.where(rows_to_shift, gap_rows, 0.0)
    state.u[:, current_row] += min_value
    state.v -= np.where(state.scanned_cols, min_value[:, None] - state.path_costs, 0.0)


def _augment(state, sink, path, current_row):
    """Flip the matching along each problem's augmenting path (at most current_row + 1 edges)."""
    batch = np.arange(sink.size)
    column = sink.copy()
    pending = np.ones(sink.size, dtype=bool)
    for _ in range(current_row + 1):
        index, col = batch[pending], column[pending]
        row = path[index, col]
        state.row_for_col[index, col] = row
        previous = state.col_for_row[index, row]
        state.col_for_row[index, row] = col
        column[index] = previous
        pending[index] = row != current_row
        if not pending.any():
            break


def pairwise_distance_matrix(spectra: Sequence, *, n_jobs: int = 2) -> np.ndarray:
    """Symmetric ``(n_spectra, n_spectra)`` matrix of :func:`spectral_distance` values.

    ``spectra``: a sequence of 1-D complex arrays (or ``(n, 2)`` real arrays). Pairs of equal
    size go through :func:`batched_assignment_cost` in chunks, spread over ``n_jobs`` threads
    (numpy releases the GIL inside its loops); pairs of unequal size use ``ot.emd2`` one by one.
    """
    points = [as_points(spectrum) for spectrum in spectra]
    n_spectra = len(points)
    distances = np.zeros((n_spectra, n_spectra))
    sizes = np.array([p.shape[0] for p in points])
    for size in np.unique(sizes):
        members = np.flatnonzero(sizes == size)
        stack = np.stack([points[index] for index in members])  # (n_members, size, 2)
        first, second = np.triu_indices(members.size, k=1)
        values = _equal_size_distances(stack, first, second, n_jobs=n_jobs)
        distances[members[first], members[second]] = values
    for first, second in zip(*np.triu_indices(n_spectra, k=1)):
        if sizes[first] != sizes[second]:
            distances[first, second] = spectral_distance(points[first], points[second])
    return distances + distances.T


def _equal_size_distances(stack, first, second, *, n_jobs):
    """Distances for index pairs (first[p], second[p]) of a ``(n, k, 2)`` stack of spectra."""
    k = stack.shape[1]
    bounds = range(0, first.size, PAIRS_PER_CHUNK)

    def chunk_distances(start):
        rows, cols = first[start:start + PAIRS_PER_CHUNK], second[start:start + PAIRS_PER_CHUNK]
        differences = stack[rows][:, :, None, :] - stack[cols][:, None, :, :]
        cost = np.sqrt(np.einsum("pijc,pijc->pij", differences, differences))  # (pairs, k, k)
        return batched_assignment_cost(cost) / k

    if n_jobs <= 1 or first.size <= PAIRS_PER_CHUNK:
        parts = [chunk_distances(start) for start in bounds]
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            parts = list(pool.map(chunk_distances, bounds))
    return np.concatenate(parts) if parts else np.zeros(0)
