"""Collapse microdata to cells (e.g. city x month) through DuckDB, with small cells suppressed.

Register microdata are large and confidential. Collapsing them to cells, out of core in
DuckDB, gives a small table of aggregates that the estimators can use (weighted by the
cell counts) and that may leave a secure server: every value that rests on fewer than
``min_cell_size`` persons is set to missing and flagged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit.data import sandbox
from evalkit.data.disclosure import DEFAULT_MIN_CELL_SIZE, check_min_cell_size
from evalkit.errors import DataError, DesignError

__all__ = ["STATS", "Measure", "collapse", "flags", "parse_measures", "quote"]

#: Statistics a measure can take, with their DuckDB aggregate. ``count`` counts the rows
#: (that satisfy the measure's ``where``); it is itself a count and suppressed like one.
#: Minima and maxima are not offered: they would publish one person's value.
STATS: dict[str, str] = {"mean": "avg", "sum": "sum", "sd": "stddev_samp", "count": "count"}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote(name: str) -> str:
    """Quote an identifier for DuckDB SQL.

    Examples
    --------
    >>> quote('month')
    '"month"'
    """
    return '"' + str(name).replace('"', '""') + '"'


def _normal_sql(text: str | None) -> str | None:
    return None if text is None else " ".join(str(text).split())


@dataclass(frozen=True)
class Measure:
    """One value computed in every cell.

    Parameters
    ----------
    name
        Name of the output column.
    column
        Input column (None for ``stat="count"``).
    stat
        One of :data:`STATS`.
    where
        A DuckDB SQL predicate: only rows satisfying it enter this measure (e.g.
        ``"recipient = 1"`` for a mean among recipients). Such a measure gets its own
        count column ``n_<name>``, which is also the natural weight of its cells.

    Examples
    --------
    >>> Measure("duration", "months_on_assistance", "mean", "recipient = 1").count_column
    'n_duration'
    """

    name: str
    column: str | None
    stat: str = "mean"
    where: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DesignError(
                f"measure name {self.name!r} must be a plain identifier",
                hint="use letters, digits and underscores, e.g. 'work_share'",
                column=str(self.name),
            )
        if self.stat not in STATS:
            raise DesignError(
                f"measure {self.name!r} has unknown stat {self.stat!r}",
                hint=f"use one of {', '.join(STATS)}",
                column=self.name,
            )
        if self.stat != "count" and not (isinstance(self.column, str) and self.column):
            raise DesignError(
                f"measure {self.name!r} needs the column it summarises",
                hint=f"e.g. {{column = '{self.name}', stat = '{self.stat}'}}",
                column=self.name,
            )
        if self.where is not None and not (isinstance(self.where, str) and self.where.strip()):
            raise DesignError(
                f"measure {self.name!r}: where must be an SQL condition, got {self.where!r}",
                column=self.name,
            )
        object.__setattr__(self, "where", _normal_sql(self.where))

    @property
    def count_column(self) -> str | None:
        """Name of the measure's own count column, or None when the cell count applies."""
        return f"n_{self.name}" if self.where is not None and self.stat != "count" else None

    def to_dict(self) -> dict[str, Any]:
        """Return the measure as a plain dictionary (``column``, ``stat``, ``where``)."""
        out: dict[str, Any] = {"column": self.column, "stat": self.stat}
        if self.where is not None:
            out["where"] = self.where
        return out


def parse_measures(measures: Mapping[str, Any]) -> tuple[Measure, ...]:
    """Turn a measures mapping into :class:`Measure` objects.

    Each value is a stat name (``"mean"``: the column of the same name), or a mapping
    with ``column``, ``stat`` (default ``"mean"``) and optionally ``where``, or a
    :class:`Measure`.

    Examples
    --------
    >>> [m.column for m in parse_measures({"work": "mean", "dur": {"column": "months"}})]
    ['work', 'months']
    """
    if not isinstance(measures, Mapping) or not measures:
        raise DesignError(
            "measures must be a non-empty mapping of output name to statistic",
            hint="e.g. measures={'work': 'mean', 'income': 'mean'}",
            column="measures",
        )
    out = []
    for name, spec in measures.items():
        if isinstance(spec, Measure):
            out.append(spec)
        elif isinstance(spec, str):
            out.append(Measure(name, None if spec == "count" else name, spec))
        elif isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"column", "stat", "where"})
            if unknown:
                raise DesignError(
                    f"measure {name!r} has unknown key(s) {', '.join(unknown)}",
                    hint="a measure takes column, stat and where",
                    column=name,
                )
            stat = spec.get("stat", "mean")
            column = spec.get("column", None if stat == "count" else name)
            out.append(Measure(name, column, stat, spec.get("where")))
        else:
            raise DesignError(
                f"measure {name!r} must be a stat name or a table, got {spec!r}",
                hint="e.g. work = 'mean' or duration = {column = 'months', where = 'rec = 1'}",
                column=str(name),
            )
    return tuple(out)


def _sql(
    source: str, by: Sequence[str], measures: Sequence[Measure], count: str, where: str | None
) -> str:
    keys = ", ".join(quote(b) for b in by)
    parts = [keys, f"count(*) AS {quote(count)}"]
    for i, m in enumerate(measures):
        flt = f" FILTER (WHERE {m.where})" if m.where else ""
        if m.stat == "count":
            parts.append(f"count(*){flt} AS {quote(m.name)}")
            continue
        assert m.column is not None  # Measure requires a column for every stat but "count"
        col = quote(m.column)
        parts.append(f"{STATS[m.stat]}({col}){flt} AS {quote(m.name)}")
        parts.append(f"count({col}){flt} AS {quote(f'__k{i}')}")
    filt = f" WHERE {where}" if where else ""
    return f"SELECT {', '.join(parts)} FROM {source}{filt} GROUP BY {keys} ORDER BY {keys}"


def collapse(
    data: Any,
    by: Sequence[str],
    measures: Mapping[str, Any],
    *,
    min_cell_size: int = DEFAULT_MIN_CELL_SIZE,
    count: str = "n",
    where: str | None = None,
) -> pd.DataFrame:
    """Collapse microdata to cells in DuckDB and suppress values resting on few persons.

    Parameters
    ----------
    data
        A pandas DataFrame or a DuckDB relation (e.g. ``duckdb.read_parquet(...)``),
        one row per person (and period). Never modified.
    by
        The cell keys, e.g. ``["city", "month"]``. Columns constant within cells (such as
        a treatment indicator) can be added as keys without splitting cells.
    measures
        Output name to statistic: ``"mean"`` (of the column of that name), or a mapping
        ``{"column": ..., "stat": "mean"|"sum"|"sd"|"count", "where": "SQL condition"}``.
    min_cell_size
        Values resting on fewer rows are suppressed.
    count
        Name of the cell-count column.
    where
        A DuckDB SQL condition selecting the rows to collapse (e.g. a subgroup).

    Returns
    -------
    pandas.DataFrame
        One row per cell, sorted by ``by``: the keys; ``count`` (nullable integer);
        each measure, and ``n_<measure>`` for measures with their own ``where``;
        ``suppressed`` (True when the whole cell has fewer than ``min_cell_size`` rows:
        its count and values are missing) and ``suppressed_<measure>`` (True when that
        value was suppressed because it rests on fewer than ``min_cell_size`` rows).
        A value that is missing with its flag False had no rows to summarise.

    Raises
    ------
    DesignError
        For bad options.
    DataError
        When DuckDB cannot run the aggregation (e.g. an unknown column).

    Examples
    --------
    >>> import pandas as pd
    >>> micro = pd.DataFrame({"city": ["A"] * 6 + ["B"] * 3,
    ...                       "work": [1, 0, 1, 1, 0, 1, 1, 1, 0]})
    >>> cells = collapse(micro, by=["city"], measures={"work": "mean"})
    >>> cells[["city", "n", "work", "suppressed"]].round(3)
      city     n   work  suppressed
    0    A     6  0.667       False
    1    B  <NA>    NaN        True
    """
    import duckdb

    min_cell_size = check_min_cell_size(min_cell_size)
    if isinstance(by, str):
        by = [by]
    by = list(by or [])
    if not by or not all(isinstance(b, str) and b for b in by):
        raise DesignError(
            f"by must be a non-empty list of column names, got {by!r}",
            hint="e.g. by=['city', 'month']",
            column="by",
        )
    parsed = parse_measures(measures)
    names = [count, *by, *(m.name for m in parsed)]
    names += [m.count_column for m in parsed if m.count_column]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise DesignError(
            f"output column name(s) {', '.join(map(repr, dup))} are used twice",
            hint="rename the measure or the count column",
            column=dup[0],
        )
    source = "__evalkit_cells_src"
    sql = _sql(source, by, parsed, count, _normal_sql(where))
    try:
        if isinstance(data, pd.DataFrame):
            con = sandbox.connect()
            try:
                con.register(source, data)
                frame = con.sql(sql).df()
            finally:
                con.close()
        elif isinstance(data, duckdb.DuckDBPyRelation):
            relation = data.query(source, sql)
            assert relation is not None  # a SELECT always gives a relation
            frame = relation.df()
        else:
            raise DataError(
                f"collapse needs a pandas DataFrame or a DuckDB relation, got "
                f"{type(data).__name__}",
                hint="read files with duckdb.read_parquet(path) or pandas",
                column="data",
            )
    except duckdb.Error as exc:
        raise DataError(
            f"collapsing the data failed: {str(exc).splitlines()[0]}",
            hint="check the column names in by, measures and where",
            column="measures",
        ) from exc
    return _suppress(frame, parsed, count, min_cell_size)


def _suppress(
    frame: pd.DataFrame, measures: Sequence[Measure], count: str, min_cell_size: int
) -> pd.DataFrame:
    n = frame[count].to_numpy(dtype=np.int64)
    small = n < min_cell_size
    frame[count] = pd.array(n, dtype="Int64")
    frame.loc[small, count] = pd.NA
    frame["suppressed"] = small
    for i, m in enumerate(measures):
        values = frame[m.name].to_numpy(dtype=float)
        if m.stat == "count":
            k = values
            hide = small | ((k > 0) & (k < min_cell_size))
            frame[m.name] = pd.array(values.astype(np.int64), dtype="Int64")
        else:
            k = frame.pop(f"__k{i}").to_numpy(dtype=np.int64)
            hide = small | ((k > 0) & (k < min_cell_size))
            frame[m.name] = np.where(hide, np.nan, values)
            if m.count_column:
                counts = pd.array(k, dtype="Int64")
                counts[hide] = pd.NA
                frame[m.count_column] = counts
        frame.loc[hide, m.name] = np.nan if m.stat != "count" else pd.NA
        frame[f"suppressed_{m.name}"] = hide
    keys = [c for c in frame.columns if c not in flags(measures, count)]
    return frame[[*keys, *flags(measures, count)]].reset_index(drop=True)


def flags(measures: Sequence[Measure], count: str = "n") -> list[str]:
    """Return the names of the columns :func:`collapse` adds after the keys, in order.

    Examples
    --------
    >>> flags(parse_measures({"work": "mean", "d": {"column": "m", "where": "r = 1"}}))
    ['n', 'work', 'd', 'n_d', 'suppressed', 'suppressed_work', 'suppressed_d']
    """
    values = [count]
    for m in measures:
        values.append(m.name)
        if m.count_column:
            values.append(m.count_column)
    return [*values, "suppressed", *(f"suppressed_{m.name}" for m in measures)]
