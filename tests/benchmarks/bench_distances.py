"""Distance matrix: the batched solver against the SciPy reference path, timed in the same run.

    python tests/benchmarks/bench_distances.py            # 1,000 spectra (499,500 pairs)
    python tests/benchmarks/bench_distances.py --quick    # 300 spectra
    python tests/benchmarks/bench_distances.py --metric wasserstein-1

Spectra look like training spectra: 10 eigenvalues near the unit circle, mostly real, with
conjugate pairs. The baseline is :func:`analysis.distances.reference_distance_matrix` (one SciPy
``linear_sum_assignment`` call per pair, one process); the batched solver
(:func:`analysis.distances.pairwise_distance_matrix`) runs on 1 and on ``--n-jobs`` threads.
Both compute the whole matrix; printed: the first call's cost (compiling, or loading the
compiled code from numba's cache), each time, its ratio to the reference measured in this run,
the largest difference between the matrices, and the load average, since on a shared machine
only the ratios are comparable between runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analysis.distances import pairwise_distance_matrix, reference_distance_matrix  # noqa: E402


def training_like_spectra(n_spectra: int, n_eigenvalues: int, rng) -> np.ndarray:
    """``(n_spectra, n_eigenvalues)`` complex: real modes in [0.9, 1.0], a few conjugate pairs."""
    n_pairs = n_eigenvalues // 5  # two conjugate pairs out of ten
    n_real = n_eigenvalues - 2 * n_pairs
    real = 1.0 - rng.gamma(2.0, 0.01, size=(n_spectra, n_real))
    modulus = 1.0 - rng.gamma(2.0, 0.01, size=(n_spectra, n_pairs))
    angle = rng.uniform(0.01, 0.3, size=(n_spectra, n_pairs))
    pairs = modulus * np.exp(1j * angle)
    return np.concatenate([real.astype(complex), pairs, pairs.conj()], axis=1)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 spectra instead of 1,000")
    parser.add_argument("--n-spectra", type=int, default=1000)
    parser.add_argument("--n-eigenvalues", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=2, help="threads of the batched solver")
    parser.add_argument("--metric", default="wasserstein-2")
    arguments = parser.parse_args()
    n_spectra = 300 if arguments.quick else arguments.n_spectra
    spectra = list(training_like_spectra(n_spectra, arguments.n_eigenvalues,
                                         np.random.default_rng(0)))
    n_pairs = n_spectra * (n_spectra - 1) // 2
    load_before = os.getloadavg()[0]

    _, first_call = timed(pairwise_distance_matrix, spectra[:2], metric=arguments.metric)
    reference, reference_seconds = timed(reference_distance_matrix, spectra, metric=arguments.metric)
    one_thread, one_seconds = timed(pairwise_distance_matrix, spectra, metric=arguments.metric,
                                    n_jobs=1)
    threads, threads_seconds = timed(pairwise_distance_matrix, spectra, metric=arguments.metric,
                                     n_jobs=arguments.n_jobs)
    difference = max(np.abs(one_thread - reference).max(), np.abs(threads - reference).max())

    print(f"spectra: {n_spectra:,} x {arguments.n_eigenvalues} eigenvalues, {n_pairs:,} pairs, "
          f"{arguments.metric}; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after, {os.cpu_count()} cores")
    print(f"first call (compile or load from cache): {first_call:6.2f} s")
    print(f"scipy reference, one process:  {reference_seconds:7.2f} s "
          f"({reference_seconds / n_pairs * 1e6:.2f} us/pair)")
    print(f"batched solver, 1 thread:      {one_seconds:7.2f} s "
          f"({one_seconds / n_pairs * 1e6:.2f} us/pair), ratio to reference "
          f"{one_seconds / reference_seconds:.3f}")
    print(f"batched solver, {arguments.n_jobs} threads:     {threads_seconds:7.2f} s "
          f"({threads_seconds / n_pairs * 1e6:.2f} us/pair), ratio to reference "
          f"{threads_seconds / reference_seconds:.3f}")
    print(f"max |batched - reference|: {difference:.2e}")


if __name__ == "__main__":
    main()
