"""The result of one projected-DMD fit, and the last steps both solvers share.

:class:`KoopmanFit` is what :func:`study.koopman.dmd.fit_koopman` returns whichever solver
ran; :func:`assemble_fit` turns a solver's ``A_tilde`` into it (eigen-decomposition, sorting,
exact modes, amplitudes) and :func:`numerical_rank` is the one rank tolerance both solvers
use. A leaf module (numpy only), so that :mod:`study.koopman.dmd` (the reference SVD route)
and :mod:`study.koopman.krylov` (the fast route) both import it and not each other's
internals. Math orientation (snapshots are columns), as in :mod:`study.koopman.dmd`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class KoopmanFit:
    """The result of one projected-DMD fit (math orientation: modes are columns).

    eigenvalues: (k,) complex, sorted by decreasing modulus.
    modes: (n_embedded_features, k) complex exact DMD modes ``X' V S^-1 W``.
    amplitudes: (k,) complex, least-squares fit of the first embedded snapshot.
    singular_values: (k,) the kept singular values of ``X``, decreasing.
    residual: relative one-step reconstruction residual ``||X' - U A U^T X|| / ||X'||``.
    rank: k. n_pairs: N, the number of snapshot pairs. solver: "svd" or "gram" (the one used).
    """

    eigenvalues: np.ndarray
    modes: np.ndarray
    amplitudes: np.ndarray
    singular_values: np.ndarray
    residual: float
    rank: int
    n_pairs: int
    solver: str = "svd"


def numerical_rank(singular_values: np.ndarray, shape: tuple[int, int]) -> int:
    """Count of singular values above ``sigma_1 * max(shape) * eps`` (numpy's convention)."""
    if singular_values.size == 0 or singular_values[0] == 0.0:
        return 0
    tolerance = singular_values[0] * max(shape) * np.finfo(np.float64).eps
    return int(np.count_nonzero(singular_values > tolerance))


def assemble_fit(operator, singular, *, exact_modes, first_snapshot, residual, n_pairs,
                 solver) -> KoopmanFit:
    """Eigen-decompose ``A_tilde`` and package modes, amplitudes and diagnostics."""
    eigenvalues, eigenvectors = np.linalg.eig(operator)
    order = sort_order(eigenvalues)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    modes = exact_modes(eigenvectors.astype(np.complex128))
    amplitudes = np.linalg.lstsq(modes, first_snapshot.astype(np.complex128), rcond=None)[0]
    return KoopmanFit(
        eigenvalues=eigenvalues.astype(np.complex128), modes=modes, amplitudes=amplitudes,
        singular_values=np.asarray(singular, dtype=np.float64), residual=float(residual),
        rank=int(operator.shape[0]), n_pairs=int(n_pairs), solver=solver)


def sort_order(eigenvalues: np.ndarray) -> np.ndarray:
    """Decreasing modulus; ties (conjugate pairs) by decreasing real, then imaginary part."""
    rounded = np.round(np.abs(eigenvalues), 12)
    return np.lexsort((-eigenvalues.imag, -np.round(eigenvalues.real, 12), -rounded))
