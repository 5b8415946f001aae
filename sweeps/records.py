"""Writing a sweep's records to disk as trials finish (schema: :mod:`study.records`).

Each finished trial (one setup and seed) gets two part files under ``DIR/records/``:
``<trial_id>.spectra.parquet`` (one row per eigenvalue) and ``<trial_id>.trial.parquet`` (one
row). Both are written to a temporary name and renamed, so a reader or a killed driver never
sees half a file; the trial file is written last and marks the trial as finished. Writing the
same trial again replaces its files, which is why a resumed sweep never duplicates a trial.
``DIR/spectra.parquet`` and ``DIR/trials.parquet`` are consolidated from the parts.

Pure Python (pandas/pyarrow): no Ray here.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.records import (RECORDS_FOLDER, SPECTRA_FILE, SPECTRA_PART_SUFFIX, SPECTRUM_COLUMNS,
                           TRIAL_PART_SUFFIX, TRIAL_REQUIRED_COLUMNS, TRIALS_FILE, missing_columns)

logger = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """A Parquet-friendly scalar: sequences and mappings become JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(temporary, index=False)
    os.replace(temporary, path)


def write_trial_records(
    out_dir: str | Path, trial_row: Mapping[str, Any], spectrum_rows: Sequence[Mapping[str, Any]]
) -> Path:
    """Write one finished trial's part files; returns the trial part's path."""
    missing = missing_columns(trial_row, TRIAL_REQUIRED_COLUMNS)
    if missing:
        raise ValueError(f"trial row for {trial_row.get('trial_id')!r} lacks columns {missing}")
    folder = Path(out_dir) / RECORDS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    trial_id = str(trial_row["trial_id"])
    spectra = pd.DataFrame(list(spectrum_rows), columns=list(SPECTRUM_COLUMNS))
    _write_atomically(spectra, folder / f"{trial_id}{SPECTRA_PART_SUFFIX}")
    trial = pd.DataFrame([{key: _plain(value) for key, value in trial_row.items()}])
    path = folder / f"{trial_id}{TRIAL_PART_SUFFIX}"
    _write_atomically(trial, path)
    return path


def finished_trial_ids(out_dir: str | Path) -> set[str]:
    """Ids of the trials whose records are complete on disk."""
    folder = Path(out_dir) / RECORDS_FOLDER
    if not folder.is_dir():
        return set()
    return {path.name[: -len(TRIAL_PART_SUFFIX)] for path in folder.glob(f"*{TRIAL_PART_SUFFIX}")}


def _read_parts(paths: list[Path]) -> list[pd.DataFrame]:
    frames = []
    for path in paths:
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError) as error:  # a corrupt part must not lose the others
            logger.error("skipping unreadable record file %s: %s", path, error)
    return frames


def consolidate(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild ``DIR/trials.parquet`` and ``DIR/spectra.parquet`` from the part files.

    Returns ``(trials, spectra)``; only trials whose trial part exists are included.
    """
    out_dir = Path(out_dir)
    finished = sorted(finished_trial_ids(out_dir))
    folder = out_dir / RECORDS_FOLDER
    trial_frames = _read_parts([folder / f"{trial_id}{TRIAL_PART_SUFFIX}" for trial_id in finished])
    spectra_frames = _read_parts([folder / f"{trial_id}{SPECTRA_PART_SUFFIX}" for trial_id in finished])
    trials = (
        pd.concat(trial_frames, ignore_index=True)
        if trial_frames
        else pd.DataFrame(columns=list(TRIAL_REQUIRED_COLUMNS))
    )
    spectra_frames = [frame for frame in spectra_frames if len(frame)]
    spectra = (
        pd.concat(spectra_frames, ignore_index=True)
        if spectra_frames
        else pd.DataFrame(columns=list(SPECTRUM_COLUMNS))
    )
    _write_atomically(trials, out_dir / TRIALS_FILE)
    _write_atomically(spectra, out_dir / SPECTRA_FILE)
    return trials, spectra


class ThrottledConsolidator:
    """Consolidates at most every ``interval_s`` seconds, and always when forced.

    Re-reading every part file after every trial costs O(n_trials²) over a sweep; a few
    seconds between consolidations keeps big sweeps cheap and small ones current.
    """

    def __init__(self, out_dir: str | Path, interval_s: float = 5.0):
        self.out_dir = Path(out_dir)
        self.interval_s = interval_s  # seconds between two consolidations
        self._last = 0.0
        self._pending = False

    def trial_written(self) -> None:
        self._pending = True
        if time.monotonic() - self._last >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        consolidate(self.out_dir)
        self._last = time.monotonic()
        self._pending = False
