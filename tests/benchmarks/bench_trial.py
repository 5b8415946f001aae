"""Throughput of the paper's FCN trial: vectorised replicas against replicas one by one.

    python tests/benchmarks/bench_trial.py [--quick] [--threads N] [--device cpu|cuda]

The paper's trial: 784 -> 40 -> 10 (or 64 -> 40 -> 10 on the built-in digits when the shared
MNIST folder is absent or with ``--digits``; the script says which), ReLU, no biases, SGD lr 0.1, batch 60,
10 replicas, 1,000 steps (``--quick``: 200), output-layer weights recorded every step, delays 8,
rank 10. Prints configs*steps per second (replica-steps per second) of

* the whole ``run_trial`` (training + in-run Koopman + evaluation), vectorised vs sequential;
* the training steps alone: batched matmuls (the default), ``vmap`` over ``functional_call``,
  and one replica after another,

each as a ratio against the one-by-one baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from study.config import TrialConfig
from study.data import load_dataset
from study.replicas import SequentialReplicas, VectorizedReplicas, initial_parameters, make_model
from study.trial import derived_seeds, run_trial

MNIST_FOLDER = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


def paper_config(n_steps: int, threads: int, device: str, digits: bool) -> dict:
    config = {"width": 40, "n_steps": n_steps, "n_replicas": 10, "batch_size": 60,
              "learning_rate": 0.1, "delays": 8, "rank": 10, "n_threads": threads,
              "device": device}
    if MNIST_FOLDER.is_dir() and not digits:
        config.update(dataset="mnist", data_dir=str(MNIST_FOLDER))
    return config


def time_trial(flat: dict, mode: str) -> float:
    started = time.perf_counter()
    result = run_trial({**flat, "replica_mode": mode})
    assert result.status == "ok", result.message
    return time.perf_counter() - started


def time_training_only(flat: dict, variant: str) -> float:
    """Only the optimizer steps (same batches for every variant)."""
    config = TrialConfig.from_flat_dict(flat)
    device = torch.device("cuda" if flat["device"] == "cuda" else "cpu")
    seeds = derived_seeds(config.seed)
    data = load_dataset(config.data, np.random.default_rng(seeds["data"]))
    model = make_model(config.model, data.input_shape, data.n_classes, None, seeds["init"])
    stacks = initial_parameters(model, 10, 0.001, torch.Generator().manual_seed(1))
    replica_class = SequentialReplicas if variant == "sequential" else VectorizedReplicas
    replicas = replica_class(model, stacks, config.optimizer, device)
    if variant == "vmap":
        replicas._forward = replicas._vmapped  # the generic path other models use
    inputs, labels = data.train_inputs.to(device), data.train_labels.to(device)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(labels), (60,), generator=generator).to(device)
               for _ in range(config.training.n_steps)]
    started = time.perf_counter()
    for batch in batches:
        replicas.train_step(inputs[batch], labels[batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 steps instead of 1,000")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--digits", action="store_true", help="the built-in digits even if MNIST is here")
    arguments = parser.parse_args()
    n_steps = 200 if arguments.quick else 1000
    flat = paper_config(n_steps, arguments.threads, arguments.device, arguments.digits)
    torch.set_num_threads(arguments.threads)
    data_name = "MNIST t10k split (shared folder)" if "data_dir" in flat else "built-in digits, 64 -> 40 -> 10"
    print(f"FCN h=40, 10 replicas, {n_steps} steps, batch 60, delays 8, rank 10, on {data_name}; "
          f"device {arguments.device}, torch threads {arguments.threads}")
    replica_steps = 10 * n_steps
    run_trial({**flat, "n_steps": 20, "window_size": None})  # warm-up: imports, allocator
    sequential = time_trial(flat, "sequential")
    vectorized = time_trial(flat, "vectorized")
    print(f"whole trial   sequential {replica_steps / sequential:9.0f} configs*steps/s ({sequential:6.2f} s)")
    print(f"whole trial   vectorized {replica_steps / vectorized:9.0f} configs*steps/s ({vectorized:6.2f} s)"
          f"  ratio {sequential / vectorized:5.2f}x")
    timings = {variant: time_training_only(flat, variant) for variant in ("sequential", "vmap", "batched")}
    for variant, seconds in timings.items():
        print(f"training only {variant:10s} {replica_steps / seconds:9.0f} configs*steps/s ({seconds:6.2f} s)"
              f"  ratio {timings['sequential'] / seconds:5.2f}x")


if __name__ == "__main__":
    main()
