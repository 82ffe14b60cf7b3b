"""A locked-down DuckDB for running study folders that someone else wrote.

A study folder is text, but DuckDB SQL can write files (``COPY``), read any file on the
machine (``read_csv('/etc/passwd')``), attach databases and fetch URLs through
extensions. Studies are run on servers that hold confidential register data, so every
DuckDB connection evalkit opens for a study or a reader is made by :func:`connect`:

- the only files it may read are the declared data files and folders (DuckDB's
  ``allowed_paths`` / ``allowed_directories`` with ``enable_external_access = false``);
- extensions are never installed or loaded automatically;
- ``lock_configuration`` is on, so SQL cannot turn any of this back on.

The SQL that a study may contain is checked with DuckDB's own parser before it runs:
``query`` is exactly one ``SELECT`` statement (:func:`check_select`); derived columns,
groups and conditions are single expressions (:func:`check_expression`). Paths are
resolved with symlinks and must lie inside the study folder or a data root the user
names (:func:`contain`).

Examples
--------
>>> con = connect()
>>> con.sql("SELECT 41 + 1 AS answer").fetchall()
[(42,)]
>>> check_select("SELECT * FROM 'extract.parquet' WHERE year > 2015", key="query")
>>> check_expression("income > 0 AND age < 30", key="groups.young")
"""

from __future__ import annotations

import glob
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.errors import StudyError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

__all__ = [
    "DATA_ROOT_ENV",
    "Localized",
    "check_expression",
    "check_select",
    "connect",
    "contain",
    "data_roots",
    "localize",
    "query_paths",
    "scratch",
    "select_where",
]

DATA_ROOT_ENV = "EVALKIT_DATA_ROOT"
_PLACEHOLDER = "__evalkit_expression_source"


def data_roots(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Folders (resolved) besides the study folder that studies may read data from.

    From ``EVALKIT_DATA_ROOT`` (several separated by ``os.pathsep``) and ``extra``.
    """
    given = [p for p in os.environ.get(DATA_ROOT_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(p).expanduser().resolve() for p in [*given, *extra]]


def contain(path: str | Path, roots: Sequence[Path], *, key: str, where: str = "") -> Path:
    """Resolve ``path`` (symlinks included) and require it to lie inside one of ``roots``.

    Parameters
    ----------
    path
        The path as written (relative paths are relative to the first root).
    roots
        Allowed folders, resolved; the first is the study folder.
    key
        The study key that named the path, for the message.
    where
        ``study.toml:LINE`` or similar, for the message.

    Raises
    ------
    evalkit.errors.StudyError
        When the resolved path is outside every root.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> contain("extract.csv", [root], key="file") == root / "extract.csv"
    True
    >>> try:
    ...     contain("../elsewhere.csv", [root], key="file")
    ... except StudyError as err:
    ...     print("outside the study folder" in err.message)
    True
    """
    raw = Path(path).expanduser()
    resolved = (raw if raw.is_absolute() else roots[0] / raw).resolve()
    for root in roots:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    prefix = f"{where}: " if where else ""
    raise StudyError(
        f"{prefix}{key} {str(path)!r} resolves to {str(resolved)!r}, outside the study folder "
        f"{str(roots[0])!r}"
        + (f" and the data roots {[str(r) for r in roots[1:]]}" if roots[1:] else ""),
        hint="keep data inside the study folder, or name the folder that holds them with "
        f"{DATA_ROOT_ENV}=/path/to/data (or pass the file with --data)",
        column=key,
    )


def connect(
    files: Iterable[str | Path] = (),
    folders: Iterable[str | Path] = (),
    *,
    database: str | Path | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB that may read only ``files`` and the files under ``folders``.

    In memory, or the ``database`` file opened read-only; with ``threads``, DuckDB uses
    that many threads (set when the connection is made: the configuration is locked).

    Nothing else on the file system or the network is reachable from SQL on the returned
    connection, no extension is installed or loaded automatically, and the configuration
    is locked. DataFrames registered with ``connection.register`` work as usual.
    """
    import duckdb

    con = duckdb.connect(
        ":memory:" if database is None else str(database),
        read_only=database is not None,
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            # return freed memory to the system (a study's person-level pass would
            # otherwise keep its hash table's memory, ~1 GB at 1.5M persons, for the run)
            "allocator_background_threads": True,
            **({} if threads is None else {"threads": int(threads)}),
        },
    )
    try:
        paths = [str(Path(f).resolve()) for f in files]
        dirs = [str(Path(d).resolve()).rstrip("/") + "/" for d in folders]
        if paths:
            con.execute("SET allowed_paths = ?", [paths])
        if dirs:
            con.execute("SET allowed_directories = ?", [dirs])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


_SCRATCH: dict[int, duckdb.DuckDBPyConnection] = {}
_SCRATCH_LOCK = threading.Lock()


@contextmanager
def scratch() -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a cursor on this process' sandboxed in-memory DuckDB (it reads no file).

    For small queries on registered DataFrames (a truth's condition, parsing SQL):
    opening a database costs about 20 ms, a cursor on an open one microseconds.
    DataFrames registered on the cursor are seen by it alone; it is closed on exit.

    Examples
    --------
    >>> import pandas as pd
    >>> with scratch() as con:
    ...     _ = con.register("t", pd.DataFrame({"x": [1, 2, 3]}))
    ...     con.execute("SELECT sum(x) AS s FROM t").fetchone()
    (6,)
    """
    pid = os.getpid()
    with _SCRATCH_LOCK:  # one database per process (a forked child opens its own)
        base = _SCRATCH.get(pid)
        if base is None:
            base = _SCRATCH[pid] = connect()
    cursor = base.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def select_where(frame: pd.DataFrame, condition: str) -> pd.DataFrame | None:
    """Return the rows of ``frame`` that meet the SQL ``condition``, as DuckDB reads it.

    The frame is seen as a table named ``strata``. None when DuckDB cannot evaluate the
    condition on it (e.g. it names a column the frame lacks).

    Examples
    --------
    >>> import pandas as pd
    >>> select_where(pd.DataFrame({"x": [1, 2, 3]}), "x >= 2")["x"].tolist()
    [2, 3]
    >>> select_where(pd.DataFrame({"x": [1]}), "y = 1") is None
    True
    """
    import duckdb

    with scratch() as con:
        try:
            con.register("strata", frame)
            return con.sql(f"SELECT * FROM strata WHERE {condition}").df()
        except duckdb.Error:
            return None


def check_select(query: str, *, key: str, where: str = "") -> None:
    """Require ``query`` to be exactly one ``SELECT`` statement (DuckDB's parser decides).

    Raises
    ------
    evalkit.errors.StudyError
        For several statements, any other kind of statement, or SQL that does not parse.

    Examples
    --------
    >>> try:
    ...     check_select("SELECT 1; COPY (SELECT 2) TO 'x.csv'", key="query")
    ... except StudyError as err:
    ...     print(err.message)
    query must be exactly one SELECT statement; found 2 statements (SELECT, COPY)
    """
    statements = _statements(query, key=key, where=where)
    kinds = [s.type.name for s in statements]
    if kinds != ["SELECT"]:
        prefix = f"{where}: " if where else ""
        found = f"{len(kinds)} statements ({', '.join(kinds)})" if len(kinds) != 1 else kinds[0]
        raise StudyError(
            f"{prefix}{key} must be exactly one SELECT statement; found {found}",
            hint="a study's query only reads its data: SELECT ... FROM 'extract.parquet' "
            "WHERE ...; it may not write files, attach databases, install extensions or "
            "change settings",
            column=key,
        )


def check_expression(expression: str, *, key: str, where: str = "") -> None:
    """Require ``expression`` to be one SQL expression (a column or a condition).

    The expression is parsed as the single item of ``SELECT (expression) FROM t``: text
    that closes the parenthesis, adds items, tables, clauses or statements is refused.

    Examples
    --------
    >>> try:
    ...     check_expression("1) AS a FROM read_csv('/etc/passwd') --", key="columns.x")
    ... except StudyError as err:
    ...     print(err.message)
    columns.x must be a single SQL expression: it adds SQL beyond one expression
    """
    prefix = f"{where}: " if where else ""
    problem = None
    if ";" in expression and not _only_in_strings(expression, ";"):
        problem = "it contains a statement separator ';'"
    else:
        sql = f"SELECT ({expression}) AS __x FROM {_PLACEHOLDER}"
        statements = _statements(sql, key=key, where=where)
        tree = _serialize(sql) if len(statements) == 1 else None
        if tree is None or not _is_single_item(tree):
            problem = "it adds SQL beyond one expression"
        elif _path_literals(sql) or _reads_tables(tree):
            problem = "it reads a file or table; only the data's own columns may be used"
    if problem is not None:
        raise StudyError(
            f"{prefix}{key} must be a single SQL expression: {problem}",
            hint='write a column expression or condition, e.g. "income > 0 AND age < 30"',
            column=key,
        )


def query_paths(query: str) -> list[str]:
    """Return the file paths and URLs a SELECT query reads (table functions, quoted tables).

    Examples
    --------
    >>> query_paths("SELECT * FROM 'a.parquet' JOIN read_csv('b/c.csv', delim=';') USING (id)")
    ['a.parquet', 'b/c.csv']
    """
    return list(dict.fromkeys(raw for _, _, raw in _path_literals(query)))


@dataclass(frozen=True)
class Localized:
    """A query whose file paths are absolute and checked, with what it may read."""

    query: str
    files: tuple[Path, ...]
    folders: tuple[Path, ...]


def localize(
    query: str, roots: Sequence[Path], *, key: str, where: str = "", contained: bool = True
) -> Localized:
    """Check the paths a query reads and rewrite them as absolute paths under ``roots``.

    Relative paths are relative to ``roots[0]`` (the study folder), whatever the working
    directory. A URL, or a path (or glob match) that resolves outside every root, symlinks
    included, is refused. With ``contained=False`` (the user's own Python code, not a
    study) paths may lie anywhere, but URLs are still refused.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> out = localize("SELECT * FROM 'x.csv'", [root], key="query")
    >>> out.query == f"SELECT * FROM '{root / 'x.csv'}'"
    True
    """
    prefix = f"{where}: " if where else ""
    data = query.encode("utf-8")
    files: list[Path] = []
    folders: list[Path] = []
    edits: list[tuple[int, int, str]] = []
    for start, length, raw in _path_literals(query):
        if "://" in raw or raw.split(":", 1)[0] in ("http", "https", "s3", "gcs", "gs", "az", "hf"):
            raise StudyError(
                f"{prefix}{key} reads {raw!r}: studies never read from the network",
                hint="copy the data into the study folder or a data root first",
                column=key,
            )
        pattern = Path(raw).expanduser()
        full = pattern if pattern.is_absolute() else roots[0] / pattern
        if glob.has_magic(str(full)):
            base = Path(*[part for part in _until_magic(full.parts)])
            if contained:
                contain(base, roots, key=key, where=where)
                for match in glob.glob(str(full), recursive=True):
                    contain(match, roots, key=key, where=where)
            folders.append(base)
        else:
            if contained:
                contain(full, roots, key=key, where=where)
            files.extend([full, full.resolve()])
        edits.append((start, length, "'" + str(full).replace("'", "''") + "'"))
    for start, length, text in sorted(edits, reverse=True):
        data = data[:start] + text.encode("utf-8") + data[start + length :]
    return Localized(data.decode("utf-8"), tuple(files), tuple(folders))


# --------------------------------------------------------------------------- helpers
def _statements(sql: str, *, key: str, where: str) -> list[Any]:
    import duckdb

    try:
        return list(duckdb.extract_statements(sql))
    except duckdb.Error as exc:
        prefix = f"{where}: " if where else ""
        raise StudyError(
            f"{prefix}{key} is not valid SQL: {str(exc).splitlines()[0]}",
            hint="check quotes and parentheses",
            column=key,
        ) from None


def _serialize(sql: str) -> dict[str, Any] | None:
    """DuckDB's parse tree of ``sql`` as JSON (None when it cannot be serialised)."""
    with scratch() as con:
        try:
            text = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
        except Exception:  # any failure means "not a plain SELECT"
            return None
    if not text or text[0] is None:
        return None
    tree: dict[str, Any] = json.loads(text[0])
    if tree.get("error"):
        return None
    return tree


def _is_single_item(tree: dict[str, Any]) -> bool:
    statements = tree.get("statements", [])
    if len(statements) != 1:
        return False
    node = statements[0].get("node", {})
    if node.get("type") != "SELECT_NODE" or node.get("cte_map", {}).get("map"):
        return False
    if len(node.get("select_list", [])) != 1:
        return False
    source = node.get("from_table", {})
    if source.get("type") != "BASE_TABLE" or source.get("table_name") != _PLACEHOLDER:
        return False
    clauses = ("where_clause", "having", "qualify", "sample")
    if any(node.get(c) for c in clauses):
        return False
    groups = node.get("group_expressions") or []
    return not groups and not node.get("modifiers")


def _reads_tables(tree: dict[str, Any]) -> bool:
    """Tell whether a parsed single-expression SELECT reads any table besides its own source."""
    for node in _walk(tree):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            return True
        if kind == "BASE_TABLE" and node.get("table_name") != _PLACEHOLDER:
            return True
    return False


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _path_literals(query: str) -> list[tuple[int, int, str]]:
    """(byte offset, byte length, text) of every file path literal a query reads."""
    tree = _serialize(query)
    if tree is None:
        return []
    found: list[tuple[int, int, str]] = []
    for node in _walk(tree):
        kind = node.get("type")
        if kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if any(ch in name for ch in "./\\*") or "://" in name:
                found.append((node["query_location"], node["query_location_length"], name))
        elif kind == "TABLE_FUNCTION":
            for argument in node.get("function", {}).get("arguments", []):
                expression = argument.get("expression", {})
                items = [expression]
                if expression.get("class") == "FUNCTION" and expression.get("function_name") in (
                    "list_value",
                    "array_value",
                ):
                    items = [a.get("expression", a) for a in expression.get("children", [])]
                    items += [
                        a.get("expression", {}) for a in expression.get("arguments", []) or []
                    ]
                for item in items:
                    text = _constant_text(item)
                    if text is not None:
                        found.append((item["query_location"], item["query_location_length"], text))
    return found


def _constant_text(node: Any) -> str | None:
    if not isinstance(node, dict) or node.get("class") != "CONSTANT":
        return None
    literal = node.get("literal") or {}
    value = node.get("value") or {}
    text = literal.get("text") if isinstance(literal, dict) else None
    if text is None and isinstance(value, dict):
        text = value.get("value")
    return text if isinstance(text, str) else None


def _until_magic(parts: Sequence[str]) -> Iterator[str]:
    for part in parts:
        if glob.has_magic(part):
            return
        yield part


def _only_in_strings(text: str, char: str) -> bool:
    """Tell whether every ``char`` in ``text`` sits inside a single-quoted SQL string."""
    inside = False
    for c in text:
        if c == "'":
            inside = not inside
        elif c == char and not inside:
            return False
    return True
