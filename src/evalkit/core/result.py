"""The one result protocol shared by every estimator.

A :class:`Result` holds a table of estimates (one row per estimate), their covariance
where it exists, how inference was done, and facts about the fit. It is immutable:
every accessor returns a copy, so nothing a caller does to a returned table changes the
result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.errors import DesignError, InferenceUnavailableWarning

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
KEY_COLUMNS: tuple[str, ...] = ("group", "cohort", "time", "event_time")


def check_level(level: float) -> float:
    """Validate a confidence level and return it as a float.

    Examples
    --------
    >>> check_level(0.9)
    0.9
    """
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < 1.0:
        raise DesignError(
            f"level must be a number strictly between 0 and 1, got {level!r}",
            hint="use level=0.95 for 95% confidence intervals",
            column="level",
        )
    return value


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
        Why this method was used when it was chosen automatically, else None.
    """

    method: str
    description: str
    distribution: str = "normal"
    cluster: str | None = None
    n_clusters: int | None = None
    reason: str | None = None
    reps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary."""
        return {k: jsonable(v) for k, v in self.__dict__.items()}


def jsonable(value: Any) -> Any:
    """Convert numpy and pandas scalars and containers to plain JSON-safe Python.

    Non-finite floats become None (JSON has no NaN).

    Examples
    --------
    >>> jsonable({"a": np.float64(1.5), "b": np.array([1, 2]), "c": float("nan")})
    {'a': 1.5, 'b': [1, 2], 'c': None}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


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

    labels: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, eq=False)
class Result:
    """Estimates from one fit, with their inference.

    Results are created by estimators' ``fit`` methods; users do not build them. The
    table has the columns of :data:`TIDY_COLUMNS` (``term`` first), any key columns that
    apply (``group``, ``cohort``, ``time``, ``event_time``), optionally ``truth`` (the
    planted effect in simulated data) and, internally, ``df`` (degrees of freedom of a t
    reference distribution; missing for the normal).

    Attributes
    ----------
    estimator
        Registry name of the estimator that produced the result, e.g. ``"did.TWFE"``.
    inference
        How inference was done (:class:`InferenceInfo`).
    info
        Facts about the fit: numbers of observations, units and periods, roles,
        options, the seed, and anything estimator-specific.
    level
        Confidence level of the stored intervals.
    """

    estimator: str
    _table: pd.DataFrame
    inference: InferenceInfo
    info: Mapping[str, Any] = field(default_factory=dict)
    level: float = 0.95
    _vcov: np.ndarray | None = None
    _scores: Scores | None = None

    def __post_init__(self) -> None:
        table = self._table.reset_index(drop=True).copy()
        for col in ("estimate", "std_error"):
            if col not in table:
                raise ValueError(f"result table lacks {col!r}")  # programming error
        if "df" not in table:
            table["df"] = np.nan
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "info", _freeze(self.info))
        if self._vcov is not None:
            vcov = np.array(self._vcov, dtype=float)
            vcov.setflags(write=False)
            object.__setattr__(self, "_vcov", vcov)
        _fill_inference(self._table, self.level)

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
        """Return one standard error by term (and keys)."""
        return float(self._row(term, keys)["std_error"])

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
            Confidence level of ``conf_low``/``conf_high``; defaults to the fit's level.

        Returns
        -------
        pandas.DataFrame
            Columns ``term, estimate, std_error, statistic, p_value, conf_low, conf_high``,
            then key columns that apply and ``truth`` where the true value is known.
        """
        table = self._table.copy()
        if level is not None and check_level(level) != self.level:
            _fill_inference(table, check_level(level), intervals_only=True)
        keys = [c for c in KEY_COLUMNS if c in table]
        extra = [c for c in table.columns if c not in TIDY_COLUMNS and c not in keys]
        extra = [c for c in extra if c == "truth"]
        return table[[*TIDY_COLUMNS, *keys, *extra]].reset_index(drop=True)

    def ci(self, level: float | None = None) -> pd.DataFrame:
        """Return confidence intervals: ``term``, keys, ``conf_low``, ``conf_high``."""
        tidy = self.tidy(level)
        keys = [c for c in KEY_COLUMNS if c in tidy]
        return tidy[["term", *keys, "conf_low", "conf_high"]]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary of the whole result (no microdata)."""
        return {
            "estimator": self.estimator,
            "level": self.level,
            "inference": self.inference.to_dict(),
            "info": jsonable(dict(self.info)),
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


def _critical(level: float, df: np.ndarray) -> np.ndarray:
    from scipy import stats  # imported on first use: it is slow to import

    q = 0.5 + level / 2.0
    crit = np.full(df.shape, stats.norm.ppf(q))
    finite = np.isfinite(df)
    if finite.any():
        crit[finite] = stats.t.ppf(q, df[finite])
    return crit


def _fill_inference(table: pd.DataFrame, level: float, intervals_only: bool = False) -> None:
    """Fill statistic, p-value and intervals from estimate, std_error and df in place.

    Columns already present and non-missing (e.g. bootstrap intervals) are kept unless
    ``intervals_only`` asks for the intervals to be recomputed at a new level.
    """
    from scipy import stats

    est = table["estimate"].to_numpy(dtype=float)
    se = table["std_error"].to_numpy(dtype=float)
    df = table["df"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, est / se, np.nan)
    if not intervals_only:
        if "statistic" not in table or table["statistic"].isna().all():
            table["statistic"] = stat
        if "p_value" not in table or table["p_value"].isna().all():
            pval = np.full(est.shape, np.nan)
            finite = np.isfinite(df)
            pval[~finite] = 2 * stats.norm.sf(np.abs(stat[~finite]))
            pval[finite] = 2 * stats.t.sf(np.abs(stat[finite]), df[finite])
            table["p_value"] = pval
    recompute = intervals_only or "conf_low" not in table or table["conf_low"].isna().all()
    if recompute:
        crit = _critical(level, df)
        table["conf_low"] = est - crit * se
        table["conf_high"] = est + crit * se


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
