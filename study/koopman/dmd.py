"""Koopman eigenvalues of training trajectories by projected DMD (Redman et al., NeurIPS 2024).

The estimator of the paper (Redman et al., "Identifying Equivalent Training Dynamics", NeurIPS
2024: its DMD recipe, step by step), as functions of arrays. Pure numpy: no torch.

Orientation. Trajectories are ``(n_steps, n_features)``, time on axis 0; a stack of replicas is
``(n_replicas, n_steps, n_features)`` or a list of 2-D arrays with the same ``n_features``
(replica lengths may differ: pairs are formed inside each replica, so ragged lists are
well defined). Inside the numeric kernels the math orientation of the paper is used:
snapshots are columns, ``X`` and ``X'`` are ``(D, N)`` with ``D = (delays + 1) * n_features``
the embedded dimension and ``N`` the number of snapshot pairs.

Recipe, per replica ``r`` with ``n_r`` steps and ``m_r = n_r - delays`` Hankel columns:

1. Hankel (time-delay) embedding ``z_t = [x_t, x_{t+1}, ..., x_{t+d}]``, ``t = 0 .. m_r - 1``.
2. Pairs ``(z_t, z_{t+1})`` for ``t = 0 .. m_r - 2``, inside the replica only; the pairs of all
   replicas are concatenated into ``X`` (first members) and ``X'`` (second members),
   ``N = sum_r (m_r - 1)``.
3. Thin SVD ``X = U S V^T``; keep the top ``k = rank`` triplets (``rank=None``: all singular
   values above the numerical-rank tolerance ``sigma_1 * max(D, N) * eps``, numpy's
   ``matrix_rank`` convention).
4. ``A_tilde = U^T X' V S^-1`` and its eigenvalues. No centering, no scaling.

Modes are the *exact* DMD modes ``Phi = X' V S^-1 W`` (Tu et al. 2014; ``W`` the eigenvectors
of ``A_tilde``), shape ``(D, k)``: for nonzero eigenvalues they are eigenvectors of
``X' X^+``. Amplitudes are the least-squares solution of ``Phi b = z_0`` (first embedded
snapshot of the first replica). The residual is ``||X' - U A_tilde U^T X||_F / ||X'||_F``.

Solvers. ``"svd"`` is the recipe above done literally (the reference). ``"gram"`` is the
fast route of :mod:`study.koopman.krylov` for a small ``rank`` on large data: block Krylov on
``X X^T`` through implicit Hankel products, then an exact Rayleigh-Ritz step; it never forms
the Hankel or the Gram matrix (see that module for the method, why it beats an explicit
Gram, and its a-posteriori accuracy certificate). ``"auto"`` uses ``"gram"`` when a rank
is given, it is small next to both sides and the problem has at least 1e6 entries, and falls
back to ``"svd"`` whenever the fast route cannot certify a subspace error below 1e-9.

Bad input raises a :class:`~study.koopman.errors.KoopmanInputError` (a ``ValueError``)
subclass from :mod:`study.koopman.errors`:
:class:`NonFiniteSnapshotError` (NaN/Inf; names replica, step and feature),
:class:`TooFewStepsError` (a replica with fewer than ``delays + 2`` steps: no pair),
:class:`ZeroRankError` (all-zero data), :class:`RankTooLargeError` (``rank`` above the
numerical rank of the data: never silently clipped, because a clipped spectrum would be
compared with full-size spectra of other runs). A constant nonzero trajectory is *not* an
error: it is a fixed point, its rank is 1 and its spectrum is ``[1.0]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from study.koopman.errors import (KoopmanInputError, NonFiniteSnapshotError, RankTooLargeError,
                                  TooFewStepsError, ZeroRankError)
from study.koopman.krylov import fit_gram
from study.koopman.result import KoopmanFit, assemble_fit, numerical_rank

logger = logging.getLogger(__name__)

SOLVERS = ("auto", "svd", "gram")


def koopman_eigenvalues(trajectories, *, delays: int = 0, rank: int | None = None) -> np.ndarray:
    """Koopman eigenvalues (k,) complex of ``(n_steps, n_features)`` or stacked trajectories.

    ``trajectories``: ``(n_steps, n_features)``, ``(n_replicas, n_steps, n_features)`` or a
    list of 2-D arrays (time on axis 0). ``delays``: Hankel depth d. ``rank``: number of SVD
    triplets kept (None: the numerical rank). See the module docstring for the recipe.
    """
    return fit_koopman(trajectories, delays=delays, rank=rank).eigenvalues


def fit_koopman(trajectories, *, delays: int = 0, rank: int | None = None,
                solver: str = "auto") -> KoopmanFit:
    """Projected DMD of ``(n_steps, n_features)`` or ``(n_replicas, n_steps, n_features)`` data.

    Returns a :class:`KoopmanFit`. ``solver``: ``"svd"`` (the literal recipe), ``"gram"`` (no
    Hankel matrix; needs ``rank``), ``"auto"`` (``"gram"`` when it pays and is certified
    accurate, else ``"svd"``). Raises :class:`KoopmanInputError` subclasses on bad input.
    """
    replicas = as_replica_list(trajectories)
    check_parameters(replicas, delays=delays, rank=rank, solver=solver)
    check_finite(replicas)
    if solver == "auto":
        solver = choose_solver(replicas, delays=delays, rank=rank)
    if solver == "gram":
        stacked = None
        if isinstance(trajectories, np.ndarray) and trajectories.ndim == 3 \
                and trajectories.dtype == np.float64 and trajectories.flags.c_contiguous:
            stacked = trajectories.reshape(-1, trajectories.shape[2])  # a view, no copy
        fit = fit_gram(replicas, delays=delays, rank=rank, stacked=stacked)
        if fit is not None:
            return fit
        logger.info("fast route not certified to 1e-9 subspace error; using the full SVD")
    return fit_svd(replicas, delays=delays, rank=rank)


def as_replica_list(trajectories) -> list[np.ndarray]:
    """Turn accepted inputs into a list of float64 ``(n_steps, n_features)`` arrays (views)."""
    if isinstance(trajectories, (list, tuple)):
        replicas = [np.asarray(replica, dtype=np.float64) for replica in trajectories]
        if not replicas:
            raise KoopmanInputError("trajectories is an empty list: need at least one replica")
    else:
        array = np.asarray(trajectories, dtype=np.float64)
        if array.ndim == 2:
            replicas = [array]
        elif array.ndim == 3:
            replicas = list(array)
        else:
            raise KoopmanInputError(
                f"trajectories must be (n_steps, n_features) or (n_replicas, n_steps, "
                f"n_features); got shape {array.shape} (a scalar series needs reshape(-1, 1))")
    for index, replica in enumerate(replicas):
        if replica.ndim != 2:
            raise KoopmanInputError(
                f"replica {index} must be (n_steps, n_features); got shape {replica.shape}")
    n_features = replicas[0].shape[1]
    for index, replica in enumerate(replicas):
        if replica.shape[1] != n_features:
            raise KoopmanInputError(
                f"replica {index} has {replica.shape[1]} features, replica 0 has {n_features}")
    return replicas


def check_parameters(replicas: Sequence[np.ndarray], *, delays, rank, solver) -> None:
    """Validate delays, rank, solver and replica lengths (errors name the value)."""
    if isinstance(delays, bool) or not isinstance(delays, (int, np.integer)) or delays < 0:
        raise KoopmanInputError(f"delays must be an int >= 0; got {delays!r}")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer))
                             or rank < 1):
        raise KoopmanInputError(f"rank must be None or an int >= 1; got {rank!r}")
    if solver not in SOLVERS:
        raise KoopmanInputError(f"solver must be one of {SOLVERS}; got {solver!r}")
    for index, replica in enumerate(replicas):
        if replica.shape[0] < delays + 2:
            raise TooFewStepsError(
                f"replica {index} has {replica.shape[0]} steps; delays={delays} needs at least "
                f"{delays + 2} steps to form one snapshot pair")


def check_finite(replicas: Sequence[np.ndarray]) -> None:
    """Raise :class:`NonFiniteSnapshotError` naming the first bad replica, step and feature."""
    for index, replica in enumerate(replicas):
        if np.isfinite(replica.sum()):  # cheap screen; a finite sum implies finite entries
            continue
        bad = np.argwhere(~np.isfinite(replica))
        if bad.size:
            step, feature = bad[0]
            raise NonFiniteSnapshotError(
                f"non-finite value {replica[step, feature]} at step {step} of replica {index} "
                f"(feature {feature})")


def choose_solver(replicas: Sequence[np.ndarray], *, delays: int, rank: int | None) -> str:
    """``"gram"`` for a small rank on a large problem (where it saves time), else ``"svd"``."""
    if rank is None:
        return "svd"
    embedded = (delays + 1) * replicas[0].shape[1]
    n_pairs = sum(replica.shape[0] - delays - 1 for replica in replicas)
    # Below ~1e6 entries the LAPACK SVD takes milliseconds; the Krylov route needs a rank well
    # below both sides to beat it (its basis grows by rank + 5 columns per step).
    small_rank = 4 * rank + 20 <= min(embedded, n_pairs)
    return "gram" if small_rank and embedded * n_pairs >= 1_000_000 else "svd"


def hankel_rows(replica: np.ndarray, delays: int) -> np.ndarray:
    """Rows ``z_t = [x_t, ..., x_{t+d}]`` of one replica: ``(n_steps - d, (d + 1) * p)``."""
    n_steps, n_features = replica.shape
    windows = np.lib.stride_tricks.sliding_window_view(replica, delays + 1, axis=0)
    # windows[t, feature, lag] = x_{t+lag}[feature]; z_t lists lag-major blocks.
    return windows.transpose(0, 2, 1).reshape(n_steps - delays, (delays + 1) * n_features)


def snapshot_matrices(replicas: Sequence[np.ndarray], delays: int) -> tuple[np.ndarray, np.ndarray]:
    """``X, X'`` in math orientation ``(D, N)``, pairs formed inside each replica only."""
    firsts, seconds = [], []
    for replica in replicas:
        rows = hankel_rows(replica, delays)
        firsts.append(rows[:-1])
        seconds.append(rows[1:])
    return np.concatenate(firsts).T, np.concatenate(seconds).T


def resolve_rank(rank: int | None, supported: int) -> int:
    """The rank to keep, or a clear error when the data support none or fewer."""
    if supported == 0:
        raise ZeroRankError("all snapshots are zero (rank 0): no spectrum can be estimated")
    if rank is None:
        return supported
    if rank > supported:
        raise RankTooLargeError(
            f"rank={rank} exceeds the numerical rank {supported} of the snapshot matrix "
            f"(singular values above sigma_1 * max(D, N) * eps); ask for rank <= {supported}")
    return rank


def fit_svd(replicas: Sequence[np.ndarray], *, delays: int, rank: int | None) -> KoopmanFit:
    """The literal recipe: explicit Hankel ``X, X'`` and a LAPACK thin SVD (the reference)."""
    first, second = snapshot_matrices(replicas, delays)  # (D, N) each
    left, singular, right_t = np.linalg.svd(first, full_matrices=False)
    kept = resolve_rank(rank, numerical_rank(singular, first.shape))
    left, singular, right = left[:, :kept], singular[:kept], right_t[:kept].T
    right_scaled = right / singular  # V S^-1, (N, k)
    operator = left.T @ (second @ right_scaled)  # A_tilde = U^T X' V S^-1, (k, k)
    coordinates = singular[:, None] * right.T  # U^T X = S V^T, (k, N)
    residual = np.linalg.norm(second - left @ (operator @ coordinates))
    return assemble_fit(
        operator, singular, exact_modes=lambda eigvecs: second @ (right_scaled @ eigvecs),
        first_snapshot=first[:, 0], residual=residual / np.linalg.norm(second),
        n_pairs=first.shape[1], solver="svd")
