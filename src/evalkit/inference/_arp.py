"""Conditional and hybrid moment-inequality tests with linear nuisance parameters.

Andrews, Roth & Pakes (2023, "Inference for linear conditional moment inequalities")
test ``H0: there is a nuisance vector t with E[Y] - X t <= 0`` from an estimate
``Y ~ N(mu, Sigma)``. The statistic is the value of the linear programme

    eta = min_{eta, t} eta  subject to  Y <= sd * eta + X t,

with ``sd`` the standard deviations of ``Y``. Its dual, ``max lambda'Y`` over
``lambda >= 0`` with ``lambda'sd = 1`` and ``lambda'X = 0``, picks a vertex ``gamma``;
conditional on the part of ``Y`` independent of ``gamma'Y`` the statistic is a normal
truncated to ``[v_lo, v_up]``, which gives the conditional critical value. The hybrid
with a least-favourable first stage ("C-LF", Rambachan & Roth 2023's default for
relative magnitudes) rejects when ``eta`` exceeds the ``1 - kappa`` quantile of the
statistic under ``mu = 0`` and otherwise runs the conditional test at level
``(alpha - kappa) / (1 - kappa)`` with ``v_up`` capped at that quantile.

The steps (non-degenerate vertex: closed-form truncation bounds; degenerate vertex:
bounds by bisection on the dual programme) follow the paper and the documented
algorithm of the R package HonestDiD (0.2.x); the code is evalkit's own. Linear
programmes are solved with scipy's HiGHS.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize, stats

from evalkit.errors import ConvergenceError

__all__ = ["ARPProblem", "least_favourable_cv", "lp_statistic"]

_TOL_LAMBDA = 1e-6  # a dual weight above this counts as binding
_TOL_C = 1e-6  # bisection tolerance of the truncation bounds (dual branch)
_TOL_EQUALITY = 1e-6  # |c - eta(c)| below this: the vertex is still optimal
_SWITCH_ITERS = 10  # fixed-point steps before switching to bisection
_MAX_VERTEX_SUBSETS = 20_000  # enumerate dual vertices only when this is cheap


@dataclass(frozen=True)
class LPSolution:
    """The statistic and the dual vertex that attains it."""

    eta: float
    dual: np.ndarray


def lp_statistic(y: np.ndarray, x: np.ndarray, sd: np.ndarray) -> LPSolution:
    """Solve ``min eta`` subject to ``y <= sd * eta + x t`` (HiGHS dual simplex).

    Returns the optimal value and the dual weights ``lambda >= 0`` (``lambda'y = eta``).
    """
    k = x.shape[1]
    cost = np.zeros(k + 1)
    cost[0] = 1.0
    a_ub = -np.column_stack([sd, x])
    res = optimize.linprog(
        cost,
        A_ub=a_ub,
        b_ub=-y,
        bounds=[(None, None)] * (k + 1),
        method="highs-ds",
    )
    if res.status != 0:
        raise ConvergenceError(
            f"the moment-inequality linear programme failed ({res.message})",
            hint="check that the covariance of the event-time estimates is finite",
        )
    return LPSolution(float(res.fun), -np.asarray(res.ineqlin.marginals, dtype=float))


def _dual_vertices(x: np.ndarray, sd: np.ndarray) -> np.ndarray | None:
    """All vertices of ``{lambda >= 0: lambda'[sd, x] = e1}``, or None if too many subsets.

    The statistic is then ``max_v v'y``: the least-favourable simulation needs no LP.
    """
    m, k = x.shape
    if k == 0:
        return np.diag(1.0 / sd)
    w = np.column_stack([sd, x])
    if math.comb(m, k + 1) > _MAX_VERTEX_SUBSETS:
        return None
    # every (k + 1)-subset of rows at once: the same LAPACK determinant and solve per
    # subset as one call each (a stacked gufunc call), so the vertices are identical
    subsets = np.array(list(itertools.combinations(range(m), k + 1)), dtype=np.intp)
    subs = np.swapaxes(w[subsets], 1, 2)
    scale = np.maximum(1.0, np.abs(subs).max(axis=(1, 2)) ** (k + 1))
    regular = ~(np.abs(np.linalg.det(subs)) < 1e-12 * scale)
    subsets, subs = subsets[regular], subs[regular]
    if not len(subsets):
        return None
    rhs = np.zeros((len(subsets), k + 1, 1))
    rhs[:, 0, 0] = 1.0
    lam = np.linalg.solve(subs, rhs)[:, :, 0]
    feasible = np.all(lam >= -1e-12, axis=1)
    if not feasible.any():
        return None
    out = np.zeros((int(feasible.sum()), m))
    np.put_along_axis(out, subsets[feasible], np.clip(lam[feasible], 0.0, None), axis=1)
    return np.unique(np.round(out, 14), axis=0)


def least_favourable_cv(
    x: np.ndarray, sigma: np.ndarray, kappa: float, *, sims: int = 1000, seed: int = 0
) -> float:
    """Return the ``1 - kappa`` quantile of the statistic when ``E[Y] = 0`` (simulated).

    ``sims`` draws from ``N(0, sigma)`` with a seeded generator; the quantile is the
    linear-interpolation sample quantile (R's type 7, numpy's default).
    """
    sd = np.sqrt(np.diag(sigma))
    vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((sims, len(sd))) @ root.T
    vertices = _dual_vertices(x, sd) if x.shape[1] else None
    if x.shape[1] == 0:
        eta = np.max(draws / sd, axis=1)
    elif vertices is not None:
        eta = np.max(draws @ vertices.T, axis=1)
    else:  # many post periods: one LP per draw
        eta = np.array([lp_statistic(d, x, sd).eta for d in draws])
    return float(np.quantile(eta, 1.0 - kappa))


def _truncnorm_quantile(p: float, lo: float, hi: float) -> float:
    """Quantile of a standard normal truncated to ``[lo, hi]``."""
    if lo >= hi:
        return lo
    return float(stats.truncnorm.ppf(p, lo, hi))


@dataclass(frozen=True)
class ARPProblem:
    """One moment-inequality test problem ``E[Y(theta)] - X t <= 0``.

    Attributes
    ----------
    x
        ``(m, k)`` loadings of the nuisance parameters.
    sigma
        ``(m, m)`` covariance of ``Y``.
    alpha
        Size of the test.
    hybrid
        ``"LF"`` (conditional-least-favourable hybrid) or ``"ARP"`` (conditional).
    lf_cv
        The least-favourable critical value (``"LF"`` only).
    kappa
        First-stage size of the hybrid.
    cap_upper
        Truncate the second stage at the first stage's critical value (the hybrid of
        the paper). R HonestDiD leaves it out when there is no nuisance parameter (one
        post period); evalkit follows it there so that results agree.
    """

    x: np.ndarray
    sigma: np.ndarray
    alpha: float
    hybrid: str = "LF"
    lf_cv: float = math.inf
    kappa: float = 0.0
    cap_upper: bool = True

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.diag(self.sigma))

    @cached_property
    def vertices(self) -> np.ndarray | None:
        """The dual vertices when few enough to list (then no LP is solved per test)."""
        return _dual_vertices(self.x, self.sd)

    def _solve(self, y: np.ndarray) -> LPSolution:
        """Return the statistic and its dual vertex (by enumeration, else HiGHS)."""
        if self.vertices is None:
            return lp_statistic(y, self.x, self.sd)
        values = self.vertices @ y
        best = int(np.argmax(values))
        return LPSolution(float(values[best]), self.vertices[best])

    def rejects(self, y: np.ndarray) -> bool:
        """Whether the test rejects ``H0`` at the moment estimate ``y``."""
        sol = self._solve(y)
        eta = sol.eta
        if self.hybrid == "LF":
            if eta > self.lf_cv:
                return True
            size = (self.alpha - self.kappa) / (1.0 - self.kappa)
        else:
            size = self.alpha
        k = self.x.shape[1]
        binding = sol.dual > _TOL_LAMBDA
        x_b = self.x[binding]
        full_rank = k == 0 or (x_b.shape[0] > 0 and np.linalg.matrix_rank(x_b) == min(x_b.shape))
        if binding.sum() == k + 1 and full_rank:
            bounds = self._bounds_vertex(y, binding)
        else:
            bounds = self._bounds_dual(y, eta, sol.dual)
        if bounds is None:  # no sampling variation along gamma
            return eta > 0
        vlo, vup, sigma_b = bounds
        if self.hybrid == "LF" and self.cap_upper:
            vup = min(vup, self.lf_cv)
        stat, zlo, zup = eta / sigma_b, vlo / sigma_b, vup / sigma_b
        if not zlo <= stat <= zup:
            return False
        cv = max(0.0, _truncnorm_quantile(1.0 - size, zlo, zup))
        return stat > cv

    def _bounds_vertex(
        self, y: np.ndarray, binding: np.ndarray
    ) -> tuple[float, float, float] | None:
        """Return the truncation bounds in closed form at a non-degenerate vertex."""
        sd, sigma, m = self.sd, self.sigma, len(y)
        w_b = np.column_stack([sd[binding], self.x[binding]])
        w_n = np.column_stack([sd[~binding], self.x[~binding]])
        eye = np.eye(m)
        s_b, s_n = eye[binding], eye[~binding]
        inv = np.linalg.inv(w_b)
        gamma_b = w_n @ inv @ s_b - s_n
        v_b = (inv[0] @ s_b).ravel()
        var_b = float(v_b @ sigma @ v_b)
        if var_b <= np.finfo(float).eps:
            return None
        rho = gamma_b @ sigma @ v_b / var_b
        with np.errstate(divide="ignore", invalid="ignore"):
            cand = (-gamma_b @ y) / rho + float(v_b @ y)
        vlo = float(cand[rho > 0].max()) if np.any(rho > 0) else -math.inf
        vup = float(cand[rho < 0].min()) if np.any(rho < 0) else math.inf
        return vlo, vup, math.sqrt(var_b)

    def _bounds_dual(
        self, y: np.ndarray, eta: float, gamma: np.ndarray
    ) -> tuple[float, float, float] | None:
        """Return the truncation bounds at a degenerate vertex: where ``gamma`` stays optimal.

        Along ``y(c) = s + b c`` (``s`` the part of ``y`` independent of ``gamma'y``)
        the statistic equals ``c`` exactly on ``[v_lo, v_up]``; found by a few
        fixed-point steps from the end of a wide bracket, then bisection.
        """
        sigma = self.sigma
        var_b = float(gamma @ sigma @ gamma)
        if abs(var_b) < np.finfo(float).eps:
            return None
        b = sigma @ gamma / var_b
        s = y - b * float(gamma @ y)
        sd_b = math.sqrt(var_b)
        w = np.column_stack([self.sd, self.x])
        rhs = np.zeros(w.shape[1])
        rhs[0] = 1.0

        def solve(c: float) -> tuple[bool, np.ndarray]:
            if self.vertices is not None:
                sol = self._solve(s + b * c)
                return abs(c - sol.eta) <= _TOL_EQUALITY, sol.dual
            res = optimize.linprog(
                -(s + b * c), A_eq=w.T, b_eq=rhs, bounds=(0, None), method="highs-ds"
            )
            if res.status != 0:
                return False, np.zeros(len(y))
            return abs(c - (-res.fun)) <= _TOL_EQUALITY, res.x

        ok, _ = solve(eta)
        if not ok:
            return eta, math.inf, sd_b

        def edge(start: float, upward: bool) -> float:
            ok, lam = solve(start)
            if ok:
                return math.inf if upward else -math.inf
            mid, converged = start, False
            for _ in range(1, _SWITCH_ITERS):
                num = float(lam @ s)
                num = 0.0 if abs(num) < np.finfo(float).eps ** 0.75 else num
                mid = num / (1.0 - float(lam @ b))
                ok, lam = solve(mid)
                if ok:
                    converged = True
                    break
            if converged:
                return mid
            inside, outside, last = eta, mid, mid
            while abs(outside - inside) > _TOL_C:
                last = (inside + outside) / 2
                if solve(last)[0]:
                    inside = last
                else:
                    outside = last
            return last

        vup = edge(max(100.0, eta + 20 * sd_b), upward=True)
        vlo = edge(min(-100.0, eta - 20 * sd_b), upward=False)
        return vlo, vup, sd_b
