"""Few-cluster inference numerics against slow, by-definition computations.

Every reference here is computed in the test itself from the defining formula with dense
dummy-variable regressions (numpy lstsq), independent of the fast paths in
evalkit.inference.{wild, randomization, few_treated, conformal}.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evalkit.inference.conformal import (
    conformal_inference,
    conformal_p_value,
    did_counterfactual,
)
from evalkit.inference.few_treated import conley_taber, control_errors
from evalkit.inference.randomization import cluster_randomization
from evalkit.inference.wild import WildBootstrap, draw_weights
from evalkit.numerics.within import WithinTransform


def panel(n_cl=6, per=2, n_t=6, treated=(0,), start=3, seed=0, effect=0.5):
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_cl * per), n_t)
    time = np.tile(np.arange(n_t), n_cl * per)
    cl = unit // per
    d = (np.isin(cl, treated) & (time >= start)).astype(float)
    y = (
        effect * d
        + rng.normal(size=n_cl * per)[unit]
        + 0.3 * time
        + rng.normal(size=(n_cl, n_t))[cl, time]
        + 0.5 * rng.normal(size=len(unit))
    )
    return unit, time, cl, d, y


def dummies(codes, drop_first=False):
    m = (codes[:, None] == np.arange(codes.max() + 1)).astype(float)
    return m[:, 1:] if drop_first else m


def lsdv_coef(y, d, unit, time):
    x = np.column_stack([d, dummies(unit), dummies(time, drop_first=True)])
    return np.linalg.lstsq(x, y, rcond=None)[0][0]


# -- wild bootstrap: fast path = refitting the dummy-variable regression on each draw ----------


@pytest.mark.parametrize("restricted", [True, False])
def test_wild_t_star_equals_refitted_dummy_regression(restricted: bool) -> None:
    unit, time, cl, d, y = panel(treated=(0, 1, 2))
    xfull = np.column_stack([d, dummies(unit), dummies(time, drop_first=True)])
    n, k = xfull.shape
    g = 6
    ssc = g / (g - 1) * (n - 1) / (n - k)
    v = draw_weights("webb", g, 40, np.random.default_rng(3))[0]
    r = 0.2
    beta = np.linalg.lstsq(xfull, y, rcond=None)[0]
    if restricted:  # restricted fit: y - r d on the dummies
        xr = xfull[:, 1:]
        gam = np.linalg.lstsq(xr, y - r * d, rcond=None)[0]
        fitted, resid = r * d + xr @ gam, y - r * d - xr @ gam
    else:
        fitted, resid = xfull @ beta, y - xfull @ beta
    inv = np.linalg.inv(xfull.T @ xfull)
    expected = []
    for b in range(v.shape[1]):
        ystar = fitted + resid * v[cl, b]
        bstar = inv @ xfull.T @ ystar
        ustar = ystar - xfull @ bstar
        scores = np.array([(xfull[cl == c] * ustar[cl == c, None]).sum(0) for c in range(g)])
        se = np.sqrt(ssc * (inv @ scores.T @ scores @ inv)[0, 0])
        expected.append((bstar[0] - (r if restricted else beta[0])) / se)
    wt = WithinTransform((unit, time))
    wb = WildBootstrap(
        wt.demean(d)[:, None], wt.demean(y), cl, restricted=restricted, demean=wt.demean, ssc=ssc
    )
    wb.test(v=v)
    np.testing.assert_allclose(wb.t_boot(r), expected, rtol=1e-9)


def test_wild_same_seed_same_result_and_one_treated_cluster_is_wide() -> None:
    unit, time, cl, d, y = panel(n_cl=10, treated=(0,))
    wt = WithinTransform((unit, time))
    wb = WildBootstrap(wt.demean(d)[:, None], wt.demean(y), cl, demean=wt.demean)
    one = wb.test(weights="webb", reps=999, rng=np.random.default_rng(4))
    two = wb.test(weights="webb", reps=999, rng=np.random.default_rng(4))
    assert one == two
    enumerated = wb.test(reps=9999, rng=np.random.default_rng(1))
    assert enumerated.enumerated and enumerated.reps == 1024
    # MacKinnon & Webb (2017): WCR with one treated cluster almost never rejects, so its
    # interval is many times the CR1 one (measured here: about 19 standard errors wide)
    width = enumerated.conf_high - enumerated.conf_low
    assert width > 5 * 2 * 1.96 * enumerated.std_error_cr1


def test_wild_rejects_bad_weights() -> None:
    from evalkit.errors import DesignError

    with pytest.raises(DesignError, match="weights"):
        draw_weights("gauss", 3, 9, np.random.default_rng(0))


# -- randomization inference: exact enumeration by hand -----------------------------------------


@pytest.mark.parametrize("treated", [(0,), (0, 3)])
def test_randomization_equals_enumeration_by_hand(treated) -> None:
    unit, time, cl, d, y = panel(treated=treated)
    g = 6
    paths_treated = d.reshape(g, 2, 6)[list(treated), 0, :]
    wt = WithinTransform((unit, time))
    res = cluster_randomization(y, d, cl, time, partial=wt.demean)
    # by hand: every set of len(treated) clusters gets the treated path, LSDV coefficient each
    coefs = []
    for chosen in itertools.combinations(range(g), len(treated)):
        da = np.zeros(len(y))
        for c in chosen:
            da[cl == c] = paths_treated[0][time[cl == c]]
        coefs.append(lsdv_coef(y, da, unit, time))
    actual = lsdv_coef(y, d, unit, time)
    p_hand = np.mean(np.abs(coefs) >= abs(actual) - 1e-12)
    assert res.n_assignments == len(coefs)
    assert res.exact and res.granularity == pytest.approx(1 / len(coefs))
    assert res.estimate == pytest.approx(actual, rel=1e-10)
    assert res.p_value == pytest.approx(p_hand, abs=1e-12)


def test_randomization_interval_is_the_inverted_test() -> None:
    unit, time, cl, d, y = panel(n_cl=8, treated=(0, 5), seed=2)
    wt = WithinTransform((unit, time))
    res = cluster_randomization(y, d, cl, time, partial=wt.demean, level=0.8)
    path = d.reshape(8, 2, 6)[0, 0, :]

    def p_hand(tau: float) -> float:
        ys = y - tau * d
        obs = lsdv_coef(ys, d, unit, time)
        stats = []
        for chosen in itertools.combinations(range(8), 2):
            da = np.isin(cl, chosen) * path[time]
            stats.append(abs(lsdv_coef(ys, da, unit, time)))
        return float(np.mean(np.array(stats) >= abs(obs) - 1e-9))

    eps = 1e-6
    assert p_hand(res.conf_low + eps) > 0.2 >= p_hand(res.conf_low - eps)
    assert p_hand(res.conf_high - eps) > 0.2 >= p_hand(res.conf_high + eps)
    assert res.conf_low < res.estimate < res.conf_high


def test_randomization_refuses_within_cluster_treatment() -> None:
    from evalkit.errors import DesignError

    unit, time, cl, d, y = panel()
    d = d * (unit % 2)  # only one unit of the treated cluster
    with pytest.raises(DesignError, match="constant within each"):
        cluster_randomization(y, d, cl, time, partial=WithinTransform((unit, time)).demean)


# -- Conley-Taber and Ferman-Pinto by definition --------------------------------------------------


def test_conley_taber_by_definition() -> None:
    unit, time, cl, d, y = panel(n_cl=9, per=1, n_t=5, treated=(0, 1), start=3, seed=5)
    x = np.column_stack([d, dummies(unit), dummies(time, drop_first=True)])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    # d~ by FWL on the dummies, then W[l, j] = sum_t d~_jt e_lt / sum_{treated} d~^2
    z = x[:, 1:]
    dt = d - z @ np.linalg.lstsq(z, d, rcond=None)[0]
    dmat, emat = dt.reshape(9, 5), resid.reshape(9, 5)
    den = float((dmat[:2] ** 2).sum())
    w_def = np.array([[emat[ell] @ dmat[j] / den for j in range(2)] for ell in range(2, 9)])
    w = control_errors(resid, WithinTransform((unit, time)).demean(d), cl, time, np.array([0, 1]))
    np.testing.assert_allclose(w, w_def, atol=1e-12)
    res = conley_taber(beta[0], w, level=0.9)
    draws = np.sort([w_def[a, 0] + w_def[b, 1] for a in range(7) for b in range(7)])
    assert res.n_draws == 49 and res.exact

    # p-value: equal-tailed, the treated's own error counted as one more draw
    def p_def(a):
        gap = beta[0] - a
        up, down = np.sum(draws >= gap), np.sum(draws <= gap)
        return min(1.0, 2 * min(1 + up, 1 + down) / 50)

    assert res.p_value == pytest.approx(p_def(0.0))
    # the interval is exactly the set of effects with p > 10%
    eps = 1e-9
    assert p_def(res.conf_low + eps) > 0.1 >= p_def(res.conf_low - eps)
    assert p_def(res.conf_high - eps) > 0.1 >= p_def(res.conf_high + eps)


def test_ferman_pinto_rescales_by_fitted_variance() -> None:
    rng = np.random.default_rng(8)
    m_ctrl = np.array([5.0, 10, 20, 40, 80, 160, 320, 640])
    w = rng.normal(size=(8, 1)) * np.sqrt(0.1 + 4.0 / m_ctrl)[:, None]
    res = conley_taber(1.0, w, sizes_controls=m_ctrl, sizes_treated=np.array([5.0]))
    b, a = np.polyfit(1.0 / m_ctrl, w[:, 0] ** 2, 1)  # W^2 = a + b / M
    scaled = w[:, 0] * np.sqrt((a + b / 5.0) / (a + b / m_ctrl))
    plain = conley_taber(1.0, scaled[:, None])
    assert res.method == "ferman_pinto"
    assert (res.conf_low, res.conf_high, res.p_value) == pytest.approx(
        (plain.conf_low, plain.conf_high, plain.p_value)
    )


# -- conformal inference: the paper's algorithm written out -----------------------------------


def slow_conformal_p(y1, ctrl, post, theta, q=1.0):
    """CWZ (2021) Algorithm: impose null, fit TWFE by LSDV on all periods, moving blocks."""
    j1, n_t = ctrl.shape[0] + 1, len(y1)
    panel_y = np.vstack([y1 - theta * post, ctrl]).ravel()
    unit = np.repeat(np.arange(j1), n_t)
    time = np.tile(np.arange(n_t), j1)
    x = np.column_stack([dummies(unit), dummies(time, drop_first=True)])
    u = (panel_y - x @ np.linalg.lstsq(x, panel_y, rcond=None)[0])[:n_t]
    post_idx = np.flatnonzero(post)

    def stat(series):
        if q == "mean":
            return abs(np.mean(series[post_idx]))
        return np.mean(np.abs(series[post_idx]) ** q) ** (1 / q)

    s0 = stat(u)
    shifted = [stat(np.array([u[(t + j) % n_t] for t in range(n_t)])) for j in range(n_t)]
    return float(np.mean(np.array(shifted) >= s0 - 1e-12))


def test_conformal_equals_slow_algorithm() -> None:
    rng = np.random.default_rng(11)
    ctrl = rng.normal(size=(5, 24)) + np.linspace(0, 2, 24)
    post = np.arange(24) >= 16
    y1 = ctrl.mean(0) + rng.normal(size=24) + 1.5 * post
    fit = did_counterfactual(ctrl)
    for theta in (-1.0, 0.0, 0.7, 1.5, 3.0):
        for q in (1.0, 2.0, "mean"):
            assert conformal_p_value(y1, post, fit, theta, q) == pytest.approx(
                slow_conformal_p(y1, ctrl, post, theta, q)
            )
    res = conformal_inference(y1, post, fit, level=0.9)  # statistic: |mean post residual|
    eps = 1e-6

    def p_mean(theta, y=y1, c=ctrl, post=post):
        return slow_conformal_p(y, c, post, theta, "mean")

    assert p_mean(res.conf_low + eps) > 0.1 >= p_mean(res.conf_low - eps)
    assert p_mean(res.conf_high - eps) > 0.1 >= p_mean(res.conf_high + eps)
    assert res.p_value == pytest.approx(p_mean(0.0))
    # per period: the pre-periods plus that one period, moving blocks over T0 + 1 periods
    keep = ~post
    keep[18] = True
    i = int(np.flatnonzero(res.periods == 18)[0])
    sub_post = post[keep]
    y18, c18 = y1[keep], ctrl[:, keep]
    assert res.period_p_value[i] == pytest.approx(p_mean(0.0, y18, c18, sub_post))
    assert p_mean(res.period_low[i] + eps, y18, c18, sub_post) > 0.1
    assert p_mean(res.period_low[i] - eps, y18, c18, sub_post) <= 0.1


def test_panel_methods_recompute_intervals_at_another_level() -> None:
    from evalkit.inference.panel import PANEL_METHODS, PanelData, panel_test

    unit, time, cl, d, y = panel(n_cl=8, per=1, n_t=20, treated=(0,), start=10, seed=4)
    data = PanelData(y, d[:, None], unit, time, cl)
    for method in PANEL_METHODS:
        wide = panel_test(data, method, level=0.95, rng=np.random.default_rng(1), reps=999)
        narrow = panel_test(data, method, level=0.8, rng=np.random.default_rng(1), reps=999)
        assert wide.invert is not None
        assert wide.invert(0.8) == pytest.approx((narrow.conf_low, narrow.conf_high)), method
        assert narrow.invert(0.95) == pytest.approx((wide.conf_low, wide.conf_high)), method


def test_triple_diff_and_event_study_take_the_wild_bootstrap() -> None:
    import pandas as pd

    from evalkit.did import EventStudy, TripleDiff

    rng = np.random.default_rng(0)
    rows = [
        {"city": c, "g": g, "t": t, "d": int(c < 3 and g == 1 and t == 1)}
        for c in range(12)
        for g in (0, 1)
        for t in (0, 1)
    ]
    df = pd.DataFrame(rows)
    df["y"] = 0.5 * df["d"] + rng.normal(size=len(df))
    est = TripleDiff(
        outcome="y", unit="city", time="t", group="g", target=1, treatment="d", cluster="city"
    )
    res = est.fit(df, inference="wild", seed=1)
    row = res.tidy().iloc[0]
    assert res.inference.reps == 4096 and res.inference.kind == "test_inversion"
    assert np.isnan(row["std_error"]) and 0 < row["p_value"] <= 1
    assert row["conf_low"] < row["estimate"] < row["conf_high"]
    assert res.tidy(level=0.5).iloc[0]["conf_high"] < row["conf_high"]

    unit, time, cl, _d, y = panel(n_cl=10, per=1, n_t=8, treated=(0, 1, 2), start=4, seed=9)
    frame = pd.DataFrame({"u": unit, "t": time, "c": cl, "y": y})
    frame["cohort"] = np.where(frame["c"] < 3, 4, 0)
    es = EventStudy(outcome="y", unit="u", time="t", cohort="cohort", cluster="c")
    out = es.fit(frame, seed=3)  # 3 treated clusters: the policy picks the wild bootstrap
    assert out.inference.method == "wild"
    assert out.tidy()["p_value"].between(0, 1).all()


@pytest.mark.parametrize("restricted", [True, False])
def test_wild_grid_shortcut_equals_projection(restricted: bool) -> None:
    unit, time, cl, d, y = panel(n_cl=7, per=3, n_t=9, treated=(0, 1), start=5, seed=12)
    wt = WithinTransform((unit, time))
    xt, yt = wt.demean(d)[:, None], wt.demean(y)
    v = draw_weights("webb", 7, 50, np.random.default_rng(0))[0]
    slow = WildBootstrap(xt, yt, cl, restricted=restricted, demean=wt.demean)
    fast = WildBootstrap(xt, yt, cl, restricted=restricted, demean=wt.demean, grid_time=time)
    slow.test(v=v)
    fast.test(v=v)
    np.testing.assert_allclose(fast.t_boot(0.3), slow.t_boot(0.3), rtol=1e-10)
