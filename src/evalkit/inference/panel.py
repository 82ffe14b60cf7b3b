"""Few-cluster inference for the treatment coefficient of a two-way fixed-effects regression.

One entry point, :func:`panel_test`, applies any of the test-inversion methods (wild
cluster bootstrap, randomization over clusters, Conley-Taber, Ferman-Pinto, conformal
inference over time) to ``y ~ d + covariates | unit + time`` with clusters, and returns a
:class:`PanelTest`: the estimate, the p-value of ``effect = null``, the interval by test
inversion, the p-value granularity where it is discrete, and a sentence describing
what was done. Estimators (``did.TWFE`` and the regressions built like it) and the
simulation harness both call it, so the methods are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.errors import DesignError, NotEstimableError
from evalkit.inference.conformal import conformal_inference, did_counterfactual
from evalkit.inference.few_treated import conley_taber, control_errors
from evalkit.inference.randomization import cluster_randomization
from evalkit.inference.wild import ClusterStats, WildBootstrap
from evalkit.numerics.within import WithinTransform

__all__ = [
    "PANEL_METHODS",
    "PanelData",
    "PanelTest",
    "conformal_applicable",
    "panel_test",
    "wild_tests",
]

PANEL_METHODS = ("wild", "permutation", "conley_taber", "ferman_pinto", "conformal")


@dataclass(frozen=True, eq=False)
class PanelData:
    """A two-way panel regression problem in integer codes.

    ``x`` holds the treatment in column 0 and covariates after it (untransformed);
    ``w`` optional observation weights.
    """

    y: np.ndarray
    x: np.ndarray
    unit: np.ndarray
    time: np.ndarray
    cluster: np.ndarray
    w: np.ndarray | None = None

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return int(self.cluster.max()) + 1

    def within(self) -> WithinTransform:
        """Return the unit and time fixed-effects projection (weighted if weights are given)."""
        return WithinTransform((self.unit, self.time), weights=self.w)

    def treated_clusters(self) -> np.ndarray:
        """Codes of the clusters with any treated row."""
        return np.unique(self.cluster[self.x[:, 0] > 0])


@dataclass(frozen=True)
class PanelTest:
    """Result of a test-inversion method for the treatment coefficient."""

    method: str
    estimate: float
    p_value: float
    conf_low: float
    conf_high: float
    level: float
    null: float
    granularity: float | None
    description: str
    details: object = None
    invert: Callable[[float], tuple[float, float]] | None = field(
        default=None, repr=False, compare=False
    )


def _transformed(data: PanelData) -> tuple[np.ndarray, np.ndarray, WithinTransform, np.ndarray]:
    within = data.within()
    sw = np.sqrt(data.w) if data.w is not None else np.ones(len(data.y))
    xt = within.demean(data.x) * sw[:, None]
    yt = within.demean(data.y) * sw
    return xt, yt, within, sw


def _projection(
    xt_cov: np.ndarray, within: WithinTransform, sw: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Projection off fixed effects and covariates, in the sqrt-weight scale."""
    q = np.linalg.qr(xt_cov)[0] if xt_cov.shape[1] else None

    def partial(v: np.ndarray) -> np.ndarray:
        out = within.demean(v) * sw
        if q is not None:
            out = out - q @ (q.T @ out)
        return out

    return partial


def panel_test(
    data: PanelData,
    method: str,
    *,
    null: float = 0.0,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
    reps: int = 9999,
    restricted: bool = True,
    weights: str = "rademacher",
    sizes: np.ndarray | None = None,
    per_period: bool = False,
    coef: int = 0,
    q: float | str = "mean",
) -> PanelTest:
    """Test ``effect = null`` for the treatment coefficient and invert for an interval.

    Parameters
    ----------
    method
        One of :data:`PANEL_METHODS`.
    restricted, weights
        Wild bootstrap variant (WCR/WCU) and weight distribution.
    sizes
        Per-cluster sizes for Ferman-Pinto (observations per period); default: the
        number of rows (or sum of weights) per cluster and period.
    q
        Conformal test statistic (see :func:`~evalkit.inference.conformal.conformal_inference`).
    coef
        Column of ``data.x`` tested (wild bootstrap only; the other methods test the
        cluster-level treatment in column 0).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> unit = np.repeat(np.arange(10), 30); time = np.tile(np.arange(30), 10)
    >>> d = ((unit == 0) & (time >= 15)).astype(float)
    >>> y = 3 * d + rng.normal(size=300)
    >>> data = PanelData(y, d[:, None], unit, time, unit)
    >>> res = panel_test(data, "permutation")
    >>> res.granularity, res.p_value
    (0.1, 0.1)
    """
    if method not in PANEL_METHODS:
        raise DesignError(
            f"unknown panel inference method {method!r}",
            hint=f"use one of {', '.join(PANEL_METHODS)}",
            column="inference",
        )
    xt, yt, within, sw = _transformed(data)
    if method == "wild":
        return wild_tests(
            data, [coef], null=null, level=level, rng=rng, reps=reps, restricted=restricted,
            weights=weights,
        )[coef]  # fmt: skip
    if coef != 0:
        raise DesignError(
            f"inference={method!r} tests the cluster-level treatment only",
            hint="use inference='wild' for other coefficients",
            column="inference",
        )
    partial = _projection(xt[:, 1:], within, sw)
    if method == "permutation":
        perm = cluster_randomization(
            data.y, data.x[:, 0], data.cluster, data.time, partial=partial, reps=reps, rng=rng,
            level=level, null=null,
        )  # fmt: skip
        return PanelTest(
            method, perm.estimate, perm.p_value, perm.conf_low, perm.conf_high, level, null,
            perm.granularity, perm.describe(), perm, perm.interval,
        )  # fmt: skip
    beta = np.linalg.lstsq(xt, yt, rcond=None)[0]
    treated = data.treated_clusters()
    if method in ("conley_taber", "ferman_pinto"):
        resid = (yt - xt @ beta) / sw
        d_part = partial(data.x[:, 0]) / sw
        w_ctrl = control_errors(resid, d_part, data.cluster, data.time, treated, weights=data.w)
        s_ctrl = s_tr = None
        if method == "ferman_pinto":
            if sizes is None:
                sizes = _cluster_sizes(data)
            controls = np.setdiff1d(np.arange(data.n_clusters), treated)
            s_ctrl, s_tr = np.asarray(sizes)[controls], np.asarray(sizes)[treated]
        res = conley_taber(
            float(beta[0]), w_ctrl, sizes_controls=s_ctrl, sizes_treated=s_tr, reps=reps,
            rng=rng, level=level, null=null,
        )  # fmt: skip
        gran = 1.0 / (res.n_draws + 1)
        return PanelTest(
            method, res.estimate, res.p_value, res.conf_low, res.conf_high, level, null, gran,
            res.describe(), res, res.interval,
        )  # fmt: skip
    # conformal: cluster-by-period means; the treated clusters' mean series is the treated unit
    if xt.shape[1] > 1:
        raise DesignError(
            "conformal inference here takes no covariates",
            hint="drop the covariates or use inference='wild'",
            column="covariates",
        )
    cells, post, counts = _cluster_series(data, treated)
    controls = np.setdiff1d(np.arange(data.n_clusters), treated)
    y1 = cells[treated].mean(axis=0)
    # each cluster-period weighs its rows' total weight, as in the regression: with one
    # row per cluster and period the conformal estimate is the TWFE estimate
    w1 = counts[treated].sum(axis=0)
    fit = did_counterfactual(cells[controls], np.vstack([w1, counts[controls]]))
    opts = {"q": q, "weights": w1}
    conf = conformal_inference(y1, post, fit, level=level, null=null, per_period=per_period, **opts)

    def invert(new_level: float) -> tuple[float, float]:
        again = conformal_inference(y1, post, fit, level=new_level, per_period=False, **opts)
        return again.conf_low, again.conf_high

    return PanelTest(
        method, conf.estimate, conf.p_value, conf.conf_low, conf.conf_high, level, null,
        1.0 / conf.n_periods, conf.describe(), conf, invert,
    )  # fmt: skip


def wild_tests(
    data: PanelData,
    coefs: Sequence[int],
    *,
    null: float = 0.0,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
    reps: int = 9999,
    restricted: bool = True,
    weights: str = "rademacher",
) -> dict[int, PanelTest]:
    """:func:`panel_test` with the wild bootstrap for several coefficients of one regression.

    The fixed effects are projected out of the data and the cluster-level sufficient
    statistics formed once for all ``coefs`` (each coefficient's test then costs only its
    own bootstrap); the draws are taken from ``rng`` coefficient by coefficient, in the
    order given, as separate :func:`panel_test` calls would.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> unit = np.repeat(np.arange(6), 8); time = np.tile(np.arange(8), 6)
    >>> x = np.column_stack([(unit < 2) & (time >= 4), rng.normal(size=48)]).astype(float)
    >>> data = PanelData(x @ [1.0, 0.5] + rng.normal(size=48), x, unit, time, unit)
    >>> tests = wild_tests(data, [0, 1], rng=rng)
    >>> tests[1].p_value == panel_test(data, "wild", coef=1, rng=rng).p_value
    True
    """
    xt, yt, within, sw = _transformed(data)
    stats = ClusterStats.compute(xt, yt, data.cluster)
    grid_time = data.time if _complete_nested_grid(data, within) else None
    out: dict[int, PanelTest] = {}
    for coef in coefs:
        wb = WildBootstrap(
            xt,
            yt,
            data.cluster,
            coef=coef,
            restricted=restricted,
            demean=lambda v: within.demean(v / sw) * sw,
            grid_time=grid_time,
            stats=stats,
        )
        res: Any = wb.test(null=null, weights=weights, reps=reps, rng=rng, level=level)
        gran = 1.0 / res.reps if res.enumerated else 1.0 / (res.reps + 1)
        out[coef] = PanelTest(
            "wild", res.estimate, res.p_value, res.conf_low, res.conf_high, level, null, gran,
            res.describe(), res, wb.interval,
        )  # fmt: skip
    return out


def _complete_nested_grid(data: PanelData, within: WithinTransform) -> bool:
    """Unweighted complete unit x period grid with every unit inside one cluster."""
    if data.w is not None or not within.closed_form or len(within.factors) != 2:
        return False
    n_units, n_t = within.n_levels
    if len(data.y) != n_units * n_t:
        return False
    first = np.full(n_units, -1)
    first[data.unit] = data.cluster
    return bool(np.all(first[data.unit] == data.cluster))


def conformal_applicable(data: PanelData) -> bool:
    """Whether :func:`panel_test` can run conformal inference on these data.

    It needs no covariates, one treatment start shared by the treated clusters (treated
    in every later period) and every cluster observed in every period.
    """
    if data.x.shape[1] != 1:
        return False
    try:
        _cluster_series(data, data.treated_clusters())
    except (DesignError, NotEstimableError):
        return False
    return True


def _cluster_sizes(data: PanelData) -> np.ndarray:
    """Mean number of rows (or weight) per period in each cluster."""
    g = data.n_clusters
    w = data.w if data.w is not None else np.ones(len(data.y))
    total = np.bincount(data.cluster, weights=w, minlength=g)
    periods = np.array([len(np.unique(data.time[data.cluster == c])) for c in range(g)])
    return total / np.maximum(periods, 1)


def _cluster_series(
    data: PanelData, treated: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster-by-period (weighted) means, the post-treatment periods and the cells' weights."""
    g, n_t = data.n_clusters, int(data.time.max()) + 1
    w = data.w if data.w is not None else np.ones(len(data.y))
    cell = data.cluster * n_t + data.time
    n = np.bincount(cell, weights=w, minlength=g * n_t).reshape(g, n_t)
    if np.any(n <= 0):
        raise NotEstimableError(
            "conformal inference needs every cluster observed in every period",
            hint="keep a balanced cluster-by-period panel or use inference='wild'",
            column="time",
        )
    s = np.bincount(cell, weights=w * data.y, minlength=g * n_t).reshape(g, n_t)
    d = np.bincount(cell, weights=w * data.x[:, 0], minlength=g * n_t).reshape(g, n_t) / n
    paths = d[treated] > 0
    if not np.all(paths == paths[0]) or not np.all(np.diff(paths[0].astype(int)) >= 0):
        raise DesignError(
            "conformal inference needs one treatment start shared by all treated clusters, "
            "treated in every later period",
            hint="use inference='wild' or 'permutation' for staggered or reversing treatment",
            column="treatment",
        )
    return s / n, paths[0], n
