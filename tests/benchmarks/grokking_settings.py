"""Which of the authors' settings moves the grokking spectra: one setting switched at a time.

    python tests/benchmarks/grokking_settings.py [--seeds 4] [--leave-one-out] [--threads 1]

Runs the grokking sweep's ``--quick`` preset (p = 31, 5 replicas; both conditions, the
weight-decay run and the constant-norm control) with ``study.trial.run_trial`` in this
process (no Ray), once per row:

* ``ours``: the four settings as this project had them before following the authors'
  scripts (``transformer_init`` torch_default, ``pca_center`` True, ``record_initial``
  False, ``dtype`` float32);
* ``ours + <setting>=<value>``: one setting switched to the authors' value;
* ``authors'``: all four the authors' (the preset as it is);
* with ``--leave-one-out``, ``authors' but <setting>=<value>``: all but one the authors'.

Every row uses the same seeds. Columns: the mean distance between the two conditions (all
seed pairs, as the analysis's ``mean_between``), the mean seed-to-seed distance within each
condition, their ratio, the mean same-seed distance to the reference row (``ours`` for the
``+`` rows, ``authors'`` for the ``but`` rows: how far the one switch moves a seed's spectrum,
to read against the seed-to-seed distance), and the mean wall time of a trial.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.distances import pairwise_distance_matrix, spectral_distance
from study.trial import run_trial
from sweeps.definitions import get_sweep

OURS = {"transformer_init": "torch_default", "pca_center": True, "record_initial": False,
        "dtype": "float32"}
AUTHORS = {"transformer_init": "scaled_normal", "pca_center": False, "record_initial": True,
           "dtype": "float64"}
CONDITIONS = ("grokking", "control")


def rows(leave_one_out: bool) -> list[tuple[str, dict, str | None]]:
    """(label, the four settings, label of the reference row or None)."""
    table = [("ours", dict(OURS), None)]
    table += [(f"ours + {key}={AUTHORS[key]}", {**OURS, key: AUTHORS[key]}, "ours") for key in OURS]
    table.append(("authors'", dict(AUTHORS), None))
    if leave_one_out:
        table += [(f"authors' but {key}={OURS[key]}", {**AUTHORS, key: OURS[key]}, "authors'")
                  for key in OURS]
    return table


def condition_configs(threads: int) -> dict[str, dict]:
    spec = get_sweep("grokking", quick=True)
    grokking, control = spec.points  # weight decay 1.0; the constant-norm control
    base = {**spec.base, "n_threads": threads}
    return {"grokking": {**base, **grokking}, "control": {**base, **control}}


class Runner:
    """Runs and caches trials: a (settings, condition, seed) appearing in two rows runs once."""

    def __init__(self, configs: dict[str, dict]):
        self.configs, self.cache = configs, {}

    def spectrum(self, settings: dict, condition: str, seed: int) -> tuple[np.ndarray, float]:
        key = (tuple(sorted(settings.items())), condition, seed)
        if key not in self.cache:
            started = time.perf_counter()
            result = run_trial({**self.configs[condition], **settings, "seed": seed})
            if result.status != "ok":
                raise RuntimeError(f"{condition} seed {seed} {settings}: {result.message}")
            self.cache[key] = (result.windows[0].eigenvalues, time.perf_counter() - started)
        return self.cache[key]


def within(spectra: list[np.ndarray]) -> float:
    distances = pairwise_distance_matrix(spectra, n_jobs=1)
    return float(distances[np.triu_indices(len(spectra), k=1)].mean())


def measure(runner: Runner, settings: dict, seeds: list[int]) -> dict:
    spectra = {condition: [runner.spectrum(settings, condition, seed)[0] for seed in seeds]
               for condition in CONDITIONS}
    times = [runner.spectrum(settings, condition, seed)[1] for condition in CONDITIONS for seed in seeds]
    between = np.mean([spectral_distance(a, b) for a in spectra["grokking"] for b in spectra["control"]])
    within_grokking, within_control = within(spectra["grokking"]), within(spectra["control"])
    return {"between": float(between), "within_grokking": within_grokking,
            "within_control": within_control,
            "ratio": float(between / np.mean([within_grokking, within_control])),
            "wall_s": float(np.mean(times)), "spectra": spectra}


def same_seed_shift(row: dict, reference: dict) -> float:
    return float(np.mean([spectral_distance(a, b) for condition in CONDITIONS
                          for a, b in zip(row["spectra"][condition], reference["spectra"][condition])]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0 .. n-1 (default 4)")
    parser.add_argument("--leave-one-out", action="store_true", help="also the authors' minus one")
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads per trial")
    arguments = parser.parse_args(argv)
    runner, seeds, results = Runner(condition_configs(arguments.threads)), list(range(arguments.seeds)), {}
    print(f"grokking quick preset, seeds {seeds}; distances: mean matched eigenvalue distance")
    print("| setup | grokking vs control | seed-to-seed grokking / control | ratio "
          "| same-seed shift from reference | s per trial |")
    print("|---|---|---|---|---|---|")
    for label, settings, reference in rows(arguments.leave_one_out):
        row = results[label] = measure(runner, settings, seeds)
        shift = f"{same_seed_shift(row, results[reference]):.4f}" if reference else "—"
        print(f"| {label} | {row['between']:.4f} | {row['within_grokking']:.4f} / "
              f"{row['within_control']:.4f} | {row['ratio']:.2f} | {shift} | {row['wall_s']:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
