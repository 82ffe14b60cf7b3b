"""Conformal inference over time for one treated unit (Chernozhukov, Wuthrich & Zhu 2021).

Chernozhukov, Wuthrich and Zhu (2021, JASA 116(536), "An exact and robust conformal
inference method for counterfactual and synthetic controls") test a sharp null about
the treated unit's post-period effects ``theta_t``:

1. impose the null: subtract ``theta_t`` from the treated unit's post-period outcomes;
2. fit the counterfactual model on *all* periods of the null-imposed data (DiD, synthetic
   control, ...), and take the treated unit's residuals ``u_1..u_T``;
3. compare ``S(u) = (T1^-1 sum_{t post} |u_t|^q)^(1/q)`` (``q="mean"``: the absolute
   mean of the post-period residuals, the statistic for an average effect) with its value under the
   moving-block permutations ``pi_j(t) = t + j (mod T)``, ``j = 0..T-1``; the p-value is
   the share of permutations with ``S >= S(u)`` (so its granularity is ``1/T``).

It is exact when the residuals are exchangeable (i.i.d. permutations) and
approximately valid under weak dependence with moving blocks. Intervals come from
inverting the test: for the average effect, the null is a constant effect ``theta`` in
every post period; per period, the data are the pre-periods plus that one period
(granularity ``1/(T0+1)``).

The default statistic for :func:`conformal_inference` is the absolute mean of the
post-period residuals. ``S_q`` with ``q = 1`` has no power against a constant effect
when the post period is longer than the pre period: the null-imposed fit absorbs the
effect into the unit's level, so the pre-period residuals are then the larger ones
(measured on the one-treated-of-ten design, 33 of 60 months after the reform: power
0.00 at an effect of 3 with ``q = 1``, against 0.9 or more with the mean).

Weights: a two-way fixed-effects regression on cells weighted by their counts is not the
unweighted DiD of the cells, and an interval built from the unweighted one need not
contain the weighted estimate (it did not, e.g., for the Bergen study's TWFE at 4,000
persons). With ``weights`` the DiD counterfactual is fitted by weighted least squares and
the ``"mean"`` statistic is the weighted mean of the post-period residuals (each weight
moving with its residual under the permutations), so the conformal estimate is the
weighted regression's. For such a linear fit the residuals under the null ``theta`` are
``u(0) - theta * c``, each shift's statistic is ``|A_j - theta B_j|``, and the p-value
jumps only where two of them are equal: the accepted set is computed exactly from those
points, as a union of intervals (the hull is reported, with a note, when it is not one).

The counterfactual model is a callable, so synthetic control reuses this module:
``fit(y_null, keep) -> residuals`` receives the treated unit's null-imposed outcomes
on the kept periods (``keep`` a boolean mask over all periods) and returns its residuals
on those periods. :func:`did_counterfactual` builds the two-way fixed-effects one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evalkit.errors import DesignError, NotEstimableError

__all__ = [
    "ConformalResult",
    "conformal_inference",
    "conformal_p_value",
    "did_counterfactual",
]

Counterfactual = Callable[[np.ndarray, np.ndarray], np.ndarray]


class _LinearFit:
    """A counterfactual whose residuals are affine in the treated unit's outcomes.

    ``linear = True`` lets :func:`conformal_inference` invert the test exactly: the
    residuals under the null ``theta`` are ``u(0) - theta * c``.
    """

    linear = True

    def __init__(self, controls: np.ndarray, weights: np.ndarray | None) -> None:
        self.ctrl = controls
        self.weights = weights
        self._cache: dict[bytes, np.ndarray] = {}

    def __call__(self, y_null: np.ndarray, keep: np.ndarray) -> np.ndarray:
        panel = np.vstack([np.asarray(y_null, dtype=float)[None, :], self.ctrl[:, keep]])
        if self.weights is None:
            col = panel.mean(axis=0)
            return panel[0] - panel[0].mean() - col + col.mean()
        # weighted least squares of y_it = a_i + g_t (normal equations, inverse cached per mask)
        key = np.asarray(keep, dtype=bool).tobytes()
        w = self.weights[:, keep]
        if key not in self._cache:
            self._cache[key] = _weighted_twoway_inverse(w)
        g = w.shape[0]
        wy = w * panel
        coef = self._cache[key] @ np.r_[wy.sum(axis=1), wy.sum(axis=0)[1:]]
        return panel[0] - coef[0] - np.r_[0.0, coef[g:]]


def _weighted_twoway_inverse(w: np.ndarray) -> np.ndarray:
    """Inverse of ``X'WX`` for ``y_it = a_i + g_t`` on a ``(G, T)`` panel with weights ``w``.

    The design has a dummy per unit and per period but the first, so ``X'WX`` (unit
    totals, period totals and the weights themselves off the diagonal) is small and
    positive definite; ``coef = inverse @ X'Wy``.
    """
    g = w.shape[0]
    xtwx = np.diag(np.r_[w.sum(axis=1), w.sum(axis=0)[1:]])
    xtwx[:g, g:] = w[:, 1:]
    xtwx[g:, :g] = w[:, 1:].T
    return np.linalg.inv(xtwx)


def did_counterfactual(controls: np.ndarray, weights: np.ndarray | None = None) -> Counterfactual:
    """Two-way fixed-effects counterfactual of the treated unit given control units.

    ``controls`` is ``(J, T)``. On the kept periods, the model ``y_it = a_i + g_t`` is fitted
    by least squares to the balanced panel of the controls and the treated unit (its
    null-imposed outcomes), and the treated unit's residuals are returned; unweighted,
    ``y_1t - mean_t y_1 - mean_i y_it + mean y``. ``weights`` (``(J + 1, T)``, the treated
    unit first) makes it weighted least squares, as a two-way fixed-effects regression on
    cells weighted by their counts: the conformal estimate is then that regression's.

    Examples
    --------
    >>> fit = did_counterfactual(np.array([[0.0, 1.0, 2.0]]))
    >>> fit(np.array([1.0, 2.0, 3.0]), np.ones(3, bool)).round(12).tolist()
    [0.0, 0.0, 0.0]
    >>> w = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> fitw = did_counterfactual(np.array([[0.0, 1.0, 2.0]]), w)
    >>> bool(np.abs(fitw(np.array([1.0, 2.0, 4.0]), np.ones(3, bool))).max() > 0.1)
    True
    """
    ctrl = np.asarray(controls, dtype=float)
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != (ctrl.shape[0] + 1, ctrl.shape[1]) or np.any(w <= 0):
            raise DesignError(
                "conformal weights must be positive, one per unit and period (treated first)",
                column="weights",
            )
        if np.allclose(w, w.flat[0]):
            w = None  # equal weights: the closed form
    return _LinearFit(ctrl, w)


def _shifted_post(n: int, post: np.ndarray) -> np.ndarray:
    """``idx[:, post]`` with ``idx[j, t] = pi_j(t) = t + j mod T``, kept for the next call.

    The statistic is computed for every null of an interval search with the same ``T``
    and post periods; the index is built once per pair (a small bounded cache).
    """
    key = (n, post.tobytes())
    idx = _SHIFTS.get(key)
    if idx is None:
        full = (np.arange(n)[None, :] + np.arange(n)[:, None]) % n
        idx = full[:, post]
        idx.setflags(write=False)
        if len(_SHIFTS) >= 256:
            _SHIFTS.clear()
        _SHIFTS[key] = idx
    return idx


_SHIFTS: dict[tuple[int, bytes], np.ndarray] = {}


def _statistic(
    u: np.ndarray, post: np.ndarray, q: float | str, w: np.ndarray | None = None
) -> np.ndarray:
    """S for every moving-block shift: row j is S(u o pi_j).

    With ``w`` (the treated unit's weight in each period) the ``"mean"`` statistic is the
    weighted mean of the post-period residuals, each weight moving with its residual.
    """
    idx = _shifted_post(len(u), np.asarray(post, dtype=bool))
    if q == "mean":
        if w is None:
            return np.abs(u[idx].mean(axis=1))
        ww = w[idx]
        return np.abs((ww * u[idx]).sum(axis=1) / ww.sum(axis=1))
    vals = np.abs(u[idx])
    power = float(q)
    if np.isinf(power):
        return vals.max(axis=1)
    return np.mean(vals**power, axis=1) ** (1.0 / power)


def _p_from(s: np.ndarray) -> float:
    """Share of the shifts whose statistic is at least the observed one (row 0)."""
    return float(np.mean(s >= s[0] - 1e-12 * max(abs(s[0]), 1.0)))


def conformal_p_value(
    y: np.ndarray,
    post: np.ndarray,
    fit: Counterfactual,
    theta: float | np.ndarray,
    q: float | str = 1.0,
    weights: np.ndarray | None = None,
) -> float:
    """Moving-block conformal p-value of the sharp null ``effect = theta`` in post periods.

    ``weights`` (the treated unit's weight in each period) weight the ``"mean"`` statistic.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ctrl = rng.normal(size=(4, 20)); y = ctrl.mean(0) + rng.normal(size=20)
    >>> post = np.arange(20) >= 15
    >>> p = conformal_p_value(y, post, did_counterfactual(ctrl), 0.0)
    >>> 0 < p <= 1 and (p * 20).is_integer()
    True
    """
    y_null = np.asarray(y, dtype=float).copy()
    y_null[post] = y_null[post] - theta
    u = fit(y_null, np.ones(len(y_null), dtype=bool))
    w = None if weights is None else np.asarray(weights, dtype=float)
    return _p_from(_statistic(np.asarray(u, dtype=float), post, q, w))


@dataclass(frozen=True)
class ConformalResult:
    """Conformal test of no effect, the average-effect interval, and per-period intervals."""

    estimate: float
    p_value: float
    conf_low: float
    conf_high: float
    level: float
    n_periods: int
    n_post: int
    q: float | str
    null: float
    periods: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))
    period_estimate: np.ndarray = field(default_factory=lambda: np.empty(0))
    period_p_value: np.ndarray = field(default_factory=lambda: np.empty(0))
    period_low: np.ndarray = field(default_factory=lambda: np.empty(0))
    period_high: np.ndarray = field(default_factory=lambda: np.empty(0))
    note: str = ""
    #: The accepted set of the average effect as closed intervals ``(low, high)``; more
    #: than one when it is not connected (``conf_low``/``conf_high`` are then its hull).
    pieces: tuple[tuple[float, float], ...] = ()

    def _stat_name(self) -> str:
        if self.q == "mean":
            return "|mean post-period residual|"
        return f"S_q with q={self.q}"

    def describe(self) -> str:
        """One sentence saying what was computed."""
        return (
            f"conformal inference over time (Chernozhukov, Wuthrich & Zhu 2021): moving-block "
            f"permutations of the treated unit's residuals over {self.n_periods} periods "
            f"({self.n_post} after treatment), statistic {self._stat_name()}; p-values in steps of "
            f"1/{self.n_periods}; {self.level:.0%} interval for a constant effect by inversion"
            + (f"; {self.note}" if self.note else "")
        )


def _estimate(
    y: np.ndarray, post: np.ndarray, fit: Counterfactual, w: np.ndarray | None = None
) -> float:
    """Constant effect whose null-imposed fit leaves the post residuals centred at zero.

    Exact for counterfactual models linear in the outcome (DiD: with the cells' weights,
    the weighted two-way fixed-effects estimate); for others a first-order (one secant
    step) approximation, used only as the centre of the interval search.
    """
    keep = np.ones(len(y), dtype=bool)
    u0 = np.asarray(fit(y, keep), dtype=float)
    u1 = np.asarray(fit(y - post, keep), dtype=float)
    wp = np.ones(int(post.sum())) if w is None else w[post]
    slope = float(np.sum(wp * (u0[post] - u1[post])) / wp.sum())
    level0 = float(np.sum(wp * u0[post]) / wp.sum())
    return level0 / slope if abs(slope) > 1e-12 else level0


def _exact_invert(
    y: np.ndarray, post: np.ndarray, fit: Counterfactual, w: np.ndarray | None, alpha: float
) -> tuple[tuple[tuple[float, float], ...], Callable[[float], float]]:
    """Exact accepted set ``{theta : p(theta) > alpha}`` for a linear fit and the mean statistic.

    The residuals are ``u0 - theta * c``, so shift ``j``'s statistic is
    ``|A_j - theta B_j|`` (weighted post-period means of ``u0`` and ``c`` under the shift).
    The p-value changes only where ``|A_j - theta B_j| = |A_0 - theta B_0|``, at
    ``(A_j -+ A_0) / (B_j -+ B_0)``; it is evaluated at every such point and between them,
    which gives the accepted set as a union of closed intervals (unbounded ones with
    infinite ends). Returns the intervals and the p-value function of ``theta``.
    """
    keep = np.ones(len(y), dtype=bool)
    u0 = np.asarray(fit(y, keep), dtype=float)
    c = u0 - np.asarray(fit(y - post, keep), dtype=float)
    idx = _shifted_post(len(y), np.asarray(post, dtype=bool))
    ww = (np.ones(len(y)) if w is None else w)[idx]
    a_j = (ww * u0[idx]).sum(axis=1) / ww.sum(axis=1)
    b_j = (ww * c[idx]).sum(axis=1) / ww.sum(axis=1)

    def p_of(theta: np.ndarray) -> np.ndarray:
        s = np.abs(a_j[None, :] - np.asarray(theta, dtype=float)[:, None] * b_j[None, :])
        tol = 1e-12 * np.maximum(np.abs(s[:, :1]), 1.0)
        return np.mean(s >= s[:, :1] - tol, axis=1)

    with np.errstate(divide="ignore", invalid="ignore"):
        cuts = np.r_[(a_j - a_j[0]) / (b_j - b_j[0]), (a_j + a_j[0]) / (b_j + b_j[0])]
    cuts = np.unique(cuts[np.isfinite(cuts)])
    if len(cuts) == 0:
        ok = bool(p_of(np.zeros(1))[0] > alpha)
        return (((-np.inf, np.inf),) if ok else ()), lambda t: float(p_of(np.array([t]))[0])
    span = max(float(cuts[-1] - cuts[0]), float(np.max(np.abs(cuts))), 1.0)
    mids = np.r_[cuts[0] - span, 0.5 * (cuts[1:] + cuts[:-1]), cuts[-1] + span]
    at_cut = p_of(cuts) > alpha
    between = p_of(mids) > alpha  # between[k] is the open segment left of cuts[k]
    # atoms in order: segment 0, cut 0, segment 1, ..., cut m-1, segment m (with its ends)
    ends = np.r_[-np.inf, cuts, np.inf]
    atoms = []
    for k in range(len(cuts) + 1):
        atoms.append((bool(between[k]), ends[k], ends[k + 1]))
        if k < len(cuts):
            atoms.append((bool(at_cut[k]), cuts[k], cuts[k]))
    pieces: list[list[float]] = []
    joined = False
    for ok, lo, hi in atoms:
        if ok and joined:
            pieces[-1][1] = float(hi)
        elif ok:
            pieces.append([float(lo), float(hi)])
        joined = ok
    return (
        tuple((lo, hi) for lo, hi in pieces),
        lambda t: float(p_of(np.array([t]))[0]),
    )


def _invert(
    pfun: Callable[[float], float], center: float, scale: float, alpha: float
) -> tuple[float, float, str]:
    """Hull of {theta : p(theta) > alpha} around ``center`` by bracketing and bisection."""
    if pfun(center) <= alpha:
        grid = center + scale * np.linspace(-20, 20, 401)
        ok = [g for g in grid if pfun(g) > alpha]
        if not ok:
            return np.nan, np.nan, "no effect value is accepted at this level"
        center = float(np.median(ok))
    bounds = []
    for direction in (-1.0, 1.0):
        inside, outside = center, None
        for m in (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 256, 1024):
            r = center + direction * m * scale
            if pfun(r) <= alpha:
                outside = r
                break
            inside = r
        if outside is None:
            bounds.append(direction * np.inf)
            continue
        for _ in range(100):
            if abs(outside - inside) <= 1e-9 * scale:
                break
            mid = 0.5 * (inside + outside)
            if pfun(mid) <= alpha:
                outside = mid
            else:
                inside = mid
        bounds.append(0.5 * (inside + outside))
    note = "" if np.all(np.isfinite(bounds)) else "the interval is unbounded on one side"
    return float(bounds[0]), float(bounds[1]), note


def _interval(
    y: np.ndarray,
    post: np.ndarray,
    fit: Counterfactual,
    w: np.ndarray | None,
    q: float | str,
    alpha: float,
    center: float,
    scale: float,
) -> tuple[float, float, str, tuple[tuple[float, float], ...]]:
    """Interval of the constant effect: exact for a linear fit with the mean statistic.

    Returns the hull of the accepted set, a note, and the accepted set's pieces.
    """
    if getattr(fit, "linear", False) and q == "mean":
        pieces, _ = _exact_invert(y, post, fit, w, alpha)
        if not pieces:
            return np.nan, np.nan, "no effect value is accepted at this level", ()
        lo, hi = pieces[0][0], pieces[-1][1]
        notes = []
        if len(pieces) > 1:
            shown = " U ".join(f"[{a:.4g}, {b:.4g}]" for a, b in pieces)
            notes.append(f"the accepted set is not an interval ({shown}); its hull is reported")
        if not (np.isfinite(lo) and np.isfinite(hi)):
            notes.append("the interval is unbounded on one side")
        return lo, hi, "; ".join(notes), pieces

    def pfun(theta: float) -> float:
        return conformal_p_value(y, post, fit, theta, q, w)

    lo, hi, note = _invert(pfun, center, scale, alpha)
    return lo, hi, note, ((lo, hi),) if np.isfinite(lo) or np.isfinite(hi) else ()


def conformal_inference(
    y: np.ndarray,
    post: np.ndarray,
    fit: Counterfactual,
    *,
    level: float = 0.95,
    q: float | str = "mean",
    null: float = 0.0,
    per_period: bool = True,
    weights: np.ndarray | None = None,
) -> ConformalResult:
    """Conformal p-value, average-effect interval and per-period intervals.

    Parameters
    ----------
    y
        The treated unit's outcome in every period (length T).
    post
        Boolean mask of the post-treatment periods.
    fit
        Counterfactual model, ``fit(y_null, keep) -> residuals on kept periods``. When
        it is linear in the outcome (``fit.linear``, as :func:`did_counterfactual`) and
        ``q="mean"``, the interval is solved exactly at the p-value's jumps; otherwise by
        bracketing and bisection around the estimate.
    weights
        The treated unit's weight in each period (e.g. its cell counts): the ``"mean"``
        statistic is then the weighted mean of the post-period residuals, and the
        estimate (with a weighted ``fit``) the weighted two-way fixed-effects estimate.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> ctrl = rng.normal(size=(9, 40)); post = np.arange(40) >= 25
    >>> y = ctrl.mean(0) + rng.normal(size=40) + 3.0 * post
    >>> res = conformal_inference(y, post, did_counterfactual(ctrl), per_period=False)
    >>> res.p_value < 0.05, res.conf_low < 3.0 < res.conf_high
    (True, True)
    """
    y = np.asarray(y, dtype=float)
    post = np.asarray(post, dtype=bool)
    n = len(y)
    if post.shape != y.shape or not post.any() or post.all():
        raise DesignError(
            "conformal inference needs both pre- and post-treatment periods for the treated unit",
            column="time",
        )
    n_post = int(post.sum())
    if n < 3:
        raise NotEstimableError("conformal inference needs at least three periods")
    alpha = 1.0 - level
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != y.shape or np.any(w <= 0):
            raise DesignError(
                "conformal weights must be positive, one per period", column="weights"
            )
    u0 = np.asarray(fit(y, np.ones(n, dtype=bool)), dtype=float)
    scale = float(np.std(u0[~post])) or float(np.std(u0)) or 1.0
    estimate = _estimate(y, post, fit, w)

    def p_avg(theta: float) -> float:
        return conformal_p_value(y, post, fit, theta, q, w)

    lo, hi, note, pieces = _interval(y, post, fit, w, q, alpha, estimate, scale)
    periods = np.flatnonzero(post)
    est_t, p_t, lo_t, hi_t = (np.full(n_post, np.nan) for _ in range(4))
    if per_period:
        pre = ~post
        for i, s in enumerate(periods):
            keep = pre.copy()
            keep[s] = True
            y_k = y[keep]
            post_k = np.zeros(int(keep.sum()), dtype=bool)
            post_k[int(np.flatnonzero(np.flatnonzero(keep) == s)[0])] = True

            def fit_k(
                y_null: np.ndarray, keep_k: np.ndarray, keep: np.ndarray = keep
            ) -> np.ndarray:
                full_keep = keep.copy()
                full_keep[keep] = keep_k
                return fit(y_null, full_keep)

            def p_one(
                theta: float,
                y_k: np.ndarray = y_k,
                post_k: np.ndarray = post_k,
                fit_k: Callable[[np.ndarray, np.ndarray], np.ndarray] = fit_k,
            ) -> float:
                return conformal_p_value(y_k, post_k, fit_k, theta, q)

            fit_k.linear = getattr(fit, "linear", False)  # type: ignore[attr-defined]
            est_t[i] = _estimate(y_k, post_k, fit_k)
            p_t[i] = p_one(null)
            lo_t[i], hi_t[i], _, _ = _interval(y_k, post_k, fit_k, None, q, alpha, est_t[i], scale)
    return ConformalResult(
        estimate=estimate,
        p_value=p_avg(null),
        conf_low=lo,
        conf_high=hi,
        level=level,
        n_periods=n,
        n_post=n_post,
        q=q,
        null=null,
        periods=periods,
        period_estimate=est_t,
        period_p_value=p_t,
        period_low=lo_t,
        period_high=hi_t,
        note=note,
        pieces=pieces,
    )
