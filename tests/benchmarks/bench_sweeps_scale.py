"""Per-trial cost of the launcher at scale: thousands of cheap trials, measured in one run.

    python tests/benchmarks/bench_sweeps_scale.py                 # 2,000 and 10,000 trials
    python tests/benchmarks/bench_sweeps_scale.py --sizes 200     # a quick look

The trials: the validation problem (OMD and OGD on sum(tan x), the omd_ogd sweep's settings),
each method x N/2 seeds: milliseconds each. Baseline: the same trials run one after another
through ``study.trial.run_trial`` in one plain Python process, with the libraries' default
threads and with one BLAS thread (as Ray gives each worker); the faster is the baseline. Launcher: ``run_sweep`` on a
fresh local Ray with 2 CPUs (two workers), from the call to the returned tables (Ray's start-up,
the workers' start-up and the final tables included). Each side runs in its own subprocess, so
neither inherits the other's memory or threads.

Printed per size: launcher / plain loop (target <= 1.0 on 2 cores); the driver's CPU time per
trial over the first and the last 10% of trials, and its wall time per trial likewise (target:
last within 1.2x of first); Tune's folder size at its largest during the run and at the end
(target < 100 MB at 10,000 trials); the driver's peak resident memory, and its private memory
(target: flat) and the object-store pages it has touched at 10% and 90% of the trials.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def scale_spec(n_trials: int):
    from sweeps.definitions import get_sweep
    from sweeps.spec import SweepSpec

    base = get_sweep("omd_ogd").base
    return SweepSpec(name=f"scale{n_trials}", base=dict(base), grid={"validation_method": ["omd", "ogd"]},
                     seeds=tuple(range(n_trials // 2)))


def folder_bytes(folder: Path) -> int:
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(directory, name)).st_size
            except OSError:
                pass  # pruned while we looked
    return total


def measure_plain(n_trials: int, threads: int | None = None) -> dict:
    from threadpoolctl import threadpool_limits

    from study.trial import run_trial
    from sweeps.spec import validate

    setups = validate(scale_spec(n_trials))
    with threadpool_limits(limits=threads):  # None: the libraries' defaults (every core)
        started = time.perf_counter()
        for setup in setups:
            assert run_trial(dict(setup.config)).status == "ok"
    return {"seconds": time.perf_counter() - started}


def _resident_bytes() -> dict[str, int]:
    """Resident memory by kind: RssAnon is the driver's own (private) memory; RssShmem is the
    pages of Ray's shared object store that the driver has touched reading results (bounded by
    ``object_store_memory``, and counted once machine-wide, not per process)."""
    resident = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "RssAnon:", "RssShmem:")):
                key, value = line.split(":")
                resident[key] = int(value.split()[0]) * 1024
    return resident


def measure_launcher(n_trials: int) -> dict:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only, as the CLI does
    from ray import tune

    from sweeps.launcher import LaunchOptions, run_sweep, shutdown_ray

    class Probe(tune.Callback):
        """(trials recorded, wall, driver CPU, resident memory by kind) after every batch of records."""

        def __init__(self):
            self.samples: list[tuple[int, float, float, dict]] = []
            self.count = 0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result.get("event") == "trials_done":
                self.count += len(result["trials"])
                self.samples.append((self.count, time.perf_counter(), time.process_time(), _resident_bytes()))

    options = LaunchOptions(num_cpus=2)
    probe, tune_peak, stop = Probe(), [0], threading.Event()
    with tempfile.TemporaryDirectory() as out_dir:
        def watch_tune_folder():
            while not stop.wait(2.0):
                tune_peak[0] = max(tune_peak[0], folder_bytes(Path(out_dir) / "tune"))

        watcher = threading.Thread(target=watch_tune_folder, daemon=True)
        watcher.start()
        started = time.perf_counter()
        trials, _ = run_sweep(scale_spec(n_trials), out_dir, options, callbacks=[probe])
        seconds = time.perf_counter() - started
        stop.set()
        tune_end = folder_bytes(Path(out_dir) / "tune")
        shutdown_ray()
    assert len(trials) == n_trials and set(trials["status"]) == {"ok"} and trials["trial_id"].is_unique
    return {"seconds": seconds, "samples": probe.samples, "tune_peak": max(tune_peak[0], tune_end),
            "tune_end": tune_end, "object_store_bytes": options.object_store_bytes, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _between(samples, low: float, high: float):
    """Driver CPU and wall seconds per trial between the samples nearest the fractions given."""
    total = samples[-1][0]
    first = next(s for s in samples if s[0] >= low * total) if low > 0 else samples[0]
    last = next(s for s in samples if s[0] >= high * total)
    trials = max(last[0] - first[0], 1)
    return (last[2] - first[2]) / trials, (last[1] - first[1]) / trials


def run_part(part: str, n_trials: int) -> dict:
    command = [sys.executable, __file__, "--part", part, "--sizes", str(n_trials)]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{part} with {n_trials} trials failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def report(n_trials: int) -> None:
    plain, launcher = run_part("plain", n_trials), run_part("launcher", n_trials)
    # Ray gives each worker one BLAS thread; on a busy 2-core machine one thread is often faster
    # than two, so the plain loop is also timed that way, and the faster of the two is the baseline.
    single = run_part("plain-one-thread", n_trials)
    samples = launcher["samples"]
    cpu_first, wall_first = _between(samples, 0.0, 0.1)
    cpu_last, wall_last = _between(samples, 0.9, 1.0)
    late = next(s for s in samples if s[0] >= 0.9 * samples[-1][0])[3]
    early = next(s for s in samples if s[0] >= 0.1 * samples[-1][0])[3]
    print(f"{n_trials} trials (validation problem, OMD and OGD x {n_trials // 2} seeds), "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    baseline = min(plain["seconds"], single["seconds"])
    print(f"  plain loop, one process:   {plain['seconds']:8.1f} s  ({1000 * plain['seconds'] / n_trials:.1f} ms/trial)")
    print(f"  same, one BLAS thread:     {single['seconds']:8.1f} s  ({1000 * single['seconds'] / n_trials:.1f} ms/trial)")
    print(f"  launcher, 2 workers:       {launcher['seconds']:8.1f} s  ratio launcher / faster plain loop "
          f"{launcher['seconds'] / baseline:5.2f}  (target <= 1.0)")
    print(f"  driver CPU per trial:      first 10% {1000 * cpu_first:6.2f} ms, last 10% {1000 * cpu_last:6.2f} ms"
          f"  ratio {cpu_last / cpu_first if cpu_first else float('nan'):5.2f}  (target <= 1.2)")
    print(f"  wall per trial:            first 10% {1000 * wall_first:6.2f} ms, last 10% {1000 * wall_last:6.2f} ms"
          f"  ratio {wall_last / wall_first if wall_first else float('nan'):5.2f}")
    print(f"  Tune's folder:             {launcher['tune_peak'] / 2**20:6.2f} MB at most during the run, "
          f"{launcher['tune_end'] / 2**20:6.2f} MB at the end  (target < 100 MB)")
    megabytes = {key: (early[key] / 2**20, late[key] / 2**20) for key in early}
    print(f"  driver memory:             peak {launcher['peak_rss'] / 2**20:6.0f} MB; resident at 10% / 90% of "
          f"the trials: {megabytes['VmRSS'][0]:.0f} / {megabytes['VmRSS'][1]:.0f} MB, of which private "
          f"{megabytes['RssAnon'][0]:.1f} / {megabytes['RssAnon'][1]:.1f} MB (target: flat) and "
          f"object-store pages {megabytes['RssShmem'][0]:.0f} / {megabytes['RssShmem'][1]:.0f} MB "
          f"(at most the {launcher['object_store_bytes'] / 2**20:.0f} MB store)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000], help="trial counts")
    parser.add_argument("--part", choices=("plain", "plain-one-thread", "launcher"),
                        help=argparse.SUPPRESS)  # one side, as JSON
    args = parser.parse_args(argv)
    if args.part:
        measures = {"plain": measure_plain, "plain-one-thread": lambda n: measure_plain(n, threads=1),
                    "launcher": measure_launcher}
        print(json.dumps(measures[args.part](args.sizes[0])))
        return 0
    for n_trials in args.sizes:
        report(n_trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
