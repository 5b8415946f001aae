"""Loading records from real Parquet files in tmp_path, including every kind of bad input."""

import json

import pandas as pd
import pytest

from analysis.records import RecordsError, config_summary, load_records
from analysis.synthetic import synthetic_spectra, trials_table, write_synthetic_records


def write(directory, spectra=None, trials=None):
    if spectra is not None:
        spectra.to_parquet(directory / "spectra.parquet")
    if trials is not None:
        trials.to_parquet(directory / "trials.parquet")
    return directory


def test_clean_records_load_completely(tmp_path):
    spectra = synthetic_spectra({"a": 0.0, "b": 0.1}, n_seeds=3)
    records = load_records(write(tmp_path, spectra, trials_table(spectra)))
    assert len(records.spectra) == len(spectra) and records.notes == []
    assert records.excluded_trials.empty


def test_empty_folder_is_named(tmp_path):
    with pytest.raises(RecordsError, match=r"spectra.parquet is missing; the folder is empty"):
        load_records(tmp_path)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(RecordsError, match="does not exist"):
        load_records(tmp_path / "nowhere")


def test_corrupt_spectra_file_is_named(tmp_path):
    (tmp_path / "spectra.parquet").write_bytes(b"this is not parquet \x00\x01\x02" * 10)
    with pytest.raises(RecordsError, match=r"spectra.parquet is not a readable Parquet file"):
        load_records(tmp_path)


def test_corrupt_trials_file_is_a_note_and_the_analysis_goes_on(tmp_path):
    spectra = synthetic_spectra({"a": 0.0}, n_seeds=2)
    write(tmp_path, spectra)
    (tmp_path / "trials.parquet").write_bytes(b"\x89garbage" * 50)
    records = load_records(tmp_path)
    assert len(records.spectra) == len(spectra) and records.trials is None
    assert any("trials.parquet is not a readable Parquet file" in n for n in records.notes)


def test_missing_trials_file_is_a_note(tmp_path):
    records = load_records(write(tmp_path, synthetic_spectra({"a": 0.0}, n_seeds=2)))
    assert any("trials.parquet is missing" in note and "statuses are unknown" in note
               for note in records.notes)


def test_spectra_without_needed_columns_are_named(tmp_path):
    spectra = synthetic_spectra({"a": 0.0}, n_seeds=2).drop(columns=["eig_imag"])
    with pytest.raises(RecordsError, match=r"lacks the columns \['eig_imag'\]"):
        load_records(write(tmp_path, spectra))


def test_diverged_trial_excluded_and_ok_trial_without_spectrum_named(tmp_path):
    write_synthetic_records(tmp_path, n_seeds=3)  # holds diverged trial a-seed99
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    extra = trials.iloc[[0]].assign(trial_id="b-seed7", condition="b", seed=7)
    pd.concat([trials, extra]).to_parquet(tmp_path / "trials.parquet")
    records = load_records(tmp_path)
    assert "a-seed99" not in set(records.spectra["trial_id"])
    reasons = records.excluded_trials.set_index("trial_id")["reason"]
    assert reasons["a-seed99"].startswith("status 'diverged' at step 17")
    assert reasons["b-seed7"] == "status 'ok' but no spectrum rows"
    assert any("excluded trial a-seed99" in n and "loss became NaN" in n for n in records.notes)
    assert any("trial b-seed7 has status 'ok' but no spectrum" in n for n in records.notes)


def test_run_description_and_config_summary(tmp_path):
    spectra = synthetic_spectra({"a": 0.0}, n_seeds=2)
    write(tmp_path, spectra, trials_table(spectra))
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "fcn_width", "quick": True}))
    records = load_records(tmp_path)
    assert '"name": "fcn_width"' in records.run_description["sweep.json"]
    summary = config_summary(records.trials).set_index("key")
    assert summary.loc["learning_rate", "values"] == "0.1" and "status" not in summary.index
    assert not summary.loc["learning_rate", "varies"]


def test_config_summary_puts_varying_keys_first_and_drops_provenance():
    trials = pd.DataFrame({"trial_id": ["x", "y"], "status": ["ok", "ok"], "optimizer": ["sgd"] * 2,
                           "width": [5, 40], "hostname": ["a", "b"]})
    summary = config_summary(trials)
    assert list(summary["key"]) == ["width", "optimizer"]
    assert summary.loc[0, "values"] == "40, 5" and summary.loc[0, "varies"]


def test_part_files_are_read_when_the_consolidated_file_is_missing(tmp_path):
    # A sweep stopped before consolidating leaves DIR/records/<trial>.spectra.parquet parts.
    spectra = synthetic_spectra({"a": 0.0}, n_seeds=3)
    parts = tmp_path / "records"
    parts.mkdir()
    for trial_id, frame in spectra.groupby("trial_id"):
        frame.to_parquet(parts / f"{trial_id}.spectra.parquet")
    (parts / "a-seed9.spectra.parquet").write_bytes(b"half a file")
    trials_table(spectra).to_parquet(tmp_path / "trials.parquet")
    records = load_records(tmp_path)
    assert len(records.spectra) == len(spectra)
    assert any("a-seed9.spectra.parquet is not a readable Parquet file" in n for n in records.notes)
    assert any("read 3 of 4 part files" in n for n in records.notes)


def test_spectra_file_with_no_rows_is_named(tmp_path):
    spectra = synthetic_spectra({"a": 0.0}, n_seeds=2)
    with pytest.raises(RecordsError, match="no valid spectra in"):
        load_records(write(tmp_path, spectra.iloc[:0], trials_table(spectra)))
