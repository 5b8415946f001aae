"""The Ray Tune launcher: the one module of the project that speaks Ray.

Ray's reporting API has changed several times; keeping every Ray call here (``ray.init``,
``tune.Tuner``/``Tuner.restore``, ``tune.report``, ``tune.get_checkpoint``, ``tune.Checkpoint``,
``tune.Callback``, ``ray.get_gpu_ids``) means the next change touches one file.

How a sweep runs: the validated setups are dealt round-robin into *bundles*, one bundle per
free slot (CPU, or GPU fraction, per Tune trial). Each Tune trial runs one bundle's setups one
after another in-process (:func:`sweeps.bundle.run_bundle`), handing over finished trials'
records in batches through ``tune.report`` and checkpointing its progress (which setups are
done, the state of the one in progress) as a ``tune.Checkpoint`` of a folder with one small
pickle. A Tune trial lost with its node is retried (``FailureConfig.max_failures``) from its
last checkpoint: finished setups are skipped, the one in progress resumes through
``run_trial(..., resume_state=...)``. The driver writes the records (:mod:`sweeps.records`)
in a :class:`RecordsCallback`, so a cluster's workers need no shared folder for them; only
Tune's ``storage_path`` must be shared (or a bucket) on a cluster.
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
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import ray
from ray import tune

from study.records import PACKAGE_VERSION
from sweeps.bundle import (EVENT_TRIALS_DONE, SETUPS_PER_TASK_WHEN_SCALING, failed_row, plan_bundles,
                           run_bundle)
from sweeps.progress import ProgressSettings, SweepProgress
from sweeps.records import consolidate, finished_trial_ids, write_batch_records, write_trial_records
from sweeps.spec import SweepSpec, TrialSetup, spec_from_dict, spec_to_dict, validate

logger = logging.getLogger(__name__)

EXPERIMENT_NAME = "tune"  # DIR/tune holds Tune's experiment state (what `resume` restores)
SWEEP_FILE = "sweep.json"  # provenance: spec, options, package and Ray versions, command
STATE_FILE = "bundle_state.pkl"  # inside each Tune checkpoint folder
DEFAULT_OBJECT_STORE_BYTES = 256 * 2**20  # results are small dicts; cap Ray's shared memory
# Checkpoints Tune keeps per bundle. Tune snapshots its experiment state every this many
# checkpoints of a trial and deletes the oldest beyond it, so the snapshot's checkpoint is
# nearly always still there; where it is not, the bundle starts over from the records on
# disk (_load_state). Small, because each is a few hundred bytes plus a folder.
CHECKPOINTS_KEPT = 4
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


def quiet_tune() -> None:
    """Tune settings for many small trials; called before a Tuner is made, never at import."""
    # Tune's default loggers write every result to JSON/CSV/TensorBoard per trial; the records
    # already hold everything, so skip that per-report cost.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Snapshots forced every CHECKPOINTS_KEPT checkpoints are what keep `resume` exact; the
    # "may become a bottleneck" warning about them is expected.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own progress tables would bury the sweep's progress line.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Without the auto loggers Tune's result grid warns that result.json is missing; records hold it.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


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


def _setup_payload(setup: TrialSetup) -> dict:
    return {"trial_id": setup.trial_id, "condition": setup.condition, "seed": setup.seed,
            "config": dict(setup.config)}


def _load_state(checkpoint) -> dict | None:
    """The bundle state in ``checkpoint``; None (start over) where it cannot be read.

    Tune prunes old checkpoints as the sweep goes; a driver killed in the moment between a
    pruning and its next snapshot restores a checkpoint that is gone. Starting the bundle over
    is then safe: its finished setups have records on disk and are skipped.
    """
    if checkpoint is None:
        return None
    try:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, STATE_FILE), "rb") as handle:
                return pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError) as error:
        logger.warning("checkpoint %s is unreadable (%s): the bundle starts over, skipping the "
                       "setups with records", checkpoint.path, error)
        return None


def bundle_trainable(config: dict, *, bundles: list[list[dict]], skip_trial_ids: list[str],
                     generation: str) -> None:
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

    run_bundle(setups, emit, resume=resume, skip_trial_ids=skip_trial_ids, placement=placement,
               generation=generation)


class RecordsCallback(tune.Callback):
    """Driver-side writer: one pair of part files per batch of finished setups, and progress.

    Module level so that Tune can pickle it with the experiment state for `resume`; what it
    builds while running (the progress line, the per-bundle counters) is left out of the pickle
    and made again in :meth:`setup`, so the pickle stays the same size however long the sweep.
    """

    def __init__(self, out_dir: Path, n_total: int):
        self.out_dir, self.n_total = Path(out_dir), n_total
        self._start_run()

    def _start_run(self) -> None:
        # Records of a bundle arrive in bundle order; one arriving below the bundle's mark was
        # recorded already (a retried Tune trial ran it again from an older checkpoint).
        self.recorded_up_to: dict[int, int] = {}
        self.progress: SweepProgress | None = None

    def __getstate__(self):
        return {"out_dir": self.out_dir, "n_total": self.n_total}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start_run()

    def setup(self, **info):
        self._start_run()
        # sweep.json says where progress goes this run (`resume` may say otherwise than `run`).
        settings = ProgressSettings(**read_sweep_file(self.out_dir).get("progress", {}))
        self.progress = SweepProgress(self.n_total, len(finished_trial_ids(self.out_dir)), settings)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("event") != EVENT_TRIALS_DONE:
            return
        bundle = trial.config["bundle_index"]
        fresh = [payload for payload in result["trials"] if payload["position"] >= self.recorded_up_to.get(bundle, 0)]
        if not fresh:
            return
        write_batch_records(self.out_dir, fresh, bundle_index=bundle)
        self.recorded_up_to[bundle] = fresh[-1]["position"] + 1
        if self.progress is None:
            self.setup()
        for payload in fresh:
            row = payload["trial_row"]
            self.progress.trial_finished(row["trial_id"], row["status"], row.get("message", ""),
                                         row.get("diverged_step"))
        self.progress.batch_done()

    def on_experiment_end(self, trials, **info):
        if self.progress is not None:
            self.progress.close()


def _trial_name(trial) -> str:
    return f"bundle_{trial.config['bundle_index']:04d}"


def _trainable(bundles: list[list[dict]], skip: Sequence[str], options: LaunchOptions):
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    trainable = tune.with_parameters(bundle_trainable, bundles=bundles, skip_trial_ids=list(skip),
                                     generation=uuid.uuid4().hex)  # a new id for every driver run
    return tune.with_resources(trainable, resources)


def _run_config(out_dir: Path, options: LaunchOptions, n_total: int, callbacks: Sequence = ()):
    return tune.RunConfig(
        name=EXPERIMENT_NAME,
        storage_path=options.storage_path or str(out_dir),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        callbacks=[RecordsCallback(out_dir, n_total), *callbacks],
        verbose=0,
    )


def _mark_lost_setups_failed(out_dir: Path, results, setups_by_bundle: list[list[dict]]) -> None:
    """Setups of Tune trials that failed after every retry get a failed record naming the error."""
    errors = [str(result.error) for result in results if result.error]
    if not errors:
        return  # not an error: an interrupted run; `resume` will run what is left
    done = finished_trial_ids(out_dir)
    for setup in (setup for bundle in setups_by_bundle for setup in bundle):
        if setup["trial_id"] not in done:
            write_trial_records(out_dir, failed_row(setup, f"Tune trial failed after retries: {errors[0][:500]}", 0.0), [])


def _prune_checkpoints(experiment: Path) -> None:
    """Keep only each bundle's last checkpoint once every trial has its records.

    The others only served resumption. Local storage only: a bucket is left as it is.
    """
    if not experiment.is_dir():
        return
    for bundle in experiment.glob("bundle_*"):
        for old in sorted(bundle.glob("checkpoint_*"))[:-1]:
            shutil.rmtree(old, ignore_errors=True)


def _write_sweep_file(out_dir: Path, payload: dict) -> None:
    temporary = out_dir / f".{SWEEP_FILE}.tmp"
    temporary.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(temporary, out_dir / SWEEP_FILE)


def _sweep_file_payload(spec: SweepSpec, options: LaunchOptions, bundles: list[list[str]],
                        command: Sequence[str] | None, progress: ProgressSettings) -> dict:
    return {
        "spec": spec_to_dict(spec),
        "options": asdict(options),
        "progress": asdict(progress),
        "bundles": bundles,
        "package_version": PACKAGE_VERSION,
        "ray_version": ray.__version__,
        "python_version": sys.version.split()[0],
        "command": list(command) if command is not None else sys.argv,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _fit(out_dir: Path, setups: list[TrialSetup], bundles: list[list[str]], options: LaunchOptions,
         *, n_total: int, restore: bool, callbacks: Sequence = ()):
    quiet_tune()
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
            run_config=_run_config(out_dir, options, n_total, callbacks),
        )
    try:
        results = tuner.fit()
        _mark_lost_setups_failed(out_dir, results, setups_by_bundle)
    finally:  # an interrupted driver still leaves the consolidated tables of what it has
        trials_and_spectra = consolidate(out_dir)
    if set(by_id) <= set(trials_and_spectra[0]["trial_id"]):
        _prune_checkpoints(Path(experiment))
    return trials_and_spectra


def run_sweep(spec: SweepSpec, out_dir: str | Path, options: LaunchOptions = LaunchOptions(),
              *, command: Sequence[str] | None = None, progress: ProgressSettings = ProgressSettings(),
              callbacks: Sequence = ()):
    """Validate ``spec``, run it on Ray and write DIR's records; returns (trials, spectra).

    Every setup is validated before Ray starts: a wrong key or value raises SweepSpecError.
    ``progress`` says where the progress line goes (default: plain lines through logging);
    ``callbacks`` are more ``tune.Callback`` objects (a benchmark's probes).
    """
    setups = validate(spec)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    init_ray(options)
    bundles = plan_bundles(setups, count_slots(options), options.setups_per_task)
    logger.info("sweep %s: %d trials in %d Tune trials -> %s", spec.name, len(setups), len(bundles), out_dir)
    _write_sweep_file(out_dir, _sweep_file_payload(spec, options, bundles, command, progress))
    return _fit(out_dir, setups, bundles, options, n_total=len(setups), restore=False, callbacks=callbacks)


def read_sweep_file(out_dir: str | Path) -> dict:
    path = Path(out_dir) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {out_dir} is not a sweep folder written by `sweeps run`")
    return json.loads(path.read_text())


def resume_sweep(out_dir: str | Path, *, address: str | None = None, progress: ProgressSettings | None = None):
    """Finish an interrupted sweep in ``out_dir`` without rerunning its finished trials.

    ``progress``: where the progress line goes (default: as the first run said).
    """
    out_dir = Path(out_dir).resolve()
    saved = read_sweep_file(out_dir)
    spec = spec_from_dict(saved["spec"], source=str(out_dir / SWEEP_FILE))
    # The cluster of the first run may be gone: join the one named now (or RAY_ADDRESS / local).
    options = LaunchOptions(**{**saved["options"], "address": address})
    if progress is not None:
        saved["progress"] = asdict(progress)
        _write_sweep_file(out_dir, saved)
    setups = validate(spec)
    init_ray(options)
    experiment = os.path.join(options.storage_path or str(out_dir), EXPERIMENT_NAME)
    if tune.Tuner.can_restore(experiment):
        logger.info("resuming Tune experiment %s", experiment)
        return _fit(out_dir, setups, saved["bundles"], options, n_total=len(setups), restore=True)
    # Killed before Tune saved its state: start the setups without records afresh.
    done = finished_trial_ids(out_dir)
    remaining = [setup for setup in setups if setup.trial_id not in done]
    if not remaining:
        return consolidate(out_dir)
    bundles = plan_bundles(remaining, count_slots(options), options.setups_per_task)
    _write_sweep_file(out_dir, {**saved, "bundles": bundles})
    return _fit(out_dir, remaining, bundles, options, n_total=len(setups), restore=False)


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
