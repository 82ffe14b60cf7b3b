"""Two-group, two-period DiD estimators with influence functions (Sant'Anna & Zhao 2020).

These are the building blocks of :class:`~evalkit.did.CallawaySantAnna`: each estimates
the average treatment effect on the treated in one 2x2 comparison (a treated group and
a comparison group, a base period and a later period) and returns the estimate together
with its influence function, so that estimates from many 2x2 comparisons can be
combined and their joint sampling variation computed.

Three estimators are available for panel data (the same units observed in both
periods) and for repeated cross-sections (different individuals in each period):

``"reg"``
    Outcome regression (Heckman, Ichimura & Todd 1997): the comparison group's change
    is predicted for the treated from a linear regression on covariates.
``"ipw"``
    Inverse probability weighting with normalised (Hajek) weights (Abadie 2005):
    comparison units are reweighted by the odds of a logit propensity score.
``"dr"``
    Doubly robust (Sant'Anna & Zhao 2020, the locally efficient form): consistent when
    either the outcome regression or the propensity score is correctly specified.

Without covariates the three coincide with the difference of mean changes.

Conventions (those of the DRDID R package): sampling weights are rescaled to mean one;
the propensity score is capped at ``1 - 1e-6``; comparison units whose propensity score
is at least ``trim_level`` (default 0.995) get zero weight. The influence function
``psi`` is normalised so that ``att_hat - att = mean(psi) + o_p(n^-1/2)``; the analytic
standard error is ``sqrt(sum(psi**2)) / n``.

References
----------
Sant'Anna, P. H. C. and Zhao, J. (2020). Doubly robust difference-in-differences
estimators. *Journal of Econometrics* 219(1), 101-122.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from evalkit.errors import DataError, DesignError, NotEstimableError

__all__ = ["METHODS", "DiD2x2", "did2x2_panel", "did2x2_rcs"]

DRMethod = Literal["dr", "ipw", "reg"]
"""The 2x2 estimators: doubly robust, inverse probability weighting, outcome regression."""
METHODS: tuple[str, ...] = get_args(DRMethod)

PS_CAP = 1.0 - 1e-6
"""Upper cap of the estimated propensity score (as in DRDID)."""

_MAX_LOGIT_ITER = 100


@dataclass(frozen=True)
class DiD2x2:
    """The result of one 2x2 DiD estimator.

    Attributes
    ----------
    att
        The estimated average treatment effect on the treated.
    influence
        Influence function, one value per observation (unit in a panel, row in a
        repeated cross-section), normalised so that ``att_hat - att ~ mean(influence)``.
    method
        ``"dr"``, ``"ipw"`` or ``"reg"``.
    panel
        True for the panel estimator, False for repeated cross-sections.
    n_trimmed
        Comparison observations given zero weight because their propensity score was at
        least ``trim_level`` (always 0 for ``"reg"``).
    max_pscore
        Largest estimated propensity score among comparison observations (None for
        ``"reg"``).
    """

    att: float
    influence: np.ndarray
    method: str
    panel: bool
    n_trimmed: int = 0
    max_pscore: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "att", float(self.att))

    @property
    def n(self) -> int:
        """Number of observations."""
        return int(self.influence.shape[0])

    @property
    def std_error(self) -> float:
        """Analytic standard error ``sqrt(sum(psi**2)) / n``."""
        return float(math.sqrt(float(self.influence @ self.influence)) / self.n)


# ---------------------------------------------------------------------- public API
def did2x2_panel(
    y1: np.ndarray,
    y0: np.ndarray,
    treated: np.ndarray,
    covariates: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    method: DRMethod = "dr",
    trim_level: float = 0.995,
) -> DiD2x2:
    """Estimate the ATT from a two-period panel.

    Parameters
    ----------
    y1, y0
        Outcome of each unit in the later and the earlier (base) period.
    treated
        1 for units of the treated group, 0 for the comparison group.
    covariates
        Covariates (n x k, or a vector), measured before treatment; an intercept is
        added. None for no covariates.
    weights
        Sampling weights (rescaled to mean one); None for equal weights.
    method
        ``"dr"`` (doubly robust), ``"ipw"`` or ``"reg"``.
    trim_level
        Comparison units with propensity score at least this are given zero weight.

    Returns
    -------
    DiD2x2

    Examples
    --------
    >>> import numpy as np
    >>> y0 = np.array([1.0, 2.0, 3.0, 4.0])
    >>> y1 = np.array([2.0, 3.5, 3.0, 4.5])
    >>> d = np.array([1, 1, 0, 0])
    >>> res = did2x2_panel(y1, y0, d)
    >>> round(res.att, 6)  # (1 + 1.5) / 2 - (0 + 0.5) / 2
    1.0
    """
    y1v = _vector(y1, "y1")
    n = y1v.shape[0]
    y0v = _vector(y0, "y0", n)
    d = _binary(treated, n)
    x = _design(covariates, n)
    w = _weights(weights, n)
    _check_method(method)
    _check_groups(d, w)
    return _panel(y1v - y0v, d, x, w, method=method, trim_level=_trim(trim_level))


def did2x2_rcs(
    y: np.ndarray,
    post: np.ndarray,
    treated: np.ndarray,
    covariates: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    method: DRMethod = "dr",
    trim_level: float = 0.995,
) -> DiD2x2:
    """Estimate the ATT from two repeated cross-sections.

    Parameters
    ----------
    y
        Outcome of each observation.
    post
        1 for observations from the later period, 0 for the base period.
    treated
        1 for observations of the treated group, 0 for the comparison group.
    covariates
        Covariates (n x k, or a vector); an intercept is added. None for none.
    weights
        Sampling weights (rescaled to mean one); None for equal weights.
    method
        ``"dr"`` (locally efficient doubly robust), ``"ipw"`` or ``"reg"``.
    trim_level
        Comparison observations with propensity score at least this get zero weight.

    Returns
    -------
    DiD2x2

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([1.0, 2.0, 3.0, 5.0, 1.0, 1.0, 2.0, 2.0])
    >>> post = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    >>> d = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    >>> round(did2x2_rcs(y, post, d).att, 6)  # (4 - 1.5) - (2 - 1)
    1.5
    """
    yv = _vector(y, "y")
    n = yv.shape[0]
    p = _binary(post, n, name="post")
    d = _binary(treated, n)
    x = _design(covariates, n)
    w = _weights(weights, n)
    _check_method(method)
    _check_groups(d, w)
    for g, label in ((1.0, "treated"), (0.0, "comparison")):
        for t, period in ((1.0, "later"), (0.0, "base")):
            if not np.any((d == g) & (p == t) & (w > 0)):
                raise NotEstimableError(
                    f"no {label} observations in the {period} period",
                    hint="each of the four group x period cells needs observations",
                )
    return _rcs(yv, p, d, x, w, method=method, trim_level=_trim(trim_level))


# ---------------------------------------------------------------------- input checks
def _vector(values: object, name: str, n: int | None = None) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numeric", column=name) from None
    if not np.isfinite(v).all():
        raise DataError(
            f"{name} has missing or infinite values", column=name, hint="drop those rows first"
        )
    if n is not None and v.shape[0] != n:
        raise DataError(f"{name} has {v.shape[0]} values, expected {n}", column=name)
    return v


def _binary(values: object, n: int, name: str = "treated") -> np.ndarray:
    v = _vector(values, name, n)
    if not np.isin(v, (0.0, 1.0)).all():
        raise DataError(f"{name} must be coded 0/1", column=name)
    return v


def _design(covariates: object, n: int) -> np.ndarray:
    if covariates is None:
        return np.ones((n, 1))
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n:
        raise DataError(f"covariates must have {n} rows", column="covariates")
    if not np.isfinite(x).all():
        raise DataError("covariates have missing or infinite values", column="covariates")
    return np.column_stack([np.ones(n), x])


def _weights(weights: object, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = _vector(weights, "weights", n)
    if (w < 0).any() or w.sum() <= 0:
        raise DataError(
            "weights must be non-negative with a positive sum",
            column="weights",
            hint="check the sampling-weight column",
        )
    return w


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise DesignError(
            f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}",
            hint="'dr' (doubly robust) is the usual choice",
            column="method",
        )


def _trim(level: float) -> float:
    value = float(level)
    if not 0.5 < value <= 1.0:
        raise DesignError(
            f"trim_level must be in (0.5, 1], got {level!r}",
            hint="the default 0.995 follows DRDID",
            column="trim_level",
        )
    return value


def _check_groups(d: np.ndarray, w: np.ndarray) -> None:
    if not np.any((d == 1) & (w > 0)):
        raise NotEstimableError("no treated observations", hint="the treated group is empty")
    if not np.any((d == 0) & (w > 0)):
        raise NotEstimableError("no comparison observations", hint="the comparison group is empty")


# ---------------------------------------------------------------------- nuisance fits
def _solve_gram(gram: np.ndarray, what: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``v -> gram^{-1} v`` after checking that ``gram`` is well conditioned."""
    k = gram.shape[0]
    if k == 1:
        g = float(gram[0, 0])
        if not g > 0:
            raise NotEstimableError(f"the {what} has no observations with positive weight")
        return lambda v: np.asarray(v, dtype=float) / g
    scale = np.sqrt(np.clip(np.diag(gram), 1e-300, None))
    scaled = gram / np.outer(scale, scale)
    if not np.isfinite(scaled).all() or np.linalg.cond(scaled) > 1e12:
        raise NotEstimableError(
            f"the covariates are collinear (or constant) in the {what}",
            hint="drop collinear covariates or covariates without variation in this group",
        )
    inv = np.linalg.inv(scaled) / np.outer(scale, scale)
    return lambda v: inv @ v


class _LinearFit:
    """Weighted least squares of ``y`` on ``x`` within ``mask`` and its linear representation.

    ``lin(m)`` returns, for every observation, the influence of the coefficient estimate
    projected on ``m``: ``w_i 1{mask_i} e_i x_i' (X'WX / n)^{-1} m``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, mask: np.ndarray, what: str):
        n = x.shape[0]
        wm = w * mask
        if x.shape[1] == 1:  # intercept only: a weighted mean
            total = float(wm.sum())
            if not total > 0:
                raise NotEstimableError(f"the {what} has no observations")
            mean = float(wm @ y) / total
            self.fitted = np.full(n, mean)
            self._resid = wm * (y - mean)
            self._x = x
            self._solve = lambda v: np.asarray(v, dtype=float) * (n / total)
            return
        xw = x * wm[:, None]
        gram = xw.T @ x
        solve = _solve_gram(gram / n, what)
        beta = solve(xw.T @ y / n)
        self.fitted = x @ beta
        self._resid = wm * (y - self.fitted)
        self._x = x
        self._solve = solve

    def lin(self, m: np.ndarray) -> np.ndarray:
        return self._resid * (self._x @ self._solve(m))


class _Logit:
    """Weighted logit of ``d`` on ``x`` (maximum likelihood) and its linear representation."""

    def __init__(self, x: np.ndarray, d: np.ndarray, w: np.ndarray):
        n, k = x.shape
        if k == 1:  # intercept only: the weighted share treated
            p = float(w @ d) / float(w.sum())
            ps = np.full(n, p)
        else:
            ps = _fit_logit(x, d, w)
        ps = np.minimum(ps, PS_CAP)
        self.ps = ps
        info = (x * (w * ps * (1.0 - ps))[:, None]).T @ x / n
        self._solve = _solve_gram(info, "propensity-score model")
        self._score = w * (d - ps)
        self._x = x

    def lin(self, m: np.ndarray) -> np.ndarray:
        return self._score * (self._x @ self._solve(m))


def _fit_logit(x: np.ndarray, d: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Newton-Raphson with step halving for a weighted logit; returns fitted probabilities."""
    n, k = x.shape
    _solve_gram((x * w[:, None]).T @ x / n, "propensity-score model")  # collinearity check
    pbar = float(w @ d) / float(w.sum())
    beta = np.zeros(k)
    beta[0] = math.log(pbar / (1.0 - pbar))

    eta = x @ beta
    ll, p = _loglik_p(eta, d, w)
    for _ in range(_MAX_LOGIT_ITER):
        grad = x.T @ (w * (d - p))
        info = (x * (w * p * (1.0 - p))[:, None]).T @ x
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            # the design was checked for collinearity: the fitted scores reached 0 or 1
            raise _separation() from None
        t = 1.0
        while True:
            new_beta = beta + t * step
            new_eta = x @ new_beta
            new_ll, new_p = _loglik_p(new_eta, d, w)
            if new_ll >= ll - 1e-12 * (1.0 + abs(ll)) or t < 1e-8:
                break
            t /= 2.0
        converged = np.max(np.abs(t * step)) < 1e-10 * (1.0 + np.max(np.abs(beta)))
        beta, eta, ll, p = new_beta, new_eta, new_ll, new_p
        if converged:
            break
    else:
        raise _separation()
    return p


def _separation() -> NotEstimableError:
    return NotEstimableError(
        "the propensity-score logit did not converge (the covariates separate the "
        "treated from the comparison group)",
        hint="use method='reg', drop the separating covariates, or coarsen them",
    )


def _loglik_p(eta: np.ndarray, d: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted logit log-likelihood and fitted probabilities, computed stably."""
    log1pexp = np.logaddexp(0.0, eta)
    return float(w @ (d * eta - log1pexp)), np.exp(eta - log1pexp)


def _trim_mask(ps: np.ndarray, d: np.ndarray, trim_level: float) -> np.ndarray:
    return np.where(d == 1, 1.0, (ps < trim_level).astype(float))


# ---------------------------------------------------------------------- panel estimators
def _panel(
    dy: np.ndarray,
    d: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    method: str,
    trim_level: float = 0.995,
    logit: _Logit | None = None,
) -> DiD2x2:
    """Panel 2x2 ATT from outcome changes ``dy``; ``x`` includes the intercept.

    ``logit`` is a propensity-score fit of ``d`` on ``x`` with weights ``w`` made
    earlier on exactly these observations (it depends on neither outcome nor period).
    """
    n = dy.shape[0]
    w = w / w.mean()
    ctrl = 1.0 - d
    colmean = _colmean(x, n)

    if method == "reg":
        ols = _LinearFit(x, dy, w, ctrl, "outcome regression of the comparison group")
        w_t = w * d
        mt = w_t.mean()
        eta_t = float(w_t @ dy) / n / mt
        eta_c = float(w_t @ ols.fitted) / n / mt
        inf_treat = w_t * (dy - eta_t) / mt
        inf_cont = (w_t * (ols.fitted - eta_c) + ols.lin(colmean(w_t))) / mt
        return DiD2x2(eta_t - eta_c, inf_treat - inf_cont, "reg", True)

    if logit is None:
        logit = _Logit(x, d, w)
    ps = logit.ps
    keep = _trim_mask(ps, d, trim_level)
    w_t = keep * w * d
    w_c = keep * w * ps * ctrl / (1.0 - ps)
    n_trim = int(np.sum((keep == 0) & (w > 0)))
    max_ps = _max_ctrl(ps, d)
    mt, mc = w_t.mean(), w_c.mean()
    if not mc > 0:
        raise NotEstimableError(
            "every comparison observation was trimmed (propensity scores near 1)",
            hint="the groups do not overlap in the covariates; drop or coarsen covariates",
        )

    if method == "ipw":
        eta_t = float(w_t @ dy) / n / mt
        eta_c = float(w_c @ dy) / n / mc
        inf_treat = w_t * (dy - eta_t) / mt
        inf_cont = (w_c * (dy - eta_c) + logit.lin(colmean(w_c * (dy - eta_c)))) / mc
        return DiD2x2(eta_t - eta_c, inf_treat - inf_cont, "ipw", True, n_trim, max_ps)

    ols = _LinearFit(x, dy, w, ctrl, "outcome regression of the comparison group")
    r = dy - ols.fitted
    eta_t = float(w_t @ r) / n / mt
    eta_c = float(w_c @ r) / n / mc
    inf_treat = (w_t * (r - eta_t) - ols.lin(colmean(w_t))) / mt
    inf_cont = (
        w_c * (r - eta_c) + logit.lin(colmean(w_c * (r - eta_c))) - ols.lin(colmean(w_c))
    ) / mc
    return DiD2x2(eta_t - eta_c, inf_treat - inf_cont, "dr", True, n_trim, max_ps)


def _colmean(x: np.ndarray, n: int) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``v -> mean(v * x, axis=0)`` (the column means of x weighted by v)."""
    return lambda v: (v @ x) / n


def _max_ctrl(ps: np.ndarray, d: np.ndarray) -> float:
    ctrl = ps[d == 0]
    return float(ctrl.max()) if ctrl.size else float("nan")


# ---------------------------------------------------------------------- repeated cross-sections
def _rcs(
    y: np.ndarray,
    post: np.ndarray,
    d: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    method: str,
    trim_level: float = 0.995,
) -> DiD2x2:
    """Repeated cross-section 2x2 ATT; ``x`` includes the intercept."""
    n = y.shape[0]
    w = w / w.mean()
    pre = 1.0 - post
    ctrl = 1.0 - d
    colmean = _colmean(x, n)

    if method == "reg":
        c0 = _LinearFit(x, y, w, ctrl * pre, "outcome regression of the comparison group (base)")
        c1 = _LinearFit(x, y, w, ctrl * post, "outcome regression of the comparison group (later)")
        w_t0, w_t1, w_t = w * d * pre, w * d * post, w * d
        m0, m1, mt = w_t0.mean(), w_t1.mean(), w_t.mean()
        e_t0 = float(w_t0 @ y) / n / m0
        e_t1 = float(w_t1 @ y) / n / m1
        change = c1.fitted - c0.fitted
        e_c = float(w_t @ change) / n / mt
        inf_t0 = w_t0 * (y - e_t0) / m0
        inf_t1 = w_t1 * (y - e_t1) / m1
        mom = colmean(w_t)
        inf_c = (w_t * (change - e_c) + c1.lin(mom) - c0.lin(mom)) / mt
        return DiD2x2(e_t1 - e_t0 - e_c, inf_t1 - inf_t0 - inf_c, "reg", False)

    logit = _Logit(x, d, w)
    ps = logit.ps
    keep = _trim_mask(ps, d, trim_level)
    n_trim = int(np.sum((keep == 0) & (w > 0)))
    max_ps = _max_ctrl(ps, d)
    odds = ps / (1.0 - ps)
    w_t0 = keep * w * d * pre
    w_t1 = keep * w * d * post
    w_c0 = keep * w * odds * ctrl * pre
    w_c1 = keep * w * odds * ctrl * post
    if not (w_c0.sum() > 0 and w_c1.sum() > 0):
        raise NotEstimableError(
            "every comparison observation of a period was trimmed (propensity scores near 1)",
            hint="the groups do not overlap in the covariates; drop or coarsen covariates",
        )

    def part(weight: np.ndarray, resid: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Weighted mean of ``resid`` and its influence (without nuisance terms)."""
        m = weight.mean()
        est = float(weight @ resid) / n / m
        return est, weight * (resid - est) / m, m

    if method == "ipw":
        a_t0, i_t0, _ = part(w_t0, y)
        a_t1, i_t1, _ = part(w_t1, y)
        a_c0, i_c0, m_c0 = part(w_c0, y)
        a_c1, i_c1, m_c1 = part(w_c1, y)
        mom = colmean(w_c1 * (y - a_c1)) / m_c1 - colmean(w_c0 * (y - a_c0)) / m_c0
        inf_c = i_c1 - i_c0 + logit.lin(mom)
        att = (a_t1 - a_t0) - (a_c1 - a_c0)
        return DiD2x2(att, (i_t1 - i_t0) - inf_c, "ipw", False, n_trim, max_ps)

    c0 = _LinearFit(x, y, w, ctrl * pre, "outcome regression of the comparison group (base)")
    c1 = _LinearFit(x, y, w, ctrl * post, "outcome regression of the comparison group (later)")
    t0 = _LinearFit(x, y, w, d * pre, "outcome regression of the treated group (base)")
    t1 = _LinearFit(x, y, w, d * post, "outcome regression of the treated group (later)")
    out_c = post * c1.fitted + pre * c0.fitted
    r = y - out_c

    a_t0, i_t0, m_t0 = part(w_t0, r)
    a_t1, i_t1, m_t1 = part(w_t1, r)
    a_c0, i_c0, m_c0 = part(w_c0, r)
    a_c1, i_c1, m_c1 = part(w_c1, r)
    # the efficiency terms: predicted treated-minus-comparison gaps among the treated
    w_d = keep * w * d
    gap1 = t1.fitted - c1.fitted
    gap0 = t0.fitted - c0.fitted
    a_d1, i_d1, m_d = part(w_d, gap1)
    a_dt1, i_dt1, _ = part(w_t1, gap1)
    a_d0, i_d0, _ = part(w_d, gap0)
    a_dt0, i_dt0, _ = part(w_t0, gap0)

    att = (a_t1 - a_t0) - (a_c1 - a_c0) + (a_d1 - a_dt1) - (a_d0 - a_dt0)

    # estimation effect of the comparison-group regressions on the treated terms
    inf_treat = (i_t1 - i_t0) + c1.lin(-colmean(w_t1) / m_t1) - c0.lin(-colmean(w_t0) / m_t0)
    # estimation effect of the propensity score and regressions on the comparison terms
    mom_ps = colmean(w_c1 * (r - a_c1)) / m_c1 - colmean(w_c0 * (r - a_c0)) / m_c0
    inf_cont = (
        (i_c1 - i_c0)
        + logit.lin(mom_ps)
        + c1.lin(-colmean(w_c1) / m_c1)
        - c0.lin(-colmean(w_c0) / m_c0)
    )
    inf_eff = (i_d1 - i_dt1) - (i_d0 - i_dt0)
    mom1 = colmean(w_d / m_d - w_t1 / m_t1)
    mom0 = colmean(w_d / m_d - w_t0 / m_t0)
    inf_or = (t1.lin(mom1) - c1.lin(mom1)) - (t0.lin(mom0) - c0.lin(mom0))
    psi = inf_treat - inf_cont + inf_eff + inf_or
    return DiD2x2(att, psi, "dr", False, n_trim, max_ps)
