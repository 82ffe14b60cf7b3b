"""Aggregate plots of a typology: state shares per type, and one type's chronogram.

Both draw only the result's aggregate ``state_distribution`` (shares of a type's persons
in each state); shares suppressed for small counts are shown as a grey band. There is no
index plot and no medoid: individual sequences never reach a figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["state_bars", "state_chronogram"]

_SUPPRESSED = "0.8"


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=(7.0, 4.0)).subplots()


def _colors(states: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(states)}


def state_bars(result: Any, ax: Axes | None = None) -> Axes:
    """Plot one stacked horizontal bar per type: the share of its person-months in each state.

    Examples
    --------
    >>> from evalkit.simulate import get
    >>> from evalkit.sequence import Typology
    >>> df = get("integration_pathways")(seed=1, n_persons=60, n_months=12).data
    >>> res = Typology(unit="person_id", time="month", state="state", n_types=3).fit(df)
    >>> ax = res.plot()
    >>> len(ax.get_yticklabels()) == res.info["number_of_types"]
    True
    """
    ax = _axes(ax)
    dist = result.extras["state_distribution"]
    states = list(result.info["states"])
    types = list(dict.fromkeys(dist["type"]))
    colors = _colors(states)
    means = dist.pivot_table(index="type", columns="state", values="share", aggfunc="mean")
    means = means.reindex(index=types, columns=states)
    left = np.zeros(len(types))
    y = np.arange(len(types))
    for s in states:
        v = np.nan_to_num(means[s].to_numpy())
        ax.barh(y, v, left=left, color=colors[s], label=s)
        left += v
    ax.barh(y, np.clip(1 - left, 0, None), left=left, color=_SUPPRESSED, label="suppressed")
    ax.set_yticks(y, types, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the type's person-months")
    ax.legend(fontsize=6, ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return ax


def state_chronogram(result: Any, type: str, ax: Axes | None = None) -> Axes:
    """Plot the state distribution of one type, period by period (stacked areas)."""
    ax = _axes(ax)
    dist = result.extras["state_distribution"]
    sub = dist[dist["type"] == type]
    if sub.empty:
        from evalkit.errors import DesignError

        raise DesignError(
            f"no type {type!r} in this result",
            hint=f"types: {', '.join(dict.fromkeys(dist['type']))}",
            column="type",
        )
    states = list(result.info["states"])
    wide = sub.pivot(index="time", columns="state", values="share").reindex(columns=states)
    x = np.arange(len(wide))
    values = [np.nan_to_num(wide[s].to_numpy()) for s in states]
    rest = np.clip(1 - np.sum(values, axis=0), 0, None)
    colors = _colors(states)
    ax.stackplot(
        x, *values, rest, colors=[colors[s] for s in states] + [_SUPPRESSED],
        labels=[*states, "suppressed"],
    )  # fmt: skip
    ax.set_xlim(0, len(x) - 1)
    ax.set_ylim(0, 1)
    ax.set_title(type, fontsize=9)
    ax.set_xlabel("period")
    ax.set_ylabel("share of persons")
    return ax
