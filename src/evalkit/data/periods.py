"""Dates and periods as time: consecutive integer period codes and their labels.

Register data come monthly, as dates (``2020-03-01``) or as pandas periods
(``Period('2020-03', 'M')``). Every estimator accepts both for ``time``, with ``cohort``
(the first treated period) in the same form: :class:`~evalkit.data.Panel` maps them to
consecutive integer codes, one per period of the time's unit, so that event times are
counted in periods (months) and a month missing from the data leaves a gap rather than
shifting the months after it. Results are keyed by the periods as :class:`pandas.Period`
labels.

The unit of a ``Period`` column is its frequency. For a datetime column it is the
coarsest of year, quarter, month, week and day that tells the distinct dates apart (so
month-start or month-end dates are months, and yearly dates years); pass a ``Period``
column (``df[col].dt.to_period("M")``) to choose the unit yourself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit.data import checks

__all__ = [
    "PeriodCoding",
    "as_period_columns",
    "encode_periods",
    "is_period_like",
    "period_label",
]

#: Units tried for a datetime column, coarsest first.
UNITS: tuple[str, ...] = ("Y", "Q", "M", "W", "D")
_UNIT_NAMES = {"Y": "year", "Q": "quarter", "M": "month", "W": "week", "D": "day"}


def is_period_like(series: pd.Series) -> bool:
    """Return True for datetime64 (naive or with a time zone) and pandas Period columns.

    Examples
    --------
    >>> is_period_like(pd.Series(pd.to_datetime(["2020-01-01"])))
    True
    >>> is_period_like(pd.Series([2020]))
    False
    """
    return isinstance(series.dtype, pd.PeriodDtype) or pd.api.types.is_datetime64_any_dtype(series)


@dataclass(frozen=True)
class PeriodCoding:
    """How period codes map to periods: ``code = ordinal - base`` in unit ``freq``.

    Codes start at 1 for the earliest period among the times and cohorts, so the
    never-treated cohort code 0 cannot clash with a period.

    Examples
    --------
    >>> coding = PeriodCoding(freq="M", base=int(pd.Period("2019-12", "M").ordinal))
    >>> coding.label(3)
    Period('2020-03', 'M')
    >>> coding.unit
    'month'
    """

    freq: str
    base: int

    @property
    def unit(self) -> str:
        """The unit of one period (``"month"``, ``"quarter"``, ...)."""
        return _UNIT_NAMES.get(self.freq[:1], self.freq)

    def label(self, code: float) -> Any:
        """Return the :class:`pandas.Period` of a period code (a float NaN stays NaN)."""
        if not np.isfinite(code):
            return float(code)
        return pd.Period(ordinal=round(float(code)) + self.base, freq=self.freq)

    def codes(self, series: pd.Series) -> np.ndarray:
        """Return the period codes of dates or periods (the inverse of :meth:`label`).

        Examples
        --------
        >>> coding = PeriodCoding(freq="M", base=int(pd.Period("2019-12", "M").ordinal))
        >>> coding.codes(pd.Series(pd.to_datetime(["2020-03-01", "2020-01-01"]))).tolist()
        [3, 1]
        """
        return np.asarray(_periods(series, self.freq).asi8, dtype=np.int64) - self.base


def _periods(series: pd.Series, freq: str | None) -> pd.PeriodIndex:
    if isinstance(series.dtype, pd.PeriodDtype):
        return pd.PeriodIndex(series)
    values = series.dt.tz_localize(None) if series.dt.tz is not None else series
    return pd.PeriodIndex(values.dt.to_period(freq))


def _unit_of(time: pd.Series, col: str) -> str:
    if isinstance(time.dtype, pd.PeriodDtype):
        return str(pd.PeriodIndex(time).freqstr)
    distinct = time.dropna().unique()
    stamps = pd.Series(pd.DatetimeIndex(distinct).tz_localize(None))
    for freq in UNITS:
        if stamps.dt.to_period(freq).nunique() == len(stamps):
            return freq
    checks.fail(
        "P004",
        f"time column {col!r} has several timestamps within one day",
        column=col,
        hint=f"aggregate to one row per period, or give periods: "
        f"df[{col!r}] = df[{col!r}].dt.to_period('D')",
    )
    raise AssertionError  # pragma: no cover - fail raises


def encode_periods(
    time: pd.Series, time_col: str, cohort: pd.Series | None = None, cohort_col: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, PeriodCoding] | None:
    """Map a date or period ``time`` (and ``cohort``) to consecutive integer period codes.

    Parameters
    ----------
    time
        The time column; missing values must have been rejected (check P006).
    time_col, cohort_col
        Column names, for messages.
    cohort
        The first treated period of each row in the same form as ``time`` (dates or
        periods of the same unit); missing (``NaT``) means never treated.

    Returns
    -------
    tuple or None
        None when ``time`` is neither datetime nor Period (numbers are used as they
        are); else the time codes (int64, from 1), the cohort codes (float, 0 for never
        treated; None without a cohort) and the :class:`PeriodCoding`.

    Raises
    ------
    DataError
        [P004] when ``cohort`` is not in the unit of ``time``.

    Examples
    --------
    >>> t = pd.Series(pd.to_datetime(["2020-01-01", "2020-02-01", "2020-04-01"]))
    >>> g = pd.Series(pd.to_datetime(["2020-02-01", None, "2020-02-01"]))
    >>> codes, cohort, coding = encode_periods(t, "month", g, "first")
    >>> codes.tolist(), cohort.tolist(), coding.unit, coding.label(4)
    ([1, 2, 4], [2.0, 0.0, 2.0], 'month', Period('2020-04', 'M'))
    """
    if not is_period_like(time):
        if cohort is not None and is_period_like(cohort):
            checks.fail(
                "P004",
                f"cohort column {cohort_col!r} holds dates or periods but time column "
                f"{time_col!r} does not",
                column=cohort_col,
                hint=f"give both as dates or periods, or both as numbers on one scale: e.g. "
                f"df[{time_col!r}] = pd.to_datetime(df[{time_col!r}])",
            )
        return None
    freq = _unit_of(time, time_col)
    t_ord = _periods(time, freq).asi8
    g_ord: np.ndarray | None = None
    if cohort is not None:
        g_ord = _cohort_ordinals(cohort, freq, time_col, cohort_col or "cohort")
    present = t_ord if g_ord is None else np.concatenate([t_ord, g_ord[g_ord != _NAT]])
    coding = PeriodCoding(freq=freq, base=int(present.min()) - 1)
    t_codes = (t_ord - coding.base).astype(np.int64)
    g_codes = None
    if g_ord is not None:
        g_codes = np.where(g_ord == _NAT, 0.0, (g_ord - coding.base).astype(float))
    return t_codes, g_codes, coding


_NAT = np.iinfo(np.int64).min  # the ordinal pandas uses for NaT


def _cohort_ordinals(cohort: pd.Series, freq: str, time_col: str, col: str) -> np.ndarray:
    unit = _UNIT_NAMES.get(freq[:1], freq)
    if isinstance(cohort.dtype, pd.PeriodDtype):
        if cohort.dtype != pd.PeriodDtype(freq):
            checks.fail(
                "P004",
                f"cohort column {col!r} holds periods of unit {pd.PeriodIndex(cohort).freqstr} "
                f"but time column {time_col!r} has unit {freq}",
                column=col,
                hint=f"convert it: df[{col!r}] = df[{col!r}].dt.asfreq({freq!r}, how='start')",
            )
        return np.asarray(pd.PeriodIndex(cohort).asi8, dtype=np.int64)
    if pd.api.types.is_datetime64_any_dtype(cohort):
        return np.asarray(_periods(cohort, freq).asi8, dtype=np.int64)
    values = pd.to_numeric(cohort, errors="coerce") if cohort.dtype == object else cohort
    if pd.api.types.is_numeric_dtype(values) and not (values.fillna(0) != 0).any():
        return np.full(len(cohort), _NAT, dtype=np.int64)  # 0/missing: nobody treated
    checks.fail(
        "P004",
        f"cohort column {col!r} must hold dates or periods like time column {time_col!r} "
        f"(one period = one {unit})",
        column=col,
        hint=f"give each unit's first treated {unit} as a date or a Period, and NaT for "
        f"never-treated units: e.g. df[{col!r}] = pd.to_datetime(df[{col!r}])",
    )
    raise AssertionError  # pragma: no cover - fail raises


def period_label(value: float, *, integer: bool, periods: PeriodCoding | None) -> Any:
    """Return a period or cohort as results show it.

    A :class:`pandas.Period` when the time column held dates or periods (``periods``),
    an ``int`` when periods are whole numbers, else a ``float``.

    Examples
    --------
    >>> period_label(2004.0, integer=True, periods=None)
    2004
    >>> period_label(2.0, integer=True, periods=PeriodCoding(freq="Q", base=199))
    Period('2020Q2', 'Q-DEC')
    """
    if periods is not None:
        return periods.label(value)
    if integer and np.isfinite(value):
        return round(value)
    return float(value)


def as_period_columns(frame: pd.DataFrame, time: str | None, cohort: str | None) -> pd.DataFrame:
    """Return ``frame`` with a date ``time`` (and ``cohort``) column as pandas periods.

    The unit is inferred once from the whole time column, so that subsets of the rows
    (subgroups of ``fit(by=...)``) keep it: a subgroup observed only in January, April,
    July and October would otherwise be read as quarterly. Anything else is returned
    unchanged (the caller's frame is never modified).

    Examples
    --------
    >>> df = pd.DataFrame({"t": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-04-01"])})
    >>> as_period_columns(df.iloc[[0, 2]], "t", None)["t"].tolist()  # a subset: quarters
    [Period('2020Q1', 'Q-DEC'), Period('2020Q2', 'Q-DEC')]
    >>> whole = as_period_columns(df, "t", None)  # months, as a whole
    >>> whole["t"].dtype, whole.iloc[[0, 2]]["t"].tolist()
    (period[M], [Period('2020-01', 'M'), Period('2020-04', 'M')])
    """
    if time is None or time not in frame or not pd.api.types.is_datetime64_any_dtype(frame[time]):
        return frame
    if frame[time].isna().any():
        return frame  # the Panel reports the missing periods (P006)
    freq = _unit_of(frame[time], time)
    out = frame.assign(**{time: pd.Series(_periods(frame[time], freq), index=frame.index)})
    if (
        cohort is not None
        and cohort in frame
        and pd.api.types.is_datetime64_any_dtype(frame[cohort])
    ):
        out[cohort] = pd.Series(_periods(frame[cohort], freq), index=frame.index)
    return out
