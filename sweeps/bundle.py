"""Running a bundle of trials one after another inside one Tune trial, resumably.

A *trial* in the records is one setup (grid point and seed). A Tune trial runs a *bundle* of
them in sequence in one worker process: fewer, fuller Tune trials are what keep the launcher's
overhead small (worker start-up, the torch import and Tune's bookkeeping are paid once per
bundle, not once per setup).

This module holds no Ray call: :func:`run_bundle` talks to its host through one callable,
``emit(metrics, checkpoint_state)``, and the ``resume`` state it starts from, so the launcher
(the one file that speaks Ray) maps them onto ``ray.tune.report`` and ``tune.get_checkpoint``.

Records travel in batches. A report is a round trip to the driver, which costs about as much
as a cheap trial, so finished trials wait until ``report_interval_s`` has passed since the last
batch (or until a checkpoint is due) and then go in one ``trials_done`` event, followed by a
checkpoint that moves ``position`` past them. The checkpoint state is a plain picklable dict
whose size does not depend on how many trials are done (their records are on the driver's
disk by then)::

    {"format": 2,
     "generation": str,          # the driver run that wrote it (see run_bundle)
     "position": int,            # setups[:position] are done and their records handed over
     "current": trial_id | None, # the setup in progress at the checkpoint
     "resume_state": dict | None,# run_trial's state for that setup
     "resume_count": int,        # how often that setup restarted from a checkpoint
     "placement": {...}}         # node and GPU ids of the attempt that wrote it
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from study.records import STATUS_FAILED, trial_row

logger = logging.getLogger(__name__)

EVENT_WINDOW = "window"  # a Koopman window closed inside a setup
EVENT_TRIALS_DONE = "trials_done"  # a batch of finished setups (ok, diverged or failed) with records
EVENT_CHECKPOINT = "bundle_checkpoint"  # the bundle's progress, with the state to checkpoint
STATE_FORMAT = 2
# Seconds between two batches of records: long enough that a report's round trip is a small
# share of a cheap trial's cost, short enough that progress and failures show up at once.
REPORT_INTERVAL_S = 1.0
# Trials per Tune trial when the cluster has no free slot yet (an autoscaler will add nodes).
SETUPS_PER_TASK_WHEN_SCALING = 4

Emit = Callable[[dict, "dict | None"], None]


def plan_bundles(setups: Sequence, n_slots: int, setups_per_task: int | None) -> list[list[str]]:
    """Deal setup ids round-robin into bundles, so each bundle mixes the grid's conditions.

    Each bundle then runs its setups seed by seed, every condition of a seed before the next
    seed: a sweep stopped partway (a session's end, a budget) holds whole seeds of every
    condition, which the analysis can compare, instead of all seeds of the first conditions.
    """
    if setups_per_task is None and n_slots < 1:
        setups_per_task = SETUPS_PER_TASK_WHEN_SCALING
    if setups_per_task is not None:
        n_bundles = math.ceil(len(setups) / setups_per_task)
    else:
        n_bundles = min(len(setups), n_slots)
    bundles: list[list] = [[] for _ in range(max(n_bundles, 1))]
    for index, setup in enumerate(setups):
        bundles[index % len(bundles)].append(setup)
    return [[setup.trial_id for setup in sorted(bundle, key=lambda setup: setup.seed)]
            for bundle in bundles if bundle]  # sorted() is stable: conditions keep their order


def empty_state(generation: str = "") -> dict:
    return {"format": STATE_FORMAT, "generation": generation, "position": 0, "current": None,
            "resume_state": None, "resume_count": 0, "placement": {}}


def failed_row(setup: Mapping[str, Any], message: str, wall_time_s: float) -> dict:
    """The trials.parquet row of a setup whose run_trial raised."""
    return trial_row(trial_id=setup["trial_id"], condition=setup["condition"],
                     seed=int(setup["seed"]), status=STATUS_FAILED, config=setup["config"],
                     n_steps_completed=0, wall_time_s=wall_time_s, message=message)


class _Courier:
    """Holds finished trials' records and hands them over in batches, each followed by a checkpoint."""

    def __init__(self, emit: Emit, state: dict, interval_s: float, clock: Callable[[], float]):
        self.emit, self.state, self.interval_s, self.clock = emit, state, interval_s, clock
        self.pending: list[dict] = []
        self.last_sent = clock()

    def due(self) -> bool:
        return self.clock() - self.last_sent >= self.interval_s

    def finished(self, position: int, payload: dict) -> None:
        self.pending.append({"position": position, **payload})
        self.state["current"], self.state["resume_state"], self.state["resume_count"] = None, None, 0
        if self.due():
            self.flush()

    def flush(self) -> None:
        """Records first, then the checkpoint that counts them done: a checkpoint never claims a
        trial whose records the driver has not been handed."""
        if self.pending:
            self.emit({"event": EVENT_TRIALS_DONE, "trials": self.pending}, None)
            self.state["position"] = self.pending[-1]["position"] + 1
            self.pending = []
            self.emit({"event": EVENT_CHECKPOINT, "position": self.state["position"]}, self.state)
        self.last_sent = self.clock()

    def window(self, metrics: dict, trial_state: dict | None) -> None:
        """A report from inside run_trial: a checkpoint moment (``trial_state``) or progress only."""
        if trial_state is None:
            if self.due():  # progress only: worth a round trip once per interval at most
                self.flush()
                self.emit(metrics, None)
            return
        self.flush()
        self.state["current"], self.state["resume_state"] = metrics["trial_id"], trial_state
        self.emit(metrics, self.state)


def _run_one(setup: Mapping[str, Any], state: dict, courier: _Courier, placement: Mapping[str, Any]) -> dict:
    """Run one setup (resuming it if the state says so); returns its record payload."""
    from study.trial import run_trial  # torch is imported in the worker, never in the driver

    trial_id = setup["trial_id"]
    resume_state = state["resume_state"] if state["current"] == trial_id else None
    resume_count = state["resume_count"] + 1 if resume_state is not None else 0
    state["resume_count"] = resume_count
    started_at = time.time()

    def report(metrics: Mapping[str, Any], trial_state: dict | None) -> None:
        courier.window({"event": EVENT_WINDOW, **dict(metrics), "trial_id": trial_id}, trial_state)

    try:
        result = run_trial(dict(setup["config"]), report, resume_state=resume_state)
        trial_row = result.trial_row(trial_id, setup["condition"])
        spectrum_rows = result.spectrum_rows(trial_id, setup["condition"])
    except Exception as error:  # a failing setup is a record, never the end of the sweep
        message = f"{type(error).__name__}: {error}"
        logger.debug("trial %s failed: %s\n%s", trial_id, message, traceback.format_exc())
        trial_row = failed_row(setup, message, time.time() - started_at)
        spectrum_rows = []
    trial_row.update(
        {
            "resume_count": resume_count,
            "started_at": started_at,
            "finished_at": time.time(),
            "hostname": socket.gethostname(),
            "process_id": os.getpid(),
            **placement,
        }
    )
    return {"trial_row": trial_row, "spectrum_rows": spectrum_rows}


def _starting_state(resume: dict | None, generation: str) -> tuple[dict, int]:
    """The state to start from and how many leading setups it vouches for as done."""
    if not resume or resume.get("format") != STATE_FORMAT:
        return empty_state(generation), 0
    state = dict(resume)
    # Same driver run: the driver was handed every record before `position`. Another run (the
    # driver was restarted): records on its disk decide, through skip_trial_ids.
    trusted = state["position"] if resume.get("generation") == generation else 0
    state["generation"] = generation
    return state, trusted


def run_bundle(
    setups: Sequence[Mapping[str, Any]],
    emit: Emit,
    *,
    resume: dict | None = None,
    skip_trial_ids: Sequence[str] = (),
    placement: Mapping[str, Any] | None = None,
    generation: str = "",
    report_interval_s: float = REPORT_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Run ``setups`` (dicts with trial_id, condition, seed, config) one after another.

    ``emit(metrics, state)`` is called with ``event="trials_done"`` and a list ``trials`` of
    ``{"position", "trial_row", "spectrum_rows"}`` at most every ``report_interval_s`` (and
    before every checkpoint), then with ``event="bundle_checkpoint"`` and the state to
    checkpoint; at a trial's own checkpoint moments (a Koopman window closing) with its window
    metrics and the state; progress-only window metrics at most once per interval.
    ``resume`` is the last checkpointed state: if ``generation`` (an id of the driver run)
    matches the one that wrote it, the setups before its ``position`` are done; otherwise only
    ``skip_trial_ids`` (setups whose records are on disk) are. The setup in progress resumes
    from its ``resume_state``. ``placement`` (GPU ids, node) is added to each trial row.
    Returns the final state.
    """
    state, trusted = _starting_state(resume, generation)
    state["placement"] = dict(placement or {})  # where this attempt runs (a retry may move)
    courier = _Courier(emit, state, report_interval_s, clock)
    skip = set(skip_trial_ids)
    for position, setup in enumerate(setups):
        if position < trusted or setup["trial_id"] in skip:
            continue
        courier.finished(position, _run_one(setup, state, courier, placement or {}))
    courier.flush()
    return state
