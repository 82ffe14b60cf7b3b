"""Ridge augmented synthetic control: closed form vs direct computation, limits, CV."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import DesignError
from evalkit.synth import AugmentedSyntheticControl, SyntheticControl
from evalkit.synth.augmented import lambda_grid, ridge_ascm
from evalkit.synth.simplex import simplex_lstsq


def panel(n_donors: int = 10, n_pre: int = 8, n_post: int = 3, seed: int = 0) -> pd.DataFrame:
    """Donors from two factors; the treated unit sits outside their hull (SC cannot fit)."""
    rng = np.random.default_rng(seed)
    t = n_pre + n_post
    f = rng.normal(size=(2, t)).cumsum(axis=1)
    load = rng.normal(size=(n_donors + 1, 2))
    load[-1] = load[:-1].max(axis=0) + 0.5
    y = load @ f + rng.normal(0, 0.3, size=(n_donors + 1, t)) + rng.normal(size=(n_donors + 1, 1))
    y[-1, n_pre:] -= 1.0
    unit, time = np.meshgrid(np.arange(n_donors + 1), np.arange(2000, 2000 + t), indexing="ij")
    d = ((unit == n_donors) & (time >= 2000 + n_pre)).astype(int)
    return pd.DataFrame({"u": unit.ravel(), "t": time.ravel(), "y": y.ravel(), "d": d.ravel()})


def _asc(**kw) -> AugmentedSyntheticControl:
    return AugmentedSyntheticControl(outcome="y", unit="u", time="t", treatment="d", **kw)


def _wide(df: pd.DataFrame) -> np.ndarray:
    return df.pivot(index="u", columns="t", values="y").to_numpy()


def _sc_weights(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SC weights by the simplex solver (checked against SLSQP in test_synth_simplex.py)."""
    return simplex_lstsq(a, b).weights


@pytest.mark.parametrize("penalty", [0.1, 3.0, 50.0])
def test_weights_equal_sc_plus_ridge_bias_correction(penalty):
    """The closed-form weights give the estimate Ben-Michael et al. define: SC plus the
    ridge prediction of the treated unit's pre-period imbalance, computed here directly
    with an explicit (primal) ridge fit per period."""
    df = panel()
    res = _asc(penalty=penalty).fit(df, inference="none")
    y = _wide(df)
    y0, y1, n_pre = y[:-1], y[-1], 8
    w_sc = _sc_weights(y0[:, :n_pre].T, y1[:n_pre])
    x = y0[:, :n_pre] - y0[:, :n_pre].mean(axis=0)
    x1 = y1[:n_pre] - y0[:, :n_pre].mean(axis=0)
    imbalance = x1 - w_sc @ x
    for j, period in enumerate(range(2000, 2011)):
        target = y0[:, j] - y0[:, j].mean()
        eta = np.linalg.solve(x.T @ x + penalty * np.eye(n_pre), x.T @ target)
        direct = w_sc @ y0[:, j] + imbalance @ eta
        assert res.synthetic[period] == pytest.approx(direct, abs=1e-9)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert res.info["penalty"] == penalty and res.info["penalty_chosen_by"] == "given"


def test_large_penalty_gives_synthetic_control():
    df = panel()
    aug = _asc(penalty=1e12).fit(df, inference="none")
    sc = SyntheticControl(outcome="y", unit="u", time="t", treatment="d").fit(df, inference="none")
    # SC on every pre-period outcome with equal V is the unaugmented problem
    np.testing.assert_allclose(aug.weights.to_numpy(), sc.weights.to_numpy(), atol=1e-6)
    assert aug.estimate("att") == pytest.approx(sc.estimate("att"), abs=1e-5)


def test_small_penalty_fits_the_pre_period_exactly():
    df = panel(n_donors=12, n_pre=6)
    sc = _asc(penalty=1e12).fit(df, inference="none")
    aug = _asc(penalty=1e-10).fit(df, inference="none")
    assert sc.rmspe["pre"] > 0.1  # the treated unit is outside the donors' hull
    assert aug.rmspe["pre"] < 1e-6
    assert aug.info["negative_weight_sum"] < 0  # extrapolation


def test_cross_validation_by_brute_force():
    """The CV error of every penalty, recomputed by refitting on each training set with
    an explicit (primal) ridge prediction of the held-out period."""
    df = panel()
    res = _asc().fit(df, inference="none")
    cv = res.info["cv"]
    y = _wide(df)
    pre = y[:, :8]
    x = pre[:-1] - pre[:-1].mean(axis=0)
    x1 = pre[-1] - pre[:-1].mean(axis=0)
    lambdas = np.asarray(cv["lambda"])
    np.testing.assert_allclose(lambdas, lambda_grid(x.T), rtol=1e-12)
    assert lambdas.size == 21 and lambdas[-1] / lambdas[0] == pytest.approx(1e-8)
    errors = np.zeros((7, lambdas.size))
    for i in range(7):  # augsynth holds out each pre-period but the last
        keep = np.arange(8) != i
        w = _sc_weights(x[:, keep].T, x1[keep])
        for k, lam in enumerate(lambdas):
            xk = x[:, keep]
            eta = np.linalg.solve(xk.T @ xk + lam * np.eye(7), xk.T @ x[:, i])
            pred = w @ x[:, i] + (x1[keep] - w @ xk) @ eta
            errors[i, k] = (x1[i] - pred) ** 2
    np.testing.assert_allclose(cv["error"], errors.mean(axis=0), rtol=1e-9, atol=1e-12)
    se = errors.std(axis=0, ddof=1) / np.sqrt(7)
    best = int(np.argmin(errors.mean(axis=0)))
    chosen = lambdas[errors.mean(axis=0) <= errors.mean(axis=0)[best] + se[best]].max()
    assert res.info["penalty"] == pytest.approx(chosen)
    res_min = _asc(min_1se=False).fit(df, inference="none")
    assert res_min.info["penalty"] == pytest.approx(lambdas[best])


def test_ridge_ascm_needs_two_pre_periods_for_cv():
    with pytest.raises(DesignError, match="penalty"):
        ridge_ascm(np.array([1.0]), np.array([[0.0, 2.0]]))


def test_placebo_inference_and_plots():
    df = panel(n_donors=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _asc(penalty=1.0).fit(df)
    assert res.placebos.n_placebos == 9
    assert res.uncertainty.kind == "test_inversion"
    p = res.tidy()["p_value"].to_numpy()
    np.testing.assert_allclose(p * 10, np.round(p * 10))
    assert res.plot(kind="placebo").has_data()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(penalty=-1.0), "penalty"),
        (dict(lambda_min_ratio=2.0), "lambda_min_ratio"),
        (dict(n_lambda=0), "n_lambda"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(DesignError, match=match):
        _asc(**kwargs)
