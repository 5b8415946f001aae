"""Pure aggregations of spectra and distance matrices into tidy tables (plots draw these).

No I/O and no drawing here: compute, then draw.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from analysis.units import mean_pairwise_distances


def unit_labels(units: pd.DataFrame) -> list[str]:
    """Readable labels ``"<condition> / seed <seed>"`` for the rows of a unit table."""
    return [f"{c} / seed {s}" for c, s in zip(units["condition"], units["seed"])]


def distance_long_frame(units: pd.DataFrame, distances: np.ndarray) -> pd.DataFrame:
    """The unit distance matrix in long form, one row per ordered pair (diagonal included).

    Columns: ``condition_a``, ``seed_a``, ``condition_b``, ``seed_b``, ``distance``.
    """
    n_units = len(units)
    first, second = np.meshgrid(np.arange(n_units), np.arange(n_units), indexing="ij")
    first, second = first.ravel(), second.ravel()
    return pd.DataFrame({
        "condition_a": units["condition"].to_numpy()[first],
        "seed_a": units["seed"].to_numpy()[first],
        "condition_b": units["condition"].to_numpy()[second],
        "seed_b": units["seed"].to_numpy()[second],
        "distance": distances[first, second],
    })


def between_within_frame(units: pd.DataFrame, distances: np.ndarray) -> pd.DataFrame:
    """Distances per pair of conditions, split into between and within (seed-to-seed).

    One row per distance, columns ``pair`` (``"A vs B"``), ``kind`` (``"between"``,
    ``"within A"``, ``"within B"``, with the condition names) and ``distance``. Each unordered
    pair of units is counted once.
    """
    conditions = sorted(units["condition"].unique())
    condition_of = units["condition"].to_numpy()
    rows = []
    for first, second in itertools.combinations(conditions, 2):
        members_a = np.flatnonzero(condition_of == first)
        members_b = np.flatnonzero(condition_of == second)
        pair = f"{first} vs {second}"
        for value in distances[np.ix_(members_a, members_b)].ravel():
            rows.append((pair, "between", value))
        for name, members in ((first, members_a), (second, members_b)):
            block = distances[np.ix_(members, members)][np.triu_indices(members.size, k=1)]
            rows.extend((pair, f"within {name}", value) for value in block)
    return pd.DataFrame(rows, columns=["pair", "kind", "distance"])


def condition_distance_summary(units: pd.DataFrame, distances: np.ndarray) -> pd.DataFrame:
    """Mean and standard deviation of distances for every (condition, condition) pair.

    The paper's table format (mean +- sd over seeds). Within a condition only distinct seeds
    count (the zero diagonal is left out). Columns: ``condition_a``, ``condition_b``,
    ``mean_distance``, ``sd_distance``, ``n_distances``.
    """
    conditions = sorted(units["condition"].unique())
    condition_of = units["condition"].to_numpy()
    rows = []
    for first, second in itertools.combinations_with_replacement(conditions, 2):
        members_a = np.flatnonzero(condition_of == first)
        members_b = np.flatnonzero(condition_of == second)
        block = distances[np.ix_(members_a, members_b)]
        values = block[np.triu_indices(members_a.size, k=1)] if first == second else block.ravel()
        rows.append({"condition_a": first, "condition_b": second,
                     "mean_distance": values.mean() if values.size else np.nan,
                     "sd_distance": values.std(ddof=1) if values.size > 1 else np.nan,
                     "n_distances": int(values.size)})
    return pd.DataFrame(rows)


def window_distance_frame(spectra: pd.DataFrame) -> pd.DataFrame:
    """Window x window distances within each trial, averaged over seeds, for every condition.

    ``spectra``: long form (recorded estimates) with ``condition``, ``seed``,
    ``window_start``, ``eig_real``, ``eig_imag``. Columns of the result: ``condition``,
    ``window_a``, ``window_b`` (window starts), ``mean_distance``, ``log10_distance`` (log10
    of the mean; NaN on the zero diagonal), ``n_seeds``. Empty when no trial has more than
    one window.
    """
    rows = []
    for condition, frame in spectra.groupby("condition", sort=True):
        if frame["window_start"].nunique() < 2:
            continue
        windows, mean, count = mean_pairwise_distances(frame, ["window_start"], "seed")
        with np.errstate(invalid="ignore", divide="ignore"):
            log10 = np.where(mean > 0, np.log10(np.where(mean > 0, mean, 1.0)), np.nan)
        starts = windows["window_start"].to_numpy()
        for i, j in itertools.product(range(starts.size), repeat=2):
            rows.append({"condition": condition, "window_a": int(starts[i]), "window_b": int(starts[j]),
                         "mean_distance": mean[i, j], "log10_distance": log10[i, j],
                         "n_seeds": int(count[i, j])})
    return pd.DataFrame(rows, columns=["condition", "window_a", "window_b", "mean_distance",
                                       "log10_distance", "n_seeds"])


def eigenvalue_frame(spectra: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """Spectra joined with each condition's class, for the complex-plane figure.

    Columns: ``condition``, ``seed``, ``eig_real``, ``eig_imag``, ``class_label`` (``"class 1"``,
    ... or ``"no class"`` for uncalibrated conditions).
    """
    labels = {row.condition: (f"class {int(row.conjugacy_class)}" if pd.notna(row.conjugacy_class)
                              else "no class") for row in classes.itertuples(index=False)}
    frame = spectra[["condition", "seed", "eig_real", "eig_imag"]].copy()
    frame["class_label"] = frame["condition"].map(labels).fillna("no class")
    return frame


def markdown_table(table: pd.DataFrame, *, float_format: str = "{:.4g}") -> str:
    """A GitHub-flavoured Markdown table (no dependency on ``tabulate``)."""
    def cell(value):
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else float_format.format(value)
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])
