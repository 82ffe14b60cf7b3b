"""Forest plot of one pooled estimate: each run's estimate and the pooled diamonds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from evalkit.pool.runs import PooledEstimate

__all__ = ["forest_plot"]


def forest_plot(
    pooled: PooledEstimate, ax: Axes | None = None, *, tau2: str = "reml", **kwargs: Any
) -> Axes:
    """Draw a forest plot and return the matplotlib Axes (never calls ``show()``).

    One row per run (square sized by its random-effects weight, with its Wald interval at
    the pooled level), then diamonds for the fixed-effect and random-effects estimates,
    a dotted line at zero, and the heterogeneity (Q, I^2, tau^2) in the title.

    Parameters
    ----------
    pooled
        A :class:`~evalkit.pool.runs.PooledEstimate` (from :func:`~evalkit.pool.pool_runs`).
    ax
        Axes to draw on; a new figure is made when None.
    tau2
        The random-effects estimate drawn (``"reml"``, ``"dl"`` or ``"pm"``).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.errorbar` for the runs' intervals.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon
    from scipy import stats

    m = pooled.meta
    rand = m.random[tau2]
    k = len(pooled.estimates)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 1.4 + 0.45 * (k + 2)))
    est = np.asarray(pooled.estimates)
    se = np.asarray(pooled.std_errors)
    crit = float(stats.norm.ppf(0.5 + m.level / 2))
    ys = np.arange(k + 2)[::-1] + 0.0  # runs on top, then the two diamonds
    run_y = ys[:k]
    ax.errorbar(est, run_y, xerr=crit * se, fmt="none", ecolor="0.3", capsize=3, **kwargs)
    sizes = 40 + 260 * np.asarray(rand.weights)
    ax.scatter(est, run_y, s=sizes, marker="s", color="C0", zorder=3)
    for y, pool, colour in ((ys[k], m.fixed, "0.4"), (ys[k + 1], rand, "C3")):
        diamond = [
            (pool.conf_low, y),
            (pool.estimate, y + 0.25),
            (pool.conf_high, y),
            (pool.estimate, y - 0.25),
        ]
        ax.add_patch(Polygon(diamond, closed=True, color=colour, zorder=3))
    ax.axvline(0.0, color="0.5", linestyle=":", linewidth=1)
    labels = [
        *pooled.labels,
        "Fixed effect",
        f"Random effects ({tau2.upper()})",
    ]
    ax.set_yticks(ys, labels)
    lo = min(float((est - crit * se).min()), m.fixed.conf_low, rand.conf_low)
    hi = max(float((est + crit * se).max()), m.fixed.conf_high, rand.conf_high)
    pad = 0.05 * (hi - lo or 1.0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.8, k + 1.8)
    ax.set_xlabel(f"estimate ({m.level:.0%} interval)")
    ax.set_title(
        f"{pooled.name}\nQ = {m.q:.2f} (df {m.q_df}, p = {m.q_p_value:.3f}), "
        f"I² = {m.i2:.0f}%, τ² = {rand.tau2:.3g}",
        fontsize=9,
    )
    return ax
