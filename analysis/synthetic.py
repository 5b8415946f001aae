"""Synthetic records with a known answer, for the CLI's smoke mode and the tests.

Spectra are drawn around fixed centres with seed noise, written in the on-disk schema of
:mod:`study.records`, so the whole analysis path (files -> classes -> report) runs in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.records import STATUS_DIVERGED, STATUS_OK, spectrum_rows, trial_row


def centre_spectrum(shift: float, *, n_eigenvalues: int = 10) -> np.ndarray:
    """A spectrum near the unit circle: real modes in [0.6, 1] and one conjugate pair, shifted."""
    real = np.linspace(0.6, 1.0, n_eigenvalues - 2) + shift
    pair = np.array([0.9 + 0.2j, 0.9 - 0.2j]) + shift
    return np.concatenate([real.astype(complex), pair])


def synthetic_spectra(shifts: dict[str, float], *, n_seeds: int = 6, noise: float = 0.01,
                      windows: tuple[int, ...] = (0,), window_size: int = 100,
                      random_state: int = 0) -> pd.DataFrame:
    """Long-form spectra: condition -> centre shift; each seed adds Gaussian noise ``noise``.

    Conjugate pairs stay conjugate (the noise is mirrored), as DMD of real data gives.
    With several ``windows`` each later window's centre moves by a further 0.05 per window.
    """
    rng = np.random.default_rng(random_state)
    rows = []
    for condition, shift in shifts.items():
        for seed in range(n_seeds):
            for window_index, start in enumerate(windows):
                centre = centre_spectrum(shift + 0.05 * window_index)
                eigenvalues = centre + rng.normal(scale=noise, size=centre.size)
                eigenvalues[-2] = eigenvalues[-2].real + 1j * (0.2 + rng.normal(scale=noise))
                eigenvalues[-1] = np.conj(eigenvalues[-2])  # a conjugate pair stays one
                rows += spectrum_rows(trial_id=f"{condition}-seed{seed}", condition=condition,
                                      seed=seed, window_index=window_index, window_start=start,
                                      window_end=start + window_size, eigenvalues=eigenvalues,
                                      residual=0.01)
    return pd.DataFrame(rows)


def trials_table(spectra: pd.DataFrame, *, diverged: tuple[str, ...] = ()) -> pd.DataFrame:
    """A trials table for ``spectra`` (status "ok"), plus trials named in ``diverged``."""
    rows = []
    for (trial_id, condition, seed), _ in spectra.groupby(["trial_id", "condition", "seed"]):
        rows.append(_trial_row(trial_id, condition, seed, STATUS_OK))
    for trial_id in diverged:
        condition, seed = trial_id.rsplit("-seed", 1)
        rows.append(_trial_row(trial_id, condition, int(seed), STATUS_DIVERGED,
                               diverged_step=17, message="loss became NaN at step 17"))
    return pd.DataFrame(rows)


SYNTHETIC_CONFIG = {"trial_type": "synthetic", "learning_rate": 0.1}  # stands for a flat config


def _trial_row(trial_id, condition, seed, status, *, diverged_step=None, message=""):
    return trial_row(trial_id=trial_id, condition=condition, seed=seed, status=status,
                     config=SYNTHETIC_CONFIG, n_steps_completed=100, wall_time_s=0.0,
                     diverged_step=diverged_step, message=message)


def write_synthetic_records(directory, *, windows: tuple[int, ...] = (0,), n_seeds: int = 6,
                            random_state: int = 0) -> Path:
    """Write a small sweep with a known answer into ``directory``.

    Conditions ``a`` and ``b`` share a centre (one class), ``c`` is far away (its own class),
    ``single`` has one seed (no class), and trial ``a-seed99`` diverged (its spectrum, which
    holds NaN, must be left out).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spectra = synthetic_spectra({"a": 0.0, "b": 0.0, "c": -0.3}, n_seeds=n_seeds,
                                windows=windows, random_state=random_state)
    single = synthetic_spectra({"single": 0.0}, n_seeds=1, windows=windows,
                               random_state=random_state + 1)
    diverged = synthetic_spectra({"a": 0.0}, n_seeds=1, windows=windows)
    diverged["trial_id"], diverged["seed"], diverged["eig_real"] = "a-seed99", 99, np.nan
    trials = trials_table(pd.concat([spectra, single]), diverged=("a-seed99",))
    pd.concat([spectra, single, diverged], ignore_index=True).to_parquet(directory / "spectra.parquet")
    trials.to_parquet(directory / "trials.parquet")
    return directory
