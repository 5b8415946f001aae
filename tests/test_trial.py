"""run_trial end to end at tiny sizes: every experiment type, divergence, determinism, resume."""

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torch

from study import records, trial
from study.config import TrialConfig
from study.data import MissingDataError, load_dataset
from study.koopman import fit_koopman
from study.observables import snapshot
from study.replicas import initial_parameters, make_model
from study.trial import derived_seeds, run_trial

from helpers import largest_matched_distance, mean_matched_distance, write_cifar10_folder

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


def recorded_snapshots(monkeypatch, config):
    """Run ``config``, returning the result and every snapshot fed to the estimator (M, F)."""
    recorded = []

    def recording_snapshot(stacks, names):
        values = snapshot(stacks, names)
        recorded.append(values.clone())
        return values

    monkeypatch.setattr(trial, "snapshot", recording_snapshot)
    return run_trial(config), recorded


def initial_output_weights(config):
    """The seed's replica stacks of ``output.weight`` before training, built independently."""
    config = TrialConfig.from_flat_dict(config)
    seeds = derived_seeds(config.seed)
    data = load_dataset(config.data, np.random.default_rng(seeds["data"]))
    model = make_model(config.model, data.input_shape, data.n_classes, None, seeds["init"])
    stacks = initial_parameters(model, config.training.n_replicas, config.training.replica_noise,
                                torch.Generator().manual_seed(seeds["replica_noise"]))
    return stacks["output.weight"].flatten(1)  # (M, F)


def test_record_initial_records_the_initial_weights_first(monkeypatch):
    config = {**TINY_FCN, "n_steps": 20, "rank": 4}
    initial = initial_output_weights(config)
    before, before_snapshots = recorded_snapshots(monkeypatch, {**config, "record_initial": True})
    after, after_snapshots = recorded_snapshots(monkeypatch, config)
    assert len(before_snapshots) == len(after_snapshots) == 20  # one per step either way
    assert torch.equal(before_snapshots[0], initial)  # x_0: the authors' grokking recording
    assert not torch.allclose(after_snapshots[0], initial)  # x_1: their FCN script's
    # The same run, shifted by one step: x_0 .. x_19 against x_1 .. x_20.
    for shifted, unshifted in zip(before_snapshots[1:], after_snapshots[:-1]):
        torch.testing.assert_close(shifted, unshifted, rtol=0, atol=0)
    assert not np.allclose(before.windows[0].eigenvalues, after.windows[0].eigenvalues)
    assert torch.equal(initial_output_weights(config)[0], initial[0])  # replica 0 = the base


def test_float64_trial_trains_and_records_in_float64_from_the_same_start(monkeypatch):
    config = {**TINY_FCN, "n_steps": 20, "rank": 4, "record_initial": True}
    double, double_snapshots = recorded_snapshots(monkeypatch, {**config, "dtype": "float64"})
    single, single_snapshots = recorded_snapshots(monkeypatch, config)
    assert double_snapshots[0].dtype == torch.float64 and single_snapshots[0].dtype == torch.float32
    assert double.status == "ok" and np.isfinite(double.windows[0].eigenvalues).all()
    # Replica 0 is the same float32 draw; the perturbed ones differ by float32 rounding only.
    torch.testing.assert_close(double_snapshots[0][0], single_snapshots[0][0].double(), rtol=0, atol=0)
    torch.testing.assert_close(double_snapshots[0], single_snapshots[0].double(), rtol=2e-7, atol=0)
    assert (double_snapshots[-1] - single_snapshots[-1].double()).abs().max() < 1e-4


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


def test_trial_row_builder_orders_identity_config_outcomes_and_rejects_an_unknown_status():
    row = records.trial_row(trial_id="t", condition="c", seed=3, status=records.STATUS_FAILED,
                            config={"width": 5}, n_steps_completed=0, wall_time_s=1.5,
                            message="boom", outcomes={"device_used": "cpu"})
    assert list(row) == ["trial_id", "condition", "seed", "status", "diverged_step", "message",
                         "width", "device_used", "n_steps_completed", "wall_time_s",
                         "package_version"]
    assert records.missing_columns(row, records.TRIAL_REQUIRED_COLUMNS) == []
    with pytest.raises(ValueError, match=r"'t'.*status.*'finished'"):
        records.trial_row(trial_id="t", condition="c", seed=3, status="finished", config={},
                          n_steps_completed=0, wall_time_s=0.0)


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


def test_the_recorder_strategy_is_chosen_once_from_the_config():
    import torch

    from study.config import KoopmanConfig
    from study.koopman import fit_koopman
    from study.observables import pca_project
    from study.trial_state import PcaRecorder, StreamingRecorder, make_window_recorder

    streaming = make_window_recorder(KoopmanConfig(delays=1, rank=3), n_replicas=2, seed=0)
    batch = make_window_recorder(KoopmanConfig(delays=1, rank=3, pca_components=4), 2, 0)
    assert type(streaming) is StreamingRecorder and type(batch) is PcaRecorder
    snapshots = torch.randn(12, 2, 6, generator=torch.Generator().manual_seed(0))  # (T, M, F)
    for values in snapshots:
        streaming.add(values), batch.add(values)
    window = snapshots.transpose(0, 1).numpy()  # (M, T, F)
    raw = fit_koopman(window.astype(np.float64), delays=1, rank=3).eigenvalues
    projected = fit_koopman(pca_project(window, 4), delays=1, rank=3).eigenvalues
    np.testing.assert_allclose(streaming.fit(0, 12)[0].eigenvalues, raw, atol=1e-12)
    np.testing.assert_allclose(batch.fit(0, 12)[0].eigenvalues, projected, atol=1e-12)


def test_the_main_jobs_width_10_window_takes_the_certified_fast_route(monkeypatch):
    # fcn_width --quick at width 10: 3,300 embedded dimensions whose 10th and 11th singular
    # values are 1.3% apart. The Krylov bound rose before it fell there, and an early stop on
    # that rise sent every such window (and its resolution variants) to the 12 s full SVD.
    from sweeps.definitions import FCN_WIDTH_POINTS, get_sweep

    config = {**get_sweep("fcn_width", quick=True).base, **FCN_WIDTH_POINTS[1], "seed": 0,
              "resolution_variants": False}
    result, recorded = recorded_snapshots(monkeypatch, config)
    trajectories = torch.stack(recorded, dim=1).double().numpy()  # (replicas, steps, features)
    assert trajectories.shape == (10, 300, 100)
    fast = fit_koopman(trajectories, delays=32, rank=10, solver="auto")
    reference = fit_koopman(trajectories, delays=32, rank=10, solver="svd")
    assert fast.solver == "gram"
    assert largest_matched_distance(fast.eigenvalues, reference.eigenvalues) < 1e-8
    assert largest_matched_distance(result.windows[0].eigenvalues, reference.eigenvalues) < 1e-8
