"""Overhead of the Ray Tune launcher against a plain loop, measured in one run.

    python tests/benchmarks/bench_sweeps.py            # fcn_width --quick (3 widths x its seeds)
    python tests/benchmarks/bench_sweeps.py --quick    # its first seed only: 3 trials (smoke)
    python tests/benchmarks/bench_sweeps.py --naive    # also one Tune trial per setup

Baseline: the same trials run one after another through ``study.trial.run_trial`` in this one
Python process, free to use every core (torch's default threads). Launcher: ``run_sweep`` on a
fresh local Ray with this machine's cores, from the call to the last record written (Ray
start-up, worker start-up and torch import in the workers included). Ratio = launcher / plain.
Target: <= 1.15.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from study.trial import run_trial  # noqa: E402
from sweeps.definitions import get_sweep  # noqa: E402
from sweeps.launcher import LaunchOptions, run_sweep, shutdown_ray  # noqa: E402
from sweeps.spec import validate  # noqa: E402


def plain_loop(setups) -> float:
    started = time.perf_counter()
    for setup in setups:
        result = run_trial(dict(setup.config))
        assert result.status == "ok", result.message
    return time.perf_counter() - started


def through_launcher(spec, options: LaunchOptions) -> float:
    with tempfile.TemporaryDirectory() as out_dir:
        started = time.perf_counter()
        trials, _ = run_sweep(spec, out_dir, options)
        elapsed = time.perf_counter() - started
        shutdown_ray()
    assert set(trials["status"]) == {"ok"} and len(trials) == len(validate(spec))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="first seed only (3 trials)")
    parser.add_argument("--naive", action="store_true", help="also time one Tune trial per setup")
    args = parser.parse_args(argv)
    spec = get_sweep("fcn_width", quick=True)
    if args.quick:
        spec = dataclasses.replace(spec, seeds=spec.seeds[:1])
    setups = validate(spec)
    config = setups[0].config
    print(f"fcn_width --quick{' (first seed)' if args.quick else ''}: {len(setups)} trials of "
          f"{config['n_replicas']} replicas x {config['n_steps']} steps on {config['dataset']}")
    import torch

    threads = torch.get_num_threads()
    plain = plain_loop(setups)
    print(f"plain loop, one process, {threads} torch threads: {plain:8.1f} s")
    launcher = through_launcher(spec, LaunchOptions())
    print(f"launcher (bundled Tune trials):        {launcher:8.1f} s   ratio {launcher / plain:5.2f}  (target <= 1.15)")
    # A second reference, for honesty: the workers run 1 thread each (Ray sets OMP_NUM_THREADS
    # to the trial's CPUs), and for nets this small one thread is often faster than two.
    torch.set_num_threads(1)
    single = plain_loop(setups)
    torch.set_num_threads(threads)
    print(f"plain loop, one process, 1 torch thread:  {single:8.1f} s   "
          f"(launcher / this: {launcher / single:5.2f}; the launcher runs one trial per core at once)")
    if args.naive:
        naive = through_launcher(spec, LaunchOptions(setups_per_task=1))
        print(f"launcher, one Tune trial each:  {naive:8.1f} s   ratio {naive / plain:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
