"""Least squares over the probability simplex, solved exactly by an active-set method.

The synthetic control weights for a given predictor-importance matrix ``V`` solve

    minimise ||A w - b||^2  subject to  w >= 0, sum(w) = 1,

with ``A = V^{1/2} X_0`` (predictors x donors) and ``b = V^{1/2} x_1``. This module solves
it with a Lawson-Hanson style active-set method adapted to the sum-to-one constraint:
keep a set of free (positive) weights, solve the equality-constrained least squares
problem on it in closed form, step back to feasibility when a weight would turn
negative, and free the donor whose Lagrange multiplier is most negative. It stops at a
point that satisfies the Karush-Kuhn-Tucker conditions to rounding, usually after a
handful of small least squares solves, so it is exact where projected-gradient or
Frank-Wolfe solvers stop at a tolerance. ``tests/unit/test_synth_simplex.py`` checks it
against scipy's SLSQP on random problems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.errors import ConvergenceError

__all__ = ["SimplexSolution", "kkt_solve", "lu_solve", "simplex_lstsq", "simplex_qp"]


@dataclass(frozen=True)
class SimplexSolution:
    """The solution of a simplex-constrained least squares problem.

    Attributes
    ----------
    weights
        The weights (non-negative, summing to one).
    loss
        ``||A w - b||^2`` at the solution.
    kkt_violation
        Largest violation of the optimality conditions, relative to the gradient's scale
        (zero up to rounding at an exact solution).
    iterations
        Number of active-set changes.
    """

    weights: np.ndarray
    loss: float
    kkt_violation: float
    iterations: int


def lu_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``a x = b`` (``b`` a vector or a matrix); least squares if ``a`` is singular."""
    _, _, x, info = _dgesv(np.array(a, dtype=float), b)
    if info == 0 and np.isfinite(x).all():
        return x
    return np.linalg.lstsq(a, b, rcond=None)[0]


def kkt_solve(g: np.ndarray, c: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Minimise ``w'Gw/2 - c'w`` over ``w`` on ``idx`` with ``sum(w) = 1`` (no sign limits)."""
    m = idx.size
    if m == 1:
        return np.ones(1)
    kkt = np.ones((m + 1, m + 1))
    kkt[:m, :m] = g[idx[:, None], idx]
    kkt[m, m] = 0.0
    rhs = np.empty(m + 1)
    rhs[:m] = c[idx]
    rhs[m] = 1.0
    _, _, sol, info = _dgesv(kkt, rhs)  # LAPACK directly: small systems, many calls
    if info == 0 and np.isfinite(sol).all():
        return sol[:m]
    kkt = np.ones((m + 1, m + 1))
    kkt[:m, :m] = g[idx[:, None], idx]
    kkt[m, m] = 0.0
    rhs[:m] = c[idx]
    rhs[m] = 1.0
    sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]  # singular: the minimum-norm solution
    return sol[:m]


_LAPACK: dict[str, object] = {}


def _dgesv(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """LAPACK's dgesv (LU solve), imported on first use; ``info > 0`` when singular."""
    solve = _LAPACK.get("dgesv")
    if solve is None:
        from scipy.linalg import lapack

        solve = _LAPACK["dgesv"] = lapack.dgesv
    return solve(a, b, overwrite_a=True, overwrite_b=False)  # type: ignore[operator]


def simplex_lstsq(
    a: np.ndarray,
    b: np.ndarray,
    *,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> SimplexSolution:
    """Minimise ``||a @ w - b||^2`` over the probability simplex.

    Parameters
    ----------
    a
        Matrix, one column per candidate (donor).
    b
        Target vector (one entry per row of ``a``).
    start
        Indices of a starting free set (e.g. the support of a previous solution); the
        best single column when None.
    tol
        Relative tolerance of the optimality check.
    max_iter
        Limit on active-set changes (default ``10 * columns + 50``).

    Returns
    -------
    SimplexSolution

    Examples
    --------
    >>> a = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    >>> sol = simplex_lstsq(a, np.array([1.0, 1.0]))
    >>> np.round(sol.weights, 6).tolist(), round(sol.loss, 12)
    ([0.0, 0.5, 0.5], 0.0)
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    g = a.T @ a
    c = a.T @ b
    if start is None or not len(start):
        start = np.array([int(np.argmin(((a - b[:, None]) ** 2).sum(axis=0)))])
    w, it, viol = simplex_qp(g, c, start=start, tol=tol, max_iter=max_iter)
    resid = a @ w - b
    return SimplexSolution(weights=w, loss=float(resid @ resid), kkt_violation=viol, iterations=it)


def simplex_qp(
    g: np.ndarray,
    c: np.ndarray,
    *,
    start: np.ndarray,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> tuple[np.ndarray, int, float]:
    """Minimise ``w'Gw/2 - c'w`` over the simplex (G positive semi-definite).

    Returns the weights, the number of active-set changes and the relative violation of
    the optimality conditions. ``start`` holds the indices of the first free set.
    """
    n_cols = g.shape[0]
    limit = max_iter if max_iter is not None else 10 * n_cols + 50
    free = np.zeros(n_cols, dtype=bool)
    free[np.asarray(start, dtype=int)] = True
    w = free / free.sum()
    w, free = _settle(g, c, w, free)
    scale = max(1.0, float(np.abs(np.diag(g)).max(initial=0.0)) + float(np.abs(c).max()))
    it = 0
    while True:
        grad = g @ w - c
        on = grad[free]
        mu = on.sum() / on.size
        slack = grad - mu  # KKT: slack >= 0 off the support, = 0 on it
        slack[free] = np.inf
        j = int(slack.argmin())
        if slack[j] >= -tol * scale:
            break
        it += 1
        if it > limit:
            raise ConvergenceError(
                f"the simplex least-squares solver did not converge in {limit} steps",
                hint="rescale the predictors (they may differ by many orders of magnitude)",
            )
        free[j] = True
        w, free = _settle(g, c, w, free)
    off = slack[j] if np.isfinite(slack[j]) else 0.0
    viol = max(float(np.abs(on - mu).max()), float(-min(off, 0.0)))
    return w, it, viol / scale


def _settle(
    g: np.ndarray, c: np.ndarray, w: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``w`` to the constrained optimum on the free set, dropping weights that hit 0."""
    w = w.copy()
    for _ in range(int(free.sum()) + 1):
        idx = np.flatnonzero(free)
        z = kkt_solve(g, c, idx)
        if (z > 0).all():
            w[:] = 0.0
            w[idx] = z
            return w, free
        # step from w towards z until the first weight reaches zero
        cur = w[idx]
        neg = z <= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(neg, cur / (cur - z), np.inf)
        alpha = float(np.clip(ratios.min(), 0.0, 1.0))
        new = cur + alpha * (z - cur)
        new[neg & (ratios <= alpha + 1e-15)] = 0.0
        new = np.clip(new, 0.0, None)
        if new.sum() <= 0:  # cannot happen in exact arithmetic; keep the largest weight
            new = (cur == cur.max()).astype(float)
        w[:] = 0.0
        w[idx] = new / new.sum()
        free = free.copy()
        free[idx[new <= 0.0]] = False
    return w, free
