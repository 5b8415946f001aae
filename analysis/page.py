"""The report of one analysis as Markdown and as a self-contained HTML page.

It leads with the answer (the verdicts in plain words and the figure of effects against the
margin), then the tables, the figures, what was run and the notes. Library code: it writes
``report.md`` and ``report.html`` where told and prints nothing.
"""

from __future__ import annotations

import html

import pandas as pd

from analysis import tables
from analysis.records import config_summary
from analysis.summary import verdict_sentences

MAX_PAGE_PAIRS = 200  # more pairs than a page can show: the full table is pairwise_tests.csv
CLASS_COLUMNS = ["condition", "conjugacy_class", "n_seeds", "spread", "resolution",
                 "equivalent_to", "undetermined_with", "distinct_from", "note"]
FIGURE_TITLES = {"effects_figure": "Effects against the margin",
                 "spectra_figure": "Eigenvalues on the complex plane",
                 "heatmap_figure": "Clustered distance matrix",
                 "between_within_figure": "Between vs within distances",
                 "window_figure": "Window x window log10 distance"}
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;word-break:break-all} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.answer{background:#f4f8f7;border-left:4px solid #2a9d8f;padding:.6em 1em}
.answer li{margin:.25em 0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:12px;margin:.4em 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}
td{max-width:28em;overflow-wrap:anywhere}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f7f7;padding:.6em;font-size:12px}
.verdict-equivalent{color:#1d7a6e;font-weight:600} .verdict-distinct{color:#c4492a;font-weight:600}
.verdict-undetermined{color:#5c6778;font-weight:600}
"""


def _short(value) -> str:
    return "" if pd.isna(value) else f"{value:.3g}"


def pair_display(pairwise: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """The pairwise table in the few columns a page can show (every column is in the CSV)."""
    shown = pairwise.head(MAX_PAGE_PAIRS)
    margin_note = shown["margin_source"].map({"resolution": " (resolution)"}).fillna("")
    return pd.DataFrame({
        "pair": shown["condition_a"].astype(str) + " vs " + shown["condition_b"].astype(str),
        "verdict": shown["verdict"],
        f"effect ratio ({confidence:.0%} interval)": [
            "" if pd.isna(r) else f"{_short(r)} ({_short(lo)}–{_short(hi)})"
            for r, lo, hi in zip(shown["ratio"], shown["ratio_low"], shown["ratio_high"])],
        "margin": [_short(m) + note for m, note in zip(shown["margin"], margin_note)],
        "effect": shown["effect"].map(_short), "spread": shown["spread"].map(_short),
        "resolution": shown["resolution"].map(_short),
        "seeds": shown["n_seeds_a"].astype(str) + " / " + shown["n_seeds_b"].astype(str)
                 + shown["paired"].map({True: " paired", False: ""}),
        "seeds needed": shown["seeds_needed"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}"),
        "p identical (Holm)": shown["p_same_distribution_holm"].map(_short),
    })


def method_text(result, records, options) -> str:
    conjugacy = result.conjugacy
    n_trials = (records.spectra["trial_id"].nunique() if "trial_id" in records.spectra
                else len(conjugacy.units))
    return (f"{len(conjugacy.units)} spectra (condition x seed) from {n_trials} trials. "
            "Effect: the distance between two conditions' spectral centres (2-Wasserstein, "
            "spreads cancelled) in units of their seed-to-seed spread, with a "
            f"{options.confidence:.0%} bootstrap interval over seeds (paired where conditions "
            f"share seeds). Equivalent when the interval lies below the margin ({options.margin} "
            "spreads, or the estimator's measured resolution where that is larger), distinct "
            "when it lies above, undetermined otherwise. Evidence: a permutation test of "
            f"identical distributions ({options.n_permutations} relabelings, Holm over pairs). "
            f"Tables use the {options.metric} distance; random_state = {options.random_state}.")


def report_sections(result, records, options) -> list:
    """(title, kind, content) triples shared by the Markdown and HTML pages."""
    conjugacy = result.conjugacy
    sentences = verdict_sentences(conjugacy.pairwise, conjugacy.classes, options.confidence)
    sections = [("Answer", "list", sentences)]
    if "effects_figure" in result.files:
        sections.append((FIGURE_TITLES["effects_figure"], "figure", result.files["effects_figure"].name))
    sections += [
        ("Conjugacy classes", "table", conjugacy.classes.reindex(columns=CLASS_COLUMNS)),
        ("Verdicts per pair", "table", pair_display(conjugacy.pairwise, options.confidence)),
        ("Estimator resolution per condition", "table", conjugacy.resolution),
        ("Distances between conditions (mean, sd over seed pairs)", "table",
         tables.condition_distance_summary(conjugacy.units, conjugacy.distances)),
    ]
    if result.window_conjugacy is not None:
        window = result.window_conjugacy
        sections += [("Training windows: answer", "list",
                      verdict_sentences(window.pairwise, window.classes, options.confidence)),
                     ("Classes of training windows", "table",
                      window.classes.reindex(columns=CLASS_COLUMNS))]
    for key, title in FIGURE_TITLES.items():
        if key in result.files and key != "effects_figure":
            sections.append((title, "figure", result.files[key].name))
    sections += [("How the verdicts are made", "text", method_text(result, records, options)),
                 ("Configuration (varied keys first)", "table", config_summary(records.trials))]
    for name, text in records.run_description.items():
        sections.append((f"Run description: {name}", "code", text))
    sections.append(("Excluded trials", "table", records.excluded_trials))
    sections.append(("Notes on the input", "list", result.notes or ["None."]))
    return sections


def write_report(result, records, options) -> None:
    """``report.md`` and ``report.html`` in the result's output folder."""
    sections = report_sections(result, records, options)
    out = result.output_directory
    result.files["report_md"] = out / "report.md"
    result.files["report_md"].write_text(markdown_page(records.directory, sections))
    result.files["report_html"] = out / "report.html"
    result.files["report_html"].write_text(html_page(records.directory, sections))


def markdown_page(directory, sections) -> str:
    parts = [f"# Conjugacy analysis of `{directory}`", ""]
    for title, kind, content in sections:
        parts.append(f"## {title}\n")
        if kind == "table":
            parts.append(tables.markdown_table(content) if len(content) else "(none)")
        elif kind == "figure":
            parts.append(f"![{title}]({content})")
        elif kind == "list":
            parts.append("\n".join(f"- {item}" for item in content))
        elif kind == "code":
            parts.append(f"```\n{content}\n```")
        else:
            parts.append(content)
        parts.append("")
    return "\n".join(parts)


def _html_sentence(sentence: str) -> str:
    escaped = html.escape(sentence)
    for verdict in ("equivalent", "distinct", "undetermined"):
        escaped = escaped.replace(f": {verdict}", f': <span class="verdict-{verdict}">{verdict}</span>', 1)
    return escaped


def html_page(directory, sections) -> str:
    body = [f"<h1>Conjugacy analysis of <code>{html.escape(str(directory))}</code></h1>"]
    for title, kind, content in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        if kind == "table":
            table = (content.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}",
                                     border=0) if len(content) else "<p>(none)</p>")
            body.append(f'<div class="scroll">{table}</div>')
        elif kind == "figure":
            body.append(f'<img src="{html.escape(content)}" alt="{html.escape(title)}">')
        elif kind == "list":
            css = ' class="answer"' if title.endswith("nswer") else ""
            items = "".join(f"<li>{_html_sentence(item)}</li>" for item in content)
            body.append(f"<ul{css}>{items}</ul>")
        elif kind == "code":
            body.append(f"<details><summary>show</summary><pre>{html.escape(content)}</pre></details>")
        else:
            body.append(f"<p>{html.escape(content)}</p>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Conjugacy analysis</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>")
