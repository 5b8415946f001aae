"""Units of the analysis: one spectrum per (condition, seed), and their distance matrices.

A *unit* is one seed of one condition. Its spectrum is the recorded estimate of every window
the trial closed; the trial may also have recorded *variant* estimates of the same
trajectories (a change of coordinates, nearby delays and ranks, column ``estimate``), which
measure the estimator's resolution (:mod:`analysis.resolution`) and are never units.

When the spectra carry several ``window_start`` values, the distance between two units is
the mean, over the windows both have, of the distance between their spectra at the same
window: dynamics are compared at equal training time. :func:`mean_pairwise_distances` is
that accumulation, written once for the unit matrix and for the window x window heat map.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.distances import DEFAULT_METRIC, pairwise_distance_matrix
from study.records import ESTIMATE_RECORDED

REQUIRED_COLUMNS = ("condition", "seed", "eig_real", "eig_imag")
UNIT_KEY = ["condition", "seed"]


class WindowMismatchError(ValueError):
    """Some units share no window start, so the windowed unit distance is undefined."""


def clean_spectra(spectra: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Validate long-form spectra; drop non-"ok" trials and non-finite spectra, with notes.

    Keeps every estimate (recorded and variants); fills the optional columns
    ``window_start`` (0), ``estimate`` ("recorded") and ``source`` ("") when absent.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in spectra.columns]
    if missing:
        raise ValueError(f"spectra lack the required columns {missing}; "
                         f"present: {sorted(map(str, spectra.columns))}")
    frame = spectra.copy()
    notes: list[str] = []
    for column, default in (("window_start", 0), ("estimate", ESTIMATE_RECORDED), ("source", "")):
        if column not in frame.columns:
            frame[column] = default
    if "status" in frame.columns:
        bad = frame["status"] != "ok"
        for (condition, seed, status), _ in frame[bad].groupby(["condition", "seed", "status"]):
            notes.append(f"excluded condition {condition!r} seed {seed}: trial status {status!r}")
        frame = frame[~bad]
    frame = _drop_non_finite(frame, notes)
    frame = _drop_duplicate_trials(frame, notes)
    if not (frame["estimate"] == ESTIMATE_RECORDED).any():
        raise ValueError("no valid spectra left to analyse (all rows were excluded or none given)")
    return frame.reset_index(drop=True), notes


def recorded_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The recorded estimates (the units' spectra), without the resolution variants."""
    if "estimate" not in frame.columns:
        return frame
    return frame[frame["estimate"] == ESTIMATE_RECORDED]


def _drop_non_finite(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    window_key = ["condition", "seed", "window_start", "estimate"]
    finite = np.isfinite(frame["eig_real"]) & np.isfinite(frame["eig_imag"])
    if finite.all():
        return frame
    bad_windows = frame.loc[~finite, window_key].drop_duplicates()
    for row in bad_windows.itertuples(index=False):
        what = "" if row.estimate == ESTIMATE_RECORDED else f" ({row.estimate} estimate)"
        notes.append(f"excluded condition {row.condition!r} seed {row.seed} window "
                     f"{row.window_start}{what}: non-finite eigenvalues")
    frame = frame.merge(bad_windows, how="left", on=window_key, indicator=True)
    return frame[frame.pop("_merge") == "left_only"]


def _drop_duplicate_trials(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Keep one trial per (condition, seed): two would merge into one doubled spectrum."""
    if "trial_id" not in frame.columns:
        return frame
    trials_per_unit = frame.groupby(UNIT_KEY)["trial_id"].unique()
    duplicated = trials_per_unit[trials_per_unit.map(len) > 1]
    for (condition, seed), trial_ids in duplicated.items():
        kept, *dropped = sorted(trial_ids)
        notes.append(f"condition {condition!r} seed {seed} has several trials {sorted(trial_ids)}; "
                     f"kept {kept}, left out {dropped}")
        frame = frame[~frame["trial_id"].isin(dropped)]
    return frame


def mean_pairwise_distances(frame: pd.DataFrame, item_key: list[str], average_over: str, *,
                            metric: str = DEFAULT_METRIC, squared: bool = False):
    """Distances between the items of ``frame`` averaged over the groups of ``average_over``.

    Items are the distinct values of the ``item_key`` columns; within each group of
    ``average_over`` (a window, a seed) every two items present are compared, and the mean is
    taken over the groups both items appear in. ``squared``: average squared distances (the
    squared Euclidean distance of the concatenated groups, which the verdicts decompose).
    Returns ``(items, mean, count)``: the item table in sorted order, the ``(n_items,
    n_items)`` mean (NaN where two items share no group) and the number of groups averaged.
    """
    items = frame[item_key].drop_duplicates().sort_values(item_key).reset_index(drop=True)
    index_of = {tuple(row): i for i, row in enumerate(items.itertuples(index=False))}
    total = np.zeros((len(items), len(items)))
    count = np.zeros_like(total)
    for _, group in frame.groupby(average_over, sort=True):
        spectra_of = list(group.groupby(item_key, sort=True))
        members = np.array([index_of[name if isinstance(name, tuple) else (name,)]
                            for name, _ in spectra_of])
        spectra = [g["eig_real"].to_numpy() + 1j * g["eig_imag"].to_numpy() for _, g in spectra_of]
        distances = pairwise_distance_matrix(spectra, metric=metric)
        if squared:
            np.square(distances, out=distances)
        if members.size == len(items):  # every item (sorted, so members is 0, 1, ..., n - 1)
            # Whole-matrix arithmetic: for 10,000 units, indexing with np.ix_ gathers and
            # scatters 100 million entries twice, and would copy the 800 MB matrix each time.
            total += distances
            count += 1
        else:
            total[np.ix_(members, members)] += distances
            count[np.ix_(members, members)] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return items, mean, count


def unit_distance_matrix(spectra: pd.DataFrame, *, metric: str = DEFAULT_METRIC,
                         squared: bool = False):
    """Units (one per condition and seed) and their ``(n_units, n_units)`` distance matrix.

    Returns ``(units, distances, notes)``; ``units`` has ``condition``, ``seed`` and
    ``source``. With several ``window_start`` values the distance is the mean over the
    windows both units have, at equal window start (squared distances averaged when
    ``squared``).
    """
    frame, notes = clean_spectra(spectra)
    units, distances = clean_unit_distance_matrix(frame, metric=metric, squared=squared)
    return units, distances, notes


def clean_unit_distance_matrix(frame: pd.DataFrame, *, metric: str = DEFAULT_METRIC,
                               squared: bool = False):
    """:func:`unit_distance_matrix` of spectra already cleaned by :func:`clean_spectra`.

    Returns ``(units, distances)``; callers that need several matrices clean once.
    """
    frame = recorded_only(frame)
    items, distances, _ = mean_pairwise_distances(frame, UNIT_KEY, "window_start", metric=metric,
                                                  squared=squared)
    if np.isnan(distances).any():
        missing = int(np.isnan(distances).sum() // 2)
        raise WindowMismatchError(
            f"{missing} pairs of (condition, seed) spectra share no window_start, so their "
            "distance is undefined; analyse the windows separately "
            "(analysis.units.windows_as_conditions) or one window each (last_window_only)")
    source = frame.groupby(UNIT_KEY)["source"].first()
    units = items.assign(source=[source.loc[tuple(key)] for key in items.itertuples(index=False)])
    return units, distances


def windows_as_conditions(spectra: pd.DataFrame) -> pd.DataFrame:
    """Relabel each (condition, window_start) as its own condition, ``"<condition> @ <start>"``.

    For windowed runs (CNN early training): the classes of the result say which training
    windows share their dynamics; seeds stay the replicates (and stay paired across windows).
    """
    frame = spectra.copy()
    frame["condition"] = [f"{c} @ {w}" for c, w in zip(frame["condition"], frame["window_start"])]
    frame["window_start"] = 0
    return frame


def last_window_only(spectra: pd.DataFrame) -> pd.DataFrame:
    """Each (condition, seed)'s spectrum at its latest ``window_start`` only."""
    if "window_start" not in spectra.columns:
        return spectra
    latest = spectra.groupby(UNIT_KEY)["window_start"].transform("max")
    return spectra[spectra["window_start"] == latest].assign(window_start=0)
