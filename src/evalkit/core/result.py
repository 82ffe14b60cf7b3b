"""The one result protocol shared by every estimator.

A :class:`Result` holds a table of estimates (one row per estimate), their covariance
where it exists, how inference was done, and facts about the fit. It is immutable:
every accessor returns a copy, so nothing a caller does to a returned table changes the
result.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core.uncertainty import Analytic, NoInference, Uncertainty
from evalkit.errors import (
    DesignError,
    InferenceNotSupportedError,
    InferenceUnavailableWarning,
    NotEstimableError,
    SerializationError,
)
from evalkit.numerics.levels import check_level

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "KEY_COLUMNS",
    "TIDY_COLUMNS",
    "InferenceInfo",
    "Result",
    "Scores",
    "check_level",
    "jsonable",
]

TIDY_COLUMNS: tuple[str, ...] = (
    "term",
    "estimate",
    "std_error",
    "statistic",
    "p_value",
    "conf_low",
    "conf_high",
)
#: Key columns of tidy tables, in order: ``subgroup`` (the ``by=`` column's value),
#: ``group`` (an estimator's own group key, e.g. TripleDiff's target group), ``cohort``,
#: ``time``, ``event_time``.
KEY_COLUMNS: tuple[str, ...] = ("subgroup", "group", "cohort", "time", "event_time")


@dataclass(frozen=True)
class InferenceInfo:
    """How the standard errors, p-values and intervals of a result were obtained.

    Attributes
    ----------
    method
        The inference name (``"cluster"``, ``"cr2"``, ...), or ``"none"``.
    description
        One sentence for reports, e.g. ``"CR1 cluster-robust by city (10 clusters)"``.
    distribution
        ``"t"`` (with ``df``) or ``"normal"``: the reference distribution of the statistic.
    cluster
        The clustering column, if any.
    n_clusters
        The number of clusters, if any.
    reason
        Why this method was used: the automatic choice's reasoning, or that it was
        requested (with the design's cluster counts).
    reps
        Replications of resampling inference, if any.
    kind
        The kind of the result's uncertainty: ``"analytic"``, ``"draws"``,
        ``"test_inversion"`` or ``"none"`` (set by the result).
    missing
        Why standard errors or intervals are empty (set by the result), else None.
    """

    method: str
    description: str
    distribution: str = "normal"
    cluster: str | None = None
    n_clusters: int | None = None
    reason: str | None = None
    reps: int | None = None
    kind: str | None = None
    missing: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary."""
        return {k: jsonable(v) for k, v in self.__dict__.items()}


def jsonable(value: Any) -> Any:
    """Convert a value to plain JSON-safe Python, refusing types it does not know.

    Known: None, bool, str, numbers (non-finite floats become None: JSON has no NaN),
    numpy scalars and arrays, mappings, lists/tuples/sets, dates and timestamps, pandas
    Series (``{"index": [...], "values": [...], "name": ...}``) and DataFrames
    (``{"columns": [...], "index": [...], "data": [[...], ...]}``), and objects with a
    ``to_dict()`` method (which must return known types).

    Raises
    ------
    SerializationError
        For any other type (it is never silently written as text).

    Examples
    --------
    >>> jsonable({"a": np.float64(1.5), "b": np.array([1, 2]), "c": float("nan")})
    {'a': 1.5, 'b': [1, 2], 'c': None}
    >>> jsonable(pd.Series([0.7, 0.3], index=["oslo", "bergen"], name="weight"))
    {'name': 'weight', 'index': ['oslo', 'bergen'], 'values': [0.7, 0.3]}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [jsonable(v) for v in sorted(value, key=repr)]
    if isinstance(value, pd.Period):
        return str(value)
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return jsonable(pd.Timestamp(value))
    if isinstance(value, pd.Series):
        return {
            "name": jsonable(value.name),
            "index": [jsonable(v) for v in value.index.tolist()],
            "values": [jsonable(v) for v in value.tolist()],
        }
    if isinstance(value, pd.DataFrame):
        return {
            "columns": [jsonable(c) for c in value.columns.tolist()],
            "index": [jsonable(v) for v in value.index.tolist()],
            "data": [[jsonable(v) for v in row] for row in value.itertuples(index=False)],
        }
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return jsonable(to_dict())
    raise SerializationError(
        f"to_dict cannot write a {type(value).__name__} as JSON",
        hint="store numbers, strings, arrays, pandas Series/DataFrames or objects with a "
        "to_dict() method in a result's info and extras",
    )


def _freeze(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, eq=False)
class Scores:
    """Per-cluster influence contributions of a result's estimates.

    ``values[c, j]`` is cluster ``labels[c]``'s contribution to estimate ``j`` (in table
    order), scaled so that ``values.T @ values`` is the covariance of the estimates up to
    the small-sample factor of the inference used. Subgroup comparisons (``by=``) line up
    the clusters of several fits by label, which makes their covariance right when the
    subgroups share clusters, units or controls. No microdata: one row per cluster of
    sums, kept in memory and never written out.
    """

    labels: np.ndarray | None  # None: every row is a cluster of its own
    values: np.ndarray


@dataclass(frozen=True, eq=False)
class Result:
    """Estimates from one fit, with their uncertainty.

    Results are created by estimators' ``fit`` methods; users do not build them. The
    table has the columns of :data:`TIDY_COLUMNS` (``term`` first), any key columns that
    apply (:data:`KEY_COLUMNS`), optionally ``truth`` (the planted effect in simulated
    data) and, internally, ``df`` (degrees of freedom of a t reference distribution;
    missing for the normal).

    Attributes
    ----------
    estimator
        Registry name of the estimator that produced the result, e.g. ``"did.TWFE"``.
    inference
        How inference was done (:class:`InferenceInfo`); its ``kind`` and ``missing``
        come from the uncertainty.
    info
        Facts about the fit: numbers of observations, units and periods, roles,
        options, the seed, and anything estimator-specific.
    level
        Confidence level of the stored intervals.
    uncertainty
        The one object that holds the estimates' uncertainty
        (:mod:`evalkit.core.uncertainty`): ``tidy(level=)`` and ``ci(level=)`` delegate
        to it. Estimators pass it; when they do not, a table with ``std_error`` (and
        ``df``) is read as :class:`~evalkit.core.uncertainty.Analytic`, and
        ``inference.method == "none"`` as
        :class:`~evalkit.core.uncertainty.NoInference`.
    extras
        Typed extras (donor weights as a pandas Series, balance or diagnostics tables as
        DataFrames, ...), written explicitly by :meth:`to_dict`.
    """

    estimator: str
    _table: pd.DataFrame
    inference: InferenceInfo
    info: Mapping[str, Any] = field(default_factory=dict)
    level: float = 0.95
    _vcov: np.ndarray | None = None
    _scores: Scores | None = None
    uncertainty: Uncertainty | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        table = self._table.reset_index(drop=True).copy()
        if "estimate" not in table:
            raise ValueError("result table lacks 'estimate'")  # programming error
        if "df" not in table:
            table["df"] = np.nan
        object.__setattr__(self, "level", check_level(self.level))
        object.__setattr__(self, "info", _freeze(self.info))
        object.__setattr__(self, "extras", _freeze(self.extras))
        unc = self.uncertainty
        if unc is None:
            unc = _legacy_uncertainty(table, self.inference, self._vcov)
            object.__setattr__(self, "uncertainty", unc)
        if self._vcov is None and getattr(unc, "vcov", None) is not None:
            object.__setattr__(self, "_vcov", unc.vcov)  # type: ignore[attr-defined]
        if self._vcov is not None:
            vcov = np.array(self._vcov, dtype=float)
            vcov.setflags(write=False)
            object.__setattr__(self, "_vcov", vcov)
        df = getattr(unc, "df", None)
        if df is not None:
            table["df"] = np.where(np.isfinite(df), df, np.nan)
        est = table["estimate"].to_numpy(dtype=float)
        for name, values in unc.columns(est, self.level).items():
            if len(values) != len(table):
                raise ValueError("uncertainty and table differ in length")  # programming error
            table[name] = values
        object.__setattr__(self, "_table", table)
        object.__setattr__(
            self,
            "inference",
            dataclasses.replace(self.inference, kind=unc.kind, missing=unc.missing()),
        )

    # ------------------------------------------------------------------ accessors
    @property
    def terms(self) -> list[str]:
        """The term names, in table order."""
        return self._table["term"].astype(str).tolist()

    @property
    def vcov(self) -> pd.DataFrame | None:
        """Covariance matrix of the estimates (a copy), labelled by term; None if unavailable."""
        if self._vcov is None:
            return None
        labels = self._labels()
        return pd.DataFrame(self._vcov.copy(), index=labels, columns=labels)

    def _labels(self) -> list[str]:
        keys = [c for c in KEY_COLUMNS if c in self._table]
        if not keys:
            return self.terms
        parts = [self._table["term"].astype(str)] + [
            c + "=" + self._table[c].astype(str) for c in keys
        ]
        return [", ".join(p) for p in zip(*parts, strict=True)]

    def estimate(self, term: str | None = None, **keys: Any) -> float:
        """Return one point estimate by term (and keys such as ``cohort=2004``).

        With no arguments, the result must hold exactly one estimate.
        """
        return float(self._row(term, keys)["estimate"])

    def std_error(self, term: str | None = None, **keys: Any) -> float:
        """Return one standard error by term (and keys).

        Raises
        ------
        NotEstimableError
            Where the standard error is not defined (test-inversion or point-only
            results); the message gives the reason.
        """
        value = float(self._row(term, keys)["std_error"])
        if not math.isfinite(value):
            raise NotEstimableError(
                f"no standard error for this estimate: {self.inference.missing or 'undefined'}",
                hint="use tidy() for p-values and intervals",
                column="std_error",
            )
        return value

    def _row(self, term: str | None, keys: Mapping[str, Any]) -> pd.Series:
        mask = np.ones(len(self._table), dtype=bool)
        if term is not None:
            mask &= (self._table["term"] == term).to_numpy()
        for k, v in keys.items():
            if k not in self._table:
                raise DesignError(f"this result has no key {k!r}", column=k)
            mask &= (self._table[k] == v).to_numpy()
        rows = self._table[mask]
        if len(rows) != 1:
            raise DesignError(
                f"{len(rows)} estimates match term={term!r} {dict(keys)}; need exactly one",
                hint=f"terms are {sorted(set(self.terms))}; give keys to pick one row",
                column="term",
            )
        return rows.iloc[0]

    # ------------------------------------------------------------------ protocol
    def tidy(self, level: float | None = None) -> pd.DataFrame:
        """Return the estimates as a DataFrame, one row per estimate.

        Parameters
        ----------
        level
            Confidence level of ``conf_low``/``conf_high``; defaults to the fit's. The
            uncertainty recomputes the intervals where its kind allows.

        Returns
        -------
        pandas.DataFrame
            Columns ``term, estimate, std_error, statistic, p_value, conf_low, conf_high``,
            then key columns that apply and ``truth`` where the true value is known.
            Empty cells have their reason in ``inference.missing``.

        Raises
        ------
        LevelFixedError
            When the intervals come from a test inverted at the fit's level and cannot
            be recomputed; the message says to refit with ``fit(..., level=...)``.
        """
        table = self._table.copy()
        if level is not None and check_level(level) != self.level:
            assert self.uncertainty is not None
            if self.uncertainty.kind == "none":
                self._refuse_intervals()
            est = table["estimate"].to_numpy(dtype=float)
            cols = self.uncertainty.columns(est, check_level(level))
            table["conf_low"] = cols["conf_low"]
            table["conf_high"] = cols["conf_high"]
        keys = [c for c in KEY_COLUMNS if c in table]
        extra = [c for c in table.columns if c == "truth"]
        return table[[*TIDY_COLUMNS, *keys, *extra]].reset_index(drop=True)

    def ci(self, level: float | None = None) -> pd.DataFrame:
        """Return confidence intervals: ``term``, keys, ``conf_low``, ``conf_high``.

        Raises
        ------
        InferenceNotSupportedError
            For point estimates only (no intervals at any level).
        LevelFixedError
            At a level the uncertainty cannot give (see :meth:`tidy`).
        """
        if level is not None:
            check_level(level)
        if self.uncertainty is not None and self.uncertainty.kind == "none":
            self._refuse_intervals()
        tidy = self.tidy(level)
        keys = [c for c in KEY_COLUMNS if c in tidy]
        return tidy[["term", *keys, "conf_low", "conf_high"]]

    def _refuse_intervals(self) -> None:
        raise InferenceNotSupportedError(
            f"this result has no confidence intervals: {self.inference.missing}",
            hint="call tidy() without level=, or refit with an inference method that gives "
            "intervals (e.g. inference='cluster')",
            column="level",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary of the whole result (no microdata).

        Raises
        ------
        SerializationError
            If ``info`` or ``extras`` hold a type :func:`jsonable` does not know.
        """
        assert self.uncertainty is not None
        return {
            "estimator": self.estimator,
            "level": self.level,
            "inference": self.inference.to_dict(),
            "uncertainty": jsonable(self.uncertainty.to_dict()),
            "info": jsonable(dict(self.info)),
            "extras": {str(k): jsonable(v) for k, v in self.extras.items()},
            "tidy": [jsonable(r) for r in self.tidy().to_dict(orient="records")],
            "vcov": None if self._vcov is None else jsonable(self._vcov),
        }

    def to_json(self, **kwargs: Any) -> str:
        """Return :meth:`to_dict` serialised as JSON."""
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self, digits: int = 4) -> Summary:
        """Return a journal-style summary that prints as text and renders as HTML.

        Examples
        --------
        >>> import evalkit
        >>> from evalkit.did import TWFE
        >>> df = evalkit.datasets.load("mpdta")
        >>> df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
        >>> s = TWFE(outcome="lemp", treatment="post", unit="countyreal", time="year").fit(df)
        >>> "post" in str(s.summary())
        True
        """
        from evalkit.report.summary import Summary

        return Summary(self, digits=digits)

    def headline(self) -> Result:
        """Return the estimates that subgroup comparisons (``by=``) compare: all of them.

        Results of many cells (group-time effects) return their overall summary instead.
        """
        return self

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Plot the estimates with confidence intervals and return the matplotlib Axes."""
        from evalkit.report.plots import coefficient_plot

        return coefficient_plot(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.estimator}: {len(self._table)} estimate(s), "
            f"inference={self.inference.method}>"
        )

    def __str__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


if TYPE_CHECKING:  # pragma: no cover
    from evalkit.report.summary import Summary


def _legacy_uncertainty(
    table: pd.DataFrame, inference: InferenceInfo, vcov: np.ndarray | None
) -> Uncertainty:
    """Read a table of ``std_error`` and ``df`` as analytic uncertainty (or none)."""
    if inference.method == "none":
        return NoInference(inference.reason or "inference='none' was requested")
    if "std_error" not in table:
        raise ValueError("result table lacks 'std_error'")  # programming error
    return Analytic(
        table["std_error"].to_numpy(dtype=float), df=table["df"].to_numpy(dtype=float), vcov=vcov
    )


def make_table(
    terms: Sequence[str],
    estimates: Sequence[float] | np.ndarray,
    std_errors: Sequence[float] | np.ndarray,
    df: float | Sequence[float] | np.ndarray | None = None,
    **columns: Any,
) -> pd.DataFrame:
    """Build a result table from parallel arrays (helper for estimators)."""
    n = len(terms)
    table = pd.DataFrame(
        {
            "term": list(terms),
            "estimate": np.asarray(estimates, dtype=float),
            "std_error": np.asarray(std_errors, dtype=float),
        }
    )
    if df is None:
        table["df"] = np.nan
    else:
        table["df"] = np.broadcast_to(np.asarray(df, dtype=float), (n,))
    for name, values in columns.items():
        table[name] = values
    return table


def warn_unavailable(reason: str, stacklevel: int = 3) -> None:
    """Issue the warning that accompanies a standard error that could not be computed."""
    import warnings

    warnings.warn(reason, InferenceUnavailableWarning, stacklevel=stacklevel)
