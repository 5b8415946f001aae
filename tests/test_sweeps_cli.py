"""The command line in real subprocesses: driver interruption and resume, and job submission
to a local Ray head started with ``ray start`` (token authentication on, as Ray >= 2.59 does).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")

from sweeps.records import finished_trial_ids  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RAY = str(Path(PYTHON).with_name("ray"))

# Six setups of one to a few seconds each; 1 CPU makes them one bundle, run one after another,
# long enough that the driver can be killed between the second and the last.
TINY_SWEEP = """
    name: tiny
    base: {trial_type: network, dataset: digits, model: fcn, width: 5, n_steps: 400, n_replicas: 2,
           delays: 2, window_size: 100, eval_max_samples: 200, max_train_samples: 300}
    grid: {activation: [relu, tanh, gelu]}
    seeds: [0, 1]
"""


def _environment(**extra: str) -> dict:
    environment = dict(os.environ)
    environment["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{environment.get('PATH', '')}"
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(extra)
    return environment


def _write_sweep(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY_SWEEP))
    return path


def _kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group of a process this test started in its own session."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path):
    sweep, out = _write_sweep(tmp_path), tmp_path / "out"
    command = [PYTHON, "-m", "sweeps", "run", str(sweep), "--out", str(out), "--num-cpus", "1",
               "--no-analysis"]
    driver = subprocess.Popen(command, cwd=ROOT, env=_environment(), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while len(finished_trial_ids(out)) < 2 and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.05)
        finished_before = finished_trial_ids(out)
        os.kill(driver.pid, signal.SIGKILL)  # the driver dies mid-sweep, without clean-up
        driver.wait(timeout=30)
    finally:
        _kill_group(driver)  # and the local Ray it started goes with it
    assert 2 <= len(finished_before) < 6, "the driver must die between the first and the last trial"
    parts = pd.concat([pd.read_parquet(path) for path in (out / "records").glob("*.trial.parquet")])
    before = dict(zip(parts["trial_id"], parts["finished_at"]))

    # Resume with the default analysis stage: the conjugacy table is printed at the end.
    resumed = subprocess.run([PYTHON, "-m", "sweeps", "resume", str(out)], cwd=ROOT,
                             env=_environment(), capture_output=True, text=True, timeout=240,
                             start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The analysis stage ran on the finished records (its own tests check what it writes).
    assert (out / "analysis").is_dir() and any((out / "analysis").iterdir()), resumed.stdout[-2000:]
    trials = pd.read_parquet(out / "trials.parquet")
    spectra = pd.read_parquet(out / "spectra.parquet")
    assert len(trials) == 6 and trials["trial_id"].is_unique and set(trials["status"]) == {"ok"}
    finished_at = trials.set_index("trial_id")["finished_at"]
    assert all(finished_at[trial_id] == value for trial_id, value in before.items())  # not rerun
    assert not spectra.duplicated(["trial_id", "window_index", "estimate", "eig_index"]).any()
    assert set(spectra["trial_id"]) == set(trials["trial_id"])


def test_a_sweep_whose_every_trial_fails_exits_non_zero_naming_the_failures(tmp_path):
    # The files are there (so the check before Ray lets the sweep start) but empty: every
    # trial fails inside its worker, as a corrupt data folder on a cluster would.
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"")
    sweep = tmp_path / "broken.yaml"
    sweep.write_text(textwrap.dedent(f"""
        name: broken
        base: {{trial_type: network, dataset: mnist, data_dir: {folder}, model: fcn, width: 5,
               n_steps: 20, n_replicas: 2, delays: 2}}
        seeds: [0, 1]
    """))
    completed = subprocess.run([PYTHON, "-m", "sweeps", "run", str(sweep), "--out", str(tmp_path / "out"),
                                "--num-cpus", "1"], cwd=ROOT, env=_environment(), capture_output=True,
                               text=True, timeout=300, start_new_session=True)
    assert completed.returncode == 1, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "2 trials: 2 failed (every trial failed: exit status 1)"
    assert "trial base-seed0 failed:" in completed.stderr and "trial base-seed1 failed:" in completed.stderr
    assert "2/2 trials (2 failed)" in completed.stderr  # the progress line's last state


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_job_server(url: str, environment: dict, head: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        probe = subprocess.run([RAY, "job", "list", "--address", url], env=environment,
                               capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return
        time.sleep(1)
    raise TimeoutError(f"no Ray job server at {url}")


def _job_server_available() -> bool:
    """The job server lives in Ray's dashboard, which needs `ray[default]` (aiohttp & co)."""
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("aiohttp", "aiohttp_cors", "opencensus"))


@pytest.mark.skipif(not _job_server_available(), reason="job submission needs `pip install 'ray[default]'`")
def test_job_submission_to_a_local_head_with_a_token(tmp_path):
    # The token is handed over in the environment, so the test never reads ~/.ray/auth_token.
    environment = _environment(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    gcs_port, dashboard_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{dashboard_port}"
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--port", str(gcs_port), "--node-ip-address", "127.0.0.1",
         "--num-cpus", "2", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
         "--dashboard-port", str(dashboard_port), "--object-store-memory", str(100 * 2**20),
         # Free ports for the agents: their defaults collide with any other local Ray (both
         # advertise 127.0.0.1), and an agent that cannot bind leaves the job server without one.
         "--dashboard-agent-listen-port", str(_free_port()), "--metrics-export-port", str(_free_port()),
         "--disable-usage-stats"],
        env=environment, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_job_server(url, environment, head)
        without_token = {key: value for key, value in environment.items() if key != "RAY_AUTH_TOKEN"}
        refused = subprocess.run([RAY, "job", "list", "--address", url],
                                 env={**without_token, "RAY_AUTH_MODE": "disabled"},
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0  # the job server refuses a client without the token
        # The README's command: this checkout is the working directory Ray uploads (it leaves
        # out what .gitignore lists, the virtual environment included).
        working_dir = ROOT
        out = tmp_path / "out"
        # The job is the CLI's smoke mode: omd_ogd's quick preset, first two seeds (6 trials).
        command = [RAY, "job", "submit", "--address", url, "--working-dir", str(working_dir), "--",
                   "python", "-m", "sweeps", "run", "omd_ogd", "--smoke-test", "--out", str(out), "--no-analysis"]
        # The job server answers `job list` before the head's job agent has registered; until
        # it has, a submission is refused with "try again later" (seen on a loaded machine).
        for _attempt in range(12):
            submitted = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)
            if "No available agent" not in submitted.stderr + submitted.stdout:
                break
            time.sleep(5)
        assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
        assert "succeeded" in submitted.stdout.lower()
        trials = pd.read_parquet(out / "trials.parquet")
        assert len(trials) == 6 and set(trials["status"]) == {"ok"}
        assert set(trials["validation_method"]) == {"omd", "ogd", "bisection"}
        spectra = pd.read_parquet(out / "spectra.parquet")
        assert set(spectra["trial_id"]) == set(trials["trial_id"])  # every trial has its spectrum
    finally:
        _kill_group(head, signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_group(head)
