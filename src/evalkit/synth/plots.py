"""Plots of synthetic control results. Every function returns a matplotlib Axes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.errors import DesignError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes

    from evalkit.synth.result import SyntheticControlResult

__all__ = ["KINDS", "plot_robustness", "plot_synthetic"]

KINDS: tuple[str, ...] = ("trajectory", "gap", "placebo", "weights")


def _axes(ax: Axes | None, size: tuple[float, float] = (6.4, 4.0)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1]


def _start_line(ax: Axes, result: SyntheticControlResult) -> None:
    ax.axvline(result.info["treatment_start"], color="0.5", lw=0.8, ls="--")


def plot_synthetic(
    result: SyntheticControlResult, ax: Axes | None = None, kind: str = "trajectory", **kwargs: Any
) -> Axes:
    """Plot a synthetic control result.

    Parameters
    ----------
    result
        A fit of ``synth.SyntheticControl`` or ``synth.AugmentedSyntheticControl``.
    ax
        Axes to draw on; a new figure when None.
    kind
        ``"trajectory"`` (treated vs synthetic outcome), ``"gap"`` (their difference),
        ``"placebo"`` (the gap with every kept placebo run's gap, the "spaghetti" plot) or
        ``"weights"`` (donor weights, largest first).
    **kwargs
        Passed to the main matplotlib call.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if kind not in KINDS:
        raise DesignError(
            f"unknown plot kind {kind!r}", hint=f"kinds: {', '.join(KINDS)}", column="kind"
        )
    from evalkit.report.synth_plots import trajectory_plot, unit_weights_plot

    name = result.info["treated_unit"]
    title = f"{result.estimator}: {name}"
    if kind == "trajectory":
        return trajectory_plot(
            result.path, treatment_start=result.info["treatment_start"], ax=ax, title=title
        )
    if kind == "weights":
        return unit_weights_plot(result.weights, ax=ax)
    ax = _axes(ax)
    outcome = result.info["roles"]["outcome"]
    if kind == "gap":
        path = result.path
        ax.plot(path.index, path["gap"], color="k", **kwargs)
        ax.set_title(title)
    else:
        runs = result.placebos
        if runs is None:
            raise DesignError(
                "this result has no placebo runs",
                hint="fit with inference='placebo'",
                column="kind",
            )
        kept = runs.kept
        for i in range(1, len(runs.units)):
            if kept[i]:
                ax.plot(runs.times, runs.gaps[i], color="0.75", lw=0.8)
        ax.plot(runs.times, runs.gaps[0], color="k", lw=1.6, label=str(name), **kwargs)
        cut = "" if runs.cutoff is None else f", pre-MSPE <= {runs.cutoff:g}x treated"
        ax.set_title(f"Placebo in space ({runs.n_placebos} placebos{cut})")
        ax.legend(frameon=False)
    ax.axhline(0.0, color="0.4", lw=0.8)
    _start_line(ax, result)
    ax.set_ylabel(f"gap in {outcome} (treated - synthetic)")
    ax.set_xlabel(result.info["roles"]["time"])
    return ax


def plot_robustness(table: pd.DataFrame, ax: Axes | None = None, **kwargs: Any) -> Axes:
    """Plot the gap paths of a ``leave_one_out`` or ``backdate`` table (first row bold).

    Returns the matplotlib Axes.
    """
    ax = _axes(ax)
    cols = [c for c in table.columns if str(c).startswith("gap_")]
    times = np.array([c[4:] for c in cols])
    try:
        x: np.ndarray = times.astype(float)
    except ValueError:
        x = np.arange(len(cols), dtype=float)
    key = table.columns[0]
    for i in range(len(table)):
        gaps = table.iloc[i][cols].to_numpy(dtype=float)
        label = "all donors" if i == 0 and key == "left_out" else f"{key}={table.iloc[i][key]}"
        first = i == 0
        ax.plot(
            x, gaps, color="k" if first else None, lw=1.6 if first else 0.9, label=label, **kwargs
        )
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_ylabel("gap (treated - synthetic)")
    ax.legend(frameon=False, fontsize="small")
    return ax
