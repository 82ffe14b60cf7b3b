"""The fast paths of the Bergen study's inference against the simple computations they replace.

Each optimisation (benchmarks/results/bergen_fit_cost.md) must give the same numbers as
the straightforward computation it replaced: the simple version is kept here (or is the
public slow path) and compared on small data, bit for bit (the same floating-point
operations in the same order).
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.inference.panel import PanelData, _transformed, panel_test, wild_tests
from evalkit.inference.spec import Conformal
from evalkit.inference.wild import ClusterStats, WildBootstrap
from evalkit.synth.augmented import _correction, _cv_errors, lambda_grid
from evalkit.synth.conformal import (
    conformal_uncertainty,
    sc_counterfactual,
    sc_counterfactual_cached,
)
from evalkit.synth.simplex import simplex_lstsq


# ----------------------------------------------------------------- synthetic control
def _sc_data(seed: int, t: int = 24, j: int = 4, t0: int = 19, effect: float = 1.0):
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(2, t)).cumsum(axis=1)
    ctrl = rng.normal(size=(j, 2)) @ factors + rng.normal(size=(j, t))
    post = np.arange(t) >= t0
    y = ctrl[:2].mean(axis=0) + 0.5 * rng.normal(size=t) + effect * post
    return ctrl, y, post


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_sc_counterfactual_gives_the_same_conformal_inference(seed: int) -> None:
    ctrl, y, post = _sc_data(seed)
    slow, _ = conformal_uncertainty(y, post, sc_counterfactual(ctrl), Conformal(), 0.95)
    fast, _ = conformal_uncertainty(y, post, sc_counterfactual_cached(ctrl), Conformal(), 0.95)
    np.testing.assert_array_equal(fast.p_value, slow.p_value)
    np.testing.assert_array_equal(fast.conf_low, slow.conf_low)
    np.testing.assert_array_equal(fast.conf_high, slow.conf_high)


def test_cached_sc_counterfactual_matches_each_refit() -> None:
    """Residuals for many outcomes and period masks, in any order, equal a fresh fit's."""
    ctrl, y, post = _sc_data(3)
    rng = np.random.default_rng(4)
    fast, slow = sc_counterfactual_cached(ctrl), sc_counterfactual(ctrl)
    masks = [np.ones(len(y), bool), ~post, (~post) | (np.arange(len(y)) == 21)]
    for _ in range(60):
        keep = masks[int(rng.integers(len(masks)))]
        y_null = y[keep] - rng.normal(scale=3.0) * post[keep]
        np.testing.assert_array_equal(fast(y_null, keep), slow(y_null, keep))


# ----------------------------------------------------------------- wild bootstrap
def _reference_p_value(wb: WildBootstrap, r: float) -> float:
    """The p-value as first written: t statistics from :meth:`WildBootstrap.t_boot`."""
    t_obs = abs(wb.estimate - r) / wb.se if wb.se > 0 else np.inf
    tb = np.abs(wb.t_boot(r))
    count = float(np.sum(tb >= t_obs - 1e-9 * max(t_obs, 1.0)))
    return count / len(tb) if wb._enumerated else (1.0 + count) / (len(tb) + 1.0)


def _panel(seed: int, n_units: int = 8, n_t: int = 12, weighted: bool = True) -> PanelData:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_t)
    time = np.tile(np.arange(n_t), n_units)
    treated = (unit == 0) & (time >= n_t // 2)
    lead = ((unit == 0) & (time == n_t // 2 - 2)).astype(float)
    x = np.column_stack([treated.astype(float), lead, rng.normal(size=len(unit))])
    y = x @ [0.8, 0.0, 0.3] + rng.normal(size=n_units)[unit] + rng.normal(size=len(unit))
    w = rng.integers(50, 500, size=len(unit)).astype(float) if weighted else None
    return PanelData(y, x, unit, time, unit, w)


@pytest.mark.parametrize("restricted", [True, False])
@pytest.mark.parametrize("weights", ["rademacher", "webb"])
def test_wild_p_value_equals_the_t_boot_computation(restricted: bool, weights: str) -> None:
    data = _panel(5)
    xt, yt, _, _ = _transformed(data)
    wb = WildBootstrap(xt, yt, data.cluster, coef=0, restricted=restricted)
    res = wb.test(weights=weights, reps=199, rng=np.random.default_rng(1))
    grid = res.estimate + wb.se * np.linspace(-12, 12, 241)
    for r in [*grid, res.conf_low, res.conf_high, res.estimate]:
        if np.isfinite(r):
            assert wb.p_value(float(r)) == _reference_p_value(wb, float(r))
    np.testing.assert_array_equal(wb.p_value(grid), [_reference_p_value(wb, r) for r in grid])


@pytest.mark.parametrize("weighted", [True, False])
def test_wild_tests_share_set_up_but_equal_separate_bootstraps(weighted: bool) -> None:
    """One projection and one set of cluster statistics for every coefficient."""
    data = _panel(6, weighted=weighted)
    tests = wild_tests(data, [0, 1, 2], rng=np.random.default_rng(0))
    xt, yt, within, sw = _transformed(data)
    for j in (0, 1, 2):
        # the computation before sharing: everything from the data, per coefficient
        wb = WildBootstrap(
            xt.copy(),
            yt.copy(),
            data.cluster,
            coef=j,
            demean=lambda v: within.demean(v / sw) * sw,
            grid_time=None if weighted else data.time,
        )
        res = wb.test(reps=9999, rng=np.random.default_rng(0))
        got = tests[j]
        assert (got.p_value, got.conf_low, got.conf_high) == (
            res.p_value,
            res.conf_low,
            res.conf_high,
        )
        one = panel_test(data, "wild", coef=j, rng=np.random.default_rng(0))
        assert (one.p_value, one.conf_low, one.conf_high) == (
            res.p_value,
            res.conf_low,
            res.conf_high,
        )


def test_cluster_stats_shared_equal_own() -> None:
    data = _panel(7)
    xt, yt, _, _ = _transformed(data)
    stats = ClusterStats.compute(xt, yt, data.cluster)
    for j in range(3):
        own = WildBootstrap(xt, yt, data.cluster, coef=j)
        shared = WildBootstrap(xt, yt, data.cluster, coef=j, stats=stats)
        assert (own.estimate, own.se) == (shared.estimate, shared.se)
        np.testing.assert_array_equal(own._h[0], shared._h[0])


# ----------------------------------------------------------------- augmented SC
def _reference_cv_errors(xc: np.ndarray, xt: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """The cross-validation errors as first written: one ridge solve per penalty."""
    t0 = xc.shape[0]
    err = np.empty((t0 - 1, lambdas.size))
    for i in range(t0 - 1):
        keep = np.arange(t0) != i
        xk, tk = xc[keep], xt[keep]
        w = simplex_lstsq(xk, tk).weights
        for j, lam in enumerate(lambdas):
            aug = w + _correction(xk, tk, w, lam)
            err[i, j] = (xt[i] - xc[i] @ aug) ** 2
    return err


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_ridge_cv_errors_equal_one_solve_per_penalty(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(20, 6)).cumsum(axis=0)
    x1 = x0[:, :2].mean(axis=1) + rng.normal(size=20)
    mean = x0.mean(axis=1)
    xc, xt = x0 - mean[:, None], x1 - mean
    lambdas = lambda_grid(xc)
    reference = _reference_cv_errors(xc, xt, lambdas)
    np.testing.assert_array_equal(_cv_errors(xc, xt, lambdas), reference)
    # started from the support of the SC weights on every period, as ridge_ascm does
    support = np.flatnonzero(simplex_lstsq(xc, xt).weights > 0)
    np.testing.assert_array_equal(_cv_errors(xc, xt, lambdas, start=support), reference)
