"""Shared machinery of the regression-based difference-in-differences estimators.

:class:`~evalkit.did.TWFE`, :class:`~evalkit.did.EventStudy`,
:class:`~evalkit.did.SunAbraham`, :class:`~evalkit.did.TripleDiff` and
:class:`~evalkit.did.ImputationDiD` all regress an outcome on a few regressors with
fixed effects absorbed, and share:

- option checks (:func:`check_name`, :func:`check_names`);
- dropping rows that carry no information (:func:`prune`: zero weights and, repeatedly,
  singleton levels of any fixed effect);
- the absorbed least-squares fit (:func:`absorbed_ols`) and its rank check;
- the exact number of free fixed-effect parameters (:func:`absorbed_rank`);
- the choice of inference and its covariance (:func:`regression_inference`,
  :func:`covariance`, :func:`inference_info`), including CR2 degrees of freedom for
  linear combinations of coefficients (:func:`cr2_contrasts`);
- a joint Wald test (:func:`wald_test`);
- the staggered-adoption sample (cohorts, event times) of the event-study estimators
  (:func:`staggered_sample`), and their result type (:class:`EventTimeResult`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core.result import InferenceInfo, Result, Scores
from evalkit.data.panel import Panel, nested_within
from evalkit.data.periods import PeriodCoding, period_label
from evalkit.errors import (
    DataError,
    DesignError,
    InferenceNotSupportedError,
    NotEstimableError,
    RowsDroppedWarning,
)
from evalkit.inference import vcov as sandwich
from evalkit.inference.policy import Choice, choose_inference, count_clusters
from evalkit.numerics.within import WithinTransform

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from scipy import sparse

    from evalkit.core.estimator import FitContext

__all__ = [
    "REGRESSION_METHODS",
    "AbsorbedFit",
    "EventTimeResult",
    "NestedProjectedDesign",
    "StaggeredSample",
    "UnitDemeanedDesign",
    "absorbed_ols",
    "absorbed_rank",
    "check_name",
    "check_names",
    "check_rank",
    "check_role_names",
    "covariance",
    "cr2_contrasts",
    "inference_info",
    "panel_regression",
    "prune",
    "prune_sample",
    "reference_periods",
    "regression_inference",
    "regression_scores",
    "staggered_sample",
    "wald_test",
]

#: The inference methods of the regression estimators (TWFE, EventStudy, SunAbraham,
#: TripleDiff); their automatic choice is :func:`evalkit.inference.choose_inference`'s.
REGRESSION_METHODS: tuple[str, ...] = ("iid", "hetero", "cluster", "cr2", "none")


# ---------------------------------------------------------------------------- options
def check_name(value: Any, option: str, required: bool = True) -> None:
    """Raise a DesignError unless ``value`` is a column name (or None when optional).

    Examples
    --------
    >>> check_name("year", "time")
    >>> check_name(None, "weights", required=False)
    """
    if value is None and not required:
        return
    if not isinstance(value, str) or not value:
        raise DesignError(
            f"{option} must be a column name (a non-empty string), got {value!r}",
            hint=f"e.g. {option}='my_column'",
            column=option,
        )


def check_names(value: Any, option: str) -> tuple[str, ...]:
    """Normalise a column or list of columns (None = none) to a tuple of names.

    Examples
    --------
    >>> check_names("x", "covariates"), check_names(None, "covariates")
    (('x',), ())
    """
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        check_name(name, option)
    return names


def check_role_names(est: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Validate an estimator's role options and normalise its covariates (in place).

    ``required`` options must name a column, ``optional`` ones may be None; a
    ``covariates`` field becomes a tuple of names.
    """
    for option in required:
        check_name(getattr(est, option), option)
    for option in optional:
        check_name(getattr(est, option), option, required=False)
    if hasattr(est, "covariates"):
        object.__setattr__(est, "covariates", check_names(est.covariates, "covariates"))


# ---------------------------------------------------------------------------- pruning
def prune(
    factors: Sequence[tuple[np.ndarray, int]],
    w: np.ndarray | None,
    singletons: bool,
    label: str = "singleton units or periods",
    complete: bool = False,
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows to keep: positive weight and (optionally) no singleton level of any factor.

    Singletons are removed repeatedly until none is left (as reghdfe and pyfixest do):
    a level observed once is fitted exactly by its own effect and says nothing about
    the coefficients.

    Parameters
    ----------
    factors
        ``(codes, n_levels)`` of every absorbed factor.
    w
        Observation weights or None.
    singletons
        Whether to drop singletons.
    label
        How the singletons are described in the returned reasons.
    complete
        The caller knows the rows form a complete grid of at least two levels per factor
        (no singletons, nothing to check).

    Returns
    -------
    keep : numpy.ndarray
        Boolean mask of rows to keep.
    reasons : dict
        Number of rows dropped, by reason (empty when nothing is dropped).

    Examples
    --------
    >>> u = np.array([0, 0, 1]); t = np.array([0, 1, 0])
    >>> keep, why = prune([(u, 2), (t, 2)], None, True)
    >>> keep.tolist(), why
    ([False, False, False], {'singleton units or periods': 3})
    """
    n = len(factors[0][0])
    keep = np.ones(n, dtype=bool) if w is None else w > 0
    reasons: dict[str, int] = {}
    if complete and w is None:
        return keep, reasons  # a complete grid has no singletons
    if w is not None and not keep.all():
        reasons["with zero weight"] = int((~keep).sum())
    if singletons:
        before = int(keep.sum())
        while True:
            changed = False
            for codes, size in factors:
                counts = np.bincount(codes[keep], minlength=size)
                single = keep & (counts[codes] == 1)
                if single.any():
                    keep &= ~single
                    changed = True
            if not changed:
                break
        if int(keep.sum()) < before:
            reasons[label] = before - int(keep.sum())
    return keep, reasons


def warn_dropped(reasons: Mapping[str, int], n_rows: int, stacklevel: int = 4) -> None:
    """Issue one RowsDroppedWarning listing the rows dropped by reason."""
    total = int(sum(reasons.values()))
    warnings.warn(
        f"dropped {total} of {n_rows} rows that carry no information about the "
        f"coefficients ({'; '.join(f'{n} {r}' for r, n in reasons.items())})",
        RowsDroppedWarning,
        stacklevel=stacklevel,
    )


# ---------------------------------------------------------------------------- fitting
@dataclasses.dataclass(frozen=True)
class AbsorbedFit:
    """Least squares with fixed effects absorbed (rows scaled by sqrt of the weights).

    Attributes
    ----------
    names : list of str
        Regressor names.
    beta : numpy.ndarray
        Coefficients.
    bread : numpy.ndarray
        ``(X~'X~)^{-1}`` of the transformed regressors.
    xt, yt, resid : numpy.ndarray
        Transformed regressors and outcome, and residuals.
    """

    names: list[str]
    beta: np.ndarray
    bread: np.ndarray
    xt: np.ndarray
    yt: np.ndarray
    resid: np.ndarray

    @property
    def n(self) -> int:
        """Number of observations."""
        return len(self.yt)

    @property
    def k(self) -> int:
        """Number of regressors."""
        return len(self.beta)

    def r2_within(self) -> float:
        """Return the within R-squared."""
        ss_tot = float(self.yt @ self.yt)
        return 1.0 - float(self.resid @ self.resid) / ss_tot if ss_tot > 0 else math.nan


def absorbed_ols(
    y: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    within: WithinTransform,
    w: np.ndarray | None,
    absorbed_by: str,
    hint: str | None = None,
) -> AbsorbedFit:
    """Fit ``y`` on ``x`` with the fixed effects of ``within`` absorbed.

    Raises :class:`~evalkit.errors.NotEstimableError` naming the first regressor that
    is collinear with the fixed effects or the other regressors.

    Examples
    --------
    >>> u = np.array([0, 0, 1, 1]); t = np.array([0, 1, 0, 1])
    >>> d = np.array([[0.0], [0.0], [0.0], [1.0]])
    >>> fit = absorbed_ols(np.array([1.0, 2.0, 3.0, 6.0]), d, ["d"],
    ...                    WithinTransform((u, t)), None, "unit and time")
    >>> float(fit.beta[0])
    2.0
    """
    names = list(names)
    yt = within.demean(y)
    xt = within.demean(x)
    if w is not None:
        sw = np.sqrt(w)
        yt = yt * sw
        xt = xt * sw[:, None]
    check_rank(xt, x, names, absorbed_by, w, hint=hint)
    bread = np.linalg.inv(xt.T @ xt)
    beta = bread @ (xt.T @ yt)
    resid = yt - xt @ beta
    return AbsorbedFit(names=names, beta=beta, bread=bread, xt=xt, yt=yt, resid=resid)


def check_rank(
    xt: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    absorbed_by: str,
    w: np.ndarray | None,
    hint: str | None = None,
) -> None:
    """Raise NotEstimableError naming the first regressor absorbed by the fixed effects.

    ``absorbed_by`` names the fixed effects in the message (e.g. ``"unit and year"``).
    """
    raw = x - np.average(x, axis=0, weights=w)
    if w is not None:
        raw = raw * np.sqrt(w)[:, None]
    raw_norm = np.sqrt((raw**2).sum(axis=0))
    if xt.shape[1] == 0:
        return
    try:
        # the diagonal of the Cholesky factor of X'X is that of R in X = QR (fast), but
        # squaring X loses half the digits: an exactly collinear column leaves a pivot of
        # about sqrt(eps) instead of eps, so doubtful cases are decided by QR of X itself
        diag = np.abs(np.diag(np.linalg.cholesky(xt.T @ xt)))
        if not np.all(diag > 1e-6 * raw_norm):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        diag = np.abs(np.diag(np.linalg.qr(xt, mode="r")))
    for j, name in enumerate(names):
        if raw_norm[j] == 0 or not diag[j] > 1e-9 * raw_norm[j]:
            raise NotEstimableError(
                f"{name!r} cannot be estimated: it is collinear with the {absorbed_by} fixed "
                "effects or with the other regressors",
                hint=hint
                or f"drop {name!r}; time-invariant covariates are absorbed by the unit effects",
                column=name,
            )


def absorbed_rank(
    factors: Sequence[np.ndarray], within: WithinTransform | None = None, max_dense: int = 6000
) -> tuple[int, bool]:
    """Return the number of free fixed-effect parameters and whether it is exact.

    One factor: its number of levels. Two factors: levels minus connected components
    (exact). Three or more: the rank of the dummy matrix, computed on the distinct
    cells as the levels of the largest factor plus the rank of the others' Gram matrix
    with that factor projected out (exact while the others have at most ``max_dense``
    levels in total; otherwise the lower bound of :meth:`WithinTransform.n_absorbed` is
    returned with ``False``).

    Examples
    --------
    >>> u, g, t = np.meshgrid(np.arange(3), np.arange(2), np.arange(4), indexing="ij")
    >>> u, g, t = u.ravel(), g.ravel(), t.ravel()
    >>> absorbed_rank([u * 2 + g, t * 2 + g, u * 4 + t])  # UG+TG+UT-U-G-T+1
    (18, True)
    """
    codes = [np.unique(np.asarray(f), return_inverse=True)[1].astype(np.int64) for f in factors]
    if len(codes) <= 2:
        wt = within if within is not None else WithinTransform(tuple(codes))
        return wt.n_absorbed(), True
    levels = [int(c.max()) + 1 for c in codes]
    base = int(np.argmax(levels))
    others = [i for i in range(len(codes)) if i != base]
    if sum(levels[i] for i in others) > max_dense:
        wt = within if within is not None else WithinTransform(tuple(codes))
        return wt.n_absorbed(), False
    from scipy import sparse  # imported on first use: SciPy is slow to import

    cells = np.unique(np.column_stack(codes), axis=0)
    n_cells = len(cells)
    rows = np.arange(n_cells)

    def onehot(col: np.ndarray, size: int) -> sparse.csr_matrix:
        return sparse.csr_matrix((np.ones(n_cells), (rows, col)), shape=(n_cells, size))

    m = onehot(cells[:, base], levels[base])
    r = sparse.hstack([onehot(cells[:, i], levels[i]) for i in others], format="csr")
    counts = np.asarray(m.sum(axis=0)).ravel()
    mr = (m.T @ r).tocsr()  # sparse: each level of the base factor meets few others
    gram = (r.T @ r).toarray() - (mr.T @ sparse.diags(1.0 / counts) @ mr).toarray()
    vals = np.linalg.eigvalsh((gram + gram.T) / 2.0)
    tol = max(vals.max(initial=0.0), 1.0) * 1e-9
    return levels[base] + int((vals > tol).sum()), True


# ---------------------------------------------------------------------------- inference
def regression_inference(
    spec: Any,
    supported: tuple[str, ...],
    *,
    clusters: np.ndarray,
    time: np.ndarray,
    treated: np.ndarray,
    cluster_name: str,
    design: str = "regression",
    unit: np.ndarray | None = None,
    stacklevel: int = 4,
) -> Choice:
    """Count the clusters that matter, choose the inference by the one policy and warn.

    See :func:`evalkit.inference.policy.choose_inference`; ``treated`` marks the treated
    observations, ``unit`` (optional) the level treatment is compared at. ``stacklevel``
    counts from the caller of this function (1 = the caller).
    """
    counts = count_clusters(clusters, time, treated, name=cluster_name, unit=unit)
    choice = choose_inference(spec, supported=supported, counts=counts, design=design)
    choice.warn(stacklevel=stacklevel + 1)
    return choice


def covariance(
    method: str,
    fit: AbsorbedFit,
    *,
    clusters: np.ndarray,
    n_clusters: int,
    k_total: int,
    k_small: int,
    design_rows: Callable[[np.ndarray], np.ndarray] | None,
    cluster_name: str,
) -> sandwich.Sandwich:
    """Return the covariance of ``fit`` for an inference method.

    ``k_total`` counts the regressors and every free fixed-effect parameter (iid, HC1);
    ``k_small`` is the parameter count of the CR1 small-sample factor; ``design_rows``
    gives the rows of the regressors and non-nested fixed effects with the nested ones
    projected out (CR2; None when the fixed effects are not nested in the clusters).
    """
    n, k = fit.n, fit.k
    if n - k_total <= 0:
        raise NotEstimableError(
            f"no residual degrees of freedom: {n} rows for {k_total} parameters",
            hint="more periods or units are needed than fixed effects",
        )
    if method == "none":
        return sandwich.Sandwich(np.full((k, k), np.nan), np.full(k, np.inf))
    if method == "iid":
        return sandwich.iid(fit.bread, fit.resid, n, k_total)
    if method == "hetero":
        return sandwich.hc1(fit.bread, fit.xt, fit.resid, n, k_total)
    if n_clusters < 2:
        raise NotEstimableError(
            f"cluster-robust inference needs at least 2 clusters of {cluster_name!r}",
            column=cluster_name,
        )
    if method == "cluster":
        return sandwich.cr1(fit.bread, fit.xt, fit.resid, clusters, n_clusters, n, k_small)
    if design_rows is None:
        raise InferenceNotSupportedError(
            f"CR2 here requires the units to lie within one {cluster_name!r} cluster each",
            hint="cluster by the unit or a coarser grouping of it, or use inference='cluster'",
            column=cluster_name,
        )
    return sandwich.cr2_nested(fit.bread, fit.xt, fit.resid, clusters, n_clusters, design_rows)


def _complete_basis(c: np.ndarray) -> np.ndarray:
    """Return an invertible square matrix whose first rows are the full-rank rows ``c``."""
    import scipy.linalg

    m, k = c.shape
    _, _, piv = scipy.linalg.qr(c, pivoting=True, mode="economic")
    rest = np.sort(piv[m:])
    extra = np.zeros((k - m, k))
    extra[np.arange(k - m), rest] = 1.0
    return np.vstack([c, extra])


def cr2_contrasts(
    fit: AbsorbedFit,
    contrasts: np.ndarray,
    clusters: np.ndarray,
    n_clusters: int,
    design_rows: Callable[[np.ndarray], np.ndarray],
) -> sandwich.Sandwich:
    """CR2 covariance and Satterthwaite df of linear combinations ``contrasts @ beta``.

    The regression is reparametrised so that the (linearly independent) combinations
    are coefficients: with ``A`` invertible and its first rows the contrasts, the model
    ``X b = (X A^{-1}) (A b)`` has the same fit and hat matrix, so CR2 of the new
    coefficients is ``A V A'`` and their Satterthwaite df are those of the contrasts.

    Examples
    --------
    A contrast equal to a coefficient gets that coefficient's variance and df (see the
    tests of :class:`~evalkit.did.SunAbraham`).
    """
    c = np.atleast_2d(np.asarray(contrasts, dtype=float))
    m = c.shape[0]
    a = _complete_basis(c)
    a_inv = np.linalg.inv(a)
    k = fit.k
    x_new = fit.xt @ a_inv
    bread_new = a @ fit.bread @ a.T

    def rows(idx: np.ndarray) -> np.ndarray:
        u = design_rows(idx)
        u = u.copy()
        u[:, :k] = u[:, :k] @ a_inv
        return u

    cov = sandwich.cr2_nested(bread_new, x_new, fit.resid, clusters, n_clusters, rows)
    return sandwich.Sandwich(cov.vcov[:m, :m], cov.df[:m])


def inference_info(
    method: str, cluster: str, n_clusters: int, reason: str | None, df: np.ndarray
) -> InferenceInfo:
    """Describe the inference of a regression result."""
    if method == "none":
        return InferenceInfo("none", "point estimates only", reason=reason)
    if method in ("iid", "hetero"):
        label = "classical" if method == "iid" else "heteroskedasticity-robust (HC1)"
        return InferenceInfo(
            method, f"{label} standard errors, t({int(df[0])})", distribution="t", reason=reason
        )
    if method == "cluster":
        text = f"CR1 cluster-robust by {cluster} ({n_clusters} clusters), t({n_clusters - 1})"
    else:
        text = (
            f"CR2 (Bell-McCaffrey) cluster-robust by {cluster} ({n_clusters} clusters), "
            "Satterthwaite degrees of freedom"
        )
    return InferenceInfo(
        method, text, distribution="t", cluster=cluster, n_clusters=n_clusters, reason=reason
    )


def wald_test(
    beta: np.ndarray, vcov: np.ndarray, df_denominator: float, what: str, method: str
) -> dict[str, Any]:
    """Joint Wald test that all of ``beta`` are zero, as an F statistic.

    ``F = b' V^{-1} b / q`` referred to ``F(q, df_denominator)`` (chi-squared / q when
    the denominator df is infinite), the convention of Stata's ``test`` and pyfixest's
    ``wald_test`` after a cluster-robust fit (``df_denominator = G - 1``).

    Examples
    --------
    >>> out = wald_test(np.array([1.0, 1.0]), np.eye(2), np.inf, "leads", "iid")
    >>> out["statistic"], round(out["p_value"], 4)
    (1.0, 0.3679)
    """
    from scipy import stats

    q = len(beta)
    vals, vecs = np.linalg.eigh((vcov + vcov.T) / 2.0)
    keep = vals > max(vals.max(initial=0.0), 0.0) * 1e-12
    rank = int(keep.sum())
    if rank == 0:
        raise NotEstimableError(f"the covariance of the {what} is zero: no Wald test")
    proj = vecs[:, keep].T @ beta
    w = float(np.sum(proj**2 / vals[keep]))
    f = w / rank
    if math.isfinite(df_denominator):
        p = float(stats.f.sf(f, rank, df_denominator))
        dist = f"F({rank}, {df_denominator:g})"
    else:
        p = float(stats.chi2.sf(w, rank))
        dist = f"chi2({rank})/{rank}"
    return {
        "hypothesis": f"all {what} are zero",
        "statistic": f,
        "wald": w,
        "df1": rank,
        "df2": float(df_denominator),
        "p_value": p,
        "distribution": dist,
        "vcov": method,
        "n_restrictions": q,
    }


# ---------------------------------------------------------------------------- CR2 designs
@dataclasses.dataclass(frozen=True)
class UnitDemeanedDesign:
    """Rows of ``[X, period dummies]`` with unit (weighted) means removed, for CR2."""

    x: np.ndarray
    times: np.ndarray
    n_periods: int
    units: np.ndarray
    weights: np.ndarray | None

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Return the design rows ``idx`` (whole clusters), scaled by sqrt(weights)."""
        t = self.times[idx]
        z = np.zeros((len(idx), self.x.shape[1] + self.n_periods - 1), order="F")
        z[:, : self.x.shape[1]] = self.x[idx]
        cols = self.x.shape[1] + t - 1
        has = t > 0
        z[np.flatnonzero(has), cols[has]] = 1.0
        local, codes = np.unique(self.units[idx], return_inverse=True)
        w = self.weights[idx] if self.weights is not None else np.ones(len(idx))
        totals = np.bincount(codes, weights=w, minlength=len(local))
        for j in range(z.shape[1]):
            means = np.bincount(codes, weights=z[:, j] * w, minlength=len(local)) / totals
            z[:, j] -= means[codes]
        return z * np.sqrt(w)[:, None]


@dataclasses.dataclass(frozen=True)
class NestedProjectedDesign:
    """Rows of ``[X, dummies of the non-nested effect]`` off the nested effects, for CR2.

    ``nested`` are the codes of the fixed effects nested within the clusters (e.g.
    unit x group and unit x time when clustering by unit); their span is projected out
    within the rows requested (whole clusters), with the observation weights.
    """

    x: np.ndarray
    dummies: np.ndarray
    n_dummies: int
    nested: tuple[np.ndarray, ...]
    weights: np.ndarray | None

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Return the design rows ``idx`` (whole clusters), scaled by sqrt(weights)."""
        k = self.x.shape[1]
        z = np.zeros((len(idx), k + self.n_dummies))
        z[:, :k] = self.x[idx]
        z[np.arange(len(idx)), k + self.dummies[idx]] = 1.0
        local = tuple(np.unique(f[idx], return_inverse=True)[1] for f in self.nested)
        w = self.weights[idx] if self.weights is not None else None
        z = WithinTransform(local, weights=w, tol=1e-13).demean(z)
        return z if w is None else z * np.sqrt(w)[:, None]


# ---------------------------------------------------------------------------- staggered data
def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), len(uniq)


@dataclasses.dataclass(frozen=True)
class StaggeredSample:
    """The rows of a staggered-adoption design, as arrays with integer codes.

    Attributes
    ----------
    y, x, w
        Outcome, covariates (n, p) and weights (None when unweighted).
    unit, time, cluster
        Integer codes ``0..n-1``; ``n_units``, ``n_periods``, ``n_clusters`` levels.
    t, cohort
        Period values and each row's cohort (first treated period; 0 = never treated).
    times
        The sorted distinct periods present.
    periods
        For a date or Period time column, how the period codes map to periods.
    """

    y: np.ndarray
    x: np.ndarray
    w: np.ndarray | None
    unit: np.ndarray
    time: np.ndarray
    cluster: np.ndarray
    t: np.ndarray
    cohort: np.ndarray
    n_units: int
    n_periods: int
    n_clusters: int
    times: np.ndarray
    cluster_name: str
    nested: bool
    integer_times: bool
    dropped: dict[str, int]
    cluster_labels: np.ndarray
    periods: PeriodCoding | None = None

    @property
    def n_obs(self) -> int:
        """Number of rows."""
        return len(self.y)

    @property
    def event(self) -> np.ndarray:
        """Event time ``t - cohort`` of each row (NaN for never-treated units)."""
        with np.errstate(invalid="ignore"):
            return np.where(self.cohort > 0, self.t - self.cohort, np.nan)

    def key(self, value: float) -> Any:
        """Return an event time as an int when periods are whole numbers."""
        return period_label(value, integer=self.integer_times, periods=None)

    def label(self, value: float) -> Any:
        """Return a period or cohort as results show it (a Period for dates/periods)."""
        return period_label(value, integer=self.integer_times, periods=self.periods)

    def subset(self, mask: np.ndarray, reasons: Mapping[str, int] | None = None) -> StaggeredSample:
        """Return the rows in ``mask`` with codes recomputed (and reasons recorded)."""
        unit, n_units = _codes(self.unit[mask])
        time, n_periods = _codes(self.time[mask])
        kept_clusters = np.unique(self.cluster[mask])
        cluster, n_clusters = _codes(self.cluster[mask])
        t = self.t[mask]
        return dataclasses.replace(
            self,
            y=self.y[mask],
            x=self.x[mask],
            w=None if self.w is None else self.w[mask],
            unit=unit,
            time=time,
            cluster=cluster,
            t=t,
            cohort=self.cohort[mask],
            n_units=n_units,
            n_periods=n_periods,
            n_clusters=n_clusters,
            times=np.unique(t),
            dropped={**self.dropped, **(reasons or {})},
            cluster_labels=self.cluster_labels[kept_clusters],
        )

    def units_in(self, mask: np.ndarray) -> int:
        """Return the number of distinct units among the rows in ``mask``."""
        return int(np.unique(self.unit[mask]).size)


def staggered_sample(
    est: Any, data: pd.DataFrame, ctx: FitContext, *, stacklevel: int = 4
) -> StaggeredSample:
    """Validate a staggered-adoption design and return its rows.

    ``est`` has the roles ``outcome, unit, time, cohort`` or ``treatment``,
    ``covariates``, ``weights``, ``cluster``. The cohort is read from ``cohort``
    (never-treated coded 0 or missing) or derived from an absorbing 0/1 ``treatment``
    as each unit's first treated period. Cohorts after the last period are recoded as
    never treated; units treated from the first period on (no untreated period) are
    dropped with a :class:`~evalkit.errors.RowsDroppedWarning`.
    """
    spec = ctx.inference
    cluster_col = (spec.cluster if spec is not None else None) or est.cluster or est.unit
    panel = Panel(
        data,
        outcome=est.outcome,
        unit=est.unit,
        time=est.time,
        treatment=est.treatment,
        cohort=est.cohort,
        covariates=list(est.covariates),
        cluster=None if cluster_col == est.unit else cluster_col,
        weights=est.weights,
        panel=True,
        absorbing=est.treatment is not None,
        stacklevel=stacklevel,
    )
    t = panel.column(est.time).to_numpy(dtype=float)  # numbers, or period codes of dates
    unit = panel.unit_codes
    if est.cohort is not None:
        cohort = panel.values(est.cohort).astype(float).copy()
        if (cohort < 0).any():
            raise DataError(
                f"cohort column {est.cohort!r} has negative values",
                hint="code never-treated units as 0 (or missing) and others by their first "
                "treated period",
                column=est.cohort,
            )
    else:
        d = panel.values(est.treatment)
        first = np.full(panel.n_units, np.inf)
        np.minimum.at(first, unit[d > 0], t[d > 0])
        cohort = np.where(np.isfinite(first), first, 0.0)[unit]
    dropped = dict(panel.dropped)
    times = np.unique(t)
    late = cohort > times[-1]
    cohort[late] = 0.0  # first treated after the sample: never treated within it
    if cluster_col == est.unit:
        cluster = unit
        nested = True
        labels = np.asarray(panel.units)
    else:
        cluster = panel.cluster_codes
        nested = bool(nested_within(unit, cluster, panel.n_units).all())
        labels = np.asarray(pd.factorize(panel.column(cluster_col), sort=True)[1])
    integer_times = bool(np.all(times == np.round(times)) and np.all(cohort == np.round(cohort)))
    sample = StaggeredSample(
        y=panel.values(est.outcome).astype(float),
        x=panel.matrix(list(est.covariates)),
        w=panel.values(est.weights).astype(float) if est.weights else None,
        unit=unit,
        time=panel.time_codes,
        cluster=cluster,
        t=t,
        cohort=cohort,
        n_units=panel.n_units,
        n_periods=panel.n_periods,
        n_clusters=panel.n_clusters if cluster_col != est.unit else panel.n_units,
        times=times,
        cluster_name=cluster_col,
        nested=nested,
        integer_times=integer_times,
        dropped=dropped,
        cluster_labels=labels,
        periods=panel.periods,
    )
    early = (cohort > 0) & (cohort <= times[0])
    if early.any():
        n_units = sample.units_in(early)
        reason = "rows of units treated from the first period on"
        warnings.warn(
            f"dropped {int(early.sum())} rows of {n_units} unit(s) treated from the first "
            f"period on: they have no untreated period to compare with",
            RowsDroppedWarning,
            stacklevel=stacklevel,
        )
        sample = sample.subset(~early, {reason: int(early.sum())})
    if not (sample.cohort > 0).any():
        raise DataError(
            f"no treated units remain in {est.cohort or est.treatment!r}",
            hint="cohort must be the first treated period on the scale of "
            f"{est.time!r}, with 0 or missing for never-treated units",
            column=est.cohort or est.treatment,
        )
    return sample


def prune_sample(sample: StaggeredSample, singletons: bool, stacklevel: int = 5) -> StaggeredSample:
    """Drop zero-weight rows and (optionally) singleton units or periods, with a warning."""
    keep, reasons = prune(
        [(sample.unit, sample.n_units), (sample.time, sample.n_periods)], sample.w, singletons
    )
    if not reasons:
        return sample
    warn_dropped(reasons, len(keep), stacklevel=stacklevel)
    return sample.subset(keep, reasons)


@dataclasses.dataclass(frozen=True)
class PanelRegression:
    """A two-way fixed-effects regression on a staggered sample, with its covariance."""

    fit: AbsorbedFit
    cov: sandwich.Sandwich
    method: str
    reason: str | None
    within: WithinTransform
    k_total: int
    n_treated_clusters: int
    design: UnitDemeanedDesign | None
    n_clusters: int
    spec: Any = None

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom (rows minus regressors and fixed effects)."""
        return self.fit.n - self.k_total

    def wald_df(self) -> float:
        """Denominator df of Wald F tests: G - 1 when clustered, else the residual df."""
        if self.method in ("cluster", "cr2"):
            return float(self.n_clusters - 1)
        return float(self.df_resid)


def panel_regression(
    sample: StaggeredSample,
    x: np.ndarray,
    names: Sequence[str],
    treated: np.ndarray,
    spec: Any,
    hint: str | None = None,
    stacklevel: int = 5,
    supported: tuple[str, ...] = REGRESSION_METHODS,
) -> PanelRegression:
    """Regress the outcome on ``x`` with unit and period effects absorbed.

    ``treated`` marks the treated observations (used to count treated clusters for the
    automatic choice of inference). Inference as :class:`~evalkit.did.TWFE`.
    """
    w = sample.w
    within = WithinTransform((sample.unit, sample.time), weights=w)
    fit = absorbed_ols(sample.y, x, names, within, w, "unit and period", hint=hint)
    k_total = fit.k + within.n_absorbed()
    choice = regression_inference(
        spec,
        supported,
        clusters=sample.cluster,
        time=sample.time,
        treated=treated,
        cluster_name=sample.cluster_name,
        stacklevel=stacklevel - 1,
    )
    method, reason = choice.method, choice.reason
    n_treated = choice.counts.treated_side if choice.counts is not None else 0
    # CR1 small-sample K: unit effects nested in the clusters are not counted, the
    # period effects carry the constant (pyfixest 0.60 / fixest defaults), as TWFE.
    k_small = fit.k + sample.n_periods if sample.nested else k_total
    design = (
        UnitDemeanedDesign(x, sample.time, sample.n_periods, sample.unit, w)
        if sample.nested
        else None
    )
    cov = covariance(
        "none" if method == "wild" else method,  # wild: test inversion by the caller
        fit,
        clusters=sample.cluster,
        n_clusters=sample.n_clusters,
        k_total=k_total,
        k_small=k_small,
        design_rows=None if design is None else design.rows,
        cluster_name=sample.cluster_name,
    )
    return PanelRegression(
        fit=fit,
        cov=cov,
        method=method,
        reason=reason,
        within=within,
        k_total=k_total,
        n_treated_clusters=n_treated,
        design=design,
        n_clusters=sample.n_clusters,
        spec=choice.spec,
    )


def regression_scores(
    fit: AbsorbedFit,
    method: str,
    clusters: np.ndarray,
    n_clusters: int,
    labels: np.ndarray,
    transform: np.ndarray | None = None,
) -> Scores | None:
    """Per-cluster influence contributions of the coefficients, for ``fit(..., by=)``.

    Cluster ``c`` contributes ``(X~'X~)^{-1} X~_c' e_c`` (times ``transform``, a matrix
    of linear combinations, when given); with ``"iid"``/``"hetero"`` every row is its
    own cluster (``labels`` None). Subgroup comparisons rescale these to the reported
    standard errors.
    """
    if method == "none":
        return None
    if method in ("iid", "hetero"):
        values = (fit.xt * fit.resid[:, None]) @ fit.bread
        out_labels = None
    else:
        values = sandwich.cluster_scores(fit.xt, fit.resid, clusters, n_clusters) @ fit.bread
        out_labels = np.asarray(labels, dtype=object)
    if transform is not None:
        values = values[:, : transform.shape[1]] @ transform.T
    return Scores(out_labels, values)


def standard_errors(vcov: np.ndarray, method: str) -> np.ndarray:
    """Return the square roots of the diagonal (NaN everywhere for ``"none"``)."""
    if method == "none":
        return np.full(vcov.shape[0], np.nan)
    return np.sqrt(np.clip(np.diag(vcov), 0.0, None))


def reference_periods(values: Any, option: str = "reference") -> tuple[float, ...]:
    """Normalise the ``reference`` option to a sorted tuple of distinct floats.

    Examples
    --------
    >>> reference_periods(-1), reference_periods((-1, -5))
    ((-1.0,), (-5.0, -1.0))
    """
    scalar = isinstance(values, (int, float, np.integer, np.floating))
    items = (values,) if scalar else values
    try:
        bad = isinstance(values, bool) or any(isinstance(v, bool) for v in items)
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        bad, out = True, ()
    if bad or not out or any(not math.isfinite(v) for v in out):
        raise DesignError(
            f"{option} must be an event time or a tuple of event times, got {values!r}",
            hint=f"e.g. {option}=-1",
            column=option,
        )
    return tuple(sorted(set(out)))


# ---------------------------------------------------------------------------- results
#: Facts of a fit that its aggregated views (``aggregate(kind)``) share.
VIEW_FACTS = ("n_obs", "n_units", "n_periods", "n_clusters", "fixed_effects", "roles")


@dataclasses.dataclass(frozen=True, eq=False)
class EventTimeResult(Result):
    """A result keyed by event time, with other aggregations of the same fit.

    ``aggregate(kind)`` returns the estimates aggregated another way (for example
    ``"overall"`` or ``"cohort"``); the kinds available are listed in
    :attr:`aggregations`. :meth:`plot` draws the event-study plot with the reference
    period(s) marked at zero.
    """

    reference: tuple[Any, ...] = ()
    views: Mapping[str, Result] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        # aggregates come from the same fit: they report its sample facts too (tables)
        shared = {k: self.info[k] for k in VIEW_FACTS if k in self.info}
        views = {
            kind: dataclasses.replace(view, info={**shared, **view.info})
            for kind, view in self.views.items()
        }
        object.__setattr__(self, "views", MappingProxyType(views))
        object.__setattr__(self, "reference", tuple(self.reference))

    @property
    def aggregations(self) -> list[str]:
        """The kinds :meth:`aggregate` accepts."""
        return ["event_time", *self.views]

    def headline(self) -> Result:
        """Return what subgroup comparisons (``by=``) compare.

        That is the overall ATT when the estimator has one, else the event-time estimates.
        """
        return self.views.get("overall", self)

    def aggregate(self, kind: str = "event_time") -> Result:
        """Return the estimates aggregated as ``kind`` (see :attr:`aggregations`).

        Raises
        ------
        DesignError
            If the kind is not available for this estimator.
        """
        if kind == "event_time":
            return self
        if kind not in self.views:
            raise DesignError(
                f"{self.estimator} has no aggregation {kind!r}",
                hint=f"available: {', '.join(self.aggregations)}",
                column="aggregate",
            )
        return self.views[kind]

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw the event-study plot (estimates and intervals by event time).

        Reference periods are drawn as hollow points at zero; pre-trend estimates
        held separately (``aggregate("pretrend")``) are drawn in a second colour.
        Returns the matplotlib Axes.
        """
        from evalkit.report.plots import coefficient_plot

        ax = coefficient_plot(self, ax=ax, **kwargs)
        pre = self.views.get("pretrend")
        if pre is not None:
            tidy = pre.tidy(kwargs.get("level"))
            x = tidy["event_time"].to_numpy(dtype=float)
            est = tidy["estimate"].to_numpy(dtype=float)
            err = [est - tidy["conf_low"].to_numpy(float), tidy["conf_high"].to_numpy(float) - est]
            ax.errorbar(x, est, yerr=err, fmt="s", color="C1", capsize=3, label="pre-trend")
        if self.reference:
            ref = np.asarray(self.reference, dtype=float)
            ax.plot(ref, np.zeros(len(ref)), "o", mfc="white", color="C0", label="reference (0)")
        return ax


def event_term(kind: str = "event_time") -> str:
    """Return the term label used for event-time estimates."""
    return {"event_time": "ATT(e)", "cohort": "ATT(g)", "overall": "ATT", "cells": "ATT(g,e)"}[kind]
