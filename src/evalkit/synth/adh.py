"""The nested optimisation of Abadie-Diamond-Hainmueller synthetic control, on matrices.

Given standardised predictors ``x1`` (k) and ``x0`` (k x J) and the outcomes over the
periods that choose V, ``z1`` (T) and ``z0`` (T x J), the inner problem picks donor
weights ``w(V)`` on the simplex minimising ``(x1 - x0 w)' V (x1 - x0 w)`` for a diagonal
``V`` (solved exactly by :func:`~evalkit.synth.simplex.simplex_lstsq`), and the outer
problem picks ``V`` minimising the mean squared prediction error
``|z1 - z0 w(V)|^2 / T``. The outer problem is not convex and not smooth, so it is run
from several starting points (equal weights, ``Synth``'s regression-based start, and
seeded random draws) with Nelder-Mead on ``V = |theta| / sum|theta|`` (``Synth``'s
parameterisation), each followed by L-BFGS-B on a softmax parameterisation and a
Nelder-Mead restart from the best point; the best fit wins and every start's fit is
reported. No V can do better than the best simplex weights for the outcomes themselves;
that bound is reported too, so the user sees how far the fit reached is from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from evalkit.synth.simplex import lu_solve, simplex_lstsq, simplex_qp

__all__ = ["ADHSolution", "regression_start", "solve_adh", "weights_given_v"]


@dataclass(frozen=True)
class ADHSolution:
    """Donor weights and predictor importance from the nested optimisation.

    Attributes
    ----------
    weights
        Donor weights (simplex).
    v
        Diagonal of V, normalised to sum to one.
    mspe
        Mean squared prediction error of the outcomes over the V-choosing periods.
    start
        The starting point that reached the best fit (``"custom"`` for a given V).
    starts
        MSPE reached from each starting point.
    bound
        The smallest MSPE any simplex weights reach on those outcomes (a lower bound
        for every V).
    evaluations
        Number of inner problems solved.
    """

    weights: np.ndarray
    v: np.ndarray
    mspe: float
    start: str
    starts: Mapping[str, float] = field(default_factory=dict)
    bound: float = float("nan")
    evaluations: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", MappingProxyType(dict(self.starts)))


def weights_given_v(
    x1: np.ndarray, x0: np.ndarray, v: np.ndarray, start: np.ndarray | None = None
) -> np.ndarray:
    """Return the simplex weights minimising ``(x1 - x0 w)' diag(v) (x1 - x0 w)``."""
    vx0 = x0.T * np.clip(v, 0.0, None)  # donors x predictors
    g = vx0 @ x0
    c = vx0 @ x1
    if start is None or not len(start):
        # the donor closest to the treated unit in the V metric
        start = np.array([int(np.argmin(np.diag(g) - 2.0 * c))])
    return simplex_qp(g, c, start=start)[0]


def regression_start(x1: np.ndarray, x0: np.ndarray, z1: np.ndarray, z0: np.ndarray) -> np.ndarray:
    """``Synth``'s regression-based starting V.

    Regress the V-period outcomes of all units on a constant and the standardised
    predictors; the diagonal of ``B B'`` (B the slopes) normalised to sum to one. Returns
    equal weights when the regression is not identified (more predictors than units).
    """
    k = x0.shape[0]
    x = np.column_stack([np.ones(x0.shape[1] + 1), np.column_stack([x0, x1]).T])
    z = np.column_stack([z0, z1]).T
    if x.shape[0] <= x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        return np.full(k, 1.0 / k)
    beta = np.linalg.solve(x.T @ x, x.T @ z)[1:]
    d = (beta**2).sum(axis=1)
    if not np.isfinite(d).all() or d.sum() <= 0:
        return np.full(k, 1.0 / k)
    return d / d.sum()


class _Objective:
    """The outer loss, with a warm start for the inner problem and an evaluation count."""

    def __init__(self, x1: np.ndarray, x0: np.ndarray, z1: np.ndarray, z0: np.ndarray):
        self.x1, self.x0, self.z1, self.z0 = x1, x0, z1, z0
        self.support: np.ndarray | None = None
        self.count = 0

    def at_v(self, v: np.ndarray) -> tuple[float, np.ndarray]:
        self.count += 1
        w = weights_given_v(self.x1, self.x0, v, self.support)
        self.support = np.flatnonzero(w > 0)
        r = self.z1 - self.z0 @ w
        return float(r @ r) / r.size, w

    def abs_param(self, theta: np.ndarray) -> float:
        a = np.abs(theta)
        total = a.sum()
        if not np.isfinite(total) or total <= 0:
            return np.inf
        return self.at_v(a / total)[0]

    def softmax_param(self, u: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and its gradient at ``V = softmax(u)``.

        On a neighbourhood where the set of donors with positive weight does not change,
        the weights solve a linear system (the KKT conditions on that set), so the
        derivative of the weights with respect to V follows by implicit differentiation:
        ``K [dw; dmu] = [X0_S' diag(r) dv; 0]`` with ``r = x1 - x0 w`` the predictor gap.
        """
        e = np.exp(u - u.max())
        v = e / e.sum()
        loss, w = self.at_v(v)
        s = np.flatnonzero(w > 0)
        m = s.size
        if m == 1:
            return loss, np.zeros_like(u)  # a single donor: locally flat
        x0s = self.x0[:, s]
        r = self.x1 - x0s @ w[s]
        kkt = np.zeros((m + 1, m + 1))
        kkt[:m, :m] = (x0s.T * v) @ x0s
        kkt[:m, m] = 1.0
        kkt[m, :m] = 1.0
        rhs = np.zeros((m + 1, v.size))
        rhs[:m] = x0s.T * r  # column j: derivative of the right-hand side in v_j
        dw = lu_solve(kkt, rhs)[:m]  # m x k: d w_S / d v
        z0s = self.z0[:, s]
        dloss_dw = -2.0 * z0s.T @ (self.z1 - z0s @ w[s]) / self.z1.size
        g_v = dw.T @ dloss_dw
        return loss, v * (g_v - v @ g_v)  # through the softmax


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.abs(np.asarray(v, dtype=float))
    return v / v.sum()


def _lbfgs(obj: _Objective, v0: np.ndarray) -> np.ndarray:
    """L-BFGS-B on log-weights (softmax parameterisation) from ``v0``; the better V."""
    from scipy.optimize import minimize

    u0 = np.log(np.clip(v0, 1e-12, None))
    res = minimize(
        obj.softmax_param,
        u0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-30.0, 30.0)] * v0.size,
        options={"maxiter": 500},
    )
    e = np.exp(res.x - res.x.max())
    v = e / e.sum()
    return v if obj.at_v(v)[0] <= obj.at_v(v0)[0] else v0


def _nelder_mead(obj: _Objective, v0: np.ndarray, maxiter: int) -> np.ndarray:
    """Nelder-Mead on ``V = |theta| / sum|theta|`` (Synth's parameterisation) from ``v0``."""
    from scipy.optimize import minimize

    opts = {"maxiter": maxiter, "maxfev": maxiter, "xatol": 1e-8, "fatol": 1e-12}
    res = minimize(obj.abs_param, v0, method="Nelder-Mead", options={**opts, "adaptive": True})
    if not np.isfinite(res.fun) or np.abs(res.x).sum() <= 0:
        return v0
    v = _normalise(res.x)
    return v if obj.at_v(v)[0] <= obj.at_v(v0)[0] else v0


def solve_adh(
    x1: np.ndarray,
    x0: np.ndarray,
    z1: np.ndarray,
    z0: np.ndarray,
    *,
    custom_v: np.ndarray | None = None,
    random_starts: int = 2,
    rng: np.random.Generator | None = None,
    maxiter: int | None = None,
) -> ADHSolution:
    """Choose V and the donor weights by the nested ADH optimisation.

    Parameters
    ----------
    x1, x0
        Standardised predictors of the treated unit (k) and the donors (k x J).
    z1, z0
        Outcomes over the V-choosing periods (T) and (T x J).
    custom_v
        A given diagonal of V: only the weights are solved for.
    random_starts
        Starting points drawn at random (Dirichlet) besides the equal and regression
        starts.
    rng
        Generator for the random starts.
    maxiter
        Function evaluations of the Nelder-Mead refinement (default ``50 * k``, at least
        500).

    Returns
    -------
    ADHSolution

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x0 = rng.normal(size=(3, 5)); z0 = rng.normal(size=(4, 5))
    >>> w = np.array([0.5, 0.5, 0, 0, 0])
    >>> sol = solve_adh(x0 @ w, x0, z0 @ w, z0, random_starts=0)
    >>> np.round(sol.weights, 4).tolist(), sol.mspe < 1e-12
    ([0.5, 0.5, 0.0, 0.0, 0.0], True)
    """
    k = x0.shape[0]
    bound_sol = simplex_lstsq(z0, z1)
    bound = bound_sol.loss / z1.size
    obj = _Objective(x1, x0, z1, z0)
    if custom_v is not None:
        v = _normalise(custom_v)
        mspe, w = obj.at_v(v)
        return ADHSolution(w, v, mspe, "custom", {"custom": mspe}, bound, obj.count)
    if k == 1:
        v = np.ones(1)
        mspe, w = obj.at_v(v)
        return ADHSolution(w, v, mspe, "single predictor", {"equal": mspe}, bound, obj.count)
    rng = rng if rng is not None else np.random.default_rng(0)
    limit = maxiter if maxiter is not None else max(500, 50 * k)
    starts: dict[str, np.ndarray] = {
        "equal": np.full(k, 1.0 / k),
        "regression": regression_start(x1, x0, z1, z0),
    }
    for i in range(random_starts):
        starts[f"random {i + 1}"] = rng.dirichlet(np.ones(k))
    reached: dict[str, float] = {}
    best: tuple[float, str, np.ndarray] | None = None
    for name, v0 in starts.items():
        obj.support = None  # every start begins cold: results do not depend on order
        v = _lbfgs(obj, v0)
        mspe = obj.at_v(v)[0]
        reached[name] = mspe
        if best is None or mspe < best[0]:
            best = (mspe, name, v)
    assert best is not None
    # refine the best: Nelder-Mead (derivative-free, leaves flat regions), then L-BFGS-B
    _, name, v = best
    v = _lbfgs(obj, _nelder_mead(obj, v, limit))
    obj.support = None
    mspe, w = obj.at_v(v)
    reached[f"{name}, refined"] = mspe
    return ADHSolution(w, v, mspe, name, reached, bound, obj.count)
