"""Command line: ``python -m sweeps run|resume|list`` (the usage: :func:`command_line_usage`).

The only place in ``sweeps`` that configures logging, parses paths and prints.

Exit status: 0 when every trial has its records and none failed (a diverged trial is a result,
not a failure); 3 when some trials failed (the last line says how many); 1 when every trial
failed; 2 for a sweep that cannot start (a bad spec, a missing data folder, a folder that holds
another sweep). Where the analysis stage runs and fails, its own status wins over 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from study.records import STATUS_FAILED
from sweeps.data_folders import missing_data_folders
from sweeps.definitions import SWEEPS, get_sweep
from sweeps.spec import (SweepSpec, SweepSpecError, expand, load_spec_file, spec_to_dict, validate,
                         with_overrides)

logger = logging.getLogger("sweeps")

EXIT_OK, EXIT_ALL_FAILED, EXIT_CANNOT_START, EXIT_SOME_FAILED = 0, 1, 2, 3
USAGE_WIDTH = 100  # fixed, so that the usage printed and the one in sweeps/README.md agree


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    # YAML typing: 0.1 -> float, 10 -> int, true -> bool, null -> None, else text.
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=USAGE_WIDTH)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sweeps", formatter_class=_formatter,
                                     description="Many training runs on Ray Tune: run, resume or list sweeps.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a named sweep or a sweep YAML file", formatter_class=_formatter)
    run.add_argument("sweep", metavar="NAME|FILE.yaml", help=f"one of {', '.join(SWEEPS)}, or a path to a sweep .yaml")
    run.add_argument("--quick", action="store_true", help="the small preset (digits data, minutes on 2 cores)")
    run.add_argument("--smoke-test", action="store_true",
                     help="the quick preset with its first two seeds only (seconds)")
    run.add_argument("--n-seeds", type=int, metavar="N",
                     help="keep only the preset's first N seeds (as many as fit your time)")
    run.add_argument("--out", type=Path, metavar="DIR", help="output folder (default runs/NAME[_quick])")
    run.add_argument("--set", dest="overrides", action="append", type=_parse_override, default=[],
                     metavar="KEY=VALUE", help="fix a config key for every trial, e.g. data_dir=/data/mnist")
    _add_placement_arguments(run)

    resume = commands.add_parser("resume", help="finish an interrupted sweep", formatter_class=_formatter)
    resume.add_argument("out", type=Path, metavar="DIR", help="the sweep's output folder")
    resume.add_argument("--address", metavar="ADDR", help="Ray cluster to join (default: RAY_ADDRESS or a local Ray)")
    resume.add_argument("--no-analysis", action="store_true", help="skip the analysis after the sweep")

    commands.add_parser("list", help="list the named sweeps with their sizes", formatter_class=_formatter)
    return parser


def command_line_usage() -> str:
    """The usage lines of every command, from the parser (sweeps/README.md shows this text)."""
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return "".join(subparser.format_usage() for subparser in commands.choices.values())


def _add_placement_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--address", metavar="ADDR", help="Ray cluster to join (default: RAY_ADDRESS or a local Ray)")
    run.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="F", help="GPU share per Tune trial (0.5: two per GPU)")
    run.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="F", help="CPU cores per Tune trial")
    run.add_argument("--setups-per-task", type=int, metavar="N", help="trials per Tune trial (default: one bundle per free slot)")
    run.add_argument("--max-failures", type=int, default=3, metavar="N", help="retries of a Tune trial lost with its node")
    run.add_argument("--num-cpus", type=int, metavar="N", help="local Ray only: CPUs to declare")
    run.add_argument("--num-gpus", type=int, metavar="N", help="local Ray only: GPUs to declare")
    run.add_argument("--object-store-mb", type=int, default=256, metavar="MB", help="local Ray only: shared-memory cap")
    run.add_argument("--storage-path", metavar="PATH|URI", help="Tune storage (shared folder or s3://...; default the output folder)")
    run.add_argument("--no-analysis", action="store_true", help="skip the analysis after the sweep")


def resolve_spec(args: argparse.Namespace) -> SweepSpec:
    """The sweep named (or the YAML file given) on the command line, with --set applied."""
    if args.sweep in SWEEPS:
        spec = get_sweep(args.sweep, quick=args.quick or args.smoke_test)
    elif args.sweep.endswith((".yaml", ".yml")) or Path(args.sweep).is_file():
        spec = load_spec_file(args.sweep)
    else:
        raise SweepSpecError(f"unknown sweep {args.sweep!r}: give one of {', '.join(SWEEPS)} or a .yaml file")
    spec = with_overrides(spec, dict(args.overrides))
    if args.smoke_test:
        # Two seeds: the fewest that give the analysis a seed-to-seed spread to calibrate against.
        spec = first_seeds(spec, 2)
    if args.n_seeds is not None:
        spec = first_seeds(spec, args.n_seeds)
    return spec


def first_seeds(spec: SweepSpec, n_seeds: int) -> SweepSpec:
    """``spec`` keeping only its first ``n_seeds`` seeds (and their per-seed overrides)."""
    if n_seeds < 1:
        raise SweepSpecError(f"--n-seeds must be at least 1; got {n_seeds}")
    seeds = tuple(spec.seeds)[:n_seeds]
    return dataclasses.replace(spec, seeds=seeds, seed_overrides={
        seed: values for seed, values in spec.seed_overrides.items() if seed in seeds})


def run_analysis(out_dir: Path) -> int:
    """The analysis stage on the finished records, as ``python -m analysis DIR``.

    A broken import inside the analysis package is an error, not a missing stage: it raises.
    """
    from analysis.__main__ import main as analysis_main

    return int(analysis_main([str(out_dir)]) or 0)


def _status_line(trials) -> tuple[str, int]:
    """The closing line (counts by status) and the exit status it stands for."""
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    n_failed = counts.get(STATUS_FAILED, 0)
    line = f"{len(trials)} trials: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if len(trials) and n_failed == len(trials):
        return line + f" (every trial failed: exit status {EXIT_ALL_FAILED})", EXIT_ALL_FAILED
    if n_failed:
        return line + f" ({n_failed} failed: exit status {EXIT_SOME_FAILED})", EXIT_SOME_FAILED
    return line, EXIT_OK


def _report_and_analyse(out_dir: Path, trials, *, run_analysis_stage: bool) -> int:
    """Run the analysis (unless skipped) on what the sweep left, then print the closing line."""
    print(f"records: {out_dir / 'trials.parquet'}, {out_dir / 'spectra.parquet'}")
    line, status = _status_line(trials)
    analysis_status = run_analysis(out_dir) if run_analysis_stage and status != EXIT_ALL_FAILED else 0
    print(line)
    return status if status != EXIT_OK else analysis_status


def holds_same_sweep(out_dir: Path, spec: SweepSpec) -> bool:
    """Whether ``out_dir/sweep.json`` records exactly ``spec`` (compared as JSON: keys are text)."""
    saved = json.loads((out_dir / "sweep.json").read_text())["spec"]
    return saved == json.loads(json.dumps(spec_to_dict(spec), default=str))


def keep_local_ray_on_loopback(address: str | None) -> None:
    """Make a local Ray advertise 127.0.0.1 instead of this machine's network address.

    Ray turns a loopback ``_node_ip_address`` into the remotely reachable address unless
    clusters are disabled, and it reads that switch when ``ray`` is imported: so this runs
    before the launcher (the only module that imports ray) is loaded. A driver that joins a
    cluster (``--address`` or RAY_ADDRESS) must keep its real address, and is left alone.
    """
    if address or os.environ.get("RAY_ADDRESS") or "ray" in sys.modules:
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def check_data_folders(setups, address: str | None) -> bool:
    """Whether the sweep may start: its data folders exist, or the driver may not see them."""
    messages = missing_data_folders(setup.config for setup in setups)
    if not messages:
        return True
    on_cluster = bool(address or os.environ.get("RAY_ADDRESS"))
    for message in messages:
        if on_cluster:
            print(f"warning: {message} (on this driver; on a cluster the workers may see it: going on)",
                  file=sys.stderr)
        else:
            print(f"error: {message}", file=sys.stderr)
    return on_cluster


def command_run(args: argparse.Namespace) -> int:
    keep_local_ray_on_loopback(args.address)
    spec = resolve_spec(args)
    setups = validate(spec)  # before Ray starts: a wrong key or value fails here, naming it
    if not check_data_folders(setups, args.address):
        return EXIT_CANNOT_START
    from sweeps.launcher import LaunchOptions, resume_sweep, run_sweep, shutdown_ray
    from sweeps.progress import ProgressSettings

    suffix = "_smoke" if args.smoke_test else "_quick" if args.quick else ""
    out_dir = (args.out or Path("runs") / f"{spec.name}{suffix}").resolve()
    options = LaunchOptions(
        address=args.address, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        setups_per_task=args.setups_per_task, max_failures=args.max_failures, num_cpus=args.num_cpus,
        num_gpus=args.num_gpus, object_store_bytes=args.object_store_mb * 2**20,
        storage_path=args.storage_path,
    )
    try:
        if (out_dir / "sweep.json").is_file():
            if not holds_same_sweep(out_dir, spec):
                print(f"error: {out_dir} holds a different sweep; choose another --out", file=sys.stderr)
                return EXIT_CANNOT_START
            print(f"{out_dir} holds this sweep already: resuming it", file=sys.stderr)
            trials, _ = resume_sweep(out_dir, address=args.address, progress=ProgressSettings("stderr"))
        else:
            trials, _ = run_sweep(spec, out_dir, options, command=sys.argv, progress=ProgressSettings("stderr"))
    finally:
        shutdown_ray()
    return _report_and_analyse(out_dir, trials, run_analysis_stage=not args.no_analysis)


def command_resume(args: argparse.Namespace) -> int:
    keep_local_ray_on_loopback(args.address)
    from sweeps.launcher import resume_sweep, shutdown_ray
    from sweeps.progress import ProgressSettings

    out_dir = args.out.resolve()
    try:
        trials, _ = resume_sweep(out_dir, address=args.address, progress=ProgressSettings("stderr"))
    finally:
        shutdown_ray()
    return _report_and_analyse(out_dir, trials, run_analysis_stage=not args.no_analysis)


def command_list() -> int:
    print(f"{'sweep':<12} {'quick trials':>12} {'full trials':>12}  description")
    for name, definition in SWEEPS.items():
        quick, full = len(expand(definition.spec(True))), len(expand(definition.spec(False)))
        print(f"{name:<12} {quick:>12} {full:>12}  {definition.spec(False).description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "list":
            return command_list()
        if args.command == "resume":
            return command_resume(args)
        return command_run(args)
    except (SweepSpecError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
