"""What every simulator returns, and the registry that study files name simulators by."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from evalkit.data import sandbox
from evalkit.errors import DesignError

__all__ = ["SimulatedData", "get", "names", "options", "register", "schema"]

_SIMULATORS: dict[str, Callable[..., SimulatedData]] = {}
# Columns of SimulatedData.truth_strata that are not stratum columns.
_STRATA_FIXED = ("outcome", "period", "n1", "sum1", "n0", "sum0")
_SCHEMAS: dict[str, Mapping[str, str]] = {}


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(
        {k: _frozen(v) if isinstance(v, Mapping) else v for k, v in (mapping or {}).items()}
    )


@dataclass(frozen=True, eq=False)
class SimulatedData:
    """Simulated register-like microdata together with the effects planted in them.

    Attributes
    ----------
    data
        The microdata, one row per person and period, with the same column names a
        real register extract would have.
    truth
        The planted effects: ``truth[outcome][group]`` is the average effect on the
        treated of the indicator named by :attr:`term` (for example ``"treated"``),
        for each outcome and each subgroup in :attr:`groups`.
    description
        A paragraph describing the design and the planted effects, for reports.
    name
        The simulator's registry name (e.g. ``"bergen_rates"``).
    term
        The treatment indicator whose effect :attr:`truth` gives.
    groups
        Subgroup name to a DuckDB SQL predicate over :attr:`data` (None: everyone).
        Truth applies to a study's subgroup only when its predicate is the same.
    measures
        Outcome name to the cell measure the truth refers to when the microdata are
        collapsed to cells (``{"column", "stat", "where"}``, see
        :func:`evalkit.data.collapse.collapse`).
    truth_by_period
        The planted effect by outcome, group and treated period (a long DataFrame).
    parameters
        Every setting used, including the seed, so the data can be regenerated.
    truth_strata
        Sufficient statistics of the planted effect by stratum, from which the effect on
        any union of strata follows exactly (see :meth:`truth_where`): one row per
        outcome, treated period and stratum, with the stratum's columns (e.g.
        ``family_with_children`` and ``non_western``), ``period``, and ``n1``, ``sum1``
        (the number of rows the outcome's cell measure counts, and the sum of its
        column over them, with the treatment) and ``n0``, ``sum0`` (the same in the
        world without it). None when the simulator does not provide them.
    effects
        Each row's exact effect of the treatment, row-aligned with :attr:`data`: one
        column per affected data column (named by :attr:`row_effects`). Hidden from
        studies; used by :meth:`truth_where`. None when the simulator gives none, or
        when the rows are in :attr:`store`.
    store
        A folder of Parquet files holding the rows (the data columns followed by the
        effect columns) when the simulator wrote them in chunks instead of returning
        them in memory; :attr:`data` is then None. Read them with DuckDB, selecting the
        columns of the simulator's schema (:meth:`read` loads them into pandas).
    row_effects
        Data column to the column of :attr:`effects` (or :attr:`store`) with each row's
        effect on it, or to None when the treatment does not change the column at all.
        Columns missing here have no known per-row effect.
    n_rows
        Number of rows (also when they are in :attr:`store`).
    content_sha256
        A fingerprint of the rows computed while they were generated (how, is the
        simulator's to document), so a study need not read them all again to hash them;
        None when the simulator gives none.
    truth_terms
        True values the simulator states directly, ``{(outcome, term, group): value}``
        (e.g. an intention-to-treat effect); a study's truth lookup uses them first.
    """

    data: pd.DataFrame | None
    truth: Mapping[str, Mapping[str, float]]
    description: str
    name: str = ""
    term: str = "treated"
    groups: Mapping[str, str | None] = field(default_factory=dict)
    measures: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    truth_by_period: pd.DataFrame | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    truth_strata: pd.DataFrame | None = None
    effects: pd.DataFrame | None = field(default=None, repr=False)
    store: Path | None = None
    row_effects: Mapping[str, str | None] = field(default_factory=dict)
    n_rows: int | None = None
    content_sha256: str | None = None
    truth_terms: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    _cache: dict[Any, float | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("truth", "groups", "measures", "parameters", "row_effects"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        terms = {tuple(map(str, k)): float(v) for k, v in dict(self.truth_terms).items()}
        if any(len(k) != 3 for k in terms):
            raise DesignError(
                "truth_terms keys must be (outcome, term, group)",
                hint="e.g. {('employed', 'ITT', 'all'): 0.05}",
                column="truth_terms",
            )
        object.__setattr__(self, "truth_terms", MappingProxyType(terms))
        if self.data is None and self.store is None:
            raise DesignError("SimulatedData needs data or a store", column="data")
        if self.n_rows is None:
            object.__setattr__(self, "n_rows", len(self.data) if self.data is not None else None)

    @property
    def seed(self) -> int | None:
        """The seed the data were drawn with."""
        return self.parameters.get("seed")

    def truth_for(self, term: str, outcome: str, group: str = "all") -> float | None:
        """Return the planted effect of ``term`` on ``outcome`` in ``group``, or None.

        Examples
        --------
        >>> from evalkit.simulate import bergen_rates
        >>> sim = bergen_rates(seed=1, n_persons=400)
        >>> sim.truth_for("treated", "recipient") == sim.truth["recipient"]["all"]
        True
        >>> sim.truth_for("treated_2021", "recipient") is None
        True
        """
        if term != self.term:
            return None
        value = self.truth.get(outcome, {}).get(group)
        return None if value is None else float(value)

    @property
    def strata_columns(self) -> tuple[str, ...]:
        """The columns of the data that define the strata of :attr:`truth_strata`."""
        if self.truth_strata is None:
            return ()
        return tuple(c for c in self.truth_strata.columns if c not in _STRATA_FIXED)

    def truth_where(
        self,
        term: str,
        outcome: str,
        condition: str | None,
        *,
        columns: Mapping[str, str] | None = None,
    ) -> float | None:
        """Return the planted effect of ``term`` on ``outcome`` among rows meeting ``condition``.

        The effect is the same average effect on the treated as :attr:`truth` (for the
        outcome's cell measure: the count-weighted mean over treated periods of the
        measure with the treatment minus the measure without it) among the treated rows
        that satisfy ``condition``, a DuckDB SQL condition (None: every treated row).
        Rows for which the condition is NULL are left out, as a ``WHERE`` clause would.

        A condition on the columns of :attr:`truth_strata` only is answered from them;
        any other condition (a city, a cohort, an age band...) from each row's exact
        effect (:attr:`effects` or :attr:`store`), which requires that the rows the
        measure counts are the same with and without the treatment (the simulator lists
        the measure's column in :attr:`row_effects` only then). ``columns`` adds derived
        columns (name to SQL expression over the data's columns) the condition may use.

        Returns None when ``term`` is not the treatment the simulator planted effects
        of, when the outcome is unknown, when the condition does not work on the data,
        when the effect is not known for it, or when no treated row satisfies it.

        Examples
        --------
        >>> from evalkit.simulate import bergen_rates
        >>> sim = bergen_rates(seed=1, n_persons=400)
        >>> a = sim.truth_where("treated", "earnings", "family_with_children = 1")
        >>> abs(a - sim.truth["earnings"]["families_with_children"]) < 1e-9
        True
        >>> everyone = sim.truth["earnings"]["all"]
        >>> sim.truth_where("treated", "earnings", "city = 'Bergen'") == everyone
        True
        >>> sim.truth_where("treated", "recipient", "age < 30")
        0.0
        """
        if term != self.term:
            return None
        key = (outcome, condition, tuple(sorted((columns or {}).items())))
        if key not in self._cache:
            value = self._strata_truth(outcome, condition) if not columns else None
            if value is None:
                value = self._row_truth(outcome, condition, columns)
            self._cache[key] = value
        return self._cache[key]

    def _strata_truth(self, outcome: str, condition: str | None) -> float | None:
        strata = self.truth_strata
        if strata is None:
            return None
        rows = strata[strata["outcome"] == outcome]
        if rows.empty:
            return None
        keys = list(self.strata_columns)
        if condition is not None:
            distinct = rows[keys].drop_duplicates().reset_index(drop=True)
            chosen = sandbox.select_where(distinct, condition)
            if chosen is None or chosen.empty:
                return None
            chosen = chosen.astype(distinct.dtypes.to_dict())
            rows = rows.merge(chosen, on=keys, how="inner")
        by = rows.groupby("period", sort=True)[["n1", "sum1", "n0", "sum0"]].sum()
        by = by[(by["n1"] > 0) & (by["n0"] > 0)]
        if by.empty:
            return None
        effect = by["sum1"] / by["n1"] - by["sum0"] / by["n0"]
        weight = by["n1"].astype(float)
        return float((effect * weight).sum() / weight.sum())

    def _row_truth(
        self, outcome: str, condition: str | None, columns: Mapping[str, str] | None
    ) -> float | None:
        """Mean of the rows' exact effects over the treated rows meeting the condition."""
        import duckdb

        measure = self.measures.get(outcome)
        if measure is None or measure.get("stat", "mean") != "mean":
            return None
        column = measure.get("column", outcome)
        if column not in self.row_effects:
            return None
        effect = self.row_effects[column]
        if self.store is not None:
            if not self.store.exists():
                return None
            con = sandbox.connect(folders=[self.store])
            rel = con.read_parquet(str(self.store / "*.parquet"))
        elif self.effects is not None or effect is None:
            con = sandbox.connect()
            con.register("data_", self.data)
            if self.effects is None:
                rel = con.table("data_")
            else:
                con.register("effects_", self.effects)
                rel = con.sql("SELECT * FROM data_ POSITIONAL JOIN effects_")
        else:
            return None
        try:
            if columns:
                items = ", ".join(f'{expr} AS "{name}"' for name, expr in columns.items())
                rel = rel.query("r", f"SELECT *, {items} FROM r")
            where = [f'"{self.term}" = 1']
            if measure.get("where"):
                where.append(f"({measure['where']})")
            if condition:
                where.append(f"({condition})")
            total = f'sum("{effect}")' if effect else "0"
            sql = f"SELECT count(*), {total} FROM r WHERE {' AND '.join(where)}"
            n, value = rel.query("r", sql).fetchall()[0]
        except duckdb.Error:
            return None
        finally:
            con.close()
        return None if not n else float(value) / n

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Return the rows (``columns`` of them, default all data columns) as a DataFrame.

        Loads :attr:`store` into memory: meant for small data and tests.
        """
        if self.data is not None:
            return self.data if columns is None else self.data[columns]
        assert self.store is not None
        con = sandbox.connect(folders=[self.store])
        try:
            rel = con.read_parquet(str(self.store / "*.parquet"))
            names = columns or [c for c in rel.columns if c not in set(self.row_effects.values())]
            return rel.select(", ".join(f'"{c}"' for c in names)).df()
        finally:
            con.close()

    def save(self, path: str | Path) -> Path:
        """Write the microdata to a Parquet file and the truth beside it as JSON.

        Returns the path of the Parquet file. The JSON file has the same name with
        ``.truth.json`` in place of ``.parquet``.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from evalkit.simulate import bergen_rates
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> bergen_rates(seed=1, n_persons=300).save(folder / "sim.parquet").name
        'sim.parquet'
        >>> (folder / "sim.truth.json").exists()
        True
        """
        import json

        from evalkit.core.result import jsonable

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.read().to_parquet(target, index=False)
        meta = {
            "name": self.name,
            "term": self.term,
            "truth": jsonable(_thaw(self.truth)),
            "groups": dict(self.groups),
            "measures": jsonable(_thaw(self.measures)),
            "parameters": jsonable(_thaw(self.parameters)),
            "description": self.description,
            "truth_terms": [[*k, v] for k, v in self.truth_terms.items()],
        }
        sidecar = target.with_name(target.name.removesuffix(".parquet") + ".truth.json")
        sidecar.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return target

    def __repr__(self) -> str:
        return (
            f"<SimulatedData {self.name or 'simulation'}: {self.n_rows} rows"
            + (f" in {self.store}" if self.store is not None else "")
            + f", truth for {sorted(self.truth)}>"
        )


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def register(
    name: str, schema: Mapping[str, str]
) -> Callable[[Callable[..., SimulatedData]], Callable[..., SimulatedData]]:
    """Register a simulator function under ``name`` with the columns it produces."""

    def decorate(func: Callable[..., SimulatedData]) -> Callable[..., SimulatedData]:
        _SIMULATORS[name] = func
        _SCHEMAS[name] = MappingProxyType(dict(schema))
        return func

    return decorate


def names() -> list[str]:
    """Return the names of the built-in simulators.

    Examples
    --------
    >>> "bergen_rates" in names()
    True
    """
    return sorted(_SIMULATORS)


def get(name: str) -> Callable[..., SimulatedData]:
    """Return the simulator registered as ``name``.

    Raises
    ------
    DesignError
        For an unknown name, suggesting the closest.

    Examples
    --------
    >>> get("bergen_rates").__name__
    'bergen_rates'
    """
    try:
        return _SIMULATORS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_SIMULATORS), n=2)
        raise DesignError(
            f"unknown simulator {name!r}",
            hint=(f"did you mean {' or '.join(map(repr, close))}? " if close else "")
            + f"available: {', '.join(names())}",
            column="simulator",
        ) from None


def schema(name: str) -> Mapping[str, str]:
    """Return the columns (name to pandas dtype) that simulator ``name`` produces.

    Examples
    --------
    >>> schema("bergen_rates")["recipient"]
    'int8'
    """
    get(name)
    return _SCHEMAS[name]


def options(name: str) -> dict[str, Any]:
    """Return the keyword options of simulator ``name`` with their defaults.

    Examples
    --------
    >>> options("bergen_rates")["n_persons"]
    20000
    """
    params = inspect.signature(get(name)).parameters
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in params.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
