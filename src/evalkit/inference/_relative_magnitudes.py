"""Robust confidence sets under relative magnitudes, Delta^RM(Mbar) (Rambachan & Roth 2023).

Coefficients ``beta = (beta_pre, beta_post)`` (``K`` pre periods ``-K..-1``, the
reference period ``0`` normalised to zero and left out, ``T`` post periods ``1..T``)
satisfy ``beta = delta + (0, tau)``. Delta^RM(Mbar) bounds every post-period change of
the trend difference by ``Mbar`` times the largest pre-period change:
``|delta_{t+1} - delta_t| <= Mbar * max_{s<0} |delta_{s+1} - delta_s|`` for ``t >= 0``.
It is a finite union of polyhedra, one for each pre-period change ``s`` and sign that
attains the maximum; the confidence set for ``theta = l'tau`` is the union of the
sets for the polyhedra. Each is found by inverting the conditional (or
conditional-least-favourable hybrid) moment-inequality test of
:mod:`evalkit.inference._arp` over a grid of ``theta``, using the post-period moments
only, as R HonestDiD does by default.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from evalkit.errors import InferenceUnavailableWarning
from evalkit.inference._arp import ARPProblem, least_favourable_cv

__all__ = ["rm_confidence_set", "rm_constraints", "rm_identified_set"]


def rm_constraints(
    n_pre: int,
    n_post: int,
    mbar: float,
    s: int,
    positive: bool,
    *,
    bias: str | None = None,
    monotone: str | None = None,
) -> np.ndarray:
    """Rows ``A`` of ``A delta <= 0`` for one polyhedron of Delta^RM(Mbar).

    ``s`` in ``-(K-1)..0`` names the pre-period change ``delta_s - delta_{s-1}`` taken
    as the largest (in absolute value, with sign ``positive``); columns are the
    ``K + T`` coefficients (reference period left out). ``bias="positive"`` adds
    ``delta_t >= 0`` for post periods (``"negative"``: ``<= 0``); ``monotone=
    "increasing"`` adds ``delta_t >= delta_{t-1}`` for every period including the
    reference (``"decreasing"``: ``<=``), Rambachan & Roth's Delta^RMB and Delta^RMM.
    """
    n = n_pre + n_post
    diffs = np.zeros((n, n + 1))  # first differences over the full path incl. reference
    for r in range(n):
        diffs[r, r], diffs[r, r + 1] = -1.0, 1.0
    largest = np.zeros(n + 1)
    largest[n_pre + s - 1], largest[n_pre + s] = -1.0, 1.0
    if not positive:
        largest = -largest
    bound = np.vstack([np.tile(largest, (n_pre, 1)), np.tile(mbar * largest, (n_post, 1))])
    a = np.vstack([diffs - bound, -diffs - bound])
    a = a[np.einsum("ij,ij->i", a, a) > 1e-10]
    if bias is not None:
        rows = np.hstack([np.zeros((n_post, n_pre + 1)), -np.eye(n_post)])
        a = np.vstack([a, rows if bias == "positive" else -rows])
    if monotone is not None:
        rows = diffs if monotone == "decreasing" else -diffs
        a = np.vstack([a, rows])
    return np.delete(a, n_pre, axis=1)


def _gamma(l_vec: np.ndarray) -> np.ndarray:
    """Return an invertible matrix whose first row is ``l'`` (the rest unit vectors)."""
    rows = [l_vec]
    for j in range(len(l_vec)):
        unit = np.zeros(len(l_vec))
        unit[j] = 1.0
        if np.linalg.matrix_rank(np.vstack([*rows, unit])) == len(rows) + 1:
            rows.append(unit)
        if len(rows) == len(l_vec):
            break
    return np.vstack(rows)


def _polyhedra(n_pre: int) -> list[tuple[int, bool]]:
    return [(s, pos) for s in range(-(n_pre - 1), 1) for pos in (True, False)]


def rm_identified_set(
    beta: np.ndarray, n_pre: int, l_vec: np.ndarray, mbar: float, **shape: str | None
) -> tuple[float, float]:
    """Return the identified set of ``l'tau`` under Delta^RM(Mbar) for a known ``beta``."""
    n_post = len(l_vec)
    post = float(l_vec @ beta[n_pre:])
    lo, hi = math.inf, -math.inf
    cost = np.concatenate([np.zeros(n_pre), l_vec])
    eq = np.hstack([np.eye(n_pre), np.zeros((n_pre, n_post))])
    for s, pos in _polyhedra(n_pre):
        a = rm_constraints(n_pre, n_post, mbar, s, pos, **shape)
        bounds = [(None, None)] * (n_pre + n_post)
        kw = dict(A_ub=a, b_ub=np.zeros(len(a)), A_eq=eq, b_eq=beta[:n_pre], bounds=bounds)
        top = optimize.linprog(-cost, method="highs", **kw)
        bottom = optimize.linprog(cost, method="highs", **kw)
        if top.status == 0 and bottom.status == 0:
            lo = min(lo, post - (-top.fun))
            hi = max(hi, post - bottom.fun)
    return lo, hi


@dataclass(frozen=True)
class _Inverted:
    problem: ARPProblem
    y0: np.ndarray
    slope: np.ndarray

    def accepts(self, theta: float) -> bool:
        return not self.problem.rejects(self.y0 - self.slope * theta)


def _setup(
    beta: np.ndarray,
    sigma: np.ndarray,
    n_pre: int,
    l_vec: np.ndarray,
    mbar: float,
    s: int,
    positive: bool,
    *,
    alpha: float,
    hybrid: str,
    kappa: float,
    seed: int,
    shape: dict[str, str | None],
) -> _Inverted:
    n_post = len(l_vec)
    a = rm_constraints(n_pre, n_post, mbar, s, positive, **shape)
    a = a[np.any(a[:, n_pre:] != 0.0, axis=1)]  # post-period moments only
    loadings = a[:, n_pre:] @ np.linalg.inv(_gamma(l_vec))
    x = loadings[:, 1:]
    sigma_y = a @ sigma @ a.T
    lf_cv = math.inf
    if hybrid == "LF":
        lf_cv = least_favourable_cv(x, sigma_y, kappa, seed=seed)
    problem = ARPProblem(
        x=x,
        sigma=sigma_y,
        alpha=alpha,
        hybrid=hybrid,
        lf_cv=lf_cv,
        kappa=kappa,
        cap_upper=n_post > 1,
    )
    return _Inverted(problem, a @ beta, loadings[:, 0])


def _accepted_span(test: _Inverted, grid: np.ndarray, start: int | None) -> tuple[int, int] | None:
    """First and last accepted grid index, searching outwards from an accepted point.

    Assumes the accepted set is an interval (checked by the slow test against a
    full scan); with no accepted start point it scans the whole grid.
    """
    if start is None or not test.accepts(grid[start]):
        hits = [i for i, g in enumerate(grid) if test.accepts(g)]
        return (hits[0], hits[-1]) if hits else None

    def edge(inside: int, outside: int) -> int:
        # invariant: inside accepted; outside rejected or off the grid
        while abs(outside - inside) > 1:
            mid = (inside + outside) // 2
            if test.accepts(grid[mid]):
                inside = mid
            else:
                outside = mid
        return inside

    return edge(start, -1), edge(start, len(grid))


def rm_confidence_set(
    beta: np.ndarray,
    sigma: np.ndarray,
    n_pre: int,
    l_vec: np.ndarray,
    mbar: float,
    *,
    alpha: float = 0.05,
    hybrid: str = "LF",
    grid_points: int = 1000,
    grid_bounds: tuple[float, float] | str | None = None,
    scan: str = "bisect",
    seed: int = 0,
    bias: str | None = None,
    monotone: str | None = None,
) -> tuple[float, float]:
    """Robust confidence set for ``l'tau`` under Delta^RM(Mbar): ``(low, high)`` on the grid.

    The grid is ``grid_points`` equally spaced values of ``theta`` over
    ``grid_bounds``. R HonestDiD's default is +-20 standard deviations of
    ``l'beta_post`` around zero, which cuts off the set when the effect is large
    relative to its standard error; evalkit's default (``None``) widens that range when
    needed to cover the identified set at the estimate +-20 standard deviations, and
    doubles it (up to three times) while the set reaches an end; ``grid_bounds="R"``
    keeps R's range exactly. The set is reported as its smallest and largest accepted
    grid values (NaN if none). ``scan="full"`` tests every grid point. ``bias`` and
    ``monotone`` add sign and shape restrictions (see :func:`rm_constraints`).
    """
    n_post = len(l_vec)
    post = slice(n_pre, n_pre + n_post)
    sd_theta = math.sqrt(float(l_vec @ sigma[post, post] @ l_vec))
    shape = {"bias": bias, "monotone": monotone}
    widen = 0
    if grid_bounds is None or grid_bounds == "R":
        lo_g, hi_g = -20 * sd_theta, 20 * sd_theta
        if grid_bounds is None:
            ident = rm_identified_set(beta, n_pre, l_vec, mbar, **shape)
            if np.isfinite(ident[0]):
                lo_g = min(lo_g, ident[0] - 20 * sd_theta)
                hi_g = max(hi_g, ident[1] + 20 * sd_theta)
            widen = 3  # double the range (up to 3 times) if the set reaches an end
    else:
        lo_g, hi_g = (float(v) for v in grid_bounds)
    kappa = alpha / 10
    tests = [
        (
            _setup(
                beta, sigma, n_pre, l_vec, mbar, s, pos,
                alpha=alpha, hybrid=hybrid, kappa=kappa, seed=seed, shape=shape,
            ),
            _polyhedron_centre(beta, n_pre, l_vec, mbar, s, pos, shape),
        )
        for s, pos in _polyhedra(n_pre)
    ]  # fmt: skip
    while True:
        grid = np.linspace(lo_g, hi_g, grid_points)
        first, last = len(grid), -1
        for test, centre in tests:
            start = None
            if scan != "full" and centre is not None:
                start = int(np.argmin(np.abs(grid - centre)))
            span = _accepted_span(test, grid, start)
            if span is not None:
                first, last = min(first, span[0]), max(last, span[1])
        if last < 0:
            warnings.warn(
                f"no value of theta on the grid [{lo_g:.4g}, {hi_g:.4g}] is accepted: the "
                "robust confidence set is empty or lies outside the grid (give wider "
                "grid_bounds)",
                InferenceUnavailableWarning,
                stacklevel=3,
            )
            return math.nan, math.nan
        at_end = first == 0 or last == len(grid) - 1
        if not (at_end and widen):
            break
        widen -= 1
        half = hi_g - lo_g
        lo_g, hi_g = (
            (lo_g - half if first == 0 else lo_g),
            (hi_g + half if last == len(grid) - 1 else hi_g),
        )
    if at_end:
        warnings.warn(
            "the robust confidence set reaches the end of the grid of theta values; "
            "it may be longer than shown (give wider grid_bounds)",
            InferenceUnavailableWarning,
            stacklevel=3,
        )
    return float(grid[first]), float(grid[last])


def _polyhedron_centre(
    beta: np.ndarray,
    n_pre: int,
    l_vec: np.ndarray,
    mbar: float,
    s: int,
    pos: bool,
    shape: dict[str, str | None],
) -> float | None:
    """Middle of one polyhedron's identified set at the estimate: a likely accepted theta."""
    n_post = len(l_vec)
    a = rm_constraints(n_pre, n_post, mbar, s, pos, **shape)
    cost = np.concatenate([np.zeros(n_pre), l_vec])
    eq = np.hstack([np.eye(n_pre), np.zeros((n_pre, n_post))])
    kw = dict(
        A_ub=a,
        b_ub=np.zeros(len(a)),
        A_eq=eq,
        b_eq=beta[:n_pre],
        bounds=[(None, None)] * (n_pre + n_post),
        method="highs",
    )
    top, bottom = optimize.linprog(-cost, **kw), optimize.linprog(cost, **kw)
    post = float(l_vec @ beta[n_pre:])
    if top.status == 0 and bottom.status == 0:
        return post - (-top.fun + bottom.fun) / 2
    return post
