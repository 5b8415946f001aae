"""The launcher on one real local Ray (module-scoped): GPU-fraction scheduling, diverging and
failing setups inside a sweep, and resume of a finished sweep without reruns.

The Ray instance declares 4 logical CPUs and 2 logical GPUs on this CPU-only machine (Ray
schedules on declared resources; no GPU is touched: ``device`` stays "auto" -> CPU).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from sweeps.launcher import LaunchOptions, resume_sweep, run_sweep  # noqa: E402
from sweeps.spec import SweepSpec  # noqa: E402

# A trial that trains in about a second: 2 replicas of a 64 -> 5 -> 10 net on 300 digits.
TINY = {"trial_type": "network", "dataset": "digits", "model": "fcn", "width": 5, "n_steps": 100,
        "n_replicas": 2, "delays": 2, "window_size": 50, "eval_max_samples": 200,
        "max_train_samples": 300}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=4, num_gpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
             _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def test_half_gpu_trials_run_four_at_once_over_both_gpu_ids(local_ray, tmp_path):
    # 400 steps: each trial outlasts the others' start-up, so the four overlap in time.
    spec = SweepSpec(name="gpus", base={**TINY, "n_steps": 400, "window_size": 100},
                     grid={"replica_noise": [0.001, 0.002, 0.003, 0.004]}, seeds=(0,))
    trials, spectra = run_sweep(spec, tmp_path, LaunchOptions(gpus_per_trial=0.5, cpus_per_trial=1.0))
    assert list(trials["status"]) == ["ok"] * 4
    assert trials["tune_trial_id"].nunique() == 4  # four Tune trials, one setup each
    gpu_ids = [json.loads(ids) for ids in trials["gpu_ids"]]
    assert all(len(ids) == 1 for ids in gpu_ids)  # a half GPU is one id, shared
    assert sorted(ids[0] for ids in gpu_ids) == ["0", "0", "1", "1"]
    assert sorted(trials["cuda_visible_devices"]) == ["0", "0", "1", "1"]
    # All four were running at one moment: the latest start precedes the earliest end.
    assert trials["bundle_started_at"].max() < trials["finished_at"].min()
    assert set(spectra["trial_id"]) == set(trials["trial_id"])


def test_diverging_and_failing_setups_are_recorded_and_the_sweep_succeeds(local_ray, tmp_path):
    spec = SweepSpec(
        name="mixed",
        base={**{k: v for k, v in TINY.items() if k != "dataset"}, "activation": "linear", "window_size": None},
        points=({"learning_rate": 0.1, "dataset": "digits"}, {"learning_rate": 1000.0, "dataset": "digits"},
                {"learning_rate": 0.1, "dataset": "mnist", "data_dir": str(tmp_path / "no-mnist")}),
        label_keys=("learning_rate", "dataset"),
        seeds=(0,),
    )
    trials, spectra = run_sweep(spec, tmp_path / "out", LaunchOptions(setups_per_task=3))
    status = dict(zip(trials["condition"], trials["status"]))
    assert status["learning_rate=0.1,dataset=digits"] == "ok"
    assert status["learning_rate=1000,dataset=digits"] == "diverged"
    failed = trials[trials["status"] == "failed"].iloc[0]
    assert "MNIST" in failed["message"] and failed["dataset"] == "mnist"
    diverged = trials[trials["status"] == "diverged"].iloc[0]
    assert diverged["diverged_step"] is not None and diverged["diverged_step"] < 100
    assert set(spectra["trial_id"]) == {trials[trials["status"] == "ok"].iloc[0]["trial_id"]}
    on_disk = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    assert len(on_disk) == 3 and (tmp_path / "out" / "sweep.json").is_file()


def test_resume_of_a_finished_sweep_reruns_nothing(local_ray, tmp_path):
    spec = SweepSpec(name="again", base=TINY, grid={"activation": ["relu", "tanh"]}, seeds=(0, 1))
    first, _ = run_sweep(spec, tmp_path, LaunchOptions())
    second, spectra = resume_sweep(tmp_path)
    assert len(second) == 4 and second["trial_id"].is_unique
    merged = first.merge(second, on="trial_id", suffixes=("_first", "_second"))
    assert (merged["finished_at_first"] == merged["finished_at_second"]).all()
    assert not spectra.duplicated(["trial_id", "window_index", "estimate", "eig_index"]).any()


def test_a_checkpoint_pruned_before_the_driver_restored_it_starts_the_bundle_over(tmp_path):
    import pickle

    from ray import tune

    from sweeps.launcher import STATE_FILE, _load_state

    folder = tmp_path / "checkpoint_000003"
    folder.mkdir()
    (folder / STATE_FILE).write_bytes(pickle.dumps({"format": 2, "position": 3}))
    checkpoint = tune.Checkpoint.from_directory(str(folder))
    assert _load_state(checkpoint)["position"] == 3
    (folder / STATE_FILE).unlink()
    folder.rmdir()  # Tune deleted it between its last snapshot and the driver's death
    assert _load_state(checkpoint) is None  # the bundle starts over, skipping trials with records


def test_importing_the_launcher_changes_no_environment_and_no_logger():
    import subprocess
    import sys
    from pathlib import Path

    # Ray's own import sets variables (RAY_CLIENT_MODE); what the launcher would add comes after.
    script = ("import logging, os; import ray, ray.tune; before = dict(os.environ); "
              "levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}; "
              "import sweeps.launcher, sweeps.bundle, sweeps.records, sweeps.progress, sweeps.cli; "
              "after = {name: logging.getLogger(name).level for name in levels}; "
              "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items()); "
              "assert after == levels, {k: (levels[k], after[k]) for k in levels if levels[k] != after[k]}")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, env={"PYTHONPATH": str(root), "PATH": ""})
