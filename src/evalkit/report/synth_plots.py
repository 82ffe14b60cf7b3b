"""Plots of synthetic-control results: trajectories with time weights, unit weights.

Every function returns a matplotlib Axes and never calls ``show()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["trajectory_plot", "unit_weights_plot"]


def trajectory_plot(
    path: pd.DataFrame,
    *,
    treatment_start: Any,
    time_weights: pd.Series | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Plot the treated trajectory against its synthetic counterpart.

    Parameters
    ----------
    path
        Indexed by period, with columns ``treated`` and ``synthetic`` and optionally
        ``counterfactual`` (the synthetic path shifted by the pre-period difference that
        the time weights select, as synthetic DiD compares).
    treatment_start
        First treated period (a vertical dashed line).
    time_weights
        Pre-period time weights, drawn as shaded bars along the bottom.
    ax
        Axes to draw on; a new figure is made when None.
    title
        Plot title.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 4.2))
    x = path.index.to_numpy()
    ax.plot(x, path["treated"], color="C0", lw=2, label="treated")
    ax.plot(x, path["synthetic"], color="C1", lw=1.5, label="synthetic control")
    if "counterfactual" in path and not np.allclose(path["counterfactual"], path["synthetic"]):
        ax.plot(x, path["counterfactual"], color="C1", lw=1.2, ls="--", label="synthetic + shift")
    ax.axvline(treatment_start, color="0.5", ls="--", lw=0.9)
    if time_weights is not None and (time_weights > 0).any():
        low, high = ax.get_ylim()
        height = 0.18 * (high - low)
        tw = time_weights[time_weights > 0]
        ax.bar(
            tw.index.to_numpy(),
            height * tw.to_numpy() / tw.max(),
            bottom=low,
            width=0.8,
            color="C2",
            alpha=0.4,
            label="time weights",
        )
        ax.set_ylim(low, high)
    ax.legend(loc="best", fontsize="small")
    ax.set_xlabel(str(path.index.name or "time"))
    if title:
        ax.set_title(title)
    return ax


def unit_weights_plot(
    weights: pd.Series, *, ax: Axes | None = None, top: int = 20, title: str | None = None
) -> Axes:
    """Plot the largest donor weights as horizontal bars."""
    import matplotlib.pyplot as plt

    shown = weights[weights > 0].sort_values(ascending=True).tail(top)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, max(2.4, 0.3 * len(shown) + 1.0)))
    labels = [str(i) if not isinstance(i, tuple) else " / ".join(map(str, i)) for i in shown.index]
    ax.barh(np.arange(len(shown)), shown.to_numpy(), color="C1")
    ax.set_yticks(np.arange(len(shown)), labels)
    ax.set_xlabel("donor weight")
    ax.set_title(title or f"Donor weights (largest {len(shown)} of {int((weights > 0).sum())})")
    return ax
