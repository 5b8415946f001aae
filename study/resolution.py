"""Variant estimates of one window's spectrum that cannot change the dynamics.

Topologically conjugate systems have the same Koopman eigenvalues, and so do the same
trajectories seen in other coordinates or embedded with another number of delays; a DMD
estimate, though, is an approximation from a finite subspace, and moves with all of these. Refitting
the very trajectories of a window after such a change measures how far the estimate moves
for reasons that are not the dynamics: the estimator's resolution. The analysis compares
these variant spectra with the recorded one; a difference between two setups below it is
never called distinct.

Variants (names as in :data:`study.records.RESOLUTION_VARIANTS`):

* ``coordinates``: each feature through the smooth, strictly increasing map
  ``y = x + s tanh((x - m) / s) / 2`` (m, s: the feature's mean and standard deviation over
  the window), a nonlinearity of order one over the data's own range, invertible because
  dy/dx = 1 + sech^2 / 2 lies in (1, 1.5] (a bounded map: an unbounded one such as a cubic
  blows up the early, far-from-the-mean snapshots of a decaying trajectory);
* ``delays-1`` / ``delays+1``: one Hankel delay fewer / more;
* ``rank-1`` / ``rank+1``: one singular triplet fewer / more (from the numerical rank when
  the estimate keeps all).

A variant the data cannot support (too few steps, a rank above the data's) is left out.
"""

from __future__ import annotations

import numpy as np

from study.koopman import KoopmanInputError, fit_koopman

COORDINATE_STRENGTH = 0.5  # dy/dx between 1 and 1.5: clearly nonlinear, far from singular


def change_of_coordinates(trajectories: np.ndarray, strength: float = COORDINATE_STRENGTH) -> np.ndarray:
    """``(n_replicas, n_steps, n_features)`` through the feature-wise map of the module docstring."""
    mean = trajectories.mean(axis=(0, 1), keepdims=True)
    scale = trajectories.std(axis=(0, 1), keepdims=True)
    safe = np.where(scale > 0, scale, 1.0)  # a constant feature stays as it is
    added = strength * safe * np.tanh((trajectories - mean) / safe)
    return trajectories + np.where(scale > 0, added, 0.0)


def variant_spectra(trajectories: np.ndarray, *, delays: int, rank: int | None,
                    n_eigenvalues: int) -> dict[str, np.ndarray]:
    """The spectra of the resolution variants of one window, by variant name.

    ``trajectories``: ``(n_replicas, n_steps, n_features)``, the very snapshots the recorded
    spectrum was fitted on, with its ``delays`` and ``rank``; ``n_eigenvalues``: the size of
    the recorded spectrum (its rank when ``rank`` is None).
    """
    trajectories = np.asarray(trajectories, dtype=float)
    if trajectories.ndim == 2:
        trajectories = trajectories[None]
    settings = {"coordinates": (change_of_coordinates(trajectories), delays, rank),
                "delays+1": (trajectories, delays + 1, rank),
                "rank-1": (trajectories, delays, n_eigenvalues - 1),
                "rank+1": (trajectories, delays, n_eigenvalues + 1)}
    if delays >= 1:
        settings["delays-1"] = (trajectories, delays - 1, rank)
    spectra = {}
    for name, (data, variant_delays, variant_rank) in settings.items():
        if variant_rank is not None and variant_rank < 1:
            continue
        try:
            spectra[name] = np.asarray(fit_koopman(data, delays=variant_delays, rank=variant_rank).eigenvalues)
        except KoopmanInputError:
            continue  # this variant asks more than the window's data hold
    return spectra
