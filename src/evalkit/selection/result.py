"""The result of a case selection, with its funnel plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core.result import Result

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["SelectionResult"]


@dataclass(frozen=True, eq=False)
class SelectionResult(Result):
    """A :class:`~evalkit.core.result.Result` of :class:`~evalkit.selection.ObservedExpected`.

    Extras: ``municipalities``, a DataFrame with one row per municipality (only the
    selected ones when anonymised): persons, observed and expected counts and the raw
    ratio (empty where a count is below the minimum cell size, left out when
    anonymised), the shrunk ratio, ``p_above`` / ``p_below``, the share of bootstrap
    replicates in which the selection picks it (``selected_share_above`` /
    ``selected_share_below``) and whether it is ``selected`` (``"above"``, ``"below"``).
    """

    _funnel: pd.DataFrame | None = field(default=None, repr=False)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw the funnel plot: raw ratio against expected count, with control limits.

        Ratios are relative to the window's level ``L = sum(O) / sum(E)``; the limits
        are ``1 -/+ z * sqrt(phi / (L * E))`` for ``z`` = 1.96 and 3.09 (95% and 99.8%),
        with ``phi`` the overdispersion factor.
        Municipalities with fewer events than the minimum cell size are not drawn. When
        the selection is anonymised, no municipality is labelled and expected counts are
        shown in bands (powers of two), so that a size does not identify a municipality.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.2))
        table = self._funnel
        if table is None:  # pragma: no cover - always set by the estimator
            return ax
        level = float(self.info["level"])
        phi = float(self.info["dispersion"])
        anonymised = bool(self.info.get("anonymised"))
        shown = table.loc[~table["suppressed"]]
        x = shown["expected"].to_numpy(float)
        if anonymised:
            x = 2.0 ** np.floor(np.log2(np.maximum(x, 1.0)))
        grid = np.geomspace(max(min(x.min(), 1.0), 0.5), x.max() * 1.2, 200)
        for z, style in ((1.96, "--"), (3.09, ":")):
            half = z * np.sqrt(phi / (level * grid))
            ax.plot(grid, 1.0 + half, style, color="0.4", lw=0.9)
            ax.plot(grid, np.maximum(1.0 - half, 0.0), style, color="0.4", lw=0.9)
        ax.axhline(1.0, color="0.4", lw=0.8)
        colors = {"above": "C3", "below": "C0", "": "0.6"}
        for kind, sub in shown.groupby("selected", sort=False):
            xs = x[shown["selected"].to_numpy() == kind]
            ax.scatter(
                xs,
                sub["raw_ratio"],
                s=18,
                color=colors[str(kind)],
                label={"above": "selected above", "below": "selected below"}.get(str(kind)),
                zorder=3,
            )
            if kind and not anonymised:
                for xi, (_, row) in zip(xs, sub.iterrows(), strict=True):
                    ax.annotate(
                        str(row["unit"]),
                        (xi, row["raw_ratio"]),
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        ax.set_xscale("log")
        ax.set_xlabel("expected events" + (" (bands)" if anonymised else ""))
        ax.set_ylabel("observed / expected, relative to the level")
        hidden = int(table["suppressed"].sum())
        title = "Funnel plot: 95% and 99.8% limits"
        if hidden:
            title += f"; {hidden} small municipalities not shown"
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="best")
        return ax
