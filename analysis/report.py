"""The analysis of one records folder: tables, figures and a one-page report in DIR/analysis/.

Library code: files are written where told, nothing is printed (the CLI prints).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import page, plots, tables
from analysis.conjugacy import ConjugacyAnalysis, analyse_conjugacy
from analysis.options import AnalysisOptions
from analysis.records import Records, load_records
from analysis.units import (WindowMismatchError, last_window_only, recorded_only,
                            windows_as_conditions)

logger = logging.getLogger(__name__)

OUTPUT_FOLDER = "analysis"
MAX_WINDOW_CONDITIONS = 40  # 780 pairs; beyond, per-window verdicts take minutes


@dataclass
class AnalysisResult:
    """What was computed and where it was written."""

    output_directory: Path
    conjugacy: ConjugacyAnalysis
    window_conjugacy: ConjugacyAnalysis | None
    notes: list[str]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def classes(self) -> pd.DataFrame:
        return self.conjugacy.classes


def run_analysis(directory, options: AnalysisOptions = AnalysisOptions()) -> AnalysisResult:
    """Load DIR's records, decide the classes, write tables, figures and report.md/.html."""
    records = load_records(directory)
    return analyse_records(records, options)


def analyse_records(records: Records, options: AnalysisOptions = AnalysisOptions(), *,
                    output_folder: str = OUTPUT_FOLDER) -> AnalysisResult:
    """Verdicts, tables, figures and report of loaded records, written to
    ``<records folder>/<output_folder>``."""
    output = Path(records.directory) / output_folder
    output.mkdir(parents=True, exist_ok=True)
    notes = list(records.notes)
    try:
        conjugacy = analyse_conjugacy(records.spectra, options)
    except WindowMismatchError as error:
        notes.append(f"{error}. The classes below use each trial's last window only")
        conjugacy = analyse_conjugacy(last_window_only(records.spectra), options)
    notes += list(conjugacy.notes)
    window_conjugacy, window_frame = None, pd.DataFrame()
    recorded = recorded_only(records.spectra)
    if _is_windowed(recorded):
        window_frame = tables.window_distance_frame(recorded)
        notes.append("windowed runs: the (condition, seed) distance is the mean over equal "
                     "window starts; window_classes.csv treats each (condition, window) as a "
                     "condition")
        by_window = windows_as_conditions(records.spectra)  # variants follow their window
        n_window_conditions = by_window["condition"].nunique()
        if n_window_conditions <= MAX_WINDOW_CONDITIONS:
            window_conjugacy = analyse_conjugacy(by_window, options)
        else:
            notes.append(f"{n_window_conditions} (condition, window) combinations: more than "
                         f"{MAX_WINDOW_CONDITIONS}, so no per-window classes (the window x window "
                         "heat map is still drawn)")
    result = AnalysisResult(output, conjugacy, window_conjugacy, notes)
    _write_tables(result, window_frame)
    _write_figures(result, records, window_frame)
    page.write_report(result, records, options)
    logger.info("analysis of %s written to %s", records.directory, output)
    return result


def _is_windowed(spectra: pd.DataFrame) -> bool:
    if "window_start" not in spectra.columns:
        return False
    key = [c for c in ("condition", "seed") if c in spectra.columns]
    return bool((spectra.groupby(key)["window_start"].nunique() > 1).any())


def _write_tables(result: AnalysisResult, window_frame: pd.DataFrame) -> None:
    out, conjugacy = result.output_directory, result.conjugacy
    files = result.files
    files["distances"] = out / "distances.parquet"
    tables.distance_long_frame(conjugacy.units, conjugacy.distances).to_parquet(files["distances"])
    files["resolution"] = out / "resolution.csv"
    conjugacy.resolution.to_csv(files["resolution"], index=False)
    files["classes"] = out / "conjugacy_classes.csv"
    conjugacy.classes.to_csv(files["classes"], index=False)
    files["pairwise"] = out / "pairwise_tests.csv"
    conjugacy.pairwise.to_csv(files["pairwise"], index=False)
    files["condition_distances"] = out / "condition_distances.csv"
    tables.condition_distance_summary(conjugacy.units, conjugacy.distances).to_csv(
        files["condition_distances"], index=False)
    if result.window_conjugacy is not None:
        files["window_classes"] = out / "window_classes.csv"
        result.window_conjugacy.classes.to_csv(files["window_classes"], index=False)
        files["window_pairwise"] = out / "window_pairwise_tests.csv"
        result.window_conjugacy.pairwise.to_csv(files["window_pairwise"], index=False)
        files["window_distances"] = out / "window_distances.csv"
        window_frame.to_csv(files["window_distances"], index=False)
    files["notes"] = out / "notes.txt"
    files["notes"].write_text("\n".join(result.notes) + ("\n" if result.notes else ""))


def _write_figures(result: AnalysisResult, records: Records, window_frame: pd.DataFrame) -> None:
    conjugacy = result.conjugacy
    eigenvalues = tables.eigenvalue_frame(recorded_only(records.spectra), conjugacy.classes)
    labels = tables.unit_labels(conjugacy.units)
    square = pd.DataFrame(conjugacy.distances, index=labels, columns=labels)
    class_of = dict(zip(eigenvalues["condition"], eigenvalues["class_label"]))
    unit_classes = pd.Series([class_of.get(c, plots.NO_CLASS) for c in conjugacy.units["condition"]],
                             index=labels)
    members = {label: sorted(set(group["condition"])) for label, group in eigenvalues.groupby("class_label")}
    figures = {"effects_figure": ("effects.png", lambda: plots.plot_effects(
                   conjugacy.pairwise, confidence=conjugacy.options.confidence)),
               "spectra_figure": ("spectra.png", lambda: plots.plot_spectra(eigenvalues)),
               "heatmap_figure": ("distance_heatmap.png",
                                  lambda: plots.plot_distance_heatmap(square, unit_classes, members))}
    between = tables.between_within_frame(conjugacy.units, conjugacy.distances)
    if not between.empty:
        figures["between_within_figure"] = ("between_within.png",
                                            lambda: plots.plot_between_within(between))
    if not window_frame.empty:
        figures["window_figure"] = ("window_heatmap.png",
                                    lambda: plots.plot_window_heatmap(window_frame))
    for key, (name, draw) in figures.items():
        figure = draw()
        result.files[key] = result.output_directory / name
        figure.savefig(result.files[key], dpi=110, bbox_inches="tight")
        plt.close(figure)
