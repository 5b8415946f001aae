"""Conjugacy classes: which training setups share their Koopman spectra, with verdicts.

* **Unit.** One spectrum per (condition, seed) (:mod:`analysis.units`; windowed runs average
  over equal window starts).
* **Verdict per pair of conditions** (:mod:`analysis.verdicts`): the distance between the two
  conditions' spectral centres in seed-to-seed spreads, with a bootstrap interval over seeds
  (paired where the conditions share seeds; :mod:`analysis.effects`), against a margin that
  is never below the estimator's measured resolution (:mod:`analysis.resolution`):
  equivalent, distinct or undetermined.
* **Evidence.** A permutation test of identical distributions (:mod:`analysis.permutation`,
  relabelling within seeds where paired) with Holm's correction over pairs: the p-values say
  whether the seeds of two setups could be told apart at all, which a spread difference alone
  can cause, so they never decide a verdict.
* **Classes.** Constrained complete linkage: start from singletons and repeatedly merge the two
  classes every cross pair of which is *equivalent*, choosing the merge whose largest interval
  bound is smallest. Every two members of a class are judged equivalent, so no class holds two
  conditions judged distinct (or undetermined); each condition names the conditions it is
  undetermined with, so an open question stays visible.
* **Conditions with one seed** have no seed-to-seed spread: their pairs are undetermined, they
  get no class, and a note says why. Pairs with fewer than
  :data:`analysis.verdicts.MIN_SEEDS_FOR_VERDICT` seeds on either side are undetermined too,
  with the reason in their note.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis.effects import pair_effects, seed_groups
from analysis.options import AnalysisOptions
from analysis.permutation import holm_adjust, permutation_test
from analysis.resolution import condition_resolution, pair_resolution, variant_distances
from analysis.units import clean_spectra, clean_unit_distance_matrix
from analysis.verdicts import (EQUIVALENT, MIN_SEEDS_FOR_VERDICT, UNDETERMINED, applied_margin,
                               decide, seeds_needed)

logger = logging.getLogger(__name__)

VERDICT_METRIC = "wasserstein-2"  # squared distances split into centre and spread (effects)
MAX_PERMUTATION_PAIRS = 1000  # beyond, the evidence costs minutes and is left out (noted)
PAIRWISE_COLUMNS = [
    "condition_a", "condition_b", "verdict", "ratio", "ratio_low", "ratio_high", "margin",
    "margin_source", "effect", "effect_low", "effect_high", "margin_distance", "spread",
    "spread_a", "spread_b", "resolution", "paired", "n_seeds_a", "n_seeds_b", "seeds_needed",
    "mean_between", "mean_within_a", "mean_within_b", "p_same_distribution",
    "p_same_distribution_holm", "note"]


@dataclass(frozen=True)
class ConjugacyAnalysis:
    """Everything the verdicts rest on.

    ``units``: one row per (condition, seed), in the order of ``distances`` (the reported
    metric) and ``squared_distances`` (squared 2-Wasserstein, the verdicts' metric), both
    ``(n_units, n_units)``. ``pairwise``: one row per pair of conditions. ``classes``: one
    row per condition. ``resolution``: one row per condition with measured resolution.
    """

    units: pd.DataFrame
    distances: np.ndarray
    squared_distances: np.ndarray
    pairwise: pd.DataFrame
    classes: pd.DataFrame
    resolution: pd.DataFrame
    options: AnalysisOptions
    notes: tuple[str, ...]


def _options(options: AnalysisOptions | None, overrides: dict) -> AnalysisOptions:
    return replace(options or AnalysisOptions(), **overrides)


def conjugacy_classes(spectra: pd.DataFrame, options: AnalysisOptions | None = None,
                      **overrides) -> pd.DataFrame:
    """One row per condition with its ``conjugacy_class`` and the evidence.

    ``spectra``: long form, one row per eigenvalue, columns ``condition``, ``seed``,
    ``eig_real``, ``eig_imag``; optional ``window_start``, ``trial_id``, ``status`` (rows
    whose status is not "ok" are excluded and named), ``estimate`` (resolution variants) and
    ``source`` (seeds pair only within one source). Options: :class:`AnalysisOptions`, or
    its fields as keywords. Columns: ``condition``, ``conjugacy_class`` (1, 2, ...; missing
    for single-seed conditions), ``n_seeds``, ``spread``, ``resolution``,
    ``mean_within_distance``, ``equivalent_to``, ``undetermined_with``, ``distinct_from``,
    ``note``. ``result.attrs`` holds ``pairwise`` (:func:`pairwise_tests`) and ``notes``.
    """
    analysis = analyse_conjugacy(spectra, _options(options, overrides))
    classes = analysis.classes.copy()
    classes.attrs["pairwise"] = analysis.pairwise
    classes.attrs["notes"] = list(analysis.notes)
    return classes


def pairwise_tests(spectra: pd.DataFrame, options: AnalysisOptions | None = None,
                   **overrides) -> pd.DataFrame:
    """One row per pair of conditions: ``verdict`` ("equivalent", "distinct", "undetermined"),
    the effect ratio with its interval and margin, the effect in eigenvalue units, spreads,
    resolution, seeds needed, the reported-metric distances and the permutation evidence.
    Columns: :data:`PAIRWISE_COLUMNS`."""
    return analyse_conjugacy(spectra, _options(options, overrides)).pairwise


def analyse_conjugacy(spectra: pd.DataFrame, options: AnalysisOptions | None = None,
                      **overrides) -> ConjugacyAnalysis:
    """Units, distance matrices, resolution, verdicts, evidence and classes in one pass."""
    options = _options(options, overrides)
    frame, notes = clean_spectra(spectra)
    units, squared = clean_unit_distance_matrix(frame, metric=VERDICT_METRIC, squared=True)
    if options.metric == VERDICT_METRIC and frame["window_start"].nunique() == 1:
        distances = np.sqrt(squared)  # one window: the same matrix, not computed twice
    else:
        _, distances = clean_unit_distance_matrix(frame, metric=options.metric)
    resolution = condition_resolution(variant_distances(frame))
    seeds_per_condition = units.groupby("condition", sort=True).size()
    for condition, n in seeds_per_condition.items():
        if n < 2:
            notes.append(f"condition {condition!r} has a single seed: no seed-to-seed spread to "
                         "judge against, so its pairs are undetermined and it gets no class")
    unmeasured = sorted(set(seeds_per_condition.index) - set(resolution["condition"]))
    if unmeasured:
        notes.append(f"no resolution variants recorded for {len(unmeasured)} conditions "
                     f"({', '.join(map(str, unmeasured[:5]))}{', ...' if len(unmeasured) > 5 else ''}): "
                     "their margins rest on the seed-to-seed spread alone")
    pairwise = _pairwise_table(units, distances, squared, resolution, seeds_per_condition,
                               options, notes)
    classes = _class_table(units, distances, pairwise, resolution, seeds_per_condition)
    return ConjugacyAnalysis(units, distances, squared, pairwise, classes, resolution, options,
                             tuple(notes))


def _pairwise_table(units, distances, squared, resolution, seeds_per_condition, options, notes):
    effects = pair_effects(units, squared, confidence=options.confidence,
                           n_resamples=options.n_resamples, random_state=options.random_state,
                           interval_method=options.interval_method)
    by_pair = {frozenset((r.condition_a, r.condition_b)): r for r in effects.itertuples(index=False)}
    members = _members(units)
    resolution_of = dict(zip(resolution["condition"], resolution["resolution"]))
    rows = []
    for first, second in itertools.combinations(list(seeds_per_condition.index), 2):
        members_a, members_b = members[first], members[second]
        row = {"condition_a": first, "condition_b": second, "n_seeds_a": members_a.size,
               "n_seeds_b": members_b.size,
               "resolution": pair_resolution(resolution_of, first, second),
               "mean_between": distances[np.ix_(members_a, members_b)].mean(),
               "mean_within_a": _mean_within(distances, members_a),
               "mean_within_b": _mean_within(distances, members_b), "note": ""}
        effect = by_pair.get(frozenset((first, second)))
        if effect is None:
            row.update(verdict=UNDETERMINED, paired=False,
                       note="a condition with a single seed has no seed-to-seed spread")
        else:
            row.update(_verdict_fields(effect, first, row["resolution"], options))
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=PAIRWISE_COLUMNS)
    return _add_permutation_evidence(table, units, distances, options, notes)


def _verdict_fields(effect, first, resolution, options) -> dict:
    """The verdict of one pair from its effect row (swapped to the table's pair order)."""
    fields = effect._asdict()
    if fields["condition_a"] != first:  # effects may list the pair the other way round
        fields["spread_a"], fields["spread_b"] = fields["spread_b"], fields["spread_a"]
    for key in ("condition_a", "condition_b", "n_seeds_a", "n_seeds_b"):
        fields.pop(key)
    margin, source = applied_margin(options.margin, resolution, fields["spread"])
    n_seeds = min(effect.n_seeds_a, effect.n_seeds_b)
    verdict = decide(options.rule, fields["ratio_low"], fields["ratio_high"], margin, n_seeds)
    needed = seeds_needed(fields["ratio"], fields["ratio_low"], fields["ratio_high"], margin, n_seeds)
    if n_seeds < MIN_SEEDS_FOR_VERDICT:  # decide() returned undetermined; say why
        needed = float(max(needed, MIN_SEEDS_FOR_VERDICT) if np.isfinite(needed) else MIN_SEEDS_FOR_VERDICT)
        note = (f"{n_seeds} seeds: a verdict needs at least {MIN_SEEDS_FOR_VERDICT} per condition "
                "(the bootstrap over fewer seeds underestimates the spread)")
    elif verdict == UNDETERMINED:
        note = f"the interval straddles the margin; about {needed:.0f} seeds per condition would likely settle it"
    else:
        note = ""
    return {**fields, "verdict": verdict, "margin": margin, "margin_source": source,
            "margin_distance": margin * fields["spread"], "seeds_needed": needed, "note": note}


def _members(units: pd.DataFrame) -> dict:
    """Unit indices of each condition."""
    return {c: np.asarray(rows) for c, rows in units.groupby("condition", sort=True).indices.items()}


def _mean_within(distances, members):
    block = distances[np.ix_(members, members)][np.triu_indices(members.size, k=1)]
    return block.mean() if block.size else np.nan


def _add_permutation_evidence(table, units, distances, options, notes):
    """p-values of the identical-distribution test, relabelled within seeds where paired."""
    table["p_same_distribution"] = np.nan
    testable = (table["n_seeds_a"] >= 2) & (table["n_seeds_b"] >= 2)
    if testable.sum() > MAX_PERMUTATION_PAIRS:
        notes.append(f"{int(testable.sum())} pairs: more than {MAX_PERMUTATION_PAIRS}, so the "
                     "permutation evidence is left out (the verdicts do not use it)")
        table["p_same_distribution_holm"] = np.nan
        return table
    order_of = {c: m for group in seed_groups(units) for c, m in group.members.items()}
    rng = np.random.default_rng(options.random_state)
    for index in np.flatnonzero(testable.to_numpy()):
        row = table.iloc[index]
        members_a, members_b = order_of[row["condition_a"]], order_of[row["condition_b"]]
        order = np.concatenate([members_a, members_b])
        result = permutation_test(distances[np.ix_(order, order)], members_a.size,
                                  n_permutations=options.n_permutations, rng=rng,
                                  paired=bool(row["paired"]))
        table.iloc[index, table.columns.get_loc("p_same_distribution")] = result.p_value
    table["p_same_distribution_holm"] = np.nan
    tested = table["p_same_distribution"].notna().to_numpy()
    if tested.any():
        table.loc[tested, "p_same_distribution_holm"] = holm_adjust(
            table.loc[tested, "p_same_distribution"].to_numpy())
    return table


def _class_table(units, distances, pairwise, resolution, seeds_per_condition):
    """One row per condition: its class, and whom it is equivalent to, distinct from, unsure of."""
    calibrated = [c for c, n in seeds_per_condition.items() if n >= 2]
    verdict_of = {frozenset((a, b)): v for a, b, v in
                  zip(pairwise["condition_a"], pairwise["condition_b"], pairwise["verdict"])}
    equivalent = {pair for pair, verdict in verdict_of.items() if verdict == EQUIVALENT}
    linkage = dict(zip(map(frozenset, zip(pairwise["condition_a"], pairwise["condition_b"])),
                       pairwise["ratio_high"]))
    labels = group_conditions(calibrated, equivalent, linkage)
    resolution_of = dict(zip(resolution["condition"], resolution["resolution"]))
    spreads = _condition_spreads(pairwise)
    members = _members(units)
    named = {c: {"equivalent": [], "undetermined": [], "distinct": []} for c in seeds_per_condition.index}
    for pair, verdict in verdict_of.items():
        a, b = sorted(pair, key=str)
        named[a][verdict].append(str(b))
        named[b][verdict].append(str(a))
    rows = []
    for condition, n_seeds in seeds_per_condition.items():
        label = labels.get(condition)
        rows.append({
            "condition": condition, "conjugacy_class": label, "n_seeds": int(n_seeds),
            "spread": spreads.get(condition, np.nan),
            "resolution": float(resolution_of.get(condition, np.nan)),
            "mean_within_distance": _mean_within(distances, members[condition]),
            "equivalent_to": ", ".join(sorted(named[condition]["equivalent"])),
            "undetermined_with": ", ".join(sorted(named[condition]["undetermined"])),
            "distinct_from": ", ".join(sorted(named[condition]["distinct"])),
            "note": "single seed: no seed-to-seed spread, no class" if label is None else "",
        })
    table = pd.DataFrame(rows)
    table["conjugacy_class"] = table["conjugacy_class"].astype("Int64")
    return table


def _condition_spreads(pairwise: pd.DataFrame) -> dict:
    spreads = {}
    for side in ("a", "b"):
        known = pairwise[pairwise[f"spread_{side}"].notna()]
        spreads.update(zip(known[f"condition_{side}"], known[f"spread_{side}"].astype(float)))
    return spreads


def group_conditions(conditions, equivalent: set, linkage: dict) -> dict:
    """Classes 1, 2, ... in which every two members are ``equivalent``.

    Constrained complete linkage: merge, while any merge is admissible, the two classes all of
    whose cross pairs are in ``equivalent`` and whose largest cross-pair ``linkage`` (the upper
    interval bound of the effect ratio) is smallest. Ties go to the alphabetically first.
    Cluster-level admissibility and linkage are updated on each merge (a merged class is
    admissible with k when both parts were; its linkage to k is the larger), so a merge costs
    O(n) and the grouping O(n^2) memory for n conditions.
    """
    names = sorted(conditions, key=str)
    n = len(names)
    admissible = np.zeros((n, n), dtype=bool)
    link = np.full((n, n), np.inf)
    for i, j in itertools.combinations(range(n), 2):
        pair = frozenset((names[i], names[j]))
        admissible[i, j] = admissible[j, i] = pair in equivalent
        link[i, j] = link[j, i] = linkage.get(pair, np.inf)
    clusters = {i: [names[i]] for i in range(n)}
    alive = np.ones(n, dtype=bool)
    while True:
        mask = admissible & alive[:, None] & alive[None, :]
        if not mask.any():
            break
        scores = np.where(mask, link, np.inf)
        best = scores.min()
        # ties: the alphabetically first pair of classes (rows and columns are in name order)
        i, j = sorted(np.argwhere(scores == best)[0])
        clusters[i] = sorted(clusters[i] + clusters.pop(j), key=str)
        admissible[i] &= admissible[j]
        admissible[:, i] = admissible[i]
        link[i] = np.maximum(link[i], link[j])
        link[:, i] = link[i]
        admissible[i, i], alive[j] = False, False
    ordered = sorted(clusters.values(), key=lambda members: str(members[0]))
    return {c: number for number, members in enumerate(ordered, start=1) for c in members}
