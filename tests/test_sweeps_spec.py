"""Sweep specs, YAML loading, validation before launch, the record writer and the bundle runner.

No Ray here: these are the parts of sweeps that run in plain Python (the bundle runner runs the
real study.trial.run_trial in-process).
"""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweeps.cli import main as cli_main
from sweeps.definitions import SWEEPS, get_sweep
from sweeps.records import consolidate, finished_trial_ids, write_trial_records
from sweeps.spec import SweepSpec, SweepSpecError, expand, load_spec_file, validate, with_overrides
from sweeps.bundle import EVENT_TRIALS_DONE, run_bundle

# A trial that trains in about a second: 2 replicas of a 64 -> 5 -> 10 net on 300 digits.
TINY = {"trial_type": "network", "dataset": "digits", "model": "fcn", "width": 5, "n_steps": 100,
        "n_replicas": 2, "delays": 2, "window_size": 50, "eval_max_samples": 200,
        "max_train_samples": 300}


def test_every_named_sweep_expands_with_unique_ids_in_both_presets():
    for name in SWEEPS:
        for quick in (True, False):
            setups = expand(get_sweep(name, quick=quick))
            ids = [setup.trial_id for setup in setups]
            assert len(set(ids)) == len(ids), name
            assert all("seed" not in setup.condition for setup in setups)


def test_quick_presets_validate_and_use_built_in_data_only():
    for name in SWEEPS:
        for setup in validate(get_sweep(name, quick=True)):
            assert setup.config.get("dataset") in (None, "digits", "synthetic", "modular_addition"), name


def test_full_presets_on_mnist_fail_before_launch_naming_data_dir_and_pass_with_it(tmp_path):
    with pytest.raises(SweepSpecError, match="data_dir"):
        validate(get_sweep("fcn_width"))
    spec = with_overrides(get_sweep("fcn_width"), {"data_dir": str(tmp_path)})
    setups = validate(spec)
    assert len(setups) == 3 * 25  # the paper's 3 widths x 25 seeds


def test_fcn_width_pairs_each_width_with_the_papers_delay_and_labels_by_width():
    setups = expand(get_sweep("fcn_width", quick=True))
    # d = 32 * 10 / h (PAPER.md): 64, 32, 8 for h = 5, 10, 40.
    assert {(s.config["width"], s.config["delays"]) for s in setups} == {(5, 64), (10, 32), (40, 8)}
    assert {s.condition for s in setups} == {"width=5", "width=10", "width=40"}
    full = get_sweep("fcn_width")
    assert full.base["learning_rate"] == 0.1 and full.base["batch_size"] == 60
    assert full.base["n_steps"] == 1000 and full.base["n_replicas"] == 10 and full.base["rank"] == 10


def test_lr_batch_holds_the_ratio_at_two_values_while_both_vary():
    for quick in (True, False):
        setups = expand(get_sweep("lr_batch", quick=quick))
        by_ratio: dict[float, set] = {}
        for setup in setups:
            ratio = round(setup.config["learning_rate"] / setup.config["batch_size"], 9)
            by_ratio.setdefault(ratio, set()).add((setup.config["learning_rate"], setup.config["batch_size"]))
        assert len(by_ratio) == 2
        assert all(len(pairs) >= 2 for pairs in by_ratio.values())


def test_omd_ogd_seed_zero_keeps_the_exact_grid_and_other_seeds_jitter():
    setups = expand(get_sweep("omd_ogd"))
    assert {s.config["validation_method"] for s in setups} == {"omd", "ogd", "bisection"}
    for setup in setups:
        assert (setup.config["grid_jitter"] == 0.0) == (setup.seed == 0)
        assert setup.config["delays"] == 4 and setup.config["rank"] is None and setup.config["n_steps"] == 100


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_yaml_unknown_top_level_key_is_named(tmp_path):
    path = _write(tmp_path / "bad.yaml", """
        name: mine
        grdi: {width: [5, 10]}
    """)
    with pytest.raises(SweepSpecError, match="unknown key 'grdi'"):
        load_spec_file(path)


def test_yaml_wrong_config_key_or_value_fails_validation_naming_it(tmp_path):
    wrong_key = _write(tmp_path / "k.yaml", """
        name: mine
        base: {dataset: digits}
        grid: {widht: [5, 10]}
    """)
    with pytest.raises(SweepSpecError, match="widht"):
        validate(load_spec_file(wrong_key))
    wrong_value = _write(tmp_path / "v.yaml", """
        name: mine
        grid: {learning_rate: [0.1, fast]}
        n_seeds: 2
    """)
    with pytest.raises(SweepSpecError, match="learning_rate.*fast"):
        validate(load_spec_file(wrong_value))


def test_yaml_round_trip_of_a_good_file(tmp_path):
    path = _write(tmp_path / "good.yaml", """
        name: widths
        base: {dataset: digits, n_steps: 100, n_replicas: 2}
        points: [{width: 5, delays: 8}, {width: 10, delays: 4}]
        label_keys: [width]
        seeds: [3, 4]
    """)
    setups = validate(load_spec_file(path))
    assert [(s.condition, s.seed) for s in setups] == [("width=5", 3), ("width=5", 4), ("width=10", 3), ("width=10", 4)]


def test_structural_errors_are_named():
    with pytest.raises(SweepSpecError, match="'seed' belongs in seeds"):
        expand(SweepSpec(name="x", grid={"seed": [1, 2]}))
    with pytest.raises(SweepSpecError, match="both fixed in base and varied"):
        expand(SweepSpec(name="x", base={"width": 5}, grid={"width": [5, 10]}))
    with pytest.raises(SweepSpecError, match="share the label"):
        expand(SweepSpec(name="x", grid={"width": [5, 10]}, label_keys=("activation",)))


def test_cli_rejects_a_bad_sweep_before_starting_ray(tmp_path, capsys):
    import ray

    path = _write(tmp_path / "bad.yaml", "name: mine\ngrid: {widht: [5]}\n")
    code = cli_main(["run", str(path), "--out", str(tmp_path / "out"), "--no-analysis"])
    assert code == 2
    assert "widht" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not ray.is_initialized()


def test_cli_list_smoke(capsys):
    assert cli_main(["list"]) == 0
    output = capsys.readouterr().out
    assert all(name in output for name in SWEEPS)


def _row(trial_id: str, **extra) -> dict:
    return {"trial_id": trial_id, "condition": "width=5", "seed": 0, "status": "ok", "diverged_step": None,
            "message": "", "n_steps_completed": 10, "wall_time_s": 1.0, "package_version": "0", **extra}


def _spectrum(trial_id: str, values) -> list[dict]:
    from study.records import spectrum_rows

    return spectrum_rows(trial_id=trial_id, condition="width=5", seed=0, window_index=0, window_start=0,
                         window_end=10, eigenvalues=values, residual=0.0)


def test_records_rewritten_trial_stays_one_row_and_leaves_no_temporary_files(tmp_path):
    write_trial_records(tmp_path, _row("a", observables=["output"]), _spectrum("a", [0.9, 0.5 + 0.1j]))
    write_trial_records(tmp_path, _row("b"), [])  # a failed trial has no spectrum
    write_trial_records(tmp_path, _row("a", observables=["output"]), _spectrum("a", [0.9, 0.5 + 0.1j]))
    trials, spectra = consolidate(tmp_path)
    assert sorted(trials["trial_id"]) == ["a", "b"] and finished_trial_ids(tmp_path) == {"a", "b"}
    assert len(spectra) == 2 and np.allclose(sorted(spectra["modulus"]), sorted([0.9, abs(0.5 + 0.1j)]))
    assert pd.read_parquet(tmp_path / "trials.parquet").shape[0] == 2
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(ValueError, match="lacks columns"):
        write_trial_records(tmp_path, {"trial_id": "c"}, [])


def _setups(configs: list[dict]) -> list[dict]:
    return [{"trial_id": f"t{index}", "condition": f"c{index}", "seed": config.get("seed", 0), "config": config}
            for index, config in enumerate(configs)]


def _finished(events: list[dict]) -> list[dict]:
    return [payload for metrics in events if metrics["event"] == EVENT_TRIALS_DONE for payload in metrics["trials"]]


def test_bundle_resumed_mid_trial_matches_an_uninterrupted_run():
    setups = _setups([dict(TINY, seed=1)])
    events: list[tuple[dict, dict | None]] = []
    run_bundle(setups, lambda metrics, state: events.append((metrics, copy.deepcopy(state))))
    uninterrupted = _finished([m for m, _ in events])[0]
    # The state handed over at the first window's end, as a retried Tune trial would load it.
    first_checkpoint = next(state for metrics, state in events if state is not None and state["current"] == "t0")
    assert first_checkpoint["resume_state"] is not None
    resumed_events: list[dict] = []
    run_bundle(setups, lambda metrics, state: resumed_events.append(metrics), resume=first_checkpoint)
    resumed = _finished(resumed_events)[0]
    assert resumed["trial_row"]["resume_count"] == 1 and uninterrupted["trial_row"]["resume_count"] == 0
    windows = [m for m in resumed_events if m["event"] == "window"]
    assert [m["window_index"] for m in windows] == [1]  # only the second window was recomputed
    before = np.array([[r["eig_real"], r["eig_imag"]] for r in uninterrupted["spectrum_rows"]])
    after = np.array([[r["eig_real"], r["eig_imag"]] for r in resumed["spectrum_rows"]])
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-9)


def test_bundle_records_failures_and_divergence_and_skips_finished_setups():
    configs = [
        dict(TINY, dataset="mnist", data_dir="/nonexistent-mnist"),  # raises inside run_trial
        dict(TINY, activation="linear", learning_rate=1e3, window_size=None),  # overflows in a few steps
        dict(TINY, seed=2),
    ]
    events: list[dict] = []
    state = run_bundle(_setups(configs), lambda m, s: events.append(m), skip_trial_ids=["t2"])
    done = _finished(events)
    statuses = {m["trial_row"]["trial_id"]: m["trial_row"]["status"] for m in done}
    assert statuses == {"t0": "failed", "t1": "diverged"}
    assert "MNIST" in done[0]["trial_row"]["message"] and done[0]["spectrum_rows"] == []
    assert state["position"] == 2 and state["current"] is None


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_cluster_configs_pass_rays_own_schema_with_token_and_shared_storage(name):
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    path = Path(__file__).resolve().parents[1] / "sweeps" / name
    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(config))  # raises on any key Ray's launcher would reject
    start_commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in command for command in start_commands if "ray start" in command)
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert "/shared" in path.read_text()  # the shared folder for Tune's storage_path


def test_bundles_deal_every_setup_once_mixing_conditions():
    from sweeps.bundle import SETUPS_PER_TASK_WHEN_SCALING, plan_bundles

    spec = SweepSpec(name="w", grid={"width": [5, 10, 40]}, seeds=(0, 1, 2, 3))
    setups = expand(spec)  # 3 widths x 4 seeds, grid-major order
    bundles = plan_bundles(setups, n_slots=2, setups_per_task=None)
    assert len(bundles) == 2 and sorted(sum(bundles, [])) == sorted(s.trial_id for s in setups)
    for bundle in bundles:  # round-robin: each bundle gets every width, so bundles cost alike
        assert {trial_id.split("-")[0] for trial_id in bundle} == {"width=5", "width=10", "width=40"}
    assert [len(b) for b in plan_bundles(setups, n_slots=8, setups_per_task=5)] == [4, 4, 4]
    # One bundle runs seed by seed: every prefix (a sweep stopped there) holds whole seeds.
    (alone,) = plan_bundles(setups, n_slots=1, setups_per_task=None)
    assert [trial_id.split("-")[1] for trial_id in alone[:6]] == ["seed0"] * 3 + ["seed1"] * 3
    # No free slot yet (an autoscaling cluster): fixed-size bundles.
    assert all(len(b) <= SETUPS_PER_TASK_WHEN_SCALING for b in plan_bundles(setups, 0, None))


def test_rerun_into_a_folder_recognises_the_same_sweep_and_refuses_another(tmp_path, capsys):
    import json

    from sweeps.cli import holds_same_sweep
    from sweeps.spec import spec_to_dict

    spec = get_sweep("omd_ogd", quick=True)  # integer seed_overrides keys become text in JSON
    (tmp_path / "sweep.json").write_text(json.dumps({"spec": spec_to_dict(spec)}))
    assert holds_same_sweep(tmp_path, spec)
    assert not holds_same_sweep(tmp_path, get_sweep("omd_ogd"))
    assert cli_main(["run", "fcn_width", "--quick", "--out", str(tmp_path), "--no-analysis"]) == 2
    assert "holds a different sweep" in capsys.readouterr().err


def test_n_seeds_keeps_the_first_seeds_and_their_overrides():
    from sweeps.cli import build_parser, resolve_spec

    spec = resolve_spec(build_parser().parse_args(["run", "omd_ogd", "--n-seeds", "3"]))
    assert tuple(spec.seeds) == (0, 1, 2)
    assert set(spec.seed_overrides) == {0}  # seed 0 keeps the paper's exact grid
    assert len(expand(spec)) == 9
    with pytest.raises(SweepSpecError, match="n-seeds"):
        resolve_spec(build_parser().parse_args(["run", "omd_ogd", "--n-seeds", "0"]))


VALIDATION = {"trial_type": "validation", "n_steps": 100, "delays": 4, "rank": None}


class StepClock:
    """A clock that moves one second each time it is read: every check finds a batch due."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_bundle_hands_records_over_in_batches_records_before_each_checkpoint():
    setups = _setups([dict(VALIDATION, seed=seed) for seed in range(6)])
    events: list[tuple[dict, dict | None]] = []
    run_bundle(setups, lambda metrics, state: events.append((metrics, copy.deepcopy(state))),
               report_interval_s=3600.0)  # never due: one batch at the end
    assert [metrics["event"] for metrics, _ in events] == [EVENT_TRIALS_DONE, "bundle_checkpoint"]
    assert [payload["position"] for payload in events[0][0]["trials"]] == list(range(6))
    assert events[1][1]["position"] == 6 and events[0][1] is None


def test_bundle_checkpoint_does_not_grow_with_the_trials_done():
    import pickle

    setups = _setups([dict(VALIDATION, seed=seed) for seed in range(30)])
    sizes: list[int] = []
    run_bundle(setups, lambda metrics, state: sizes.append(len(pickle.dumps(state))) if state else None,
               clock=StepClock(), generation="g" * 32)
    assert len(sizes) == 30  # a batch (and a checkpoint) after every trial with this clock
    assert max(sizes) - min(sizes) <= 8, sizes  # the position's digits, nothing per trial


def test_bundle_trusts_its_checkpoint_in_the_same_driver_run_and_the_records_in_another():
    setups = _setups([dict(VALIDATION, seed=seed) for seed in range(4)])
    checkpoints: list[dict] = []
    run_bundle(setups[:2], lambda m, state: checkpoints.append(copy.deepcopy(state)) if state else None,
               generation="first")
    state = checkpoints[-1]
    assert state["position"] == 2

    def run_from(generation, skip):
        events: list[dict] = []
        run_bundle(setups, lambda m, s: events.append(m), resume=state, generation=generation, skip_trial_ids=skip)
        return [payload["trial_row"]["trial_id"] for payload in _finished(events)]

    # A retry in the same driver run: the two trials the checkpoint counts are not run again.
    assert run_from("first", []) == ["t2", "t3"]
    # A restarted driver found only t0's records on disk: t1 (counted, but never written) runs.
    assert run_from("second", ["t0"]) == ["t1", "t2", "t3"]


def test_batches_written_twice_keep_the_first_record_of_each_trial(tmp_path):
    from sweeps.records import write_batch_records

    first = [{"position": 0, "trial_row": _row("a", wall_time_s=1.0), "spectrum_rows": _spectrum("a", [0.9])},
             {"position": 1, "trial_row": _row("b"), "spectrum_rows": _spectrum("b", [0.5])}]
    again = [{"position": 1, "trial_row": _row("b", wall_time_s=2.0), "spectrum_rows": _spectrum("b", [0.4])}]
    write_batch_records(tmp_path, first, bundle_index=0)
    write_batch_records(tmp_path, again, bundle_index=1)
    trials, spectra = consolidate(tmp_path)
    assert list(trials["trial_id"]) == ["a", "b"] and list(trials["wall_time_s"]) == [1.0, 1.0]
    assert sorted(spectra["modulus"]) == [0.5, 0.9]
    assert finished_trial_ids(tmp_path) == {"a", "b"}
