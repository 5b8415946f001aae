"""Figures. Each function takes a tidy DataFrame (from :mod:`analysis.tables`) and returns a
matplotlib Figure; nothing here computes distances or writes files.

The Agg backend is selected so that figures render without a display (CI, clusters).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.cluster.hierarchy import linkage  # noqa: E402
from scipy.spatial.distance import squareform  # noqa: E402

NO_CLASS = "no class"
NEAR_ONE_RADIUS = 0.2  # points this close to lambda = 1 get a zoomed inset when they crowd
# The inset's (left, bottom, width, height) in axes fractions: lower left, with room on its
# left and below for its own tick labels, so that they stay clear of the panel's tick labels.
INSET_BOUNDS = (0.17, 0.12, 0.4, 0.4)


def class_palette(labels) -> dict:
    """A stable colour per class label; grey for conditions without a class."""
    labels = list(labels)
    names = sorted({label for label in labels if label != NO_CLASS})
    colours = sns.color_palette("tab10", max(len(names), 1))
    palette = {name: colours[i % len(colours)] for i, name in enumerate(names)}
    if NO_CLASS in set(labels):
        palette[NO_CLASS] = (0.6, 0.6, 0.6)
    return palette


def _panel_grid(n_panels: int, max_columns: int, panel_width: float, panel_height: float):
    """A figure of ``n_panels`` axes in rows of at most ``max_columns``, and those axes.

    Sizes in inches per panel; the grid's spare axes are hidden. No panels give one hidden axis.
    """
    n_columns = min(max_columns, max(n_panels, 1))
    n_rows = int(np.ceil(max(n_panels, 1) / n_columns))
    figure, axes = plt.subplots(n_rows, n_columns, squeeze=False,
                                figsize=(panel_width * n_columns, panel_height * n_rows))
    for axis in axes.ravel()[n_panels:]:
        axis.set_visible(False)
    return figure, axes.ravel()[:n_panels]


def plot_spectra(eigenvalues: pd.DataFrame, *, max_columns: int = 4) -> plt.Figure:
    """Each condition's eigenvalues on the complex plane with the unit circle.

    ``eigenvalues``: columns ``condition``, ``eig_real``, ``eig_imag``, ``class_label``
    (:func:`analysis.tables.eigenvalue_frame`). One panel per condition, points coloured by
    conjugacy class; when most of a panel's points crowd near lambda = 1 a zoomed inset
    shows them.
    """
    conditions = sorted(eigenvalues["condition"].unique())
    palette = class_palette(eigenvalues["class_label"].unique())
    figure, panels = _panel_grid(len(conditions), max_columns, 3.6, 3.6)
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    for axis, condition in zip(panels, conditions, strict=True):
        frame = eigenvalues[eigenvalues["condition"] == condition]
        label = frame["class_label"].iloc[0]
        crowded = crowded_near_one(frame)
        for target in [axis] + ([_crowded_inset(axis, crowded)] if len(crowded) else []):
            target.plot(circle.real, circle.imag, color="0.7", linewidth=0.8)
            target.scatter(frame["eig_real"], frame["eig_imag"], s=10, alpha=0.6,
                           color=palette[label], edgecolor="none")
        axis.set_title(f"{condition}\n({label})", fontsize=9)
        axis.set_xlabel("Re λ")
        axis.set_ylabel("Im λ")
        axis.set_aspect("equal")
    figure.suptitle("Koopman eigenvalues by condition, coloured by conjugacy class")
    figure.tight_layout()
    return figure


def crowded_near_one(frame: pd.DataFrame) -> pd.DataFrame:
    """The points within 0.2 of lambda = 1, when they are at least half of the panel's points.

    Training spectra crowd there (slow modes); an empty frame means no inset is needed.
    """
    near = np.hypot(frame["eig_real"] - 1.0, frame["eig_imag"]) < NEAR_ONE_RADIUS
    return frame[near] if near.mean() >= 0.5 else frame.iloc[:0]


def _crowded_inset(axis, crowded: pd.DataFrame):
    """A zoomed inset framing the crowded points, with a margin of 20% of their span."""
    inset = axis.inset_axes(INSET_BOUNDS)
    real, imag = crowded["eig_real"], crowded["eig_imag"]
    margin = max(np.ptp(real), np.ptp(imag), 1e-4) * 0.2
    inset.set_xlim(real.min() - margin, real.max() + margin)
    inset.set_ylim(imag.min() - margin, imag.max() + margin)
    inset.tick_params(labelsize=6)
    inset.locator_params(nbins=3)  # a few short labels keep the small inset legible
    axis.indicate_inset_zoom(inset, edgecolor="0.4")
    return inset


def _legend_name(label: str, members) -> str:
    """``class 1: width=10, width=40`` (shortened past 60 characters), or the bare label."""
    if not members:
        return label
    text = f"{label}: {', '.join(members)}"
    return text if len(text) <= 60 else text[:57] + "..."


def plot_distance_heatmap(distances: pd.DataFrame, unit_classes: pd.Series,
                          class_members: dict | None = None) -> plt.Figure:
    """Clustered heat map of the unit distance matrix, with a colour strip marking classes.

    ``distances``: square frame, index and columns the unit labels. ``unit_classes``: class
    label per unit label (same index). ``class_members``: optional class label -> conditions,
    named in the legend (with many units the tick labels are hidden, so the legend is the only
    place that says which setups a colour stands for). Units are ordered by average-linkage
    clustering.
    """
    values = distances.to_numpy()
    palette = class_palette(unit_classes.unique())
    strip = unit_classes.map(palette).rename("class")
    size = min(4 + 0.18 * len(distances), 16)
    if len(distances) >= 3:
        tree = linkage(squareform(values, checks=False), method="average")
        grid = sns.clustermap(distances, row_linkage=tree, col_linkage=tree, row_colors=strip,
                              col_colors=strip, cmap="viridis", figsize=(size, size),
                              xticklabels=len(distances) <= 60, yticklabels=len(distances) <= 60,
                              cbar_kws={"label": "spectral distance"})
    else:  # clustering needs at least three units; a plain heat map says the same
        grid = sns.clustermap(distances, row_cluster=False, col_cluster=False, row_colors=strip,
                              col_colors=strip, cmap="viridis", figsize=(size, size))
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in palette.values()]
    names = [_legend_name(label, (class_members or {}).get(label)) for label in palette]
    grid.figure.legend(handles, names, loc="upper right", fontsize=8, title="class")
    grid.figure.suptitle("Spectral distances between (condition, seed) spectra", y=1.0)
    return grid.figure


def plot_between_within(frame: pd.DataFrame) -> plt.Figure:
    """Between- vs within-condition distance distributions, one panel per pair of conditions.

    ``frame``: columns ``pair``, ``kind``, ``distance`` (:func:`analysis.tables.between_within_frame`).
    """
    pairs = list(dict.fromkeys(frame["pair"]))
    figure, panels = _panel_grid(len(pairs), 3, 4.2, 3.4)
    for axis, pair in zip(panels, pairs, strict=True):
        subset = frame[frame["pair"] == pair]
        sns.boxplot(data=subset, x="kind", y="distance", ax=axis, color="0.85", fliersize=0)
        sns.stripplot(data=subset, x="kind", y="distance", ax=axis, size=3, alpha=0.6,
                      hue="kind", palette="deep", legend=False)
        axis.set_title(pair, fontsize=9)
        axis.set_xlabel("")
        axis.tick_params(axis="x", labelsize=7, rotation=15)
    figure.suptitle("Between- vs within-condition (seed-to-seed) spectral distances")
    figure.tight_layout()
    return figure


def plot_window_heatmap(frame: pd.DataFrame) -> plt.Figure:
    """Window x window log10 spectral distance, one panel per condition.

    ``frame``: columns ``condition``, ``window_a``, ``window_b``, ``log10_distance``
    (:func:`analysis.tables.window_distance_frame`).
    """
    conditions = sorted(frame["condition"].unique())
    figure, panels = _panel_grid(len(conditions), 3, 4.6, 4.0)
    # One colour scale for all panels, so that conditions can be compared by eye.
    low, high = np.nanmin(frame["log10_distance"]), np.nanmax(frame["log10_distance"])
    for axis, condition in zip(panels, conditions, strict=True):
        square = frame[frame["condition"] == condition].pivot(
            index="window_a", columns="window_b", values="log10_distance")
        sns.heatmap(square, ax=axis, cmap="magma", square=True, vmin=low, vmax=high,
                    annot=len(square) <= 8, fmt=".2f", cbar_kws={"label": "log10 distance"})
        axis.set_title(condition, fontsize=9)
        axis.set_xlabel("window start (step)")
        axis.set_ylabel("window start (step)")
    figure.suptitle("Spectral distance between training windows (mean over seeds)")
    figure.tight_layout()
    return figure


VERDICT_COLOURS = {"equivalent": "#2a9d8f", "distinct": "#e76f51", "undetermined": "#8d99ae"}


EFFECT_TICKS = (0.01, 0.03, 0.1, 0.3, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 100, 300, 1000)


def plot_effects(pairwise: pd.DataFrame, *, confidence: float) -> plt.Figure:
    """Each pair's effect ratio with its interval, against its margin, coloured by verdict.

    ``pairwise``: columns ``condition_a``, ``condition_b``, ``verdict``, ``ratio``,
    ``ratio_low``, ``ratio_high``, ``margin`` (:func:`analysis.conjugacy.pairwise_tests`).
    Pairs without an estimate (a single seed) are left out. A logarithmic axis, because
    ratios run from far inside the margin to hundreds of spreads beyond it.
    """
    frame = pairwise.dropna(subset=["ratio"]).sort_values("ratio").reset_index(drop=True)
    figure, axis = plt.subplots(figsize=(7.5, 0.9 + 0.32 * max(len(frame), 1)))
    floor = 1e-2  # ratios of 0 (centres estimated to coincide) are drawn at this floor
    for position, row in frame.iterrows():
        colour = VERDICT_COLOURS.get(row["verdict"], "black")
        low, high = max(row["ratio_low"], floor), max(row["ratio_high"], floor)
        axis.plot([low, high], [position, position], color=colour, linewidth=2.5)
        axis.plot(max(row["ratio"], floor), position, "o", color=colour, markersize=5)
        axis.plot(row["margin"], position, "|", color="black", markersize=12, markeredgewidth=1.5)
    axis.set_yticks(range(len(frame)))
    axis.set_yticklabels([f"{a} vs {b}" for a, b in zip(frame["condition_a"], frame["condition_b"])],
                         fontsize=8)
    axis.set_xscale("log")
    # plain numbers on the log axis: the default minor labels (2x10^0, 3x10^0, ...) overlap
    # when the ratios span less than a decade
    low, high = axis.get_xlim()
    axis.set_xticks([tick for tick in EFFECT_TICKS if low <= tick <= high])
    axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel(f"distance between centres / seed-to-seed spread ({confidence:.0%} interval; "
                    "| = margin)")
    handles = [plt.Line2D([], [], color=c, linewidth=2.5, label=v) for v, c in VERDICT_COLOURS.items()]
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    axis.set_ylim(-0.7, len(frame) - 0.3)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
