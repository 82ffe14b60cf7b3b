"""The figures of a study report as jobs: what draws each one, from what, and where.

A :class:`FigureJob` is picklable (a drawing function of
:mod:`evalkit.report.study_figures` and its arguments), so the study runner can draw a
family's figures on its worker processes as soon as the family's analyses are fitted,
while the other analyses are still running; :func:`draw_figure` saves one as PNG, and
:func:`placed` gives the report's references to the files, in the report's order,
wherever they were drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit.report import study_figures as figs
from evalkit.report.inference_notes import is_within
from evalkit.report.units import event_time_marks, looks_like_share, unit_of

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.study.config import Study
    from evalkit.study.runner import Fitted

__all__ = [
    "FigureJob",
    "UnitOf",
    "draw_figure",
    "event_figure",
    "event_marks",
    "event_outcomes",
    "family_figures",
    "figure_jobs",
    "placed",
    "report_unit",
    "share_outcomes",
    "time_grid",
    "trend_figures",
]

Unit = Callable[[str | None], str]


# --------------------------------------------------------------------------- units
def share_outcomes(study: Study, cells: Mapping[str, pd.DataFrame]) -> set[str]:
    """Outcomes that are means of 0/1 columns (every cell mean within [0, 1])."""
    if study.collapse is None:
        return set()
    out = set()
    for m in study.collapse.measures:
        if m.stat != "mean" or m.name in study.units:
            continue
        values = [t[m.name] for t in cells.values() if m.name in t]
        if values and looks_like_share(pd.concat(values, ignore_index=True)):
            out.add(m.name)
    return out


# --------------------------------------------------------------------------- jobs
def time_grid(specs: Sequence[Any], cells: Mapping[str, pd.DataFrame]) -> tuple[list[Any], Any]:
    """Return the periods of the cells and the first treated period (for event-time marks)."""
    for spec in specs:
        kw = spec.kwargs
        time_col, treat = kw.get("time"), kw.get("treatment")
        for table in cells.values():
            if (
                isinstance(time_col, str)
                and isinstance(treat, str)
                and {time_col, treat} <= set(table)
            ):
                treated = table[treat] > 0
                if treated.any():
                    return list(table[time_col]), table.loc[treated, time_col].min()
    return [], None


@dataclass(frozen=True)
class UnitOf:
    """An outcome's unit for axes and tables (:func:`~evalkit.report.units.unit_of`).

    A picklable callable, so that a figure can be drawn on a worker process.

    Examples
    --------
    >>> UnitOf({"income": "NOK"}, frozenset({"work"}))("work")
    'share'
    """

    units: Mapping[str, str]
    shares: frozenset[str] = frozenset()

    def __call__(self, outcome: str | None) -> str:
        """Return the outcome's unit (``""`` when unknown)."""
        return unit_of(outcome, self.units, self.shares)


def report_unit(study: Study, cells: Mapping[str, pd.DataFrame]) -> UnitOf:
    """Return the study's units, with ``"share"`` for means of 0/1 columns without one."""
    return UnitOf(dict(study.units), frozenset(share_outcomes(study, cells)))


@dataclass(frozen=True)
class FigureJob:
    """One figure of the report: what draws it, from what, and where it goes.

    Picklable (a module-level drawing function and its arguments), so the runner can
    draw it on a worker process while other analyses are still fitted; the file and
    the report's reference to it are the same wherever it is drawn.

    Attributes
    ----------
    section
        The family the figure belongs to, or ``"__events__"`` / ``"__trends__"``.
    name
        The figure's name (its file is ``figures/<slug(name)>.png``).
    alt
        The alternative text in the report.
    draw
        A function of :mod:`evalkit.report.study_figures` returning a figure or None.
    args
        Its arguments.
    """

    section: str
    name: str
    alt: str
    draw: Callable[..., Any]
    args: tuple[Any, ...]


def draw_figure(job: FigureJob, fig_dir: Path) -> Path | None:
    """Draw one figure and save it as PNG in ``fig_dir`` (None: nothing to draw)."""
    fig = job.draw(*job.args)
    if fig is None:
        return None
    return figs.save(fig, fig_dir / f"{figs.slug(job.name)}.png")


def family_figures(
    family: str,
    members: Sequence[Mapping[str, Any]],
    fitted: Sequence[Fitted],
    *,
    simulated: bool,
    unit: Unit,
    marks: Mapping[str, str],
    times: Sequence[Any],
) -> list[FigureJob]:
    """Return the figures of a family: its forest plot, each analysis' plot, its paths.

    ``members`` are the family's entries of the protected results, ``fitted`` its
    fitted analyses.
    """
    within = all(is_within(e) for e in members)
    title = (
        "How much more the treatment changed each group's outcome than the rest's "
        "(same unit and period)"
        if within
        else None
    )
    fitted = list(fitted)
    return [
        FigureJob(
            family,
            family,
            f"{family}: estimates with confidence intervals",
            figs.forest,
            (list(members), simulated, unit, title),
        ),
        FigureJob(
            family, f"{family}_plots", f"{family}: each analysis", figs.result_grid, (fitted, unit)
        ),
        FigureJob(
            family,
            f"{family}_paths",
            f"{family}: treated and synthetic paths",
            figs.path_figure,
            (fitted, unit, dict(marks), list(times)),
        ),
    ]


def event_marks(study: Study, specs: Sequence[Any], cells: Mapping[str, pd.DataFrame]) -> list:
    """Return the study's marks in event time (periods since the first treated period)."""
    times, first = time_grid(specs, cells)
    return event_time_marks(study.marks, times, first) if times else []


def event_outcomes(entries: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Return the outcomes with estimates by event time, in the order of the analyses."""
    return list(dict.fromkeys(e.get("outcome") for e in entries if figs.has_event_time(e)))


def event_figure(
    outcome: Any, entries: Sequence[Mapping[str, Any]], unit: Unit, marks: Sequence[Any]
) -> FigureJob:
    """Return the figure of the estimates by event time of one outcome (every family)."""
    mine = [e for e in entries if figs.has_event_time(e) and e.get("outcome") == outcome]
    return FigureJob(
        "__events__",
        f"event_study_{outcome}",
        f"estimates by event time, {outcome}",
        figs.event_figure,
        (mine, outcome, unit, list(marks)),
    )


def trend_figures(
    study: Study, specs: Sequence[Any], cells: Mapping[str, pd.DataFrame], unit: Unit
) -> list[FigureJob]:
    """Return the figures of the cell means over time, one per group (no fit needed)."""
    jobs = []
    for group, table in cells.items():
        mine = [
            s
            for s in specs
            if s.group == group and not s.custom_where and s.split is None and s.collapse_by is None
        ]
        jobs.append(
            FigureJob(
                "__trends__",
                f"trends_{group}",
                f"cell means over time, group {group}",
                figs.trends,
                (study.collapse, table, mine, group, unit, dict(study.marks)),
            )
        )
    return jobs


def figure_jobs(
    study: Study,
    results: Mapping[str, Any],
    fitted: Sequence[Fitted],
    cells: Mapping[str, pd.DataFrame],
    unit: Unit,
) -> list[FigureJob]:
    """Every figure of the report, in the report's order."""
    simulated = bool(results["data"].get("simulated"))
    entries = results["analyses"]
    specs = [f.spec for f in fitted]
    times, _ = time_grid(specs, cells)
    jobs: list[FigureJob] = []
    for fam in dict.fromkeys(e["family"] for e in entries):
        jobs += family_figures(
            fam,
            [e for e in entries if e["family"] == fam],
            [f for f in fitted if f.spec.family == fam],
            simulated=simulated,
            unit=unit,
            marks=study.marks,
            times=times,
        )
    marks = event_marks(study, specs, cells)
    jobs += [event_figure(o, entries, unit, marks) for o in event_outcomes(entries)]
    return jobs + trend_figures(study, specs, cells, unit)


def placed(
    drawn: Sequence[tuple[FigureJob, Path | None]],
) -> tuple[dict[str, list[tuple[str, str]]], list[Path]]:
    """Return the report's figures by section and the files written, from drawn figures."""
    figures: dict[str, list[tuple[str, str]]] = {}
    written: list[Path] = []
    for job, path in drawn:
        if path is not None:
            written.append(path)
            figures.setdefault(job.section, []).append((f"figures/{path.name}", job.alt))
    return figures, written
