"""A study's data source as a DuckDB relation, its fingerprint, and cheap schema checks."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit.data import sandbox
from evalkit.data.collapse import quote
from evalkit.errors import DataError, DesignError
from evalkit.simulate import SimulatedData

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from evalkit.study.config import SplitSpec, Study
    from evalkit.study.locate import Locator

__all__ = [
    "DataSource",
    "check_columns",
    "frame_sha256",
    "open_source",
    "read_averaged",
    "validate_data",
]

_VIEW = "study_data"
#: The name a data frame is registered under in the connection. It differs from the
#: alias ``_VIEW`` that queries on a relation use: with the same name, a query on a
#: relation with derived columns would read the registered frame instead, without them.
_TABLE = "evalkit_data"
#: The row count column of :meth:`DataSource.averaged` (dropped before fitting).
_ROWS = "__evalkit_rows"
_ROLE_COLUMNS = ("outcome", "unit", "time", "treatment", "cohort", "cluster", "weights")


@dataclass
class DataSource:
    """The opened data of one run.

    Attributes
    ----------
    relation
        The rows as a DuckDB relation (nothing is loaded into pandas until needed).
    simulated
        The :class:`~evalkit.simulate.SimulatedData` when the data are simulated.
    kind
        ``"simulator"``, ``"file"``, ``"query"`` or ``"frame"`` (a DataFrame override).
    sha256, hash_method
        The data fingerprint and how it was computed.
    details
        What to record about the source (file name, simulator and options, query).
    """

    connection: duckdb.DuckDBPyConnection
    relation: duckdb.DuckDBPyRelation
    kind: str
    sha256: str
    hash_method: str
    simulated: SimulatedData | None = None
    details: dict[str, Any] = field(default_factory=dict)
    scratch: Path | None = None  # a folder of this run's simulated rows, removed on close
    tables: dict[str, DataSource] = field(default_factory=dict)
    name: str | None = None

    @property
    def columns(self) -> list[str]:
        """Column names of the data."""
        return list(self.relation.columns)

    def table(self, name: str | None) -> DataSource:
        """Return the source of table ``name`` (``[data.tables.<name>]``); self for None."""
        return self if name is None else self.tables[name]

    def describe(self) -> str:
        """Name the data in messages: the file, the query, or the table."""
        if self.name is None:
            return _describe_source(self)
        kind = {"file": f"file {self.details.get('file')!r}", "query": "a DuckDB query"}
        return f"table {self.name!r} ({kind.get(self.kind, 'simulated')})"

    def split(self, split: SplitSpec | None) -> duckdb.DuckDBPyRelation:
        """Return the rows with the column of ``split`` added (the rows when None).

        A split by a ``[groups]`` group adds ``in_<group>``: 1 for rows meeting its
        condition, 0 for the others, missing where the condition is.
        """
        if split is None or not split.is_group:
            return self.relation
        return self.relation.query(_VIEW, f"SELECT *, {split.select()} FROM {_VIEW}")

    def with_splits(self, splits: Iterable[SplitSpec | None]) -> duckdb.DuckDBPyRelation:
        """Return the rows with the column of every group split among ``splits`` added."""
        added = list(dict.fromkeys(s.select() for s in splits if s is not None and s.is_group))
        if not added:
            return self.relation
        return self.relation.query(_VIEW, f"SELECT *, {', '.join(added)} FROM {_VIEW}")

    def rows(
        self,
        where: str | None,
        columns: list[str] | None = None,
        split: SplitSpec | None = None,
    ) -> pd.DataFrame:
        """Return the rows satisfying ``where`` (all when None) as a DataFrame.

        ``columns`` may name the column a ``split`` adds.
        """
        return self._select(self._rows_sql(where, columns, split))

    def averaged(
        self,
        where: str | None,
        columns: list[str],
        by: tuple[str, ...] | list[str],
        split: SplitSpec | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """Average ``columns`` within the keys ``by`` in DuckDB; return them and the row count.

        One row per combination of ``by`` among the rows satisfying ``where``, ordered by
        the keys; every other column must be numeric (booleans count as 0/1).
        """
        import duckdb

        keys = list(dict.fromkeys(by))
        inner = self._rows_sql(where, list(dict.fromkeys([*keys, *columns])), split)
        try:
            rel = self.relation.query(_VIEW, inner)
        except duckdb.Error as exc:
            raise self._failed(exc) from exc
        values = [c for c in rel.columns if c not in keys]
        self._check_numeric(rel, values)
        picked = [quote(k) for k in keys] + [
            f"avg(CAST({quote(c)} AS DOUBLE)) AS {quote(c)}" for c in values
        ]
        group = ", ".join(quote(k) for k in keys)
        sql = (
            f"SELECT {', '.join(picked)}, count(*) AS {quote(_ROWS)} FROM {_VIEW} "
            f"GROUP BY {group} ORDER BY {group}"
        )
        frame = self._select(sql, rel)
        n_rows = int(frame.pop(_ROWS).sum())  # 0 for no rows (the column dropped too)
        return frame, n_rows

    def _check_numeric(self, rel: Any, values: list[str]) -> None:
        """Raise when a column that collapse_by averages is not a number."""
        types = {c: str(t).upper() for c, t in zip(rel.columns, rel.types, strict=True)}
        for c in values:
            if not any(types[c].startswith(k) for k in _NUMERIC):
                raise DataError(
                    f"column {c!r} in {self.describe()} is {types[c]}: collapse_by averages "
                    "every column the estimator uses within its keys",
                    hint=f"add {c!r} to collapse_by, or cast it to a number in the query",
                    column=c,
                )

    def check_averaged(
        self, columns: list[str], by: tuple[str, ...] | list[str], split: SplitSpec | None = None
    ) -> None:
        """Raise the error :meth:`averaged` would raise for a non-numeric column, cheaply."""
        import duckdb

        keys = list(dict.fromkeys(by))
        inner = self._rows_sql(None, list(dict.fromkeys([*keys, *columns])), split)
        try:
            rel = self.relation.query(_VIEW, inner + " LIMIT 0")
        except duckdb.Error as exc:
            raise self._failed(exc) from exc
        self._check_numeric(rel, [c for c in rel.columns if c not in keys])

    def averaged_parts(
        self,
        wheres: list[str | None],
        columns: list[str],
        by: tuple[str, ...] | list[str],
        split: SplitSpec | None,
        path: Path,
    ) -> dict[str, str]:
        """Write what :meth:`averaged` needs for several row conditions in one pass.

        One DuckDB pass over the rows writes, to the Parquet file ``path``, the sum and
        the count of each of ``columns`` (and the row count) within the keys ``by`` and
        the values of a code of the conditions the rows meet (bit ``i``, of one integer
        per 62 conditions, set for the rows meeting ``wheres[i]``).
        :func:`read_averaged` then gives, for condition ``i``, exactly the rows
        ``averaged(wheres[i], ...)`` gives: sums over the flagged parts divided by their
        counts (missing values left out as in ``avg``). The file is streamed from DuckDB
        to disk in record batches. Returns the DuckDB type of each key, which
        :func:`read_averaged` restores (an ENUM is stored as text in Parquet).
        """
        import duckdb
        import pyarrow.parquet as pq

        keys = list(dict.fromkeys(by))
        codes = [
            " + ".join(
                f"(CASE WHEN {'TRUE' if w is None else f'({w})'} THEN {1 << (i % _BITS)} "
                "ELSE 0 END)"
                for i, w in enumerate(wheres)
                if i // _BITS == c
            )
            + f" AS {quote(_code(c))}"
            for c in range(-(-len(wheres) // _BITS))
        ]
        outer = (
            ""
            if any(w is None for w in wheres)
            else " WHERE " + " OR ".join(f"({w})" for w in wheres)
        )
        base = self.split(split)
        inner = (
            f"SELECT {', '.join(quote(k) for k in keys)}, {', '.join(codes)}, "
            + ", ".join(
                f"CAST({quote(c)} AS DOUBLE) AS {quote(_part(j))}" for j, c in enumerate(columns)
            )
            + f" FROM {_VIEW}{outer}"
        )
        group = [*(quote(k) for k in keys), *(quote(_code(c)) for c in range(len(codes)))]
        sums = [
            f"sum({quote(_part(j))}) AS {quote(_part(j) + 's')}, "
            f"count({quote(_part(j))}) AS {quote(_part(j) + 'n')}"
            for j in range(len(columns))
        ]
        sql = (
            f"SELECT {', '.join(group)}, count(*) AS {quote(_ROWS)}"
            + "".join(f", {s}" for s in sums)
            + f" FROM ({inner}) GROUP BY {', '.join(group)}"
        )
        try:
            rel = base.query(_VIEW, sql)
            types = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True) if c in keys}
            reader = rel.to_arrow_reader(1 << 17)
            with pq.ParquetWriter(path, reader.schema, compression="lz4") as writer:
                for batch in reader:
                    writer.write_batch(batch)
        except duckdb.Error as exc:
            raise self._failed(exc) from exc
        return types

    def _rows_sql(
        self, where: str | None, columns: list[str] | None, split: SplitSpec | None
    ) -> str:
        if columns:
            picked = [c for c in columns if split is None or c != split.column]
            if split is not None:
                picked.append(split.column)
            cols = ", ".join(
                split.select() if split is not None and c == split.column else quote(c)
                for c in picked
            )
        else:
            cols = "*" + (f", {split.select()}" if split is not None and split.is_group else "")
        return f"SELECT {cols} FROM {_VIEW}" + (f" WHERE {where}" if where else "")

    def _select(self, sql: str, relation: Any = None) -> pd.DataFrame:
        import duckdb

        try:
            return (self.relation if relation is None else relation).query(_VIEW, sql).df()
        except duckdb.Error as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: Exception) -> DataError:
        return DataError(
            f"selecting the rows of {self.describe()} failed: {str(exc).splitlines()[0]}",
            hint="check the group and where conditions of the analysis",
            column="where",
        )

    def close(self) -> None:
        """Close the DuckDB connection (and remove the run's simulated rows, if any)."""
        self.connection.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


#: Conditions per code column of :meth:`DataSource.averaged_parts` (bits of a BIGINT).
_BITS = 62


def _code(c: int) -> str:
    return f"__evalkit_where_code_{c}"


def _part(j: int) -> str:
    return f"__evalkit_value_{j}"


def read_averaged(
    path: str | Path,
    index: int,
    keys: Mapping[str, str],
    columns: list[str],
    picked: list[str],
) -> tuple[pd.DataFrame, int]:
    """Return condition ``index``'s averaged rows from a file of :meth:`DataSource.averaged_parts`.

    ``keys`` maps each key to its DuckDB type, ``columns`` are the file's value columns
    in order, ``picked`` those to return (after the keys, in this order); the rows are
    ordered by the keys. Runs on a worker: reads only the columns needed, one at a
    time, with pyarrow, and sums them within the keys in NumPy
    (:func:`_read_averaged_arrow`); keys of other types than integers, booleans and
    text are summed in a DuckDB that may read only this file instead. Both give the
    same frame, bit for bit.
    """
    read = _read_averaged_arrow(Path(path), index, keys, columns, picked)
    if read is not None:
        return read
    return _read_averaged_duckdb(path, index, keys, columns, picked)


def _read_averaged_duckdb(
    path: str | Path,
    index: int,
    keys: Mapping[str, str],
    columns: list[str],
    picked: list[str],
) -> tuple[pd.DataFrame, int]:
    """:func:`read_averaged` in DuckDB (any key type; ~3x the CPU and memory of the arrow path).

    One thread: a worker has one core, and the sums of a group's parts are then taken
    in the file's order (with more threads DuckDB adds three or more parts in an order
    that varies from run to run, changing the last bits).
    """
    from evalkit.data import sandbox

    where = [j for c in picked for j, name in enumerate(columns) if name == c]
    values = [
        f"sum({quote(_part(j) + 's')}) / sum({quote(_part(j) + 'n')}) AS {quote(columns[j])}"
        for j in where
    ]
    group = ", ".join(quote(k) for k in keys)
    typed = ", ".join(f"CAST({quote(k)} AS {t}) AS {quote(k)}" for k, t in keys.items())
    sql = (
        f"SELECT {group}{''.join(', ' + v for v in values)}, "
        f"sum({quote(_ROWS)}) AS {quote(_ROWS)} FROM (SELECT * REPLACE ({typed}) "
        f"FROM read_parquet(?) WHERE ({quote(_code(index // _BITS))} & {1 << (index % _BITS)}) "
        f"<> 0) GROUP BY {group} ORDER BY {group}"
    )
    con = sandbox.connect(files=[path], threads=1)
    try:
        frame = con.execute(sql, [str(Path(path).resolve())]).df()
    finally:
        con.close()
    n_rows = int(frame.pop(_ROWS).sum())  # 0 for no rows (the column dropped too)
    return frame, n_rows


#: Key types :func:`_read_averaged_arrow` groups (DuckDB type -> the Arrow types that
#: DuckDB writes to Parquet for it); the returned column has the dtype DuckDB gives.
_ARROW_KEYS = {
    "BOOLEAN": ("bool",),
    "TINYINT": ("int8",),
    "SMALLINT": ("int16",),
    "INTEGER": ("int32",),
    "BIGINT": ("int64",),
    "UTINYINT": ("uint8",),
    "USMALLINT": ("uint16",),
    "UINTEGER": ("uint32",),
    "VARCHAR": ("string", "large_string"),
}


def _read_averaged_arrow(
    path: Path,
    index: int,
    keys: Mapping[str, str],
    columns: list[str],
    picked: list[str],
) -> tuple[pd.DataFrame, int] | None:
    """:func:`read_averaged` with pyarrow and NumPy; None when DuckDB must do it.

    Each key becomes an integer code in the keys' order (text: the rank of its value,
    compared byte by byte as DuckDB orders VARCHAR), the codes one integer per row;
    a stable sort of it gives the groups in DuckDB's ``ORDER BY`` order. The sums
    within a group are taken in the file's row order starting from 0.0
    (``np.bincount``), as DuckDB's ``sum`` of DOUBLE adds them (missing parts, which
    ``sum`` skips, add -0.0: nothing), so the averages are DuckDB's bit for bit
    whenever DuckDB adds the parts in the file's order (with one thread, as
    :func:`_read_averaged_duckdb` runs it; with more, DuckDB may add three or more
    parts in another order from run to run, an ulp apart).
    Returns None for other key types, missing key values, no rows, or more key
    combinations than one int64 can number.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not keys or any(t not in _ARROW_KEYS for t in keys.values()):
        return None
    text = [k for k, t in keys.items() if t == "VARCHAR"]
    file = pq.ParquetFile(path, read_dictionary=text)
    for k, t in keys.items():
        kind = file.schema_arrow.field(k).type
        if str(kind.value_type if pa.types.is_dictionary(kind) else kind) not in _ARROW_KEYS[t]:
            return None

    def read(name: str, mask: Any = None) -> Any:
        col = file.read(columns=[name], use_threads=False).column(name)
        return col if mask is None else col.filter(mask)

    code = read(_code(index // _BITS)).to_numpy()
    kept = (code & (1 << (index % _BITS))) != 0
    del code
    if not kept.any():
        return None  # DuckDB gives an empty frame its columns' types
    mask = None if kept.all() else pa.array(kept)
    del kept
    combined: Any = None  # one integer per row numbering its keys' values in order
    size = 1
    outputs: list[tuple[str, Any, Any]] = []  # (key, values or dictionary, codes)
    for k in keys:
        col = read(k, mask)
        if col.null_count:
            return None
        if k in text:
            col = pa.table({k: col}).unify_dictionaries().column(k).combine_chunks()
            words = col.dictionary
            rank = np.empty(len(words), dtype=np.int64)
            rank[pc.array_sort_indices(words).to_numpy()] = np.arange(len(words))
            values, codes, n = words, col.indices.to_numpy(), len(words)
            coded = rank[codes]
        else:
            values = col.to_numpy()
            codes = None
            low = int(values.min())
            coded = values.astype(np.int64) - low
            n = int(values.max()) - low + 1
        if size * n >= 2**62:
            return None
        combined = coded if combined is None else combined * n + coded
        size *= n
        outputs.append((k, values, codes))
    del coded
    if len(combined) > 1 and not bool((combined[1:] >= combined[:-1]).all()):
        order = np.argsort(combined, kind="stable")
        combined = combined[order]
    else:
        order = None
    new = np.empty(len(combined), dtype=bool)
    new[0] = True
    np.not_equal(combined[1:], combined[:-1], out=new[1:])
    del combined
    first = np.flatnonzero(new)  # in sorted positions
    group = np.cumsum(new) - 1
    del new
    if order is not None:
        first = order[first]  # in file positions
        group[order] = group.copy()
        del order
    frame: dict[str, Any] = {}
    for k, values, codes in outputs:
        if codes is None:
            frame[k] = values[first]
        else:
            frame[k] = values.take(pa.array(codes[first])).to_pandas()
    del outputs
    n_groups = len(first)
    for c in picked:
        j = columns.index(c)
        total = read(_part(j) + "s", mask)
        if total.null_count:
            total = total.fill_null(-0.0)
        sums = np.bincount(group, weights=total.to_numpy(), minlength=n_groups)
        del total
        counts = np.bincount(
            group, weights=read(_part(j) + "n", mask).to_numpy(), minlength=n_groups
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[c] = sums / counts
    n_rows = int(read(_ROWS, mask).to_numpy().sum())
    return pd.DataFrame(frame, copy=False), n_rows


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a DataFrame's column names, dtypes and values (row order matters).

    Examples
    --------
    >>> a = pd.DataFrame({"x": [1, 2]})
    >>> frame_sha256(a) == frame_sha256(a.copy()) != frame_sha256(a.iloc[::-1])
    True
    """
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _connect(
    study: Study, override: Any = None, scratch: Path | None = None
) -> tuple[duckdb.DuckDBPyConnection, dict[str | None, str]]:
    """Open the run's locked-down DuckDB and return it with the queries to run, by table.

    One connection holds the main data (key None) and every ``[data.tables.<name>]``.
    It may read only the declared data: the study's files (or folders), the files its
    queries name (checked and made absolute by :func:`evalkit.data.sandbox.localize`) or
    the ``--data`` override; see :mod:`evalkit.data.sandbox`.
    """
    files: list[Path] = []
    folders: list[Path] = []
    queries: dict[str | None, str] = {}
    roots = [study.root, *sandbox.data_roots()]
    for name, spec in {None: study.data, **study.tables}.items():
        path: Path | None = None
        if name is None and override is not None:
            if isinstance(override, SimulatedData) and override.data is None:
                folders.append(override.store)
                continue
            if isinstance(override, SimulatedData | pd.DataFrame):
                continue
            path = Path(override).expanduser().resolve()
        elif spec.kind == "file":
            path = spec.file
        elif spec.kind == "query":
            key = "query" if name is None else f"[data.tables.{name}] query"
            local = sandbox.localize(spec.query, roots, key=key)
            files.extend(local.files)
            folders.extend(local.folders)
            queries[name] = local.query
        if path is not None:
            (folders if path.is_dir() else files).append(path)
    if scratch is not None:
        folders.append(scratch)
    return sandbox.connect(files, folders), queries


def _connect_path(path: Path) -> duckdb.DuckDBPyConnection:
    if path.is_dir():
        return sandbox.connect(folders=[path])
    return sandbox.connect(files=[path])


def _file_relation(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyRelation:
    import duckdb

    try:
        if path.suffix.lower() in (".parquet", ".pq") or path.is_dir():
            target = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
            return con.read_parquet(target)
        return con.read_csv(str(path))
    except duckdb.Error as exc:
        raise DataError(
            f"could not read {str(path)!r}: {str(exc).splitlines()[0]}", column="file"
        ) from exc


def _query_relation(
    con: duckdb.DuckDBPyConnection, query: str, table: str | None = None
) -> duckdb.DuckDBPyRelation:
    import duckdb

    whose = "the study's query" if table is None else f"the query of [data.tables.{table}]"

    try:
        return con.sql(query)
    except duckdb.PermissionException as exc:
        raise DataError(
            f"{whose} reads something it did not declare: {str(exc).splitlines()[0]}",
            hint="a study may read only its data files: name them as literal paths in the "
            "query (SELECT ... FROM 'extract.parquet'), inside the study folder or a data root",
            column="query",
        ) from exc
    except duckdb.Error as exc:
        raise DataError(
            f"{whose} failed: {str(exc).splitlines()[0]}",
            hint="file paths in the query are relative to the study folder",
            column="query",
        ) from exc


def open_source(study: Study, data_override: Any = None, *, jobs: int | None = None) -> DataSource:
    """Open a study's data (or ``data_override``) as a DuckDB relation and fingerprint it.

    Parameters
    ----------
    study
        The parsed study.
    data_override
        Run on these data instead of the study's [data]: a DataFrame, a
        :class:`~evalkit.simulate.SimulatedData`, or the path of a CSV/Parquet file.
    jobs
        Processes a simulator that takes ``jobs`` generates its chunks on (the run's
        ``--jobs``), unless the design's options set it; the data do not depend on it.
    """
    scratch = _scratch(study) if data_override is None else None
    try:
        con, queries = _connect(study, data_override, scratch)
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        source = _open(study, con, data_override, queries.get(None), scratch=scratch, jobs=jobs)
        source.relation = derive(source.relation, study.columns)
        for name, spec in study.tables.items():
            table = _open(study, con, None, queries.get(name), spec, name, jobs=jobs)
            table.name = name
            source.tables[name] = table
        if source.tables:
            source.details["tables"] = {
                name: {
                    "kind": t.kind,
                    "sha256": t.sha256,
                    "hash_method": t.hash_method,
                    **t.details,
                }
                for name, t in source.tables.items()
            }
        return source
    except BaseException:
        con.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise


def _scratch(study: Study) -> Path | None:
    """Return a new temporary folder for a simulator that writes its rows in chunks.

    Simulators with a ``store`` option (e.g. ``bergen_rates``) write Parquet files there,
    which DuckDB reads in a streaming fashion: the rows are never all in memory. The
    folder is in the system's temporary folder (``TMPDIR``) and is removed on close.
    """
    if study.data.kind != "simulator":
        return None
    from evalkit import simulate

    if "store" not in inspect.signature(simulate.get(study.data.simulator)).parameters:
        return None
    return Path(tempfile.mkdtemp(prefix="evalkit-simulated-"))


def derive(relation: duckdb.DuckDBPyRelation, columns: Any) -> duckdb.DuckDBPyRelation:
    """Return ``relation`` with the derived columns ``{name: SQL expression}`` added.

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> rel = derive(con.sql("SELECT 3 AS x"), {"double_x": "2 * x"})
    >>> rel.fetchall()
    [(3, 6)]
    """
    import duckdb

    if not columns:
        return relation
    items = ", ".join(f"{expr} AS {quote(name)}" for name, expr in columns.items())
    try:
        return relation.query(_VIEW, f"SELECT *, {items} FROM {_VIEW}")
    except duckdb.Error as exc:
        raise DataError(
            f"the derived [columns] do not work on the data: {str(exc).splitlines()[0]}",
            hint=f"columns of the data: {', '.join(relation.columns)}",
            column="columns",
        ) from exc


def _open(
    study: Study,
    con: duckdb.DuckDBPyConnection,
    override: Any,
    query: str | None,
    spec: Any = None,
    table: str | None = None,
    scratch: Path | None = None,
    jobs: int | None = None,
) -> DataSource:
    spec = study.data if spec is None else spec
    view = _view(table)
    if override is not None:
        if isinstance(override, SimulatedData) and override.data is None:
            return _stored_source(con, override, {"override": "simulated data"}, None)
        if isinstance(override, SimulatedData | pd.DataFrame):
            frame = override.data if isinstance(override, SimulatedData) else override
            sim = override if isinstance(override, SimulatedData) else None
            con.register(_TABLE, frame)
            details: dict[str, Any] = {"override": "data frame"}
            if sim is not None:
                details.update(simulator=sim.name, options=dict(sim.parameters))
            return DataSource(
                con,
                con.table(_TABLE),
                "simulator" if sim else "frame",
                frame_sha256(frame),
                "sha256 of the data frame (pandas row hashes)",
                sim,
                details,
            )
        path = Path(override).expanduser().resolve()
        if not path.exists():
            raise DataError(f"data file {str(path)!r} does not exist", column="data")
        rel = _file_relation(con, path)
        return DataSource(
            con,
            rel,
            "file",
            _file_sha256(path),
            "sha256 of the file bytes",
            None,
            {"file": str(path)},
        )
    if spec.kind == "simulator":
        from evalkit import simulate

        options = dict(spec.options)
        options.setdefault("seed", study.seed)
        if scratch is None:
            sim = simulate.get(spec.simulator)(**options)
            con.register(view, sim.data)
            return DataSource(
                con,
                con.table(view),
                "simulator",
                frame_sha256(sim.data),
                "sha256 of the data frame (pandas row hashes)",
                sim,
                {"simulator": spec.simulator, "options": dict(sim.parameters)},
            )
        make = simulate.get(spec.simulator)
        if jobs is not None and "jobs" in inspect.signature(make).parameters:
            options.setdefault("jobs", jobs)
        sim = make(**options, store=scratch)
        return _stored_source(con, sim, {}, scratch)
    if spec.kind == "file":
        rel = _file_relation(con, spec.file)
        return DataSource(
            con,
            rel,
            "file",
            _file_sha256(spec.file),
            "sha256 of the file bytes",
            None,
            {"file": _relative(spec.file, study.root)},
        )
    rel = _query_relation(con, query or spec.query, table)
    digest = _relation_fingerprint(con, rel)
    return DataSource(
        con,
        rel,
        "query",
        digest,
        "sha256 of the row count and the sum of DuckDB row hashes (order-independent)",
        None,
        {"query": spec.query},
    )


def _view(table: str | None) -> str:
    """Return the name a table's data frame is registered under (None: the main data)."""
    return _TABLE if table is None else f"{_TABLE}_{table}"


def _stored_source(
    con: duckdb.DuckDBPyConnection,
    sim: SimulatedData,
    details: dict[str, Any],
    scratch: Path | None,
) -> DataSource:
    """Return the source of simulated rows that a simulator wrote to Parquet files."""
    rel = _stored_relation(con, sim)
    if sim.content_sha256 is not None:
        digest, method = sim.content_sha256, "the simulator's content hash of the rows"
    else:
        digest = _relation_fingerprint(con, rel)
        method = "sha256 of the row count and the sum of DuckDB row hashes (order-independent)"
    return DataSource(
        con,
        rel,
        "simulator",
        digest,
        method,
        sim,
        {**details, "simulator": sim.name, "options": dict(sim.parameters)},
        scratch,
    )


def _stored_relation(con: duckdb.DuckDBPyConnection, sim: SimulatedData) -> Any:
    """Return the rows a simulator wrote to its store, without the hidden effect columns."""
    assert sim.store is not None
    rel = con.read_parquet(str(sim.store / "*.parquet"))
    hidden = {c for c in sim.row_effects.values() if c}
    return rel.select(", ".join(quote(c) for c in rel.columns if c not in hidden))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _relation_fingerprint(con: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation) -> str:
    sql = "SELECT count(*), sum(hash(fp))::VARCHAR FROM fp fp"
    n, total = rel.query("fp", sql).fetchall()[0]
    types = [[c, str(t)] for c, t in zip(rel.columns, rel.types, strict=True)]
    text = json.dumps({"rows": n, "hash_sum": total, "columns": types})
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- checks
def _schema_relation(
    study: Study,
    con: duckdb.DuckDBPyConnection,
    query: str | None,
    spec: Any = None,
    table: str | None = None,
) -> Any:
    """Return a relation with the source's columns, read cheaply (no rows are scanned)."""
    spec = study.data if spec is None else spec
    view = _view(table)
    if spec.kind == "simulator":
        from evalkit import simulate

        schema = simulate.schema(spec.simulator)
        empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in schema.items()})
        con.register(view, empty)
        return con.table(view)
    if spec.kind == "file":
        return _file_relation(con, spec.file)
    return _query_relation(con, query or spec.query, table)


def check_columns(study: Study, src: Locator, data_override: Any = None) -> None:
    """Check names against the data's columns, where they can be read cheaply.

    Checks the collapse keys and measures, the group and where conditions (bound by
    DuckDB against the columns, so a misspelt column is caught), and every role of every
    analysis against the columns the estimator will see (the cells when the analysis is
    fitted on cells, else the rows of the table it reads: ``[data]`` or a
    ``[data.tables.<name>]``).
    """
    con, queries = _connect(study, data_override)
    try:
        if data_override is not None:
            rel = _override_relation(con, data_override)
        else:
            rel = _schema_relation(study, con, queries.get(None))
        rel = _check_derived(study, src, rel)
        relations: dict[str | None, Any] = {None: rel}
        for name, spec in study.tables.items():
            relations[name] = _schema_relation(study, con, queries.get(name), spec, name)
        _check_names(study, src, relations)
    finally:
        con.close()


def _check_derived(study: Study, src: Locator, rel: Any) -> Any:
    """Add the derived [columns] to the main relation, checking each."""
    for name, expression in study.columns.items():
        if name in rel.columns:
            raise DesignError(
                f"{src.where('columns', name)}: derived column {name!r} is already a "
                "column of the data",
                hint="give the derived column another name",
                column=name,
            )
        try:
            rel = derive(rel, {name: expression})
        except DataError as err:
            raise DesignError(
                f"{src.where('columns', name)}: derived column {name!r} = "
                f"{expression!r} does not work on the data: {err.message.split(': ', 1)[1]}",
                hint=err.hint,
                column=name,
            ) from None
    return rel


def _table_label(name: str | None) -> str:
    return "the data" if name is None else f"table {name!r}"


def _check_names(study: Study, src: Locator, relations: Mapping[str | None, Any]) -> None:
    import duckdb

    columns = list(relations[None].columns)

    def bind(
        condition: str, table: str, key: str, index: int | None = None, name: str | None = None
    ) -> None:
        rel = relations[name]
        try:
            rel.query(_VIEW, f"SELECT * FROM {_VIEW} WHERE {condition} LIMIT 0")
        except duckdb.Error as exc:
            raise DesignError(
                f"{src.where(table, key, index)}: condition {condition!r} does not work "
                f"on {_table_label(name)}: {str(exc).splitlines()[0]}",
                hint=f"columns of {_table_label(name)}: {', '.join(rel.columns)}",
                column=key,
            ) from None

    def need(
        column: str, table: str, key: str, index: int | None, among: list[str], what: str
    ) -> None:
        if column not in among:
            import difflib

            close = difflib.get_close_matches(column, among, n=1)
            raise DesignError(
                f"{src.where(table, key, index)}: column {column!r} ({key}) is not in {what}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"available: {', '.join(among)}",
                column=column,
            )

    tables_of: dict[str, set[str | None]] = {}
    for a in study.analyses:
        used = [a.group] + ([a.split.by] if a.split is not None and a.split.is_group else [])
        for g in used:
            tables_of.setdefault(g, set()).add(a.table)
    for name, condition in study.groups.items():
        if condition:
            for table in sorted(tables_of.get(name, {None}), key=str):
                bind(condition, "groups", name, None, table)
    if study.collapse is not None:
        for b in study.collapse.by:
            need(b, "collapse", "by", None, columns, "the data")
        for m in study.collapse.measures:
            if m.column is not None:
                need(m.column, "collapse.measures", m.name, None, columns, "the data")
            if m.where:
                bind(m.where, "collapse.measures", m.name)
    target = study.collapse.columns if study.collapse is not None else columns
    what = "the cells" if study.collapse is not None else "the data"
    if any(a.table is None for a in study.analyses):
        for role, value in study.roles.items():
            for col in [value] if isinstance(value, str) else list(value or []):
                need(col, "roles", role, None, target, what)
    for a in study.analyses:
        mine = list(relations[a.table].columns)
        label = _table_label(a.table)
        if a.custom_where and a.where:
            bind(a.where, "analysis", "where", a.table_index, a.table)
        if a.fit_on == "cells":
            among, what = study.cell_columns(a), "the cells"
        else:
            among, what = mine, label
        for b in a.collapse_by or ():
            need(b, "analysis", "collapse_by", a.table_index, mine, label)
        if a.by is not None:
            need(a.by, "analysis", "by", a.table_index, mine, label)
        if a.split is not None:
            _check_split(study, src, a, mine)
            if a.fit_on == "rows":
                among = [*among, a.split.column]
        for role in (*_ROLE_COLUMNS, "covariates", "group", "instrument"):
            value = a.kwargs.get(role)
            for col in [value] if isinstance(value, str) else list(value or []):
                need(col, "analysis", role, a.table_index, among, what)
        cluster = a.inference.cluster if a.inference is not None else None
        if cluster:
            cluster_among = target if a.fit_on == "cells" else mine
            need(cluster, "analysis", "inference", a.table_index, cluster_among, what)


def _override_relation(con: duckdb.DuckDBPyConnection, override: Any) -> Any:
    if isinstance(override, SimulatedData) and override.data is None:
        return _stored_relation(con, override)
    if isinstance(override, SimulatedData | pd.DataFrame):
        frame = override.data if isinstance(override, SimulatedData) else override
        con.register(_TABLE, frame)
        return con.table(_TABLE)
    return _file_relation(con, Path(override).expanduser().resolve())


#: DuckDB type names by what a role or measure needs.
_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "BOOLEAN",
)
_TEMPORAL = ("DATE", "TIMESTAMP")


def validate_data(study: Study, source: DataSource) -> dict[str, int]:
    """Check the opened data's types and missing values before any analysis runs.

    Roles and measures must have usable types (``time`` a date or number, ``treatment``
    and every measured column numeric); role columns may have no missing values. Returns
    the number of missing values in each column the study uses (for the report).

    Raises
    ------
    evalkit.errors.DataError
        Naming the column, the data (file or query) and how to fix it.

    Notes
    -----
    Each ``[data.tables.<name>]`` is checked the same way for the roles of the analyses
    that read it; its missing-value counts go to ``details["tables"][name]``.
    """
    for name, table in source.tables.items():
        mine = [a for a in study.analyses if a.table == name]
        missing = _validate(study, table, {}, mine, with_collapse=False)
        source.details.setdefault("tables", {}).setdefault(name, {})["missing_values"] = missing
    return _validate(
        study, source, dict(study.roles), [a for a in study.analyses if a.table is None]
    )


def _validate(
    study: Study,
    source: DataSource,
    roles: dict[str, Any],
    analyses: list[Any],
    with_collapse: bool = True,
) -> dict[str, int]:
    rel = source.relation
    types = {c: str(t).upper() for c, t in zip(rel.columns, rel.types, strict=True)}
    where = source.describe()
    for a in analyses:
        for role in ("unit", "time", "treatment", "cohort", "cluster", "weights"):
            value = a.kwargs.get(role)
            if isinstance(value, str) and value in types:
                roles.setdefault(role, value)

    def need(column: str, kinds: tuple[str, ...], what: str, fix: str) -> None:
        kind = types.get(column)
        if kind is None or any(kind.startswith(k) for k in kinds):
            return
        raise DataError(
            f"column {column!r} in {where} is {kind}, but {what}",
            hint=fix,
            column=column,
        )

    time_col = roles.get("time")
    if isinstance(time_col, str):
        need(
            time_col,
            _TEMPORAL + _NUMERIC,
            "the time role needs dates or whole numbers",
            f'convert it in a query: query = "SELECT * REPLACE (CAST({quote(time_col)} AS DATE) '
            f"AS {quote(time_col)}) FROM 'extract.parquet'\" (text like '2020-03-01'), "
            "or store it as a date in the extract",
        )
    for role in ("treatment", "cohort", "weights"):
        col = roles.get(role)
        if isinstance(col, str):
            need(
                col,
                _NUMERIC + (_TEMPORAL if role == "cohort" else ()),
                f"the {role} role needs numbers",
                f"store {col!r} as a number (0/1 for a treatment) or cast it in the query",
            )
    used: list[str] = []
    collapse = study.collapse if with_collapse else None
    if collapse is not None:
        for m in collapse.measures:
            if m.column is not None and m.stat != "count":
                need(
                    m.column,
                    _NUMERIC,
                    f"measure {m.name!r} takes its {m.stat}",
                    f"store {m.column!r} as a number or cast it in the query",
                )
                used.append(m.column)
    role_cols = [v for k, v in roles.items() if isinstance(v, str) and k != "covariates"]
    used = list(
        dict.fromkeys(
            [*role_cols, *used, *(c for c in collapse.by if c in types)]
            if collapse is not None
            else [*role_cols, *used]
        )
    )
    used = [c for c in used if c in types]
    if not used:
        return {}
    sql = (
        "SELECT "
        + ", ".join(f"count(*) - count({quote(c)}) AS {quote(c)}" for c in used)
        + f" FROM {_VIEW}"
    )
    row = rel.query(_VIEW, sql).fetchall()[0]
    counts = dict(zip(used, row, strict=True))
    missing = {c: int(n) for c, n in counts.items() if n}
    for role, col in roles.items():
        if isinstance(col, str) and missing.get(col):
            raise DataError(
                f"role column {col!r} ({role}) in {where} has {missing[col]:,} missing values",
                hint=f"drop or fill them first, e.g. query = \"SELECT * FROM 'extract.parquet' "
                f'WHERE {quote(col)} IS NOT NULL"',
                column=col,
            )
    return missing


def _describe_source(source: DataSource) -> str:
    if source.kind == "file":
        return f"data file {source.details.get('file')!r}"
    if source.kind == "query":
        return "the study's query"
    return "the data" if source.kind == "frame" else "the simulated data"


def _check_split(study: Study, src: Locator, spec: Any, columns: list[str]) -> None:
    """Check ``split_by`` of one analysis against the data's columns."""
    import difflib

    split = spec.split
    where = src.where("analysis", "split_by", spec.table_index)
    if split.is_group:
        if split.column in columns:
            raise DesignError(
                f"{where}: split_by {split.by!r} would add column {split.column!r}, which the "
                "data already have",
                hint=f"rename the group in [groups], or split by the column: "
                f'split_by = "{split.column}" with options.target',
                column="split_by",
            )
        return
    if split.column not in columns:
        names = [g for g in study.groups if g != "all"]
        close = difflib.get_close_matches(split.by, [*names, *columns], n=1)
        raise DesignError(
            f"{where}: split_by {split.by!r} is neither a [groups] name nor a column of the data",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"groups: {', '.join(names) or '(none)'}; columns: {', '.join(columns)}",
            column="split_by",
        )
