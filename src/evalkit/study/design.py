"""A study design as a Python object: built in code, read from and written to study.toml.

:class:`Design` is the whole of study.toml as one pydantic model (the tables are in
:mod:`evalkit.study.schema`). A design can be built in Python, written as TOML, read
back, and run without a file:

>>> from evalkit.study.design import Analysis, Collapse, Data, Design, Roles, StudyInfo
>>> design = Design(
...     study=StudyInfo(name="tiny", seed=7),
...     data=Data(simulator="bergen_rates", options={"n_persons": 500}),
...     roles=Roles(unit="city", time="month", treatment="treated"),
...     collapse=Collapse(by=["city", "month", "treated"], measures={"work": "mean"}),
...     analyses=[Analysis(id="twfe", estimator="did.TWFE", options={"outcome": "work"})],
... )
>>> print(design.to_toml())  # doctest: +NORMALIZE_WHITESPACE
[study]
name = "tiny"
seed = 7
<BLANKLINE>
[data]
simulator = "bergen_rates"
options = {n_persons = 500}
<BLANKLINE>
[roles]
unit = "city"
time = "month"
treatment = "treated"
<BLANKLINE>
[collapse]
by = ["city", "month", "treated"]
measures = {work = "mean"}
<BLANKLINE>
[[analysis]]
id = "twfe"
estimator = "did.TWFE"
options = {outcome = "work"}
>>> Design.from_text(design.to_toml()) == design
True

``evalkit.study.run_study(design, root=folder)`` runs it (file paths in ``[data]`` are
relative to ``root``). Only the keys that were given are written, so a study.toml read
and written back holds the same values (comments and layout are not kept).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from evalkit.errors import DesignError
from evalkit.study.locate import Source, table_name, unknown_key
from evalkit.study.schema import (
    Analysis,
    Collapse,
    Data,
    DataSource,
    InferenceTable,
    MeasureTable,
    Report,
    Roles,
    StudyInfo,
    ToleranceTable,
    Verify,
    _Table,
)

__all__ = [
    "Analysis",
    "Collapse",
    "Data",
    "DataSource",
    "Design",
    "InferenceTable",
    "MeasureTable",
    "Report",
    "Roles",
    "StudyInfo",
    "ToleranceTable",
    "Verify",
    "dumps",
    "json_schema",
    "read_toml",
]

DESIGN_LABEL = "<design>"


class Design(_Table):
    """A whole study design: the tables of study.toml (``analyses`` is ``[[analysis]]``)."""

    study: StudyInfo = Field(default_factory=lambda: StudyInfo(), description="[study]")
    data: Data = Field(description="[data]: where the rows come from.")
    columns: dict[str, str] | None = Field(
        default=None, description="Derived columns: name to a DuckDB SQL expression over the rows."
    )
    roles: Roles | None = Field(default=None, description="The study's default column per role.")
    groups: dict[str, str] | None = Field(
        default=None, description="Subgroup name to a DuckDB SQL condition; 'all' always exists."
    )
    collapse: Collapse | None = Field(default=None, description="Collapse rows to cells first.")
    analyses: list[Analysis] = Field(alias="analysis", min_length=1)
    verify: Verify | None = Field(default=None, description="Tolerances of evalkit verify.")
    report: Report | None = None

    @field_validator("analyses", mode="before")
    @classmethod
    def _one_table(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    # ------------------------------------------------------------------ TOML
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], src: Source | None = None) -> Design:
        """Validate a parsed study.toml; errors name the line in ``src`` (when given)."""
        try:
            return cls.model_validate(raw, by_name=False)
        except ValidationError as exc:
            located = src or Source(Path(DESIGN_LABEL), dumps(raw))
            raise design_error(exc, located) from None

    @classmethod
    def from_text(cls, text: str, file: str | Path = DESIGN_LABEL) -> Design:
        """Parse and validate the text of a study.toml."""
        raw = loads(text, Path(file))
        return cls.from_dict(raw, Source(Path(file), text))

    @classmethod
    def from_toml(cls, path: str | Path) -> Design:
        """Read and validate a study.toml (or a study folder's)."""
        file = Path(path)
        file = file / "study.toml" if file.is_dir() else file
        return cls.from_text(file.read_text(encoding="utf-8"), file)

    def to_dict(self) -> dict[str, Any]:
        """Return the design as study.toml holds it: the keys given, by their TOML names."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)

    def to_toml(self, path: str | Path | None = None) -> str:
        """Return the design as study.toml text; also write it to ``path`` when given."""
        text = dumps(self.to_dict())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


# --------------------------------------------------------------------------- reading
def loads(text: str, file: Path) -> dict[str, Any]:
    """Parse TOML text; invalid TOML is a DesignError naming the file and line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DesignError(
            f"{file}: not valid TOML: {exc}",
            hint="check quotes, brackets and commas on the line named",
            column="study.toml",
        ) from None


def read_toml(file: Path) -> tuple[dict[str, Any], Source]:
    """Read a study.toml: its parsed values and the :class:`Source` that locates lines."""
    text = file.read_text(encoding="utf-8")
    return loads(text, file), Source(file, text)


# --------------------------------------------------------------------------- errors
#: The model behind each table (dict keys given as ``*``), for did-you-mean hints.
_MODELS: dict[str, type[BaseModel]] = {
    "": Design,
    "study": StudyInfo,
    "data": Data,
    "data.tables.*": DataSource,
    "roles": Roles,
    "collapse": Collapse,
    "collapse.measures.*": MeasureTable,
    "analysis": Analysis,
    "verify": Verify,
    "verify.*": ToleranceTable,
    "report": Report,
}
_WHAT = {"": "table", "roles": "role", "verify": "column"}
_TYPES = {  # pydantic error type: (what the value must be, an example value)
    "string_type": ("str", '"..."'),
    "int_type": ("int", "1"),
    "float_type": ("float", "0.5"),
    "bool_type": ("bool", "true"),
    "list_type": ("a list", '["a", "b"]'),
    "dict_type": ("a table", "{...}"),
    "model_type": ("a table", "{...}"),
    "model_attributes_type": ("a table", "{...}"),
}
#: Bounds pydantic checks, and how to say the fix.
_BOUNDS = {
    "greater_than_equal": "use a number >= {ge}",
    "greater_than": "use a number > {gt}",
    "less_than_equal": "use a number <= {le}",
    "less_than": "use a number < {lt}",
}
_EXAMPLES = {
    "seed": "seed = 12345",
    "name": 'name = "x"',
    "split_by": 'split_by = "families_with_children"',
    "inference": 'inference = "cr2"',
    "method": 'inference = {method = "wild", reps = 999}',
}


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _place(loc: tuple[Any, ...]) -> tuple[str, str | None, int | None, str]:
    """Split a pydantic location into (table path, key, analysis index, model path)."""
    parts = [p for p in loc if not (isinstance(p, str) and p.startswith("<"))]
    index = None
    if len(parts) > 1 and parts[0] == "analysis" and isinstance(parts[1], int):
        index = parts.pop(1)
    while len(parts) > 1 and isinstance(parts[-1], int):  # an element of a list
        parts.pop()
    names = [str(p) for p in parts]
    key = names[-1] if names else None
    table = ".".join(names[:-1])
    model_path = ".".join(
        "*" if i and names[i - 1] in ("tables", "measures", "verify") else n
        for i, n in enumerate(names[:-1])
    )
    return table, key, index, model_path


def _error(err: Mapping[str, Any], src: Source) -> DesignError:
    kind = err["type"]
    table, key, index, model_path = _place(tuple(err["loc"]))
    name = table_name(table, index)
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden" and model_path in _MODELS and key is not None:
        what = _WHAT.get(
            model_path, f"tolerance of {table[7:]}" if table[:7] == "verify." else "key"
        )
        return unknown_key(src, key, _keys(_MODELS[model_path]), table, index, what)
    if kind == "evalkit":
        here, where_key = table, key
        if ctx.get("key"):  # a key inside the value that failed (e.g. one expand list)
            here, where_key = ".".join(p for p in (table, key) if p), ctx["key"]
        message = ctx.get("message") or err["msg"]
        hint = ctx.get("hint") or (f"e.g. {_EXAMPLES[key]}" if key in _EXAMPLES else None)
        return DesignError(
            f"{src.where(here, where_key, index)}: {message}", hint=hint, column=where_key
        )
    if kind in ("missing", "too_short"):
        return _missing(src, table, key, index)
    value = err.get("input")
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        choices = [c.strip("' ") for c in expected.replace(" or ", ", ").split(", ")]
        close = difflib.get_close_matches(str(value), choices, n=1)
        return DesignError(
            f"{src.where(table, key, index)}: {key} must be one of "
            f"{', '.join(map(repr, choices))}, got {value!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"e.g. {key} = {json.dumps(choices[-1])}",
            column=key,
        )
    if kind in _TYPES:
        what, example = _TYPES[kind]
        return DesignError(
            f"{src.where(table, key, index)}: {key} in {name} must be {what}, got {value!r}",
            hint=f"e.g. {_EXAMPLES.get(key or '', f'{key} = {example}')}",
            column=key,
        )
    return DesignError(
        f"{src.where(table, key, index)}: {key} in {name}: {err['msg'][:1].lower()}"
        f"{err['msg'][1:]}, got {value!r}",
        hint=_BOUNDS[kind].format(**ctx) if kind in _BOUNDS else None,
        column=key,
    )


def _missing(src: Source, table: str, key: str | None, index: int | None) -> DesignError:
    if not table and key == "data":
        return DesignError(
            f"{src.file}: the study names no data ([data] is missing)",
            hint='add [data] with file = "extract.parquet", query = "SELECT ...", or '
            'simulator = "bergen_rates"',
            column="data",
        )
    if not table and key == "analysis":
        return DesignError(
            f"{src.file}: the study has no [[analysis]] tables",
            hint='add e.g.\n[[analysis]]\nid = "twfe"\nestimator = "did.TWFE"',
            column="analysis",
        )
    if table == "analysis" and key == "id":
        return DesignError(
            f"{src.where('analysis', None, index)}: [[analysis]] #{(index or 0) + 1} has no id",
            hint='add id = "a_short_name"',
            column="id",
        )
    if table == "analysis" and key == "estimator":
        from evalkit.core import registry

        return DesignError(
            f"{src.where('analysis', None, index)}: [[analysis]] #{(index or 0) + 1} names "
            "no estimator",
            hint=f'e.g. estimator = "did.TWFE"; available: {", ".join(registry.names())}',
            column="estimator",
        )
    hints = {
        "by": 'e.g. by = ["city", "month", "treated"]',
        "measures": 'e.g. [collapse.measures]\nwork = "mean"',
        "method": 'e.g. inference = {method = "wild", reps = 999}',
    }
    parent, _, last = table.rpartition(".")
    at = src.where(parent, last, index) if parent else src.where(table, None, index)
    return DesignError(
        f"{at}: {table_name(table, index)} needs {key}",
        hint=hints.get(key or ""),
        column=key,
    )


def design_error(exc: ValidationError, src: Source) -> DesignError:
    """Return the first problem pydantic found as a DesignError naming the file and line.

    Unknown keys come first (a misspelt table also leaves a required one missing), then
    the problems in the order of their lines.
    """
    errors = exc.errors(include_url=False)

    def order(err: Mapping[str, Any]) -> tuple[int, int]:
        table, key, index, _ = _place(tuple(err["loc"]))
        return (err["type"] != "extra_forbidden", src.line(table, key, index) or 10**9)

    return _error(min(errors, key=order), src)


# --------------------------------------------------------------------------- writing
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_INLINE_MAX = 3  # tables with more entries (or with tables inside) get their own header


def _key(key: str) -> str:
    return key if _BARE.match(key) else _string(key)


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _multiline(text: str) -> str:
    body = []
    for ch in text:
        if ch in '"\\':
            body.append("\\" + ch)
        elif ch == "\r" or (ord(ch) < 0x20 and ch not in "\n\t") or ord(ch) == 0x7F:
            body.append(f"\\u{ord(ch):04X}")
        else:
            body.append(ch)
    return '"""\n' + "".join(body) + '"""'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _multiline(value) if "\n" in value else _string(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{" + items + "}" if items else "{}"
    raise DesignError(
        f"cannot write {value!r} ({type(value).__name__}) to study.toml",
        hint="use strings, numbers, booleans, dates, lists and tables",
        column="design",
    )


def _own_header(value: Any) -> bool:
    return isinstance(value, Mapping) and (
        len(value) > _INLINE_MAX or any(isinstance(v, Mapping) for v in value.values())
    )


def _table(lines: list[str], header: str, table: Mapping[str, Any]) -> None:
    lines.append(header)
    later = []
    for key, value in table.items():
        if value is None:
            continue
        if _own_header(value):
            later.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    name = header.strip("[]")
    for key, value in later:
        lines.append("")
        _table(lines, f"[{name}.{_key(key)}]", value)


def dumps(design: Mapping[str, Any]) -> str:
    """Write a parsed study.toml (a mapping of tables) as TOML text.

    Examples
    --------
    >>> print(dumps({"study": {"name": "x"}, "analysis": [{"id": "a", "level": 0.9}]}), end="")
    [study]
    name = "x"
    <BLANKLINE>
    [[analysis]]
    id = "a"
    level = 0.9
    """
    lines: list[str] = []
    for key, value in design.items():
        if value is None:
            continue
        if lines:
            lines.append("")
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                if i:
                    lines.append("")
                _table(lines, f"[[{_key(key)}]]", item)
        elif isinstance(value, Mapping):
            _table(lines, f"[{_key(key)}]", value)
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines) + "\n"


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of study.toml (as parsed to JSON), made from :class:`Design`.

    Examples
    --------
    >>> json_schema()["title"], "analysis" in json_schema()["properties"]
    ('study.toml', True)
    """
    schema = Design.model_json_schema(by_alias=True)
    schema["title"] = "study.toml"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.loads(json.dumps(schema, sort_keys=False))
