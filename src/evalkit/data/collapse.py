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

__all__ = [
    "STATS",
    "CellRequest",
    "Measure",
    "collapse",
    "collapse_many",
    "flags",
    "parse_measures",
    "quote",
]

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
    by = _check_by(by)
    parsed = parse_measures(measures)
    _check_names(by, parsed, count)
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
        else:
            relation = _relation(data).query(source, sql)
            assert relation is not None  # a SELECT always gives a relation
            frame = relation.df()
    except duckdb.Error as exc:
        raise _failed(exc) from exc
    return _suppress(frame, parsed, count, min_cell_size)


@dataclass(frozen=True)
class CellRequest:
    """One collapse among several over the same rows: its cell keys and row condition.

    Examples
    --------
    >>> CellRequest(("city", "month"), "age < 30")
    CellRequest(by=('city', 'month'), where='age < 30')
    """

    by: tuple[str, ...]
    where: str | None = None


#: Row conditions one pass can flag (bits of one BIGINT); more go to further passes.
_FLAGS_PER_PASS = 62
#: DuckDB types whose sum is exact (the mean is then the exact sum over the count).
_EXACT: tuple[str, ...] = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINY")
_EXACT += ("USMALL", "UINT", "UBIGINT", "UHUGEINT", "DECIMAL")


def collapse_many(
    data: Any,
    requests: Sequence[CellRequest],
    measures: Mapping[str, Any],
    *,
    min_cell_size: int = DEFAULT_MIN_CELL_SIZE,
    count: str = "n",
) -> list[pd.DataFrame]:
    """Collapse the same rows for several cell keys and row conditions in one pass.

    Returns, for each request, what ``collapse(data, request.by, measures,
    where=request.where, ...)`` returns, but reads the rows once: one DuckDB pass groups
    them by the union of the requests' keys and a code of which conditions each row
    meets (one bit per distinct condition), summing per group the row count and each
    measure's count, sum (and, for ``"sd"``, its within-group sum of squared
    deviations). Every request's cells are then sums over these few groups (those whose
    code has the request's bit), computed in DuckDB on the small table.

    Parameters
    ----------
    data
        A pandas DataFrame or a DuckDB relation with every request's keys and the
        measures' columns. Never modified.
    requests
        The cell keys and row condition (None: every row) of each collapse.
    measures, min_cell_size, count
        As in :func:`collapse`, shared by the requests.

    Returns
    -------
    list of pandas.DataFrame
        One table per request, in order, as :func:`collapse` gives it.

    Notes
    -----
    Counts, and sums of integer or decimal columns, are exact, so they equal
    :func:`collapse`'s; means of such columns are the exact sum divided by the count
    in double precision (DuckDB's ``avg`` divides in long double: at most one unit in
    the last place apart). Sums and means of floating-point columns are sums of
    partial sums, so they may differ from :func:`collapse`'s in the last bits (the
    order of summation differs; so it does between two runs of :func:`collapse` on
    several threads); standard deviations are merged from the groups' (Chan, Golub &
    LeVeque 1979).
    Every aggregate is computed once per row whatever the number of requests (a count
    and a sum per measure), against once per request for separate collapses. The
    groups cross the requests' keys: keys that are functions of each other (a month
    and a before/after indicator) add no groups, while unrelated keys of different
    requests multiply their numbers.

    Examples
    --------
    >>> import pandas as pd
    >>> micro = pd.DataFrame({"city": ["A"] * 6 + ["B"] * 6, "kids": [0, 1] * 6,
    ...                       "work": [1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0]})
    >>> requests = [CellRequest(("city",)), CellRequest(("city",), "kids = 1")]
    >>> everyone, parents = collapse_many(micro, requests, {"work": "mean"}, min_cell_size=3)
    >>> everyone[["city", "n", "work"]].round(3)
      city  n   work
    0    A  6  0.667
    1    B  6  0.500
    >>> parents[["city", "n", "work"]].round(3)
      city  n   work
    0    A  3  0.667
    1    B  3  0.667
    >>> parents.equals(collapse(micro, ["city"], {"work": "mean"}, min_cell_size=3,
    ...                         where="kids = 1"))
    True
    """
    import duckdb

    min_cell_size = check_min_cell_size(min_cell_size)
    parsed = parse_measures(measures)
    todo = [CellRequest(tuple(_check_by(r.by)), _normal_sql(r.where)) for r in requests]
    for r in todo:
        _check_names(r.by, parsed, count)
    if not todo:
        return []
    source = "__evalkit_cells_src"
    con = None
    if isinstance(data, pd.DataFrame):
        con = sandbox.connect()
        con.register(source, data)
        data = con.table(source)
    relation = _relation(data)
    out: list[pd.DataFrame | None] = [None] * len(todo)
    try:
        types = {c: str(t).upper() for c, t in zip(relation.columns, relation.types, strict=True)}
        for batch in _batches(todo):
            frames = _one_pass(relation, source, [todo[i] for i in batch], parsed, count, types)
            for i, frame in zip(batch, frames, strict=True):
                out[i] = _suppress(frame, parsed, count, min_cell_size)
    except duckdb.Error as exc:
        raise _failed(exc) from exc
    finally:
        if con is not None:
            con.close()
    return [f for f in out if f is not None]


def _batches(requests: Sequence[CellRequest]) -> list[list[int]]:
    """Positions of the requests in passes of at most :data:`_FLAGS_PER_PASS` conditions."""
    batches: list[list[int]] = []
    wheres: list[set[str]] = []
    for i, r in enumerate(requests):
        for batch, seen in zip(batches, wheres, strict=True):
            if r.where is None or r.where in seen or len(seen) < _FLAGS_PER_PASS:
                batch.append(i)
                if r.where is not None:
                    seen.add(r.where)
                break
        else:
            batches.append([i])
            wheres.append(set() if r.where is None else {r.where})
    return batches


def _one_pass(
    relation: Any,
    source: str,
    requests: Sequence[CellRequest],
    measures: Sequence[Measure],
    count: str,
    types: Mapping[str, str],
) -> list[pd.DataFrame]:
    """Group the rows once by every key and the conditions' code; cells per request."""
    import uuid

    keys = list(dict.fromkeys(k for r in requests for k in r.by))
    wheres = list(dict.fromkeys(r.where for r in requests if r.where is not None))
    code = (
        " + ".join(f"(CASE WHEN ({w}) THEN {1 << i} ELSE 0 END)" for i, w in enumerate(wheres))
        or "0"
    )
    parts = [f"count(*) AS {quote('__n')}"]
    for i, m in enumerate(measures):
        flt = f" FILTER (WHERE {m.where})" if m.where else ""
        if m.stat == "count":
            parts.append(f"count(*){flt} AS {quote(f'__c{i}')}")
            continue
        assert m.column is not None  # Measure requires a column for every stat but "count"
        col = quote(m.column)
        exact = m.stat == "sum" or types.get(m.column, "").startswith(_EXACT)
        value = col if exact else f"CAST({col} AS DOUBLE)"
        parts.append(f"count({col}){flt} AS {quote(f'__k{i}')}")
        parts.append(f"sum({value}){flt} AS {quote(f'__s{i}')}")
        if m.stat == "sd":
            parts.append(f"var_pop({value}){flt} * count({col}){flt} AS {quote(f'__m{i}')}")
    group = ", ".join([*(quote(k) for k in keys), quote("__code")])
    every = any(r.where is None for r in requests)
    filt = "" if every else " WHERE " + " OR ".join(f"({w})" for w in wheres)
    sql = (
        f"SELECT {', '.join(quote(k) for k in keys)}, {code} AS {quote('__code')}, "
        f"{', '.join(parts)} FROM {source}{filt} GROUP BY {group} ORDER BY {group}"
    )
    # a table in the data's own connection keeps every key's type (an ENUM's order);
    # its insertion order, sorted, makes the sums over it deterministic
    table = f"__evalkit_cells_{uuid.uuid4().hex}"
    relation.query(source, sql).create(table)
    try:
        return [
            relation.query(source, _cells_sql(table, r, wheres, measures, count)).df()
            for r in requests
        ]
    finally:
        relation.query(source, f"DROP TABLE {table}")


def _cells_sql(
    table: str,
    request: CellRequest,
    wheres: Sequence[str],
    measures: Sequence[Measure],
    count: str,
) -> str:
    """Return the SQL that sums one request's cells from the table of :func:`_one_pass`."""
    keys = ", ".join(quote(b) for b in request.by)
    parts = [keys, f"CAST(sum({quote('__n')}) AS BIGINT) AS {quote(count)}"]
    windows = []
    for i, m in enumerate(measures):
        if m.stat == "count":
            parts.append(f"CAST(sum({quote(f'__c{i}')}) AS BIGINT) AS {quote(m.name)}")
            continue
        k, s = quote(f"__k{i}"), quote(f"__s{i}")
        if m.stat == "sum":
            value = f"sum({s})"
        elif m.stat == "mean":
            value = f"CAST(sum({s}) AS DOUBLE) / NULLIF(sum({k}), 0)"
        else:  # sd: merge the groups' sums of squared deviations about the cell mean
            mean = quote(f"__t{i}")
            windows.append(f"sum({s}) OVER cell / NULLIF(sum({k}) OVER cell, 0) AS {mean}")
            spread = f"sum({quote(f'__m{i}')}) + sum({k} * ({s} / {k} - {mean}) ** 2)"
            value = f"CASE WHEN sum({k}) > 1 THEN sqrt(({spread}) / (sum({k}) - 1)) END"
        parts.append(f"{value} AS {quote(m.name)}")
        parts.append(f"CAST(sum({k}) AS BIGINT) AS {quote(f'__k{i}')}")
    rows = table
    if request.where is not None:
        bit = 1 << wheres.index(request.where)
        rows = f"(SELECT * FROM {table} WHERE ({quote('__code')} & {bit}) <> 0)"
    if windows:
        rows = f"(SELECT *, {', '.join(windows)} FROM {rows} WINDOW cell AS (PARTITION BY {keys}))"
    return f"SELECT {', '.join(parts)} FROM {rows} GROUP BY {keys} ORDER BY {keys}"


def _check_by(by: Any) -> list[str]:
    names: list[Any] = [by] if isinstance(by, str) else list(by or [])
    if not names or not all(isinstance(b, str) and b for b in names):
        raise DesignError(
            f"by must be a non-empty list of column names, got {names!r}",
            hint="e.g. by=['city', 'month']",
            column="by",
        )
    return [str(b) for b in names]


def _check_names(by: Sequence[str], measures: Sequence[Measure], count: str) -> None:
    names = [count, *by, *(m.name for m in measures)]
    names += [m.count_column for m in measures if m.count_column]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise DesignError(
            f"output column name(s) {', '.join(map(repr, dup))} are used twice",
            hint="rename the measure or the count column",
            column=dup[0],
        )


def _relation(data: Any) -> Any:
    """Return ``data`` when it is a DuckDB relation; raise for anything else."""
    import duckdb

    if not isinstance(data, duckdb.DuckDBPyRelation):
        raise DataError(
            f"collapse needs a pandas DataFrame or a DuckDB relation, got {type(data).__name__}",
            hint="read files with duckdb.read_parquet(path) or pandas",
            column="data",
        )
    return data


def _failed(exc: Exception) -> DataError:
    return DataError(
        f"collapsing the data failed: {str(exc).splitlines()[0]}",
        hint="check the column names in by, measures and where",
        column="measures",
    )


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
