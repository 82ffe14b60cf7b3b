"""The result type of the event-study estimators, keyed by event time."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.core.result import Result
from evalkit.errors import DesignError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["VIEW_FACTS", "EventTimeResult", "event_term"]

#: Facts of a fit that its aggregated views (``aggregate(kind)``) share.
VIEW_FACTS = ("n_obs", "n_units", "n_periods", "n_clusters", "fixed_effects", "roles")


@dataclasses.dataclass(frozen=True, eq=False)
class EventTimeResult(Result):
    """A result keyed by event time, with other aggregations of the same fit.

    ``aggregate(kind)`` returns the estimates aggregated another way (for example
    ``"overall"`` or ``"cohort"``); the kinds available are listed in
    :attr:`aggregations`. :meth:`plot` draws the event-study plot with the reference
    period(s) marked at zero.
    """

    reference: tuple[Any, ...] = ()
    views: Mapping[str, Result] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        # aggregates come from the same fit: they report its sample facts too (tables)
        shared = {k: self.info[k] for k in VIEW_FACTS if k in self.info}
        views = {
            kind: dataclasses.replace(view, info={**shared, **view.info})
            for kind, view in self.views.items()
        }
        object.__setattr__(self, "views", MappingProxyType(views))
        object.__setattr__(self, "reference", tuple(self.reference))

    @property
    def aggregations(self) -> list[str]:
        """The kinds :meth:`aggregate` accepts."""
        return ["event_time", *self.views]

    def headline(self) -> Result:
        """Return what subgroup comparisons (``by=``) compare.

        That is the overall ATT when the estimator has one, else the event-time estimates.
        """
        return self.views.get("overall", self)

    def aggregate(self, kind: str = "event_time") -> Result:
        """Return the estimates aggregated as ``kind`` (see :attr:`aggregations`).

        Raises
        ------
        DesignError
            If the kind is not available for this estimator.
        """
        if kind == "event_time":
            return self
        if kind not in self.views:
            raise DesignError(
                f"{self.estimator} has no aggregation {kind!r}",
                hint=f"available: {', '.join(self.aggregations)}",
                column="aggregate",
            )
        return self.views[kind]

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw the event-study plot (estimates and intervals by event time).

        Reference periods are drawn as hollow points at zero; pre-trend estimates
        held separately (``aggregate("pretrend")``) are drawn in a second colour.
        Returns the matplotlib Axes.
        """
        from evalkit.report.plots import coefficient_plot

        ax = coefficient_plot(self, ax=ax, **kwargs)
        pre = self.views.get("pretrend")
        if pre is not None:
            tidy = pre.tidy(kwargs.get("level"))
            x = tidy["event_time"].to_numpy(dtype=float)
            est = tidy["estimate"].to_numpy(dtype=float)
            err = [est - tidy["conf_low"].to_numpy(float), tidy["conf_high"].to_numpy(float) - est]
            ax.errorbar(x, est, yerr=err, fmt="s", color="C1", capsize=3, label="pre-trend")
        if self.reference:
            ref = np.asarray(self.reference, dtype=float)
            ax.plot(ref, np.zeros(len(ref)), "o", mfc="white", color="C0", label="reference (0)")
        return ax


def event_term(kind: str = "event_time") -> str:
    """Return the term label used for event-time estimates."""
    return {"event_time": "ATT(e)", "cohort": "ATT(g)", "overall": "ATT", "cells": "ATT(g,e)"}[kind]
