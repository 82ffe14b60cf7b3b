"""The few-treated covariance of event-time estimates and the pre-trend test it gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evalkit.did.event_study import EventStudy, coefficient_map, few_treated_event_study
from evalkit.errors import DesignError, NotEstimableError
from evalkit.inference.few_treated_cov import (
    SizeCovariance,
    StationaryCovariance,
    autocovariance_from_controls,
    coefficient_covariance,
    gamma_from_moments,
    size_autocovariance_from_controls,
    wald_pretrend,
)
from evalkit.simulate.designs import cities


def ar1_gamma(rho: float, sd: float, n: int) -> np.ndarray:
    return sd**2 * rho ** np.arange(n)


def toeplitz(gamma: np.ndarray, t: int) -> np.ndarray:
    lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
    full = np.zeros(t)
    full[: len(gamma)] = gamma
    return full[lag]


def q_matrix(t: int) -> np.ndarray:
    return np.eye(t) - np.ones((t, t)) / t


@pytest.mark.parametrize("max_lag", [3, 11])
def test_moments_recover_the_toeplitz_covariance(max_lag):
    # the population moment Q Gamma Q gives Gamma back: exactly when it has no lag
    # beyond max_lag, up to the unidentified constant when every lag is free
    t = 12
    gamma = ar1_gamma(0.6, 1.3, max_lag + 1)
    q = q_matrix(t)
    s = q @ toeplitz(gamma, t) @ q
    got = gamma_from_moments(s, max_lag)
    if max_lag < t - 1:
        np.testing.assert_allclose(got, gamma, atol=1e-10)
    else:
        diff = got - gamma
        np.testing.assert_allclose(diff, diff[0], atol=1e-10)  # a constant
    np.testing.assert_allclose(q @ toeplitz(got, t) @ q, s, atol=1e-10)


def test_autocovariance_is_unbiased_with_unit_and_period_effects():
    rng = np.random.default_rng(7)
    n, t, reps, rho, sd = 9, 20, 400, 0.5, 1.25
    gamma = ar1_gamma(rho, sd, 4)
    est = []
    for _ in range(reps):
        u = np.empty((n, t))
        u[:, 0] = rng.normal(size=n) * sd
        for j in range(1, t):
            u[:, j] = rho * u[:, j - 1] + rng.normal(size=n) * sd * np.sqrt(1 - rho**2)
        y = u + rng.normal(size=(n, 1)) * 3 + rng.normal(size=(1, t)) * 2
        est.append(autocovariance_from_controls(y, max_lag=8).gamma[:4])
    mean = np.mean(est, axis=0)
    mcse = np.std(est, axis=0) / np.sqrt(reps)
    # the true AR(1) autocovariance is within 4 Monte Carlo standard errors
    assert np.all(np.abs(mean - gamma) < 4 * mcse), (mean, gamma, mcse)


def test_coefficient_covariance_equals_the_direct_computation():
    # fast path (unit blocks) against A Sigma A' with the full n x n error covariance
    rng = np.random.default_rng(3)
    units, t = 4, 7
    unit = np.repeat(np.arange(units), t)
    period = np.tile(np.arange(t), units)
    keep = rng.random(len(unit)) > 0.2  # unbalanced
    unit, period = unit[keep], period[keep]
    order = rng.permutation(len(unit))  # rows in any order
    unit, period = unit[order], period[order]
    a = rng.normal(size=(3, len(unit)))
    cov = StationaryCovariance(gamma=ar1_gamma(0.7, 2.0, t), n_controls=5, n_periods=t)
    sigma = np.zeros((len(unit), len(unit)))
    for i in range(len(unit)):
        for j in range(len(unit)):
            if unit[i] == unit[j]:
                sigma[i, j] = cov.gamma[abs(period[i] - period[j])]
    np.testing.assert_allclose(
        coefficient_covariance(a, unit, period, cov), a @ sigma @ a.T, rtol=1e-10, atol=1e-12
    )


def test_coefficient_map_reproduces_the_coefficients_weighted():
    df = cities(np.random.default_rng(5), n_months=30, reform=15)
    df["n"] = np.random.default_rng(6).integers(50, 500, len(df)).astype(float)
    from evalkit.core.estimator import FitContext
    from evalkit.core.random import make_rng
    from evalkit.inference.spec import parse_inference

    est = EventStudy(
        outcome="y", unit="city", time="month", treatment="d", weights="n", window=(-3, 3)
    )
    ctx = FitContext(parse_inference("none", est.supported_inference, "x"), 0,
                     make_rng(0)[0], None, 0.95)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample, reg, events, _, _ = est._regression(df, ctx)
    m = len(events)
    np.testing.assert_allclose(coefficient_map(reg, sample, m) @ sample.y, reg.fit.beta[:m])


def test_wald_pretrend_uses_the_rank():
    out = wald_pretrend(np.array([1.0, 1.0]), np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert out["df"] == 1
    assert out["statistic"] == pytest.approx(1.0)  # (1,1) has variance 2 along itself


def test_event_study_wild_reports_the_few_treated_pretrend_test():
    df = cities(np.random.default_rng(11), n_months=40, reform=20)
    est = EventStudy(
        outcome="y", unit="city", time="month", treatment="d", window=(-4, 4), bin_endpoints=True
    )
    res = est.fit(df, inference="wild", seed=1, reps=99)
    test = res.info["pretrend_test"]
    assert test["method"] == "wald_few_treated"
    assert test["event_times"] == [-4, -3, -2]
    direct = few_treated_event_study(est, df).pretrend_test
    assert test["p_value"] == pytest.approx(direct["p_value"], rel=1e-12)
    assert test["n_controls"] == 9


def test_few_treated_needs_units_as_clusters_and_controls():
    df = cities(np.random.default_rng(1), n_months=20, reform=10, persons_per_city=3)
    est = EventStudy(outcome="y", unit="unit", time="month", treatment="d", cluster="city",
                     window=(-2, 2), bin_endpoints=True)  # fmt: skip
    with pytest.raises(DesignError, match="units must be the clusters"):
        few_treated_event_study(est, df)
    df = cities(np.random.default_rng(1), n_months=20, reform=10, n_cities=4, n_treated=2)
    est = EventStudy(outcome="y", unit="city", time="month", treatment="d",
                     window=(-2, 2), bin_endpoints=True)  # fmt: skip
    with pytest.raises(NotEstimableError, match="at least three"):
        few_treated_event_study(est, df)
    # the wild fit says why it has no joint test instead of failing
    res = est.fit(df, inference="wild", reps=99)
    assert "at least three" in res.info["pretrend_test"]["skipped"]
    with pytest.raises(DesignError, match="max_lag"):
        autocovariance_from_controls(np.zeros((3, 4)), max_lag=4)


def _rejections(reps: int, seed: int, trend: float = 0.0) -> int:
    est = EventStudy(outcome="y", unit="city", time="month", treatment="d",
                     window=(-12, 12), bin_endpoints=True)  # fmt: skip
    hits = 0
    for r in range(reps):
        df = cities(np.random.default_rng(seed + r), n_months=72, reform=38)
        df["y"] += trend * (df["city"] == 0) * (df["month"] - 38)
        hits += few_treated_event_study(est, df).pretrend_test["p_value"] < 0.05
    return hits


def test_pretrend_test_size_fast():
    # one treated city of ten, 72 months, AR(1) shocks, no pre-trend: 60 draws; at a
    # true 5% the count exceeds 9 with probability 0.003 (the slow test has 500 draws)
    assert _rejections(60, 5000) <= 9


@pytest.mark.slow
def test_pretrend_test_size_and_power_slow():
    # measured: 27/500 = 0.054 (band 0.05 +- 2.58 * 0.0097); power 0.34 against a
    # linear pre-trend of 0.1 per month (shock sd 1.25), 0.095 against 0.05
    size = _rejections(500, 1000) / 500
    assert size <= 0.05 + 2.58 * np.sqrt(0.05 * 0.95 / 500)
    assert _rejections(200, 1000, trend=0.1) / 200 > 0.2


def _beta_and_map(df, weights=None):
    from evalkit.core.estimator import FitContext
    from evalkit.core.random import make_rng
    from evalkit.inference.spec import parse_inference

    est = EventStudy(outcome="y", unit="city", time="month", treatment="d", weights=weights,
                     window=(-3, 3), bin_endpoints=True)  # fmt: skip
    ctx = FitContext(parse_inference("none", est.supported_inference, "x"), 0,
                     make_rng(0)[0], None, 0.95)  # fmt: skip
    sample, reg, events, _, _ = est._regression(df, ctx)
    m = len(events)
    return reg.fit.beta[:m], coefficient_map(reg, sample, m), sample


@pytest.mark.slow
def test_covariance_with_the_true_autocovariance_matches_monte_carlo():
    # AR(1) shocks (rho 0.5, sd 1.25): the formula's variances with the true gamma equal
    # the variances of the coefficients over 400 draws (4 Monte Carlo standard errors)
    reps, t = 400, 30
    betas = []
    for r in range(reps):
        df = cities(np.random.default_rng(700 + r), n_months=t, reform=15)
        beta, a, sample = _beta_and_map(df)
        betas.append(beta)
    cov = StationaryCovariance(gamma=ar1_gamma(0.5, 1.25, t), n_controls=9, n_periods=t)
    v = coefficient_covariance(a, sample.unit, sample.time, cov)
    ratio = np.var(betas, axis=0, ddof=1) / np.diag(v)
    assert np.all(np.abs(ratio - 1) < 4 * np.sqrt(2 / reps)), ratio


# ---- cell sizes: gamma_i(h) = a(h) + b(h) / M_i (Ferman-Pinto's variance model) ----------


def _ma_panel(rng, sizes, t, a_theta, b_theta):
    """Controls' errors: an MA(1) unit shock plus an MA(1) person average of variance 1/M."""
    n = len(sizes)

    def ma1(theta):
        e = rng.normal(size=(n, t + 1))
        return (e[:, 1:] + theta * e[:, :-1]) / np.sqrt(1 + theta**2)

    return 0.7 * ma1(a_theta) + ma1(b_theta) * np.sqrt(4.0 / sizes)[:, None]


def test_size_model_is_unbiased_with_unit_and_period_effects():
    # nine controls of different sizes; a(h) = 0.49 * MA(1) autocorrelation (theta 0.6),
    # b(h) = 4 * MA(1) (theta -0.5); max_lag 3 identifies the constant. The mean over
    # 300 draws is within 4 Monte Carlo standard errors of the truth at lags 0-2.
    rng = np.random.default_rng(21)
    sizes = np.geomspace(1.0, 5.0, 9)
    t, reps = 24, 300
    truth_a = 0.49 * np.array([1.0, 0.6 / 1.36, 0.0])
    truth_b = 4.0 * np.array([1.0, -0.5 / 1.25, 0.0])
    a_est, b_est = [], []
    for _ in range(reps):
        y = _ma_panel(rng, sizes, t, 0.6, -0.5)
        y = y + rng.normal(size=(9, 1)) * 2 + rng.normal(size=(1, t))
        cov = size_autocovariance_from_controls(y, sizes, max_lag=3)
        a_est.append(cov.common[:3])
        b_est.append(cov.per_size[:3])
    for est, truth in ((a_est, truth_a), (b_est, truth_b)):
        mean, mcse = np.mean(est, axis=0), np.std(est, axis=0) / np.sqrt(reps)
        assert np.all(np.abs(mean - truth) < 4 * mcse), (mean, truth, mcse)


def test_size_covariance_equals_the_direct_computation():
    # per-unit Gamma at each unit's size, fast path against A Sigma A' with the full
    # error covariance (a map with unit effects: each unit's row block sums to zero)
    df = cities(np.random.default_rng(5), n_months=20, reform=10)
    df["n"] = np.repeat(np.geomspace(100, 900, 10), 20)[df["city"].to_numpy()]
    _, a, sample = _beta_and_map(df, weights="n")
    t = sample.n_periods
    h = np.arange(t)
    model = SizeCovariance(common=0.3 * 0.5**h, per_size=200 * 0.8**h, n_controls=9,
                           n_periods=t, control_sizes=np.ones(9))  # fmt: skip
    sizes = np.bincount(sample.unit, weights=sample.w) / np.bincount(sample.unit)
    n = len(sample.unit)
    sigma = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if sample.unit[i] == sample.unit[j]:
                gam = model.at(sizes[sample.unit[i]]).gamma
                sigma[i, j] = gam[abs(sample.time[i] - sample.time[j])]
    got = coefficient_covariance(a, sample.unit, sample.time, model, unit_sizes=sizes)
    np.testing.assert_allclose(got, a @ sigma @ a.T, rtol=1e-9, atol=1e-12)
    with pytest.raises(DesignError, match="unit_sizes"):
        coefficient_covariance(a, sample.unit, sample.time, model)


def test_sizes_are_read_from_the_weights_and_can_be_turned_off():
    df = cities(np.random.default_rng(8), n_months=40, reform=20)
    est = EventStudy(outcome="y", unit="city", time="month", treatment="d", weights="n",
                     window=(-4, 4), bin_endpoints=True)  # fmt: skip
    plain = EventStudy(outcome="y", unit="city", time="month", treatment="d",
                       window=(-4, 4), bin_endpoints=True)  # fmt: skip
    # equal sizes: the size model is not identified, the unsized covariance is used
    df["n"] = 50.0
    fit = few_treated_event_study(est, df)
    assert fit.about["sizes"].startswith("not used: every control unit has the same size")
    np.testing.assert_allclose(fit.vcov, few_treated_event_study(plain, df).vcov, rtol=1e-10)
    # sizes that differ: the treated city's variance ratio is reported; off = unsized
    df["n"] = np.geomspace(400, 4000, 10)[df["city"].to_numpy()]
    fit = few_treated_event_study(est, df)
    assert "a + b / size" in fit.about["covariance"]
    assert fit.about["treated_sizes"] == [pytest.approx(400.0)]
    assert len(fit.about["treated_variance_ratio"]) == 1
    off = few_treated_event_study(est, df, size_correction=False)
    assert off.about["sizes"] == "not used: size_correction=False"
    assert not np.allclose(fit.vcov, off.vcov)
    no_size = EventStudy(outcome="y", unit="city", time="month", treatment="d", weights="n",
                         window=(-4, 4), bin_endpoints=True, size_correction=False)  # fmt: skip
    np.testing.assert_allclose(few_treated_event_study(no_size, df).vcov, off.vcov)
    # the wild fit's pre-trend test uses the same covariance
    res = est.fit(df, inference="wild", seed=1, reps=99)
    assert res.info["pretrend_test"]["p_value"] == pytest.approx(
        fit.pretrend_test["p_value"], rel=1e-12
    )
    assert "treated_variance_ratio" in res.info["pretrend_test"]
    with pytest.raises(DesignError, match="size_correction"):
        EventStudy(outcome="y", unit="city", time="month", treatment="d", size_correction="no")
