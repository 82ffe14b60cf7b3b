"""The uncertainty of a result: exactly one object of a known kind.

Every :class:`~evalkit.core.result.Result` holds one of these, and its ``tidy(level=)``
and ``ci(level=)`` delegate to it:

:class:`Analytic`
    Standard errors, a covariance and a reference distribution (normal, or t with
    degrees of freedom per estimate). Intervals at any level; optionally a simultaneous
    (sup-t) :class:`Band` over some rows.
:class:`Draws`
    Bootstrap or multiplier replicates of ``theta* - theta_hat``, one column per
    estimate (aligned by the result's row labels, so linear combinations of rows are
    the same combinations of the draws). Standard errors from the draws; intervals from
    the standard error (``interval="se"``) or the percentiles of the draws
    (``"percentile"``); sup-t bands where kept. Any level.
:class:`TestInversion`
    p-values and intervals from a randomization, wild-bootstrap, placebo or conformal
    procedure that inverts a test; no standard error. The level is fixed at fit time
    unless the procedure kept what it needs to recompute (``invert``); the p-value
    granularity (1/10 with ten cities) is recorded.
:class:`NoInference`
    Point estimates only, with the reason.

A standard error or interval that cannot be computed is never a silent NaN: the
columns are left empty and :meth:`Uncertainty.missing` says why (it is copied into the
result's :class:`~evalkit.core.result.InferenceInfo`), or asking for it raises a
:class:`~evalkit.errors.LevelFixedError`.

Procedures in :mod:`evalkit.inference` return plain arrays and callables; the estimator
families wrap them in these objects (``evalkit.inference`` does not import
``evalkit.core``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from evalkit.errors import LevelFixedError
from evalkit.inference.multiplier import sup_t_critical_value
from evalkit.numerics.levels import check_level

__all__ = [
    "KINDS",
    "Analytic",
    "Band",
    "Draws",
    "NoInference",
    "TestInversion",
    "Uncertainty",
    "critical_values",
]

KINDS: tuple[str, ...] = ("analytic", "draws", "test_inversion", "none")


def _array(values: Any, k: int | None = None, fill: float = np.nan) -> np.ndarray:
    if values is None:
        return np.full(k or 0, fill)
    arr = np.array(values, dtype=float).reshape(-1)
    if k is not None and arr.shape[0] != k:
        if arr.shape[0] == 1:
            return np.full(k, float(arr[0]))
        raise ValueError(f"expected {k} values, got {arr.shape[0]}")  # programming error
    arr.setflags(write=False)
    return arr


def critical_values(level: float, df: np.ndarray) -> np.ndarray:
    """Two-sided critical values: t with ``df`` where finite, normal where infinite or NaN.

    Examples
    --------
    >>> critical_values(0.95, np.array([np.inf, 10.0])).round(3).tolist()
    [1.96, 2.228]
    """
    from scipy import stats  # imported on first use: it is slow to import

    q = 0.5 + level / 2.0
    df = np.asarray(df, dtype=float)
    crit = np.full(df.shape, stats.norm.ppf(q))
    finite = np.isfinite(df)
    if finite.any():
        crit[finite] = stats.t.ppf(q, df[finite])
    return crit


def _wald(estimate: np.ndarray, se: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, estimate / se, np.nan)
    pval = np.full(estimate.shape, np.nan)
    finite = np.isfinite(df)
    pval[~finite] = 2 * stats.norm.sf(np.abs(stat[~finite]))
    pval[finite] = 2 * stats.t.sf(np.abs(stat[finite]), df[finite])
    return stat, pval


@dataclass(frozen=True, eq=False)
class Band:
    """A simultaneous (sup-t) confidence band over some rows.

    Attributes
    ----------
    sup_t
        ``(reps,)`` the largest absolute t-statistic of each bootstrap draw over the
        rows in the band (no microdata), kept so the band can be given at any level.
    rows
        Boolean mask of the rows the band covers (the others get pointwise intervals).
    """

    sup_t: np.ndarray
    rows: np.ndarray

    def critical_value(self, level: float) -> float:
        """Return the ``level`` quantile of the sup-t draws (R's type-1 quantile); NaN if none."""
        return sup_t_critical_value(self.sup_t, level)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe summary (the number of draws and rows, not the draws)."""
        return {"reps": int(self.sup_t.shape[0]), "rows": [bool(r) for r in self.rows]}


class Uncertainty:
    """Base class of the four kinds; see the module docstring."""

    kind: ClassVar[str] = ""

    def columns(self, estimate: np.ndarray, level: float) -> dict[str, np.ndarray]:
        """Return ``std_error, statistic, p_value, conf_low, conf_high`` at ``level``."""
        raise NotImplementedError  # pragma: no cover

    def recomputable(self, level: float) -> bool:
        """Whether intervals can be given at ``level`` (otherwise :meth:`columns` raises)."""
        return True

    def missing(self) -> str | None:
        """Why standard errors or intervals are empty (None when they are all there)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description of the uncertainty (no microdata)."""
        return {"kind": self.kind}


def _se_columns(
    estimate: np.ndarray,
    std_error: np.ndarray,
    df: np.ndarray,
    level: float,
    band: Band | None,
    shift: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return the Wald columns of standard errors ``std_error`` at ``level``.

    Intervals are ``estimate + shift`` when given (percentiles of draws), else
    ``estimate -/+ crit * se``; rows of a band use the sup-t critical value.
    """
    est = np.asarray(estimate, dtype=float)
    se = np.array(std_error)
    stat, pval = _wald(est, se, df)
    if shift is None:
        crit = critical_values(level, df)
        lo, hi = est - crit * se, est + crit * se
    else:
        lo, hi = est + shift[0], est + shift[1]
    _band_intervals(est, se, lo, hi, band, level)
    return {"std_error": se, "statistic": stat, "p_value": pval, "conf_low": lo, "conf_high": hi}


def _band_intervals(
    estimate: np.ndarray,
    se: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    band: Band | None,
    level: float,
) -> None:
    if band is None:
        return
    crit = band.critical_value(level)
    rows = band.rows
    lo[rows] = (estimate - crit * se)[rows]
    hi[rows] = (estimate + crit * se)[rows]


@dataclass(frozen=True, eq=False)
class Analytic(Uncertainty):
    """Standard errors with a normal or t reference distribution.

    Parameters
    ----------
    std_error
        ``(k,)`` standard errors.
    df
        ``(k,)`` degrees of freedom of the t reference; ``inf`` (or None) for the normal.
    vcov
        ``(k, k)`` covariance of the estimates, where known.
    band
        Optional simultaneous band over some rows.
    note
        Why some standard errors are not defined (required when any is not finite).

    Examples
    --------
    >>> u = Analytic(np.array([0.5]), df=np.array([np.inf]))
    >>> cols = u.columns(np.array([1.0]), 0.95)
    >>> round(float(cols["conf_low"][0]), 3), round(float(cols["p_value"][0]), 4)
    (0.02, 0.0455)
    """

    kind: ClassVar[str] = "analytic"
    std_error: np.ndarray
    df: np.ndarray | None = None
    vcov: np.ndarray | None = None
    band: Band | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        se = _array(self.std_error)
        object.__setattr__(self, "std_error", se)
        object.__setattr__(self, "df", _array(self.df, len(se), np.inf))
        if self.vcov is not None:
            vcov = np.array(self.vcov, dtype=float)
            vcov.setflags(write=False)
            object.__setattr__(self, "vcov", vcov)
        bad = int((~np.isfinite(se)).sum())
        if bad and self.note is None:
            object.__setattr__(
                self,
                "note",
                f"the standard error is not defined for {bad} of {len(se)} estimate(s)",
            )

    def columns(self, estimate: np.ndarray, level: float) -> dict[str, np.ndarray]:
        """Return the Wald statistic, p-value and ``estimate -/+ crit * se`` at ``level``."""
        assert self.df is not None  # filled in __post_init__
        return _se_columns(estimate, self.std_error, self.df, level, self.band)

    def missing(self) -> str | None:
        """Return the note on undefined standard errors, if any."""
        return self.note

    def to_dict(self) -> dict[str, Any]:
        """Return the kind, reference distribution and band (SEs are in the tidy rows)."""
        finite = np.isfinite(self.df) if self.df is not None else np.zeros(0, dtype=bool)
        return {
            "kind": self.kind,
            "distribution": "t" if finite.any() else "normal",
            "band": None if self.band is None else self.band.to_dict(),
            "note": self.note,
        }


@dataclass(frozen=True, eq=False)
class Draws(Uncertainty):
    """Resampling replicates: standard errors and intervals from the draws.

    Parameters
    ----------
    draws
        ``(reps, k)`` replicates of ``theta* - theta_hat`` (centred), columns in the
        result's row order; None when only summaries were kept.
    std_error
        ``(k,)`` standard errors from the draws (e.g. the normalised interquartile range).
    interval
        ``"se"``: ``estimate -/+ z * se`` (pointwise) or the sup-t band;
        ``"percentile"``: ``estimate + quantiles of the draws`` (needs ``draws``).
    band
        Optional simultaneous band over some rows.
    method, reps, weights, seed
        How the draws were made (reported in ``to_dict``).
    labels
        Labels of the clusters the draws resampled, when they are aligned by cluster.

    Notes
    -----
    p-values are two-sided Wald p-values of ``estimate / se`` against the normal.

    Examples
    --------
    >>> d = np.random.default_rng(0).normal(0, 0.5, size=(2000, 1))
    >>> u = Draws(d, np.array([0.5]), reps=2000, method="bootstrap")
    >>> u.recomputable(0.9)
    True
    """

    kind: ClassVar[str] = "draws"
    draws: np.ndarray | None
    std_error: np.ndarray
    interval: str = "se"
    band: Band | None = None
    method: str = "bootstrap"
    reps: int | None = None
    weights: str | None = None
    seed: int | None = None
    labels: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "std_error", _array(self.std_error))
        if self.draws is not None:
            draws = np.array(self.draws, dtype=float)
            draws.setflags(write=False)
            object.__setattr__(self, "draws", draws)
            if self.reps is None:
                object.__setattr__(self, "reps", int(draws.shape[0]))
        if self.interval not in ("se", "percentile"):
            raise ValueError(f"interval must be 'se' or 'percentile', got {self.interval!r}")
        if self.interval == "percentile" and self.draws is None:
            raise ValueError("percentile intervals need the draws")

    @property
    def df(self) -> np.ndarray:
        """Normal reference (``inf``) for every row."""
        return np.full(self.std_error.shape, np.inf)

    def columns(self, estimate: np.ndarray, level: float) -> dict[str, np.ndarray]:
        """Return standard errors from the draws, Wald p-values and intervals at ``level``."""
        shift = None
        if self.interval == "percentile":
            assert self.draws is not None
            a = (1.0 - level) / 2.0
            shift = np.quantile(self.draws, [a, 1.0 - a], axis=0, method="inverted_cdf")
        return _se_columns(estimate, self.std_error, self.df, level, self.band, shift)

    @property
    def vcov(self) -> np.ndarray | None:
        """Covariance of the draws (``k x k``), if kept."""
        if self.draws is None:
            return None
        return np.atleast_2d(np.cov(self.draws, rowvar=False))

    def to_dict(self) -> dict[str, Any]:
        """Return the kind and settings of the draws (not the draws)."""
        return {
            "kind": self.kind,
            "method": self.method,
            "reps": self.reps,
            "weights": self.weights,
            "seed": self.seed,
            "interval": self.interval,
            "band": None if self.band is None else self.band.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class TestInversion(Uncertainty):
    """p-values and intervals from inverting a test; no standard error.

    Parameters
    ----------
    p_value
        ``(k,)`` p-values of the null of no effect.
    conf_low, conf_high
        ``(k,)`` interval bounds at ``level`` (the set of hypothesised effects the test
        does not reject); infinite where the set is unbounded, NaN where not computed.
    level
        The level the intervals were computed at.
    method
        The procedure, e.g. ``"wild"`` or ``"permutation"``.
    granularity
        The smallest step between attainable p-values (1/10 with ten cities), or None.
    statistic
        ``(k,)`` the test statistic, where one is reported.
    invert
        ``invert(level) -> (conf_low, conf_high)``: recomputes the intervals at another
        level (e.g. from a stored null distribution or a p-value function of the
        hypothesised effect); None when the level is fixed at fit time.
    note
        What the procedure is, for the inference description.

    Examples
    --------
    >>> u = TestInversion(np.array([0.1]), np.array([-1.0]), np.array([2.0]), 0.9,
    ...                   method="permutation", granularity=0.1)
    >>> u.recomputable(0.95)
    False
    """

    __test__ = False  # not a pytest test class

    kind: ClassVar[str] = "test_inversion"
    p_value: np.ndarray
    conf_low: np.ndarray
    conf_high: np.ndarray
    level: float
    method: str
    granularity: float | None = None
    statistic: np.ndarray | None = None
    invert: Callable[[float], tuple[np.ndarray, np.ndarray]] | None = field(
        default=None, repr=False
    )
    note: str | None = None

    def __post_init__(self) -> None:
        p = _array(self.p_value)
        object.__setattr__(self, "p_value", p)
        object.__setattr__(self, "conf_low", _array(self.conf_low, len(p)))
        object.__setattr__(self, "conf_high", _array(self.conf_high, len(p)))
        object.__setattr__(self, "level", check_level(self.level))
        if self.statistic is not None:
            object.__setattr__(self, "statistic", _array(self.statistic, len(p)))

    def recomputable(self, level: float) -> bool:
        """Return True at the fit's level, or at any level when ``invert`` was kept."""
        return self.invert is not None or check_level(level) == self.level

    def columns(self, estimate: np.ndarray, level: float) -> dict[str, np.ndarray]:
        """Return empty standard errors, the p-values and the intervals at ``level``.

        Raises
        ------
        LevelFixedError
            At a level other than the fit's when the procedure cannot recompute.
        """
        k = len(self.p_value)
        if check_level(level) == self.level:
            lo, hi = np.array(self.conf_low), np.array(self.conf_high)
        elif self.invert is not None:
            lo_new, hi_new = self.invert(level)
            lo, hi = _array(lo_new, k).copy(), _array(hi_new, k).copy()
        else:
            raise LevelFixedError(
                f"the intervals of this result come from inverting a {self.method} test at "
                f"level {self.level:g}, fixed at fit time; they cannot be given at level "
                f"{level:g}",
                hint=f"refit with fit(..., level={level:g})",
                column="level",
            )
        stat = np.full(k, np.nan) if self.statistic is None else np.array(self.statistic)
        return {
            "std_error": np.full(k, np.nan),
            "statistic": stat,
            "p_value": np.array(self.p_value),
            "conf_low": lo,
            "conf_high": hi,
        }

    def missing(self) -> str:
        """Return why there is no standard error (and whether other levels are available)."""
        text = f"no standard error: p-values and intervals come from inverting a {self.method} test"
        if self.granularity is not None:
            text += f"; p-values move in steps of {self.granularity:.4g}"
        if self.invert is None:
            text += f"; intervals only at the fit's level {self.level:g}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Return the kind, procedure, level, granularity and whether levels can change."""
        return {
            "kind": self.kind,
            "method": self.method,
            "level": self.level,
            "granularity": self.granularity,
            "recomputable": self.invert is not None,
            "note": self.note,
        }


@dataclass(frozen=True, eq=False)
class NoInference(Uncertainty):
    """Point estimates only; ``reason`` says why (e.g. ``inference='none'`` was asked for).

    Examples
    --------
    >>> NoInference("a decomposition has no sampling distribution").missing()
    'no standard errors or intervals: a decomposition has no sampling distribution'
    """

    kind: ClassVar[str] = "none"
    reason: str = "inference='none' was requested"

    def columns(self, estimate: np.ndarray, level: float) -> dict[str, np.ndarray]:
        """Return every inference column empty."""
        empty = np.full(np.asarray(estimate).shape, np.nan)
        return {
            c: empty.copy() for c in ("std_error", "statistic", "p_value", "conf_low", "conf_high")
        }

    def missing(self) -> str:
        """Return the reason."""
        return f"no standard errors or intervals: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """Return the kind and reason."""
        return {"kind": self.kind, "reason": self.reason}
