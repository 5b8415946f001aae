"""Verdicts (equivalent / distinct / undetermined) on spectra whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from analysis.conjugacy import analyse_conjugacy, conjugacy_classes, group_conditions, pairwise_tests
from analysis.options import AnalysisOptions
from analysis.synthetic import centre_spectrum, synthetic_spectra
from analysis.verdicts import (DECISION_RULES, DISTINCT, EQUIVALENT, MIN_SEEDS_FOR_VERDICT, UNDETERMINED,
                               decide, seeds_needed)
from helpers import FAR, NEAR_A, observed_system_spectra
from study.records import spectrum_rows


def pair(table, a, b):
    rows = table[((table["condition_a"] == a) & (table["condition_b"] == b))
                 | ((table["condition_a"] == b) & (table["condition_b"] == a))]
    assert len(rows) == 1
    return rows.iloc[0]


def shared_seed_spectra(shift, n_seeds, *, shared_weight, scale=0.01, source_b="", random_state=0):
    """Conditions a (centre 0) and b (centre shifted) whose seed s shares a random offset."""
    rng = np.random.default_rng(random_state)
    rows = []
    for seed in range(n_seeds):
        common = rng.normal(size=10)
        for condition, centre_shift, source in (("a", 0.0, ""), ("b", shift, source_b)):
            own = rng.normal(size=10)
            noise = scale * (shared_weight * common + np.sqrt(1 - shared_weight**2) * own)
            values = centre_spectrum(centre_shift).real + noise  # real spectra keep it simple
            for row in spectrum_rows(trial_id=f"{condition}-{seed}", condition=condition, seed=seed,
                                     window_index=0, window_start=0, window_end=1,
                                     eigenvalues=values, residual=0.0):
                rows.append({**row, "source": source})
    return pd.DataFrame(rows)


def test_effect_is_the_distance_between_centres():
    # Every eigenvalue of c is moved by 0.03: the 2-Wasserstein distance of the centres is 0.03.
    spectra = synthetic_spectra({"a": 0.0, "c": 0.03}, n_seeds=25, noise=0.005)
    row = pairwise_tests(spectra).iloc[0]
    assert row["effect_low"] <= 0.03 <= row["effect_high"]
    assert row["effect"] == pytest.approx(0.03, rel=0.1)
    assert row["verdict"] == DISTINCT and row["ratio_low"] > 1.5


def test_equivalence_is_declared_positively_for_one_centre():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=25, noise=0.01)
    row = pairwise_tests(spectra).iloc[0]
    assert row["verdict"] == EQUIVALENT and row["ratio_high"] < row["margin"] == 1.5


def test_unequal_spreads_around_one_centre_are_not_distinct():
    # Seed-to-seed spreads 0.002 and 0.006: the identical-distribution test tells them apart,
    # the effect (where the spectra are) does not.
    tight = synthetic_spectra({"tight": 0.0}, n_seeds=25, noise=0.002, random_state=1)
    loose = synthetic_spectra({"loose": 0.0}, n_seeds=25, noise=0.006, random_state=2)
    row = pairwise_tests(pd.concat([tight, loose], ignore_index=True)).iloc[0]
    assert row["p_same_distribution"] < 0.01  # a difference test would split them
    assert row["verdict"] == EQUIVALENT


def test_more_seeds_only_narrow_the_interval_of_a_true_equivalence():
    widths, verdicts = [], []
    for n_seeds in (6, 12, 25, 50):
        spectra = synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=n_seeds, noise=0.01, random_state=7)
        row = pairwise_tests(spectra).iloc[0]
        widths.append(row["ratio_high"] - row["ratio_low"])
        verdicts.append(row["verdict"])
    assert DISTINCT not in verdicts and verdicts[-1] == EQUIVALENT
    assert widths[-1] < widths[0] / 2


def test_an_effect_at_the_margin_is_undetermined_with_the_seeds_that_would_settle_it():
    # Centres 1.5 spreads apart (the default margin): the interval must straddle it. The
    # spread is read off a run without a shift (seeds only move the eigenvalues).
    spread = pairwise_tests(synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=8, noise=0.01,
                                              random_state=3)).iloc[0]["spread"]
    spectra = synthetic_spectra({"a": 0.0, "b": 1.5 * spread}, n_seeds=8, noise=0.01, random_state=3)
    row = pairwise_tests(spectra).iloc[0]
    assert row["verdict"] == UNDETERMINED
    assert row["seeds_needed"] > 8 and "seeds per condition would likely settle it" in row["note"]


def test_seeds_needed_scales_with_the_square_of_the_interval():
    # Estimate 1.0, upper bound 2.0 against margin 1.5 at 10 seeds: the half-width 1.0 must
    # shrink to 0.5, a factor 2, which takes 2^2 = 4 times the seeds.
    assert seeds_needed(1.0, 0.5, 2.0, 1.5, 10) == 40
    assert np.isnan(seeds_needed(1.0, 0.5, 1.2, 1.5, 10))  # already equivalent


def test_shared_seeds_are_paired_and_pairing_narrows_the_interval():
    paired = shared_seed_spectra(0.004, 12, shared_weight=0.9)
    unpaired = shared_seed_spectra(0.004, 12, shared_weight=0.9, source_b="elsewhere")
    row_paired, row_unpaired = pairwise_tests(paired).iloc[0], pairwise_tests(unpaired).iloc[0]
    assert row_paired["paired"] and not row_unpaired["paired"]
    width_paired = row_paired["effect_high"] - row_paired["effect_low"]
    width_unpaired = row_unpaired["effect_high"] - row_unpaired["effect_low"]
    assert width_paired < 0.8 * width_unpaired


def test_the_estimators_resolution_sets_a_floor_under_the_margin():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.02}, n_seeds=10, noise=0.002)
    moved = spectra.copy()
    moved["estimate"], moved["eig_real"] = "coordinates", moved["eig_real"] + 0.05
    row = pairwise_tests(pd.concat([spectra, moved], ignore_index=True)).iloc[0]
    assert row["resolution"] == pytest.approx(0.05, rel=1e-6)
    assert row["margin_source"] == "resolution" and row["margin_distance"] >= 0.05 - 1e-12
    assert row["verdict"] != DISTINCT  # without the floor: ratio far above 1.5
    assert pairwise_tests(spectra).iloc[0]["verdict"] == DISTINCT


def test_conjugate_observations_are_not_distinct_and_other_dynamics_are():
    # The project's own estimator on one linear system seen through the identity and a
    # smooth invertible cubic (conjugate), and on a different spectral family.
    spectra = pd.concat([observed_system_spectra("A-identity", NEAR_A, "identity", 10),
                         observed_system_spectra("A-cubic", NEAR_A, "cubic", 10),
                         observed_system_spectra("far", FAR, "identity", 10)], ignore_index=True)
    table = pairwise_tests(spectra)
    assert pair(table, "A-identity", "A-cubic")["verdict"] != DISTINCT
    assert pair(table, "A-identity", "far")["verdict"] == DISTINCT
    assert pair(table, "A-cubic", "far")["verdict"] == DISTINCT


def test_single_seed_condition_is_undetermined_with_the_reason():
    spectra = pd.concat([synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=6),
                         synthetic_spectra({"lonely": 0.0}, n_seeds=1, random_state=3)])
    table = conjugacy_classes(spectra)
    lonely = table.set_index("condition").loc["lonely"]
    assert pd.isna(lonely["conjugacy_class"]) and "single seed" in lonely["note"]
    pairs = table.attrs["pairwise"]
    alone = pairs[pairs["condition_b"] == "lonely"]
    assert (alone["verdict"] == UNDETERMINED).all() and alone["note"].str.contains("single seed").all()
    assert any("'lonely' has a single seed" in note for note in table.attrs["notes"])


@pytest.mark.parametrize("option, value", [("margin", -1.0), ("margin", 0), ("confidence", 1.2),
                                           ("confidence", 0.3), ("n_resamples", 10),
                                           ("metric", "chebyshev"), ("rule", "vibes")])
def test_options_out_of_range_fail_before_any_work_naming_the_option(option, value):
    with pytest.raises(ValueError, match=f"{option}="):
        AnalysisOptions(**{option: value})
    with pytest.raises(ValueError, match=f"{option}="):
        pairwise_tests(pd.DataFrame(), **{option: value})  # fails before it reads the spectra


def test_classes_hold_only_conditions_judged_equivalent():
    spectra = synthetic_spectra({"a1": 0.0, "a2": 0.0, "b1": 0.3, "b2": 0.3, "mid": 0.025},
                                n_seeds=8, noise=0.01)
    analysis = analyse_conjugacy(spectra)
    verdicts = {frozenset((r.condition_a, r.condition_b)): r.verdict
                for r in analysis.pairwise.itertuples(index=False)}
    for _, members in analysis.classes.groupby("conjugacy_class")["condition"]:
        for a in members:
            for b in members:
                if a < b:
                    assert verdicts[frozenset((a, b))] == EQUIVALENT
    classes = analysis.classes.set_index("condition")["conjugacy_class"]
    assert classes["a1"] == classes["a2"] != classes["b1"] == classes["b2"]


def test_grouping_never_chains_through_a_pair_that_is_not_equivalent():
    # A~B and B~C equivalent, A and C not: connected components would give {A, B, C}.
    linkage = {frozenset("AB"): 1.2, frozenset("BC"): 1.0, frozenset("AC"): 9.0}
    labels = group_conditions(["A", "B", "C"], {frozenset("AB"), frozenset("BC")}, linkage)
    assert labels["B"] == labels["C"] != labels["A"]


def test_reruns_give_the_same_verdicts():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.01}, n_seeds=8, noise=0.01)
    pd.testing.assert_frame_equal(pairwise_tests(spectra), pairwise_tests(spectra))


@pytest.mark.parametrize("n_seeds", [2, 5])
def test_too_few_seeds_give_undetermined_whatever_the_interval(n_seeds):
    # Two seeds each once came out "equivalent, effect 0, interval 0-0"; a far pair is no
    # more decidable from so few seeds.
    for shift in (0.0, 0.5):
        tests = pairwise_tests(synthetic_spectra({"a": 0.0, "b": shift}, n_seeds=n_seeds))
        (row,) = tests.itertuples()
        assert row.verdict == "undetermined"
        assert f"{n_seeds} seeds: a verdict needs at least 6" in row.note
        assert row.seeds_needed >= 6


def test_every_registered_rule_is_undetermined_below_the_minimum_seeds(monkeypatch):
    # A rule registered later must not be able to decide from two seeds either.
    monkeypatch.setitem(DECISION_RULES, "always-equivalent", lambda low, high, margin: EQUIVALENT)
    for rule in DECISION_RULES:
        assert decide(rule, 0.1, 0.2, 1.5, MIN_SEEDS_FOR_VERDICT - 1) == UNDETERMINED
    assert decide("always-equivalent", 3.0, 4.0, 1.5, MIN_SEEDS_FOR_VERDICT) == EQUIVALENT
    assert decide("interval-inclusion", 3.0, 4.0, 1.5, MIN_SEEDS_FOR_VERDICT) == DISTINCT


def test_six_seeds_are_enough_for_a_verdict():
    tests = pairwise_tests(synthetic_spectra({"a": 0.0, "b": 0.5}, n_seeds=6))
    assert tests["verdict"].tolist() == ["distinct"]
