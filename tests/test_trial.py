"""run_trial end to end at tiny sizes: every experiment type, divergence, determinism, resume."""

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from study import records
from study.data import MissingDataError
from study.trial import run_trial

from helpers import mean_matched_distance, write_cifar10_folder

REPO = Path(__file__).resolve().parents[1]
MNIST_CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
                    REPO / ".." / "shared" / "data" / "mnist"]
MNIST_FOLDER = next((path for path in MNIST_CANDIDATES if path.is_dir()), None)

# A tiny version of the paper's FCN trial on the built-in digits (64 inputs).
TINY_FCN = {"width": 10, "n_steps": 60, "n_replicas": 3, "batch_size": 30, "delays": 2, "rank": 6,
            "n_threads": 1}


def test_fcn_trial_learns_and_reports_a_spectrum_near_the_unit_circle():
    reports = []
    result = run_trial(TINY_FCN, lambda metrics, state: reports.append((metrics, state)))
    assert result.status == records.STATUS_OK and result.n_steps_completed == 60
    (window,) = result.windows
    assert (window.window_start, window.window_end) == (0, 60) and len(window.eigenvalues) == 6
    assert np.all(np.abs(window.eigenvalues) > 0.5) and np.all(np.abs(window.eigenvalues) < 1.1)
    assert 0 <= window.residual < 0.1
    assert result.final_train_loss < math.log(10) - 0.1  # below chance level: it learned
    assert result.final_test_accuracy > 0.2
    (metrics, state), = reports
    assert metrics["window_index"] == 0 and metrics["step"] == 60 and state is not None
    np.testing.assert_allclose(metrics["eigenvalues_real"], window.eigenvalues.real)
    np.testing.assert_allclose(metrics["eigenvalues_imag"], window.eigenvalues.imag)


def test_same_seed_same_spectrum_other_seed_other_spectrum():
    first, again = run_trial({**TINY_FCN, "seed": 4}), run_trial({**TINY_FCN, "seed": 4})
    other = run_trial({**TINY_FCN, "seed": 5})
    np.testing.assert_array_equal(first.windows[0].eigenvalues, again.windows[0].eigenvalues)
    assert first.final_test_loss == again.final_test_loss
    assert not np.allclose(first.windows[0].eigenvalues, other.windows[0].eigenvalues)


def test_vectorized_trial_equals_the_one_by_one_trial():
    vectorized = run_trial({**TINY_FCN, "replica_mode": "vectorized"})
    sequential = run_trial({**TINY_FCN, "replica_mode": "sequential"})
    np.testing.assert_allclose(vectorized.windows[0].eigenvalues, sequential.windows[0].eigenvalues,
                               atol=1e-4)
    assert abs(vectorized.final_train_loss - sequential.final_train_loss) < 1e-5


def test_diverging_learning_rate_stops_with_its_step_and_keeps_finished_windows():
    # A linear net at lr 2 grows geometrically: finite for the first windows, then overflows.
    config = {**TINY_FCN, "activation": "linear", "learning_rate": 2.0, "n_steps": 100,
              "window_size": 10, "rank": 3}
    result = run_trial(config)
    assert result.status == records.STATUS_DIVERGED
    assert 10 <= result.diverged_step < 100 and result.n_steps_completed == result.diverged_step
    assert len(result.windows) == result.diverged_step // 10
    assert "non-finite at step" in result.message
    # (A ReLU net at lr 1e6 does not diverge: every unit dies and the loss sits at log 10.)
    huge = run_trial({**TINY_FCN, "learning_rate": 1e6, "activation": "linear"})
    assert huge.status == records.STATUS_DIVERGED and huge.diverged_step is not None
    assert huge.windows == () and math.isnan(huge.final_test_loss)


def test_consecutive_windows_are_reported_as_they_close():
    reports = []
    config = {**TINY_FCN, "n_steps": 60, "window_size": 20, "record_every": 2, "delays": 1, "rank": 4}
    result = run_trial(config, lambda metrics, state: reports.append(metrics))
    spans = [(window.window_start, window.window_end) for window in result.windows]
    assert spans == [(0, 20), (20, 40), (40, 60)]
    assert [metrics["window_end"] for metrics in reports] == [20, 40, 60]
    assert not np.allclose(result.windows[0].eigenvalues, result.windows[2].eigenvalues)


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run():
    config = {**TINY_FCN, "n_steps": 60, "window_size": 20, "checkpoint_every": 10, "rank": 4}
    states = {}
    uninterrupted = run_trial(config, lambda metrics, state: states.__setitem__(metrics["step"], state))
    assert sorted(states) == [10, 20, 30, 40, 50, 60]
    saved = pickle.loads(pickle.dumps(states[30]))  # as a checkpoint on disk would hold it
    resumed = run_trial(config, resume_state=saved)
    assert len(resumed.windows) == 3
    for left, right in zip(uninterrupted.windows, resumed.windows):
        np.testing.assert_array_equal(left.eigenvalues, right.eigenvalues)
    assert resumed.final_test_loss == uninterrupted.final_test_loss
    with pytest.raises(ValueError, match="different config"):
        run_trial({**config, "seed": 1}, resume_state=saved)


def test_validation_trials_reproduce_the_papers_omd_ogd_bisection_finding():
    spectra = {}
    for method in ("omd", "ogd", "bisection"):
        result = run_trial({"trial_type": "validation", "validation_method": method,
                            "n_steps": 100, "delays": 4})
        spectra[method] = result.windows[0].eigenvalues
    # PAPER.md: OMD and OGD about 0.008 apart and real in [0.55, 1]; both ~0.75 from bisection.
    assert mean_matched_distance(spectra["omd"], spectra["ogd"]) < 0.02
    assert mean_matched_distance(spectra["omd"], spectra["bisection"]) > 0.3
    assert mean_matched_distance(spectra["ogd"], spectra["bisection"]) > 0.3
    assert np.allclose(spectra["omd"].imag, 0) and spectra["omd"].real.min() > 0.5


def test_tiny_grokking_transformer_with_pca_and_its_constant_norm_control():
    common = {"dataset": "modular_addition", "modulus": 11, "model": "transformer", "d_model": 16,
              "n_heads": 2, "d_mlp": 32, "optimizer": "adamw", "learning_rate": 1e-2,
              "full_batch": True, "n_steps": 30, "n_replicas": 3, "observables": "mlp_out",
              "pca_components": 4, "delays": 3, "rank": 4, "n_threads": 1}
    grokking = run_trial({**common, "weight_decay": 1.0})
    control = run_trial({**common, "init_scale": 0.8, "constant_weight_norm": True})
    for result in (grokking, control):
        assert result.status == "ok" and len(result.windows[0].eigenvalues) == 4
        assert result.final_train_loss < math.log(11)
    assert mean_matched_distance(grokking.windows[0].eigenvalues, control.windows[0].eigenvalues) > 1e-3


def test_lenet_early_training_windows_on_mnist():
    if MNIST_FOLDER is None:
        pytest.skip("shared MNIST folder ../shared/data/mnist is absent")
    config = {"dataset": "mnist", "data_dir": str(MNIST_FOLDER), "model": "lenet5",
              "max_train_samples": 600, "n_steps": 30, "window_size": 10, "n_replicas": 2,
              "batch_size": 20, "delays": 1, "rank": 4, "eval_max_samples": 200, "n_threads": 1}
    result = run_trial(config)
    assert result.status == "ok" and [w.window_start for w in result.windows] == [0, 10, 20]


def test_synthetic_data_and_sketched_all_parameter_observables():
    result = run_trial({**TINY_FCN, "dataset": "synthetic", "observables": "all", "sketch_dimension": 64})
    assert result.status == "ok" and len(result.windows[0].eigenvalues) == 6
    assert result.final_test_accuracy > 0.3  # separable clusters are learned fast


def test_missing_data_folder_names_the_folder_and_the_files(tmp_path):
    with pytest.raises(MissingDataError, match=r"absent_mnist.*t10k-images-idx3-ubyte"):
        run_trial({**TINY_FCN, "dataset": "mnist", "data_dir": str(tmp_path / "absent_mnist")})


def test_result_rows_follow_the_record_schema():
    result = run_trial({**TINY_FCN, "window_size": 30})
    rows = result.spectrum_rows("trial-1", "width=10")
    assert all(list(row) == list(records.SPECTRUM_COLUMNS) for row in rows)
    recorded = [row for row in rows if row["estimate"] == records.ESTIMATE_RECORDED]
    assert len(recorded) == 12 and [row["window_index"] for row in recorded] == [0] * 6 + [1] * 6
    # Every window also carries the resolution variants of its own trajectories.
    variants = {(row["window_index"], row["estimate"]) for row in rows} - \
        {(0, records.ESTIMATE_RECORDED), (1, records.ESTIMATE_RECORDED)}
    assert {name for _, name in variants} <= set(records.RESOLUTION_VARIANTS)
    assert {"coordinates", "delays+1"} <= {name for window, name in variants if window == 1}
    without = run_trial({**TINY_FCN, "window_size": 30, "resolution_variants": False})
    assert len(without.spectrum_rows("trial-1", "width=10")) == 12
    trial_row = result.trial_row("trial-1", "width=10")
    assert records.missing_columns(trial_row, records.TRIAL_REQUIRED_COLUMNS) == []
    assert trial_row["width"] == 10 and trial_row["status"] == "ok"


def test_smoke_entry_point_runs():
    completed = subprocess.run([sys.executable, "-m", "study", "--smoke-test"], cwd=REPO,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert '"status": "ok"' in completed.stdout and '"eig_real"' in completed.stdout


def test_pca_trial_resumes_exactly_from_a_mid_window_checkpoint():
    config = {"dataset": "modular_addition", "modulus": 7, "model": "transformer", "d_model": 8,
              "n_heads": 2, "d_mlp": 16, "optimizer": "adamw", "learning_rate": 1e-2,
              "full_batch": True, "n_steps": 24, "window_size": 12, "checkpoint_every": 6,
              "n_replicas": 2, "observables": "mlp_out", "pca_components": 3, "delays": 2, "rank": 3,
              "n_threads": 1}
    states = {}
    uninterrupted = run_trial(config, lambda metrics, state: states.__setitem__(metrics["step"], state))
    resumed = run_trial(config, resume_state=pickle.loads(pickle.dumps(states[18])))
    for left, right in zip(uninterrupted.windows, resumed.windows, strict=True):
        np.testing.assert_array_equal(left.eigenvalues, right.eigenvalues)


def test_resnet20_trial_on_cifar10_files(tmp_path):
    write_cifar10_folder(tmp_path, images_per_batch=8)
    result = run_trial({"dataset": "cifar10", "data_dir": str(tmp_path), "model": "resnet20",
                        "n_steps": 6, "batch_size": 8, "n_replicas": 2, "delays": 0, "rank": 2,
                        "learning_rate": 0.01, "n_threads": 1})
    assert result.status == "ok" and len(result.windows[0].eigenvalues) == 2


def test_cuda_request_without_cuda_names_the_device_key():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path needs a CPU-only machine")
    with pytest.raises(ValueError, match="'device' is 'cuda'"):
        run_trial({**TINY_FCN, "device": "cuda"})
    assert run_trial({**TINY_FCN, "device": "auto", "n_steps": 10, "delays": 0, "rank": 3}).device == "cpu"
