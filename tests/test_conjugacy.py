"""Calibrated conjugacy classes on synthetic spectra whose classes are known by construction."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.conjugacy import (
    WindowMismatchError,
    analyse_conjugacy,
    conjugacy_classes,
    group_conditions,
    last_window_only,
    pairwise_tests,
    unit_distance_matrix,
    windows_as_conditions,
)
from analysis.distances import spectral_distance
from analysis.permutation import holm_adjust, permutation_test
from analysis.synthetic import synthetic_spectra


def class_sets(table):
    """Conditions grouped by class, as a set of frozensets (class numbers are arbitrary)."""
    grouped = table.dropna(subset=["conjugacy_class"]).groupby("conjugacy_class")["condition"]
    return {frozenset(members) for _, members in grouped}


def test_permutation_test_exact_hand_computed():
    # Two groups of 3; within distances 0.1, between 1. Among the C(6, 3) = 20 relabelings only
    # the observed split and its mirror reach the largest between-sum, so p = 2 / 20.
    groups = np.array([0, 0, 0, 1, 1, 1])
    distances = np.where(groups[:, None] == groups[None, :], 0.1, 1.0)
    np.fill_diagonal(distances, 0.0)
    result = permutation_test(distances, 3)
    assert result.exact and result.n_relabelings == 20
    assert result.p_value == pytest.approx(2 / 20)
    assert result.min_attainable_p == pytest.approx(2 / 20)
    assert result.statistic == pytest.approx(0.9)


def test_permutation_test_monte_carlo_when_enumeration_is_too_large():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(40, 2))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    result = permutation_test(distances, 20, n_permutations=999, rng=rng)
    assert not result.exact and result.n_relabelings == 999
    assert 1 / 1000 <= result.p_value <= 1  # (1 + count) / (1 + n)
    with pytest.raises(ValueError, match="each group needs >= 2"):
        permutation_test(distances[:5, :5], 1)


def test_holm_hand_computed():
    # Sorted p: 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, 1*0.04 = 0.04 -> running max.
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_two_well_separated_centres_give_exactly_two_classes():
    # Seven seeds: with six, 2 / C(12, 6) times the 6 tests exceeds alpha (no pair separable).
    spectra = synthetic_spectra({"a1": 0.0, "a2": 0.0, "b1": 0.3, "b2": 0.3}, n_seeds=7)
    table = conjugacy_classes(spectra)
    assert class_sets(table) == {frozenset({"a1", "a2"}), frozenset({"b1", "b2"})}
    pairs = table.attrs["pairwise"]
    across = pairs[pairs["condition_a"].str[0] != pairs["condition_b"].str[0]]
    assert across["separated"].all() and (across["ratio"] > 5).all()
    evidence = table.set_index("condition").loc["a1"]
    assert evidence["max_p_holm_to_other_classes"] <= 0.01 < evidence["min_p_holm_in_class"]
    assert evidence["max_ratio_in_class"] < 2 and evidence["unseparated_from_other_classes"] == ""


def test_three_well_separated_centres_give_exactly_three_classes():
    spectra = synthetic_spectra({"x": 0.0, "y": 0.15, "z": -0.2, "x_again": 0.0}, n_seeds=7,
                                random_state=5)
    table = conjugacy_classes(spectra)
    assert class_sets(table) == {frozenset({"x", "x_again"}), frozenset({"y"}), frozenset({"z"})}
    assert table["calibrated"].all()


def test_one_centre_false_split_rate_is_below_alpha():
    # Three conditions, seven seeds each, all drawn around one centre: the classes must be one
    # class in >= 99% of draws at alpha = 0.01 (Holm controls the family-wise error rate).
    # Exact enumeration here (C(14, 7) = 3432 relabelings), so the smallest p-value, 2/3432,
    # times 3 tests is below alpha: a split is possible, and would be counted.
    n_draws, splits = 200, 0
    for draw in range(n_draws):
        spectra = synthetic_spectra({"p": 0.0, "q": 0.0, "r": 0.0}, n_seeds=7, random_state=draw)
        table = conjugacy_classes(spectra, alpha=0.01)
        splits += table["conjugacy_class"].nunique() > 1
    false_split_rate = splits / n_draws
    print(f"false-split rate over {n_draws} draws: {false_split_rate:.3f}")
    assert false_split_rate <= 0.01


def test_same_design_detects_a_small_shift():
    # The power counterpart of the false-split test: the same design separates a shift of two
    # noise standard deviations, so the test above is not passing by never rejecting.
    spectra = synthetic_spectra({"p": 0.0, "q": 0.0, "r": 0.02}, n_seeds=7, random_state=1)
    assert class_sets(conjugacy_classes(spectra)) == {frozenset({"p", "q"}), frozenset({"r"})}


def test_grouping_never_chains_separated_conditions():
    # A~B and B~C are not separated, A and C are: connected components would give {A, B, C}.
    # The rule puts B with its closer neighbour (smaller between/within ratio) and keeps A, C apart.
    ratios = {frozenset("AB"): 1.5, frozenset("BC"): 1.1, frozenset("AC"): 9.0}
    labels = group_conditions(["A", "B", "C"], {frozenset("AC")}, ratios)
    assert labels["B"] == labels["C"] != labels["A"]


def test_single_seed_condition_is_named_not_merged():
    spectra = pd.concat([synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=6),
                         synthetic_spectra({"lonely": 0.0}, n_seeds=1, random_state=3)])
    table = conjugacy_classes(spectra)
    lonely = table.set_index("condition").loc["lonely"]
    assert pd.isna(lonely["conjugacy_class"]) and not lonely["calibrated"]
    assert any("'lonely' has a single seed" in note for note in table.attrs["notes"])
    pairs = table.attrs["pairwise"]
    assert pairs.loc[pairs["condition_b"] == "lonely", "p_value"].isna().all()


def test_diverged_trials_are_excluded_and_named():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=6)
    spectra["status"] = "ok"
    wild = synthetic_spectra({"a": 5.0}, n_seeds=1)  # would drag condition a away if kept
    wild["seed"], wild["status"] = 42, "diverged"
    table = conjugacy_classes(pd.concat([spectra, wild], ignore_index=True))
    assert class_sets(table) == {frozenset({"a", "b"})}
    assert table.set_index("condition").loc["a", "n_seeds"] == 6
    assert any("'a' seed 42: trial status 'diverged'" in note for note in table.attrs["notes"])


def test_too_few_seeds_are_reported_as_powerless():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.5}, n_seeds=2)
    pairs = pairwise_tests(spectra)
    assert pairs.loc[0, "min_attainable_p"] == pytest.approx(2 / math.comb(4, 2))
    assert not pairs.loc[0, "separated"] and not pairs.loc[0, "separable"]
    assert "too few seeds" in pairs.loc[0, "note"]
    table = conjugacy_classes(spectra)
    assert table.set_index("condition").loc["a", "note"] == "too few seeds to separate it from b"
    assert any("1 of 1 tested pairs cannot be separated" in n for n in table.attrs["notes"])


def test_windowed_unit_distance_is_the_mean_over_equal_windows():
    spectra = synthetic_spectra({"a": 0.0}, n_seeds=2, windows=(0, 100))
    units, distances, _ = unit_distance_matrix(spectra)
    per_window = []
    for start in (0, 100):
        window = spectra[spectra["window_start"] == start]
        first, second = (g["eig_real"].to_numpy() + 1j * g["eig_imag"].to_numpy()
                         for _, g in window.groupby("seed"))
        per_window.append(spectral_distance(first, second))
    assert len(units) == 2 and distances[0, 1] == pytest.approx(np.mean(per_window))


def test_windows_as_conditions_separates_moving_windows():
    # Each later window's centre moves by 0.05 (ten noise sds): three windows, three classes.
    spectra = synthetic_spectra({"cnn": 0.0}, n_seeds=6, windows=(0, 100, 200), noise=0.005)
    table = analyse_conjugacy(windows_as_conditions(spectra)).classes
    assert list(table["condition"]) == ["cnn @ 0", "cnn @ 100", "cnn @ 200"]
    assert table["conjugacy_class"].nunique() == 3


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"lack the required columns \['eig_imag'\]"):
        conjugacy_classes(pd.DataFrame({"condition": ["a"], "seed": [0], "eig_real": [1.0]}))
    spectra = synthetic_spectra({"a": 0.0}, n_seeds=2)
    with pytest.raises(ValueError, match="alpha must lie in"):
        conjugacy_classes(spectra, alpha=1.5)


def test_units_without_a_shared_window_raise_and_last_window_fallback_works():
    early = synthetic_spectra({"a": 0.0}, n_seeds=3, windows=(0, 100))
    late = synthetic_spectra({"b": 0.0}, n_seeds=3, windows=(500,))
    spectra = pd.concat([early, late], ignore_index=True)
    with pytest.raises(WindowMismatchError, match="share no window_start"):
        unit_distance_matrix(spectra)
    last = last_window_only(spectra)
    assert set(last.groupby("condition")["window_index"].max()) == {1, 0}
    assert len(unit_distance_matrix(last)[0]) == 6


def test_two_trials_with_one_condition_and_seed_are_not_merged_into_one_spectrum():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=3)
    copy = spectra[spectra["trial_id"] == "a-seed0"].assign(trial_id="a-seed0-rerun")
    units, _, notes = unit_distance_matrix(pd.concat([spectra, copy], ignore_index=True))
    assert len(units) == 6
    assert notes == ["condition 'a' seed 0 has several trials ['a-seed0', 'a-seed0-rerun']; "
                     "kept a-seed0, left out ['a-seed0-rerun']"]
