"""Units (one spectrum per condition and seed): cleaning, windowed distances, exclusions."""

import numpy as np
import pandas as pd
import pytest

from analysis.conjugacy import conjugacy_classes
from analysis.distances import spectral_distance
from analysis.synthetic import synthetic_spectra
from analysis.units import (WindowMismatchError, last_window_only, unit_distance_matrix,
                            windows_as_conditions)


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
    _, squared, _ = unit_distance_matrix(spectra, metric="wasserstein-2", squared=True)
    expected = np.mean([spectral_distance(*(
        g["eig_real"].to_numpy() + 1j * g["eig_imag"].to_numpy()
        for _, g in spectra[spectra["window_start"] == start].groupby("seed")),
        metric="wasserstein-2") ** 2 for start in (0, 100)])
    assert squared[0, 1] == pytest.approx(expected)


def test_windows_as_conditions_separates_moving_windows():
    # Each later window's centre moves by 0.05 (ten noise sds): three windows, three classes,
    # every pair distinct; the seeds stay paired across windows.
    spectra = synthetic_spectra({"cnn": 0.0}, n_seeds=6, windows=(0, 100, 200), noise=0.005)
    table = conjugacy_classes(windows_as_conditions(spectra))
    assert list(table["condition"]) == ["cnn @ 0", "cnn @ 100", "cnn @ 200"]
    assert table["conjugacy_class"].nunique() == 3
    pairs = table.attrs["pairwise"]
    assert (pairs["verdict"] == "distinct").all() and pairs["paired"].all()


def test_variant_estimates_are_never_units():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=3)
    variant = spectra.assign(estimate="coordinates", eig_real=spectra["eig_real"] + 1.0)
    units, distances, _ = unit_distance_matrix(pd.concat([spectra.assign(estimate="recorded"), variant]))
    plain_units, plain, _ = unit_distance_matrix(spectra)
    assert len(units) == 6
    np.testing.assert_allclose(distances, plain)


def test_bad_columns_are_named():
    with pytest.raises(ValueError, match=r"lack the required columns \['eig_imag'\]"):
        conjugacy_classes(pd.DataFrame({"condition": ["a"], "seed": [0], "eig_real": [1.0]}))


def test_diverged_trials_are_excluded_and_named():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=6)
    spectra["status"] = "ok"
    wild = synthetic_spectra({"a": 5.0}, n_seeds=1)  # would drag condition a away if kept
    wild["seed"], wild["status"] = 42, "diverged"
    table = conjugacy_classes(pd.concat([spectra, wild], ignore_index=True))
    assert table.set_index("condition").loc["a", "n_seeds"] == 6
    assert any("'a' seed 42: trial status 'diverged'" in note for note in table.attrs["notes"])


def test_non_finite_spectra_are_excluded_and_named():
    spectra = synthetic_spectra({"a": 0.0, "b": 0.0}, n_seeds=4)
    spectra.loc[spectra["trial_id"] == "a-seed1", "eig_real"] = np.nan
    table = conjugacy_classes(spectra)
    assert table.set_index("condition").loc["a", "n_seeds"] == 3
    assert any("'a' seed 1 window 0: non-finite" in note for note in table.attrs["notes"])


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
