"""Calibration of the verdicts on systems whose answer is known, for several margins.

    python tests/benchmarks/calibrate_verdicts.py [--quick] [--margins 1 1.5 2 3]

Cases (the answer by construction):

* conjugate observations: one linear system with prescribed eigenvalues seen through the
  identity, a mild cubic and tanh (smooth invertible maps: topologically conjugate) —
  "equivalent";
* a near spectral family (one eigenvalue pair of radius 0.80 moved to 0.86) and a far one,
  each against the first system through the same map — "distinct";
* equal centres with unequal seed-to-seed spreads (0.002 and 0.006, synthetic spectra) —
  "equivalent";
* the paper's validation problem: OMD and OGD are conjugate ("equivalent"), bisection is not
  ("distinct" from both).

Every case runs at 6, 10, 25 and 50 seeds, on disjoint blocks of seeds (more blocks at fewer
seeds), through the project's own estimator and verdicts. It prints, per margin, the rates
of false "distinct" (on an equivalent answer), false "equivalent" (on a distinct answer) and
undetermined, per number of seeds; the default margin of analysis.options was read off this
output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analysis.conjugacy import analyse_conjugacy  # noqa: E402
from analysis.synthetic import synthetic_spectra  # noqa: E402
from analysis.verdicts import DISTINCT, EQUIVALENT, UNDETERMINED, applied_margin, decide  # noqa: E402
from study.trial import run_trial  # noqa: E402
from tests.helpers import FAR, NEAR_A, NEAR_B, observed_system_spectra  # noqa: E402

SEED_COUNTS = (6, 10, 25, 50)


def system_spectra(n_seeds: int) -> tuple[pd.DataFrame, dict]:
    """Linear-system conditions and the known answer of each pair."""
    conditions = {"A-identity": (NEAR_A, "identity"), "A-cubic": (NEAR_A, "cubic"),
                  "A-tanh": (NEAR_A, "tanh"), "near-identity": (NEAR_B, "identity"),
                  "near-tanh": (NEAR_B, "tanh"), "far-identity": (FAR, "identity")}
    frames = [observed_system_spectra(name, blocks, mapping, n_seeds)
              for name, (blocks, mapping) in conditions.items()]
    family = {name: name.split("-")[0] for name in conditions}  # "A", "near", "far"
    answers = {frozenset((a, b)): EQUIVALENT if family[a] == family[b] else DISTINCT
               for a in conditions for b in conditions if a < b}
    # Pairs through different maps of different families mix two effects; leave them out.
    for a in conditions:
        for b in conditions:
            if a < b and family[a] != family[b] and conditions[a][1] != conditions[b][1]:
                answers.pop(frozenset((a, b)))
    return pd.concat(frames, ignore_index=True), answers


def spread_spectra(n_seeds: int) -> tuple[pd.DataFrame, dict]:
    tight = synthetic_spectra({"tight": 0.0}, n_seeds=n_seeds, noise=0.002, random_state=1)
    loose = synthetic_spectra({"loose": 0.0}, n_seeds=n_seeds, noise=0.006, random_state=2)
    return pd.concat([tight, loose], ignore_index=True), {frozenset(("loose", "tight")): EQUIVALENT}


def validation_spectra(n_seeds: int) -> tuple[pd.DataFrame, dict]:
    rows = []
    for method in ("omd", "ogd", "bisection"):
        for seed in range(n_seeds):
            config = {"trial_type": "validation", "validation_method": method, "n_steps": 100,
                      "delays": 4, "seed": seed, "grid_jitter": 0.1}
            rows += run_trial(config).spectrum_rows(f"{method}-{seed}", method)
    answers = {frozenset(("ogd", "omd")): EQUIVALENT, frozenset(("bisection", "omd")): DISTINCT,
               frozenset(("bisection", "ogd")): DISTINCT}
    return pd.DataFrame(rows), answers


def blocks(spectra: pd.DataFrame, n_seeds: int, max_seeds: int):
    """Disjoint blocks of ``n_seeds`` consecutive seeds out of ``max_seeds``."""
    for start in range(0, max_seeds - n_seeds + 1, n_seeds):
        yield spectra[(spectra["seed"] >= start) & (spectra["seed"] < start + n_seeds)]


def judged_pairs(spectra, answers, margins, case, n_seeds, interval_method):
    """One row per (pair, margin): the known answer and the verdict."""
    pairwise = analyse_conjugacy(spectra, n_permutations=99, interval_method=interval_method).pairwise
    rows = []
    for row in pairwise.itertuples(index=False):
        answer = answers.get(frozenset((row.condition_a, row.condition_b)))
        if answer is None:
            continue
        for margin in margins:
            applied, _ = applied_margin(margin, row.resolution, row.spread)
            verdict = decide("interval-inclusion", row.ratio_low, row.ratio_high, applied,
                             min(row.n_seeds_a, row.n_seeds_b))
            rows.append({"case": case, "n_seeds": n_seeds, "margin": margin, "answer": answer,
                         "verdict": verdict, "pair": f"{row.condition_a}~{row.condition_b}",
                         "ratio": row.ratio, "ratio_low": row.ratio_low, "ratio_high": row.ratio_high})
    return rows


def rates(judged: pd.DataFrame) -> pd.DataFrame:
    def summary(group):
        equivalent, distinct = group[group["answer"] == EQUIVALENT], group[group["answer"] == DISTINCT]
        return pd.Series({
            "false_distinct": (equivalent["verdict"] == DISTINCT).mean() if len(equivalent) else np.nan,
            "false_equivalent": (distinct["verdict"] == EQUIVALENT).mean() if len(distinct) else np.nan,
            "undetermined": (group["verdict"] == UNDETERMINED).mean(),
            "n_equivalent_pairs": len(equivalent), "n_distinct_pairs": len(distinct)})
    return judged.groupby(["margin", "n_seeds"]).apply(summary, include_groups=False).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 and 10 seeds only, 20 at most")
    parser.add_argument("--margins", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0])
    parser.add_argument("--interval-method", default="BCa", choices=["BCa", "percentile"])
    parser.add_argument("--save", help="write every judged pair to this CSV")
    arguments = parser.parse_args()
    seed_counts = (6, 10) if arguments.quick else SEED_COUNTS
    max_seeds = 20 if arguments.quick else max(SEED_COUNTS)
    started = time.perf_counter()
    judged = []
    for case, build in (("conjugate maps / spectral families", system_spectra),
                        ("equal centres, unequal spreads", spread_spectra),
                        ("validation (OMD, OGD, bisection)", validation_spectra)):
        spectra, answers = build(max_seeds)
        for n_seeds in seed_counts:
            for block in blocks(spectra, n_seeds, max_seeds):
                judged += judged_pairs(block, answers, arguments.margins, case, n_seeds,
                                       arguments.interval_method)
    judged = pd.DataFrame(judged)
    if arguments.save:
        judged.to_csv(arguments.save, index=False)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(f"calibration of the verdicts, {arguments.interval_method} intervals "
              f"({time.perf_counter() - started:.0f} s); "
              "rates over all pairs with a known answer, per margin and number of seeds")
        print(rates(judged).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("\nper case at the default margin's neighbours (counts of verdicts):")
        counts = judged.groupby(["margin", "case", "answer", "n_seeds", "verdict"]).size()
        print(counts.unstack("verdict", fill_value=0).to_string())


if __name__ == "__main__":
    main()
