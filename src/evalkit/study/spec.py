"""A compiled study: what the runner, the report and verify read.

:func:`evalkit.study.config.load_study` turns a :class:`~evalkit.study.design.Design`
(study.toml, validated) into a :class:`Study`: defaults filled in, analyses expanded,
each with its estimator's full configuration, its rows and its seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.data.collapse import Measure, flags
from evalkit.errors import DesignError
from evalkit.inference.spec import Inference
from evalkit.study.locate import Source

__all__ = ["AnalysisSpec", "CollapseSpec", "DataSpec", "SplitSpec", "Study", "Tolerance"]


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
        with ``fit_on = "rows"``, the keys within which its rows are averaged.
    fit_on
        ``"cells"`` (collapsed by ``[collapse]``) or ``"rows"`` (the table's rows).
    table
        The ``[data.tables]`` name the analysis reads, or None for ``[data]``.
    by
        The column whose subgroups the fit compares (``fit(..., by=by)``), or None; a
        cell key of its own with cells, an averaging key with averaged rows.
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
    by: str | None = None

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
    tables
        Extra tables (``[data.tables.<name>]``) by name.
    units, marks, simulated_notes
        ``[report]``: units by outcome, labelled dates drawn on time plots, notes shown
        only on simulated data.
    source
        Locates lines of the design's text, for errors found later (data columns).
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
    units: Mapping[str, str] = field(default_factory=dict)
    marks: Mapping[str, str] = field(default_factory=dict)
    simulated_notes: str = ""
    source: Source | None = None

    def cell_keys(self, spec: AnalysisSpec) -> tuple[str, ...]:
        """Return the keys of the cells an analysis is fitted on (none without [collapse])."""
        if self.collapse is None or spec.fit_on == "rows":
            return ()
        keys = spec.collapse_by if spec.collapse_by is not None else self.collapse.by
        keys = (*keys, spec.split.column) if spec.split is not None else tuple(keys)
        return (*keys, spec.by) if spec.by is not None and spec.by not in keys else keys

    def cell_columns(self, spec: AnalysisSpec) -> list[str]:
        """Return every column of the cells an analysis is fitted on."""
        if self.collapse is None or spec.fit_on == "rows":
            return []
        return [*self.cell_keys(spec), *flags(self.collapse.measures, self.collapse.count)]

    def analysis(self, analysis_id: str) -> AnalysisSpec:
        """Return the analysis with this id."""
        for a in self.analyses:
            if a.id == analysis_id:
                return a
        raise DesignError(f"no analysis {analysis_id!r} in {self.file}", column="id")
