"""Plots of results. Every function returns a matplotlib Axes and never calls ``show()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from evalkit.core.result import Result

__all__ = ["coefficient_plot"]


def coefficient_plot(
    result: Result,
    ax: Axes | None = None,
    *,
    level: float | None = None,
    terms: list[str] | None = None,
    color: str = "C0",
    **kwargs: Any,
) -> Axes:
    """Plot point estimates with confidence intervals.

    Event-study style results (with an ``event_time`` key) are drawn against event time
    with a reference line at zero effect and a dashed line before treatment starts;
    other results are drawn as a horizontal coefficient plot, one row per estimate.

    Parameters
    ----------
    result
        The result to plot.
    ax
        Axes to draw on; a new figure is made when None.
    level
        Confidence level of the intervals; defaults to the result's.
    terms
        Only these terms.
    color
        Matplotlib colour of points and bars.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.errorbar`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    tidy = result.tidy(level)
    if terms is not None:
        tidy = tidy[tidy["term"].isin(terms)]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, max(2.4, 0.45 * len(tidy) + 1.2)))
    lo = (tidy["estimate"] - tidy["conf_low"]).to_numpy(dtype=float)
    hi = (tidy["conf_high"] - tidy["estimate"]).to_numpy(dtype=float)
    if "event_time" in tidy and tidy["event_time"].notna().all():
        x = tidy["event_time"].to_numpy(dtype=float)
        ax.errorbar(x, tidy["estimate"], yerr=[lo, hi], fmt="o", color=color, capsize=3, **kwargs)
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.axvline(-0.5, color="0.6", lw=0.8, ls="--")
        ax.set_xlabel("Event time (periods since treatment)")
        ax.set_ylabel("Estimate")
    else:
        labels = tidy["term"].astype(str).tolist()
        for key in ("subgroup", "group", "cohort", "time"):
            if key in tidy:  # a row without this key (e.g. a summary term) says nothing of it
                labels = [
                    a if pd.isna(b) else f"{a} [{key}={b}]"
                    for a, b in zip(labels, tidy[key], strict=True)
                ]
        y = np.arange(len(tidy))[::-1]
        ax.errorbar(tidy["estimate"], y, xerr=[lo, hi], fmt="o", color=color, capsize=3, **kwargs)
        ax.set_yticks(y, labels)
        ax.axvline(0.0, color="0.4", lw=0.8)
        ax.set_xlabel("Estimate")
    level_pct = round((level or result.level) * 100)
    ax.set_title(f"{result.estimator} ({level_pct}% CI; {result.inference.method})")
    return ax
