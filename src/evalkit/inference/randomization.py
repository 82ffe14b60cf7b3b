"""Randomization inference over which clusters are treated.

The treatment of a regression with cluster-level treatment paths is reassigned across
clusters: every treated cluster's path (its treatment over time) goes to another
cluster, in every possible way when the assignments can be enumerated (with one treated
city of ten: each of the ten cities in turn), otherwise in ``reps`` random ways plus the
actual one. The statistic is the regression coefficient of the reassigned treatment;
the p-value is the share of assignments whose coefficient is at least as large in
absolute value as the actual one, so its granularity is ``1 / (number of assignments)``
(1/10 with ten cities and one treated).

Intervals come from inverting the test of a constant effect ``tau``: the outcome is
shifted to ``y - tau * D`` and the test rerun. The regression is linear, so each
assignment's coefficient is ``c_a(y) - tau c_a(D)`` and the acceptance region is found
exactly from the breakpoints where an assignment's absolute coefficient crosses the
actual one (no grid, no tolerance).

Validity rests on the assignment being as good as random across clusters (exchangeable
clusters); with clusters of very different sizes the coefficient's spread differs
across clusters, which is what :mod:`evalkit.inference.few_treated` (Ferman-Pinto)
corrects for.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evalkit.errors import DesignError, NotEstimableError

__all__ = ["PermutationResult", "cluster_assignments", "cluster_randomization"]


def cluster_assignments(
    paths: np.ndarray, treated: np.ndarray, reps: int, rng: np.random.Generator | None
) -> tuple[np.ndarray, bool]:
    """List the assignments of the treated clusters' paths to clusters.

    Parameters
    ----------
    paths
        ``(G, T)`` treatment of each cluster in each period.
    treated
        Indices of the clusters with any treatment.
    reps
        Enumerate every distinct assignment when there are at most ``reps`` of them;
        otherwise draw ``reps`` random ones (after the actual one).

    Returns
    -------
    (assignments, exact)
        ``assignments`` is ``(A, G)``: row ``a`` gives, for each cluster, the index of the
        cluster whose path it receives (controls receive an untreated cluster's path, all
        zeros). Row 0 is the actual assignment.

    Examples
    --------
    >>> paths = np.array([[0, 1], [0, 0], [0, 0]])
    >>> a, exact = cluster_assignments(paths, np.array([0]), 99, None)
    >>> exact, a.tolist()
    (True, [[0, 1, 2], [1, 0, 1], [1, 1, 0]])
    """
    g = paths.shape[0]
    k = len(treated)
    controls = np.setdiff1d(np.arange(g), treated)
    if len(controls) == 0:
        raise NotEstimableError(
            "randomization inference needs at least one untreated cluster",
            column="cluster",
        )
    zero = int(controls[0])
    # distinct treated paths; the number of distinct assignments of these to clusters
    keys = [paths[j].tobytes() for j in treated]
    n_assign = math.perm(g, k) // math.prod(math.factorial(keys.count(s)) for s in set(keys))
    actual = np.arange(g)

    def build(chosen: tuple[int, ...]) -> np.ndarray:
        row = np.full(g, zero)
        row[list(chosen)] = treated
        return row

    if n_assign <= reps:
        # distinct path matrices, the actual assignment first
        uniq: dict[bytes, np.ndarray] = {paths.tobytes(): actual}
        for chosen in itertools.permutations(range(g), k):
            row = build(chosen)
            uniq.setdefault(paths[row].tobytes(), row)
        return np.array(list(uniq.values())), True
    if rng is None:
        raise DesignError("pass rng: the assignments are too many to enumerate", column="seed")
    rows = [actual]
    for _ in range(reps):
        chosen = tuple(rng.choice(g, size=k, replace=False).tolist())
        rows.append(build(chosen))
    return np.array(rows), False


@dataclass(frozen=True)
class PermutationResult:
    """Randomization test of a constant effect and its inverted interval."""

    estimate: float
    p_value: float
    conf_low: float
    conf_high: float
    level: float
    n_assignments: int
    exact: bool
    null: float
    note: str = ""
    coefs: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def interval(self, level: float) -> tuple[float, float]:
        """Interval at another ``level`` from the same assignments."""
        if self.coefs is None:
            raise ValueError("the assignments' coefficients were not kept")
        lo, hi, _ = _accept_region(*self.coefs, 1.0 - level)
        return lo, hi

    @property
    def granularity(self) -> float:
        """Smallest possible p-value step, ``1 / n_assignments``."""
        return 1.0 / self.n_assignments

    def describe(self) -> str:
        """One sentence saying what was computed."""
        how = "all" if self.exact else "random"
        return (
            f"randomization inference over treated clusters: {how} {self.n_assignments} "
            f"assignments of the treated paths, p-values in steps of 1/{self.n_assignments}; "
            f"{self.level:.0%} interval by inverting the test of a constant effect"
            + (f"; {self.note}" if self.note else "")
        )


def _p_values(u: np.ndarray, w: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """p(tau) = share of a with |u_a - tau w_a| >= |u_0 - tau w_0| (row 0 is the actual)."""
    stat = np.abs(u[None, :] - taus[:, None] * w[None, :])
    obs = stat[:, :1]
    return np.mean(stat >= obs - 1e-12 * np.maximum(obs, 1.0), axis=1)


def _accept_region(u: np.ndarray, w: np.ndarray, alpha: float) -> tuple[float, float, str]:
    """Exact hull of {tau : p(tau) > alpha} from the breakpoints of each comparison."""
    u0, w0 = u[0], w[0]
    points = []
    for ua, wa in zip(u[1:], w[1:], strict=True):
        # (ua - t wa)^2 = (u0 - t w0)^2  <=>  (ua - u0) = t (wa - w0)  or  (ua + u0) = t (wa + w0)
        for num, den in ((ua - u0, wa - w0), (ua + u0, wa + w0)):
            if abs(den) > 1e-14:
                points.append(num / den)
    pts = np.unique(np.array(points)) if points else np.array([u0 / w0])
    est = u0 / w0
    span = max(np.ptp(np.append(pts, est)), abs(est), 1.0)
    cands = np.concatenate([pts, (pts[:-1] + pts[1:]) / 2, [pts[0] - span, pts[-1] + span, est]])
    cands.sort()
    p = _p_values(u, w, cands)
    ok = cands[p > alpha]
    note = ""
    if len(ok) == 0:
        return np.nan, np.nan, "no value of the effect is accepted at this level"
    lo, hi = float(ok.min()), float(ok.max())
    if p[0] > alpha:
        lo, note = -np.inf, "the test accepts arbitrarily small effects; the interval is unbounded"
    if p[-1] > alpha:
        hi, note = np.inf, "the test accepts arbitrarily large effects; the interval is unbounded"
    # an accepted breakpoint is itself the edge when the neighbouring midpoint is rejected
    return lo, hi, note


def cluster_randomization(
    y: np.ndarray,
    treatment: np.ndarray,
    cluster: np.ndarray,
    time: np.ndarray,
    *,
    partial: Callable[[np.ndarray], np.ndarray],
    reps: int = 9999,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
    null: float = 0.0,
) -> PermutationResult:
    """Randomization test and interval for the coefficient of a cluster-level treatment.

    Parameters
    ----------
    y, treatment
        Outcome and 0/1 treatment per row.
    cluster, time
        Integer codes; the treatment must be constant within each cluster-period.
    partial
        Projection that removes the other regressors (fixed effects and covariates) from
        a vector, e.g. a within transform; the coefficient of a treatment vector ``d``
        is ``partial(d)'y / partial(d)'d``.

    Examples
    --------
    >>> cl = np.repeat(np.arange(5), 4); t = np.tile(np.arange(4), 5)
    >>> d = ((cl == 0) & (t >= 2)).astype(float)
    >>> y = 2.0 * d + 0.1 * np.sin(cl + 3 * t)
    >>> from evalkit.numerics.within import WithinTransform
    >>> res = cluster_randomization(y, d, cl, t, partial=WithinTransform((cl, t)).demean)
    >>> res.n_assignments, res.p_value
    (5, 0.2)
    """
    y = np.asarray(y, dtype=float)
    d = np.asarray(treatment, dtype=float)
    cl = np.asarray(cluster, dtype=np.int64)
    tm = np.asarray(time, dtype=np.int64)
    g, n_t = int(cl.max()) + 1, int(tm.max()) + 1
    paths = np.zeros((g, n_t))
    cell_max = np.full((g, n_t), -np.inf)
    cell_min = np.full((g, n_t), np.inf)
    np.maximum.at(cell_max, (cl, tm), d)
    np.minimum.at(cell_min, (cl, tm), d)
    seen = np.isfinite(cell_max)
    if np.any(cell_max[seen] != cell_min[seen]):
        raise DesignError(
            "randomization over clusters needs a treatment that is constant within each "
            "cluster and period",
            hint="the treatment varies within clusters (a within-cluster design); use "
            "inference='cluster' or 'wild' instead",
            column="treatment",
        )
    paths[seen] = cell_max[seen]
    treated = np.flatnonzero(paths.max(axis=1) > 0)
    if len(treated) == 0:
        raise NotEstimableError("no treated cluster", column="treatment")
    assign, exact = cluster_assignments(paths, treated, reps, rng)
    y_t = partial(y)
    d_t = partial(d)
    u = np.empty(len(assign))
    w = np.empty(len(assign))
    for a, row in enumerate(assign):
        da = paths[row[cl], tm]
        da_t = partial(da)
        den = float(da_t @ da_t)
        if den <= 1e-12 * len(da):
            u[a], w[a] = 0.0, 0.0
            continue
        u[a] = float(da_t @ y_t) / den
        w[a] = float(da_t @ d_t) / den
    alpha = 1.0 - level
    lo, hi, note = _accept_region(u, w, alpha)
    p = float(_p_values(u, w, np.array([null]))[0])
    return PermutationResult(
        estimate=float(u[0] / w[0]),
        p_value=p,
        conf_low=lo,
        conf_high=hi,
        level=level,
        n_assignments=len(assign),
        exact=exact,
        null=null,
        note=note,
        coefs=(u, w),
    )
