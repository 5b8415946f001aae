"""Wall time of the verdicts for 75, 2,000 and 10,000 units, with the bootstrap's share.

    python tests/benchmarks/bench_verdicts.py [--quick] [--sizes 75 2000 10000]

Units are synthetic spectra of 10 eigenvalues, 25 seeds per condition (3, 80 and 400
conditions), all seeds shared (one paired group, as in a sweep). Each size runs the whole
verdict path of :func:`analysis.conjugacy.analyse_conjugacy` with the defaults; the distance
of the tables is the verdicts' own 2-Wasserstein (``--metric``), so one matrix serves both.
Printed per size: the total, the distance stage (and of it the pairwise matrices), the
bootstrap (effects and intervals) and the rest (permutation evidence, resolution, classes),
each as a share of the total; the baseline of each share is the total measured in the same
run. Targets on 2 cores: 75 units under 5 s, 2,000 under 2 minutes, 10,000 under 3 minutes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analysis.conjugacy import analyse_conjugacy  # noqa: E402
from analysis.synthetic import synthetic_spectra  # noqa: E402

TARGETS_S = {75: 5.0, 2000: 120.0, 10000: 180.0}


def spectra_for(n_units: int, n_seeds: int = 25):
    n_conditions = n_units // n_seeds
    shifts = {f"c{index:04d}": 0.002 * index for index in range(n_conditions)}
    return synthetic_spectra(shifts, n_seeds=n_seeds, noise=0.01)


def cumulative_seconds(profile: cProfile.Profile, function_name: str) -> float:
    stats = pstats.Stats(profile)
    return sum(entry[3] for key, entry in stats.stats.items() if key[2] == function_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="75 units only")
    parser.add_argument("--sizes", type=int, nargs="+", default=[75, 2000, 10000])
    parser.add_argument("--metric", default="wasserstein-2")
    arguments = parser.parse_args()
    sizes = [75] if arguments.quick else arguments.sizes
    for n_units in sizes:
        spectra = spectra_for(n_units)
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        analysis = analyse_conjugacy(spectra, metric=arguments.metric)
        profile.disable()
        total = time.perf_counter() - started
        distances = cumulative_seconds(profile, "clean_unit_distance_matrix")
        matrices = cumulative_seconds(profile, "pairwise_distance_matrix")
        bootstrap = cumulative_seconds(profile, "pair_effects")
        rest = total - distances - bootstrap
        target = TARGETS_S.get(n_units)
        verdicts = analysis.pairwise["verdict"].value_counts().to_dict()
        print(f"{n_units:>6} units ({n_units // 25} conditions x 25 seeds, "
              f"{len(analysis.pairwise):,} pairs): {total:7.1f} s"
              + (f"  (target <= {target:.0f} s: {'met' if total <= target else 'missed'})" if target else ""))
        print(f"        distances {distances:6.1f} s ({distances / total:5.1%}; the matrices "
              f"themselves {matrices:.1f} s), bootstrap "
              f"{bootstrap:6.1f} s ({bootstrap / total:5.1%}), rest {rest:6.1f} s "
              f"({rest / total:5.1%}); verdicts {verdicts}")


if __name__ == "__main__":
    main()
