"""The analysis of one records folder: tables, figures and a one-page report in DIR/analysis/.

Library code: files are written where told, nothing is printed (the CLI prints).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import plots, tables
from analysis.conjugacy import (
    ConjugacyAnalysis,
    WindowMismatchError,
    analyse_conjugacy,
    last_window_only,
    windows_as_conditions,
)
from analysis.records import Records, config_summary, load_records

logger = logging.getLogger(__name__)

OUTPUT_FOLDER = "analysis"
MAX_WINDOW_CONDITIONS = 40  # 780 pairwise tests; beyond, per-window classes take minutes


@dataclass(frozen=True)
class AnalysisOptions:
    """Settings of the class decision."""

    alpha: float = 0.01  # family-wise error rate of splitting truly conjugate conditions
    n_permutations: int = 9999  # random relabelings when exact enumeration is too large; min p 1e-4
    random_state: int = 0  # seeds the random relabelings, so reruns give the same p-values

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1); got alpha={self.alpha!r}")
        if not isinstance(self.n_permutations, int) or self.n_permutations < 1:
            raise ValueError(f"n_permutations must be a positive int; got {self.n_permutations!r}")


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
    output = Path(directory) / OUTPUT_FOLDER
    output.mkdir(parents=True, exist_ok=True)
    kwargs = dict(alpha=options.alpha, n_permutations=options.n_permutations,
                  random_state=options.random_state)
    notes = list(records.notes)
    try:
        conjugacy = analyse_conjugacy(records.spectra, **kwargs)
    except WindowMismatchError as error:
        notes.append(f"{error}. The classes below use each trial's last window only")
        conjugacy = analyse_conjugacy(last_window_only(records.spectra), **kwargs)
    notes += list(conjugacy.notes)
    window_conjugacy, window_frame = None, pd.DataFrame()
    if _is_windowed(records.spectra):
        window_frame = tables.window_distance_frame(records.spectra)
        notes.append("windowed runs: the (condition, seed) distance is the mean over equal "
                     "window starts; window_classes.csv treats each (condition, window) as a "
                     "condition")
        by_window = windows_as_conditions(records.spectra)
        n_window_conditions = by_window["condition"].nunique()
        if n_window_conditions <= MAX_WINDOW_CONDITIONS:
            window_conjugacy = analyse_conjugacy(by_window, **kwargs)
        else:
            notes.append(f"{n_window_conditions} (condition, window) combinations: more than "
                         f"{MAX_WINDOW_CONDITIONS}, so no per-window classes (the window x window "
                         "heat map is still drawn)")
    result = AnalysisResult(output, conjugacy, window_conjugacy, notes)
    _write_tables(result, window_frame)
    _write_figures(result, records, window_frame)
    _write_report(result, records, options)
    logger.info("analysis of %s written to %s", directory, output)
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
    eigenvalues = tables.eigenvalue_frame(records.spectra, conjugacy.classes)
    labels = tables.unit_labels(conjugacy.units)
    square = pd.DataFrame(conjugacy.distances, index=labels, columns=labels)
    class_of = dict(zip(eigenvalues["condition"], eigenvalues["class_label"]))
    unit_classes = pd.Series([class_of.get(c, plots.NO_CLASS) for c in conjugacy.units["condition"]],
                             index=labels)
    members = {label: sorted(set(group["condition"])) for label, group in eigenvalues.groupby("class_label")}
    figures = {"spectra_figure": ("spectra.png", lambda: plots.plot_spectra(eigenvalues)),
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


def _write_report(result: AnalysisResult, records: Records, options: AnalysisOptions) -> None:
    sections = report_sections(result, records, options)
    out = result.output_directory
    markdown = []
    for title, kind, content in sections:
        markdown.append(f"## {title}\n" if title else "")
        if kind == "table":
            markdown.append(tables.markdown_table(content) if len(content) else "(none)")
        elif kind == "figure":
            markdown.append(f"![{title}]({content})")
        else:
            markdown.append(content)
        markdown.append("")
    result.files["report_md"] = out / "report.md"
    result.files["report_md"].write_text(f"# Conjugacy analysis of `{records.directory}`\n\n"
                                         + "\n".join(markdown))
    result.files["report_html"] = out / "report.html"
    result.files["report_html"].write_text(_html_page(records.directory, sections))


def report_sections(result: AnalysisResult, records: Records, options: AnalysisOptions) -> list:
    """(title, kind, content) triples shared by the Markdown and HTML pages."""
    conjugacy = result.conjugacy
    n_trials = records.spectra["trial_id"].nunique() if "trial_id" in records.spectra else len(conjugacy.units)
    method = (f"{len(conjugacy.units)} spectra (condition x seed) from {n_trials} trials in "
              f"`{records.directory}`. Distance: mean matched |Δλ| under the optimal one-to-one "
              "matching (1-Wasserstein). Per pair of conditions: permutation test over seed labels "
              "(statistic: mean between minus mean pooled within distance), Holm correction over "
              f"pairs, alpha = {options.alpha} (family-wise chance of splitting conjugate "
              "conditions). Classes: constrained complete linkage, so no two members of a class "
              f"are separated. Random relabelings when not exact: {options.n_permutations}, "
              f"random_state = {options.random_state}.")
    sections = [("What was run", "text", method),
                ("Configuration (from trials.parquet)", "table", config_summary(records.trials))]
    for name, text in records.run_description.items():
        sections.append((f"Run description: {name}", "text", f"```\n{text}\n```"))
    sections += [
        ("Conjugacy classes", "table", conjugacy.classes),
        ("Pairwise tests", "table", conjugacy.pairwise),
        ("Distances between conditions (mean, sd over seed pairs)", "table",
         tables.condition_distance_summary(conjugacy.units, conjugacy.distances)),
    ]
    if result.window_conjugacy is not None:
        sections.append(("Classes of training windows", "table", result.window_conjugacy.classes))
    figure_titles = {"spectra_figure": "Eigenvalues on the complex plane",
                     "heatmap_figure": "Clustered distance matrix",
                     "between_within_figure": "Between vs within distances",
                     "window_figure": "Window x window log10 distance"}
    for key, title in figure_titles.items():
        if key in result.files:
            sections.append((title, "figure", result.files[key].name))
    sections.append(("Excluded trials", "table", records.excluded_trials))
    notes = "\n".join(f"- {note}" for note in result.notes) or "None."
    sections.append(("Notes on the input", "text", notes))
    return sections


def _html_page(directory, sections) -> str:
    body = [f"<h1>Conjugacy analysis of <code>{html.escape(str(directory))}</code></h1>"]
    for title, kind, content in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        if kind == "table":
            body.append(content.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
                        if len(content) else "<p>(none)</p>")
        elif kind == "figure":
            body.append(f'<img src="{html.escape(content)}" style="max-width:100%">')
        else:
            body.append(f"<pre>{html.escape(content)}</pre>")
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto} table{font-size:12px}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Conjugacy analysis</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
