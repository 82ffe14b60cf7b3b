"""Compile a study's design (study.toml, or a Design built in Python) into a Study.

The design is a :class:`~evalkit.study.design.Design`; the result a
:class:`~evalkit.study.spec.Study`.

The file's structure and types are checked by the pydantic models of
:mod:`evalkit.study.schema` (published as a JSON Schema in the docs); here the design is
checked against the registry, the simulators and the sandbox, defaults are filled in,
and the analyses are expanded (:mod:`evalkit.study.expand`).

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
    Extra tables ``[data.tables.<name>]`` take the same keys; an analysis reads one
    with ``table = "<name>"`` and ``fit_on = "rows"``.
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
    ``<id>.<value>.<value>``; ``fit_on`` (``"cells"``, the default with
    ``[collapse]``, or ``"rows"``) and ``table`` (a ``[data.tables]`` name).

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
    ``notes`` (Markdown shown in the report), ``figures`` (default true), ``units``
    (outcome to its unit), ``marks`` (date to label, drawn on time plots) and
    ``simulated_notes`` (shown only when the data are simulated).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from evalkit.data.collapse import flags, parse_measures
from evalkit.data.sandbox import check_expression, check_select, contain, data_roots, localize
from evalkit.errors import DataError, DesignError
from evalkit.study.design import DESIGN_LABEL, Design, dumps, read_toml
from evalkit.study.expand import _within_unit as _within_unit  # former home
from evalkit.study.expand import analyses, derive_seed
from evalkit.study.locate import Source, check_keys, located
from evalkit.study.schema import MAX_REPS, NAME_PATTERN
from evalkit.study.spec import (
    AnalysisSpec,
    CollapseSpec,
    DataSpec,
    SplitSpec,
    Study,
    Tolerance,
)

__all__ = [
    "MAX_REPS",
    "AnalysisSpec",
    "CollapseSpec",
    "DataSpec",
    "SplitSpec",
    "Study",
    "Tolerance",
    "apply_override",
    "derive_seed",
    "design_hash",
    "load_study",
    "parse_override",
]

STUDY_FILE = "study.toml"
#: Columns compared by ``evalkit verify`` unless [verify] says otherwise.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "estimate": (1e-6, 1e-8),
    "std_error": (1e-6, 1e-8),
}
#: Kept for imports of the former single module.
_Source = Source
_GROUP = NAME_PATTERN


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


def load_study(
    path: str | Path | Design,
    *,
    check_data: bool = True,
    overrides: Mapping[str, Any] | None = None,
    root: str | Path | None = None,
) -> Study:
    """Parse and validate a study; see :func:`evalkit.study.check_study`.

    ``path`` is a study folder, its study.toml, or a :class:`~evalkit.study.design.Design`
    built in Python (then ``root`` is the folder that file paths are relative to and
    where ``out/`` goes; default: the working directory). ``overrides`` replaces design
    values by dotted key before validation, e.g. ``{"data.options.n_persons": 1500000}``
    or ``{"analysis.twfe.inference": "cluster"}`` (an ``[[analysis]]`` table is named by
    its ``id``).
    """
    if isinstance(path, Design):
        folder = Path(root if root is not None else Path.cwd()).expanduser().resolve()
        file = folder / DESIGN_LABEL
        raw = path.to_dict()
        for key, value in (overrides or {}).items():
            apply_override(raw, key, value)
        src = Source(Path(DESIGN_LABEL), dumps(raw))
    else:
        file = find_study_file(path)
        folder = file.parent
        raw, src = read_toml(file)
        for key, value in (overrides or {}).items():
            apply_override(raw, key, value)
    design = Design.from_dict(copy.deepcopy(raw), src)
    return compile_design(design, raw, src, file=file, root=folder, check_data=check_data)


def compile_design(
    design: Design,
    raw: Mapping[str, Any],
    src: Source,
    *,
    file: Path,
    root: Path,
    check_data: bool = True,
) -> Study:
    """Check a validated design against the registry, simulators and sandbox; expand it."""
    given = design.to_dict()
    st = design.study
    name = st.name if st.name is not None else root.name
    seed = st.seed
    level = st.level
    roles = _roles(given.get("roles", {}))
    columns = _derived(src, given.get("columns", {}))
    groups = _groups(src, given.get("groups", {}))
    collapse = _collapse(src, given["collapse"]) if "collapse" in given else None
    data = _data(src, given["data"], root, check_files=check_data)
    tables = {
        t: _data(src, spec, root, check_files=check_data, at=f"data.tables.{t}")
        for t, spec in given["data"].get("tables", {}).items()
    }
    tolerances = _verify(given.get("verify", {}))
    report = design.report
    specs: list[AnalysisSpec] = []
    for i, table in enumerate(given["analysis"]):
        specs.extend(
            analyses(
                src,
                table,
                i,
                roles=roles,
                groups=groups,
                collapse=collapse,
                tables=tables,
                seed=seed,
                level=level,
            )
        )
    seen: set[str] = set()
    for a in specs:
        if a.id in seen:
            raise DesignError(
                f"{src.where('analysis', 'id', a.table_index)}: analysis id {a.id!r} is used twice",
                hint="give every [[analysis]] its own id",
                column="id",
            )
        seen.add(a.id)

    study = Study(
        root=root,
        file=file,
        name=name,
        title=st.title if st.title is not None else name,
        description=st.description or "",
        seed=seed,
        min_cell_size=st.min_cell_size,
        level=level,
        data=data,
        roles=MappingProxyType(roles),
        groups=MappingProxyType(groups),
        collapse=collapse,
        analyses=tuple(specs),
        tolerances=MappingProxyType(tolerances),
        notes=(report.notes if report else None) or "",
        figures=report.figures if report and report.figures is not None else True,
        design_sha256=design_hash(raw),
        raw=MappingProxyType(dict(raw)),
        columns=MappingProxyType(columns),
        tables=MappingProxyType(tables),
        units=MappingProxyType(dict((report.units if report else None) or {})),
        marks=MappingProxyType(dict((report.marks if report else None) or {})),
        simulated_notes=(report.simulated_notes if report else None) or "",
        source=src,
    )
    _check_report(src, study)
    if check_data:
        from evalkit.study.source import check_columns

        check_columns(study, src)
    return study


def _check_report(src: Source, study: Study) -> None:
    """Check ``[report]`` against the design: units name outcomes, marks are times."""
    outcomes = {a.outcome for a in study.analyses if a.outcome}
    if study.collapse is not None:
        outcomes |= {m.name for m in study.collapse.measures}
    for name in study.units:
        if name not in outcomes:
            close = difflib.get_close_matches(name, sorted(outcomes), n=1)
            raise DesignError(
                f"{src.where('report', 'units')}: [report] units names {name!r}, which is "
                "not an outcome of any analysis",
                hint=f"did you mean {close[0]!r}?" if close else f"outcomes: {sorted(outcomes)}",
                column="units",
            )
    for when in study.marks:
        if not re.fullmatch(r"-?\d+(\.\d+)?|\d{4}-\d{2}(-\d{2})?", when):
            raise DesignError(
                f"{src.where('report', 'marks')}: mark {when!r} in [report] marks is not a "
                "time: give a date (YYYY-MM-DD or YYYY-MM) or a number",
                hint='e.g. marks = { "2020-03-01" = "first increase" }',
                column="marks",
            )


def _roles(roles: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(roles)
    if "covariates" in out:
        value = out["covariates"]
        out["covariates"] = (value,) if isinstance(value, str) else tuple(value)
    return out


def _derived(src: Source, table: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, expression in table.items():
        if not _GROUP.match(name):
            raise DesignError(
                f"{src.where('columns', name)}: column name {name!r} must be a plain identifier",
                hint="use letters, digits and underscores",
                column=name,
            )
        example = f"{name} = \"CAST(month >= DATE '2020-03-01' AS INTEGER)\""
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


def _groups(src: Source, groups: Mapping[str, str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {"all": None}
    for name, predicate in groups.items():
        if not _GROUP.match(name):
            raise DesignError(
                f"{src.where('groups', name)}: group name {name!r} must be a plain identifier",
                hint="use letters, digits and underscores",
                column=name,
            )
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


def _collapse(src: Source, table: Mapping[str, Any]) -> CollapseSpec:
    by = table["by"]
    by = [by] if isinstance(by, str) else by
    count = table.get("count", "n")
    try:
        measures = parse_measures(table["measures"])
    except DesignError as err:
        raise located(err, src, "collapse.measures") from None
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
    src: Source, table: Mapping[str, Any], root: Path, check_files: bool, at: str = "data"
) -> DataSpec:
    """One data source (``[data]`` or ``[data.tables.<name>]``, located at ``at``)."""
    kind = next(k for k in ("file", "query", "simulator") if k in table)
    options = table.get("options", {})
    value = table[kind]
    if kind == "file":
        path = contain(value, [root, *data_roots()], key="file", where=src.where(at, "file"))
        if check_files and not path.exists():
            raise DataError(
                f"{src.where(at, 'file')}: data file {value!r} not found in {root}",
                hint="paths are relative to the study folder; or use simulator = ... to run "
                "on simulated data",
                column="file",
            )
        if path.suffix.lower() not in (".csv", ".parquet", ".pq", ".gz", ".txt") and not (
            path.is_dir()
        ):
            raise DesignError(
                f"{src.where(at, 'file')}: cannot tell the format of {value!r}",
                hint="use a .csv or .parquet file, or a DuckDB query",
                column="file",
            )
        return DataSpec("file", file=path)
    if kind == "query":
        if not value.strip():
            raise DesignError(f"{src.where(at, 'query')}: the query is empty", column="query")
        check_select(value, key="query", where=src.where(at, "query"))
        localize(value, [root, *data_roots()], key="query", where=src.where(at, "query"))
        return DataSpec("query", query=value)
    from evalkit import simulate

    try:
        known = simulate.options(value)
    except DesignError as err:
        raise located(err, src, at) from None
    check_keys(src, options, list(known), f"{at}.options", what="simulator option")
    return DataSpec("simulator", simulator=value, options=MappingProxyType(dict(options)))


def _verify(table: Mapping[str, Mapping[str, float]]) -> dict[str, Tolerance]:
    out = {k: Tolerance(*v) for k, v in DEFAULT_TOLERANCES.items()}
    for column, spec in table.items():
        base = out.get(column, Tolerance())
        out[column] = Tolerance(
            float(spec.get("rtol", base.rtol)), float(spec.get("atol", base.atol))
        )
    return out
