"""Draw a study report's figures on the fit workers while the last analyses are fitted.

A run used to draw every figure after its last fit, in the parent on one core while the
workers idled (26 s of 146 s at 1.5 million persons). :class:`FiguresAhead` hands each
figure to the backend (:meth:`evalkit.parallel.Backend.submit`) as soon as what it
shows is known: a family's figures once its analyses are fitted, the event-study figure
of an outcome once every analysis of that outcome is, the cell means once the cells
are. The figures are the same files as when drawn by
:func:`~evalkit.report.study_report.write_report` itself (the same
:class:`~evalkit.report.figure_jobs.FigureJob` list, in the same order), and they show
only what passed the disclosure gate: the protected entries and the fitted results the
report's own figures use.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit import parallel
from evalkit.report.figure_jobs import (
    FigureJob,
    UnitOf,
    draw_figure,
    event_figure,
    event_marks,
    event_outcomes,
    family_figures,
    report_unit,
    time_grid,
    trend_figures,
)

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.study.config import Study
    from evalkit.study.runner import Fitted

__all__ = ["FiguresAhead"]

_Drawn = tuple[Path | None, float]


def _draw(task: tuple[FigureJob, Path]) -> _Drawn:
    """Draw one figure (on a worker): its file and the CPU seconds it took."""
    cpu = time.process_time()
    path = draw_figure(*task)
    return path, time.process_time() - cpu


class FiguresAhead:
    """The report's figures, each started as soon as what it shows is fitted.

    Call :meth:`materialised` once every analysis' rows or cells have been made (the
    units and the time grid of the figures come from the cells), :meth:`fitted` with
    each analysis' protected entry in order, and :meth:`finish` for the figures in the
    report's order. Does nothing when the study has no figures.
    """

    def __init__(self, study: Study, runner: parallel.Backend, fig_dir: Path) -> None:
        self.study = study
        self.runner = runner
        self.fig_dir = fig_dir
        self.enabled = bool(study.figures)
        specs = study.analyses
        self.left: Counter[Any] = Counter(s.family for s in specs)
        self.outcome_left: Counter[Any] = Counter(s.outcome for s in specs)
        self.entries: list[Mapping[str, Any]] = []
        self.events: dict[Any, None] = {}  # outcomes with event-time rows, in order
        self.fitted_: list[Fitted] = []
        self.cells: Mapping[str, pd.DataFrame] | None = None
        self.simulated = False
        self.unit: UnitOf | None = None
        self.times: list[Any] = []
        self.marks: list[Any] = []
        self.started: dict[Any, list[tuple[FigureJob, parallel.Pending[_Drawn]]]] = {}
        self.cpu_seconds = 0.0

    def materialised(self, cells: Mapping[str, pd.DataFrame], simulated: bool) -> None:
        """Every analysis' data are made: the cells by group are final.

        ``simulated`` says whether the data are simulated (the figures then show truths).
        """
        if not self.enabled or self.cells is not None:
            return
        self.cells = cells
        self.simulated = simulated
        self.unit = report_unit(self.study, cells)
        specs = self.study.analyses
        self.times = time_grid(specs, cells)[0]
        self.marks = event_marks(self.study, specs, cells)
        self._start("__trends__", trend_figures(self.study, specs, cells, self.unit))
        self._start_complete()

    def fitted(self, fitted: Fitted, entry: Mapping[str, Any]) -> None:
        """Record an analysis (in the study's order) with its protected entry."""
        if not self.enabled:
            return
        self.entries.append(entry)
        self.events.update(dict.fromkeys(event_outcomes([entry])))
        self.fitted_.append(fitted)
        self.left[fitted.spec.family] -= 1
        self.outcome_left[fitted.spec.outcome] -= 1
        self._start_complete()

    def _start_complete(self) -> None:
        if self.unit is None:
            return
        for fam, left in self.left.items():
            if left == 0 and fam not in self.started:
                self._start(fam, self._family(fam))
        for outcome in self.events:
            key = ("__events__", outcome)
            if self.outcome_left[outcome] == 0 and key not in self.started:
                self._start(key, [event_figure(outcome, self.entries, self.unit, self.marks)])

    def _family(self, family: str) -> list[FigureJob]:
        assert self.unit is not None
        return family_figures(
            family,
            [e for e in self.entries if e["family"] == family],
            [f for f in self.fitted_ if f.spec.family == family],
            simulated=self.simulated,
            unit=self.unit,
            marks=self.study.marks,
            times=self.times,
        )

    def _start(self, key: Any, jobs: list[FigureJob]) -> None:
        self.started[key] = [(j, self.runner.submit(_draw, (j, self.fig_dir))) for j in jobs]

    def finish(self) -> list[tuple[FigureJob, Path | None]]:
        """Wait for every figure; return each with its file, in the report's order."""
        if not self.enabled:
            return []
        self._start_complete()
        order: list[Any] = list(dict.fromkeys(e["family"] for e in self.entries))
        order += [("__events__", o) for o in self.events]
        order.append("__trends__")
        drawn: list[tuple[FigureJob, Path | None]] = []
        for key in order:
            for job, pending in self.started.get(key, []):
                path, cpu = pending.result()
                self.cpu_seconds += cpu
                drawn.append((job, path))
        return drawn
