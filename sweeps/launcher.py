"""The Ray Tune launcher: the one module of the project that speaks Ray.

Ray's reporting API has changed four times; keeping every Ray call here (``ray.init``,
``tune.Tuner``/``Tuner.restore``, ``tune.report``, ``tune.get_checkpoint``, ``tune.Checkpoint``,
``tune.Callback``, ``ray.get_gpu_ids``) means the next change touches one file.

How a sweep runs: the validated setups are dealt round-robin into *bundles*, one bundle per
free slot (CPU, or GPU fraction, per Tune trial). Each Tune trial runs one bundle's setups one
after another in-process (:func:`sweeps.trainable.run_bundle`), reporting through
``tune.report`` as Koopman windows close and checkpointing (``tune.Checkpoint`` of a folder
holding the pickled bundle state) at the trial's checkpoint moments and after every setup.
A Tune trial lost with its node is retried (``FailureConfig.max_failures``) from its last
checkpoint: finished setups are skipped, the one in progress resumes through
``run_trial(..., resume_state=...)``. The driver writes the records (:mod:`sweeps.records`)
from the reported results in a :class:`RecordsCallback`, so a cluster's workers need no shared
folder for them; only Tune's ``storage_path`` must be shared (or a bucket) on a cluster.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import ray
from ray import tune

from study.records import PACKAGE_VERSION
from sweeps.records import ThrottledConsolidator, consolidate, finished_trial_ids, write_trial_records
from sweeps.spec import SweepSpec, TrialSetup, spec_from_dict, spec_to_dict, validate
from sweeps.trainable import EVENT_TRIAL_DONE, failed_row, run_bundle

logger = logging.getLogger(__name__)

EXPERIMENT_NAME = "tune"  # DIR/tune holds Tune's experiment state (what `resume` restores)
SWEEP_FILE = "sweep.json"  # provenance: spec, options, package and Ray versions, command
STATE_FILE = "bundle_state.pkl"  # inside each Tune checkpoint folder
DEFAULT_OBJECT_STORE_BYTES = 256 * 2**20  # results are small dicts; cap Ray's shared memory
# Trials per Tune trial when the cluster has no free slot yet (an autoscaler will add nodes).
SETUPS_PER_TASK_WHEN_SCALING = 4

# Tune's default loggers write every result (eigenvalue lists included) to JSON/CSV/TensorBoard
# per trial; the records already hold everything, so skip that per-report cost.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# A snapshot of the experiment state after each checkpoint is what lets `resume` skip work; its
# "may become a bottleneck" warning is expected for small trials.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Tune's own progress tables would bury the per-trial lines the records callback logs.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Without the auto loggers Tune's result grid warns that result.json is missing; records hold it.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
QUIET_WORKER_LOGGERS = ("ray.train", "ray.tune")  # "Checkpoint successfully created" per report


@dataclass(frozen=True)
class LaunchOptions:
    """How a sweep is placed on Ray (saved in sweep.json; `resume` reuses it)."""

    address: str | None = None  # None: RAY_ADDRESS if set, else a new local Ray
    cpus_per_trial: float = 1.0  # one core per Tune trial: small nets do not scale past it
    gpus_per_trial: float = 0.0  # fractions let several small trials share one GPU
    setups_per_task: int | None = None  # None: one bundle per free slot (fewest Tune trials)
    max_failures: int = 3  # retries of a Tune trial lost with its worker or node
    num_cpus: int | None = None  # local Ray only; None: this machine's cores
    num_gpus: int | None = None  # local Ray only; None: this machine's GPUs
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES  # local Ray only
    storage_path: str | None = None  # None: the output folder (use shared storage on a cluster)


def init_ray(options: LaunchOptions) -> None:
    """Join the cluster at ``options.address`` / RAY_ADDRESS, or start a local loopback Ray."""
    if ray.is_initialized():
        return
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    # A local Ray advertises loopback only and opens no dashboard; Ray >= 2.59 also turns on
    # token authentication for it (the token lands in ~/.ray/auth_token unless RAY_AUTH_TOKEN).
    ray.init(
        address="local",  # never join a cluster someone else started on this machine
        num_cpus=options.num_cpus,
        num_gpus=options.num_gpus,
        include_dashboard=False,
        object_store_memory=options.object_store_bytes,
        _node_ip_address="127.0.0.1",
    )


def count_slots(options: LaunchOptions) -> int:
    """How many Tune trials the cluster can run at once with the requested resources."""
    resources = ray.cluster_resources()
    slots = math.floor(resources.get("CPU", 0) / options.cpus_per_trial) if options.cpus_per_trial else 10**6
    if options.gpus_per_trial:
        slots = min(slots, math.floor(resources.get("GPU", 0) / options.gpus_per_trial + 1e-9))
    if slots < 1 and not (options.address or os.environ.get("RAY_ADDRESS")):
        raise RuntimeError(
            f"this machine's Ray ({dict(resources)}) cannot fit one trial of "
            f"{options.cpus_per_trial} CPU and {options.gpus_per_trial} GPU"
        )
    if slots < 1:
        logger.warning("the cluster has no room for a trial yet (%s); waiting for the autoscaler, "
                       "%d trials per Tune trial", dict(resources), SETUPS_PER_TASK_WHEN_SCALING)
    return max(slots, 0)


def plan_bundles(setups: Sequence[TrialSetup], n_slots: int, setups_per_task: int | None) -> list[list[str]]:
    """Deal setup ids round-robin into bundles, so each bundle mixes the grid's conditions."""
    if setups_per_task is None and n_slots < 1:
        setups_per_task = SETUPS_PER_TASK_WHEN_SCALING
    if setups_per_task is not None:
        n_bundles = math.ceil(len(setups) / setups_per_task)
    else:
        n_bundles = min(len(setups), n_slots)
    bundles: list[list[str]] = [[] for _ in range(max(n_bundles, 1))]
    for index, setup in enumerate(setups):
        bundles[index % len(bundles)].append(setup.trial_id)
    return [bundle for bundle in bundles if bundle]


def _setup_payload(setup: TrialSetup) -> dict:
    return {"trial_id": setup.trial_id, "condition": setup.condition, "seed": setup.seed,
            "config": dict(setup.config)}


def _load_state(checkpoint) -> dict | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        with open(os.path.join(folder, STATE_FILE), "rb") as handle:
            return pickle.load(handle)


def bundle_trainable(config: dict, *, bundles: list[list[dict]], skip_trial_ids: list[str]) -> None:
    """Tune function trainable: run bundle ``config['bundle_index']`` (see module docstring)."""
    bundle_started_at = time.time()
    for name in QUIET_WORKER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    setups = bundles[config["bundle_index"]]
    resume = _load_state(tune.get_checkpoint())
    placement = {
        "bundle_started_at": bundle_started_at,
        "gpu_ids": json.dumps([str(gpu) for gpu in ray.get_gpu_ids()]),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "node_id": ray.get_runtime_context().get_node_id(),
        "tune_trial_id": tune.get_context().get_trial_id(),
    }

    def emit(metrics: dict, state: dict | None) -> None:
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, STATE_FILE), "wb") as handle:
                pickle.dump(state, handle)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    run_bundle(setups, emit, resume=resume, skip_trial_ids=skip_trial_ids, placement=placement)


class RecordsCallback(tune.Callback):
    """Driver-side writer: one part file per finished setup, consolidated as they come.

    Module level so that Tune can pickle it with the experiment state for `resume`.
    """

    def __init__(self, out_dir: Path, n_total: int):
        self.consolidator = ThrottledConsolidator(out_dir)
        self.out_dir, self.n_total = Path(out_dir), n_total

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("event") != EVENT_TRIAL_DONE:
            return
        row = result["trial_row"]
        write_trial_records(self.out_dir, row, result["spectrum_rows"])
        self.consolidator.trial_written()
        done = len(finished_trial_ids(self.out_dir))
        logger.info("trial %s %s (%d/%d)", row["trial_id"], row["status"], done, self.n_total)

    def on_experiment_end(self, trials, **info):
        self.consolidator.flush()


def _trial_name(trial) -> str:
    return f"bundle_{trial.config['bundle_index']:04d}"


def _trainable(bundles: list[list[dict]], skip: Sequence[str], options: LaunchOptions):
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    trainable = tune.with_parameters(bundle_trainable, bundles=bundles, skip_trial_ids=list(skip))
    return tune.with_resources(trainable, resources)


def _run_config(out_dir: Path, options: LaunchOptions, n_total: int):
    return tune.RunConfig(
        name=EXPERIMENT_NAME,
        storage_path=options.storage_path or str(out_dir),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        # Every checkpoint kept while the sweep runs: Tune deletes old ones from the driver, and a
        # driver killed between a deletion and its next state snapshot would leave `resume`
        # pointing at a deleted checkpoint. Finished sweeps are pruned (_prune_checkpoints).
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        callbacks=[RecordsCallback(out_dir, n_total)],
        verbose=0,
    )


def _reconcile(out_dir: Path, results, setups_by_bundle: list[list[dict]]) -> None:
    """Write any record the driver missed, from the final checkpoints; mark lost setups failed."""
    done = finished_trial_ids(out_dir)
    for result in results:
        state = _load_state(result.checkpoint) if result.checkpoint else None
        for trial_id, payload in (state or {}).get("completed", {}).items():
            if trial_id not in done:
                write_trial_records(out_dir, payload["trial_row"], payload["spectrum_rows"])
                done.add(trial_id)
    lost = [setup for bundle in setups_by_bundle for setup in bundle if setup["trial_id"] not in done]
    errors = [str(result.error) for result in results if result.error]
    for setup in lost:
        if not errors:
            continue  # not an error: an interrupted run; `resume` will run it
        message = f"Tune trial failed after retries: {errors[0][:500]}"
        write_trial_records(out_dir, failed_row(setup, message, 0.0), [])


def _prune_checkpoints(experiment: Path) -> None:
    """Keep only each bundle's last checkpoint once every trial has its records.

    The last one holds the bundle's records (provenance); the others only served resumption.
    Local storage only: a bucket is left as it is.
    """
    if not experiment.is_dir():
        return
    for bundle in experiment.glob("bundle_*"):
        for old in sorted(bundle.glob("checkpoint_*"))[:-1]:
            shutil.rmtree(old, ignore_errors=True)


def _write_sweep_file(out_dir: Path, spec: SweepSpec, options: LaunchOptions, bundles: list[list[str]],
                      command: Sequence[str] | None) -> None:
    payload = {
        "spec": spec_to_dict(spec),
        "options": asdict(options),
        "bundles": bundles,
        "package_version": PACKAGE_VERSION,
        "ray_version": ray.__version__,
        "python_version": sys.version.split()[0],
        "command": list(command) if command is not None else sys.argv,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    temporary = out_dir / f".{SWEEP_FILE}.tmp"
    temporary.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(temporary, out_dir / SWEEP_FILE)


def _fit(out_dir: Path, setups: list[TrialSetup], bundles: list[list[str]], options: LaunchOptions,
         *, restore: bool):
    by_id = {setup.trial_id: _setup_payload(setup) for setup in setups}
    setups_by_bundle = [[by_id[trial_id] for trial_id in bundle] for bundle in bundles]
    skip = sorted(finished_trial_ids(out_dir))
    trainable = _trainable(setups_by_bundle, skip, options)
    experiment = os.path.join(options.storage_path or str(out_dir), EXPERIMENT_NAME)
    if restore:
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"bundle_index": tune.grid_search(list(range(len(bundles))))},
            tune_config=tune.TuneConfig(trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=_run_config(out_dir, options, len(setups)),
        )
    results = tuner.fit()
    _reconcile(out_dir, results, setups_by_bundle)
    if not [setup for bundle in setups_by_bundle for setup in bundle
            if setup["trial_id"] not in finished_trial_ids(out_dir)]:
        _prune_checkpoints(Path(experiment))
    return consolidate(out_dir)


def run_sweep(spec: SweepSpec, out_dir: str | Path, options: LaunchOptions = LaunchOptions(),
              *, command: Sequence[str] | None = None):
    """Validate ``spec``, run it on Ray and write DIR's records; returns (trials, spectra).

    Every setup is validated before Ray starts: a wrong key or value raises SweepSpecError.
    """
    setups = validate(spec)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    init_ray(options)
    bundles = plan_bundles(setups, count_slots(options), options.setups_per_task)
    logger.info("sweep %s: %d trials in %d Tune trials -> %s", spec.name, len(setups), len(bundles), out_dir)
    _write_sweep_file(out_dir, spec, options, bundles, command)
    return _fit(out_dir, setups, bundles, options, restore=False)


def read_sweep_file(out_dir: str | Path) -> dict:
    path = Path(out_dir) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {out_dir} is not a sweep folder written by `sweeps run`")
    return json.loads(path.read_text())


def resume_sweep(out_dir: str | Path, *, address: str | None = None):
    """Finish an interrupted sweep in ``out_dir`` without rerunning its finished trials."""
    out_dir = Path(out_dir).resolve()
    saved = read_sweep_file(out_dir)
    spec = spec_from_dict(saved["spec"], source=str(out_dir / SWEEP_FILE))
    # The cluster of the first run may be gone: join the one named now (or RAY_ADDRESS / local).
    options = LaunchOptions(**{**saved["options"], "address": address})
    setups = validate(spec)
    init_ray(options)
    experiment = os.path.join(options.storage_path or str(out_dir), EXPERIMENT_NAME)
    if tune.Tuner.can_restore(experiment):
        logger.info("resuming Tune experiment %s", experiment)
        return _fit(out_dir, setups, saved["bundles"], options, restore=True)
    # Killed before Tune saved its state: start the setups without records afresh.
    done = finished_trial_ids(out_dir)
    remaining = [setup for setup in setups if setup.trial_id not in done]
    if not remaining:
        return consolidate(out_dir)
    bundles = plan_bundles(remaining, count_slots(options), options.setups_per_task)
    saved["bundles"] = bundles
    (out_dir / SWEEP_FILE).write_text(json.dumps(saved, indent=2, default=str))
    return _fit(out_dir, remaining, bundles, options, restore=False)


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()

