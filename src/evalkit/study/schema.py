"""The tables and keys of study.toml as pydantic models.

Each table of the file is a model here, with ``extra="forbid"`` (an unknown key is an
error) and strict types (``seed = "3"`` is an error, not a 3). The models check what
can be checked from the file alone: types, required keys, identifiers, levels and
tolerances, one data source per table. What needs the registry, the simulators or the
data (estimator options, inference methods, group names used by analyses, columns) is
checked when the design is compiled into a :class:`~evalkit.study.config.Study`.

Why pydantic (v2) and not msgspec: the study layer's promise is its error messages, and
pydantic reports every error with its location in the document (``("analysis", 2,
"inference")``), which :mod:`evalkit.study.locate` turns into a line of study.toml; its
validators (before/after, per field or per table, custom error types carrying a hint)
hold the rules next to the keys they constrain; and it generates the JSON Schema
published in the docs from the same models. msgspec is faster, but a study file is
validated once per run, and its errors carry a path as text only, with no validators
that can attach a hint.

Every key keeps the value as written (a string stays a string where a list is also
allowed), so that a design read from TOML and written back gives the same file and the
same design hash.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evalkit.data.disclosure import DEFAULT_MIN_CELL_SIZE, check_min_cell_size
from evalkit.errors import EvalkitError
from evalkit.numerics.levels import check_level

__all__ = [
    "MAX_REPS",
    "Analysis",
    "Collapse",
    "Data",
    "DataSource",
    "InferenceTable",
    "MeasureTable",
    "Report",
    "Roles",
    "StudyInfo",
    "ToleranceTable",
    "Verify",
    "fail",
]

#: The most replications (bootstrap, placebo, permutation draws) one analysis may ask for.
MAX_REPS = 1_000_000
ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DATA_KINDS = ("file", "query", "simulator")


def fail(message: str, hint: str | None = None, key: str | None = None) -> PydanticCustomError:
    """Return an error for a validator to raise: its message, how to fix it, and the key at fault.

    The study layer turns it into a :class:`~evalkit.errors.DesignError` that starts with
    the file and line (of ``key`` when given, else of the field that failed).
    """
    return PydanticCustomError(
        "evalkit", "{message}", {"message": message, "hint": hint or "", "key": key or ""}
    )


class _Table(BaseModel):
    """A table of study.toml: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _names(key: str, example: str, what: str = "a list of cell keys") -> Any:
    """Accept a column name or a non-empty list of column names."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
        raise fail(
            f"{key} must be {what} (or one name), got {value!r}",
            hint=f"e.g. {example}",
        )

    return BeforeValidator(check)


Names = list[str] | str


def _evalkit(check: Any) -> Any:
    """Run one of evalkit's own checks (its message and hint kept)."""

    def run(value: Any) -> Any:
        if value is None:
            return value
        try:
            check(value)
        except EvalkitError as err:
            raise fail(err.message, hint=err.hint) from None
        return value

    return AfterValidator(run)


Level = Annotated[float, _evalkit(check_level)]


def _kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<text>"
    if isinstance(value, dict | BaseModel):
        return "<table>"
    return None


# --------------------------------------------------------------------------- [study]
class StudyInfo(_Table):
    """``[study]``: what the study is called and the settings every analysis shares."""

    name: str | None = Field(default=None, description="Short name; default: the folder's name.")
    title: str | None = Field(default=None, description="Title of the report; default: the name.")
    description: str | None = Field(default=None, description="A paragraph for the report.")
    seed: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Study seed; each analysis derives its own from it and its id."
    )
    min_cell_size: Annotated[int, _evalkit(check_min_cell_size)] = Field(
        default=DEFAULT_MIN_CELL_SIZE,
        description="No count below this leaves the runner (disclosure control).",
    )
    level: Level = Field(
        default=0.95, description="Confidence level of every interval, unless an analysis says."
    )


# --------------------------------------------------------------------------- [data]
class DataSource(_Table):
    """Where rows come from: exactly one of ``file``, ``query`` or ``simulator``."""

    file: str | None = Field(
        default=None, description="CSV or Parquet file (or folder), relative to the study folder."
    )
    query: str | None = Field(
        default=None,
        description="DuckDB SELECT; file paths in it are relative to the study folder.",
    )
    simulator: str | None = Field(default=None, description="A name from evalkit.simulate.names().")
    options: dict[str, Any] | None = Field(
        default=None, description="The simulator's options (simulators only)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        kinds = [k for k in DATA_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise fail(
                "[data] needs exactly one of file, query or simulator"
                + (f" (found {', '.join(kinds)})" if kinds else ""),
                hint='e.g. simulator = "bergen_rates" for simulated data',
            )
        if self.options and kinds[0] != "simulator":
            raise fail(
                "[data.options] applies to simulators only",
                hint="filter or transform files with a DuckDB query instead",
                key="options",
            )
        return self

    @property
    def kind(self) -> str:
        """``"file"``, ``"query"`` or ``"simulator"``."""
        return next(k for k in DATA_KINDS if getattr(self, k) is not None)


class Data(DataSource):
    """``[data]``: the main table, and extra tables that analyses name with ``table``."""

    tables: dict[str, DataSource] | None = Field(
        default=None,
        description="Extra tables, [data.tables.<name>], with the keys of [data]; an "
        "analysis reads one with table = <name> (and fit_on = 'rows').",
    )

    @field_validator("tables")
    @classmethod
    def _table_names(cls, value: dict[str, DataSource] | None) -> Any:
        for name in value or {}:
            if not NAME_PATTERN.match(name):
                raise fail(
                    f"table name {name!r} must be a plain identifier",
                    hint="use letters, digits and underscores, e.g. [data.tables.persons]",
                    key=name,
                )
        return value


# --------------------------------------------------------------------------- [roles]
class Roles(_Table):
    """``[roles]``: the study's default column for each role."""

    outcome: str | None = Field(default=None, description="The outcome column.")
    unit: str | None = Field(default=None, description="The unit (panel id) column, e.g. a city.")
    time: str | None = Field(default=None, description="The period column.")
    treatment: str | None = Field(
        default=None, description="0/1: a treated unit in a treated period."
    )
    cohort: str | None = Field(
        default=None, description="First treated period (0 or missing: never)."
    )
    covariates: Annotated[
        Names | None,
        _names("covariates", 'covariates = ["age", "female"]', "a list of column names"),
    ] = Field(default=None, description="Control columns.")
    cluster: str | None = Field(default=None, description="Cluster column of the standard errors.")
    weights: str | None = Field(
        default=None, description="Weight column; default on cells: the count behind each value."
    )
    instrument: str | None = Field(default=None, description="The instrument (dml.IIVM, dml.PLIV).")


# --------------------------------------------------------------------------- [collapse]
class MeasureTable(_Table):
    """A measure given as a table: a statistic of a column, over the rows matching ``where``."""

    column: str | None = Field(default=None, description="Default: the measure's name.")
    stat: str | None = Field(default=None, description='"mean" (default), "sum", "count", ...')
    where: str | None = Field(
        default=None, description="SQL condition selecting the rows measured."
    )


Measure = Annotated[
    Annotated[str, Tag("<text>")] | Annotated[MeasureTable, Tag("<table>")],
    Discriminator(
        _kind,
        custom_error_type="evalkit",
        custom_error_message="a measure is a statistic name or a table",
    ),
]


class Collapse(_Table):
    """``[collapse]``: rows are collapsed to cells (per subgroup) before estimation."""

    by: Annotated[Names, _names("by", 'by = ["city", "month", "treated"]')] = Field(
        description="Cell keys."
    )
    measures: dict[str, Measure] = Field(
        description='Output column to a statistic ("mean") or {column, stat, where}.'
    )
    count: str = Field(default="n", description="Name of the count column of each cell.")

    @field_validator("measures")
    @classmethod
    def _some_measures(cls, value: dict[str, Any]) -> Any:
        if not value:
            raise fail("[collapse] needs measures", hint='e.g. measures = {work = "mean"}')
        return value


# --------------------------------------------------------------------------- [[analysis]]
class InferenceTable(BaseModel):
    """An inference spec as a table: ``method`` and the method's own options."""

    model_config = ConfigDict(extra="allow", strict=True)

    method: str = Field(description="A method name, e.g. 'wild', 'cr2', 'conformal'.")
    cluster: str | None = Field(default=None, description="Cluster column, for clustered methods.")
    reps: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Replications of resampling methods (at most 1,000,000)."
    )

    @field_validator("reps")
    @classmethod
    def _at_most(cls, value: int | None) -> int | None:
        if value is not None and value > MAX_REPS:
            raise fail(
                f"reps = {value} is more replications than a study may ask for "
                f"(at most {MAX_REPS:,})",
                hint="9,999 draws give p-values to about 0.002; use reps = 9999",
            )
        return value


Inference = Annotated[
    Annotated[str, Tag("<text>")] | Annotated[InferenceTable, Tag("<table>")],
    Discriminator(
        _kind,
        custom_error_type="evalkit",
        custom_error_message="inference must be a method name or a table",
    ),
]
Scalar = str | int | float | bool


class Analysis(_Table):
    """``[[analysis]]``: one estimator on the study's rows or cells (or several, ``expand``)."""

    id: str = Field(description="Unique id: letters, digits, '_', '-' and '.'.")
    estimator: str = Field(description="Registry name, e.g. 'did.TWFE'.")
    title: str | None = Field(default=None, description="Title in the report; default: the id.")
    options: dict[str, Any] | None = Field(
        default=None, description="Constructor options; roles here override [roles]."
    )
    inference: Inference | None = Field(
        default=None, description="A method name or {method, cluster, reps, ...}."
    )
    level: Level | None = Field(
        default=None, description="Confidence level; default: [study] level."
    )
    seed: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Default: derived from the study seed and the id."
    )
    group: str | None = Field(default=None, description="A name from [groups] selecting the rows.")
    where: str | None = Field(default=None, description="An extra SQL condition on the rows.")
    collapse_by: Annotated[
        Names | None, _names("collapse_by", 'collapse_by = ["city", "after_reform"]')
    ] = Field(
        default=None, description="The analysis' own cell keys (or, with rows, averaging keys)."
    )
    split_by: str | None = Field(
        default=None,
        description="A [groups] name or column compared within units (did.TripleDiff).",
    )
    by: str | None = Field(
        default=None,
        description="A column whose subgroups are compared: one fit per subgroup, their "
        "differences and equality tests (fit(..., by=column)); with cells, a cell key.",
    )
    fit_on: Literal["cells", "rows"] | None = Field(
        default=None, description="Default: 'cells' when the study has [collapse], else 'rows'."
    )
    table: str | None = Field(default=None, description="A [data.tables] name; default: [data].")
    expand: dict[str, list[Scalar]] | None = Field(
        default=None, description="Key to a list of values: one analysis per combination."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise fail(
                f"analysis id {value!r} may only contain letters, digits, '_', '-' and '.'",
                hint='e.g. id = "twfe_work"',
            )
        return value

    @field_validator("by")
    @classmethod
    def _by(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.match(value):
            raise fail(
                f"by {value!r} must be a column name (letters, digits and '_')",
                hint='e.g. by = "household" (a column of the data or of [columns])',
            )
        return value

    @field_validator("expand", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if "collapse_by" in value:
            raise fail(
                "collapse_by cannot be expanded",
                hint="write one [[analysis]] per set of cell keys",
                key="collapse_by",
            )
        for key, values in value.items():
            ok = isinstance(values, list) and values
            if not ok or not all(isinstance(v, str | int | float | bool) for v in values):
                raise fail(
                    f"expand.{key} must be a non-empty list of values",
                    hint=f'e.g. {key} = ["a", "b"]',
                    key=key,
                )
        return value


# --------------------------------------------------------------------------- [verify]
class ToleranceTable(_Table):
    """How close a re-run must be to expected.json: ``|a - e| <= atol + rtol * |e|``."""

    rtol: Annotated[float, Field(ge=0)] | None = Field(default=None, description="Default 1e-6.")
    atol: Annotated[float, Field(ge=0)] | None = Field(default=None, description="Default 1e-8.")


class Verify(_Table):
    """``[verify]``: tolerances by tidy column (``estimate`` and ``std_error`` always)."""

    estimate: ToleranceTable | None = None
    std_error: ToleranceTable | None = None
    statistic: ToleranceTable | None = None
    p_value: ToleranceTable | None = None
    conf_low: ToleranceTable | None = None
    conf_high: ToleranceTable | None = None
    truth: ToleranceTable | None = None


# --------------------------------------------------------------------------- [report]
class Report(_Table):
    """``[report]``: what the report shows besides the results."""

    notes: str | None = Field(default=None, description="Markdown shown in the report.")
    figures: bool | None = Field(default=None, description="Draw figures (default true).")
    units: dict[str, str] | None = Field(
        default=None, description='Outcome to its unit, e.g. income = "NOK per month".'
    )
    marks: dict[str, str] | None = Field(
        default=None, description="Date to label: a vertical line on every time plot."
    )
    simulated_notes: str | None = Field(
        default=None, description="Markdown shown only when the data are simulated."
    )
