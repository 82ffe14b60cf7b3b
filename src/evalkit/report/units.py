"""Units of outcomes and reform marks on time axes, for study reports.

A study names the unit of each outcome (``[report] units``) and the dates to mark on
every time plot (``[report] marks``). :func:`unit_of` picks an outcome's unit, with a
fallback of ``"share"`` for means of 0/1 columns; :func:`draw_marks` draws the marks on
an axis whose times are decimal years, dates, plain numbers or event times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "SHARE",
    "axis_kind",
    "draw_marks",
    "event_time_marks",
    "looks_like_share",
    "mark_times",
    "numeric_time",
    "period_marks",
    "plain",
    "unit_of",
    "with_unit",
]

#: The unit given to means of 0/1 columns when the study names none.
SHARE = "share"


def unit_of(outcome: str | None, units: Mapping[str, str], shares: Iterable[str] = ()) -> str:
    """Return the unit of an outcome: the study's, ``"share"`` for 0/1 means, else ``""``.

    Examples
    --------
    >>> unit_of("income", {"income": "NOK per month"}), unit_of("work", {}, {"work"})
    ('NOK per month', 'share')
    >>> unit_of("duration", {})
    ''
    """
    if outcome is None:
        return ""
    if outcome in units:
        return str(units[outcome])
    return SHARE if outcome in set(shares) else ""


def plain(text: str) -> str:
    r"""Make study text literal in matplotlib (no mathtext between dollar signs).

    Examples
    --------
    >>> print(plain("USD $ per month"))
    USD \$ per month
    """
    return str(text).replace("$", r"\$")


def with_unit(text: str, unit: str) -> str:
    """Append a unit in parentheses when there is one (for axis labels; see :func:`plain`).

    Examples
    --------
    >>> with_unit("effect on income", "NOK per month"), with_unit("effect", "")
    ('effect on income (NOK per month)', 'effect')
    """
    return plain(f"{text} ({unit})" if unit else text)


def looks_like_share(values: Any) -> bool:
    """Say whether cell means look like shares: every finite value within [0, 1].

    Used only when the outcome is a mean and the study gives it no unit.

    Examples
    --------
    >>> looks_like_share([0.1, 0.5, None]), looks_like_share([0.2, 7.1]), looks_like_share([])
    (True, False, False)
    """
    x = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float)
    x = x[np.isfinite(x)]
    return bool(x.size) and bool(((x >= 0) & (x <= 1)).all())


def numeric_time(index: Any) -> np.ndarray:
    """Dates as decimal years (date axes are slow to lay out), other times as numbers.

    Examples
    --------
    >>> numeric_time(pd.to_datetime(["2020-01-01", "2020-07-02"])).round(2).tolist()
    [2020.0, 2020.5]
    """
    index = pd.Index(index)
    if pd.api.types.is_datetime64_any_dtype(index):
        stamps = pd.DatetimeIndex(index)
        return (stamps.year + (stamps.day_of_year - 1) / 365.25).to_numpy(dtype=float)
    return np.asarray(index, dtype=float)


def mark_times(marks: Mapping[str, str]) -> list[tuple[Any, str]]:
    """Parse the study's marks: ``(time, label)`` with dates as Timestamps, else floats.

    Examples
    --------
    >>> mark_times({"2020-03-01": "first increase", "2019": "x"})
    [(Timestamp('2020-03-01 00:00:00'), 'first increase'), (2019.0, 'x')]
    """
    out: list[tuple[Any, str]] = []
    for when, label in marks.items():
        try:
            value: Any = float(when)
        except ValueError:
            value = pd.Timestamp(when)
        out.append((value, str(label)))
    return out


def _on_axis(when: Any, axis: str) -> Any:
    """Place a mark on an axis of decimal ``"years"``, ``"dates"`` or ``"numbers"``."""
    if isinstance(when, pd.Timestamp):
        if axis == "years":
            return float(numeric_time(pd.DatetimeIndex([when]))[0])
        return when if axis == "dates" else None
    return None if axis == "dates" else float(when)


def event_time_marks(
    marks: Mapping[str, str], times: Sequence[Any], first_treated: Any
) -> list[tuple[float, str]]:
    """Return marks in event time: periods between each mark and the first treated period.

    ``times`` is the grid of periods (e.g. the months of the data); a mark falls on
    the first period at or after it, and is drawn half a period before that period's
    event time, where the treatment line of an event-study plot is drawn.

    Examples
    --------
    >>> months = pd.date_range("2019-01-01", "2021-12-01", freq="MS")
    >>> event_time_marks({"2020-03-01": "a", "2021-03-01": "b"}, months, months[14])
    [(-0.5, 'a'), (11.5, 'b')]
    """
    grid = pd.Index(sorted(pd.unique(pd.Index(times))))
    if first_treated is None or grid.empty or first_treated not in grid:
        return []
    start = grid.get_loc(first_treated)
    dates = pd.api.types.is_datetime64_any_dtype(grid)
    out = []
    for when, label in mark_times(marks):
        if isinstance(when, pd.Timestamp) != dates:
            continue
        pos = int(grid.searchsorted(when, side="left"))
        if pos >= len(grid):
            continue
        out.append((pos - start - 0.5, label))
    return out


def period_marks(
    marks: Mapping[str, str], grid: Sequence[Any], values: Sequence[Any]
) -> list[tuple[float, str]]:
    """Place marks on an axis that numbers the periods of ``grid`` by ``values``.

    Each mark goes to the value of the first period at or after it.

    Examples
    --------
    >>> months = pd.date_range("2020-01-01", periods=4, freq="MS")
    >>> period_marks({"2020-03-01": "reform"}, months, [1, 2, 3, 4])
    [(3.0, 'reform')]
    """
    index = pd.Index(grid)
    out = []
    for when, label in mark_times(marks):
        if not isinstance(when, pd.Timestamp):
            continue
        pos = int(index.searchsorted(when, side="left"))
        if pos < len(values):
            out.append((float(values[pos]), label))
    return out


def draw_marks(ax: Axes, marks: Sequence[tuple[Any, str]], *, axis: str = "years") -> None:
    """Draw each ``(time, label)`` mark as a dotted vertical line labelled at the top.

    ``axis`` says what the x axis holds: ``"years"`` (dates as decimal years, see
    :func:`numeric_time`), ``"dates"`` (matplotlib dates) or ``"numbers"`` (plain
    numbers such as years or event times, from :func:`event_time_marks`). A mark that
    cannot be placed on the axis (a date on a numeric axis) is skipped.
    """
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for when, label in marks:
        x = _on_axis(when, axis)
        if x is None:
            continue
        ax.axvline(x, color="0.25", ls=":", lw=1.0, zorder=1)
        ax.text(
            x,
            0.98,
            plain(f"{label} "),
            transform=trans,
            rotation=90,
            va="top",
            ha="right",
            fontsize=6,
        )


def axis_kind(times: Any) -> str:
    """``"dates"`` for datetime-like times, else ``"numbers"`` (for :func:`draw_marks`)."""
    index = pd.Index(times)
    return "dates" if pd.api.types.is_datetime64_any_dtype(index) else "numbers"
