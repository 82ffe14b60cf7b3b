"""synth.SyntheticControl on small simulated panels: known answers, inference, errors."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from evalkit import EvalkitError
from evalkit.errors import DataError, DesignError, InferenceUnavailableWarning
from evalkit.inference import Inference, Placebo
from evalkit.synth import SyntheticControl
from evalkit.synth.placebo import rank_p_value

TRUE_W = {0: 0.5, 1: 0.3, 2: 0.2}


def sc_panel(
    n_donors: int = 8,
    n_pre: int = 10,
    n_post: int = 4,
    effect: float = -2.0,
    seed: int = 0,
    noise: float = 0.0,
):
    """Donors with unit effects, a trend and noise; the treated unit is exactly
    0.5, 0.3, 0.2 of donors 0, 1, 2 (outcome and covariate) plus ``effect`` after
    (plus its own noise of standard deviation ``noise``)."""
    rng = np.random.default_rng(seed)
    periods = np.arange(2000, 2000 + n_pre + n_post)
    y = (
        rng.normal(10, 2, size=(n_donors, 1))
        + rng.normal(0, 0.5, size=(n_donors, 1)) * np.arange(periods.size)
        + rng.normal(0, 0.3, size=(n_donors, periods.size))
    )
    x = rng.normal(5, 1, size=(n_donors, periods.size))
    w = np.zeros(n_donors)
    for j, v in TRUE_W.items():
        w[j] = v
    y1 = w @ y + effect * (np.arange(periods.size) >= n_pre)
    y1 = y1 + noise * rng.normal(size=periods.size)
    x1 = w @ x
    rows = []
    for i in range(n_donors + 1):
        for t, p in enumerate(periods):
            treated = i == n_donors
            rows.append(
                {
                    "unit": i,
                    "year": p,
                    "y": y1[t] if treated else y[i, t],
                    "x": x1[t] if treated else x[i, t],
                    "d": int(treated and t >= n_pre),
                }
            )
    return pd.DataFrame(rows)


def _sc(**kw):
    opts = dict(outcome="y", unit="unit", time="year", treatment="d")
    return SyntheticControl(**{**opts, **kw})


def test_recovers_planted_weights_and_effect():
    df = sc_panel()
    # more predictors than donors, so matching them identifies the weights
    est = _sc(predictors=[("x", (2000, 2009))], lagged_outcomes=range(2000, 2010), random_starts=0)
    res = est.fit(df, inference="none")
    w = res.weights
    for j, v in TRUE_W.items():
        assert w[j] == pytest.approx(v, abs=1e-6)
    assert res.estimate("att") == pytest.approx(-2.0, abs=1e-6)
    assert res.estimate("effect", time=2012) == pytest.approx(-2.0, abs=1e-6)
    assert res.rmspe["pre"] == pytest.approx(0.0, abs=1e-6)
    assert res.info["v_mspe"] >= res.info["v_mspe_bound"] - 1e-12
    bal = res.balance
    np.testing.assert_allclose(bal["treated"], bal["synthetic"], atol=1e-6)
    assert list(bal.columns) == ["treated", "synthetic", "donor_mean", "v"]
    path = res.path
    np.testing.assert_allclose(path["gap"], path["treated"] - path["synthetic"])
    assert path["post"].sum() == 4


def test_default_predictors_are_every_pre_period_outcome():
    res = _sc().fit(sc_panel(), inference="none")
    assert len(res.v) == 10
    assert res.info["predictors"][0] == "y (2000)"
    assert res.estimate("att") == pytest.approx(-2.0, abs=1e-6)


def test_predictor_ops_and_custom_v():
    df = sc_panel()
    preds = [("x", [2001, 2003], "median"), ("x", (2000, 2009), "last"), ("y", (2000, 2009))]
    est = _sc(predictors=preds, custom_v={"y (mean 2000-2009)": 1.0, "x (last 2000-2009)": 1.0})
    res = est.fit(df, inference="none")
    assert res.info["v_start"] == "custom"
    assert res.v.to_dict() == {
        "x (median 2001,2003)": 0.0,
        "x (last 2000-2009)": 0.5,
        "y (mean 2000-2009)": 0.5,
    }
    treated = df[df["unit"] == 8].set_index("year")
    bal = res.balance
    assert bal.loc["x (median 2001,2003)", "treated"] == pytest.approx(
        treated.loc[[2001, 2003], "x"].median()
    )
    assert bal.loc["x (last 2000-2009)", "treated"] == pytest.approx(treated.loc[2009, "x"])


def test_missing_predictor_values_are_skipped_like_synth():
    df = sc_panel()
    df.loc[df["year"] % 2 == 0, "x"] = np.nan  # observed in odd years only
    res = _sc(predictors=[("x", (2000, 2009))], lagged_outcomes=[2009]).fit(df, inference="none")
    treated = df[(df["unit"] == 8) & df["year"].between(2000, 2009)]
    assert res.balance.iloc[0]["treated"] == pytest.approx(treated["x"].mean())


def test_placebo_p_values_by_hand():
    df = sc_panel(n_donors=9, effect=-5.0)
    est = _sc(lagged_outcomes=[2003, 2006, 2009], custom_v=[1, 1, 1])
    res = est.fit(df, inference="placebo")
    runs = res.placebos
    assert runs.n_placebos == 9 and res.info["p_value_granularity"] == pytest.approx(0.1)
    # each placebo is the same estimator fitted with that donor as treated, treated left out
    j = 4
    alone = df[df["unit"] != 9].assign(d=lambda f: ((f["unit"] == j) & (f["year"] >= 2010)) * 1)
    gap = est.fit(alone, inference="none").gaps.to_numpy()
    np.testing.assert_allclose(runs.gaps[1 + j], gap, atol=1e-10)
    ratio = runs.ratio
    assert res.tidy().loc[0, "p_value"] == pytest.approx(rank_p_value(ratio[0], ratio[1:]))
    assert res.tidy().loc[0, "p_value"] == pytest.approx(0.1)  # largest ratio: 1/(9+1)


def _p_att_by_refit(est, df, tau, n_pre_end=2009):
    shifted = df.copy()
    post = (shifted["unit"] == shifted["unit"].max()) & (shifted["year"] > n_pre_end)
    shifted.loc[post, "y"] -= tau
    return est.fit(shifted, inference="placebo", level=0.8).tidy()


def test_interval_equals_brute_force_inversion():
    """The closed-form interval is the set of constant effects the refitted test keeps."""
    df = sc_panel(n_donors=19, effect=-3.0, seed=2)
    est = _sc(lagged_outcomes=[2001, 2005, 2009], custom_v=[1, 1, 1])
    res = est.fit(df, inference="placebo", level=0.8)
    tidy = res.tidy()
    lo, hi = tidy.loc[0, ["conf_low", "conf_high"]]
    assert lo < -3.0 < hi or not np.isfinite(lo)
    alpha = 0.2
    for tau, inside in (
        (lo + 1e-6, True),
        (hi - 1e-6, True),
        (lo - 1e-3, False),
        (hi + 1e-3, False),
    ):
        p = _p_att_by_refit(est, df, tau).loc[0, "p_value"]
        assert (p > alpha) == inside, (tau, p)
    # the per-period interval, checked the same way at its upper end
    hi_t = tidy.loc[1, "conf_high"]
    for tau, inside in ((hi_t - 1e-6, True), (hi_t + 1e-3, False)):
        p = _p_att_by_refit(est, df, tau).loc[1, "p_value"]
        assert (p > alpha) == inside
    # another level is re-inverted from the stored placebo runs
    wide = res.tidy(level=0.9)
    assert wide.loc[0, "conf_low"] <= lo and wide.loc[0, "conf_high"] >= hi


def test_unbounded_interval_is_empty_with_reason():
    df = sc_panel(n_donors=8)
    with pytest.warns(InferenceUnavailableWarning, match="unbounded"):
        res = _sc(lagged_outcomes=[2005, 2009], custom_v=[1, 1]).fit(df)
    tidy = res.tidy()
    assert np.isneginf(tidy["conf_low"]).all() and np.isposinf(tidy["conf_high"]).all()
    assert "unbounded" in res.info["interval_notes"][0]
    assert res.inference.method == "placebo" and "one treated unit" in res.inference.reason
    assert "no standard error" in res.inference.missing
    with pytest.raises(EvalkitError):
        res.std_error("att")


def test_pre_fit_cutoff_drops_bad_placebos():
    df = sc_panel(n_donors=9)
    est = _sc(lagged_outcomes=[2003, 2009], custom_v=[1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = est.fit(df)
        cut = est.fit(df, inference=Placebo(cutoff=2))
        same = est.fit(df, inference=Inference("placebo", options={"cutoff": 2}))
    pd.testing.assert_frame_equal(cut.tidy(), same.tidy())
    assert cut.placebos.n_placebos < full.placebos.n_placebos
    table = cut.placebos.table()
    assert not table.loc[~table["kept"], "treated"].any()
    with pytest.raises(DesignError, match="cutoff"):
        est.fit(df, inference=Placebo(cutoff=0.5))
    with pytest.raises(DesignError, match="cutof"):
        est.fit(df, inference=Inference("placebo", options={"cutof": 5}))


def test_backdating_and_leave_one_out():
    df = sc_panel()
    est = _sc(predictors=[("x", (2004, 2009))], lagged_outcomes=[2005, 2007, 2009], random_starts=0)
    back = est.backdate(df, periods=[2, 3])
    assert back["shift"].tolist() == [0, 2, 3] and back["start"].tolist() == [2010, 2008, 2007]
    assert back["att"].iloc[0] == pytest.approx(est.fit(df, inference="none").estimate("att"))
    # before the real start the backdated fits track the treated unit (no effect yet)
    assert back["att_before_start"].iloc[1:].abs().max() < 0.5 < 2.0
    loo = est.leave_one_out(df)
    assert pd.isna(loo["left_out"].iloc[0])  # the full donor pool
    main = est.fit(df, inference="none").weights
    assert sorted(loo["left_out"].iloc[1:]) == sorted(main.index[main > 0])
    assert loo["att"].iloc[0] == pytest.approx(back["att"].iloc[0])
    assert loo.columns[-1] == "gap_2013"
    with pytest.raises(DesignError, match="backdating"):
        est.backdate(df, periods=8)  # predictor x would start before 2000


def test_plots_return_axes():
    df = sc_panel(n_donors=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _sc(lagged_outcomes=[2005, 2009], custom_v=[1, 1]).fit(df)
    for kind in ("trajectory", "gap", "placebo", "weights"):
        ax = res.plot(kind=kind)
        assert ax.has_data()
    from evalkit.synth.plots import plot_robustness

    loo = _sc(lagged_outcomes=[2005, 2009], random_starts=0).leave_one_out(df)
    assert plot_robustness(loo).has_data()
    with pytest.raises(DesignError, match="kind"):
        res.plot(kind="spaghetti")
    plt.close("all")


def test_same_result_for_any_seed_and_frame_untouched():
    df = sc_panel()
    before = df.copy()
    est = _sc(predictors=[("x", (2000, 2009))], lagged_outcomes=[2009])
    a = est.fit(df, inference="none", seed=1)
    b = est.fit(df, inference="none", seed=2)
    pd.testing.assert_series_equal(a.weights, b.weights)
    pd.testing.assert_frame_equal(df, before)
    w = a.weights
    w.iloc[0] = 99.0
    assert a.weights.iloc[0] != 99.0


@pytest.mark.parametrize(
    ("kwargs", "change", "error", "match"),
    [
        (dict(predictors=[("xx", (2000, 2009))]), None, DesignError, "(?s)'xx'.*did you mean 'x'"),
        (dict(predictors=[("x", (1990, 1995))]), None, DesignError, "no period"),
        (dict(predictors=[("x", [1999, 2001])]), None, DesignError, r"\[1999\]"),
        (dict(predictors=[("x", (2005, 2011))]), None, DesignError, "after treatment"),
        (dict(v_periods=(2008, 2012)), None, DesignError, "v_periods"),
        (dict(lagged_outcomes=[2009], custom_v=[1, 2]), None, DesignError, "custom_v"),
        (dict(donors=[99]), None, DesignError, "donor"),
        ({}, "switch_off", DataError, "P008"),
        ({}, "unbalanced", DataError, "unbalanced"),
        ({}, "two_treated", DesignError, "one treated unit"),
        ({}, "no_donors", DataError, "all 9 units"),
        ({}, "flat_predictor", DesignError, "same value"),
    ],
)
def test_errors_name_the_problem(kwargs, change, error, match):
    df = sc_panel()
    if change == "switch_off":
        df.loc[(df["unit"] == 8) & (df["year"] == 2013), "d"] = 0
    elif change == "unbalanced":
        df = df.drop(index=df.index[(df["unit"] == 3) & (df["year"] == 2004)])
    elif change == "two_treated":
        df.loc[(df["unit"] == 7) & (df["year"] >= 2011), "d"] = 1
    elif change == "no_donors":
        df.loc[df["year"] == 2013, "d"] = 1
    elif change == "flat_predictor":
        df["x"] = 1.0
        kwargs = dict(predictors=[("x", (2000, 2009))], lagged_outcomes=[2009])
    with pytest.raises(error, match=match):
        _sc(**kwargs).fit(df, inference="none")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(predictors=[("x", (2000, 2005, 2009))]), "inclusive range"),
        (dict(predictors=[("x", (2000, 2009), "avg")]), "unknown op"),
        (dict(predictors=[("x",)]), "variable, periods"),
        (dict(predictors="x"), "triples"),
        (dict(random_starts=-1), "random_starts"),
        (dict(outcome=3), "outcome"),
    ],
)
def test_bad_options_raise_at_construction(kwargs, match):
    with pytest.raises(EvalkitError, match=match):
        _sc(**kwargs)


def test_by_subgroups_of_units_are_refused_with_a_hint():
    # by= splits every unit's rows (tests/unit/test_synth_by.py); subgroups that are sets
    # of units cannot share placebo runs
    with pytest.raises(DataError, match="by= with placebo inference needs every unit"):
        _sc().fit(sc_panel(), by="unit")


def test_conformal_inference_finds_a_planted_effect():
    """Chernozhukov-Wuthrich-Zhu through evalkit.inference.conformal with the SC model."""
    from evalkit.inference.conformal import conformal_inference
    from evalkit.synth.conformal import sc_counterfactual

    df = sc_panel(n_donors=8, n_pre=15, n_post=3, effect=-3.0, seed=4, noise=0.3)
    est = _sc(lagged_outcomes=[2005, 2010, 2014], custom_v=[1, 1, 1])
    res = est.fit(df, inference="conformal")
    tidy = res.tidy()
    assert res.uncertainty.kind == "test_inversion" and res.inference.method == "conformal"
    assert tidy.loc[0, "p_value"] == pytest.approx(1 / 18)  # the smallest on the 1/T grid
    assert tidy.loc[0, "conf_low"] < -3.0 < tidy.loc[0, "conf_high"]
    # the same numbers as the shared module called with the SC counterfactual directly
    wide = df.pivot(index="unit", columns="year", values="y").to_numpy()
    post = np.arange(18) >= 15
    direct = conformal_inference(wide[-1], post, sc_counterfactual(wide[:-1]), level=0.95)
    assert tidy.loc[0, "p_value"] == pytest.approx(direct.p_value)
    assert tidy.loc[0, "conf_low"] == pytest.approx(direct.conf_low)
    np.testing.assert_allclose(tidy["p_value"].iloc[1:], direct.period_p_value)
    narrow = res.tidy(level=0.8)
    assert (narrow["conf_low"] >= tidy["conf_low"] - 1e-9).all()
    assert (narrow["conf_high"] <= tidy["conf_high"] + 1e-9).all()
    # no effect: the test does not reject at 5%
    null = est.fit(
        sc_panel(n_donors=8, n_pre=20, n_post=5, effect=0.0, seed=4), inference="conformal"
    )
    assert null.tidy().loc[0, "p_value"] > 0.05


def shock_panel(seed: int = 0, n_donors: int = 8, n_pre: int = 20, n_post: int = 10):
    """A shock that starts with the treatment and hits each unit with its own intensity,
    measured by the covariate ``u`` (an unemployment rate); the treated unit's
    pre-treatment path is 0.5, 0.3, 0.2 of donors 0, 1, 2, but its shock is weaker."""
    rng = np.random.default_rng(seed)
    n_t = n_pre + n_post
    post = np.arange(n_t) >= n_pre
    decay = np.where(post, 0.8 ** np.maximum(np.arange(n_t) - n_pre, 0), 0.0)
    intensity = np.r_[3.0, 2.5, 2.0, rng.uniform(0.5, 3.0, n_donors - 3), 0.6]
    base = rng.normal(10, 1, (n_donors, 1)) + rng.normal(0, 0.3, (n_donors, n_t))
    w = np.zeros(n_donors)
    w[[0, 1, 2]] = 0.5, 0.3, 0.2
    y0 = np.vstack([base, w @ base])
    u = 3.0 + intensity[:, None] * decay[None, :] + rng.normal(0, 0.05, (n_donors + 1, n_t))
    y = y0 - 0.8 * u + np.where(np.arange(n_donors + 1)[:, None] == n_donors, -1.0 * post, 0.0)
    unit, year = np.meshgrid(np.arange(n_donors + 1), 2000 + np.arange(n_t), indexing="ij")
    return pd.DataFrame(
        {
            "unit": unit.ravel(),
            "year": year.ravel(),
            "y": y.ravel(),
            "u": u.ravel(),
            "d": ((unit == n_donors) & post[None, :]).astype(int).ravel(),
        }
    )


def test_covariates_remove_a_shock_no_pre_period_fit_can_match():
    """Plain SC matches the pre-period (no shock there) and misses the treated unit's
    weaker shock; partialling out the covariate recovers the effect of -1."""
    df = shock_panel()
    plain = _sc(custom_v=[1] * 20).fit(df, inference="none")
    adjusted = _sc(custom_v=[1] * 20, covariates="u").fit(df, inference="none")
    # over 30 seeds: plain bias +0.72 (sd 0.02); adjusted -1.02 (sd 0.09); beta -0.82 (sd 0.10)
    assert plain.estimate("att") - (-1.0) > 0.5  # synthetic unit hit by a stronger shock
    assert adjusted.estimate("att") == pytest.approx(-1.0, abs=0.3)
    assert adjusted.info["covariate_coefficients"]["u"] == pytest.approx(-0.8, abs=0.3)
    assert adjusted.info["covariate_method"] == "projected"
    assert adjusted.info["roles"]["covariates"] == ["u"]
    assert plain.info["covariate_method"] is None


def test_covariates_projected_by_definition():
    """Slow path: OLS with unit and period dummies among the donors, then the plain
    estimator on the residualised outcome: the same weights, gaps and conformal test."""
    df = shock_panel(seed=3)
    est = _sc(custom_v=[1] * 20, covariates=("u",))
    res = est.fit(df, inference="conformal")
    donors = df[df["unit"] < 8]
    design = pd.get_dummies(donors[["unit", "year"]].astype(str), drop_first=True).astype(float)
    design.insert(0, "u", donors["u"])
    design.insert(0, "const", 1.0)
    beta = np.linalg.lstsq(design.to_numpy(), donors["y"].to_numpy(), rcond=None)[0][1]
    assert res.info["covariate_coefficients"]["u"] == pytest.approx(beta, abs=1e-10)
    by_hand = _sc(custom_v=[1] * 20).fit(
        df.assign(y=df["y"] - beta * df["u"]), inference="conformal"
    )
    pd.testing.assert_series_equal(res.weights, by_hand.weights, atol=1e-8)
    cols = ["estimate", "p_value", "conf_low", "conf_high"]
    pd.testing.assert_frame_equal(res.tidy()[cols], by_hand.tidy()[cols], atol=1e-8)
    # the path is on the outcome's own scale: observed outcome, gap unchanged
    treated = df[df["unit"] == 8].set_index("year")["y"]
    np.testing.assert_allclose(res.path["treated"], treated.to_numpy(), atol=1e-10)
    np.testing.assert_allclose(res.path["gap"], by_hand.path["gap"], atol=1e-8)
    # placebo runs use the residualised outcome too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceUnavailableWarning)
        placebo = est.fit(df, inference="placebo")
        placebo_hand = _sc(custom_v=[1] * 20).fit(
            df.assign(y=df["y"] - beta * df["u"]), inference="placebo"
        )
    np.testing.assert_allclose(placebo.placebos.gaps, placebo_hand.placebos.gaps, atol=1e-8)


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (
            None,
            {"covariates": "uu"},
            DesignError,
            "(?s)covariate 'uu' is not a column.*did you mean 'u'",
        ),
        (None, {"covariates": "y"}, DesignError, "outcome 'y' cannot be one of the covariates"),
        ("missing", {"covariates": "u"}, DataError, "covariate 'u' is missing for 1 unit-period"),
        ("constant", {"covariates": "u"}, EvalkitError, "no variation within units"),
    ],
)
def test_covariate_errors_name_the_problem(change, kwargs, error, match):
    df = shock_panel()
    if change == "missing":
        df.loc[5, "u"] = np.nan
    if change == "constant":
        df["u"] = df["unit"] * 1.0
    with pytest.raises(error, match=match):
        _sc(custom_v=[1] * 20, **kwargs).fit(df, inference="none")
