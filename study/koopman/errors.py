"""The errors of the Koopman core: data that cannot give a trustworthy spectrum.

A leaf module (no imports) so that every solver and the streaming estimator raise the same
classes. All are ``ValueError`` subclasses, and each message names what and where.
"""


class KoopmanInputError(ValueError):
    """Data that cannot give a trustworthy spectrum."""


class NonFiniteSnapshotError(KoopmanInputError):
    """A NaN or Inf in the snapshots (for example a diverged training run)."""


class TooFewStepsError(KoopmanInputError):
    """A replica shorter than ``delays + 2`` steps forms no snapshot pair."""


class ZeroRankError(KoopmanInputError):
    """All snapshots are zero: the snapshot matrix has rank 0."""


class RankTooLargeError(KoopmanInputError):
    """The requested rank exceeds the numerical rank of the snapshot matrix."""
