"""Load and validate a sweep's records: ``DIR/spectra.parquet`` and ``DIR/trials.parquet``.

Schema: :mod:`study.records`. Every problem is named (file, trial, condition) in
:attr:`Records.notes` and the analysis goes on with what is valid; only a folder with no
readable spectra at all raises :class:`RecordsError`. Trials whose status is not "ok"
(diverged, failed) are removed from the spectra, never mixed into a class.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from study.config import FLAT_KEYS, keys_for_trial_type
from study.records import (RECORDS_FOLDER, SPECTRA_FILE, SPECTRA_PART_SUFFIX, SPECTRUM_COLUMNS,
                           STATUS_OK, TRIAL_PART_SUFFIX, TRIAL_REQUIRED_COLUMNS, TRIALS_FILE,
                           missing_columns)

logger = logging.getLogger(__name__)

SPECTRA_NEEDED = ("condition", "seed", "eig_real", "eig_imag")  # the analysis cannot do without
MAX_DESCRIPTION_LINES = 60
RUN_DESCRIPTION_FILES = ("sweep.json", "config.json", "config.yaml", "config")


class RecordsError(ValueError):
    """The records folder holds nothing the analysis can use; the message says what and where."""


@dataclass
class Records:
    """Validated records of one sweep.

    ``spectra``: long form, one row per eigenvalue, only trials with status "ok" (or of
    unknown status when ``trials.parquet`` is missing). ``trials``: one row per trial, as
    read. ``excluded_trials``: one row per trial left out, with ``reason``. ``run_description``:
    text of ``sweep.json``/``config`` files the sweeps layer may have written (file -> text).
    """

    directory: Path
    spectra: pd.DataFrame
    trials: pd.DataFrame | None
    excluded_trials: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    run_description: dict[str, str] = field(default_factory=dict)


def read_parquet_file(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """The table at ``path``, or ``None`` and a message naming the file and the problem."""
    if not path.exists():
        return None, f"{path} is missing"
    try:
        return pd.read_parquet(path), None
    except Exception as error:  # pyarrow raises several types for damaged files
        return None, f"{path} is not a readable Parquet file ({type(error).__name__}: {error})"


def load_records(directory) -> Records:
    """Read, validate and clean the records of ``directory`` (see the module docstring)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RecordsError(f"records folder {directory} does not exist or is not a folder")
    notes = []
    spectra, problem = _read_table(directory, SPECTRA_FILE, SPECTRA_PART_SUFFIX, notes)
    if spectra is None:
        contents = sorted(p.name for p in directory.iterdir())
        hint = "the folder is empty" if not contents else f"it holds {contents[:10]}"
        raise RecordsError(f"no usable spectra: {problem}; {hint}. Run a sweep into this folder "
                           "first (python -m sweeps run NAME --out DIR)")
    absent = missing_columns(spectra.columns, SPECTRA_NEEDED)
    if absent:
        raise RecordsError(f"{directory / SPECTRA_FILE} lacks the columns {absent}")
    other_absent = missing_columns(spectra.columns, SPECTRUM_COLUMNS)
    if other_absent:
        notes.append(f"{directory / SPECTRA_FILE} lacks the schema columns {other_absent}; "
                     "going on without them")
    trials, problem = _read_table(directory, TRIALS_FILE, TRIAL_PART_SUFFIX, notes)
    if problem:
        notes.append(f"{problem}: trial statuses are unknown, so every spectrum is used and no "
                     "diverged or failed trial can be excluded")
    elif absent_trial := missing_columns(trials.columns, ("trial_id", "status")):
        notes.append(f"{directory / TRIALS_FILE} lacks {absent_trial}: statuses unknown")
        trials = None
    else:
        missing_optional = missing_columns(trials.columns, TRIAL_REQUIRED_COLUMNS)
        if missing_optional:
            notes.append(f"{directory / TRIALS_FILE} lacks the schema columns {missing_optional}")
    spectra, excluded = _exclude_bad_trials(spectra, trials, notes)
    if spectra.empty:
        raise RecordsError(f"no valid spectra in {directory}: " + "; ".join(notes))
    return Records(directory, spectra, trials, excluded, notes, read_run_description(directory))


def _read_table(directory: Path, name: str, part_suffix: str, notes: list[str]):
    """``DIR/name``; when it is missing or unreadable, the sweep's per-trial part files.

    The sweeps layer writes ``DIR/records/<trial_id><part_suffix>`` as each trial finishes and
    consolidates them into ``DIR/name``; a sweep stopped before consolidating still has parts.
    Unreadable parts are named in ``notes`` and skipped.
    """
    table, problem = read_parquet_file(directory / name)
    parts = sorted((directory / RECORDS_FOLDER).glob(f"*{part_suffix}"))
    if table is not None or not parts:
        return table, problem
    frames = []
    for part in parts:
        frame, part_problem = read_parquet_file(part)
        if frame is None:
            notes.append(f"{part_problem}; that trial is left out")
        else:
            frames.append(frame)
    notes.append(f"{problem}; read {len(frames)} of {len(parts)} part files in "
                 f"{directory / RECORDS_FOLDER} instead")
    if not frames:
        return None, f"{problem}, and none of its part files is readable"
    return pd.concat(frames, ignore_index=True), None


def _exclude_bad_trials(spectra, trials, notes):
    """Drop spectra of trials whose status is not "ok"; name trials without a spectrum."""
    excluded_rows = []
    if trials is not None and "trial_id" in spectra.columns:
        status = trials.set_index("trial_id")["status"]
        bad = trials[trials["status"] != STATUS_OK]
        for row in bad.itertuples(index=False):
            message = getattr(row, "message", "") or ""
            step = getattr(row, "diverged_step", None)
            where = f" at step {int(step)}" if step is not None and pd.notna(step) else ""
            excluded_rows.append({"trial_id": row.trial_id, "condition": getattr(row, "condition", ""),
                                  "seed": getattr(row, "seed", pd.NA),
                                  "reason": f"status {row.status!r}{where}. {message}".strip()})
            notes.append(f"excluded trial {row.trial_id} ({getattr(row, 'condition', '?')}, seed "
                         f"{getattr(row, 'seed', '?')}): status {row.status!r}{where}"
                         + (f": {message}" if message else ""))
        spectra = spectra[~spectra["trial_id"].isin(bad["trial_id"])]
        with_spectrum = set(spectra["trial_id"])
        for row in trials[trials["status"] == STATUS_OK].itertuples(index=False):
            if row.trial_id not in with_spectrum:
                excluded_rows.append({"trial_id": row.trial_id,
                                      "condition": getattr(row, "condition", ""),
                                      "seed": getattr(row, "seed", pd.NA),
                                      "reason": "status 'ok' but no spectrum rows"})
                notes.append(f"trial {row.trial_id} has status 'ok' but no spectrum in "
                             f"{SPECTRA_FILE}; left out")
        unknown = sorted(set(spectra["trial_id"]) - set(status.index))
        if unknown:
            notes.append(f"{len(unknown)} trials have spectra but no row in {TRIALS_FILE} "
                         f"(status unknown, kept): {unknown[:10]}")
    excluded = pd.DataFrame(excluded_rows, columns=["trial_id", "condition", "seed", "reason"])
    return spectra.reset_index(drop=True), excluded


def read_run_description(directory: Path) -> dict[str, str]:
    """Text of whatever run description the sweeps layer wrote (absent files are fine)."""
    found = {}
    for name in RUN_DESCRIPTION_FILES:
        path = directory / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            found[name] = f"(unreadable: {error})"
            continue
        if name.endswith(".json"):
            try:
                text = json.dumps(json.loads(text), indent=2, sort_keys=True)
            except json.JSONDecodeError:
                pass  # show the raw text: a half-written file is still informative
        lines = text.splitlines()
        if len(lines) > MAX_DESCRIPTION_LINES:  # a sweep.json lists every trial: keep the page short
            text = "\n".join(lines[:MAX_DESCRIPTION_LINES] + [f"... ({len(lines)} lines; see {path})"])
        found[name] = text
    return found


PROVENANCE_COLUMNS = frozenset({  # when and where a trial ran, not what was run
    "started_at", "finished_at", "hostname", "process_id", "bundle_started_at", "gpu_ids",
    "cuda_visible_devices", "node_id", "tune_trial_id", "resume_count", "device_used",
    "n_windows", "diverged_step", "message"})


def config_summary(trials: pd.DataFrame | None) -> pd.DataFrame:
    """What was run: one row per config column of ``trials``, varying columns first.

    Columns: ``key``, ``varies`` (True when the column takes several values across trials),
    ``values`` (the distinct values, as text). Outcome, identity and provenance columns
    (timestamps, hosts, Ray ids) are left out, and so are config keys that apply to none of
    the trial types present (a validation trial has no learning rate).
    """
    if trials is None or trials.empty:
        return pd.DataFrame(columns=["key", "varies", "values"])
    skip = set(TRIAL_REQUIRED_COLUMNS) | PROVENANCE_COLUMNS | {"trial_id", "condition"}
    skip |= {c for c in trials.columns if c.startswith("final_")}
    if "trial_type" in trials.columns:
        applicable = set().union(*(keys_for_trial_type(str(t)) for t in trials["trial_type"].unique()))
        skip |= {c for c in trials.columns if c in FLAT_KEYS and c not in applicable}
    rows = []
    for column in trials.columns:
        if column in skip:
            continue
        values = sorted({str(v) for v in trials[column].tolist()})
        shown = ", ".join(values[:12]) + (f", ... ({len(values)} values)" if len(values) > 12 else "")
        rows.append({"key": column, "varies": len(values) > 1, "values": shown})
    table = pd.DataFrame(rows, columns=["key", "varies", "values"])
    return table.sort_values("varies", ascending=False, kind="stable").reset_index(drop=True)
