"""Multi-node fault tolerance on a real Ray cluster (``ray.cluster_utils.Cluster``).

A head (no CPUs: it only hosts the driver) and two 1-CPU worker nodes. While a sweep runs,
the worker holding a Tune trial that has just checkpointed in the middle of a setup is removed.
The sweep must still finish with every trial ``ok`` and every spectrum present, and the lost
setup must have resumed from its checkpoint (``resume_count`` >= 1 in trials.parquet) rather
than started over. At a larger size, a few hundred trials lose a worker node and then their
driver (a real ``python -m sweeps run`` process, killed), and ``resume`` finishes them: every
trial is recorded exactly once.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from sweeps.launcher import STATE_FILE, LaunchOptions, run_sweep, shutdown_ray  # noqa: E402
from sweeps.records import finished_trial_ids  # noqa: E402
from sweeps.spec import SweepSpec  # noqa: E402

# Eight windows of 250 steps per setup: a checkpoint at each window end gives the removal a
# moment when most of a setup is left (seconds even on a quiet machine), so the node dies
# mid-setup however slowly this test's thread notices the checkpoint.
SETUP = {"trial_type": "network", "dataset": "digits", "model": "fcn", "width": 5, "n_steps": 2000,
         "n_replicas": 2, "delays": 2, "window_size": 250, "eval_max_samples": 200,
         "max_train_samples": 300}
# Fast failure detection, so a dead node is noticed in about a second instead of 30.
HEAD_SYSTEM_CONFIG = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                      "health_check_initial_delay_ms": 0}


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": 100 * 2**20, "include_dashboard": False,
        "_system_config": HEAD_SYSTEM_CONFIG})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster, workers
    shutdown_ray()
    cluster.shutdown()


def _mid_setup_checkpoint(storage: Path) -> dict | None:
    """The newest checkpointed bundle state that is in the middle of a setup, if any."""
    for path in sorted(storage.glob("tune/bundle_*/checkpoint_*/" + STATE_FILE), reverse=True):
        try:
            state = pickle.loads(path.read_bytes())
        except (OSError, EOFError, pickle.UnpicklingError):
            continue  # being written
        if state.get("current") is not None and state.get("resume_state") is not None:
            return state
    return None


def _remove_worker_mid_setup(cluster, workers, out_dir: Path, removed: list) -> None:
    deadline = time.monotonic() + 300  # Ray's and the workers' start-up take minutes on a busy machine
    while time.monotonic() < deadline:
        state = _mid_setup_checkpoint(out_dir)
        if state is not None:
            victim = next(node for node in workers if node.node_id == state["placement"]["node_id"])
            cluster.remove_node(victim, allow_graceful=False)
            # A replacement joins, as an autoscaler would bring one: the retry need not queue.
            cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)
            removed.append(state["current"])
            return
        time.sleep(0.05)


def test_sweep_survives_losing_a_worker_node_and_resumes_from_checkpoint(cluster, tmp_path):
    head_cluster, workers = cluster
    spec = SweepSpec(name="nodes", base=SETUP, grid={"activation": ["relu", "tanh"]}, seeds=(0, 1))
    outcome: dict = {}

    def sweep() -> None:
        try:
            outcome["records"] = run_sweep(spec, tmp_path, LaunchOptions(setups_per_task=2, max_failures=3))
        except BaseException as error:  # re-raised in the test's thread below
            outcome["error"] = error

    # The driver runs in a thread; nodes are added and removed from the main thread (Ray
    # installs signal handlers when it starts a node, which only the main thread may do).
    driver = threading.Thread(target=sweep)
    driver.start()
    removed: list[str] = []
    _remove_worker_mid_setup(head_cluster, workers, tmp_path, removed)
    driver.join()
    if "error" in outcome:
        raise outcome["error"]
    trials, spectra = outcome["records"]
    assert removed, "no mid-setup checkpoint appeared, so no node was removed"
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert list(trials["status"]) == ["ok"] * 4
    # Every trial has all 8 windows of eigenvalues.
    windows = spectra.groupby("trial_id")["window_index"].nunique()
    assert set(windows.index) == set(trials["trial_id"]) and (windows == 8).all()
    # The setup that was running on the removed node resumed from its checkpoint.
    lost = trials.set_index("trial_id").loc[removed[0]]
    assert lost["resume_count"] >= 1
    assert trials["node_id"].nunique() >= 2


ROOT = Path(__file__).resolve().parents[1]
# 320 validation trials (OMD and OGD x 160 seeds): tens of milliseconds each, so the sweep lasts
# long enough to lose a node and then its driver, and is still a few hundred trials.
MANY_TRIALS = """
    name: many
    base: {trial_type: validation, n_steps: 400, delays: 4, rank: null, validation_step_size: 0.01}
    grid: {validation_method: [omd, ogd]}
    n_seeds: 160
"""


def _wait_for_records(out: Path, at_least: int, driver: subprocess.Popen, deadline_s: float = 300) -> int:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and driver.poll() is None:
        count = len(finished_trial_ids(out))
        if count >= at_least:
            return count
        time.sleep(0.05)
    return len(finished_trial_ids(out))


def test_hundreds_of_trials_survive_a_lost_node_and_a_killed_driver_each_recorded_once(cluster, tmp_path):
    head_cluster, _ = cluster
    sweep, out = tmp_path / "many.yaml", tmp_path / "out"
    sweep.write_text(textwrap.dedent(MANY_TRIALS))
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "sweeps", "run", str(sweep), "--out", str(out), "--address",
               head_cluster.address, "--no-analysis"]
    driver = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_for_records(out, 10, driver) >= 10, "the sweep recorded no trial"
        victim = next(node for node in head_cluster.worker_nodes)
        head_cluster.remove_node(victim, allow_graceful=False)  # a worker node is lost mid-sweep
        head_cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)
        at_loss = len(finished_trial_ids(out))
        recorded_at_kill = _wait_for_records(out, at_loss + 40, driver)
        assert driver.poll() is None, "the driver finished before it could be killed"
        os.killpg(driver.pid, signal.SIGKILL)  # and then the driver, without clean-up
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert recorded_at_kill < 320
    resumed = subprocess.run([sys.executable, "-m", "sweeps", "resume", str(out), "--address",
                              head_cluster.address, "--no-analysis"], cwd=ROOT, env=environment,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip().splitlines()[-1] == "320 trials: 320 ok"
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 320 and trials["trial_id"].is_unique and set(trials["status"]) == {"ok"}
    # Exactly once on disk too: no part file repeats a trial another part holds.
    parts = pd.concat([pd.read_parquet(path, columns=["trial_id"]) for path in (out / "records").glob("*.trial.parquet")])
    assert len(parts) == 320 and parts["trial_id"].is_unique
    spectra = pd.read_parquet(out / "spectra.parquet")
    assert set(spectra["trial_id"]) == set(trials["trial_id"])
    assert not spectra.duplicated(["trial_id", "window_index", "estimate", "eig_index"]).any()
