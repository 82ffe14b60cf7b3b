"""Inference of the regression-based DiD estimators: choice, covariance, tests, scores.

The choice of inference (:func:`regression_inference`), the covariance of an absorbed
fit (:func:`covariance`, :func:`inference_info`), including CR2 with Satterthwaite
degrees of freedom for linear combinations of coefficients (:func:`cr2_contrasts`) and
the CR2 design rows (:class:`UnitDemeanedDesign`, :class:`NestedProjectedDesign`), a
joint Wald test (:func:`wald_test`), standard errors and per-cluster scores
(:func:`regression_scores`, for ``fit(..., by=)``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from evalkit.core.result import InferenceInfo, Scores
from evalkit.did._absorbed import AbsorbedFit
from evalkit.errors import InferenceNotSupportedError, NotEstimableError
from evalkit.inference import vcov as sandwich
from evalkit.inference.policy import Choice, choose_inference, count_clusters
from evalkit.numerics.within import WithinTransform

__all__ = [
    "REGRESSION_METHODS",
    "NestedProjectedDesign",
    "UnitDemeanedDesign",
    "covariance",
    "cr2_contrasts",
    "inference_info",
    "regression_inference",
    "regression_scores",
    "standard_errors",
    "wald_test",
]

#: The inference methods of the regression estimators (TWFE, EventStudy, SunAbraham,
#: TripleDiff); their automatic choice is :func:`evalkit.inference.choose_inference`'s.
REGRESSION_METHODS: tuple[str, ...] = ("iid", "hetero", "cluster", "cr2", "none")


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
