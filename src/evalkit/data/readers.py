"""Readers that bring register extracts into pandas: CSV, Parquet, and DuckDB SQL.

Large extracts should be filtered and collapsed in DuckDB (out of core) before they
reach pandas: :func:`read_sql` runs a query over Parquet or CSV files and returns only
its result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.errors import DataError, DesignError

__all__ = ["read", "read_csv", "read_parquet", "read_sql"]


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(
            f"data file {str(p)!r} does not exist",
            hint="check the path; relative paths are resolved from the current folder "
            "(in a study.toml, from the study folder)",
            column="path",
        )
    return p


def read_csv(
    path: str | Path, *, columns: Sequence[str] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Read a CSV file (separator sniffed when not given).

    Parameters
    ----------
    path
        The file.
    columns
        Read only these columns.
    **kwargs
        Passed to :func:`pandas.read_csv`.
    """
    p = _existing(path)
    if "sep" not in kwargs and "delimiter" not in kwargs:
        with p.open("r", encoding=kwargs.get("encoding", "utf-8"), errors="replace") as fh:
            head = fh.readline()
        kwargs["sep"] = ";" if head.count(";") > head.count(",") else ","
    try:
        return pd.read_csv(p, usecols=list(columns) if columns else None, **kwargs)
    except ValueError as exc:
        raise DataError(f"could not read {str(p)!r}: {exc}", column="columns") from exc


def read_parquet(
    path: str | Path, *, columns: Sequence[str] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Read a Parquet file or folder of Parquet files (with pyarrow)."""
    p = _existing(path)
    try:
        return pd.read_parquet(p, columns=list(columns) if columns else None, **kwargs)
    except (ValueError, KeyError) as exc:
        raise DataError(f"could not read {str(p)!r}: {exc}", column="columns") from exc


def read_sql(
    query: str,
    *,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    database: str | Path | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Run one DuckDB SELECT query and return its result as a DataFrame.

    The query runs on a locked-down connection (:mod:`evalkit.data.sandbox`): it may read
    the files it names (relative paths are relative to the working directory) and
    nothing else, and may not write files, install extensions or reach the network.

    The query can read files directly, e.g.
    ``SELECT city, month, avg(work) AS work FROM 'extract/*.parquet' GROUP BY ALL``,
    so that tens of millions of rows are filtered and collapsed out of core before
    anything is loaded into memory.

    Parameters
    ----------
    query
        The SQL text.
    params
        Prepared-statement parameters (``?`` or ``$name`` placeholders).
    database
        A DuckDB database file to open read-only; an in-memory database when None.
    threads
        DuckDB worker threads (DuckDB's default when None).

    Examples
    --------
    >>> read_sql("SELECT 1 AS a, 2 AS b")
       a  b
    0  1  2
    """
    import duckdb

    from evalkit.data import sandbox

    try:
        sandbox.check_select(query, key="query")
        local = sandbox.localize(query, [Path.cwd()], key="query", contained=False)
    except DesignError as err:
        raise DataError(err.message, hint=err.hint, column="query") from None
    db = _existing(database) if database is not None else None
    con = sandbox.connect(local.files, local.folders, database=db)
    query = local.query
    try:
        if threads is not None:
            con.execute(f"SET threads TO {int(threads)}")
        return con.execute(query, params).df() if params is not None else con.sql(query).df()
    except duckdb.Error as exc:
        raise DataError(f"the SQL query failed: {exc}", column="query") from exc
    finally:
        con.close()


def read(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """Read a data file by its extension: ``.csv``/``.txt``, ``.parquet``/``.pq``, or a folder."""
    p = _existing(path)
    suffix = p.suffix.lower()
    if suffix in {".csv", ".txt", ".gz"}:
        return read_csv(p, **kwargs)
    if suffix in {".parquet", ".pq"} or p.is_dir():
        return read_parquet(p, **kwargs)
    raise DataError(
        f"cannot tell the format of {str(p)!r} from its extension",
        hint="use a .csv or .parquet file, or a DuckDB query",
        column="path",
    )
