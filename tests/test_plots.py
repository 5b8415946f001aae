"""Aggregations (pure, with known answers) and figures drawn from small tidy frames."""

import numpy as np
import pandas as pd
import pytest

from analysis import plots, tables
from analysis.conjugacy import conjugacy_classes
from analysis.synthetic import synthetic_spectra

UNITS = pd.DataFrame({"condition": ["a", "a", "b"], "seed": [0, 1, 0]})
# a/0 - a/1: 0.1; a/x - b/0: 0.5 and 0.7.
DISTANCES = np.array([[0.0, 0.1, 0.5], [0.1, 0.0, 0.7], [0.5, 0.7, 0.0]])


def saved(figure, tmp_path, name):
    path = tmp_path / name
    figure.savefig(path)
    plots.plt.close(figure)
    return path.exists() and path.stat().st_size > 1000


def test_between_within_frame_counts_each_pair_once():
    frame = tables.between_within_frame(UNITS, DISTANCES)
    by_kind = frame.groupby("kind")["distance"].apply(sorted).to_dict()
    assert by_kind == {"between": [0.5, 0.7], "within a": [0.1]}
    assert set(frame["pair"]) == {"a vs b"}


def test_condition_distance_summary_hand_computed():
    summary = tables.condition_distance_summary(UNITS, DISTANCES).set_index(["condition_a", "condition_b"])
    assert summary.loc[("a", "b"), "mean_distance"] == pytest.approx(0.6)
    assert summary.loc[("a", "b"), "sd_distance"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summary.loc[("a", "a"), "mean_distance"] == pytest.approx(0.1)
    assert summary.loc[("b", "b"), "n_distances"] == 0


def test_distance_long_frame_round_trips_the_matrix():
    frame = tables.distance_long_frame(UNITS, DISTANCES)
    square = frame.pivot_table(index=["condition_a", "seed_a"], columns=["condition_b", "seed_b"],
                               values="distance")
    np.testing.assert_allclose(square.to_numpy(), DISTANCES)


def test_window_distance_frame_recovers_the_window_shift():
    # Noise-free spectra whose every eigenvalue moves by 0.05 per window: the matched distance
    # between windows i and j is exactly 0.05 |i - j|.
    spectra = synthetic_spectra({"cnn": 0.0}, n_seeds=2, windows=(0, 100, 200), noise=0.0)
    frame = tables.window_distance_frame(spectra).set_index(["window_a", "window_b"])
    assert frame.loc[(0, 200), "mean_distance"] == pytest.approx(0.1)
    assert frame.loc[(100, 200), "log10_distance"] == pytest.approx(np.log10(0.05))
    assert np.isnan(frame.loc[(100, 100), "log10_distance"]) and frame["n_seeds"].eq(2).all()
    assert tables.window_distance_frame(synthetic_spectra({"a": 0.0}, n_seeds=2)).empty


def test_markdown_table():
    text = tables.markdown_table(pd.DataFrame({"x": [1.23456, np.nan], "y": ["a|b", "c"]}))
    assert text.splitlines() == ["| x | y |", "|---|---|", "| 1.235 | a\\|b |", "|  | c |"]


def test_crowded_near_one_selects_the_crowd():
    frame = pd.DataFrame({"eig_real": [0.99, 1.0, 1.01, 0.2], "eig_imag": [0.0, 0.01, -0.01, 0.5]})
    assert len(plots.crowded_near_one(frame)) == 3
    assert plots.crowded_near_one(frame.iloc[[0, 3]].assign(eig_real=[0.1, 0.2])).empty


def test_figures_render_to_non_empty_png(tmp_path):
    spectra = synthetic_spectra({"a": 0.0, "b": -0.3}, n_seeds=3, windows=(0, 100))
    classes = conjugacy_classes(spectra, n_permutations=99)
    eigenvalues = tables.eigenvalue_frame(spectra, classes)
    eigenvalues["eig_real"] = 1 + 0.01 * (eigenvalues["eig_real"] - 0.8)  # crowd near 1: inset
    assert saved(plots.plot_spectra(eigenvalues), tmp_path, "spectra.png")
    labels = tables.unit_labels(UNITS)
    square = pd.DataFrame(DISTANCES, index=labels, columns=labels)
    unit_classes = pd.Series(["class 1", "class 1", "no class"], index=labels)
    assert saved(plots.plot_distance_heatmap(square, unit_classes), tmp_path, "heatmap.png")
    assert saved(plots.plot_between_within(tables.between_within_frame(UNITS, DISTANCES)),
                 tmp_path, "between.png")
    assert saved(plots.plot_window_heatmap(tables.window_distance_frame(spectra)), tmp_path,
                 "windows.png")


def test_spectra_inset_clears_the_panel_tick_and_axis_labels():
    frame = pd.DataFrame({"condition": "a", "class_label": "class 1",
                          "eig_real": [0.99, 1.0, 1.01, 0.98, 0.2],
                          "eig_imag": [0.0, 0.01, -0.01, 0.02, 0.5]})
    figure = plots.plot_spectra(frame)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axis = figure.axes[0]
    (inset,) = axis.child_axes
    inset_box = inset.get_tightbbox(renderer)  # the inset with its own tick labels
    labels = axis.get_xticklabels() + axis.get_yticklabels() + [axis.xaxis.label, axis.yaxis.label]
    overlapping = [label.get_text() for label in labels if label.get_visible() and label.get_text()
                   and label.get_window_extent(renderer).overlaps(inset_box)]
    plots.plt.close(figure)
    assert overlapping == []


def test_heatmap_legend_names_the_conditions_of_each_class():
    labels = tables.unit_labels(UNITS)
    square = pd.DataFrame(DISTANCES, index=labels, columns=labels)
    unit_classes = pd.Series(["class 1", "class 1", "class 2"], index=labels)
    figure = plots.plot_distance_heatmap(square, unit_classes, {"class 1": ["a"], "class 2": ["b"]})
    legend_texts = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    plots.plt.close(figure)
    assert legend_texts == ["class 1: a", "class 2: b"]
