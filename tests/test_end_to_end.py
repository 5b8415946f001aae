"""Every named sweep end to end: the real launcher on a real local Ray, then the real analysis.

``omd_ogd`` runs at the paper's full size through the command line (it is seconds of work) and
must give the paper's validation outcome. Every other sweep runs its ``--quick`` preset and
must leave complete, well-formed records and a complete report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from analysis.__main__ import main as analysis_main  # noqa: E402
from analysis.distances import spectral_distance  # noqa: E402
from study.records import SPECTRUM_COLUMNS, TRIAL_REQUIRED_COLUMNS  # noqa: E402
from sweeps.cli import first_seeds  # noqa: E402
from sweeps.definitions import get_sweep  # noqa: E402
from sweeps.launcher import LaunchOptions, run_sweep  # noqa: E402
from sweeps.spec import expand  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS_FILES = ("conjugacy_classes.csv", "pairwise_tests.csv", "distances.parquet",
                  "resolution.csv", "report.md", "report.html", "spectra.png",
                  "distance_heatmap.png", "effects.png")


@pytest.fixture(scope="module")
def local_ray():
    # One Ray for the module; the launcher joins it instead of starting its own.
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
             object_store_memory=100 * 2**20,
             _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def spectrum_of(spectra: pd.DataFrame, condition: str, seed: int) -> np.ndarray:
    rows = spectra[(spectra["condition"] == condition) & (spectra["seed"] == seed)
                   & (spectra["estimate"] == "recorded")]  # not the resolution variants
    return rows["eig_real"].to_numpy() + 1j * rows["eig_imag"].to_numpy()


def test_omd_ogd_full_size_through_the_command_line_gives_the_validation_outcome(tmp_path):
    out = tmp_path / "omd_ogd"
    completed = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", "omd_ogd", "--out", str(out), "--num-cpus", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "conjugacy_class" in completed.stdout  # the class table is printed
    assert "validation_method=ogd and validation_method=omd: equivalent" in completed.stdout

    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 75 and set(trials["status"]) == {"ok"}
    classes = pd.read_csv(out / "analysis" / "conjugacy_classes.csv").set_index("condition")
    omd, ogd, bisection = (classes.loc[f"validation_method={method}", "conjugacy_class"]
                           for method in ("omd", "ogd", "bisection"))
    # OMD and OGD are conjugate (through x = exp(u)): equivalent, one class; bisection,
    # conjugate to neither, is distinct from both.
    tests = pd.read_csv(out / "analysis" / "pairwise_tests.csv")
    verdict = {frozenset((row.condition_a, row.condition_b)): row.verdict for row in tests.itertuples()}
    names = [f"validation_method={method}" for method in ("omd", "ogd", "bisection")]
    assert verdict[frozenset(names[:2])] == "equivalent"
    assert verdict[frozenset((names[0], names[2]))] == verdict[frozenset(names[1:])] == "distinct"
    assert omd == ogd != bisection

    # Seed 0 is the paper's exact grid: its published OMD-OGD distance is about 0.008.
    spectra = pd.read_parquet(out / "spectra.parquet")
    exact = {method: spectrum_of(spectra, f"validation_method={method}", 0)
             for method in ("omd", "ogd", "bisection")}
    assert 0.006 < spectral_distance(exact["omd"], exact["ogd"]) < 0.010
    assert spectral_distance(exact["omd"], exact["bisection"]) > 0.5
    # Over all seeds, OMD and OGD are far closer to each other than to bisection.
    between = {frozenset((row.condition_a, row.condition_b)): row.mean_between for row in tests.itertuples()}
    omd_ogd = between[frozenset(("validation_method=omd", "validation_method=ogd"))]
    omd_bisection = between[frozenset(("validation_method=omd", "validation_method=bisection"))]
    assert omd_ogd < 0.05 * omd_bisection


# One preset per experiment type and data source. lr_batch and activation are fcn_width's
# trial type on the same digits with other hyperparameter values (their presets validate in
# test_sweeps_spec, every activation trains in test_models), so running them end to end
# adds two minutes of the suite and no stage.
QUICK_SWEEPS = ("fcn_width", "dataset", "cnn_early", "grokking")


@pytest.mark.parametrize("name", QUICK_SWEEPS)
def test_quick_preset_leaves_complete_records_and_report(name, local_ray, tmp_path):
    # The quick preset's design with its first two seeds (the smoke size): every stage runs
    # on every experiment type, and two seeds give each condition a seed-to-seed spread.
    # The full quick presets take minutes each on 2 cores; the main job runs one of them.
    spec = first_seeds(get_sweep(name, quick=True), 2)
    expected_ids = {setup.trial_id for setup in expand(spec)}
    out = tmp_path / name
    run_sweep(spec, out, LaunchOptions())
    assert analysis_main([str(out), "--quiet"]) == 0

    trials = pd.read_parquet(out / "trials.parquet")
    spectra = pd.read_parquet(out / "spectra.parquet")
    assert set(TRIAL_REQUIRED_COLUMNS) <= set(trials.columns)
    assert set(SPECTRUM_COLUMNS) <= set(spectra.columns)
    assert sorted(trials["trial_id"]) == sorted(expected_ids)  # each trial once
    assert set(trials["status"]) == {"ok"}, trials[["trial_id", "status", "message"]]
    assert set(spectra["trial_id"]) == expected_ids  # every trial has a spectrum
    assert np.isfinite(spectra[["eig_real", "eig_imag", "modulus", "residual"]].to_numpy()).all()
    windows = spectra.groupby("trial_id")["window_index"].nunique()
    assert (windows == windows.iloc[0]).all()  # every trial closed the same windows

    folder = out / "analysis"
    for file_name in ANALYSIS_FILES:
        assert (folder / file_name).stat().st_size > 0, file_name
    classes = pd.read_csv(folder / "conjugacy_classes.csv")
    assert sorted(classes["condition"]) == sorted(trials["condition"].unique())
    assert classes["conjugacy_class"].notna().all()  # every condition has seeds to judge by
    verdicts = pd.read_csv(folder / "pairwise_tests.csv")["verdict"]
    assert set(verdicts) <= {"equivalent", "distinct", "undetermined"}
    if windows.iloc[0] > 1:
        assert (folder / "window_heatmap.png").stat().st_size > 0
    report = (folder / "report.md").read_text()
    assert all(condition in report for condition in classes["condition"])
