"""The study report: its content built from the protected results, with figures.

The text and tables come only from the results payload that passed the disclosure gate;
they are assembled as blocks here and rendered as Markdown and HTML (with relative
paths to ``figures/*.png``) by :mod:`evalkit.report.render`. The report has, in order:
the data (with the simulator's notes only on simulated data), inference, a summary
table of every estimator's answer per outcome and group, the caveats (each stated once
with the analyses it concerns), the results of each family with its figures, the
event-time estimates overlaid, the cell means over time, and the analyses' details.
Every table and axis gives the outcome's unit and every time plot the study's marks
(:mod:`evalkit.report.units`); the figures are in :mod:`evalkit.report.study_figures`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit.report import study_figures as figs
from evalkit.report.caveats import Caveat, concerns, consolidate
from evalkit.report.comparison import coverage, effect_rows, summary_table
from evalkit.report.equality import equality_blocks
from evalkit.report.figure_jobs import FigureJob, draw_figure, figure_jobs, placed, report_unit
from evalkit.report.inference_notes import (
    FEW_TREATED_CLUSTERS,
    cell_level,
    is_within,
    test_inversion_note,
    within_note,
)
from evalkit.report.pretrend import pretrend_blocks
from evalkit.report.render import Block, markdown_blocks, to_html, to_markdown

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.study.config import Study
    from evalkit.study.runner import Fitted

__all__ = ["FEW_TREATED_CLUSTERS", "write_report"]

_ROBUST = ("iid", "hetero", "cluster", "cr2")
Unit = Callable[[str | None], str]


# --------------------------------------------------------------------------- numbers
def fmt(x: Any, digits: int = 4) -> str:
    """Format a number for tables: 4 significant digits, thousands separated when large.

    Examples
    --------
    >>> fmt(0.022332), fmt(331.532), fmt(None), fmt(123456.7)
    ('0.02233', '331.5', '', '123,457')
    """
    if x is None or isinstance(x, bool):
        return "" if x is None else str(x)
    if not isinstance(x, int | float) or not math.isfinite(x):
        return str(x) if not isinstance(x, float) else ""
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _p(p: Any) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --------------------------------------------------------------------------- blocks
def _label(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get("labels", {}).get(key, entry.get(key, ""))
    if key == "split_by" and entry.get("split"):
        value = f"{entry['split']['by']} vs the rest"
    return str(value)


def _family_rows(
    entries: Sequence[Mapping[str, Any]], simulated: bool, unit: Unit
) -> tuple[list, list]:
    label_keys = list(dict.fromkeys(k for e in entries for k in e.get("labels", {})))
    if not label_keys:
        label_keys = ["outcome", "group"]
    level = entries[0].get("level", 0.95) if entries else 0.95
    head = ["Comparison" if k == "split_by" else k.capitalize() for k in label_keys]
    head += ["Unit", "Term", "Estimate", "Std. error", f"{round(level * 100)}% CI", "p-value"]
    if simulated:
        head.append("Truth")
    rows = []
    for e in entries:
        labels = [_label(e, k) for k in label_keys]
        labels.append(unit(e.get("outcome")))
        # a split by a [groups] group compares target 1 with 0: the key says nothing new
        group_split = bool((e.get("split") or {}).get("condition"))
        if e.get("error"):
            rows.append(
                [*labels, "error", e["error"].splitlines()[0], "", "", ""] + [""] * simulated
            )
            continue
        for r in effect_rows(e):
            term = str(r["term"])
            for key in ("subgroup", "group", "cohort", "time"):
                if r.get(key) is not None and not (key == "group" and group_split):
                    term += f" [{key}={r[key]}]"
            ci = ""
            if r.get("conf_low") is not None and r.get("conf_high") is not None:
                ci = f"[{fmt(r['conf_low'])}, {fmt(r['conf_high'])}]"
            row = [
                *labels,
                term,
                fmt(r.get("estimate")),
                fmt(r.get("std_error")),
                ci,
                _p(r.get("p_value")),
            ]
            if simulated:
                row.append(fmt(r.get("truth")))
            rows.append(row)
    return head, rows


def _data_blocks(study: Study, results: Mapping[str, Any], unit: Unit) -> list[Block]:
    data = results["data"]
    simulated = bool(data.get("simulated"))
    blocks: list[Block] = []
    # ---- data
    blocks.append(("h2", "Data"))
    if data["kind"] == "simulator":
        blocks.append(
            (
                "p",
                f"**Simulated data** (simulator `{data.get('simulator')}`). {data['description']}",
            )
        )
        blocks.append(
            (
                "p",
                "The *Truth* column gives the effect planted in these simulated data; on a "
                "real extract it is absent.",
            )
        )
        if simulated and study.simulated_notes:
            blocks.extend(markdown_blocks(study.simulated_notes))
    elif data["kind"] == "file":
        blocks.append(("p", f"Data file `{data.get('file')}`."))
    elif data["kind"] == "query":
        blocks.append(("p", "Data from a DuckDB query:"))
        blocks.append(("pre", data.get("query", "")))
    else:
        blocks.append(("p", "Data passed in by the caller (a data frame)."))
    missing = data.get("missing_values") or {}
    if missing:
        blocks.append(
            (
                "p",
                "Missing values (rows without a value; left out of the means that use "
                "the column): "
                + "; ".join(
                    f"`{k}` {v:,}" if isinstance(v, int) else f"`{k}` {v}"
                    for k, v in missing.items()
                )
                + ".",
            )
        )
    if study.columns:
        blocks.append(
            (
                "p",
                "Derived columns, computed on the rows: "
                + "; ".join(f"`{k}` = `{v}`" for k, v in study.columns.items())
                + ".",
            )
        )
    if study.collapse is not None:
        c = study.collapse
        own = list(
            dict.fromkeys(
                (a.family, tuple(a.collapse_by or ()), a.split is not None)
                for a in study.analyses
                if a.fit_on == "cells" and (a.collapse_by is not None or a.split is not None)
            )
        )
        other = "".join(
            f" Analyses `{fam}` use cells by "
            + ", ".join(f"`{b}`" for b in (keys or c.by))
            + (", split into each group's rows and the rest (`in_<group>`)" if split else "")
            + "."
            for fam, keys, split in own
        )
        blocks.append(
            (
                "p",
                f"The rows are collapsed to cells by {', '.join(f'`{b}`' for b in c.by)} in "
                f"DuckDB, separately for each subgroup; estimators are weighted by the "
                f"count behind each cell value (`{c.count}`, or `n_<measure>` for measures "
                f"with their own condition).{other} Cell values resting on fewer than "
                f"{study.min_cell_size} rows are suppressed and left out.",
            )
        )
        rows = [
            [
                m.name,
                f"`{m.column}`" if m.column else "",
                m.stat,
                f"`{m.where}`" if m.where else "",
                unit(m.name),
            ]
            for m in c.measures
        ]
        blocks.append(
            ("table", ["Measure", "Column", "Statistic", "Among rows with", "Unit"], rows)
        )
    if results.get("cells"):
        rows = [
            [
                s["group"],
                f"`{s['where']}`" if s.get("where") else "everyone",
                ", ".join(s.get("cell_keys") or []),
                fmt(s.get("n_cells")),
                fmt(s.get("n_suppressed_cells")),
                fmt(s.get("n_microdata_rows"))
                if s.get("n_microdata_rows") is not None
                else "suppressed",
            ]
            for s in results["cells"]
        ]
        blocks.append(
            (
                "table",
                [
                    "Group",
                    "Rows",
                    "Cell keys",
                    "Cells",
                    "Suppressed cells",
                    "Rows behind the cells",
                ],
                rows,
            )
        )
    blocks.extend(_rows_blocks(results["analyses"], data.get("tables") or {}))
    return blocks


def _rows_blocks(
    entries: Sequence[Mapping[str, Any]], tables: Mapping[str, Mapping[str, Any]]
) -> list[Block]:
    """Describe the extra tables and the analyses fitted on rows (counts of rows and units)."""
    blocks: list[Block] = []
    if tables:
        described = []
        for name, t in tables.items():
            what = {
                "simulator": f"simulator `{t.get('simulator')}`",
                "file": f"file `{t.get('file')}`",
            }
            described.append(
                f"`{name}` ({what.get(str(t.get('kind')), 'a DuckDB query')}, sha256 "
                f"`{str(t.get('sha256'))[:16]}…`)"
            )
        blocks.append(("p", "Extra tables: " + "; ".join(described) + "."))
    rows = []
    for e in entries:
        d = e.get("data") or {}
        if d.get("mode") != "rows":
            continue

        def count(key: str, d: Mapping[str, Any] = d) -> str:
            value = d.get(key)
            if value is None:
                return "suppressed" if key in (d.get("suppressed_fields") or ()) else ""
            return fmt(value)

        rows.append(
            [
                e["id"],
                f"`{d['table']}`" if d.get("table") else "main",
                count("n_rows"),
                ", ".join(f"`{k}`" for k in d.get("collapse_by") or ()),
                count("n_averaged_rows"),
                count("n_units"),
            ]
        )
    if not rows:
        return blocks
    text = (
        "Analyses fitted on rows read only the columns they use from DuckDB; with "
        "averaging keys, every numeric column they use is averaged within those keys first. "
        "No row is written anywhere; counts below the minimum cell size are suppressed."
    )
    head = ["Analysis", "Table", "Rows used", "Averaged within", "Averaged rows", "Units"]
    return [*blocks, ("p", text), ("table", head, rows)]


def _inference_blocks(entries: Sequence[Mapping[str, Any]]) -> list[Block]:
    blocks: list[Block] = [("h2", "Inference")]
    described: dict[str, list[str]] = {}
    for e in entries:
        d = (e.get("inference") or {}).get("description")
        if d and e["family"] not in described.setdefault(d, []):
            described[d].append(e["family"])
    for d, fams in described.items():
        blocks.append(("p", f"Inference ({', '.join(f'`{f}`' for f in fams)}): {d}."))
    for note in (test_inversion_note(entries), within_note(entries)):
        if note:
            blocks.append(("p", note))
    return blocks


def _summary_blocks(
    entries: Sequence[Mapping[str, Any]], simulated: bool, unit: Unit, has_events: bool
) -> list[Block]:
    table = summary_table(entries, fmt=fmt, unit=unit, simulated=simulated, within=is_within)
    if table is None:
        return []
    head, rows, legend = table
    blocks: list[Block] = [
        ("h2", "Summary: every estimator side by side"),
        (
            "p",
            "One row per outcome and group, one column per analysis: the estimate with its "
            "interval in brackets (or its p-value when the method gives no interval), in "
            "the unit of the outcome."
            + (
                " *Truth* is the true value on these simulated data of what most columns "
                "of the row estimate; a column that estimates something else (e.g. a group "
                "against the rest of its city) gives its own truth in its cell."
                if simulated
                else ""
            )
            + (
                " Estimates by event time are in the event-study figures below."
                if has_events
                else ""
            ),
        ),
        ("table", head, rows),
        ("ul", [f"`{fam}`: {title}" for fam, title in legend]),
    ]
    cover = coverage(entries)
    if simulated and cover:
        hit = sum(c for c, _ in cover.values())
        known = sum(n for _, n in cover.values())
        blocks.append(
            (
                "p",
                f"On these simulated data {hit} of {known} intervals cover the truth ("
                + ", ".join(f"`{fam}` {c} of {n}" for fam, (c, n) in cover.items())
                + ").",
            )
        )
    return blocks


def _caveat_blocks(
    caveats: Sequence[Caveat], families: Mapping[str, Sequence[str]], notes: str
) -> list[Block]:
    if not caveats and not notes:
        return []
    blocks: list[Block] = [("h2", "Caveats")]
    if caveats:
        blocks.append(
            (
                "p",
                "Each caveat is stated once, with the analyses it concerns (the *Caveats* "
                "column of the table of analyses refers to them by number).",
            )
        )
    for i, c in enumerate(caveats, start=1):
        varies = " (the wording differs by analysis; the first is shown)" if c.varies else ""
        blocks.append(
            (
                "p",
                f"**C{i}. {c.title}.** {c.text} *Concerns {len(c.analyses)} "
                f"{'analysis' if len(c.analyses) == 1 else 'analyses'}{varies}: "
                f"{concerns(c.analyses, families)}.*",
            )
        )
    if notes:
        blocks.extend(markdown_blocks(notes))
    return blocks


def _results_blocks(
    entries: Sequence[Mapping[str, Any]],
    simulated: bool,
    unit: Unit,
    figures: Mapping[str, list[tuple[str, str]]],
) -> list[Block]:
    blocks: list[Block] = []
    families = list(dict.fromkeys(e["family"] for e in entries))
    within = [f for f in families if all(is_within(e) for e in entries if e["family"] == f)]
    sections: list[tuple[str, list[Any], str | None]] = [
        ("Results", [f for f in families if f not in within], None)
    ]
    if within:
        sections.append(
            (
                "Heterogeneity within the treated units: triple differences",
                within,
                "Each row compares a group with the rest of the rows in the same unit and "
                "period, after against before the treatment, and that contrast in the "
                "treated unit(s) with the same contrast in the comparison units: the "
                "estimate is how much more the treatment changed the group's outcome than "
                "the rest's. Shocks that hit a unit in a period whatever the group (a "
                "local labour market, an epidemic wave that hits one city differently) "
                "cancel."
                + (
                    " *Truth* is the difference between the two planted effects among "
                    "the treated rows."
                    if simulated
                    else ""
                ),
            )
        )
    for heading, fams, intro in sections:
        if not fams:
            continue
        blocks.append(("h2", heading))
        if intro:
            blocks.append(("p", intro))
        for fam in fams:
            members = [e for e in entries if e["family"] == fam]
            blocks.append(("h3", f"{members[0]['title']} ({members[0]['estimator']})"))
            head, rows = _family_rows(members, simulated, unit)
            if rows:
                blocks.append(("table", head, rows))
            if any(figs.has_event_time(e) for e in members):
                blocks.append(
                    (
                        "p",
                        "Estimates by event time are drawn in the event-study figures below "
                        "and listed in `results.json`.",
                    )
                )
            for path, alt in figures.get(fam, []):
                blocks.append(("img", path, alt))
    figure_sections = (
        (
            "__events__",
            "Event studies",
            "Estimates by event time of every analysis that reports them, overlaid per "
            "outcome and group (each family shifted sideways so that the intervals do "
            "not overlap); hollow points are reference periods fixed at zero, the "
            "dashed line is the start of the treatment and the dotted lines are the "
            "study's marks.",
        ),
        (
            "__trends__",
            "Cell means over time",
            "Means of the unsuppressed cells, weighted by their counts, for the treated "
            "unit(s) and the comparison units; dotted lines mark the study's marks (or, "
            "without marks, a dashed line the first treated period).",
        ),
    )
    for key, heading, intro in figure_sections:
        if figures.get(key):
            blocks += [("h2", heading), ("p", intro)]
            blocks += [("img", path, alt) for path, alt in figures[key]]
    return blocks


def _analyses_blocks(
    entries: Sequence[Mapping[str, Any]], caveats: Sequence[Caveat]
) -> list[Block]:
    refs: dict[str, list[str]] = {}
    for i, c in enumerate(caveats, start=1):
        for a in c.analyses:
            refs.setdefault(a, []).append(f"C{i}")
    rows = []
    for e in entries:
        info, d = e.get("info") or {}, e.get("data") or {}
        obs = d.get("n_cells", d.get("n_rows", info.get("n_obs")))
        split = e.get("split") or {}
        rows.append(
            [
                e["id"],
                (f"`{e['where']}`" if e.get("where") else "everyone")
                + (f"; split by {split['by']}" if split.get("by") else ""),
                fmt(obs) if obs is not None else "suppressed",
                fmt(d.get("n_suppressed_cells")),
                (e.get("inference") or {}).get("method", ""),
                str(e.get("seed")),
                ", ".join(refs.get(e["id"], [])),
                (e.get("error") or "").splitlines()[0] if e.get("error") else "",
            ]
        )
    head = [
        "Analysis",
        "Rows",
        "Observations",
        "Suppressed cells",
        "Inference",
        "Seed",
        "Caveats",
        "Error",
    ]
    return [("h2", "Analyses"), ("table", head, rows)]


def _blocks(
    study: Study,
    results: Mapping[str, Any],
    figures: Mapping[str, list[tuple[str, str]]],
    unit: Unit,
) -> list[Block]:
    data = results["data"]
    simulated = bool(data.get("simulated"))
    entries = results["analyses"]
    blocks: list[Block] = [("h1", study.title)]
    if study.description:
        blocks.append(("p", study.description))
    blocks.append(
        (
            "p",
            f"Study `{study.name}`, evalkit {results.get('evalkit_version')}. Design "
            f"sha256 `{results['design_sha256'][:16]}…`, data sha256 "
            f"`{data['sha256'][:16]}…`, seed {results['seed']}. Every count below "
            f"{results['min_cell_size']} is suppressed.",
        )
    )
    blocks += _data_blocks(study, results, unit)
    blocks += _inference_blocks(entries)
    has_events = any(figs.has_event_time(e) for e in entries)
    blocks += _summary_blocks(entries, simulated, unit, has_events)
    blocks += pretrend_blocks(entries)
    subsets = {}
    if study.collapse is not None:
        subsets = {m.name: m.where for m in study.collapse.measures if m.where}
    caveats = consolidate(
        entries,
        few_treated=FEW_TREATED_CLUSTERS,
        robust=_ROBUST,
        skip_few=cell_level,
        subsets=subsets,
    )
    families: dict[str, list[str]] = {}
    for e in entries:
        families.setdefault(e["family"], []).append(e["id"])
    blocks += _caveat_blocks(caveats, families, study.notes)
    blocks += _results_blocks(entries, simulated, unit, figures)
    blocks += equality_blocks(entries)
    blocks += _analyses_blocks(entries, caveats)
    blocks.append(("h2", "Reproduce"))
    where = os.path.relpath(study.root)
    where = str(study.root) if where.startswith("..") else where
    blocks.append(
        (
            "pre",
            f"evalkit run {where}      # writes results.json, this report, manifest.json\n"
            f"evalkit verify {where}   # re-runs and compares with expected.json",
        )
    )
    return blocks


# --------------------------------------------------------------------------- writing
def write_report(
    study: Study,
    results: Mapping[str, Any],
    fitted: Sequence[Fitted],
    cells: Mapping[str, pd.DataFrame],
    out_dir: Path,
    drawn: Sequence[tuple[FigureJob, Path | None]] | None = None,
) -> list[Path]:
    """Write report.md, report.html and figures/*.png; return the paths written.

    The HTML page refers to its figures by relative paths (``figures/<name>.png``), so
    the run folder opens in a browser as it is. ``drawn`` are the figures already drawn
    into ``out_dir / "figures"`` (each :func:`figure_jobs` job with its file, in that
    order; the runner draws them on its workers); None draws them here.
    """
    unit = report_unit(study, cells)
    figures: dict[str, list[tuple[str, str]]] = {}
    written: list[Path] = []
    if study.figures:
        if drawn is None:
            fig_dir = out_dir / "figures"
            jobs = figure_jobs(study, results, fitted, cells, unit)
            drawn = [(job, draw_figure(job, fig_dir)) for job in jobs]
        figures, written = placed(drawn)
    blocks = _blocks(study, results, figures, unit)
    md = out_dir / "report.md"
    md.write_text(to_markdown(blocks), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(blocks, study.title, out_dir), encoding="utf-8")
    return [*written, md, page]
