"""Fixed-length confidence intervals under smoothness, Delta^SD(M) (Rambachan & Roth 2023).

Delta^SD(M) bounds the change in slope of the trend difference between consecutive
periods: ``|(delta_{t+1} - delta_t) - (delta_t - delta_{t-1})| <= M`` (reference
period ``0`` normalised to zero). ``M = 0`` makes the trend difference exactly linear.

The interval is the optimal fixed-length confidence interval (FLCI, Armstrong &
Kolesar 2018), R HonestDiD's default for Delta^SD: among affine estimators
``v'beta`` with ``v_post = l`` whose bias does not depend on a linear trend
(``sum_t t v_t = 0``), the worst-case bias over Delta^SD(M) is ``M ||B'v||_1``
(``B`` maps the second differences to the trend path), and the interval
``v'beta +- cv_alpha(bias / sd) sd`` (``cv_alpha(b)`` the ``1 - alpha`` quantile of
``|N(b, 1)|``) is made as short as possible. As in the paper, this is a
one-dimensional search over the standard deviation ``h``: for each ``h`` the smallest
bias is a small convex programme (solved by SLSQP), and the half-length
``h cv_alpha(M bias(h) / h)`` is minimised over ``h`` by bounded Brent search. The
folded-normal quantile is computed exactly (R simulates it with 10^6 draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from evalkit.errors import ConvergenceError

__all__ = ["FLCI", "flci", "folded_normal_quantile", "second_difference_map"]


def folded_normal_quantile(p: float, mean: float) -> float:
    """Return the ``p`` quantile of ``|N(mean, 1)|``.

    Examples
    --------
    >>> round(folded_normal_quantile(0.95, 0.0), 6)
    1.959964
    """
    mean = abs(mean)
    upper = mean + stats.norm.ppf(p) + 1.0

    def gap(q: float) -> float:
        return float(special.ndtr(q - mean) - special.ndtr(-q - mean)) - p

    return float(optimize.brentq(gap, 0.0, upper + 10.0, xtol=1e-14, rtol=1e-14))


def second_difference_map(n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    """Event times ``t`` and the map ``B`` from second differences to the trend path.

    Every trend difference with ``delta_0 = 0`` is ``c t + B s``: ``c`` the slope from
    period 0 to 1, ``s`` the second differences at ``-K+1, ..., T-1``. Rows follow the
    coefficients (pre periods ``-K..-1``, then post ``1..T``).
    """
    times = np.concatenate([np.arange(-n_pre, 0), np.arange(1, n_post + 1)]).astype(float)
    knots = np.arange(-n_pre + 1, n_post)
    out = np.zeros((len(times), len(knots)))
    for j, u in enumerate(knots):
        # slope d_r = delta_r - delta_{r-1}; a unit second difference at u raises the
        # slopes after u by one (u >= 1) or lowers those at and before u (u <= 0)
        def slope(r: int, u: int = int(u)) -> float:
            if u >= 1:
                return 1.0 if r >= u + 1 else 0.0
            return -1.0 if r <= u else 0.0

        for i, t in enumerate(times.astype(int)):
            if t > 0:
                out[i, j] = sum(slope(r) for r in range(1, t + 1))
            else:
                out[i, j] = -sum(slope(r) for r in range(t + 1, 1))
    return times, out


@dataclass(frozen=True)
class FLCI:
    """An optimal fixed-length confidence interval: ``estimate +- half_length``."""

    estimate: float
    half_length: float
    weights: np.ndarray
    max_bias: float
    std_error: float

    @property
    def interval(self) -> tuple[float, float]:
        return self.estimate - self.half_length, self.estimate + self.half_length


def flci(
    beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, m: float, *, alpha: float
) -> FLCI:
    """Return the optimal FLCI for ``l'tau`` under Delta^SD(M)."""
    n_post = len(l_vec)
    times, bmap = second_difference_map(n_pre, n_post)
    t_pre, t_post = times[:n_pre], times[n_pre:]
    s_pp, s_pq = sigma[:n_pre, :n_pre], sigma[:n_pre, n_pre:]
    s_qq = float(l_vec @ sigma[n_pre:, n_pre:] @ l_vec)
    target = -float(t_post @ l_vec)  # t_pre' v_pre must equal this
    b_pre, b_post = bmap[:n_pre], bmap[n_pre:]

    def variance(v: np.ndarray) -> float:
        return float(v @ s_pp @ v + 2 * v @ s_pq @ l_vec + s_qq)

    def bias(v: np.ndarray) -> float:
        return float(np.abs(b_pre.T @ v + b_post.T @ l_vec).sum())

    # smallest variance (the M = 0 estimator) in closed form
    kkt = np.zeros((n_pre + 1, n_pre + 1))
    kkt[:n_pre, :n_pre] = 2 * s_pp
    kkt[:n_pre, n_pre] = t_pre
    kkt[n_pre, :n_pre] = t_pre
    rhs = np.concatenate([-2 * s_pq @ l_vec, [target]])
    try:
        v_min = np.linalg.solve(kkt, rhs)[:n_pre]
    except np.linalg.LinAlgError:
        v_min = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:n_pre]
    h_min = math.sqrt(max(variance(v_min), 0.0))
    z = stats.norm.ppf(1 - alpha / 2)
    if m == 0 or n_pre == 1:
        v, h = v_min, h_min
        half = folded_normal_quantile(1 - alpha, m * bias(v) / h) * h if h > 0 else 0.0
        if m == 0:
            half = z * h
        return FLCI(float(v @ beta[:n_pre] + l_vec @ beta[n_pre:]), half, v, m * bias(v), h)
    # the least-bias estimator puts all pre weight on the last pre period
    v_last = np.zeros(n_pre)
    v_last[-1] = target / t_pre[-1]
    h_max = math.sqrt(variance(v_last))
    if h_max <= h_min * (1 + 1e-12):
        v = v_min
        return FLCI(
            float(v @ beta[:n_pre] + l_vec @ beta[n_pre:]),
            folded_normal_quantile(1 - alpha, m * bias(v) / h_min) * h_min,
            v,
            m * bias(v),
            h_min,
        )
    n_knots = bmap.shape[1]
    warm = {"x": np.concatenate([v_last, np.abs(b_pre.T @ v_last + b_post.T @ l_vec)])}

    def least_bias(h: float) -> tuple[float, np.ndarray]:
        def objective(x: np.ndarray) -> float:
            return float(x[n_pre:].sum())

        def grad(x: np.ndarray) -> np.ndarray:
            return np.concatenate([np.zeros(n_pre), np.ones(n_knots)])

        lin = b_post.T @ l_vec
        cons = [
            {"type": "eq", "fun": lambda x: t_pre @ x[:n_pre] - target,
             "jac": lambda x: np.concatenate([t_pre, np.zeros(n_knots)])},
            {"type": "ineq", "fun": lambda x: x[n_pre:] - (b_pre.T @ x[:n_pre] + lin),
             "jac": lambda x: np.hstack([-b_pre.T, np.eye(n_knots)])},
            {"type": "ineq", "fun": lambda x: x[n_pre:] + (b_pre.T @ x[:n_pre] + lin),
             "jac": lambda x: np.hstack([b_pre.T, np.eye(n_knots)])},
            {"type": "ineq", "fun": lambda x: (h * h - variance(x[:n_pre])) / (h * h),
             "jac": lambda x: np.concatenate(
                 [-(2 * s_pp @ x[:n_pre] + 2 * s_pq @ l_vec) / (h * h), np.zeros(n_knots)])},
        ]  # fmt: skip
        res = optimize.minimize(
            objective,
            warm["x"],
            jac=grad,
            constraints=cons,
            method="SLSQP",
            options={"ftol": 1e-14, "maxiter": 500},
        )
        if not res.success and res.status not in (8, 9):  # pragma: no cover
            raise ConvergenceError(
                f"the FLCI bias programme did not converge ({res.message})",
                hint="check the covariance of the event-time estimates",
            )
        warm["x"] = res.x
        return bias(res.x[:n_pre]), res.x[:n_pre]

    def half_length(h: float) -> float:
        b, _ = least_bias(h)
        return folded_normal_quantile(1 - alpha, m * b / h) * h

    best = optimize.minimize_scalar(
        half_length,
        bounds=(h_min, h_max),
        method="bounded",
        options={"xatol": 1e-10 * h_max},
    )
    h = float(best.x)
    candidates = [(half_length(h), h), (half_length(h_max), h_max)]
    _, h = min(candidates)
    b, v = least_bias(h)
    sd = math.sqrt(variance(v))
    half = folded_normal_quantile(1 - alpha, m * b / sd) * sd
    return FLCI(float(v @ beta[:n_pre] + l_vec @ beta[n_pre:]), half, v, m * b, sd)
