"""Spectra from outside a sweep, as conditions of their own.

Another group's saved eigenvalues (the paper's authors published theirs as numpy arrays), a
spreadsheet of spectra, or the output of another tool can be judged against a sweep's
conditions by the same verdicts. Accepted forms:

* a ``.npy`` array of complex eigenvalues, ``(n_seeds, k)`` (one spectrum per seed) or ``(k,)``
  (a single seed);
* a table (``.csv`` or ``.parquet``) in the long form of the records, with at least
  ``seed``, ``eig_real`` and ``eig_imag`` (and ``condition``, used when no name is given).

Imported spectra carry ``source`` (default: the file's name): seeds pair only within one
source, since seed 3 of someone else's run shares nothing with our seed 3.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from study.records import spectrum_rows


def spectra_from_array(eigenvalues, condition: str, *, source: str) -> pd.DataFrame:
    """Long-form spectra from complex eigenvalues ``(n_seeds, k)`` or ``(k,)``."""
    values = np.asarray(eigenvalues)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"imported eigenvalues for {condition!r} must be (n_seeds, k) or (k,); "
                         f"got shape {values.shape}")
    rows = []
    for seed, spectrum in enumerate(values):
        rows += spectrum_rows(trial_id=f"{source}:{condition}:{seed}", condition=condition,
                              seed=seed, window_index=0, window_start=0, window_end=0,
                              eigenvalues=spectrum, residual=float("nan"))
    return pd.DataFrame(rows).assign(source=source)


def spectra_from_file(path, condition: str | None = None, *, source: str | None = None) -> pd.DataFrame:
    """Long-form spectra from a ``.npy`` array or a ``.csv`` / ``.parquet`` table."""
    path = Path(path)
    source = source or path.name
    if not path.is_file():
        raise ValueError(f"imported spectra file {path} does not exist")
    if path.suffix == ".npy":
        if condition is None:
            raise ValueError(f"give a condition name for the array {path} (FILE=CONDITION)")
        return spectra_from_array(np.load(path, allow_pickle=False), condition, source=source)
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in ("seed", "eig_real", "eig_imag") if c not in table.columns]
    if missing:
        raise ValueError(f"imported table {path} lacks the columns {missing}")
    if condition is not None:
        table = table.assign(condition=condition)
    elif "condition" not in table.columns:
        raise ValueError(f"imported table {path} has no condition column: give FILE=CONDITION")
    if "trial_id" not in table.columns:
        table = table.assign(trial_id=[f"{source}:{c}:{s}" for c, s in zip(table["condition"], table["seed"])])
    return table.assign(source=source)


def import_spectra_argument(records, argument: str):
    """``records`` with the spectra of ``FILE=CONDITION`` (or ``FILE``) appended."""
    path, _, condition = argument.partition("=")
    imported = spectra_from_file(path, condition or None)
    clash = set(imported["condition"]) & set(records.spectra["condition"])
    if clash:
        raise ValueError(f"imported condition names {sorted(clash)} are already in the sweep; "
                         "give another name with FILE=CONDITION")
    spectra = pd.concat([records.spectra, imported], ignore_index=True)
    notes = records.notes + [f"imported {imported['seed'].nunique()} spectra of "
                             f"{sorted(imported['condition'].unique())} from {path}"]
    return replace(records, spectra=spectra, notes=notes)
