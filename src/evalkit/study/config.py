"""Parse and validate a study folder's ``study.toml`` into a :class:`Study`.

Every mistake is reported before anything runs, as a :class:`~evalkit.errors.DesignError`
(or :class:`~evalkit.errors.DataError` for a missing data file) that names the file, the
line where it could be found, the table and the key, and suggests the closest valid key.

The file
--------
``[study]``
    ``name``, ``title``, ``description``, ``seed`` (default 0), ``min_cell_size``
    (default 5), ``level`` (default 0.95).
``[data]``
    Exactly one of ``file`` (CSV or Parquet, relative to the study folder), ``query``
    (DuckDB SQL; file paths in it are relative to the study folder) or ``simulator``
    (a name from :func:`evalkit.simulate.names`) with its ``[data.options]``.
``[roles]``
    ``outcome, unit, time, treatment, cohort, covariates, cluster, weights``: the study's
    default columns for each role.
``[columns]``
    Derived columns: name to a DuckDB SQL expression over the data's columns, e.g.
    ``after_reform = "CAST(month >= DATE '2020-03-01' AS INTEGER)"``. They are added to
    the rows before anything else and can be used wherever a column can (roles, cell
    keys, measures, conditions, ``split_by``).
``[groups]``
    Subgroup name to a DuckDB SQL condition over the rows of the data, e.g.
    ``families_with_children = "family_with_children = 1"``. The group ``all`` (no
    condition) always exists.
``[collapse]``
    ``by`` (cell keys), ``measures`` (see :func:`evalkit.data.collapse.collapse`) and
    ``count`` (default ``"n"``): the data are collapsed to cells, per subgroup, before
    estimation, and estimators are weighted by the count behind each cell value unless
    a ``weights`` role is given.
``[[analysis]]``
    ``id``, ``estimator`` (registry name), ``title``, ``options`` (constructor options;
    role names here override ``[roles]``), ``inference`` (a method name or a table
    ``{method, cluster, reps, ...}``), ``level``, ``seed``, ``group`` (a name from
    ``[groups]``), ``where`` (an extra SQL condition), ``collapse_by`` (the analysis'
    own cell keys in place of ``[collapse] by``, e.g. coarser periods), ``split_by``
    (see below), and ``expand``: a table of lists, e.g. ``{outcome = [...], group =
    [...]}``, that turns the analysis into one per combination, with ids
    ``<id>.<value>.<value>``.

    ``split_by`` adds a group dimension to the analysis' cells (or rows), for
    estimators that compare groups within units (``did.TripleDiff``): a name from
    ``[groups]`` splits every cell into the rows in that group and the rest, as a 0/1
    cell key ``in_<name>``, and sets the estimator's ``group = "in_<name>"`` and
    ``target = 1``; a column of the data is added as a cell key as it is (give
    ``target`` in ``options``). ``group`` still selects the rows, so
    ``group = "non_western"`` with ``split_by = "families_with_children"`` compares
    families with children with other non-Western immigrants.
``[verify]``
    Tolerances by tidy column, e.g. ``estimate = {rtol = 1e-6, atol = 1e-8}``;
    ``estimate`` and ``std_error`` are always compared.
``[report]``
    ``notes`` (Markdown shown in the report) and ``figures`` (default true).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import re
import tomllib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from evalkit.core import registry
from evalkit.core.result import TIDY_COLUMNS, check_level
from evalkit.data.collapse import Measure, flags, parse_measures
from evalkit.data.disclosure import DEFAULT_MIN_CELL_SIZE, check_min_cell_size
from evalkit.data.panel import ROLES
from evalkit.data.sandbox import check_expression, check_select, contain, data_roots, localize
from evalkit.errors import DataError, DesignError, EvalkitError, InferenceNotSupportedError
from evalkit.inference.spec import Inference, method_name
from evalkit.study.locate import Locator as _Source

__all__ = [
    "AnalysisSpec",
    "CollapseSpec",
    "DataSpec",
    "SplitSpec",
    "Study",
    "Tolerance",
    "apply_override",
    "load_study",
    "parse_override",
]

STUDY_FILE = "study.toml"
TOP_KEYS = (
    "study",
    "data",
    "columns",
    "roles",
    "groups",
    "collapse",
    "analysis",
    "verify",
    "report",
)
STUDY_KEYS = ("name", "title", "description", "seed", "min_cell_size", "level")
#: The most replications (bootstrap, placebo, permutation draws) one analysis may ask for.
MAX_REPS = 1_000_000
DATA_KEYS = ("file", "query", "simulator", "options")
COLLAPSE_KEYS = ("by", "measures", "count")
ANALYSIS_KEYS = (
    "id",
    "title",
    "estimator",
    "options",
    "inference",
    "level",
    "seed",
    "group",
    "where",
    "collapse_by",
    "split_by",
    "expand",
    "fit_on",
    "table",
)
#: What an analysis is fitted on: the collapsed cells or the table's rows.
FIT_ON = ("cells", "rows")
#: The key of [data] that holds the extra tables (``[data.tables.<name>]``).
TABLES_KEY = "tables"
#: Analysis keys that describe the study's rows, never estimator options.
STUDY_LEVEL_KEYS = ("group", "where", "split_by")
#: The cell key of ``split_by = "<group>"`` is this prefix plus the group's name.
SPLIT_PREFIX = "in_"

REPORT_KEYS = ("notes", "figures")
TOLERANCE_KEYS = ("rtol", "atol")
VERIFY_COLUMNS = (*TIDY_COLUMNS[1:], "truth")
#: Columns compared by ``evalkit verify`` unless [verify] says otherwise.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "estimate": (1e-6, 1e-8),
    "std_error": (1e-6, 1e-8),
}
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Tolerance:
    """Relative and absolute tolerance for comparing one tidy column in verify."""

    rtol: float = 1e-6
    atol: float = 1e-8

    def close(self, expected: float, actual: float) -> bool:
        """Return True when ``|actual - expected| <= atol + rtol * |expected|``.

        Examples
        --------
        >>> Tolerance(1e-6, 0.0).close(1.0, 1.0000001)
        True
        """
        return abs(actual - expected) <= self.atol + self.rtol * abs(expected)


@dataclass(frozen=True)
class DataSpec:
    """Where a study's data come from: a file, a DuckDB query, or a simulator."""

    kind: str
    file: Path | None = None
    query: str | None = None
    simulator: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self, root: Path | None = None) -> str:
        """One line naming the source."""
        if self.kind == "file":
            shown = self.file.relative_to(root) if root and self.file else self.file
            return f"file {shown}"
        if self.kind == "query":
            return "DuckDB query"
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"simulator {self.simulator}({opts})"


@dataclass(frozen=True)
class CollapseSpec:
    """How microdata are collapsed to cells before estimation."""

    by: tuple[str, ...]
    measures: tuple[Measure, ...]
    count: str = "n"

    @property
    def columns(self) -> list[str]:
        """Every column of the collapsed cells."""
        return [*self.by, *flags(self.measures, self.count)]

    def measure(self, name: str) -> Measure | None:
        """Return the measure named ``name``, or None."""
        return next((m for m in self.measures if m.name == name), None)

    def weight_for(self, outcome: str | None) -> str:
        """Return the count column behind the cell values of ``outcome``."""
        m = self.measure(outcome) if outcome else None
        return (m.count_column if m is not None else None) or self.count


@dataclass(frozen=True)
class SplitSpec:
    """A group dimension added to an analysis' cells or rows (``split_by``).

    Attributes
    ----------
    by
        The value of ``split_by``: a name from ``[groups]`` or a column of the data.
    column
        The column the estimator sees: ``in_<group>`` (1 for rows in the group, 0 for
        the others, missing where the condition is) or the data column itself.
    condition
        The group's SQL condition; None when ``by`` is a column.
    """

    by: str
    column: str
    condition: str | None = None

    @property
    def is_group(self) -> bool:
        """True when the split is by membership of a ``[groups]`` group."""
        return self.condition is not None

    def select(self) -> str:
        """Return the SQL select-list item that adds the split column to the rows.

        Examples
        --------
        >>> SplitSpec("kids", "in_kids", "children > 0").select()
        'CAST((children > 0) AS INTEGER) AS "in_kids"'
        """
        from evalkit.data.collapse import quote

        if self.condition is None:
            return quote(self.column)
        return f"CAST(({self.condition}) AS INTEGER) AS {quote(self.column)}"


@dataclass(frozen=True)
class AnalysisSpec:
    """One analysis after expansion: the estimator, its full configuration, and the rows.

    Attributes
    ----------
    id
        Unique id (``<id>.<value>...`` for expanded analyses).
    family
        The id in study.toml (analyses expanded from one table share it).
    estimator
        Registry name.
    kwargs
        Everything passed to the estimator's constructor (roles and options).
    inference
        The inference spec passed to ``fit`` (None: the estimator chooses).
    group
        Subgroup name (``"all"`` when there is no subgroup condition).
    where
        The SQL condition selecting the analysis' rows (group and ``where`` combined).
    labels
        The expanded values, e.g. ``{"outcome": "work", "group": "all"}``.
    split
        The group dimension added by ``split_by``, or None.
    collapse_by
        The analysis' own cell keys (``collapse_by``), or None for ``[collapse] by``;
        with ``fit_on = "rows"``, the keys within which the rows are averaged.
    fit_on
        ``"cells"`` (the collapsed cells of the main table) or ``"rows"`` (the table's
        rows, averaged within ``collapse_by`` when given).
    table
        The name of the ``[data.tables.<name>]`` the analysis reads; None for ``[data]``.
    """

    id: str
    family: str
    estimator: str
    title: str
    kwargs: Mapping[str, Any]
    inference: Inference | None
    level: float
    seed: int
    group: str
    where: str | None
    custom_where: bool
    labels: Mapping[str, Any]
    table_index: int = 0
    split: SplitSpec | None = None
    collapse_by: tuple[str, ...] | None = None
    fit_on: str = "cells"
    table: str | None = None

    @property
    def outcome(self) -> str | None:
        """The outcome column, when the estimator has one."""
        value = self.kwargs.get("outcome")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, eq=False)
class Study:
    """A parsed and validated study.

    Attributes
    ----------
    root
        The study folder.
    file
        Its study.toml.
    analyses
        The analyses in order, after expansion.
    columns
        Derived columns (``[columns]``): name to SQL expression.
    design_sha256
        SHA-256 of the normalised design (the parsed TOML as canonical JSON): comments
        and layout do not change it.
    """

    root: Path
    file: Path
    name: str
    title: str
    description: str
    seed: int
    min_cell_size: int
    level: float
    data: DataSpec
    roles: Mapping[str, Any]
    groups: Mapping[str, str | None]
    collapse: CollapseSpec | None
    analyses: tuple[AnalysisSpec, ...]
    tolerances: Mapping[str, Tolerance]
    notes: str
    figures: bool
    design_sha256: str
    raw: Mapping[str, Any]
    columns: Mapping[str, str] = field(default_factory=dict)
    tables: Mapping[str, DataSpec] = field(default_factory=dict)

    def cell_keys(self, spec: AnalysisSpec) -> tuple[str, ...]:
        """Return the keys of the cells an analysis is fitted on (none without [collapse])."""
        if self.collapse is None or spec.fit_on != "cells":
            return ()
        keys = spec.collapse_by if spec.collapse_by is not None else self.collapse.by
        return (*keys, spec.split.column) if spec.split is not None else tuple(keys)

    def cell_columns(self, spec: AnalysisSpec) -> list[str]:
        """Return every column of the cells an analysis is fitted on."""
        if self.collapse is None or spec.fit_on != "cells":
            return []
        return [*self.cell_keys(spec), *flags(self.collapse.measures, self.collapse.count)]

    def analysis(self, analysis_id: str) -> AnalysisSpec:
        """Return the analysis with this id."""
        for a in self.analyses:
            if a.id == analysis_id:
                return a
        raise DesignError(f"no analysis {analysis_id!r} in {self.file}", column="id")


# --------------------------------------------------------------------------- locating
def _table_name(table: str, index: int | None) -> str:
    if not table:
        return "the file"
    if index is None:
        return f"[{table}]"
    return f"[[{table}]] #{index + 1}" if "." not in table else f"[{table}] (analysis #{index + 1})"


def _unknown_keys(
    src: _Source,
    given: Mapping[str, Any],
    allowed: Sequence[str],
    table: str,
    index: int | None = None,
    what: str = "key",
) -> None:
    for key in given:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DesignError(
            f"{src.where(table, key, index)}: unknown {what} {key!r} in "
            f"{_table_name(table, index)}",
            hint=hint + f"allowed: {', '.join(allowed)}",
            column=str(key),
        )


def _expect(
    src: _Source,
    value: Any,
    kinds: type | tuple[type, ...],
    table: str,
    key: str,
    index: int | None = None,
    example: str = "",
) -> Any:
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in _tuple(kinds))
    if not ok:
        names = " or ".join(k.__name__ for k in _tuple(kinds))
        raise DesignError(
            f"{src.where(table, key, index)}: {key} in {_table_name(table, index)} must be "
            f"{names}, got {value!r}",
            hint=f"e.g. {example}" if example else None,
            column=key,
        )
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


# --------------------------------------------------------------------------- parsing
def parse_override(text: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE`` (the CLI's ``--set``); the value is read as TOML, else as text.

    Examples
    --------
    >>> parse_override("data.options.n_persons=1500000")
    ('data.options.n_persons', 1500000)
    >>> parse_override("study.title=A longer run")
    ('study.title', 'A longer run')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise DesignError(
            f"--set needs KEY=VALUE, got {text!r}",
            hint="e.g. --set data.options.n_persons=1500000",
            column="set",
        )
    try:
        parsed: Any = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` of a parsed study.toml to ``value`` (in place).

    Examples
    --------
    >>> raw = {"data": {"simulator": "x"}, "analysis": [{"id": "a", "estimator": "e"}]}
    >>> apply_override(raw, "data.options.n_persons", 10)
    >>> apply_override(raw, "analysis.a.inference", "cluster")
    >>> raw["data"]["options"], raw["analysis"][0]["inference"]
    ({'n_persons': 10}, 'cluster')
    """
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if part == "analysis" and i == 0:
            tables = raw.get("analysis", [])
            ids = [t.get("id") for t in tables if isinstance(t, dict)]
            if len(parts) < 3 or parts[1] not in ids:
                close = difflib.get_close_matches(parts[1] if len(parts) > 1 else "", ids, n=1)
                raise DesignError(
                    f"--set {key}: no [[analysis]] with id {parts[1] if len(parts) > 1 else ''!r}",
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + "name an analysis as analysis.<id>.<key>",
                    column="set",
                )
            node = tables[ids.index(parts[1])]
            rest = parts[2:-1]
            for sub in rest:
                node = node.setdefault(sub, {})
            break
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise DesignError(
                f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a table",
                hint="name a key inside a table, e.g. data.options.n_persons",
                column="set",
            )
    node[parts[-1]] = value


def find_study_file(path: str | Path) -> Path:
    """Return the study.toml of a study folder (or the file itself when given)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / STUDY_FILE
    if not p.is_file():
        raise DesignError(
            f"no study file at {str(p)!r}",
            hint="a study is a folder with a study.toml; pass the folder or the file",
            column="study",
        )
    return p.resolve()


def design_hash(raw: Mapping[str, Any]) -> str:
    """SHA-256 of a parsed study.toml as canonical JSON (comments and layout ignored).

    Examples
    --------
    >>> design_hash({"b": 1, "a": [1, 2]}) == design_hash({"a": [1, 2], "b": 1})
    True
    """
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def derive_seed(study_seed: int, analysis_id: str) -> int:
    """Return the seed of one analysis, fixed by the study seed and the analysis id.

    It does not depend on the order of the analyses, so adding one leaves the others'
    results unchanged.

    Examples
    --------
    >>> derive_seed(1, "a") == derive_seed(1, "a") != derive_seed(1, "b")
    True
    """
    ss = np.random.SeedSequence([int(study_seed), zlib.crc32(analysis_id.encode("utf-8"))])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def load_study(
    path: str | Path, *, check_data: bool = True, overrides: Mapping[str, Any] | None = None
) -> Study:
    """Parse and validate a study; see :func:`evalkit.study.check_study`.

    ``overrides`` replaces design values by dotted key before validation, e.g.
    ``{"data.options.n_persons": 1500000}`` or ``{"analysis.twfe.inference": "cluster"}``
    (an ``[[analysis]]`` table is named by its ``id``).
    """
    file = find_study_file(path)
    root = file.parent
    text = file.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DesignError(
            f"{file}: not valid TOML: {exc}",
            hint="check quotes, brackets and commas on the line named",
            column="study.toml",
        ) from None
    for key, value in (overrides or {}).items():
        apply_override(raw, key, value)
    src = _Source(file, text)
    _unknown_keys(src, raw, TOP_KEYS, "", what="table")

    st = raw.get("study", {})
    _expect(src, st, dict, "study", "study")
    _unknown_keys(src, st, STUDY_KEYS, "study")
    name = _expect(src, st.get("name", root.name), str, "study", "name", example='name = "x"')
    title = _expect(src, st.get("title", name), str, "study", "title")
    description = _expect(src, st.get("description", ""), str, "study", "description")
    seed = _expect(src, st.get("seed", 0), int, "study", "seed", example="seed = 12345")
    if seed < 0:
        raise DesignError(f"{src.where('study', 'seed')}: seed must be >= 0", column="seed")
    try:
        min_cell = check_min_cell_size(st.get("min_cell_size", DEFAULT_MIN_CELL_SIZE))
        level = check_level(st.get("level", 0.95))
    except DesignError as err:
        raise _located(err, src, "study") from None

    roles = _roles(src, raw.get("roles", {}))
    columns = _derived(src, raw.get("columns", {}))
    groups = _groups(src, raw.get("groups", {}))
    collapse = _collapse(src, raw["collapse"]) if "collapse" in raw else None
    data = _data(src, _main_data(raw.get("data")), root, check_files=check_data)
    data_tables = _tables(src, raw.get("data"), root, check_files=check_data)
    tolerances = _verify(src, raw.get("verify", {}))
    rep = _expect(src, raw.get("report", {}), dict, "report", "report")
    _unknown_keys(src, rep, REPORT_KEYS, "report")
    notes = _expect(src, rep.get("notes", ""), str, "report", "notes")
    figures = _expect(src, rep.get("figures", True), bool, "report", "figures")

    tables = raw.get("analysis", [])
    if isinstance(tables, dict):
        tables = [tables]
    if not isinstance(tables, list) or not tables:
        raise DesignError(
            f"{file}: the study has no [[analysis]] tables",
            hint='add e.g.\n[[analysis]]\nid = "twfe"\nestimator = "did.TWFE"',
            column="analysis",
        )
    analyses: list[AnalysisSpec] = []
    for i, table in enumerate(tables):
        analyses.extend(
            _analyses(
                src,
                table,
                i,
                roles=roles,
                groups=groups,
                collapse=collapse,
                seed=seed,
                level=level,
                tables=data_tables,
            )
        )
    seen: dict[str, int] = {}
    for a in analyses:
        if a.id in seen:
            raise DesignError(
                f"{src.where('analysis', 'id', a.table_index)}: analysis id {a.id!r} is used twice",
                hint="give every [[analysis]] its own id",
                column="id",
            )
        seen[a.id] = 1

    study = Study(
        root=root,
        file=file,
        name=name,
        title=title,
        description=description,
        seed=seed,
        min_cell_size=min_cell,
        level=level,
        data=data,
        roles=MappingProxyType(roles),
        groups=MappingProxyType(groups),
        collapse=collapse,
        analyses=tuple(analyses),
        tolerances=MappingProxyType(tolerances),
        notes=notes,
        figures=figures,
        design_sha256=design_hash(raw),
        raw=MappingProxyType(raw),
        columns=MappingProxyType(columns),
        tables=MappingProxyType(data_tables),
    )
    if check_data:
        from evalkit.study.source import check_columns

        check_columns(study, src)
    return study


def _located(err: EvalkitError, src: _Source, table: str, index: int | None = None) -> Exception:
    where = src.where(table, err.column, index)
    return type(err)(f"{where}: {err.message}", hint=err.hint, code=err.code, column=err.column)


def _roles(src: _Source, roles: Any) -> dict[str, Any]:
    _expect(src, roles, dict, "roles", "roles")
    _unknown_keys(src, roles, ROLES, "roles", what="role")
    out: dict[str, Any] = {}
    for role, value in roles.items():
        if role == "covariates":
            value = [value] if isinstance(value, str) else value
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            if not ok:
                raise DesignError(
                    f"{src.where('roles', role)}: covariates must be a list of column names",
                    hint='e.g. covariates = ["age", "female"]',
                    column=role,
                )
            out[role] = tuple(value)
        else:
            out[role] = _expect(src, value, str, "roles", role, example=f'{role} = "column"')
    return out


def _derived(src: _Source, table: Any) -> dict[str, str]:
    _expect(src, table, dict, "columns", "columns")
    out: dict[str, str] = {}
    for name, expression in table.items():
        if not _GROUP.match(name):
            raise DesignError(
                f"{src.where('columns', name)}: column name {name!r} must be a plain identifier",
                hint="use letters, digits and underscores",
                column=name,
            )
        example = f"{name} = \"CAST(month >= DATE '2020-03-01' AS INTEGER)\""
        _expect(src, expression, str, "columns", name, example=example)
        text = " ".join(expression.split())
        if not text:
            raise DesignError(
                f"{src.where('columns', name)}: column {name!r} has an empty expression",
                hint=f"e.g. {example}",
                column=name,
            )
        check_expression(text, key=f"[columns] {name}", where=src.where("columns", name))
        out[name] = text
    return out


def _groups(src: _Source, groups: Any) -> dict[str, str | None]:
    _expect(src, groups, dict, "groups", "groups")
    out: dict[str, str | None] = {"all": None}
    for name, predicate in groups.items():
        if not _GROUP.match(name):
            raise DesignError(
                f"{src.where('groups', name)}: group name {name!r} must be a plain identifier",
                hint="use letters, digits and underscores",
                column=name,
            )
        _expect(src, predicate, str, "groups", name, example=f'{name} = "column = 1"')
        text = " ".join(predicate.split())
        if name == "all" and text.lower() not in ("", "true"):
            raise DesignError(
                f"{src.where('groups', name)}: the group 'all' means every row",
                hint="give a subgroup another name",
                column=name,
            )
        out[name] = None if text.lower() in ("", "true") else text
        if out[name] is not None:
            check_expression(text, key=f"[groups] {name}", where=src.where("groups", name))
    return out


def _collapse(src: _Source, table: Any) -> CollapseSpec:
    _expect(src, table, dict, "collapse", "collapse")
    _unknown_keys(src, table, COLLAPSE_KEYS, "collapse")
    by = table.get("by")
    if isinstance(by, str):
        by = [by]
    if not isinstance(by, list) or not by or not all(isinstance(b, str) for b in by):
        raise DesignError(
            f"{src.where('collapse', 'by')}: [collapse] needs by = a list of cell keys",
            hint='e.g. by = ["city", "month", "treated"]',
            column="by",
        )
    count = _expect(src, table.get("count", "n"), str, "collapse", "count")
    if "measures" not in table:
        raise DesignError(
            f"{src.where('collapse')}: [collapse] needs measures",
            hint='e.g. [collapse.measures]\nwork = "mean"',
            column="measures",
        )
    try:
        measures = parse_measures(table["measures"])
    except DesignError as err:
        raise _located(err, src, "collapse.measures") from None
    for m in measures:
        if m.where:
            check_expression(
                m.where,
                key=f"[collapse.measures] {m.name} where",
                where=src.where("collapse.measures", m.name),
            )
    names = [*by, *flags(measures, count)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DesignError(
            f"{src.where('collapse')}: cell column {dup[0]!r} would appear twice",
            hint="rename the measure or the count column",
            column=dup[0],
        )
    return CollapseSpec(tuple(by), measures, count)


def _data(
    src: _Source, table: Any, root: Path, check_files: bool, section: str = "data"
) -> DataSpec:
    if table is None:
        raise DesignError(
            f"{src.file}: the study names no data ([data] is missing)",
            hint='add [data] with file = "extract.parquet", query = "SELECT ...", or '
            'simulator = "bergen_rates"',
            column="data",
        )
    _expect(src, table, dict, section, "data")
    _unknown_keys(src, table, DATA_KEYS, section)
    kinds = [k for k in ("file", "query", "simulator") if k in table]
    if len(kinds) != 1:
        raise DesignError(
            f"{src.where(section)}: [{section}] needs exactly one of file, query or simulator"
            + (f" (found {', '.join(kinds)})" if kinds else ""),
            hint='e.g. simulator = "bergen_rates" for simulated data',
            column="data",
        )
    kind = kinds[0]
    options = _expect(src, table.get("options", {}), dict, section, "options")
    if options and kind != "simulator":
        raise DesignError(
            f"{src.where(section, 'options')}: [{section}.options] applies to simulators only",
            hint="filter or transform files with a DuckDB query instead",
            column="options",
        )
    value = _expect(src, table[kind], str, section, kind, example=f'{kind} = "..."')
    if kind == "file":
        path = contain(value, [root, *data_roots()], key="file", where=src.where(section, "file"))
        if check_files and not path.exists():
            raise DataError(
                f"{src.where(section, 'file')}: data file {value!r} not found in {root}",
                hint="paths are relative to the study folder; or use simulator = ... to run "
                "on simulated data",
                column="file",
            )
        if path.suffix.lower() not in (".csv", ".parquet", ".pq", ".gz", ".txt") and not (
            path.is_dir()
        ):
            raise DesignError(
                f"{src.where(section, 'file')}: cannot tell the format of {value!r}",
                hint="use a .csv or .parquet file, or a DuckDB query",
                column="file",
            )
        return DataSpec("file", file=path)
    if kind == "query":
        if not value.strip():
            raise DesignError(f"{src.where(section, 'query')}: the query is empty", column="query")
        check_select(value, key="query", where=src.where(section, "query"))
        localize(value, [root, *data_roots()], key="query", where=src.where(section, "query"))
        return DataSpec("query", query=value)
    from evalkit import simulate

    try:
        known = simulate.options(value)
    except DesignError as err:
        raise _located(err, src, section) from None
    _unknown_keys(src, options, list(known), f"{section}.options", what="simulator option")
    return DataSpec("simulator", simulator=value, options=MappingProxyType(dict(options)))


def _main_data(table: Any) -> Any:
    """Return [data] without its extra tables (``[data.tables.<name>]``)."""
    if not isinstance(table, dict) or TABLES_KEY not in table:
        return table
    return {k: v for k, v in table.items() if k != TABLES_KEY}


def _tables(src: _Source, table: Any, root: Path, check_files: bool) -> dict[str, DataSpec]:
    """Parse ``[data.tables.<name>]``: extra tables, each with the keys of [data]."""
    if not isinstance(table, dict) or TABLES_KEY not in table:
        return {}
    given = _expect(src, table[TABLES_KEY], dict, "data.tables", "tables")
    out: dict[str, DataSpec] = {}
    for name, spec in given.items():
        section = f"data.tables.{name}"
        if not _GROUP.match(name):
            raise DesignError(
                f"{src.where(section)}: table name {name!r} must be a plain identifier",
                hint="use letters, digits and underscores, e.g. [data.tables.persons]",
                column=name,
            )
        out[name] = _data(src, spec, root, check_files, section=section)
    return out


def _fit_on(
    src: _Source,
    table: Mapping[str, Any],
    index: int,
    collapse: CollapseSpec | None,
    tables: Mapping[str, DataSpec],
) -> tuple[str, str | None]:
    """Return an analysis' ``fit_on`` and ``table`` (None: the main [data]), validated."""
    name = table.get("table")
    if name is not None:
        _expect(src, name, str, "analysis", "table", index, example='table = "persons"')
        if name not in tables:
            close = difflib.get_close_matches(name, list(tables), n=1)
            raise DesignError(
                f"{src.where('analysis', 'table', index)}: table {name!r} is not defined",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"define it as [data.tables.{name}] (with file, query or simulator)"
                + (f"; tables: {', '.join(tables)}" if tables else ""),
                column="table",
            )
    default = "cells" if collapse is not None and name is None else "rows"
    fit_on = _expect(
        src, table.get("fit_on", default), str, "analysis", "fit_on", index, 'fit_on = "rows"'
    )
    where = src.where("analysis", "fit_on", index)
    if fit_on not in FIT_ON:
        close = difflib.get_close_matches(fit_on, FIT_ON, n=1)
        raise DesignError(
            f"{where}: fit_on must be one of {', '.join(map(repr, FIT_ON))}, got {fit_on!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + '"cells": the collapsed cells of [collapse]; "rows": the rows of the table',
            column="fit_on",
        )
    if fit_on == "cells" and collapse is None:
        raise DesignError(
            f'{where}: fit_on = "cells" needs [collapse] (its cell keys and measures)',
            hint='add [collapse], or use fit_on = "rows" (with collapse_by to average rows '
            "within keys)",
            column="fit_on",
        )
    if fit_on == "cells" and name is not None:
        raise DesignError(
            f'{where}: fit_on = "cells" with table = {name!r}: [collapse] applies to the '
            "main [data] only",
            hint=f'use fit_on = "rows" on table {name!r} (collapse_by averages its rows '
            "within keys), or drop table to use the main data's cells",
            column="fit_on",
        )
    return fit_on, name


def _verify(src: _Source, table: Any) -> dict[str, Tolerance]:
    _expect(src, table, dict, "verify", "verify")
    _unknown_keys(src, table, VERIFY_COLUMNS, "verify", what="column")
    out = {k: Tolerance(*v) for k, v in DEFAULT_TOLERANCES.items()}
    for column, spec in table.items():
        _expect(src, spec, dict, "verify", column, example=f"{column} = {{rtol = 1e-6}}")
        _unknown_keys(src, spec, TOLERANCE_KEYS, "verify", what=f"tolerance of {column}")
        base = out.get(column, Tolerance())
        values = {}
        for k in TOLERANCE_KEYS:
            v = spec.get(k, getattr(base, k))
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise DesignError(
                    f"{src.where('verify', column)}: {column}.{k} must be a number >= 0",
                    column=column,
                )
            values[k] = float(v)
        out[column] = Tolerance(**values)
    return out


def _inference(
    src: _Source, value: Any, index: int, cls: type, name: str, analysis_id: str
) -> Inference | None:
    if value is None:
        return None
    supported = tuple(getattr(cls, "supported_inference", ()))
    try:
        if isinstance(value, str):
            spec = Inference(method_name(value, supported or None))
        elif isinstance(value, dict):
            if "method" not in value:
                raise DesignError(
                    "an inference table needs a method",
                    hint='e.g. inference = {method = "wild", reps = 999}',
                    column="inference",
                )
            reps = value.get("reps")
            if isinstance(reps, int) and reps > MAX_REPS:
                raise DesignError(
                    f"reps = {reps} is more replications than a study may ask for "
                    f"(at most {MAX_REPS:,})",
                    hint="9,999 draws give p-values to about 0.002; use reps = 9999",
                    column="inference",
                )
            rest = {k: v for k, v in value.items() if k not in ("method", "cluster", "reps")}
            spec = Inference(
                value["method"],
                cluster=value.get("cluster"),
                reps=value.get("reps"),
                options=rest,
            )
        else:
            raise DesignError(
                f"inference must be a method name or a table, got {value!r}",
                hint='e.g. inference = "cr2"',
                column="inference",
            )
        spec = spec.typed()
    except DesignError as err:
        raise _located(err, src, "analysis", index) from None
    if supported and spec.method not in supported:
        raise InferenceNotSupportedError(
            f"{src.where('analysis', 'inference', index)}: analysis {analysis_id!r}: {name} "
            f"does not support inference={spec.method!r}",
            hint=f"supported: {', '.join(supported)}",
            column="inference",
        )
    return spec


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    if dataclasses.is_dataclass(cls):
        return {f.name: f for f in dataclasses.fields(cls) if f.init}
    import inspect

    params = inspect.signature(cls).parameters
    return {k: None for k in params if k != "self"}  # type: ignore[misc]


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _analyses(
    src: _Source,
    table: Any,
    index: int,
    *,
    roles: Mapping[str, Any],
    groups: Mapping[str, str | None],
    collapse: CollapseSpec | None,
    seed: int,
    level: float,
    tables: Mapping[str, DataSpec] | None = None,
) -> list[AnalysisSpec]:
    _expect(src, table, dict, "analysis", "analysis", index)
    _unknown_keys(src, table, ANALYSIS_KEYS, "analysis", index)
    if "id" not in table:
        raise DesignError(
            f"{src.where('analysis', None, index)}: [[analysis]] #{index + 1} has no id",
            hint='add id = "a_short_name"',
            column="id",
        )
    base = _expect(src, table["id"], str, "analysis", "id", index)
    if not _ID.match(base):
        raise DesignError(
            f"{src.where('analysis', 'id', index)}: analysis id {base!r} may only contain "
            "letters, digits, '_', '-' and '.'",
            column="id",
        )
    if "estimator" not in table:
        raise DesignError(
            f"{src.where('analysis', None, index)}: analysis {base!r} names no estimator",
            hint=f'e.g. estimator = "did.TWFE"; available: {", ".join(registry.names())}',
            column="estimator",
        )
    name = _expect(src, table["estimator"], str, "analysis", "estimator", index)
    try:
        cls = registry.get(name)
    except DesignError as err:
        raise DesignError(
            f"{src.where('analysis', 'estimator', index)}: analysis {base!r}: {err.message}",
            hint=err.hint,
            column="estimator",
        ) from None
    fields = _fields(cls)
    options = dict(_expect(src, table.get("options", {}), dict, "analysis", "options", index))
    _unknown_keys(src, options, sorted(fields), "analysis.options", index, what=f"{name} option")
    expand = _expect(src, table.get("expand", {}), dict, "analysis", "expand", index)
    allowed_expand = sorted({*fields, *STUDY_LEVEL_KEYS})
    if "collapse_by" in expand:
        raise DesignError(
            f"{src.where('analysis.expand', 'collapse_by', index)}: collapse_by cannot be expanded",
            hint="write one [[analysis]] per set of cell keys",
            column="collapse_by",
        )
    _unknown_keys(src, expand, allowed_expand, "analysis.expand", index, what="expand key")
    for key, values in expand.items():
        if not isinstance(values, list) or not values or not all(map(_scalar, values)):
            raise DesignError(
                f"{src.where('analysis.expand', key, index)}: expand.{key} must be a "
                "non-empty list of values",
                hint=f'e.g. {key} = ["a", "b"]',
                column=key,
            )
        clash = key in options or (key in STUDY_LEVEL_KEYS and key in table)
        if clash:
            raise DesignError(
                f"{src.where('analysis.expand', key, index)}: {key!r} is given both in "
                "expand and directly",
                hint="keep one",
                column=key,
            )
    fit_on, table_name = _fit_on(src, table, index, collapse, tables or {})
    cells = collapse if fit_on == "cells" else None  # the collapse behind this analysis
    collapse_by = _collapse_by(src, table.get("collapse_by"), index, cells, rows=cells is None)
    title = _expect(src, table.get("title", base), str, "analysis", "title", index)
    a_level = table.get("level", level)
    try:
        a_level = check_level(a_level)
    except DesignError as err:
        raise _located(err, src, "analysis", index) from None
    explicit_seed = table.get("seed")
    if explicit_seed is not None:
        _expect(src, explicit_seed, int, "analysis", "seed", index)
    inference = _inference(src, table.get("inference"), index, cls, name, base)

    keys = list(expand)
    combos = list(itertools.product(*(expand[k] for k in keys))) if keys else [()]
    out = []
    for combo in combos:
        labels = dict(zip(keys, combo, strict=True))
        aid = ".".join([base, *(str(v) for v in combo)])
        group = labels.get("group", table.get("group", "all"))
        _expect(src, group, str, "analysis", "group", index)
        if group not in groups:
            close = difflib.get_close_matches(group, list(groups), n=1)
            raise DesignError(
                f"{src.where('analysis', 'group', index)}: analysis {aid!r} uses group "
                f"{group!r}, which [groups] does not define",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"groups: {', '.join(groups)}",
                column="group",
            )
        extra = labels.get("where", table.get("where"))
        if extra is not None:
            _expect(src, extra, str, "analysis", "where", index)
            check_expression(extra, key="where", where=src.where("analysis", "where", index))
        conditions = [c for c in (groups[group], extra) if c]
        where = " AND ".join(f"({c})" for c in conditions) if len(conditions) > 1 else None
        if len(conditions) == 1:
            where = " ".join(conditions[0].split())
        kwargs: dict[str, Any] = {r: v for r, v in roles.items() if r in fields}
        kwargs.update(options)
        kwargs.update(
            {k: v for k, v in labels.items() if k in fields and k not in STUDY_LEVEL_KEYS}
        )
        split = _split(
            src,
            labels.get("split_by", table.get("split_by")),
            index,
            aid=aid,
            name=name,
            fields=fields,
            options=options,
            groups=groups,
            group=group,
            collapse=cells,
            keys=collapse_by,
        )
        if split is not None:
            kwargs["group"] = split.column
            if split.is_group:
                kwargs["target"] = 1
        if cells is not None and "weights" in fields and kwargs.get("weights") is None:
            kwargs["weights"] = cells.weight_for(kwargs.get("outcome"))
        if isinstance(kwargs.get("covariates"), list):
            kwargs["covariates"] = tuple(kwargs["covariates"])
        missing = [
            k
            for k, f in fields.items()
            if f is not None
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and k not in kwargs
        ]
        if missing:
            hint = "set it in [roles], in the analysis options, or in expand"
            if "group" in missing:
                hint = (
                    'compare groups within units with split_by = "<a [groups] name>" (or '
                    "a column, with options.target), or set options.group and options.target"
                )
            raise DesignError(
                f"{src.where('analysis', None, index)}: analysis {aid!r}: {name} needs "
                f"{', '.join(missing)}",
                hint=hint,
                column=missing[0],
            )
        try:
            cls(**kwargs)
        except EvalkitError as err:
            raise _located(err, src, "analysis", index) from None
        except TypeError as exc:
            raise DesignError(
                f"{src.where('analysis', None, index)}: analysis {aid!r}: {name} rejects its "
                f"options: {exc}",
                column="options",
            ) from None
        out.append(
            AnalysisSpec(
                id=aid,
                family=base,
                estimator=name,
                title=title,
                kwargs=MappingProxyType(kwargs),
                inference=inference,
                level=a_level,
                seed=explicit_seed if explicit_seed is not None else derive_seed(seed, aid),
                group=group,
                where=where,
                custom_where=extra is not None,
                labels=MappingProxyType(labels),
                table_index=index,
                split=split,
                collapse_by=collapse_by,
                fit_on=fit_on,
                table=table_name,
            )
        )
    return out


def _collapse_by(
    src: _Source, value: Any, index: int, collapse: CollapseSpec | None, rows: bool = False
) -> tuple[str, ...] | None:
    """Validate an analysis' own cell keys (with ``rows``: the keys rows are averaged in)."""
    if value is None:
        return None
    where = src.where("analysis", "collapse_by", index)
    if collapse is None and not rows:
        raise DesignError(
            f"{where}: collapse_by needs [collapse] (its measures and count)",
            hint="add [collapse] with by and measures, or drop collapse_by",
            column="collapse_by",
        )
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise DesignError(
            f"{where}: collapse_by must be a list of cell keys",
            hint='e.g. collapse_by = ["city", "after_reform", "treated"]',
            column="collapse_by",
        )
    dup = sorted({v for v in value if value.count(v) > 1})
    if dup:
        raise DesignError(
            f"{where}: collapse_by names {dup[0]!r} twice",
            hint="name each key once",
            column="collapse_by",
        )
    clash = (
        []
        if collapse is None
        else [v for v in value if v in flags(collapse.measures, collapse.count)]
    )
    if clash:
        raise DesignError(
            f"{where}: cell key {clash[0]!r} is also a measure or count column of [collapse]",
            hint="rename the measure or the count column",
            column="collapse_by",
        )
    return tuple(value)


def _within_unit() -> str:
    """Name the registered estimators that compare groups within units (for hints)."""
    return ", ".join(n for n in registry.names() if registry.get(n).within_unit)


def _split(
    src: _Source,
    value: Any,
    index: int,
    *,
    aid: str,
    name: str,
    fields: Mapping[str, Any],
    options: Mapping[str, Any],
    groups: Mapping[str, str | None],
    group: str,
    collapse: CollapseSpec | None,
    keys: tuple[str, ...] | None = None,
) -> SplitSpec | None:
    """Validate ``split_by`` of one analysis and return its :class:`SplitSpec`."""
    if value is None:
        return None
    key = "split_by"
    _expect(src, value, str, "analysis", key, index, example='split_by = "families_with_children"')
    where = src.where("analysis", key, index)
    if "group" not in fields or "target" not in fields:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by adds a group dimension to the cells, "
            f"but {name} does not compare groups (it has no group and target options)",
            hint=f"use an estimator that compares groups within units ({_within_unit()}), "
            'or select rows with group = "..."',
            column=key,
        )
    if "group" in options:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by and options.group both name the group column",
            hint="keep split_by (it sets group) or drop it and give options.group",
            column=key,
        )
    if value not in groups:
        # a column of the data (checked against the columns when they can be read)
        names = [g for g in groups if g != "all"]
        if not _GROUP.match(value) or "target" not in options:
            close = difflib.get_close_matches(value, names, n=1)
            raise DesignError(
                f"{where}: split_by {value!r} is neither a [groups] name nor a column with "
                "options.target",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"groups: {', '.join(names) or '(none)'}; to split by a column of the "
                "data, give the targeted value(s) in options.target",
                column=key,
            )
        return SplitSpec(value, value)
    if groups[value] is None:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by {value!r} puts every row in one group, "
            "leaving none to compare with",
            hint=f"split by a subgroup: {', '.join(g for g in groups if g != 'all')}",
            column=key,
        )
    if value == group:
        raise DesignError(
            f"{where}: analysis {aid!r} selects the rows of group {value!r} and splits them "
            f"by the same group, leaving none to compare with",
            hint='use group = "all" (or another group) to choose the rows',
            column=key,
        )
    if "target" in options:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by = {value!r} compares the rows in that "
            "group (target 1) with the rest; options.target is not needed",
            hint="remove options.target",
            column="target",
        )
    column = SPLIT_PREFIX + value
    cell_columns = [] if collapse is None else [*(keys or collapse.by), *collapse.columns]
    if column in cell_columns:
        raise DesignError(
            f"{where}: split_by {value!r} would add cell column {column!r}, which [collapse] "
            "already makes",
            hint="rename the measure, the count or the cell key",
            column=key,
        )
    return SplitSpec(value, column, groups[value])
