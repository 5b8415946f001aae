#!/usr/bin/env bash
# The CUDA path, checked on a machine with PyTorch and a GPU (no Ray, no internet needed).
#
#     bash tests/benchmarks/gpu_check.sh            # from the repository root; about 5-8 minutes
#     PYTHON=/path/to/python bash tests/benchmarks/gpu_check.sh
#
# 1. the vectorised-replica benchmark on cuda (tests/benchmarks/bench_trial.py; target >= 10x
#    configs*steps/s over one replica after another);
# 2. one trial of each experiment type (the first setup of every named sweep's --quick preset,
#    and the validation problem) on cuda, its spectrum compared with the same seed on the CPU;
# 3. the in-run estimator (study.streaming.StreamingKoopman) fed CUDA tensors, against the same
#    snapshots fed as numpy and against the eigenvalues the test system was built with.
# Trials run through study.trial.run_trial directly; an import of ray fails the check, as
# study/ must never need it. Exits non-zero, saying why, on any failure or without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
started=$(date +%s)

"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to PyTorch (torch.cuda.is_available() is False); "
             f"torch {torch.__version__}, built for CUDA {torch.version.cuda}")
print(f"gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.get_device_name(0)}")
PY

echo "== 1. vectorised replicas on cuda (bench_trial.py --device cuda)"
timeout 240 "$PYTHON" tests/benchmarks/bench_trial.py --device cuda | tee /tmp/gpu_check_bench_trial.txt
"$PYTHON" - <<'PY'
import re, sys
text = open("/tmp/gpu_check_bench_trial.txt").read()
ratio = float(re.search(r"whole trial\s+vectorized.*ratio\s+([0-9.]+)x", text).group(1))
print(f"whole-trial speed-up of vectorised replicas on cuda: {ratio:.1f}x (target >= 10x)")
sys.exit(0 if ratio >= 10 else "gpu_check: vectorised replicas below the 10x target on cuda")
PY

echo "== 2. one trial of each experiment type, cuda against cpu; 3. the estimator fed CUDA tensors"
timeout 420 "$PYTHON" - <<'PY'
import importlib.abc
import sys


class NoRay(importlib.abc.MetaPathFinder):
    """study/ must run without Ray: any import of it fails this check."""

    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"gpu_check: {name} was imported; trials must run without Ray")
        return None


sys.meta_path.insert(0, NoRay())

import time

import numpy as np
import torch

from analysis.distances import spectral_distance
from study.streaming import StreamingKoopman
from study.trial import run_trial
from sweeps.definitions import SWEEPS, get_sweep
from sweeps.spec import expand
from tests.helpers import observed_block_system

TOLERANCE = 0.05  # spectral distance cuda vs cpu: float rounding, grown over a few hundred steps
failures = []
for name in SWEEPS:
    setup = expand(get_sweep(name, quick=True))[0]
    spectra = {}
    for device in ("cpu", "cuda"):
        started = time.perf_counter()
        result = run_trial({**setup.config, "device": device})
        seconds = time.perf_counter() - started
        if result.status != "ok":
            failures.append(f"{name} on {device}: {result.status} {result.message}")
            break
        spectra[device] = np.concatenate([window.eigenvalues for window in result.windows])
        print(f"  {name:<11} {setup.trial_id:<40} {device:<5} {seconds:6.1f} s  device_used={result.device}"
              f"  {len(result.windows)} windows")
        if device == "cuda" and result.device != "cuda" and setup.config.get("trial_type") != "validation":
            failures.append(f"{name}: asked for cuda, ran on {result.device}")
    if len(spectra) == 2:
        distance = spectral_distance(spectra["cpu"], spectra["cuda"])
        print(f"  {name:<11} spectral distance cpu vs cuda: {distance:.2e} (tolerance {TOLERANCE})")
        if not distance <= TOLERANCE:
            failures.append(f"{name}: cpu and cuda spectra {distance:.3g} apart")

blocks = [(0.95, 0.3), (0.8, 1.1), (0.6, 2.0)]
known = np.sort_complex(np.array([r * np.exp(s * 1j * a) for r, a in blocks for s in (1, -1)]))
trajectories, _ = observed_block_system(blocks, n_replicas=4, n_steps=200, n_features=30, seed=0)
estimates = {}
for source in ("numpy", "cuda"):
    estimator = StreamingKoopman(n_replicas=4, delays=0, rank=6)
    for step in range(trajectories.shape[1]):
        snapshot = trajectories[:, step]  # (n_replicas, n_features)
        estimator.partial_fit(torch.as_tensor(snapshot, device="cuda") if source == "cuda" else snapshot)
    estimates[source] = np.sort_complex(estimator.eigenvalues())
gap = np.abs(estimates["cuda"] - estimates["numpy"]).max()
error = np.abs(estimates["cuda"] - known).max()
print(f"  estimator fed CUDA tensors: {gap:.1e} from numpy feeds, {error:.1e} from the built-in eigenvalues")
if gap > 1e-6 or error > 1e-4:
    failures.append(f"estimator on CUDA tensors: {gap:.3g} from numpy, {error:.3g} from the known eigenvalues")

if failures:
    sys.exit("gpu_check FAILED:\n  " + "\n  ".join(failures))
print("gpu_check: every trial type ran on cuda and matched the CPU")
PY
echo "gpu_check PASSED in $(( $(date +%s) - started )) s"
