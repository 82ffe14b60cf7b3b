"""Inference with few treated and many control clusters: Conley-Taber and Ferman-Pinto.

Conley & Taber (2011, REStat 93(1)) observe that in a difference-in-differences
regression with cluster-level treatment the estimation error is a weighted sum of the
treated clusters' errors,

    alpha_hat - alpha  ~=  sum_{j treated} sum_t w_jt eta_jt,
    w_jt = n_jt d~_jt / sum_{j treated, t} n_jt d~_jt^2,

where ``d~`` is the treatment with the fixed effects and covariates partialled out
(constant within a cluster-period cell), ``n_jt`` the cell's number of observations (or
sum of weights) and ``eta_jt`` the cell's mean error. The controls' errors do not enter
in the limit of many controls, and they identify the distribution of the treated ones:
for a control ``l`` the "as if treated like ``j``" error is
``W_{l->j} = sum_t w_jt e_lt`` with ``e_lt`` the control's mean residual. The
distribution of ``alpha_hat - alpha`` is that of ``sum_j W_{l_j -> j}`` over independent
draws of the controls ``l_j`` (all ``N0^N1`` combinations when that is at most
``reps``). The interval is ``[alpha_hat - q(1 - a/2), alpha_hat - q(a/2)]`` (their
Proposition 2) and the p-value its inversion (equal-tailed).

Ferman & Pinto (2019, REStat 101(3)) relax the assumption that treated and control
errors are identically distributed when clusters differ in size: the variance of a
cluster's ``W`` is modelled as ``A + B / M`` (``M`` the cluster's number of
observations per period), estimated by regressing the controls' ``W^2`` on
``(1, 1/M)``, and each control's ``W`` is rescaled to the treated cluster's size,
``W * sqrt(v(M_j) / v(M_l))``, before the Conley-Taber step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from evalkit.errors import DesignError, NotEstimableError

__all__ = ["FewTreatedResult", "conley_taber", "control_errors"]


@dataclass(frozen=True)
class FewTreatedResult:
    """Conley-Taber / Ferman-Pinto test of the treatment coefficient and its interval."""

    method: str
    estimate: float
    p_value: float
    conf_low: float
    conf_high: float
    level: float
    n_draws: int
    exact: bool
    n_treated: int
    n_controls: int
    null: float
    note: str = ""
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)

    def interval(self, level: float) -> tuple[float, float]:
        """Interval at another ``level`` from the same (sorted) draws."""
        if self.draws is None:
            raise ValueError("the draws were not kept")
        return _interval(self.estimate, self.draws, 1.0 - level)

    def describe(self) -> str:
        """One sentence saying what was computed."""
        name = {
            "conley_taber": "Conley-Taber (2011)",
            "ferman_pinto": "Ferman-Pinto (2019) size-corrected Conley-Taber",
        }[self.method]
        how = "all" if self.exact else "random"
        return (
            f"{name}: the error distribution of the {self.n_treated} treated cluster(s) is "
            f"estimated from {self.n_controls} control clusters ({how} {self.n_draws} "
            f"combinations); equal-tailed p-value, {self.level:.0%} interval by inversion"
            + (f"; {self.note}" if self.note else "")
        )


def control_errors(
    resid: np.ndarray,
    d_partial: np.ndarray,
    cluster: np.ndarray,
    time: np.ndarray,
    treated: np.ndarray,
    *,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``W[l, j]``: control ``l``'s residuals weighted as treated cluster ``j``'s error.

    Returns a ``(N0, N1)`` array (controls in increasing code order, treated in the order
    given) with ``sum_j W[l_j, j]`` distributed like ``alpha_hat - alpha``.
    """
    cl = np.asarray(cluster, dtype=np.int64)
    tm = np.asarray(time, dtype=np.int64)
    g, n_t = int(cl.max()) + 1, int(tm.max()) + 1
    wt = np.ones(len(cl)) if weights is None else np.asarray(weights, dtype=float)
    cell = cl * n_t + tm
    n_cell = np.bincount(cell, weights=wt, minlength=g * n_t).reshape(g, n_t)
    e_sum = np.bincount(cell, weights=wt * resid, minlength=g * n_t).reshape(g, n_t)
    d_sum = np.bincount(cell, weights=wt * d_partial, minlength=g * n_t).reshape(g, n_t)
    with np.errstate(invalid="ignore", divide="ignore"):
        e_mean = np.where(n_cell > 0, e_sum / n_cell, 0.0)
        d_mean = np.where(n_cell > 0, d_sum / n_cell, 0.0)
    treated = np.asarray(treated, dtype=np.int64)
    controls = np.setdiff1d(np.arange(g), treated)
    denom = float(np.sum(n_cell[treated] * d_mean[treated] ** 2))
    if denom <= 0:
        raise NotEstimableError("the treatment has no variation in the treated clusters")
    w = n_cell[treated] * d_mean[treated] / denom  # (N1, T)
    return e_mean[controls] @ w.T  # (N0, N1)


def _fp_rescale(
    w_ctrl: np.ndarray, m_ctrl: np.ndarray, m_treat: np.ndarray
) -> tuple[np.ndarray, str]:
    """Rescale control errors to the treated clusters' sizes (Ferman-Pinto)."""
    design = np.column_stack([np.ones(len(m_ctrl)), 1.0 / m_ctrl])
    out = np.empty_like(w_ctrl)
    note = ""
    for j in range(w_ctrl.shape[1]):
        coef, *_ = np.linalg.lstsq(design, w_ctrl[:, j] ** 2, rcond=None)
        v_ctrl = design @ coef
        v_treat = coef[0] + coef[1] / m_treat[j]
        floor = 1e-3 * float(np.mean(w_ctrl[:, j] ** 2))
        if np.any(v_ctrl <= floor) or v_treat <= floor:
            note = "fitted variances below 0.1% of the mean were floored"
        v_ctrl = np.maximum(v_ctrl, floor)
        v_treat = max(v_treat, floor)
        out[:, j] = w_ctrl[:, j] * np.sqrt(v_treat / v_ctrl)
    return out, note


def conley_taber(
    estimate: float,
    w_ctrl: np.ndarray,
    *,
    sizes_controls: np.ndarray | None = None,
    sizes_treated: np.ndarray | None = None,
    reps: int = 9999,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
    null: float = 0.0,
) -> FewTreatedResult:
    """Conley-Taber interval and p-value; Ferman-Pinto when cluster sizes are given.

    Parameters
    ----------
    estimate
        The treatment coefficient.
    w_ctrl
        ``(N0, N1)`` control errors from :func:`control_errors`.
    sizes_controls, sizes_treated
        Observations per period in each control / treated cluster; when given, the
        Ferman-Pinto heteroskedasticity correction is applied.

    Examples
    --------
    >>> w = np.array([[-2.0], [-1.0], [0.0], [1.0], [2.0]])
    >>> res = conley_taber(0.5, w, level=0.4)
    >>> res.exact, res.n_draws, res.conf_low, res.conf_high
    (True, 5, -1.5, 2.5)
    """
    w_ctrl = np.asarray(w_ctrl, dtype=float)
    n0, n1 = w_ctrl.shape
    if n0 < 2:
        raise NotEstimableError(
            "Conley-Taber inference needs at least two control clusters", column="cluster"
        )
    method, note = "conley_taber", ""
    if sizes_controls is not None:
        if sizes_treated is None or len(sizes_treated) != n1 or len(sizes_controls) != n0:
            raise DesignError("give sizes for every control and every treated cluster")
        w_ctrl, note = _fp_rescale(
            w_ctrl, np.asarray(sizes_controls, float), np.asarray(sizes_treated, float)
        )
        method = "ferman_pinto"
    total = n0**n1
    if total <= reps:
        draws = np.zeros(total)
        for j, combo in enumerate(zip(*itertools.product(range(n0), repeat=n1), strict=True)):
            draws += w_ctrl[np.array(combo, dtype=np.int64), j]
        exact = True
    else:
        if rng is None:
            raise DesignError("pass rng: the combinations are too many to enumerate")
        picks = rng.integers(0, n0, size=(reps, n1))
        draws = w_ctrl[picks, np.arange(n1)[None, :]].sum(axis=1)
        exact = False
    draws = np.sort(draws)
    alpha = 1.0 - level
    lo, hi = _interval(estimate, draws, alpha)
    gap = estimate - null
    n = len(draws)
    above = (1.0 + np.sum(draws >= gap - 1e-12)) / (n + 1.0)
    below = (1.0 + np.sum(draws <= gap + 1e-12)) / (n + 1.0)
    p = 2.0 * min(above, below)
    return FewTreatedResult(
        method=method,
        estimate=float(estimate),
        p_value=float(min(1.0, p)),
        conf_low=float(lo),
        conf_high=float(hi),
        level=level,
        n_draws=len(draws),
        exact=exact,
        n_treated=n1,
        n_controls=n0,
        null=null,
        note=note,
        draws=draws,
    )


def _interval(estimate: float, draws: np.ndarray, alpha: float) -> tuple[float, float]:
    """Equal-tailed interval from sorted draws, the inversion of the p-value.

    With ``n`` draws and the treated cluster's own error counted as one more,
    accept a  <=>  (1 + #{z >= gap}) / (n + 1) > alpha/2 and the same for ``<=``,
    gap = estimate - a  <=>  z_(m) <= gap <= z_(n-m+1) with ``m`` the smallest count
    above ``(n + 1) alpha / 2 - 1``; ``m = 0`` (too few draws to reject) leaves the
    interval unbounded.
    """
    n = len(draws)
    c = (n + 1) * alpha / 2.0 - 1.0
    m = 0 if c < 0 else min(n, int(np.floor(c + 1e-9)) + 1)
    if m == 0:
        return -np.inf, np.inf
    return float(estimate - draws[n - m]), float(estimate - draws[m - 1])
