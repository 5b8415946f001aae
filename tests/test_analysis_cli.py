"""`python -m analysis DIR` end to end on synthetic records written to tmp_path."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_path_writes_every_output_with_the_known_classes(tmp_path, capsys):
    assert main([str(tmp_path), "--smoke-test", "--n-permutations", "999", "--quiet"]) == 0
    out = tmp_path / "analysis"
    for name in ("distances.parquet", "conjugacy_classes.csv", "pairwise_tests.csv",
                 "condition_distances.csv", "resolution.csv", "window_classes.csv", "report.md",
                 "report.html", "effects.png", "spectra.png", "distance_heatmap.png",
                 "between_within.png", "window_heatmap.png"):
        assert (out / name).stat().st_size > 0, name
    classes = pd.read_csv(out / "conjugacy_classes.csv").set_index("condition")["conjugacy_class"]
    assert classes["a"] == classes["b"] != classes["c"] and pd.isna(classes["single"])
    distances = pd.read_parquet(out / "distances.parquet")
    assert len(distances) == 19 ** 2  # 3 conditions x 6 seeds + 1 single seed, all ordered pairs
    report = (out / "report.md").read_text()
    assert "excluded trial a-seed99" in report and "![Eigenvalues" in report
    page = (out / "report.html").read_text()
    assert '<img src="distance_heatmap.png"' in page and "<table" in page
    verdicts = pd.read_csv(out / "pairwise_tests.csv").set_index(["condition_a", "condition_b"])["verdict"]
    assert verdicts[("a", "b")] == "equivalent" and verdicts[("a", "c")] == "distinct"
    printed = capsys.readouterr().out
    # The answer comes first, in words, then the class table.
    assert printed.startswith("class 1: a, b (equivalent to each other); distinct from c")
    assert "a and b: equivalent (effect" in printed and "conjugacy_class" in printed
    assert report.index("## Answer") < report.index("## Conjugacy classes") < report.index("## Configuration")


def test_a_margin_out_of_range_fails_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--margin", "-2"])
    assert "margin=-2.0" in capsys.readouterr().err
    assert not (tmp_path / "analysis").exists()


def test_imported_spectra_are_judged_against_the_sweep(tmp_path, capsys):
    from analysis.synthetic import centre_spectrum, write_synthetic_records

    write_synthetic_records(tmp_path)
    rng = np.random.default_rng(5)
    theirs = centre_spectrum(-0.3) + rng.normal(scale=0.01, size=(6, 10))  # like condition c
    np.save(tmp_path / "theirs.npy", theirs)
    assert main([str(tmp_path), "--import", f"{tmp_path / 'theirs.npy'}=theirs", "--quiet"]) == 0
    pairs = pd.read_csv(tmp_path / "analysis" / "pairwise_tests.csv").set_index(["condition_a", "condition_b"])
    assert pairs.loc[("c", "theirs"), "verdict"] == "equivalent"
    assert pairs.loc[("a", "theirs"), "verdict"] == "distinct"
    assert not pairs.loc[("c", "theirs"), "paired"]  # their seed 3 is not our seed 3


def test_empty_folder_gives_a_clear_error_and_exit_code(tmp_path, capsys):
    assert main([str(tmp_path), "--quiet"]) == 2
    assert "spectra.parquet is missing; the folder is empty" in capsys.readouterr().err


def test_module_entry_point_runs(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "analysis", str(tmp_path), "--smoke-test",
                                "--n-permutations", "99", "--quiet"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "tables, figures and report" in completed.stdout


def test_single_seed_sweep_is_reported_not_classified(tmp_path, capsys):
    # A sweep's smoke run has one seed per condition: nothing can be calibrated, and the
    # analysis must say so instead of inventing classes.
    from analysis.synthetic import synthetic_spectra
    synthetic_spectra({"omd": 0.0, "bisection": -0.3}, n_seeds=1).to_parquet(tmp_path / "spectra.parquet")
    assert main([str(tmp_path), "--quiet"]) == 0
    classes = pd.read_csv(tmp_path / "analysis" / "conjugacy_classes.csv")
    assert classes["conjugacy_class"].isna().all()
    verdicts = pd.read_csv(tmp_path / "analysis" / "pairwise_tests.csv")["verdict"]
    assert (verdicts == "undetermined").all()
    printed = capsys.readouterr().out
    assert "'omd' has a single seed" in printed and "trials.parquet is missing" in printed


def test_committed_records_rebuild_their_verdicts(tmp_path):
    # results/omd_ogd holds the records of the full-size rerun; the analysis rebuilds the
    # verdicts README reports from them (on a copy: the repository is not written to).
    import shutil

    for name in ("spectra.parquet", "trials.parquet"):
        shutil.copy(ROOT / "results" / "omd_ogd" / name, tmp_path / name)
    assert main([str(tmp_path), "--quiet", "--n-permutations", "999"]) == 0
    pairs = pd.read_csv(tmp_path / "analysis" / "pairwise_tests.csv")
    verdict = {frozenset((r.condition_a, r.condition_b)): r.verdict for r in pairs.itertuples()}
    omd, ogd, bisection = (f"validation_method={m}" for m in ("omd", "ogd", "bisection"))
    assert verdict[frozenset((omd, ogd))] == "equivalent"
    assert verdict[frozenset((omd, bisection))] == verdict[frozenset((ogd, bisection))] == "distinct"
