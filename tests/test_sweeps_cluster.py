"""Multi-node fault tolerance on a real Ray cluster (``ray.cluster_utils.Cluster``).

A head (no CPUs: it only hosts the driver) and two 1-CPU worker nodes. While the sweep runs,
the worker holding a Tune trial that has just checkpointed in the middle of a setup is removed.
The sweep must still finish with every trial ``ok`` and every spectrum present, and the lost
setup must have resumed from its checkpoint (``resume_count`` >= 1 in trials.parquet) rather
than started over.
"""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from sweeps.launcher import STATE_FILE, LaunchOptions, run_sweep, shutdown_ray  # noqa: E402
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
    deadline = time.monotonic() + 120
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
