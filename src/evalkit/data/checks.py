"""The catalogue of data checks run when a :class:`~evalkit.data.Panel` is built.

Each check has a stable code (used in error messages, documentation and by programs
that want to react to one problem), a title, and a hint on how to fix it. The checks
raise :class:`~evalkit.errors.DataError` or, for conventions where rows are dropped,
return the rows to drop so that the caller can count them in a warning.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.errors import DataError, DesignError

__all__ = ["CATALOGUE", "Check", "check_name", "check_names", "fail"]


@dataclass(frozen=True)
class Check:
    """One entry of the check catalogue."""

    code: str
    title: str
    hint: str


CATALOGUE: dict[str, Check] = {
    c.code: c
    for c in [
        Check("P001", "empty data", "pass a data frame with at least one row"),
        Check(
            "P002",
            "missing column",
            "check the spelling of the role, or rename the column in your data",
        ),
        Check(
            "P003",
            "duplicate unit x time rows",
            "aggregate to one row per unit and period, or, for repeated cross-sections, "
            "set panel=False so that `unit` names the group",
        ),
        Check(
            "P004",
            "non-numeric values",
            "convert the column to numbers, e.g. df[col] = pd.to_numeric(df[col]); numbers "
            "stored as text are not converted silently in any role",
        ),
        Check(
            "P005",
            "infinite values",
            "replace +/-inf, e.g. df[col].replace([np.inf, -np.inf], np.nan)",
        ),
        Check(
            "P006",
            "missing values",
            "rows with missing values in analysis columns are dropped (and counted); "
            "identifier columns (unit, time, cluster) must be complete",
        ),
        Check(
            "P007",
            "treatment not 0/1",
            "code treatment as 1 for treated unit-periods and 0 otherwise",
        ),
        Check(
            "P008",
            "treatment switches off",
            "this estimator needs absorbing treatment (once treated, always treated); "
            "recode treatment or use an estimator that allows switching",
        ),
        Check(
            "P009",
            "cluster varies within unit",
            "clusters must nest units: use a grouping constant within each unit (e.g. its city)",
        ),
        Check("P010", "single period", "difference-in-differences needs at least two periods"),
        Check(
            "P011",
            "all or no units treated",
            "a comparison needs both treated and untreated observations",
        ),
        Check(
            "P012", "invalid weights", "weights must be finite and non-negative with a positive sum"
        ),
        Check(
            "P013",
            "role given twice",
            "each column can play one role; pass distinct columns for outcome, unit, time, ...",
        ),
        Check(
            "P014",
            "cohort inconsistent",
            "cohort must be the first treated period, constant within unit",
        ),
        Check(
            "P015",
            "unbalanced panel",
            "this estimator needs every unit observed in every period; balance the panel "
            "or pass allow_unbalanced=True where the estimator offers it",
        ),
    ]
}


def fail(code: str, message: str, *, column: str | None = None, hint: str | None = None) -> None:
    """Raise the :class:`DataError` of catalogue entry ``code``."""
    raise DataError(message, code=code, column=column, hint=hint or CATALOGUE[code].hint)


def check_not_empty(frame: pd.DataFrame) -> None:
    """P001: the frame has rows."""
    if len(frame) == 0:
        fail("P001", "the data have no rows")


def check_columns(frame: pd.DataFrame, roles: dict[str, str | Sequence[str] | None]) -> None:
    """P002/P013: every named column exists, and no column plays two roles."""
    seen: dict[str, str] = {}
    for role, cols in roles.items():
        for col in _as_list(cols):
            if not isinstance(col, str):
                raise DesignError(
                    f"role {role!r} must name a column by its string name, got {col!r}",
                    column=role,
                )
            if col not in frame.columns:
                close = difflib.get_close_matches(col, [str(c) for c in frame.columns], n=3)
                hint = (
                    f"did you mean {' or '.join(map(repr, close))}?"
                    if close
                    else f"available columns: {', '.join(map(str, list(frame.columns)[:20]))}"
                )
                fail(
                    "P002",
                    f"column {col!r} (role {role}) is not in the data",
                    column=col,
                    hint=hint,
                )
            if col in seen and not (role == "cluster" and seen[col] == "unit"):
                fail(
                    "P013",
                    f"column {col!r} is given as both {seen[col]} and {role}",
                    column=col,
                )
            seen.setdefault(col, role)


def _as_list(cols: str | Sequence[str] | None) -> list[str]:
    if cols is None:
        return []
    if isinstance(cols, str):
        return [cols]
    return list(cols)


def numeric_column(frame: pd.DataFrame, col: str, role: str) -> np.ndarray:
    """P004/P005: return column ``col`` as float, rejecting text and infinities.

    Text is rejected even when it looks like numbers (``"0"``/``"1"``, ``"2003"``): the
    same rule holds in every role, and a column read as text usually means a reading
    problem (a decimal comma, a stray footnote) that silent conversion would hide.
    Missing values are returned as NaN for the caller to drop.

    Examples
    --------
    >>> import pandas as pd
    >>> numeric_column(pd.DataFrame({"d": ["0", "1"]}), "d", "treatment")
    Traceback (most recent call last):
    ...
    evalkit.errors.DataError: [P004] column 'd' (role treatment) holds numbers stored as ...
      hint: convert it: df['d'] = pd.to_numeric(df['d'])
    """
    series = frame[col]
    if isinstance(series.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
    ):
        _reject_non_numeric(series, col, f"column {col!r} (role {role})")
    values: np.ndarray = series.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(values)
    if inf.any():
        fail(
            "P005",
            f"column {col!r} (role {role}) has {int(inf.sum())} infinite value(s)",
            column=col,
        )
    return values


def check_identifier(frame: pd.DataFrame, col: str, role: str) -> None:
    """P006: identifier columns must have no missing values."""
    n_missing = int(frame[col].isna().sum())
    if n_missing:
        fail(
            "P006",
            f"identifier column {col!r} (role {role}) has {n_missing} missing value(s)",
            column=col,
            hint=f"drop or fill those rows before estimation: df.dropna(subset=[{col!r}])",
        )


def check_binary(values: np.ndarray, col: str, role: str = "treatment") -> None:
    """P007: a 0/1 column."""
    finite = values[~np.isnan(values)]
    bad = ~np.isin(finite, (0.0, 1.0))
    if bad.any():
        examples = ", ".join(map(str, np.unique(finite[bad])[:3]))
        fail(
            "P007",
            f"column {col!r} (role {role}) must be 0/1 but has value(s) {examples}",
            column=col,
        )


def _reject_non_numeric(series: pd.Series, col: str, what: str) -> None:
    """Raise P004 for a column that is not numeric, with the conversion that fixes it."""
    present = series[series.notna()]
    if not len(present):
        return  # every value is missing: nothing to reject (the rows are dropped and counted)
    converted = pd.to_numeric(present.astype(object), errors="coerce")
    if len(present) and converted.notna().all():
        example = present.iloc[0]
        kind = "categories" if isinstance(series.dtype, pd.CategoricalDtype) else "text"
        fail(
            "P004",
            f"{what} holds numbers stored as {kind}, e.g. {example!r}",
            column=col,
            hint=f"convert it: df[{col!r}] = pd.to_numeric(df[{col!r}])",
        )
    bad = present[converted.isna()]
    fail(
        "P004",
        f"{what} has {len(bad)} non-numeric value(s), e.g. {bad.iloc[0]!r}",
        column=col,
    )


def check_time_values(values: Iterable[object], col: str) -> None:
    """P004: time must be numbers (a running period index), dates or pandas periods.

    Dates and periods are mapped to period codes by :mod:`evalkit.data.periods`; text is
    rejected with the conversion that fixes it, including numbers stored as text.
    """
    series = pd.Series(values)
    if isinstance(series.dtype, pd.PeriodDtype) or pd.api.types.is_datetime64_any_dtype(series):
        return
    if pd.api.types.is_bool_dtype(series):
        fail(
            "P004",
            f"time column {col!r} is boolean",
            column=col,
            hint="give the period: a number (year, running month index), a date or a Period",
        )
    if pd.api.types.is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype):
        return
    present = series[series.notna()].astype(object)
    if len(present) and pd.to_numeric(present, errors="coerce").notna().all():
        _reject_non_numeric(series, col, f"time column {col!r}")
    example = f", not e.g. {present.iloc[0]!r}" if len(present) else ""
    fail(
        "P004",
        f"time column {col!r} must hold numbers (e.g. year, running month index), dates or "
        f"pandas periods{example}",
        column=col,
        hint=f"convert dates written as text: df[{col!r}] = pd.to_datetime(df[{col!r}]) (or "
        f"monthly periods: pd.to_datetime(df[{col!r}]).dt.to_period('M')); every estimator "
        "accepts both",
    )


def check_name(value: object, option: str, required: bool = True) -> None:
    """Raise a DesignError unless ``value`` is a column name (or None when optional).

    Examples
    --------
    >>> check_name("year", "time")
    >>> check_name(None, "weights", required=False)
    """
    if value is None and not required:
        return
    if not isinstance(value, str) or not value:
        raise DesignError(
            f"{option} must be a column name (a non-empty string), got {value!r}",
            hint=f"e.g. {option}='my_column'",
            column=option,
        )


def check_names(value: str | Iterable[str] | None, option: str) -> tuple[str, ...]:
    """Normalise a column or list of columns (None = none) to a tuple of names.

    Examples
    --------
    >>> check_names("x", "covariates"), check_names(None, "covariates")
    (('x',), ())
    """
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        check_name(name, option)
    return names
