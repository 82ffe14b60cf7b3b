"""The study report: its content built from the protected results, with figures.

The text and tables come only from the results payload that passed the disclosure gate;
they are assembled as blocks here and rendered as Markdown and HTML by
:mod:`evalkit.report.render`.
Figures show estimates with their intervals (and true values for simulated data) and,
when the study collapses to cells, the means of unsuppressed cells over time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core import registry
from evalkit.inference.policy import THRESHOLDS
from evalkit.report.render import Block, markdown_blocks, to_html, to_markdown

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from evalkit.study.config import Study
    from evalkit.study.runner import Fitted

__all__ = ["FEW_TREATED_CLUSTERS", "write_report"]

#: Below this many treated clusters, cluster-robust intervals get a caution (the one
#: thresholds table, :data:`evalkit.inference.THRESHOLDS`).
FEW_TREATED_CLUSTERS = THRESHOLDS.few_treated
_ROBUST = ("iid", "hetero", "cluster", "cr2")
# Inference a within-unit comparison can rest on with few treated clusters: the errors of
# the cells (not of the treated clusters) carry the information.
_CELL_LEVEL = ("iid", "hetero")


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
def _is_within(entry: Mapping[str, Any]) -> bool:
    """Say whether an analysis compares groups within units (a triple difference)."""
    name = entry.get("estimator")
    within = name in registry.names() and registry.get(name).within_unit
    return within or bool(entry.get("split"))


def _label(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get("labels", {}).get(key, entry.get(key, ""))
    if key == "split_by" and entry.get("split"):
        value = f"{entry['split']['by']} vs the rest"
    return str(value)


def _family_rows(entries: Sequence[Mapping[str, Any]], simulated: bool) -> tuple[list, list]:
    label_keys = list(dict.fromkeys(k for e in entries for k in e.get("labels", {})))
    if not label_keys:
        label_keys = ["outcome", "group"]
    level = entries[0].get("level", 0.95) if entries else 0.95
    head = ["Comparison" if k == "split_by" else k.capitalize() for k in label_keys]
    head += ["Term", "Estimate", "Std. error", f"{round(level * 100)}% CI", "p-value"]
    if simulated:
        head.append("Truth")
    rows = []
    for e in entries:
        labels = [_label(e, k) for k in label_keys]
        # a split by a [groups] group compares target 1 with 0: the key says nothing new
        group_split = bool((e.get("split") or {}).get("condition"))
        if e.get("error"):
            rows.append(
                [*labels, "error", e["error"].splitlines()[0], "", "", ""] + [""] * simulated
            )
            continue
        for r in e["tidy"]:
            term = str(r["term"])
            for key in ("subgroup", "group", "cohort", "time", "event_time"):
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


def _few_treated(entry: Mapping[str, Any]) -> bool:
    k = (entry.get("info") or {}).get("n_treated_clusters")
    return isinstance(k, int) and k < FEW_TREATED_CLUSTERS


def _cell_level(entry: Mapping[str, Any]) -> bool:
    """Say whether a within-unit comparison takes its standard errors from the cells."""
    return _is_within(entry) and (entry.get("inference") or {}).get("method") in _CELL_LEVEL


def _caution(entries: Sequence[Mapping[str, Any]]) -> str | None:
    few = []
    for e in entries:
        info, inf = e.get("info") or {}, e.get("inference") or {}
        k = info.get("n_treated_clusters")
        if _cell_level(e):
            continue  # explained by _within_note
        if isinstance(k, int) and k < FEW_TREATED_CLUSTERS and inf.get("method") in _ROBUST:
            few.append((k, info.get("n_clusters"), inf.get("method"), inf.get("cluster")))
    if not few:
        return None
    k, g, _, cluster = few[0]
    methods = sorted({f[2] for f in few})
    return (
        f"**Caution on inference.** {len(few)} analyses have only {k} treated cluster(s) of "
        f"{g} ({cluster}). Their standard errors ({', '.join(methods)}) are cluster-robust "
        "or model-based; with so few treated clusters such intervals are unreliable and "
        "usually too narrow (on a null simulation of a one-treated-city design, CR1 "
        "rejects a true null about half the time at the 5% level, and CR2 does not fix "
        "this). Methods built for few treated clusters (wild cluster bootstrap, "
        "randomization inference over units, Conley-Taber, Ferman-Pinto, conformal "
        "inference) were not used in this run; read the intervals and p-values as "
        "descriptive, not as tests."
    )


_TEST_INVERSION_NAMES = {
    "conformal": "conformal inference over time (Chernozhukov, Wuthrich & Zhu 2021)",
    "wild": "the wild cluster bootstrap",
    "permutation": "randomization inference over which clusters are treated",
    "conley_taber": "Conley-Taber inference",
    "ferman_pinto": "Ferman-Pinto inference",
}


def _test_inversion_note(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Explain p-values and intervals that come from inverting a test (no standard errors)."""
    mine = [e for e in entries if (e.get("inference") or {}).get("kind") == "test_inversion"]
    if not mine:
        return None
    methods = list(dict.fromkeys((e.get("inference") or {}).get("method") for e in mine))
    names = ", ".join(_TEST_INVERSION_NAMES.get(m, str(m)) for m in methods)
    k = (mine[0].get("info") or {}).get("n_treated_clusters")
    g = (mine[0].get("info") or {}).get("n_clusters")
    steps = sorted(
        set(
            re.findall(
                r"steps of (1/\d+)",
                " ".join((e.get("inference") or {}).get("description") or "" for e in mine),
            )
        )
    )
    gran = ""
    if steps:
        gran = (
            f" Their p-values come in steps of {', '.join(steps)}, so no smaller p-value "
            "is possible."
        )
    return (
        f"**Inference valid with few treated clusters.** {len(mine)} analyses "
        f"({k} treated cluster(s) of {g}) use {names}, chosen because cluster-robust "
        "standard errors are not reliable with so few treated clusters. These methods give "
        "a p-value and an interval (the effects the test does not reject) but no standard "
        f"error, so the standard-error column is empty.{gran}"
    )


def _within_note(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Explain why within-unit comparisons can be trusted where unit-level ones cannot."""
    mine = [e for e in entries if _cell_level(e) and _few_treated(e) and e.get("tidy")]
    if not mine:
        return None
    info = mine[0].get("info") or {}
    unit = (info.get("roles") or {}).get("unit", "unit")
    times = list(
        dict.fromkeys(str(((e.get("info") or {}).get("roles") or {}).get("time")) for e in mine)
    )
    k, g = info.get("n_treated_clusters"), info.get("n_clusters")
    by_method: dict[str, int] = {}
    for e in mine:
        method = (e.get("inference") or {}).get("method")
        by_method[method] = by_method.get(method, 0) + 1
    text = (
        f"**Why triple differences can be trusted where the {unit}-level analyses "
        f"cannot.** With {k} treated {unit} of {g}, a {unit}-level comparison cannot tell "
        f"the treatment from anything else that hit the treated {unit} and not the others "
        "in the same periods, and no standard error can learn how large such shocks are "
        "from a single treated cluster. The triple differences compare a group with the "
        f"rest of the same {unit} in the same period "
        f"({', '.join(f'`{t}`' for t in times)}): the {unit} x period fixed effects absorb "
        f"every shock the two share, so {unit}-level shocks neither bias these estimates "
        "nor enter their noise. What is left is the noise of the within-unit contrast, "
        "which the comparison units show as well as the treated one, so it can be "
        "estimated from the cells rather than from the number of treated clusters."
    )
    if by_method.get("iid"):
        text += (
            f" The {by_method['iid']} with classical standard errors (weighted by the "
            "cell counts) assume that this contrast is equally noisy per person in every "
            "unit and learn its size from the comparison units."
        )
        periods = [
            (e.get("info") or {}).get("n_periods")
            for e in mine
            if (e.get("inference") or {}).get("method") == "iid"
        ]
        if all(isinstance(n, int) and n <= 2 for n in periods):
            text += (
                " Their cells cover the whole period before and after the treatment, so "
                "following the same persons over time does not make the cells' errors "
                "dependent."
            )
        else:
            text += (
                " Where cells of consecutive periods follow the same persons their errors "
                "are dependent and these standard errors too small: collapse to the periods "
                "before and after the treatment (`collapse_by`)."
            )
    if by_method.get("hetero"):
        text += (
            f" The {by_method['hetero']} with heteroskedasticity-robust (HC1) standard "
            "errors assume that the cells' errors are independent; cells of consecutive "
            "periods that follow the same persons are not, and then HC1 is too small: "
            "collapse to longer periods (e.g. before and after, with `collapse_by`) and "
            'use inference = "iid".'
        )
    text += (
        " All rest on the within-unit contrast evolving in parallel across units (a "
        "shock that hits one group of the treated unit and not the rest is not absorbed)."
    )
    return text


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
                f"`{name}` ({what.get(t.get('kind'), 'a DuckDB query')}, sha256 "
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


def _blocks(
    study: Study, results: Mapping[str, Any], figures: Mapping[str, list[tuple[str, str]]]
) -> list[Block]:
    data = results["data"]
    simulated = bool(data.get("simulated"))
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
            [m.name, f"`{m.column}`" if m.column else "", m.stat, f"`{m.where}`" if m.where else ""]
            for m in c.measures
        ]
        blocks.append(("table", ["Measure", "Column", "Statistic", "Among rows with"], rows))
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
    # ---- inference
    entries = results["analyses"]
    blocks.append(("h2", "Inference"))
    described: dict[str, list[str]] = {}
    for e in entries:
        d = (e.get("inference") or {}).get("description")
        if d and e["family"] not in described.setdefault(d, []):
            described[d].append(e["family"])
    for d, fams in described.items():
        blocks.append(("p", f"Inference ({', '.join(f'`{f}`' for f in fams)}): {d}."))
    caution = _caution(entries)
    if caution:
        blocks.append(("p", caution))
    inverted = _test_inversion_note(entries)
    if inverted:
        blocks.append(("p", inverted))
    within_note = _within_note(entries)
    if within_note:
        blocks.append(("p", within_note))
    if study.notes:
        blocks.extend(markdown_blocks(study.notes))
    # ---- results
    families = list(dict.fromkeys(e["family"] for e in entries))
    within = [f for f in families if all(_is_within(e) for e in entries if e["family"] == f)]
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
            head, rows = _family_rows(members, simulated)
            blocks.append(("table", head, rows))
            for path, alt in figures.get(fam, []):
                blocks.append(("img", path, alt))
    if figures.get("__trends__"):
        blocks.append(("h2", "Cell means over time"))
        blocks.append(
            (
                "p",
                "Means of the unsuppressed cells, weighted by their counts, for the treated "
                "unit(s) and the comparison units; the dashed line marks the first treated "
                "period.",
            )
        )
        for path, alt in figures["__trends__"]:
            blocks.append(("img", path, alt))
    # ---- details
    blocks.append(("h2", "Analyses"))
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
                "; ".join(e.get("warnings") or []) + (e.get("error") or ""),
            ]
        )
    blocks.append(
        (
            "table",
            [
                "Analysis",
                "Rows",
                "Observations",
                "Suppressed cells",
                "Inference",
                "Seed",
                "Warnings / errors",
            ],
            rows,
        )
    )
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


# --------------------------------------------------------------------------- figures
def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    # No layout engine: constrained/tight layout redraws the figure and doubles the cost.
    return Figure(figsize=(width, height))


def _margins(
    fig: Figure,
    *,
    left: float,
    top: float = 0.45,
    bottom: float = 0.5,
    wspace: float = 0.25,
    hspace: float = 0.55,
) -> None:
    """Set margins given in inches (left, top, bottom) for a grid of axes."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=min(left / w, 0.6),
        right=0.98,
        top=1 - top / h,
        bottom=bottom / h,
        wspace=wspace,
        hspace=hspace,
    )


def _forest(
    members: Sequence[Mapping[str, Any]], simulated: bool, title: str | None = None
) -> Figure | None:
    """Estimates with intervals (and truth), one panel per value of the first label."""
    rows = []
    for e in members:
        labels = e.get("labels") or {}
        keys = list(labels)
        panel = str(labels[keys[0]]) if len(keys) > 1 else ""
        rest = " · ".join(str(labels[k]) for k in keys[1:]) if len(keys) > 1 else e["id"]
        for r in e["tidy"]:
            if r.get("estimate") is None:
                continue
            name = rest if len(e["tidy"]) == 1 else f"{rest} · {r['term']}"
            rows.append(
                (panel, name, r["estimate"], r.get("conf_low"), r.get("conf_high"), r.get("truth"))
            )
    if not rows:
        return None
    panels = list(dict.fromkeys(r[0] for r in rows))
    names = {p: [r[1] for r in rows if r[0] == p] for p in panels}
    shared = all(v == names[panels[0]] for v in names.values())
    n_rows = max(len(v) for v in names.values())
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    label_in = 0.3 + 0.075 * max(len(r[1]) for r in rows)
    width = 3.2 * ncols + label_in * (1 if shared else ncols)
    top = 0.8 if title else 0.45
    fig = _figure(width, nrows * (0.3 * n_rows + 0.9) + 0.5 + top - 0.45)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    _margins(fig, left=label_in, top=top, wspace=0.12 if shared else 0.9 * label_in / 3.2)
    if title:
        fig.suptitle(title, fontsize=10)
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=False)):
        sub = [r for r in rows if r[0] == panel]
        y = np.arange(len(sub))[::-1]
        est = np.array([r[2] for r in sub], dtype=float)
        lo = np.array([r[3] if r[3] is not None else r[2] for r in sub], dtype=float)
        hi = np.array([r[4] if r[4] is not None else r[2] for r in sub], dtype=float)
        # a test-inversion interval need not contain the point estimate (e.g. a wild
        # bootstrap's): its bar then starts at the estimate
        ax.errorbar(
            est,
            y,
            xerr=[np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)],
            fmt="o",
            color="C0",
            capsize=3,
            label="estimate",
        )
        truth = [(r[5], yy) for r, yy in zip(sub, y, strict=True) if r[5] is not None]
        if simulated and truth:
            ax.scatter(
                [t[0] for t in truth],
                [t[1] for t in truth],
                marker="x",
                color="C3",
                zorder=3,
                label="truth",
            )
        if i == 0:
            ax.legend(loc="best", fontsize=7, frameon=False)
        ax.axvline(0.0, color="0.5", lw=0.8)
        ax.set_ylim(-0.6, len(sub) - 0.4)
        show = not shared or i % ncols == 0
        ax.set_yticks(y, [r[1] for r in sub] if show else [], fontsize=8)
        ax.set_title(panel, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return fig


def _result_grid(fitted: Sequence[Fitted]) -> Figure | None:
    """Each member's own plot (``Result.plot``): for results with several estimates."""
    members = [f for f in fitted if f.result is not None and len(f.result.terms) > 1]
    if not members:
        return None
    ncols = min(len(members), 2)
    nrows = math.ceil(len(members) / ncols)
    fig = _figure(6.0 * ncols, 3.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    _margins(fig, left=1.2, wspace=0.35)
    for ax, f in zip(axes, members, strict=False):
        f.result.plot(ax=ax)
        ax.set_title(f.spec.id, fontsize=9)
    for ax in axes[len(members) :]:
        ax.set_visible(False)
    return fig


def _trends(
    study: Study, table: pd.DataFrame, fitted: Sequence[Fitted], group: str
) -> Figure | None:
    """Weighted means of unsuppressed cells over time, treated vs comparison units."""
    specs = [
        f.spec
        for f in fitted
        if f.spec.group == group
        and not f.spec.custom_where
        and f.spec.split is None
        and f.spec.collapse_by is None
    ]
    if not specs or study.collapse is None:
        return None
    kw = specs[0].kwargs
    unit, time_col, treat = kw.get("unit"), kw.get("time"), kw.get("treatment")
    if not all(isinstance(c, str) and c in table for c in (unit, time_col, treat)):
        return None
    outcomes = list(dict.fromkeys(s.outcome for s in specs if s.outcome in table))
    if not outcomes or table.empty:
        return None
    ever = table.groupby(unit, observed=True)[treat].transform("max").to_numpy() > 0
    first = table.loc[table[treat] > 0, time_col].min() if (table[treat] > 0).any() else None
    ncols = min(len(outcomes), 3)
    nrows = math.ceil(len(outcomes) / ncols)
    fig = _figure(4.0 * ncols, 2.6 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    _margins(fig, left=0.7, top=0.6, wspace=0.3, hspace=0.45)
    for ax, outcome in zip(axes, outcomes, strict=False):
        weight = study.collapse.weight_for(outcome)
        ok = table[outcome].notna().to_numpy() & table[weight].notna().to_numpy()
        for mask, label, color in ((ever, "treated", "C3"), (~ever, "comparison", "C0")):
            sub = table.loc[ok & mask, [time_col, outcome, weight]]
            if sub.empty:
                continue
            w = sub[weight].astype(float)
            means = (sub[outcome] * w).groupby(sub[time_col]).sum() / w.groupby(sub[time_col]).sum()
            ax.plot(_numeric_time(means.index), means.to_numpy(), color=color, lw=1.2, label=label)
        if first is not None:
            ax.axvline(_numeric_time(pd.Index([first]))[0], color="0.4", ls="--", lw=0.8)
        ax.set_title(outcome, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes[len(outcomes) :]:
        ax.set_visible(False)
    fig.suptitle(f"group: {group}", fontsize=10)
    return fig


def _numeric_time(index: pd.Index) -> np.ndarray:
    """Dates as decimal years (date axes are slow to lay out), other times as numbers."""
    if pd.api.types.is_datetime64_any_dtype(index):
        stamps = pd.DatetimeIndex(index)
        return (stamps.year + (stamps.day_of_year - 1) / 365.25).to_numpy(dtype=float)
    return np.asarray(index, dtype=float)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "figure"


def write_report(
    study: Study,
    results: Mapping[str, Any],
    fitted: Sequence[Fitted],
    cells: Mapping[str, pd.DataFrame],
    out_dir: Path,
) -> list[Path]:
    """Write report.md, report.html and figures/*.png; return the paths written."""
    written: list[Path] = []
    figures: dict[str, list[tuple[str, str]]] = {}
    simulated = bool(results["data"].get("simulated"))
    fig_dir = out_dir / "figures"
    if study.figures:
        entries = results["analyses"]
        for fam in dict.fromkeys(e["family"] for e in entries):
            members = [e for e in entries if e["family"] == fam]
            within = all(_is_within(e) for e in members)
            title = (
                "How much more the treatment changed each group's outcome than the rest's "
                "(same unit and period)"
                if within
                else None
            )
            fig = _forest(members, simulated, title)
            if fig is not None:
                p = _save(fig, fig_dir / f"{_slug(fam)}.png")
                written.append(p)
                figures.setdefault(fam, []).append(
                    (f"figures/{p.name}", f"{fam}: estimates with confidence intervals")
                )
            grid = _result_grid([f for f in fitted if f.spec.family == fam])
            if grid is not None:
                p = _save(grid, fig_dir / f"{_slug(fam)}_plots.png")
                written.append(p)
                figures.setdefault(fam, []).append((f"figures/{p.name}", f"{fam}: each analysis"))
        for group, table in cells.items():
            fig = _trends(study, table, fitted, group)
            if fig is not None:
                p = _save(fig, fig_dir / f"trends_{_slug(group)}.png")
                written.append(p)
                figures.setdefault("__trends__", []).append(
                    (f"figures/{p.name}", f"cell means over time, group {group}")
                )
    blocks = _blocks(study, results, figures)
    md = out_dir / "report.md"
    md.write_text(to_markdown(blocks), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(blocks, study.title, out_dir), encoding="utf-8")
    return [*written, md, page]
