"""Writing a sweep's records to disk as trials finish (schema: :mod:`study.records`).

Records arrive in batches (one batch per report of a bundle). Each batch gets two part files
under ``DIR/records/``: ``<batch>.spectra.parquet`` (one row per eigenvalue) and
``<batch>.trial.parquet`` (one row per trial), both written to a temporary name and renamed,
so a reader or a killed driver never sees half a file; the trial file is written last and
marks its trials as finished. ``<batch>`` is the first trial's id, its bundle and position.

``DIR/trials.parquet`` and ``DIR/spectra.parquet`` are the part files put together once, when
the sweep ends: the parts are the table, appended to as batches come, and no part is read
again while the sweep runs (rebuilding from every part on every batch made a sweep's cost
grow with the square of its trials).

Pure Python (pandas/pyarrow): no Ray here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as parquet

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


def _part_name(first_trial_id: str, bundle_index: int | None, position: int | None) -> str:
    if bundle_index is None:
        return first_trial_id
    return f"{first_trial_id}.b{bundle_index}p{position}"


def write_batch_records(out_dir: str | Path, payloads: Sequence[Mapping[str, Any]], *,
                        bundle_index: int | None = None) -> Path | None:
    """Write one batch of finished trials (``{"trial_row", "spectrum_rows"}`` each) as two parts.

    Returns the trial part's path (None for an empty batch).
    """
    if not payloads:
        return None
    for payload in payloads:
        missing = missing_columns(payload["trial_row"], TRIAL_REQUIRED_COLUMNS)
        if missing:
            raise ValueError(f"trial row for {payload['trial_row'].get('trial_id')!r} lacks columns {missing}")
    folder = Path(out_dir) / RECORDS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    first = payloads[0]
    name = _part_name(str(first["trial_row"]["trial_id"]), bundle_index, first.get("position"))
    rows = [row for payload in payloads for row in payload["spectrum_rows"]]
    _write_atomically(pd.DataFrame(rows, columns=list(SPECTRUM_COLUMNS)), folder / f"{name}{SPECTRA_PART_SUFFIX}")
    trials = pd.DataFrame([{key: _plain(value) for key, value in payload["trial_row"].items()}
                           for payload in payloads])
    path = folder / f"{name}{TRIAL_PART_SUFFIX}"
    _write_atomically(trials, path)
    return path


def write_trial_records(out_dir: str | Path, trial_row: Mapping[str, Any],
                        spectrum_rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write one finished trial's part files (a batch of one, named by its trial id)."""
    return write_batch_records(out_dir, [{"trial_row": trial_row, "spectrum_rows": spectrum_rows}])


def _trial_parts(out_dir: str | Path) -> list[Path]:
    folder = Path(out_dir) / RECORDS_FOLDER
    return sorted(folder.glob(f"*{TRIAL_PART_SUFFIX}")) if folder.is_dir() else []


def finished_trial_ids(out_dir: str | Path) -> set[str]:
    """Ids of the trials whose records are complete on disk (reads each part's trial_id column)."""
    finished: set[str] = set()
    for path in _trial_parts(out_dir):
        try:
            finished.update(parquet.read_table(path, columns=["trial_id"]).column(0).to_pylist())
        except (OSError, ValueError) as error:  # a corrupt part: its trials count as not run
            logger.error("skipping unreadable record file %s: %s", path, error)
    return finished


def _read_parts(paths: Iterable[Path]) -> list[pd.DataFrame]:
    frames = []
    for path in paths:
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError) as error:  # a corrupt part must not lose the others
            logger.error("skipping unreadable record file %s: %s", path, error)
    return frames


def _first_of_each_trial(trials: pd.DataFrame, spectra: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One record per trial: the first written, in case a crash let a trial be written twice."""
    if not len(trials):
        return trials, spectra
    trials = trials.sort_values(["trial_id", "_part"], kind="stable")
    keep = trials.drop_duplicates("trial_id")[["trial_id", "_part"]]
    if len(spectra):
        spectra = spectra.merge(keep, on=["trial_id", "_part"], how="inner")
    return keep.merge(trials, on=["trial_id", "_part"]), spectra


def consolidate(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Put the part files together into ``DIR/trials.parquet`` and ``DIR/spectra.parquet``.

    Returns ``(trials, spectra)``, sorted by trial id (a trial's spectrum rows in the order it
    wrote them); a trial's spectrum counts only where its trial part exists.
    """
    out_dir = Path(out_dir)
    trial_paths = sorted(_trial_parts(out_dir), key=lambda path: path.stat().st_mtime_ns)  # oldest first
    trial_frames, spectra_frames = [], []
    for index, path in enumerate(trial_paths):
        spectra_path = path.with_name(path.name[: -len(TRIAL_PART_SUFFIX)] + SPECTRA_PART_SUFFIX)
        for frames, source in ((trial_frames, path), (spectra_frames, spectra_path)):
            frames.extend(frame.assign(_part=index) for frame in _read_parts([source]) if len(frame))
    trials = (pd.concat(trial_frames, ignore_index=True) if trial_frames
              else pd.DataFrame(columns=list(TRIAL_REQUIRED_COLUMNS) + ["_part"]))
    spectra = (pd.concat(spectra_frames, ignore_index=True) if spectra_frames
               else pd.DataFrame(columns=list(SPECTRUM_COLUMNS) + ["_part"]))
    trials, spectra = _first_of_each_trial(trials, spectra)
    trials = trials.drop(columns="_part").sort_values("trial_id", kind="stable").reset_index(drop=True)
    # By trial only, and stably: within a trial the rows keep the order the trial wrote them in.
    spectra = spectra.drop(columns="_part").sort_values("trial_id", kind="stable").reset_index(drop=True)
    _write_atomically(trials, out_dir / TRIALS_FILE)
    _write_atomically(spectra, out_dir / SPECTRA_FILE)
    return trials, spectra
