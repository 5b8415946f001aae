"""Benchmark of the Koopman core (issue 2, performance targets (a), (b), (c)).

Run from the repository root:

    python tests/benchmarks/bench_koopman.py            # full: the paper-sized problems (~3-5 min)
    python tests/benchmarks/bench_koopman.py --quick    # seconds: smaller problems, same code

Every figure is printed next to a baseline measured in the same run (CPUs are shared, so
absolute times are provisional):

(a) per-step cost of ``StreamingKoopman.partial_fit`` with a (10, 400) float32 torch snapshot
    (10 replicas of the h = 40 FCN output layer) against one SGD step of the paper's FCN
    (784 -> 40 -> 10, no biases, ReLU, log-softmax + NLL, batch 60, torch, CPU), interleaved.
(b) peak memory of the estimator fed a sketched 1e6- and 1e7-parameter stream: peak RSS of a
    subprocess that generates the stream and feeds it (then fits the last window), minus the
    peak RSS of the same subprocess generating the stream without the estimator.
(c) the paper's FCN spectrum (h = 40: 10 replicas x 1,000 steps x 400 weights from actually
    training the nets on synthetic data, delays 8, rank 10; --quick: 10 x 300 x 200): the fast
    block-Krylov solver against the full-SVD recipe, each in a fresh subprocess (time; peak RSS
    above the loaded data after warming BLAS; tracemalloc peak of numpy arrays), and the
    largest eigenvalue difference (Hungarian-matched).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import trained_fcn_output_weights  # noqa: E402  (needs ROOT on the path)


def feed_cost(n_steps: int) -> dict:
    """(a): mean per-step times over interleaved blocks of 50 SGD steps and 50 feeds."""
    import torch

    from study.koopman.streaming import BLOCK_STEPS, StreamingKoopman

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 40, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(40, 10, bias=False), torch.nn.LogSoftmax(dim=1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(60, 784), torch.randint(0, 10, (60,))
    snapshot = torch.randn(10, 400)  # 10 replicas x the h = 40 output layer, float32

    def sgd_step():
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(model(inputs), labels).backward()
        optimizer.step()

    for _ in range(50):  # warm-up: allocator, autograd graph caches
        sgd_step()
    estimator = StreamingKoopman(n_replicas=10, delays=8, rank=10)
    sgd_time = feed_time = 0.0
    block = 50
    for _ in range(n_steps // block):
        start = time.perf_counter()
        for _ in range(block):
            sgd_step()
        middle = time.perf_counter()
        for _ in range(block):
            estimator.partial_fit(snapshot)  # copies the values: reuse does not flatter it
        sgd_time += middle - start
        feed_time += time.perf_counter() - middle
    steps = (n_steps // block) * block
    # a second stream (its blocks are fresh memory again: freed blocks go back to the OS)
    refeed = StreamingKoopman(n_replicas=10, delays=8, rank=10)
    start = time.perf_counter()
    for _ in range(steps):
        refeed.partial_fit(snapshot)
    second = time.perf_counter() - start
    # diagnosis only (touches internals): rewind the counter so every feed lands in the last,
    # already-written block — the same work without first-touch page faults
    refeed.n_steps_seen_ = (len(refeed._blocks) - 1) * BLOCK_STEPS
    start = time.perf_counter()
    for _ in range(64):  # both modes write > 64 steps into their last block
        refeed.partial_fit(snapshot)
    touched = (time.perf_counter() - start) / 64
    return {"steps": steps, "sgd_us": 1e6 * sgd_time / steps, "feed_us": 1e6 * feed_time / steps,
            "feed_second_stream_us": 1e6 * second / steps, "feed_touched_us": 1e6 * touched}


STREAM_CHILD = """
import resource, sys, tracemalloc, torch
sys.path.insert(0, {root!r})
from study.koopman.streaming import StreamingKoopman
n_parameters, n_steps, sketch_dimension, with_estimator = {arguments}
generator = torch.Generator().manual_seed(0)
weights = torch.randn(1, n_parameters, generator=generator)
drift = torch.randn(1, n_parameters, generator=generator) * 1e-3
noise = torch.empty(1, n_parameters)
estimator = (StreamingKoopman(n_replicas=1, delays=8, rank=10, sketch_dimension=sketch_dimension)
             if with_estimator else None)
# tracemalloc sees numpy/Python allocations (the estimator's buffer, hashing workspace and fit),
# not the torch tensors that stand in for the model: a direct figure for the estimator alone
tracemalloc.start()
for step in range(n_steps):
    # a drifting random walk, like SGD weights: full-rank increments, so the fit is a real one
    torch.randn(1, n_parameters, generator=generator, out=noise)
    weights.add_(drift).add_(noise, alpha=1e-3)
    if estimator is not None:
        estimator.partial_fit(weights)
if estimator is not None:
    estimator.fit_window(max(0, n_steps - 500), n_steps)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, tracemalloc.get_traced_memory()[1])
"""


def stream_peaks(n_parameters: int, n_steps: int, sketch_dimension: int,
                 with_estimator: bool) -> tuple[int, int]:
    """(peak RSS KiB, tracemalloc peak bytes) of a child generating (and feeding) the stream."""
    code = STREAM_CHILD.format(root=str(ROOT), arguments=(
        n_parameters, n_steps, sketch_dimension, with_estimator))
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    rss, traced = output.stdout.strip().splitlines()[-1].split()
    return int(rss), int(traced)


SOLVE_CHILD = """
import json, resource, sys, time, tracemalloc
import numpy as np
sys.path.insert(0, {root!r})
from study.koopman import fit_koopman
data = np.load({path!r})
# warm BLAS/LAPACK first: OpenBLAS maps its thread buffers (~hundreds of MiB of RSS) on the
# first call; they belong to the process, not to either solver
warm = np.random.default_rng(0).normal(size=(1000, 1000))
np.linalg.svd(warm[:300, :200], full_matrices=False), warm @ warm
del warm
def rss_kib():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4
before = rss_kib()
tracemalloc.start()  # numpy arrays; not LAPACK's own workspace (malloc'd inside numpy.linalg)
start = time.perf_counter()
fit = fit_koopman(data, delays={delays}, rank={rank}, solver={solver!r})
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_above_data_mib": (peak - before) / 1024,
                  "arrays_mib": traced / 2**20,
                  "solver": fit.solver, "real": fit.eigenvalues.real.tolist(),
                  "imag": fit.eigenvalues.imag.tolist()}}))
"""


def solve_in_child(path: str, solver: str, delays: int, rank: int) -> dict:
    code = SOLVE_CHILD.format(root=str(ROOT), path=path, delays=delays, rank=rank, solver=solver)
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    result = json.loads(output.stdout.strip().splitlines()[-1])
    result["eigenvalues"] = np.array(result.pop("real")) + 1j * np.array(result.pop("imag"))
    return result


def max_matched_difference(first: np.ndarray, second: np.ndarray) -> float:
    from scipy.optimize import linear_sum_assignment

    cost = np.abs(first[:, None] - second[None, :])
    rows, columns = linear_sum_assignment(cost)
    return float(cost[rows, columns].max())


def report_feed_cost(quick: bool) -> None:
    print("(a) feeding StreamingKoopman vs one SGD step of the FCN 784-40-10, batch 60 "
          "(torch, 1 thread)")
    feed = feed_cost(500 if quick else 2000)
    print(f"    one SGD step (one net):            {feed['sgd_us']:8.1f} us")
    print(f"    partial_fit (10, 400) float32:      {feed['feed_us']:8.1f} us  "
          f"= {100 * feed['feed_us'] / feed['sgd_us']:.1f}% of an SGD step "
          f"({100 * feed['feed_us'] / (10 * feed['sgd_us']):.2f}% of a 10-replica step); "
          f"{feed['steps']} steps incl. buffer growth")
    print(f"    partial_fit, second stream:         {feed['feed_second_stream_us']:8.1f} us  "
          f"= {100 * feed['feed_second_stream_us'] / feed['sgd_us']:.1f}%")
    print(f"    partial_fit into written memory:    {feed['feed_touched_us']:8.1f} us  "
          f"= {100 * feed['feed_touched_us'] / feed['sgd_us']:.1f}% (the rest is first-touch "
          f"page faults of the history buffer)")


def report_stream_memory(quick: bool) -> None:
    n_steps, sketch_dimension = (100, 256) if quick else (1000, 256)
    print(f"(b) estimator peak memory, sketched stream (s = {sketch_dimension}, {n_steps} steps, "
          f"fit of the last window with delays 8, rank 10)")
    estimator_mib = {}
    for n_parameters in (10**6, 10**7):
        with_estimator, traced = stream_peaks(n_parameters, n_steps, sketch_dimension, True)
        without, _ = stream_peaks(n_parameters, n_steps, sketch_dimension, False)
        estimator_mib[n_parameters] = traced / 2**20
        print(f"    P = {n_parameters:>10,}: peak RSS {with_estimator / 1024:7.1f} MiB with, "
              f"{without / 1024:7.1f} MiB without (difference "
              f"{(with_estimator - without) / 1024:6.1f} MiB); estimator's own allocations "
              f"(tracemalloc) {estimator_mib[n_parameters]:6.1f} MiB")
    ratio = estimator_mib[10**7] / max(estimator_mib[10**6], 1e-9)
    print(f"    estimator memory ratio 1e7 / 1e6: {ratio:.2f} (P grew 10x); the stream data "
          f"itself is {n_steps * sketch_dimension * 8 / 2**20:.1f} MiB")


def report_spectrum(quick: bool) -> None:
    n_replicas, n_steps, width = (10, 300, 20) if quick else (10, 1000, 40)
    delays, rank = 32 * 10 // width // (2 if quick else 1), 10
    print(f"(c) spectrum: {n_replicas} replicas x {n_steps} steps x {10 * width} weights, "
          f"delays {delays}, rank {rank}")
    start = time.perf_counter()
    data = trained_fcn_output_weights(n_replicas, n_steps, width)
    embedded, n_pairs = (delays + 1) * 10 * width, n_replicas * (n_steps - delays - 1)
    print(f"    trained the nets in {time.perf_counter() - start:.1f} s; Hankel X is "
          f"{embedded:,} x {n_pairs:,} ({embedded * n_pairs * 8 / 2**20:.0f} MiB if formed)")
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "trajectories.npy")
        np.save(path, data)
        fast = solve_in_child(path, "gram", delays, rank)
        reference = solve_in_child(path, "svd", delays, rank)
    print("    peak RSS above the loaded data includes OpenBLAS thread buffers (varies by run);"
          " numpy arrays = tracemalloc peak")
    print(f"    full-SVD recipe:       {reference['seconds']:8.3f} s, "
          f"peak RSS {reference['peak_above_data_mib']:7.1f} MiB, numpy arrays "
          f"{reference['arrays_mib']:7.1f} MiB (+ LAPACK workspace, not traced)")
    print(f"    block-Krylov (fast):   {fast['seconds']:8.3f} s, "
          f"peak RSS {fast['peak_above_data_mib']:7.1f} MiB, numpy arrays "
          f"{fast['arrays_mib']:7.1f} MiB (solver used: {fast['solver']})")
    print(f"    speed-up {reference['seconds'] / fast['seconds']:.1f}x, memory ratio "
          f"{fast['peak_above_data_mib'] / max(reference['peak_above_data_mib'], 1e-9):.3f}, "
          f"max |eigenvalue difference| "
          f"{max_matched_difference(fast['eigenvalues'], reference['eigenvalues']):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems, seconds")
    quick = parser.parse_args().quick
    import torch

    torch.set_num_threads(1)  # the SGD baseline at its fastest on shared cores: a fair ratio
    report_feed_cost(quick)
    report_stream_memory(quick)
    report_spectrum(quick)


if __name__ == "__main__":
    main()
