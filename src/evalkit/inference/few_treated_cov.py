"""Covariance of event-time estimates with few treated units, learned from the controls.

With one treated city, a cluster-robust covariance estimates the variance of the
treated city's errors from that city's own residuals: one cluster, so its covariance
is badly biased and a Wald test of the leads over-rejects. Conley & Taber (2011,
"Inference with 'difference in differences' with a small number of policy changes",
*Review of Economics and Statistics* 93(1)) learn the distribution of the treated
unit's errors from the control units' residuals instead, assuming the errors of every
unit have the same distribution. This module applies that idea to the whole vector
of event-time coefficients of a two-way fixed-effects regression:

1. The controls' outcomes (a balanced panel of never-treated units) are demeaned by
   unit and period. Their errors ``u_it`` are assumed independent across units and
   stationary over time with a common autocovariance ``gamma(h)``, the same as the
   treated units' errors (the Conley-Taber assumption, plus stationarity).
2. With ``N`` controls, ``S = E'E / (N - 1)`` (``E`` the demeaned ``N x T`` matrix) has
   expectation ``Q Gamma Q`` (``Q = I - 11'/T``, ``Gamma`` the Toeplitz matrix of
   ``gamma``), so ``gamma`` is estimated without bias by least squares of ``vec(S)`` on
   ``vec(Q T_h Q)`` (``T_h`` the indicator of lag ``h``). The constant in ``gamma`` is
   not identified and does not matter: coefficients with unit effects are invariant
   to adding a constant to a unit's outcomes.
3. The coefficients are linear in the outcome, ``b = A y``, so their covariance is
   ``V = sum_i A_i Gamma_i A_i'`` over the units ``i`` (treated and controls), with
   ``Gamma_i`` the rows and columns of ``Gamma`` at the periods unit ``i`` is observed.

``V`` does not depend on the treated unit's residuals, so with one treated unit it
does not degenerate the way a cluster-robust covariance does; it is wrong when the
treated unit's errors are more (or less) variable than the controls', and when the
errors are not stationary.

**Cell sizes** (:func:`size_autocovariance_from_controls`). When each unit's outcome is
a mean over ``M_i`` persons, its errors are a unit-level shock plus the persons'
average noise, and a big city's errors vary less than a small one's. Ferman & Pinto
(2019, "Inference in differences-in-differences with few treated groups and
heteroskedasticity", *Review of Economics and Statistics* 101(3), Section 4) model the
variance of the linear combination of a group's errors that the estimator uses as
``A + B / M`` and estimate ``A`` and ``B`` by least squares of the controls' squared
residual combinations on ``(1, 1/M)``, then rescale each control's combination to the
treated group's size. Here the same model is put on every lag of the autocovariance,

    gamma_i(h) = a(h) + b(h) / M_i,

which implies theirs for every linear combination (``Var(c'u_i) = c'A c + c'B c / M_i``
with ``A``, ``B`` the Toeplitz matrices of ``a``, ``b``). With sizes differing across
controls, ``E[e_l e_l'] = Q [(1 - 2/N) Gamma_l + mean_k(Gamma_k) / N] Q`` for a
control ``l`` (``e_l`` its row of the unit- and period-demeaned panel), so each
control's own moment estimate ``g_l`` (step 2 on ``e_l e_l'`` alone) has expectation
``(N - 1)/N a + ((1 - 2/N)/M_l + mean_k(1/M_k)/N) b``: ``a`` and ``b`` are the least
squares fit of ``g_l`` on those two regressors, lag by lag, unbiased. Each unit's
``Gamma_i`` is then taken at its own size (``M_i`` the harmonic mean of its cells'
sizes) in step 3. With equal sizes ``b`` is not identified and the unit-free estimate
is the right one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from evalkit.errors import DesignError, NotEstimableError

__all__ = [
    "SizeCovariance",
    "StationaryCovariance",
    "autocovariance_from_controls",
    "coefficient_covariance",
    "gamma_from_moments",
    "size_autocovariance_from_controls",
    "wald_pretrend",
]


@dataclass(frozen=True)
class StationaryCovariance:
    """Autocovariance of a unit's errors learned from the control units.

    Attributes
    ----------
    gamma
        ``gamma[h]`` for lags ``h = 0 .. max_lag`` (zero beyond), up to an additive
        constant that coefficients with unit effects do not depend on.
    n_controls
        Number of control units it was learned from.
    n_periods
        Number of periods of the controls' panel.
    """

    gamma: np.ndarray
    n_controls: int
    n_periods: int

    def matrix(self, periods: np.ndarray) -> np.ndarray:
        """Return ``Gamma`` at the given period indices (``len(periods)`` square)."""
        lag = np.abs(np.subtract.outer(periods, periods))
        full = np.zeros(max(self.n_periods, int(lag.max(initial=0)) + 1))
        full[: len(self.gamma)] = self.gamma
        return full[lag]


@dataclass(frozen=True)
class SizeCovariance:
    """Autocovariance of a unit's errors as a function of its size, ``a(h) + b(h) / M``.

    Learned from the control units (:func:`size_autocovariance_from_controls`).

    Attributes
    ----------
    common
        ``a[h]``: the part that does not shrink with size (unit-level shocks).
    per_size
        ``b[h]``: the part that shrinks as ``1 / M`` (the persons' average noise).
    n_controls, n_periods
        The controls' panel it was learned from.
    control_sizes
        The controls' sizes (harmonic means of their cells' sizes).
    """

    common: np.ndarray
    per_size: np.ndarray
    n_controls: int
    n_periods: int
    control_sizes: np.ndarray

    def at(self, size: float) -> StationaryCovariance:
        """Return the stationary autocovariance of a unit of size ``size``."""
        return StationaryCovariance(
            gamma=self.common + self.per_size / float(size),
            n_controls=self.n_controls,
            n_periods=self.n_periods,
        )

    def demeaned_variance(self, size: float) -> float:
        """Average variance of a unit's errors net of its mean (identified, unlike ``gamma[0]``)."""
        t = self.n_periods
        q = np.eye(t) - 1.0 / t
        g = self.at(size).matrix(np.arange(t))
        return float(np.trace(q @ g @ q) / t)

    def variance_ratio(self, size: float) -> float:
        """Demeaned error variance at ``size`` over the controls' average."""
        ref = np.mean([self.demeaned_variance(m) for m in self.control_sizes])
        return float(self.demeaned_variance(size) / ref) if ref > 0 else math.nan


@functools.lru_cache(maxsize=32)
def _lag_solver(n_periods: int, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``D`` (columns ``vec(Q T_h Q)``, ``h = 0 .. max_lag``) and ``pinv(D'D)``."""
    d = _lag_design(n_periods, max_lag)
    d.setflags(write=False)
    inv = np.linalg.pinv(d.T @ d, rcond=1e-10, hermitian=True)
    inv.setflags(write=False)
    return d, inv


def _lag_design(n_periods: int, max_lag: int) -> np.ndarray:
    """Columns ``vec(Q T_h Q)`` for ``h = 0 .. max_lag``."""
    idx = np.arange(n_periods)
    lag = np.abs(np.subtract.outer(idx, idx))
    cols = []
    for h in range(max_lag + 1):
        t = (lag == h).astype(float)
        t = t - t.mean(axis=0, keepdims=True)
        t = t - t.mean(axis=1, keepdims=True)
        cols.append(t.ravel())
    return np.column_stack(cols)


def autocovariance_from_controls(
    y: np.ndarray, *, max_lag: int | None = None
) -> StationaryCovariance:
    """Estimate the errors' stationary autocovariance from a controls-only panel.

    Parameters
    ----------
    y
        ``(N, T)`` outcomes of the ``N`` control units over ``T`` periods (balanced).
    max_lag
        Largest lag with a free autocovariance (zero beyond); default ``T - 1``.

    Returns
    -------
    StationaryCovariance

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(400, 6)) + rng.normal(size=(400, 1))  # unit effects
    >>> cov = autocovariance_from_controls(y, max_lag=1)
    >>> np.round(cov.gamma, 1).tolist()
    [1.0, 0.0]
    """
    y = np.asarray(y, dtype=float)
    e, lag = _double_demeaned(y, max_lag)
    n, t = y.shape
    s = e.T @ e / (n - 1)
    return StationaryCovariance(gamma=gamma_from_moments(s, lag), n_controls=n, n_periods=t)


def _double_demeaned(y: np.ndarray, max_lag: int | None) -> tuple[np.ndarray, int]:
    """Check a controls' panel and return it demeaned by unit and period, with the lag."""
    n, t = y.shape
    if n < 2:
        raise NotEstimableError(
            f"the errors' covariance is learned from the control units, and there are {n}",
            hint="this covariance needs at least two never-treated units",
            column="unit",
        )
    if t < 2:
        raise NotEstimableError("the controls are observed in one period only", column="time")
    lag = t - 1 if max_lag is None else int(max_lag)
    if not 0 <= lag <= t - 1:
        raise DesignError(
            f"max_lag must be between 0 and {t - 1} (the periods minus one), got {max_lag!r}",
            column="max_lag",
        )
    e = y - y.mean(axis=0, keepdims=True)
    return e - e.mean(axis=1, keepdims=True), lag


def size_autocovariance_from_controls(
    y: np.ndarray, sizes: np.ndarray, *, max_lag: int | None = None
) -> SizeCovariance:
    """Estimate ``gamma_i(h) = a(h) + b(h) / M_i`` from a controls-only panel.

    The Ferman & Pinto (2019) variance model in the units' sizes, put on every lag
    (see the module notes): each control's own moment estimate is regressed, lag by
    lag, on the two terms of its expectation, which accounts for the period means
    being taken over controls of different sizes.

    Parameters
    ----------
    y
        ``(N, T)`` outcomes of the ``N`` control units over ``T`` periods (balanced).
    sizes
        ``(N,)`` each control's size (e.g. persons behind each cell mean; any common
        scale: ``b`` scales with it).
    max_lag
        Largest lag with a free autocovariance (zero beyond); default ``T - 1``.

    Returns
    -------
    SizeCovariance

    Examples
    --------
    Errors of variance ``0.5 + 2 / M`` (true ratio of a unit of size 1 to the
    controls' average: ``2.5 / 1.75 = 1.43``):

    >>> rng = np.random.default_rng(0)
    >>> sizes = np.tile([1.0, 4.0], 1000)
    >>> u = rng.normal(size=(2000, 6)) * np.sqrt(0.5 + 2.0 / sizes)[:, None]
    >>> cov = size_autocovariance_from_controls(u + rng.normal(size=(2000, 1)), sizes,
    ...                                         max_lag=1)
    >>> round(float(cov.common[0]), 1), round(float(cov.per_size[0]), 1)
    (0.5, 2.0)
    >>> round(cov.variance_ratio(1.0), 2)
    1.43
    """
    y = np.asarray(y, dtype=float)
    sizes = np.asarray(sizes, dtype=float)
    e, lag = _double_demeaned(y, max_lag)
    n, t = y.shape
    if sizes.shape != (n,) or not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise DesignError(
            "the controls' sizes must be positive numbers, one per control unit",
            hint="sizes are read from the weights: the persons behind each cell value",
            column="weights",
        )
    inv_m = 1.0 / sizes
    if np.ptp(inv_m) <= 1e-8 * inv_m.mean():
        raise NotEstimableError(
            "every control unit has the same size, so the variance's dependence on size "
            "is not identified",
            hint="use the covariance without sizes (size_correction=False)",
            column="weights",
        )
    design, inv = _lag_solver(t, lag)
    moments = np.einsum("li,lj->lij", e, e).reshape(n, t * t)
    own = moments @ design @ inv  # (N, lags): each control's moment estimate g_l
    regressors = np.column_stack([np.full(n, (n - 1) / n), (1 - 2 / n) * inv_m + inv_m.mean() / n])
    (common, per_size), *_ = np.linalg.lstsq(regressors, own, rcond=None)
    return SizeCovariance(
        common=common, per_size=per_size, n_controls=n, n_periods=t, control_sizes=sizes
    )


def gamma_from_moments(s: np.ndarray, max_lag: int) -> np.ndarray:
    """Solve ``Q Gamma Q = s`` for the Toeplitz ``Gamma`` by least squares.

    ``s`` is the demeaned errors' second-moment matrix (``T x T``, expectation
    ``Q Gamma Q``). Least squares through the normal equations, minimum norm: with
    every lag free the constant direction of ``gamma`` is not identified (it does not
    affect coefficients with unit effects).
    """
    t = s.shape[0]
    design, inv = _lag_solver(t, int(max_lag))
    return inv @ (design.T @ np.asarray(s, dtype=float).ravel())


def coefficient_covariance(
    a: np.ndarray,
    unit: np.ndarray,
    period: np.ndarray,
    cov: StationaryCovariance | SizeCovariance,
    *,
    unit_sizes: np.ndarray | None = None,
) -> np.ndarray:
    """Covariance of ``b = A y`` when every unit's errors have autocovariance ``cov``.

    Parameters
    ----------
    a
        ``(m, n)`` the linear map from the ``n`` observations' outcomes to the ``m``
        coefficients (it must give zero on a constant within a unit: unit effects).
    unit, period
        ``(n,)`` integer unit and period indices of the observations (periods on the
        scale of ``cov``: ``0 .. T - 1``).
    cov
        The errors' autocovariance (:func:`autocovariance_from_controls`), or its
        model in the units' sizes (:func:`size_autocovariance_from_controls`).
    unit_sizes
        With a :class:`SizeCovariance`: each unit's size, indexed by unit code. Each
        unit's ``Gamma_i``, net of its mean over the unit's rows (which ``A`` ignores),
        is projected onto the positive semi-definite matrices (a small unit's fitted
        variance can come out negative when extrapolated).

    Returns
    -------
    numpy.ndarray
        ``(m, m)`` covariance, projected onto the positive semi-definite matrices
        (negative eigenvalues, from sampling error in ``gamma``, set to zero).
    """
    a = np.asarray(a, dtype=float)
    m = a.shape[0]
    out = np.zeros((m, m))
    order = np.argsort(unit, kind="stable")
    bounds = np.flatnonzero(np.diff(unit[order])) + 1
    if isinstance(cov, SizeCovariance) and unit_sizes is None:
        raise DesignError("a covariance in the units' sizes needs unit_sizes", column="sizes")
    for rows in np.split(order, bounds):
        block = a[:, rows]
        if isinstance(cov, SizeCovariance):
            assert unit_sizes is not None  # checked above
            g = cov.at(unit_sizes[unit[rows[0]]]).matrix(period[rows])
            g = g - g.mean(axis=0, keepdims=True)
            g = g - g.mean(axis=1, keepdims=True)
            vals, vecs = np.linalg.eigh((g + g.T) / 2)
            g = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
        else:
            g = cov.matrix(period[rows])
        out += block @ g @ block.T
    out = (out + out.T) / 2
    vals, vecs = np.linalg.eigh(out)
    return (vecs * np.clip(vals, 0.0, None)) @ vecs.T


def wald_pretrend(beta: np.ndarray, vcov: np.ndarray) -> dict[str, float]:
    """Wald test that the leads are jointly zero, against chi-squared.

    Uses the generalised inverse of ``vcov`` and its rank as the degrees of freedom.

    Examples
    --------
    >>> out = wald_pretrend(np.array([1.0, 2.0]), np.eye(2))
    >>> out["statistic"], out["df"], round(out["p_value"], 4)
    (5.0, 2, 0.0821)
    """
    beta = np.asarray(beta, dtype=float)
    vals = np.linalg.eigvalsh(vcov)
    tol = max(vals.max(initial=0.0), 1e-300) * 1e-10
    rank = int((vals > tol).sum())
    if rank == 0:
        raise NotEstimableError("the leads' covariance is zero", column="vcov")
    stat = float(beta @ np.linalg.pinv(vcov, rcond=1e-10, hermitian=True) @ beta)
    from scipy import stats  # lazy: estimator classes load without scipy

    p = float(stats.chi2.sf(stat, rank)) if math.isfinite(stat) else math.nan
    return {"statistic": stat, "df": rank, "p_value": p}
