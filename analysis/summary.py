"""The answer in plain words: one sentence per class and per pair of conditions.

Pure functions of the verdict tables (:mod:`analysis.conjugacy`); the command line prints
them first and the report opens with them.
"""

from __future__ import annotations

import pandas as pd

from analysis.verdicts import DISTINCT, EQUIVALENT, MAX_SEEDS_NEEDED, UNDETERMINED

MAX_PAIR_SENTENCES = 30  # beyond, the pair sentences would bury the class sentences


def pair_sentence(row, confidence: float) -> str:
    """``"a and b: equivalent (effect 0.9 ×, 90% interval 0.8–1.1, margin 1.5)"``."""
    head = f"{row.condition_a} and {row.condition_b}: {row.verdict}"
    if pd.isna(row.ratio):
        return f"{head} ({row.note})"
    margin_why = " (the estimator's resolution)" if row.margin_source == "resolution" else ""
    text = (f"{head} (effect {_number(row.ratio)} ×, {confidence:.0%} interval "
            f"{_number(row.ratio_low)}–{_number(row.ratio_high)}, margin {_number(row.margin)}{margin_why})")
    if row.verdict == UNDETERMINED and pd.notna(row.seeds_needed):
        needed = ("more than 10,000" if row.seeds_needed > MAX_SEEDS_NEEDED
                  else f"about {int(row.seeds_needed)}")
        text += f"; {needed} seeds per condition would likely settle it"
    return text


def class_sentences(classes: pd.DataFrame) -> list[str]:
    """One sentence per class: its members, and what it is distinct from or unsure of."""
    sentences = []
    for label, members in classes.dropna(subset=["conjugacy_class"]).groupby("conjugacy_class"):
        names = ", ".join(map(str, members["condition"]))
        first = members.iloc[0]
        kind = "equivalent to each other" if len(members) > 1 else "a class of its own"
        parts = [f"class {int(label)}: {names} ({kind})"]
        distinct = _common(members["distinct_from"])
        if distinct:
            parts.append(f"distinct from {distinct}")
        if first["undetermined_with"] and len(members) == 1:
            parts.append(f"undetermined with {first['undetermined_with']}")
        sentences.append("; ".join(parts))
    for row in classes[classes["conjugacy_class"].isna()].itertuples(index=False):
        sentences.append(f"{row.condition}: no class ({row.note})")
    return sentences


def verdict_sentences(pairwise: pd.DataFrame, classes: pd.DataFrame, confidence: float) -> list[str]:
    """Class sentences, then pair sentences ordered equivalent, distinct, undetermined."""
    sentences = class_sentences(classes)
    order = {EQUIVALENT: 0, DISTINCT: 1, UNDETERMINED: 2}
    ranked = pairwise.assign(_order=pairwise["verdict"].map(order)).sort_values(
        ["_order", "ratio"], kind="stable")
    if len(ranked) > MAX_PAIR_SENTENCES:
        counts = pairwise["verdict"].value_counts()
        sentences.append(f"{len(pairwise)} pairs: " + ", ".join(
            f"{int(counts.get(v, 0))} {v}" for v in (EQUIVALENT, DISTINCT, UNDETERMINED))
            + " (every pair in pairwise_tests.csv)")
        return sentences
    return sentences + [pair_sentence(row, confidence) for row in ranked.itertuples(index=False)]


def _common(values: pd.Series) -> str:
    """The names every member lists (a class is distinct from X when each member is)."""
    sets = [set(filter(None, (v or "").split(", "))) for v in values]
    common = set.intersection(*sets) if sets else set()
    return ", ".join(sorted(common))


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.2g}" if value < 1 else f"{value:.3g}"
