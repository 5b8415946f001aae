"""Pairwise spectral distances: chunked exact assignment vs a plain SciPy loop, same run.

    python tests/benchmarks/bench_distances.py            # full: 2,000 spectra (~2 million pairs)
    python tests/benchmarks/bench_distances.py --quick    # 400 spectra

Spectra look like training spectra: 10 eigenvalues near the unit circle, mostly real, with
conjugate pairs. The baseline is a Python loop over ``scipy.optimize.linear_sum_assignment`` on
a random sample of pairs (cost matrix built per pair); it is timed in the same run, and the
chunked method (cost matrices built per chunk in numpy, the loop only calls the solver, worker
processes) is checked against it on that sample. Prints pairs per second for both, in one
process and for the whole matrix, the speed-ups, and the projected time for 2,000 spectra.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from analysis.distances import matched_distances, pairwise_distance_matrix

TARGET_SPECTRA = 2000  # the size: 1,999,000 pairs
TARGET_SECONDS = 20.0


def training_like_spectra(n_spectra: int, n_eigenvalues: int, rng) -> np.ndarray:
    """``(n_spectra, n_eigenvalues)`` complex: real modes in [0.9, 1.0], a few conjugate pairs."""
    n_pairs = n_eigenvalues // 5  # two conjugate pairs out of ten
    n_real = n_eigenvalues - 2 * n_pairs
    real = 1.0 - rng.gamma(2.0, 0.01, size=(n_spectra, n_real))
    modulus = 1.0 - rng.gamma(2.0, 0.01, size=(n_spectra, n_pairs))
    angle = rng.uniform(0.01, 0.3, size=(n_spectra, n_pairs))
    pairs = modulus * np.exp(1j * angle)
    return np.concatenate([real.astype(complex), pairs, pairs.conj()], axis=1)


def scipy_loop(spectra, first, second) -> np.ndarray:
    """The baseline: one cost matrix and one linear_sum_assignment call per pair."""
    values = np.empty(first.size)
    for position, (i, j) in enumerate(zip(first, second)):
        cost = np.abs(spectra[i][:, None] - spectra[j][None, :])
        rows, cols = linear_sum_assignment(cost)
        values[position] = cost[rows, cols].mean()
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 spectra instead of 2,000")
    parser.add_argument("--n-eigenvalues", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes for the whole matrix")
    parser.add_argument("--baseline-pairs", type=int, default=20_000, help="pairs in the SciPy sample")
    arguments = parser.parse_args()
    n_spectra = 400 if arguments.quick else TARGET_SPECTRA
    rng = np.random.default_rng(0)
    spectra = training_like_spectra(n_spectra, arguments.n_eigenvalues, rng)
    n_pairs = n_spectra * (n_spectra - 1) // 2
    target_pairs = TARGET_SPECTRA * (TARGET_SPECTRA - 1) // 2

    first, second = np.triu_indices(n_spectra, k=1)
    sample = rng.choice(n_pairs, size=min(arguments.baseline_pairs, n_pairs), replace=False)
    start = time.perf_counter()
    baseline = scipy_loop(spectra, first[sample], second[sample])
    baseline_rate = sample.size / (time.perf_counter() - start)

    start = time.perf_counter()
    single_process = matched_distances(spectra[first[sample]], spectra[second[sample]])
    single_rate = sample.size / (time.perf_counter() - start)

    start = time.perf_counter()
    matrix = pairwise_distance_matrix(spectra, n_jobs=arguments.n_jobs)
    matrix_seconds = time.perf_counter() - start
    matrix_rate = n_pairs / matrix_seconds
    error = max(np.abs(matrix[first[sample], second[sample]] - baseline).max(),
                np.abs(single_process - baseline).max())

    print(f"spectra: {n_spectra} x {arguments.n_eigenvalues} eigenvalues, {n_pairs:,} pairs, "
          f"n_jobs={arguments.n_jobs}")
    print(f"scipy linear_sum_assignment loop: {baseline_rate:12,.0f} pairs/s "
          f"(sample of {sample.size:,} pairs)")
    print(f"chunked, one process:             {single_rate:12,.0f} pairs/s (same sample)")
    print(f"chunked, {arguments.n_jobs} processes, whole matrix: {matrix_rate:12,.0f} pairs/s "
          f"({matrix_seconds:.2f} s for all {n_pairs:,} pairs)")
    print(f"speed-up over the scipy loop: {single_rate / baseline_rate:.1f}x in one process, "
          f"{matrix_rate / baseline_rate:.1f}x for the whole matrix; max |difference| on the "
          f"sample: {error:.2e}")
    print(f"projected for {TARGET_SPECTRA:,} spectra ({target_pairs:,} pairs): chunked "
          f"{target_pairs / matrix_rate:.1f} s, scipy loop {target_pairs / baseline_rate:.1f} s "
          f"(target <= {TARGET_SECONDS:.0f} s)")
    if not arguments.quick:
        verdict = "meets" if matrix_seconds <= TARGET_SECONDS else "MISSES"
        print(f"measured full run: {matrix_seconds:.1f} s, {verdict} the target")


if __name__ == "__main__":
    main()
