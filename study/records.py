"""The long-form record schema shared by the sweeps (writers) and the analysis (readers).

Pure Python, no torch: ``analysis`` may import this module. Parquet has no complex type, so an
eigenvalue is stored as ``eig_real`` and ``eig_imag``, one row per eigenvalue, keyed by trial
and window (STYLE.md, habit 6).

``spectra.parquet``, one row per eigenvalue:

==============  =======  ============================================================
column          type     meaning
==============  =======  ============================================================
trial_id        str      unique id of the trial (one grid point and seed)
condition       str      readable label of the setup without the seed, e.g. ``width=40``
seed            int      the trial's seed
window_index    int      0, 1, ... over the trial's Koopman windows
window_start    int      first training step of the window (inclusive)
window_end      int      last training step of the window (exclusive)
eig_index       int      position of the eigenvalue in the window's spectrum
eig_real        float    Re(lambda)
eig_imag        float    Im(lambda)
modulus         float    abs(lambda)
residual        float    relative one-step reconstruction residual of the window's fit
estimate        str      ``recorded`` (the trial's spectrum) or the name of a variant
                         estimate of the same trajectories (:data:`RESOLUTION_VARIANTS`)
==============  =======  ============================================================

Variant estimates refit the very trajectories of a window after a change that cannot change
the dynamics (a smooth invertible change of coordinates, a nearby number of delays or rank);
how far they move from the recorded spectrum is the estimator's resolution. Records written
before this column existed hold recorded estimates only.

``trials.parquet``, one row per trial: ``trial_id``, ``condition``, ``seed``, ``status``
(one of :data:`TRIAL_STATUSES`), ``diverged_step`` (nullable), ``message``, every flat config
value under its own key, final losses and accuracies, ``n_steps_completed``, ``wall_time_s``,
``package_version``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from study import __version__

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"
STATUS_FAILED = "failed"
TRIAL_STATUSES = (STATUS_OK, STATUS_DIVERGED, STATUS_FAILED)

# A sweep's output folder: per-trial part files under RECORDS_FOLDER, written as trials finish
# (the sweeps layer), and the two consolidated tables beside it; the analysis reads either.
SPECTRA_FILE = "spectra.parquet"
TRIALS_FILE = "trials.parquet"
RECORDS_FOLDER = "records"
SPECTRA_PART_SUFFIX = ".spectra.parquet"
TRIAL_PART_SUFFIX = ".trial.parquet"

ESTIMATE_RECORDED = "recorded"
# Refits of one window's trajectories that cannot change the dynamics (study.resolution).
RESOLUTION_VARIANTS = ("coordinates", "delays-1", "delays+1", "rank-1", "rank+1")

SPECTRUM_KEY_COLUMNS = ("trial_id", "condition", "seed", "window_index", "window_start", "window_end")
SPECTRUM_COLUMNS = SPECTRUM_KEY_COLUMNS + (
    "eig_index",
    "eig_real",
    "eig_imag",
    "modulus",
    "residual",
    "estimate",
)
TRIAL_REQUIRED_COLUMNS = (
    "trial_id",
    "condition",
    "seed",
    "status",
    "diverged_step",
    "message",
    "n_steps_completed",
    "wall_time_s",
    "package_version",
)


def spectrum_rows(
    *,
    trial_id: str,
    condition: str,
    seed: int,
    window_index: int,
    window_start: int,
    window_end: int,
    eigenvalues: Sequence[complex] | np.ndarray,
    residual: float,
    estimate: str = ESTIMATE_RECORDED,
) -> list[dict]:
    """Long-form rows (one per eigenvalue) of one window's spectrum, in the schema above."""
    eigenvalues = np.asarray(eigenvalues, dtype=complex).ravel()
    return [
        {
            "trial_id": trial_id,
            "condition": condition,
            "seed": int(seed),
            "window_index": int(window_index),
            "window_start": int(window_start),
            "window_end": int(window_end),
            "eig_index": index,
            "eig_real": float(value.real),
            "eig_imag": float(value.imag),
            "modulus": float(abs(value)),
            "residual": float(residual),
            "estimate": estimate,
        }
        for index, value in enumerate(eigenvalues)
    ]


def missing_columns(columns: Iterable[str], required: Sequence[str]) -> list[str]:
    """The required columns absent from ``columns``, in schema order."""
    present = set(columns)
    return [name for name in required if name not in present]


PACKAGE_VERSION = __version__
