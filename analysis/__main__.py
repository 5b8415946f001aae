"""Command line: ``python -m analysis DIR`` writes DIR/analysis/ and prints the class table.

``python -m analysis --smoke-test [DIR]`` first writes small synthetic records with a known
answer into DIR (a temporary folder when omitted) and analyses them in seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import pandas as pd

from analysis.records import RecordsError
from analysis.report import AnalysisOptions, run_analysis
from analysis.synthetic import write_synthetic_records


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n")[0])
    parser.add_argument("directory", nargs="?", help="records folder (spectra.parquet, trials.parquet)")
    parser.add_argument("--alpha", type=float, default=0.01,
                        help="family-wise error rate of splitting conjugate conditions (0.01)")
    parser.add_argument("--n-permutations", type=int, default=9999,
                        help="random seed relabelings when exact enumeration is too large (9999)")
    parser.add_argument("--random-state", type=int, default=0, help="seed of the relabelings (0)")
    parser.add_argument("--smoke-test", action="store_true",
                        help="write synthetic records into DIR (or a temporary folder) and analyse them")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    arguments = parser.parse_args(argv)
    if arguments.directory is None and not arguments.smoke_test:
        parser.error("give a records folder DIR (or --smoke-test)")
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING if arguments.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    directory = arguments.directory
    if arguments.smoke_test:
        directory = directory or tempfile.mkdtemp(prefix="analysis-smoke-")
        write_synthetic_records(directory, windows=(0, 100, 200))
    try:
        options = AnalysisOptions(alpha=arguments.alpha, n_permutations=arguments.n_permutations,
                                  random_state=arguments.random_state)
        result = run_analysis(directory, options)
    except (RecordsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(result.classes.drop(columns=["note"]).to_string(index=False))
    for note in result.notes:
        print(f"note: {note}")
    print(f"tables, figures and report: {Path(result.output_directory)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
