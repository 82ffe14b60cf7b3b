"""Figures of a study report: estimates, event studies, synthetic paths, cell means.

Every figure labels its axes with the outcome's unit (``[report] units``, ``"share"``
for 0/1 means) and draws the study's marks (``[report] marks``) on every time axis:
the cell means over time, the overlaid event-study plot (marks in event time) and the
synthetic-control paths. Figures are built without pyplot (no global state) and saved
as PNG next to the report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.report.comparison import group_of
from evalkit.report.event_plot import error_spans, event_study_plot
from evalkit.report.units import (
    axis_kind,
    draw_marks,
    mark_times,
    numeric_time,
    period_marks,
    with_unit,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "EntryResult",
    "event_figure",
    "forest",
    "has_path",
    "path_figure",
    "result_grid",
    "save",
    "slug",
    "trends",
]

Unit = Callable[[str | None], str]
Marks = Sequence[tuple[Any, str]]


def figure(width: float, height: float) -> Figure:
    """Return a new figure outside pyplot's state."""
    from matplotlib.figure import Figure

    # No layout engine: constrained/tight layout redraws the figure and doubles the cost.
    return Figure(figsize=(width, height))


def margins(
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


def _grid(n: int, ncols: int, width: float, height: float, **kw: Any) -> tuple[Figure, Any]:
    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    fig = figure(width * ncols, height * nrows + kw.pop("extra", 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    margins(fig, **kw)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def save(fig: Figure, path: Path) -> Path:
    """Save a figure as PNG (creating its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def slug(text: str) -> str:
    """Return a safe file name for a figure.

    Examples
    --------
    >>> slug("twfe / all groups")
    'twfe_all_groups'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "figure"


# --------------------------------------------------------------------------- estimates
def forest(
    members: Sequence[Mapping[str, Any]], simulated: bool, unit: Unit, title: str | None = None
) -> Figure | None:
    """Effects with intervals (and truth), one panel per value of the first label.

    Event-time rows are left out (they are in the event-study figure); the x axis of
    each panel names the effect's unit when its analyses share one outcome.
    """
    from evalkit.report.comparison import effect_rows

    rows = []
    for e in members:
        labels = e.get("labels") or {}
        keys = list(labels)
        panel = str(labels[keys[0]]) if len(keys) > 1 else ""
        rest = " · ".join(str(labels[k]) for k in keys[1:]) if len(keys) > 1 else e["id"]
        effects = effect_rows(e)
        for r in effects:
            name = rest if len(effects) == 1 else f"{rest} · {r['term']}"
            rows.append(
                (
                    panel,
                    name,
                    r["estimate"],
                    r.get("conf_low"),
                    r.get("conf_high"),
                    r.get("truth"),
                    e.get("outcome"),
                )
            )
    if not rows:
        return None
    panels = list(dict.fromkeys(r[0] for r in rows))
    names = {p: [r[1] for r in rows if r[0] == p] for p in panels}
    shared = all(v == names[panels[0]] for v in names.values())
    n_rows = max(len(v) for v in names.values())
    label_in = 0.3 + 0.075 * max(len(r[1]) for r in rows)
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    width = 3.2 * ncols + label_in * (1 if shared else ncols)
    top = 0.8 if title else 0.45
    fig = figure(width, nrows * (0.3 * n_rows + 1.1) + 0.7 + top - 0.45)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    margins(
        fig,
        left=label_in,
        top=top,
        bottom=0.7,
        wspace=0.12 if shared else 0.9 * label_in / 3.2,
        hspace=0.75,
    )
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=False)):
        sub = [r for r in rows if r[0] == panel]
        y = np.arange(len(sub))[::-1]
        est = np.array([r[2] for r in sub], dtype=float)
        lo = np.array([r[3] if r[3] is not None else r[2] for r in sub], dtype=float)
        hi = np.array([r[4] if r[4] is not None else r[2] for r in sub], dtype=float)
        xerr, miss = error_spans(est, lo, hi)
        ax.errorbar(est, y, xerr=xerr, fmt="o", color="C0", capsize=3, label="estimate")
        if miss.any():  # an inverted interval that leaves out the estimate
            ax.hlines(y[miss], lo[miss], hi[miss], color="C0", lw=1.5)
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
        outcomes = {r[6] for r in sub}
        only = next(iter(outcomes)) if len(outcomes) == 1 else None
        ax.set_xlabel(with_unit("effect", unit(only) if only else ""), fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    return fig


#: Most rows a coefficient plot of the report draws (more cannot be labelled legibly).
MAX_PLOT_ROWS = 40


def result_grid(fitted: Sequence[Any], unit: Unit) -> Figure | None:
    """Each member's own plot (``Result.plot``): results with several effects.

    Results with event-time rows are left out: they are in the event-study figure. A
    result with more rows than a plot can label legibly (:data:`MAX_PLOT_ROWS`, e.g.
    one effect per month for each of ten subgroups) shows its summary terms only (those
    without a period), or is left out when they are still too many; its table has them all.
    """
    members: list[tuple[Any, list[str] | None]] = []
    for f in fitted:
        if f.result is None or len(f.result.terms) < 2 or has_path(f.result):
            continue
        tidy = f.result.tidy()
        if "event_time" in tidy and tidy["event_time"].notna().any():
            continue
        terms = None
        if len(tidy) > MAX_PLOT_ROWS:
            periods = tidy["time"].notna() if "time" in tidy else pd.Series(False, tidy.index)
            terms = [str(t) for t in tidy.loc[~periods, "term"].unique()]
            shown = int(tidy["term"].isin(terms).sum())
            if not 2 <= shown <= MAX_PLOT_ROWS:
                continue
        members.append((f, terms))
    if not members:
        return None
    fig, axes = _grid(len(members), 2, 6.0, 3.6, left=1.2, wspace=0.35, bottom=0.6)
    for ax, (f, terms) in zip(axes, members, strict=False):
        f.result.plot(ax=ax, terms=terms)
        ax.set_title(f.spec.id, fontsize=9)
        ax.set_xlabel(with_unit("effect", unit(f.spec.outcome)), fontsize=8)
    return fig


# --------------------------------------------------------------------------- event studies
class EntryResult:
    """An analysis of ``results.json`` seen as a result by :func:`event_study_plot`.

    It has what :class:`~evalkit.report.event_plot.EventResult` asks of a result.

    It carries only what passed the disclosure gate (the tidy rows), so the figure
    cannot show anything the report's tables do not.
    """

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.entry = entry
        self.estimator = str(entry.get("estimator", "result"))
        self.level = float(entry.get("level") or 0.95)
        ref = (entry.get("info") or {}).get("reference")
        ref = (entry.get("options") or {}).get("reference") if ref is None else ref
        refs = ref if isinstance(ref, list | tuple) else [] if ref is None else [ref]
        self.reference = tuple(r for r in refs if isinstance(r, int | float))

    def tidy(self, level: float | None = None) -> pd.DataFrame:
        """Return the entry's tidy rows (``level`` is the entry's own)."""
        rows = pd.DataFrame(self.entry.get("tidy") or [])
        for col in ("estimate", "conf_low", "conf_high"):
            rows[col] = pd.to_numeric(rows.get(col), errors="coerce")
        return rows


def has_event_time(entry: Mapping[str, Any]) -> bool:
    """Say whether an analysis reports estimates by event time."""
    return not entry.get("error") and any(
        r.get("event_time") is not None for r in entry.get("tidy") or []
    )


def event_figure(
    entries: Sequence[Mapping[str, Any]], outcome: str | None, unit: Unit, marks: Marks
) -> Figure | None:
    """Draw the event-time estimates of every analysis of one outcome, per group.

    One panel per group; in each, one series per analysis family
    (:func:`evalkit.report.event_study_plot`), with the study's marks in event time.
    """
    mine = [e for e in entries if has_event_time(e) and e.get("outcome") == outcome]
    if not mine:
        return None
    groups = list(dict.fromkeys(group_of(e) for e in mine))
    fig, axes = _grid(len(groups), 2, 6.4, 3.6, left=0.8, top=0.7, bottom=0.6, hspace=0.5)
    fig.suptitle(f"{outcome}: estimates by event time (reform marks dotted)", fontsize=10)
    for ax, group in zip(axes, groups, strict=False):
        members = [e for e in mine if group_of(e) == group]
        event_study_plot(
            [EntryResult(e) for e in members],
            labels=[str(e["family"]) for e in members],
            ax=ax,
            title=f"group: {group}",
        )
        ax.set_ylabel(with_unit(f"effect on {outcome}", unit(outcome)), fontsize=8)
        ax.set_xlabel("periods since the first treated period", fontsize=8)
        draw_marks(ax, marks, axis="numbers")
        ax.title.set_fontsize(9)
    return fig


# --------------------------------------------------------------------------- synthetic paths
def has_path(result: Any) -> bool:
    """Say whether a result has a treated-vs-synthetic path to draw."""
    for name in ("path", "paths"):
        try:
            value = getattr(result, name, None)
        except (AssertionError, KeyError, AttributeError):
            continue
        if isinstance(value, pd.DataFrame) and {"treated", "synthetic"} <= set(value):
            return True
    return False


def path_figure(
    fitted: Sequence[Any], unit: Unit, marks: Mapping[str, str], times: Sequence[Any] = ()
) -> Figure | None:
    """Treated and synthetic paths of each analysis with the study's marks.

    ``times`` is the grid of periods of the data: when a path is indexed by period
    numbers rather than by the data's times, a mark is drawn at the number of the first
    period at or after it.
    """
    members = [f for f in fitted if f.result is not None and has_path(f.result)]
    if not members:
        return None
    fig, axes = _grid(len(members), 3, 4.6, 3.0, left=0.8, top=0.45, bottom=0.6, hspace=0.6)
    parsed = mark_times(marks)
    for ax, f in zip(axes, members, strict=False):
        f.result.plot(ax=ax)
        ax.set_title(f.spec.id, fontsize=9)
        ax.set_ylabel(with_unit(str(f.spec.outcome or "outcome"), unit(f.spec.outcome)), fontsize=8)
        xs = ax.lines[0].get_xdata() if ax.lines else []
        ax.set_xlabel(str((f.spec.kwargs or {}).get("time") or "time"), fontsize=8)
        kind = axis_kind(xs)
        grid = pd.Index(sorted(pd.unique(pd.Index(times)))) if len(times) else pd.Index([])
        if kind == "numbers" and axis_kind(grid) == "dates" and len(grid) == len(xs):
            draw_marks(ax, period_marks(marks, grid, xs), axis="numbers")
            ax.set_xlabel(f"period (numbered from {grid[0]:%Y-%m})", fontsize=8)
        else:
            draw_marks(ax, parsed, axis=kind)
        ax.tick_params(labelsize=7)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_fontsize(6)
    return fig


# --------------------------------------------------------------------------- cell means
def trends(
    collapse: Any,
    table: pd.DataFrame,
    specs: Sequence[Any],
    group: str,
    unit: Unit,
    marks: Mapping[str, str],
) -> Figure | None:
    """Weighted means of unsuppressed cells over time, treated vs comparison units.

    ``specs`` are the analyses fitted on these cells (their roles name the columns);
    ``collapse`` gives the weight of each outcome (:meth:`CollapseSpec.weight_for`).
    """
    if not specs or collapse is None:
        return None
    kw = specs[0].kwargs
    unit_col, time_col, treat = kw.get("unit"), kw.get("time"), kw.get("treatment")
    if not all(isinstance(c, str) and c in table for c in (unit_col, time_col, treat)):
        return None
    outcomes = list(dict.fromkeys(s.outcome for s in specs if s.outcome in table))
    if not outcomes or table.empty:
        return None
    ever = table.groupby(unit_col, observed=True)[treat].transform("max").to_numpy() > 0
    first = table.loc[table[treat] > 0, time_col].min() if (table[treat] > 0).any() else None
    dates = pd.api.types.is_datetime64_any_dtype(table[time_col])
    parsed = mark_times(marks)
    fig, axes = _grid(
        len(outcomes), 3, 4.0, 2.8, extra=0.6, left=0.8, top=0.6, bottom=0.6, wspace=0.35
    )
    for ax, outcome in zip(axes, outcomes, strict=False):
        weight = collapse.weight_for(outcome)
        ok = table[outcome].notna().to_numpy() & table[weight].notna().to_numpy()
        for mask, label, color in ((ever, "treated", "C3"), (~ever, "comparison", "C0")):
            sub = table.loc[ok & mask, [time_col, outcome, weight]]
            if sub.empty:
                continue
            w = sub[weight].astype(float)
            means = (sub[outcome] * w).groupby(sub[time_col]).sum() / w.groupby(sub[time_col]).sum()
            ax.plot(numeric_time(means.index), means.to_numpy(), color=color, lw=1.2, label=label)
        if first is not None and not parsed:
            ax.axvline(numeric_time(pd.Index([first]))[0], color="0.4", ls="--", lw=0.8)
        draw_marks(ax, parsed, axis="years" if dates else "numbers")
        ax.set_title(outcome, fontsize=10)
        ax.set_ylabel(with_unit("mean", unit(outcome)), fontsize=8)
        ax.set_xlabel(str(time_col), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"group: {group}", fontsize=10)
    return fig
