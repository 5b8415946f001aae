"""The progress line a person reads at 10,000 trials, the usage in sweeps/README.md, and the
checks the command line makes before Ray starts (data folders, exit status).

No Ray here: these parts of sweeps run in plain Python.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from sweeps.cli import EXIT_ALL_FAILED, EXIT_OK, EXIT_SOME_FAILED, _status_line, check_data_folders, command_line_usage
from sweeps.cli import main as cli_main
from sweeps.progress import ProgressSettings, SweepProgress, format_duration, format_rate
from sweeps.spec import load_spec_file, validate

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_come_every_interval_with_counts_rate_and_time_left():
    clock, stream = FakeClock(), io.StringIO()
    progress = SweepProgress(1000, 0, ProgressSettings(interval_s=30.0), clock=clock, stream=stream)
    for second in range(1, 61):  # 10 trials a second for a minute, one batch a second
        clock.now += 1.0
        for index in range(10):
            progress.trial_finished(f"t{second}-{index}", "ok")
        progress.batch_done()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # at 30 s and at 60 s, not one per trial or per batch
    assert lines[-1] == "600/1000 trials (600 ok) | 10.0 trials/s | 40s left | 1m00s elapsed"


def test_failures_and_divergences_are_named_as_they_arrive_and_a_terminal_line_is_redrawn():
    clock, stream = FakeClock(), Terminal()
    progress = SweepProgress(4, 1, ProgressSettings(), clock=clock, stream=stream)
    clock.now += 1.0
    progress.trial_finished("a-seed0", "failed", "MissingDataError: MNIST data folder '/x' is missing")
    progress.trial_finished("b-seed0", "diverged", "", 17)
    progress.trial_finished("c-seed0", "ok")
    progress.batch_done()
    progress.close()
    text = stream.getvalue()
    assert "trial a-seed0 failed: MissingDataError: MNIST data folder '/x' is missing\n" in text
    assert "trial b-seed0 diverged at step 17\n" in text
    assert "\r\033[K4/4 trials (1 from before, 1 diverged, 1 failed, 1 ok)" in text  # redrawn in place
    assert text.endswith("\n")


def test_slow_sweeps_give_their_rate_per_minute():
    # MNIST trials of a minute each once printed "0.0 trials/s" for the whole sweep.
    assert format_rate(12.34) == "12.3 trials/s"
    assert format_rate(0.036) == "2.2 trials/min"
    assert format_rate(0.0) == "0.0 trials/s"


def test_durations_read_as_hours_minutes_seconds():
    assert [format_duration(s) for s in (42, 185, 3720)] == ["42s", "3m05s", "1h02m"]


def test_usage_in_sweeps_readme_is_the_parsers_and_the_help_prints_it():
    readme = (ROOT / "sweeps" / "README.md").read_text()
    block = re.search(r"<!-- usage: generated from sweeps.cli.build_parser -->\n```text\n(.*?)```", readme, re.S)
    assert block, "sweeps/README.md lost its usage block"
    assert block.group(1) == command_line_usage()
    helped = subprocess.run([sys.executable, "-m", "sweeps", "run", "--help"], cwd=ROOT, capture_output=True,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True)
    run_usage = command_line_usage().split("usage: python -m sweeps resume")[0]
    assert helped.stdout.startswith(run_usage)


def test_status_line_and_exit_status_by_failures():
    def table(*statuses):
        return pd.DataFrame({"status": list(statuses)})

    assert _status_line(table("ok", "diverged")) == ("2 trials: 1 diverged, 1 ok", EXIT_OK)
    assert _status_line(table("ok", "failed", "failed")) == (
        "3 trials: 2 failed, 1 ok (2 failed: exit status 3)", EXIT_SOME_FAILED)
    assert _status_line(table("failed", "failed")) == (
        "2 trials: 2 failed (every trial failed: exit status 1)", EXIT_ALL_FAILED)


MNIST_SWEEP = """
    name: mnist
    base: {{trial_type: network, dataset: mnist, data_dir: {data_dir}, model: fcn, width: 5, n_steps: 20,
           n_replicas: 2, delays: 2}}
    seeds: [0, 1]
"""


def test_a_missing_data_folder_stops_the_sweep_before_ray_with_the_trials_own_message(tmp_path, capsys):
    from study.data import MissingDataError, load_mnist

    folder = tmp_path / "no-mnist"
    sweep = tmp_path / "mnist.yaml"
    sweep.write_text(textwrap.dedent(MNIST_SWEEP.format(data_dir=folder)))
    assert cli_main(["run", str(sweep), "--out", str(tmp_path / "out"), "--no-analysis"]) == 2
    with pytest.raises(MissingDataError) as raised:
        load_mnist(folder, 0.2, None)
    assert f"error: MissingDataError: {raised.value}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    # On a cluster the driver may not see the workers' folders: a warning, and the sweep goes on.
    assert check_data_folders(validate(load_spec_file(sweep)), address="127.0.0.1:6379")
    assert "on a cluster the workers may see it: going on" in capsys.readouterr().err
