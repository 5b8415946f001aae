"""Command line: ``python -m analysis DIR`` writes DIR/analysis/ and prints the verdicts.

``python -m analysis --smoke-test [DIR]`` first writes small synthetic records with a known
answer into DIR (a temporary folder when omitted) and analyses them in seconds.
``--import FILE=CONDITION`` adds spectra from outside the sweep (an array of eigenvalues per
seed, or a table; :mod:`analysis.importer`) as a condition of their own, to be judged
against the sweep's conditions.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

import pandas as pd

from analysis.importer import import_spectra_argument
from analysis.options import AnalysisOptions, option_help
from analysis.records import RecordsError, load_records
from analysis.report import OUTPUT_FOLDER, analyse_records
from analysis.summary import verdict_sentences
from analysis.synthetic import write_synthetic_records

SHOWN_CLASS_COLUMNS = ["condition", "conjugacy_class", "n_seeds", "equivalent_to",
                       "undetermined_with", "distinct_from"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n")[0])
    parser.add_argument("directory", nargs="?", help="records folder (spectra.parquet, trials.parquet)")
    helps = option_help()
    for option in dataclasses.fields(AnalysisOptions):
        kind = type(option.default)
        parser.add_argument(f"--{option.name.replace('_', '-')}", type=kind, default=option.default,
                            help=helps[option.name])
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="FILE=CONDITION",
                        help="spectra from outside the sweep as their own condition (.npy or table)")
    parser.add_argument("--output-folder", default=OUTPUT_FOLDER,
                        help=f"sub-folder of DIR for the outputs ({OUTPUT_FOLDER}); keeps a "
                             "comparison with imported spectra apart from the sweep's own analysis")
    parser.add_argument("--smoke-test", action="store_true",
                        help="write synthetic records into DIR (or a temporary folder) and analyse them")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.directory is None and not arguments.smoke_test:
        parser.error("give a records folder DIR (or --smoke-test)")
    logging.basicConfig(level=logging.WARNING if arguments.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        options = AnalysisOptions(**{f.name: getattr(arguments, f.name)
                                     for f in dataclasses.fields(AnalysisOptions)})
    except ValueError as error:  # before any work: the message names the option
        parser.error(str(error))
    directory = arguments.directory
    if arguments.smoke_test:
        directory = directory or tempfile.mkdtemp(prefix="analysis-smoke-")
        write_synthetic_records(directory, windows=(0, 100, 200))
    try:
        records = load_records(directory)
        for argument in arguments.imports:
            records = import_spectra_argument(records, argument)
        result = analyse_records(records, options, output_folder=arguments.output_folder)
    except (RecordsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    conjugacy = result.conjugacy
    for sentence in verdict_sentences(conjugacy.pairwise, conjugacy.classes, options.confidence):
        print(sentence)
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.max_colwidth", 40):
        print(conjugacy.classes[SHOWN_CLASS_COLUMNS].to_string(index=False))
    for note in result.notes:
        print(f"note: {note}")
    print(f"tables, figures and report: {Path(result.output_directory)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
