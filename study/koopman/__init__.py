"""The Koopman core: Koopman eigenvalues of trajectories by projected DMD, batch or in-run.

Numerics only: numpy, and torch only when a caller feeds torch tensors (imported then, inside
the function). Nothing here imports the training code of :mod:`study`, so the estimator can be
fed from any training loop. Reference and an example: ``study/README.md``, section "The
Koopman core".

Modules, leaves first (each imports only those above it):

* :mod:`study.koopman.errors` — the input errors every part raises.
* :mod:`study.koopman.result` — :class:`KoopmanFit` and the steps both solvers share.
* :mod:`study.koopman.sketch` — :class:`CountSketch`, the seeded hashed reduction.
* :mod:`study.koopman.krylov` — the fast solver (``solver="gram"``): block Krylov, no Hankel.
* :mod:`study.koopman.dmd` — :func:`fit_koopman`, the recipe, the reference SVD solver.
* :mod:`study.koopman.streaming` — :class:`StreamingKoopman`, one ``partial_fit`` per step.

Orientation: trajectories are ``(n_steps, n_features)``, time on axis 0; stacks of replicas
``(n_replicas, n_steps, n_features)``.
"""

from study.koopman.dmd import SOLVERS, fit_koopman, koopman_eigenvalues
from study.koopman.errors import (KoopmanInputError, NonFiniteSnapshotError, RankTooLargeError,
                                  TooFewStepsError, ZeroRankError)
from study.koopman.result import KoopmanFit
from study.koopman.sketch import CountSketch
from study.koopman.streaming import StreamingKoopman

__all__ = [
    "SOLVERS", "CountSketch", "KoopmanFit", "KoopmanInputError", "NonFiniteSnapshotError",
    "RankTooLargeError", "StreamingKoopman", "TooFewStepsError", "ZeroRankError",
    "fit_koopman", "koopman_eigenvalues",
]
