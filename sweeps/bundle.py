"""Running a bundle of trials one after another inside one Tune trial, resumably.

A *trial* in the records is one setup (grid point and seed). A Tune trial runs a *bundle* of
them in sequence in one worker process: fewer, fuller Tune trials are what keep the launcher's
overhead small (worker start-up, torch import and Tune bookkeeping are paid once per bundle,
not once per setup; issue 4's benchmark).

This module holds no Ray call: :func:`run_bundle` talks to its host through two callables,
``emit(metrics, checkpoint_state)`` and the ``resume`` state it starts from, so the launcher
(the one file that speaks Ray) maps them onto ``ray.tune.report`` and ``tune.get_checkpoint``.

The checkpoint state is a plain picklable dict::

    {"completed": {trial_id: {"trial_row": {...}, "spectrum_rows": [...]}},
     "current": trial_id | None,          # the setup in progress at the checkpoint
     "resume_state": dict | None,         # run_trial's state for that setup
     "resume_counts": {trial_id: int},    # how often each setup restarted from a checkpoint
     "placement": {...}}                  # node and GPU ids of the attempt that wrote it

Finished setups keep their records inside the state so that a record can always be rebuilt
from the last checkpoint, even where the driver died before writing it.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from study.records import STATUS_FAILED, PACKAGE_VERSION

logger = logging.getLogger(__name__)

EVENT_WINDOW = "window"  # a Koopman window closed inside a setup
EVENT_TRIAL_DONE = "trial_done"  # a setup finished (ok, diverged or failed) with its records

Emit = Callable[[dict, "dict | None"], None]


def empty_state() -> dict:
    return {"completed": {}, "current": None, "resume_state": None, "resume_counts": {}}


def failed_row(setup: Mapping[str, Any], message: str, wall_time_s: float) -> dict:
    """The trials.parquet row of a setup whose run_trial raised."""
    return {
        "trial_id": setup["trial_id"],
        "condition": setup["condition"],
        "seed": int(setup["seed"]),
        "status": STATUS_FAILED,
        "diverged_step": None,
        "message": message,
        **dict(setup["config"]),
        "n_steps_completed": 0,
        "wall_time_s": wall_time_s,
        "package_version": PACKAGE_VERSION,
    }


def _run_one(setup: Mapping[str, Any], state: dict, emit: Emit, placement: Mapping[str, Any]) -> dict:
    """Run one setup (resuming it if the state says so); returns its record payload."""
    from study.trial import run_trial  # torch is imported in the worker, never in the driver

    trial_id = setup["trial_id"]
    resume_state = state["resume_state"] if state["current"] == trial_id else None
    if resume_state is not None:
        state["resume_counts"][trial_id] = state["resume_counts"].get(trial_id, 0) + 1
    started_at = time.time()

    def report(metrics: Mapping[str, Any], trial_state: dict | None) -> None:
        payload = {"event": EVENT_WINDOW, **dict(metrics), "trial_id": trial_id}
        if trial_state is None:
            emit(payload, None)
            return
        state["current"], state["resume_state"] = trial_id, trial_state
        emit(payload, state)

    try:
        result = run_trial(dict(setup["config"]), report, resume_state=resume_state)
        trial_row = result.trial_row(trial_id, setup["condition"])
        spectrum_rows = result.spectrum_rows(trial_id, setup["condition"])
    except Exception as error:  # a failing setup is a record, never the end of the sweep
        message = f"{type(error).__name__}: {error}"
        logger.error("trial %s failed: %s\n%s", trial_id, message, traceback.format_exc())
        trial_row = failed_row(setup, message, time.time() - started_at)
        spectrum_rows = []
    trial_row.update(
        {
            "resume_count": state["resume_counts"].get(trial_id, 0),
            "started_at": started_at,
            "finished_at": time.time(),
            "hostname": socket.gethostname(),
            "process_id": os.getpid(),
            **placement,
        }
    )
    return {"trial_row": trial_row, "spectrum_rows": spectrum_rows}


def run_bundle(
    setups: Iterable[Mapping[str, Any]],
    emit: Emit,
    *,
    resume: dict | None = None,
    skip_trial_ids: Iterable[str] = (),
    placement: Mapping[str, Any] | None = None,
) -> dict:
    """Run ``setups`` (dicts with trial_id, condition, seed, config) one after another.

    ``emit(metrics, state)`` is called as each Koopman window closes (``state`` set at
    checkpoint moments) and once per finished setup with ``event="trial_done"``, its
    ``trial_row`` and ``spectrum_rows``, and the state to checkpoint. ``resume`` is the last
    checkpointed state; finished setups in it are re-emitted (writing records is idempotent)
    and the setup in progress resumes from its ``resume_state``. ``skip_trial_ids`` are setups
    whose records already exist. ``placement`` (GPU ids, node) is added to each trial row.
    Returns the final state.
    """
    state = copy.deepcopy(resume) if resume else empty_state()
    state["placement"] = dict(placement or {})  # where this attempt runs (a retry may move)
    skip = set(skip_trial_ids)
    for trial_id, payload in state["completed"].items():
        emit({"event": EVENT_TRIAL_DONE, "trial_id": trial_id, **payload}, None)
    for setup in setups:
        trial_id = setup["trial_id"]
        if trial_id in state["completed"] or trial_id in skip:
            continue
        payload = _run_one(setup, state, emit, placement or {})
        state["completed"][trial_id] = payload
        state["current"], state["resume_state"] = None, None
        emit({"event": EVENT_TRIAL_DONE, "trial_id": trial_id, **payload}, state)
    return state
