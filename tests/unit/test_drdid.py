"""The 2x2 DiD estimators (Sant'Anna & Zhao 2020) and their influence functions."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.did.drdid import DiD2x2, did2x2_panel, did2x2_rcs
from evalkit.errors import DataError, DesignError, NotEstimableError

METHODS = ("dr", "ipw", "reg")


def panel_data(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    d = (rng.random(n) < 1 / (1 + np.exp(-(0.2 + 0.8 * x[:, 0])))).astype(float)
    y0 = x @ np.array([1.0, 0.5]) + rng.normal(size=n)
    y1 = y0 + 1.0 + 0.5 * x[:, 1] + d * (1.0 + x[:, 0]) + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    return y1, y0, d, x, w


def rcs_data(n: int = 400, seed: int = 1):
    y1, y0, d, x, w = panel_data(n, seed)
    post = (np.random.default_rng(seed + 10).random(n) < 0.5).astype(float)
    y = np.where(post == 1, y1, y0)
    return y, post, d, x, w


def numeric_influence(fit, w: np.ndarray, units: list[int], h: float = 1e-6) -> np.ndarray:
    """n * d att / d log(w_i): the empirical influence function by central differences."""
    out = []
    for i in units:
        up, down = w.copy(), w.copy()
        up[i] *= 1 + h
        down[i] *= 1 - h
        out.append(len(w) * (fit(up).att - fit(down).att) / (2 * h))
    return np.array(out)


# ---------------------------------------------------------------------- closed forms
def test_panel_without_covariates_is_difference_of_mean_changes():
    y1, y0, d, _, _ = panel_data()
    dy = y1 - y0
    expected = dy[d == 1].mean() - dy[d == 0].mean()
    for method in METHODS:
        res = did2x2_panel(y1, y0, d, method=method)
        assert res.att == pytest.approx(expected, abs=1e-12)


def test_panel_without_covariates_se_is_two_sample_formula():
    y1, y0, d, _, _ = panel_data()
    dy = y1 - y0
    n = len(dy)
    t, c = dy[d == 1], dy[d == 0]
    # influence-function variance uses 1/n_g (not 1/(n_g - 1)) within each group
    expected = np.sqrt(t.var() / len(t) + c.var() / len(c))
    for method in METHODS:
        res = did2x2_panel(y1, y0, d, method=method)
        assert res.std_error == pytest.approx(expected, rel=1e-10)
        assert res.n == n


def test_rcs_without_covariates_is_four_means():
    y, post, d, _, _ = rcs_data()
    cell = {(g, p): y[(d == g) & (post == p)].mean() for g in (0, 1) for p in (0, 1)}
    expected = (cell[1, 1] - cell[1, 0]) - (cell[0, 1] - cell[0, 0])
    for method in METHODS:
        assert did2x2_rcs(y, post, d, method=method).att == pytest.approx(expected, abs=1e-12)


def test_weighted_without_covariates_uses_weighted_means():
    y1, y0, d, _, w = panel_data()
    dy = y1 - y0
    expected = np.average(dy[d == 1], weights=w[d == 1]) - np.average(dy[d == 0], weights=w[d == 0])
    for method in METHODS:
        res = did2x2_panel(y1, y0, d, weights=w, method=method)
        assert res.att == pytest.approx(expected, abs=1e-12)


def test_weights_are_scale_free():
    y1, y0, d, x, w = panel_data()
    a = did2x2_panel(y1, y0, d, x, w, method="dr")
    b = did2x2_panel(y1, y0, d, x, 7.0 * w, method="dr")
    assert a.att == pytest.approx(b.att, abs=1e-12)
    np.testing.assert_allclose(a.influence, b.influence, atol=1e-10)


# ---------------------------------------------------------------------- influence functions
@pytest.mark.parametrize("method", METHODS)
def test_panel_influence_function_is_the_derivative(method):
    y1, y0, d, x, w = panel_data(n=120, seed=3)
    res = did2x2_panel(y1, y0, d, x, w, method=method)
    units = [0, 1, 2, int(np.flatnonzero(d == 1)[0]), int(np.flatnonzero(d == 0)[-1])]

    def fit(weights):
        return did2x2_panel(y1, y0, d, x, weights, method=method)

    np.testing.assert_allclose(
        numeric_influence(fit, w, units), res.influence[units], rtol=1e-5, atol=1e-7
    )
    assert abs(res.influence.mean()) < 1e-10 * (1 + np.abs(res.influence).max())


@pytest.mark.parametrize("method", METHODS)
def test_rcs_influence_function_is_the_derivative(method):
    y, post, d, x, w = rcs_data(n=160, seed=4)
    res = did2x2_rcs(y, post, d, x, w, method=method)
    units = [int(np.flatnonzero((d == g) & (post == p))[0]) for g in (0.0, 1.0) for p in (0.0, 1.0)]

    def fit(weights):
        return did2x2_rcs(y, post, d, x, weights, method=method)

    np.testing.assert_allclose(
        numeric_influence(fit, w, units), res.influence[units], rtol=1e-5, atol=1e-7
    )


def test_doubly_robust_is_consistent_when_outcome_model_is_right():
    # the propensity score is misspecified (the logit has x only, the truth also x^2);
    # the outcome change is linear in x, so the doubly robust estimator stays consistent
    rng = np.random.default_rng(5)
    n = 20000
    x = rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-(0.7 * x + 0.5 * x**2 - 1)))).astype(float)
    y0 = x + rng.normal(size=n)
    y1 = y0 + 2.0 * x + 1.5 * d + rng.normal(size=n)  # effect 1.5 for everyone
    res = did2x2_panel(y1, y0, d, x, method="dr")
    assert abs(res.att - 1.5) < 4 * res.std_error
    naive = did2x2_panel(y1, y0, d, method="dr")  # unconditional parallel trends fail here
    assert abs(naive.att - 1.5) > 10 * naive.std_error


# ---------------------------------------------------------------------- overlap and errors
def test_trimming_counts_comparison_units_with_extreme_scores():
    rng = np.random.default_rng(6)
    n = 400
    x = rng.normal(size=n)
    x[:5] = 8.0  # five comparison units that look like treated ones
    d = (x > 0.5).astype(float)
    d[:5] = 0.0
    d[5:40] = (rng.random(35) < 0.5).astype(float)  # keep the logit away from separation
    y0 = rng.normal(size=n)
    y1 = y0 + rng.normal(size=n)
    res = did2x2_panel(y1, y0, d, x, method="ipw")
    assert res.n_trimmed >= 1
    assert res.max_pscore is not None and res.max_pscore >= 0.995
    assert np.isfinite(res.att)


def test_separation_raises_not_estimable():
    x = np.arange(40, dtype=float)
    d = (x >= 20).astype(float)
    y0 = np.zeros(40)
    with pytest.raises(NotEstimableError, match="separate"):
        did2x2_panel(y0 + 1, y0, d, x, method="ipw")


def test_collinear_covariates_raise_not_estimable():
    y1, y0, d, x, _ = panel_data()
    xx = np.column_stack([x[:, 0], 2 * x[:, 0]])
    for method in METHODS:
        with pytest.raises(NotEstimableError, match="collinear"):
            did2x2_panel(y1, y0, d, xx, method=method)


def test_bad_inputs_raise_named_errors():
    y1, y0, d, _, _ = panel_data(n=20)
    with pytest.raises(DataError, match="treated"):
        did2x2_panel(y1, y0, d * 2)
    with pytest.raises(DataError, match="y0"):
        did2x2_panel(y1, y0[:-1], d)
    with pytest.raises(DesignError, match="method"):
        did2x2_panel(y1, y0, d, method="ols")
    with pytest.raises(DataError, match="weights"):
        did2x2_panel(y1, y0, d, weights=-np.ones(20))
    with pytest.raises(NotEstimableError, match="comparison"):
        did2x2_panel(y1, y0, np.ones(20))
    with pytest.raises(DesignError, match="trim_level"):
        did2x2_panel(y1, y0, d, trim_level=0.1)


def test_rcs_needs_all_four_cells():
    y, post, d, _, _ = rcs_data(n=40)
    post = np.where(d == 1, 1.0, post)  # no treated observations in the base period
    with pytest.raises(NotEstimableError, match="treated observations in the base period"):
        did2x2_rcs(y, post, d)


def test_result_is_a_frozen_record():
    y1, y0, d, _, _ = panel_data(n=30)
    res = did2x2_panel(y1, y0, d)
    assert isinstance(res, DiD2x2)
    assert res.method == "dr" and res.panel
    with pytest.raises(AttributeError):
        res.att = 0.0  # type: ignore[misc]
