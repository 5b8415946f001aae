"""Calibrated conjugacy classes: which training setups share their Koopman spectra.

The paper judges by eye whether between-setup distances exceed seed-to-seed distances
(PAPER.md, step 6). Here the decision is automatic, with a stated error rate:

* **Unit.** One spectrum per (condition, seed). When the spectra carry several
  ``window_start`` values, the distance between two units is the mean, over the windows both
  have, of the distance between their spectra at the same window (dynamics are compared at
  equal training time). Per-window classes come from :func:`windows_as_conditions`.
* **Test, per pair of conditions A, B.** Statistic: mean between-condition distance minus mean
  within-condition (seed-to-seed, pooled over A and B) distance. Null: the seed labels are
  exchangeable between A and B. Permutation test over the labels on the distance matrix:
  exact enumeration of all C(n_A + n_B, n_A) relabelings when there are at most
  ``n_permutations + 1`` of them, otherwise ``n_permutations`` random relabelings with
  p = (1 + #{T* >= T}) / (1 + n_permutations). With the group sizes fixed the statistic is an
  increasing function of the summed between-group distance, which is what is computed.
  Effect size: the ratio mean between / mean within.
* **Multiple comparisons.** Holm's step-down correction over all tested pairs: the
  family-wise error rate (the chance that any pair of truly conjugate conditions is split) is
  at most ``alpha``. A pair is *separated* when its Holm-adjusted p-value is <= alpha.
* **Grouping rule.** "Not separated" is not transitive (A~B and B~C with A, C separated), so
  its connected components could chain separated conditions into one class. Instead,
  complete-linkage agglomeration under a constraint: start from singletons and repeatedly
  merge the two classes whose union contains no separated pair, choosing the merge with the
  smallest complete linkage (largest between/within ratio over the cross pairs); stop when
  no merge is admissible. Every pair inside a class is therefore unseparated. Conditions that
  are also unseparated from a member of another class are named in
  ``unseparated_from_other_classes`` so the ambiguity is visible, not hidden.
* **Conditions with one seed** have no seed-to-seed spread to calibrate against: they are not
  tested, get no class (``conjugacy_class`` is missing, ``calibrated`` False) and a note.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.distances import pairwise_distance_matrix
from analysis.permutation import holm_adjust, permutation_test

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("condition", "seed", "eig_real", "eig_imag")


class WindowMismatchError(ValueError):
    """Some units share no window start, so the windowed unit distance is undefined."""


@dataclass(frozen=True)
class ConjugacyAnalysis:
    """Everything the class decision rests on.

    ``units``: one row per (condition, seed) spectrum, in the order of ``distances``
    (``(n_units, n_units)``). ``classes``: one row per condition. ``pairwise``: one row per
    pair of conditions. ``notes``: what was excluded or could not be decided, and why.
    """

    units: pd.DataFrame
    distances: np.ndarray
    classes: pd.DataFrame
    pairwise: pd.DataFrame
    notes: tuple[str, ...]


def conjugacy_classes(spectra: pd.DataFrame, *, alpha: float = 0.01, n_permutations: int = 9999,
                      random_state: int = 0) -> pd.DataFrame:
    """One row per condition with its ``conjugacy_class`` and the evidence.

    ``spectra``: long form, one row per eigenvalue, columns ``condition``, ``seed``,
    ``eig_real``, ``eig_imag``, optional ``window_start``, ``trial_id`` and ``status`` (rows
    whose status is not "ok" are excluded and named). Columns of the result: ``condition``,
    ``conjugacy_class`` (1, 2, ...; missing for single-seed conditions), ``n_seeds``,
    ``mean_within_distance`` (seed-to-seed), ``calibrated``, ``max_ratio_in_class`` (largest
    between/within ratio to another member of its class), ``min_p_holm_in_class`` (how close
    the class came to being split), ``max_p_holm_to_other_classes`` (the weakest separation
    from a condition outside the class), ``unseparated_from_other_classes``, ``note``.
    ``result.attrs`` holds ``pairwise`` (see :func:`pairwise_tests`) and ``notes``.
    """
    analysis = analyse_conjugacy(spectra, alpha=alpha, n_permutations=n_permutations,
                                 random_state=random_state)
    classes = analysis.classes.copy()
    classes.attrs["pairwise"] = analysis.pairwise
    classes.attrs["notes"] = list(analysis.notes)
    return classes


def pairwise_tests(spectra: pd.DataFrame, *, alpha: float = 0.01, n_permutations: int = 9999,
                   random_state: int = 0) -> pd.DataFrame:
    """One row per pair of conditions: distances, effect ratio, p-values, decision.

    Columns: ``condition_a``, ``condition_b``, ``n_seeds_a``, ``n_seeds_b``,
    ``mean_between``, ``mean_within_a``, ``mean_within_b``, ``mean_within``,
    ``ratio`` (between / pooled within), ``statistic``, ``p_value``, ``p_holm``,
    ``separated``, ``separable`` (False when too few seeds make a separation impossible at
    ``alpha`` after the correction), ``exact``, ``n_relabelings``, ``min_attainable_p``, ``note``.
    """
    return analyse_conjugacy(spectra, alpha=alpha, n_permutations=n_permutations,
                             random_state=random_state).pairwise


def analyse_conjugacy(spectra: pd.DataFrame, *, alpha: float = 0.01, n_permutations: int = 9999,
                      random_state: int = 0, distances: np.ndarray | None = None,
                      units: pd.DataFrame | None = None) -> ConjugacyAnalysis:
    """The unit distance matrix, the pairwise tests and the classes, in one pass.

    ``distances``/``units`` may be passed in (from :func:`unit_distance_matrix`) to reuse them.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got alpha={alpha!r}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got n_permutations={n_permutations!r}")
    notes: list[str] = []
    if distances is None or units is None:
        units, distances, notes = unit_distance_matrix(spectra)
    rng = np.random.default_rng(random_state)
    seeds_per_condition = units.groupby("condition", sort=True).size()
    calibrated = [c for c, n in seeds_per_condition.items() if n >= 2]
    for condition, n in seeds_per_condition.items():
        if n < 2:
            notes.append(f"condition {condition!r} has a single seed: no seed-to-seed spread to "
                         "calibrate against, so it is not tested and gets no class")
    pairwise = _pairwise_table(units, distances, seeds_per_condition, alpha=alpha,
                               n_permutations=n_permutations, rng=rng)
    classes = _class_table(units, distances, pairwise, seeds_per_condition, calibrated)
    n_powerless = int((pairwise["p_value"].notna() & ~pairwise["separable"]).sum())
    if n_powerless:
        notes.append(f"{n_powerless} of {int(pairwise['p_value'].notna().sum())} tested pairs "
                     f"cannot be separated at alpha={alpha} with these seeds (too few seed "
                     "relabelings for the Holm correction): more seeds per condition are needed "
                     "before their sharing a class means anything")
    return ConjugacyAnalysis(units, distances, classes, pairwise, tuple(notes))


def unit_distance_matrix(spectra: pd.DataFrame):
    """Units (one per condition and seed) and their ``(n_units, n_units)`` distance matrix.

    Returns ``(units, distances, notes)``. With several ``window_start`` values the distance
    is the mean over the windows both units have, at equal window start.
    """
    frame, notes = clean_spectra(spectra)
    key = ["condition", "seed"]
    units = frame[key].drop_duplicates().sort_values(key).reset_index(drop=True)
    unit_index = {tuple(row): i for i, row in enumerate(units.itertuples(index=False))}
    n_units = len(units)
    total, count = np.zeros((n_units, n_units)), np.zeros((n_units, n_units))
    for _, window in frame.groupby("window_start", sort=True):
        groups = list(window.groupby(key, sort=True))
        members = np.array([unit_index[name] for name, _ in groups])
        spectra_list = [g["eig_real"].to_numpy() + 1j * g["eig_imag"].to_numpy() for _, g in groups]
        total[np.ix_(members, members)] += pairwise_distance_matrix(spectra_list)
        count[np.ix_(members, members)] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        distances = total / count
    if np.isnan(distances).any():
        missing = int(np.isnan(distances).sum() // 2)
        raise WindowMismatchError(
            f"{missing} pairs of (condition, seed) spectra share no window_start, so their "
            "distance is undefined; analyse the windows separately "
            "(analysis.conjugacy.windows_as_conditions) or one window each (last_window_only)")
    return units, distances, notes


def clean_spectra(spectra: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Validate the long-form spectra; drop non-"ok" trials and non-finite spectra, with notes."""
    missing = [c for c in REQUIRED_COLUMNS if c not in spectra.columns]
    if missing:
        raise ValueError(f"spectra lack the required columns {missing}; "
                         f"present: {sorted(map(str, spectra.columns))}")
    frame = spectra.copy()
    notes: list[str] = []
    if "window_start" not in frame.columns:
        frame["window_start"] = 0
    if "status" in frame.columns:
        bad = frame["status"] != "ok"
        for (condition, seed, status), _ in frame[bad].groupby(["condition", "seed", "status"]):
            notes.append(f"excluded condition {condition!r} seed {seed}: trial status {status!r}")
        frame = frame[~bad]
    window_key = ["condition", "seed", "window_start"]
    finite = np.isfinite(frame["eig_real"]) & np.isfinite(frame["eig_imag"])
    if not finite.all():
        bad_windows = frame.loc[~finite, window_key].drop_duplicates()
        for row in bad_windows.itertuples(index=False):
            notes.append(f"excluded condition {row.condition!r} seed {row.seed} window "
                         f"{row.window_start}: non-finite eigenvalues")
        frame = frame.merge(bad_windows, how="left", on=window_key, indicator=True)
        frame = frame[frame.pop("_merge") == "left_only"]
    frame = _drop_duplicate_trials(frame, notes)
    if frame.empty:
        raise ValueError("no valid spectra left to analyse (all rows were excluded or none given)")
    return frame.reset_index(drop=True), notes


def _drop_duplicate_trials(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Keep one trial per (condition, seed): two would merge into one doubled spectrum."""
    if "trial_id" not in frame.columns:
        return frame
    trials_per_unit = frame.groupby(["condition", "seed"])["trial_id"].unique()
    duplicated = trials_per_unit[trials_per_unit.map(len) > 1]
    for (condition, seed), trial_ids in duplicated.items():
        kept, *dropped = sorted(trial_ids)
        notes.append(f"condition {condition!r} seed {seed} has several trials {sorted(trial_ids)}; "
                     f"kept {kept}, left out {dropped}")
        frame = frame[~frame["trial_id"].isin(dropped)]
    return frame


def windows_as_conditions(spectra: pd.DataFrame) -> pd.DataFrame:
    """Relabel each (condition, window_start) as its own condition, ``"<condition> @ <start>"``.

    For windowed runs (CNN early training): the classes of the result say which training
    windows share their dynamics; seeds stay the replicates.
    """
    frame = spectra.copy()
    frame["condition"] = [f"{c} @ {w}" for c, w in zip(frame["condition"], frame["window_start"])]
    frame["window_start"] = 0
    return frame


def last_window_only(spectra: pd.DataFrame) -> pd.DataFrame:
    """Each (condition, seed)'s spectrum at its latest ``window_start`` only."""
    if "window_start" not in spectra.columns:
        return spectra
    latest = spectra.groupby(["condition", "seed"])["window_start"].transform("max")
    return spectra[spectra["window_start"] == latest].assign(window_start=0)


def _within(distances, members):
    block = distances[np.ix_(members, members)]
    return block[np.triu_indices(members.size, k=1)]


def _pairwise_table(units, distances, seeds_per_condition, *, alpha, n_permutations, rng):
    """Run the permutation test for every pair of calibrated conditions; Holm over the tested."""
    conditions = list(seeds_per_condition.index)
    rows = []
    for first, second in itertools.combinations(conditions, 2):
        members_a = np.flatnonzero(units["condition"].to_numpy() == first)
        members_b = np.flatnonzero(units["condition"].to_numpy() == second)
        between = distances[np.ix_(members_a, members_b)]
        within_a, within_b = _within(distances, members_a), _within(distances, members_b)
        within = np.concatenate([within_a, within_b])
        row = {"condition_a": first, "condition_b": second, "n_seeds_a": members_a.size,
               "n_seeds_b": members_b.size, "mean_between": between.mean(),
               "mean_within_a": within_a.mean() if within_a.size else np.nan,
               "mean_within_b": within_b.mean() if within_b.size else np.nan,
               "mean_within": within.mean() if within.size else np.nan,
               "statistic": np.nan, "p_value": np.nan, "exact": False, "n_relabelings": 0,
               "min_attainable_p": np.nan, "note": ""}
        row["ratio"] = _ratio(row["mean_between"], row["mean_within"])
        if members_a.size < 2 or members_b.size < 2:
            row["note"] = "not tested: a condition with a single seed cannot be calibrated"
        else:
            order = np.concatenate([members_a, members_b])
            result = permutation_test(distances[np.ix_(order, order)], members_a.size,
                                      n_permutations=n_permutations, rng=rng)
            row.update(statistic=result.statistic, p_value=result.p_value, exact=result.exact,
                       n_relabelings=result.n_relabelings, min_attainable_p=result.min_attainable_p)
        rows.append(row)
    return _finish_pairwise(pd.DataFrame(rows, columns=_PAIRWISE_COLUMNS), alpha=alpha)


_PAIRWISE_COLUMNS = ["condition_a", "condition_b", "n_seeds_a", "n_seeds_b", "mean_between",
                     "mean_within_a", "mean_within_b", "mean_within", "ratio", "statistic",
                     "p_value", "exact", "n_relabelings", "min_attainable_p", "note"]


def _finish_pairwise(table, *, alpha):
    """Add Holm-adjusted p-values, decisions, and notes on pairs that can never be separated."""
    tested = table["p_value"].notna().to_numpy()
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = holm_adjust(table.loc[tested, "p_value"].to_numpy())
    table["separated"] = (table["p_holm"] <= alpha) & tested
    n_tested = int(tested.sum())
    powerless = tested & (table["min_attainable_p"].to_numpy() * n_tested > alpha)
    table["separable"] = tested & ~powerless
    table.loc[powerless, "note"] = (f"too few seeds: the smallest attainable p-value times the "
                                    f"{n_tested} tests exceeds alpha={alpha}, so this pair cannot "
                                    "be separated")
    return table


def _ratio(between, within):
    if within > 0:
        return between / within
    return 1.0 if between == 0 else np.inf


def _class_table(units, distances, pairwise, seeds_per_condition, calibrated):
    """One row per condition: its class under the constrained complete-linkage rule."""
    by_pair = {frozenset((r.condition_a, r.condition_b)): r for r in pairwise.itertuples()}
    separated = {pair for pair, r in by_pair.items() if r.separated}
    labels = group_conditions(calibrated, separated, {pair: r.ratio for pair, r in by_pair.items()})
    rows = []
    for condition, n_seeds in seeds_per_condition.items():
        within = _within(distances, np.flatnonzero(units["condition"].to_numpy() == condition))
        label = labels.get(condition)
        pairs_to = {o: by_pair[frozenset((condition, o))] for o in calibrated if o != condition}
        mates = [o for o in pairs_to if label is not None and labels[o] == label]
        outside = [o for o in pairs_to if label is not None and labels[o] != label]
        powerless = [o for o in mates if not pairs_to[o].separable]
        rows.append({
            "condition": condition, "conjugacy_class": label, "n_seeds": int(n_seeds),
            "mean_within_distance": within.mean() if within.size else np.nan,
            "calibrated": label is not None,
            # Evidence: how close the class came to being split, and how clearly it is apart.
            "max_ratio_in_class": max((pairs_to[o].ratio for o in mates), default=np.nan),
            "min_p_holm_in_class": min((pairs_to[o].p_holm for o in mates), default=np.nan),
            "max_p_holm_to_other_classes": max((pairs_to[o].p_holm for o in outside), default=np.nan),
            "unseparated_from_other_classes": ", ".join(
                sorted(o for o in outside if not pairs_to[o].separated)),
            "note": ("single seed: not calibrated, no class" if label is None else
                     f"too few seeds to separate it from {', '.join(powerless)}" if powerless else ""),
        })
    table = pd.DataFrame(rows)
    table["conjugacy_class"] = table["conjugacy_class"].astype("Int64")
    return table


def group_conditions(conditions, separated: set, linkage: dict) -> dict:
    """Classes 1, 2, ... such that no two members of a class are separated.

    Constrained complete-linkage agglomeration: merge, while any merge is admissible, the two
    classes whose union holds no separated pair and whose largest cross-pair ``linkage`` value
    (the between/within ratio) is smallest. Ties go to the alphabetically first classes.
    """
    clusters = [[c] for c in sorted(conditions)]
    while True:
        best = None
        for i, j in itertools.combinations(range(len(clusters)), 2):
            cross = [frozenset((a, b)) for a in clusters[i] for b in clusters[j]]
            if any(pair in separated for pair in cross):
                continue
            score = max(linkage.get(pair, np.inf) for pair in cross)
            if best is None or score < best[0]:
                best = (score, i, j)
        if best is None:
            break
        _, i, j = best
        clusters[i] = sorted(clusters[i] + clusters[j])
        del clusters[j]
    clusters.sort(key=lambda members: members[0])
    return {c: number for number, members in enumerate(clusters, start=1) for c in members}
