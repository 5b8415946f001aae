"""Command line: ``python -m sweeps run|resume|list``.

    python -m sweeps run NAME|FILE.yaml [--quick] [--out DIR] [--address ADDR]
                     [--gpus-per-trial F] [--cpus-per-trial F] [--setups-per-task N]
                     [--set KEY=VALUE ...] [--no-analysis] [--smoke]
    python -m sweeps resume DIR [--address ADDR] [--no-analysis]
    python -m sweeps list

The only place in ``sweeps`` that configures logging, parses paths and prints.
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

from sweeps.definitions import SWEEPS, get_sweep
from sweeps.spec import (SweepSpec, SweepSpecError, expand, load_spec_file, spec_to_dict, validate,
                         with_overrides)

logger = logging.getLogger("sweeps")


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    # YAML typing: 0.1 -> float, 10 -> int, true -> bool, null -> None, else text.
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sweeps", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a named sweep or a sweep YAML file")
    run.add_argument("sweep", help=f"one of {', '.join(SWEEPS)}, or a path to a sweep .yaml")
    run.add_argument("--quick", action="store_true", help="the small preset (digits data, minutes on 2 cores)")
    run.add_argument("--smoke", action="store_true", help="the quick preset with its first two seeds only (seconds)")
    run.add_argument("--n-seeds", type=int, metavar="N",
                     help="keep only the preset's first N seeds (as many as fit your time)")
    run.add_argument("--out", type=Path, help="output folder (default runs/NAME[_quick])")
    run.add_argument("--set", dest="overrides", action="append", type=_parse_override, default=[],
                     metavar="KEY=VALUE", help="fix a config key for every trial, e.g. data_dir=/data/mnist")
    _add_placement_arguments(run)

    resume = commands.add_parser("resume", help="finish an interrupted sweep")
    resume.add_argument("out", type=Path, help="the sweep's output folder")
    resume.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS or a local Ray)")
    resume.add_argument("--no-analysis", action="store_true", help="skip the analysis after the sweep")

    commands.add_parser("list", help="list the named sweeps with their sizes")
    return parser


def _add_placement_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS or a local Ray)")
    run.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPU share per Tune trial (0.5: two per GPU)")
    run.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPU cores per Tune trial")
    run.add_argument("--setups-per-task", type=int, help="trials per Tune trial (default: one bundle per free slot)")
    run.add_argument("--max-failures", type=int, default=3, help="retries of a Tune trial lost with its node")
    run.add_argument("--num-cpus", type=int, help="local Ray only: CPUs to declare")
    run.add_argument("--num-gpus", type=int, help="local Ray only: GPUs to declare")
    run.add_argument("--object-store-mb", type=int, default=256, help="local Ray only: shared-memory cap")
    run.add_argument("--storage-path", help="Tune storage (shared folder or s3://...; default the output folder)")
    run.add_argument("--no-analysis", action="store_true", help="skip the analysis after the sweep")


def resolve_spec(args: argparse.Namespace) -> SweepSpec:
    """The sweep named (or the YAML file given) on the command line, with --set applied."""
    if args.sweep in SWEEPS:
        spec = get_sweep(args.sweep, quick=args.quick or args.smoke)
    elif args.sweep.endswith((".yaml", ".yml")) or Path(args.sweep).is_file():
        spec = load_spec_file(args.sweep)
    else:
        raise SweepSpecError(f"unknown sweep {args.sweep!r}: give one of {', '.join(SWEEPS)} or a .yaml file")
    spec = with_overrides(spec, dict(args.overrides))
    if args.smoke:
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


def _print_summary(out_dir: Path, trials) -> None:
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    print(f"{len(trials)} trials in {out_dir}: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    print(f"records: {out_dir / 'trials.parquet'}, {out_dir / 'spectra.parquet'}")


def _report_and_analyse(out_dir: Path, trials, *, run_analysis_stage: bool) -> int:
    """Print what the sweep left on disk, then (unless skipped) run the analysis on it."""
    _print_summary(out_dir, trials)
    return run_analysis(out_dir) if run_analysis_stage else 0


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


def command_run(args: argparse.Namespace) -> int:
    keep_local_ray_on_loopback(args.address)
    from sweeps.launcher import LaunchOptions, resume_sweep, run_sweep, shutdown_ray

    spec = resolve_spec(args)
    validate(spec)  # before Ray starts: a wrong key or value fails here, naming it
    suffix = "_smoke" if args.smoke else "_quick" if args.quick else ""
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
                return 2
            print(f"{out_dir} holds this sweep already: resuming it", file=sys.stderr)
            trials, _ = resume_sweep(out_dir, address=args.address)
        else:
            trials, _ = run_sweep(spec, out_dir, options, command=sys.argv)
    finally:
        shutdown_ray()
    return _report_and_analyse(out_dir, trials, run_analysis_stage=not args.no_analysis)


def command_resume(args: argparse.Namespace) -> int:
    keep_local_ray_on_loopback(args.address)
    from sweeps.launcher import resume_sweep, shutdown_ray

    out_dir = args.out.resolve()
    try:
        trials, _ = resume_sweep(out_dir, address=args.address)
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
        return 2
