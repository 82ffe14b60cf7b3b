"""CallawaySantAnna: equivalences, influence functions, options, warnings and errors.

Also the multiplier bootstrap (evalkit.inference.multiplier) it relies on.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.core import registry
from evalkit.core.aggregation import AggregateResult, GroupTimeResult
from evalkit.did.callaway_santanna import CallawaySantAnna
from evalkit.errors import (
    DataError,
    DesignError,
    FewClustersWarning,
    InferenceNotSupportedError,
    NotEstimableError,
    RowsDroppedWarning,
    SmallCohortWarning,
    WeakOverlapWarning,
)
from evalkit.inference import Inference
from evalkit.inference.multiplier import (
    analytic_vcov,
    cluster_sums,
    multiplier_bootstrap,
)

ROLES = dict(outcome="y", unit="id", time="t", cohort="g")


def staggered(
    seed: int = 0,
    n_units: int = 90,
    periods: tuple[int, ...] = (1, 2, 3, 4, 5),
    cohorts: tuple[int, ...] = (0, 3, 4, 5),
    effect: float = 1.0,
) -> pd.DataFrame:
    """A balanced staggered panel with a covariate that shifts trends and selection."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n_units)
    probs = np.exp(np.outer(x, np.arange(len(cohorts)) * 0.4))
    probs /= probs.sum(axis=1, keepdims=True)
    g = np.array([rng.choice(cohorts, p=p) for p in probs])
    rows = []
    alpha = rng.normal(size=n_units)
    for t in periods:
        treated = (g > 0) & (t >= g)
        tau = effect * (1 + t - g) * treated
        y = alpha + 0.3 * t + 0.5 * x * t + tau + rng.normal(size=n_units)
        rows.append(pd.DataFrame({"id": np.arange(n_units), "t": t, "g": g, "x": x, "y": y}))
    return pd.concat(rows, ignore_index=True)


def quiet_fit(est: CallawaySantAnna, data: pd.DataFrame, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(data, **kwargs)


# ---------------------------------------------------------------------- equivalences
def test_two_periods_one_cohort_equals_2x2_did():
    rng = np.random.default_rng(1)
    n = 50
    g = np.where(np.arange(n) < 20, 2, 0)
    y1 = rng.normal(size=n)
    y2 = y1 + rng.normal(size=n) + (g == 2) * 0.7
    df = pd.DataFrame(
        {"id": np.tile(np.arange(n), 2), "t": np.repeat([1, 2], n), "g": np.tile(g, 2)}
    )
    df["y"] = np.concatenate([y1, y2])
    dy = y2 - y1
    expected = dy[g == 2].mean() - dy[g == 0].mean()
    for method in ("dr", "ipw", "reg"):
        for control in ("never_treated", "not_yet_treated"):
            res = CallawaySantAnna(**ROLES, method=method, control_group=control).fit(df)
            assert len(res.tidy()) == 1
            assert res.estimate("ATT(g,t)", cohort=2, time=2) == pytest.approx(expected, abs=1e-12)
            assert res.aggregate("overall").estimate("ATT") == pytest.approx(expected, abs=1e-12)
    # the same number as the 2x2 two-way fixed effects regression
    try:
        from evalkit.did.twfe import TWFE
    except ImportError:  # pragma: no cover - TWFE is built elsewhere
        return
    df["d"] = ((df["g"] > 0) & (df["t"] >= df["g"])).astype(int)
    twfe = TWFE(outcome="y", treatment="d", unit="id", time="t").fit(df)
    assert twfe.estimate("d") == pytest.approx(expected, abs=1e-10)


def slow_att_gt(df: pd.DataFrame, control: str, base_period: str, anticipation: int) -> dict:
    """ATT(g,t) without covariates by explicit loops (Callaway & Sant'Anna 2021, eq. 2.x)."""
    times = sorted(df["t"].unique())
    cohorts = sorted(g for g in df["g"].unique() if g > 0 and g - anticipation > times[0])
    wide = df.pivot(index="id", columns="t", values="y")
    unit_g = df.groupby("id")["g"].first()
    out = {}
    for g in cohorts:
        last_pre = max(s for s in times if s + anticipation < g)
        for i, t in enumerate(times):
            if base_period == "varying":
                if i == 0:
                    continue
                base = last_pre if g <= t else times[i - 1]
                comp_time = t
            else:
                base = last_pre
                comp_time = max(t, last_pre)
                if t == base:
                    out[(g, t)] = 0.0
                    continue
            treated = [u for u in wide.index if unit_g[u] == g]
            if control == "never_treated":
                ctrl = [u for u in wide.index if unit_g[u] == 0]
            else:
                ctrl = [
                    u
                    for u in wide.index
                    if unit_g[u] == 0 or (unit_g[u] > comp_time + anticipation and unit_g[u] != g)
                ]
            change_t = np.mean([wide.loc[u, t] - wide.loc[u, base] for u in treated])
            change_c = np.mean([wide.loc[u, t] - wide.loc[u, base] for u in ctrl])
            out[(g, t)] = change_t - change_c
    return out


@pytest.mark.parametrize("control", ["never_treated", "not_yet_treated"])
@pytest.mark.parametrize("base_period", ["varying", "universal"])
@pytest.mark.parametrize("anticipation", [0, 1])
def test_fast_path_equals_slow_loop(control, base_period, anticipation):
    df = staggered(seed=2, n_units=60, periods=(1, 2, 3, 4, 5, 6), cohorts=(0, 3, 4, 6))
    expected = slow_att_gt(df, control, base_period, anticipation)
    res = quiet_fit(
        CallawaySantAnna(
            **ROLES, control_group=control, base_period=base_period, anticipation=anticipation
        ),
        df,
    )
    tidy = res.tidy()
    got = {(int(r.cohort), int(r.time)): r.estimate for r in tidy.itertuples()}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def numeric_se(est, df, statistic, h=1e-6):
    """Standard errors from influence functions obtained by differentiating the estimator.

    Each unit's weight is perturbed in turn; ``n * d(statistic) / d log(w_i)`` is the
    empirical influence function, and ``sqrt(sum psi^2) / n`` the standard error.
    """
    units = df["id"].unique()
    n = len(units)
    base = statistic(quiet_fit(est, df.assign(w=1.0)))
    psi = np.zeros((n, len(base)))
    for k, u in enumerate(units):
        up = df.assign(w=np.where(df["id"] == u, 1 + h, 1.0))
        down = df.assign(w=np.where(df["id"] == u, 1 - h, 1.0))
        psi[k] = n * (statistic(quiet_fit(est, up)) - statistic(quiet_fit(est, down))) / (2 * h)
    return base, np.sqrt((psi**2).sum(axis=0)) / n


@pytest.mark.parametrize("control", ["never_treated", "not_yet_treated"])
def test_every_standard_error_matches_the_differentiated_estimator(control):
    # checks the 2x2 influence functions, their rescaling, and the influence of the
    # estimated cohort shares in every aggregation (did's get_agg_inf_func / wif)
    df = staggered(seed=3, n_units=36)
    est = CallawaySantAnna(**ROLES, covariates=["x"], weights="w", control_group=control)

    def statistic(res):
        parts = [res.tidy()["estimate"].to_numpy()]
        for kind in ("overall", "event_time", "cohort", "calendar"):
            parts.append(res.aggregate(kind).tidy()["estimate"].to_numpy())
        parts.append(res.aggregate("event_time", balance_e=1).tidy()["estimate"].to_numpy())
        return np.concatenate(parts)

    def analytic(res):
        parts = [res.tidy()["std_error"].to_numpy()]
        for kind in ("overall", "event_time", "cohort", "calendar"):
            parts.append(res.aggregate(kind).tidy()["std_error"].to_numpy())
        parts.append(res.aggregate("event_time", balance_e=1).tidy()["std_error"].to_numpy())
        return np.concatenate(parts)

    _, se_numeric = numeric_se(est, df, statistic)
    se = analytic(quiet_fit(est, df.assign(w=1.0)))
    np.testing.assert_allclose(se, se_numeric, rtol=1e-5)


def test_unbalanced_panel_influence_matches_differentiated_estimator():
    df = staggered(seed=4, n_units=40)
    df = df.drop(index=df.index[(df["id"] % 7 == 0) & (df["t"] == 2)])
    est = CallawaySantAnna(**ROLES, weights="w", allow_unbalanced=True)

    def statistic(res):
        return np.concatenate(
            [res.tidy()["estimate"].to_numpy(), res.aggregate("event_time").tidy()["estimate"]]
        )

    _, se_numeric = numeric_se(est, df, statistic)
    res = quiet_fit(est, df.assign(w=1.0))
    se = np.concatenate(
        [res.tidy()["std_error"].to_numpy(), res.aggregate("event_time").tidy()["std_error"]]
    )
    np.testing.assert_allclose(se, se_numeric, rtol=1e-5)
    assert res.info["data_structure"] == "unbalanced_panel"


def test_repeated_cross_sections_rows_are_sampling_units():
    df = staggered(seed=5, n_units=80)
    df["obs"] = np.arange(len(df))
    rc = CallawaySantAnna(outcome="y", time="t", cohort="g", panel=False, method="reg")
    res = rc.fit(df)
    assert res.info["data_structure"] == "repeated_cross_section"
    assert res.inference.n_clusters == len(df)
    # giving a group column as unit clusters the rows of a group together
    grouped = CallawaySantAnna(outcome="y", unit="id", time="t", cohort="g", panel=False)
    res2 = quiet_fit(grouped, df)
    assert res2.inference.cluster == "id" and res2.inference.n_clusters == df["id"].nunique()


# ---------------------------------------------------------------------- inference
def test_default_inference_is_analytic_clustered_by_unit_and_says_why():
    df = staggered()
    res = CallawaySantAnna(**ROLES).fit(df)
    assert isinstance(res, GroupTimeResult)
    assert res.inference.method == "cluster"
    assert res.inference.cluster == "id" and res.inference.n_clusters == 90
    assert res.inference.reason and "default" in res.inference.reason
    psi = res._gt.influence
    se = np.sqrt((psi**2).sum(axis=0)) / psi.shape[0]
    np.testing.assert_allclose(res.tidy()["std_error"], se, rtol=1e-12)


def test_cluster_column_sums_influence_within_clusters():
    df = staggered()
    df["city"] = df["id"] // 3
    res = CallawaySantAnna(**ROLES, cluster="city").fit(df)
    psi = res._gt.influence
    city = df.groupby("id")["city"].first().to_numpy()
    sums = np.vstack([psi[city == c].sum(axis=0) for c in np.unique(city)])
    np.testing.assert_allclose(
        res.tidy()["std_error"], np.sqrt((sums**2).sum(axis=0)) / psi.shape[0], rtol=1e-12
    )
    assert res.inference.n_clusters == 30
    # Inference(cluster=...) overrides the constructor's cluster
    res2 = CallawaySantAnna(**ROLES).fit(df, inference=Inference("cluster", cluster="city"))
    pd.testing.assert_frame_equal(res.tidy(), res2.tidy())


def test_few_clusters_warn():
    df = staggered()
    df["region"] = df["id"] % 6
    with pytest.warns(FewClustersWarning, match="6 clusters"):
        CallawaySantAnna(**ROLES, cluster="region").fit(df)


def test_cluster_must_nest_units():
    df = staggered()
    df["bad"] = np.arange(len(df)) % 4
    with pytest.raises(DataError, match="bad"):
        CallawaySantAnna(**ROLES, cluster="bad").fit(df)


def test_bootstrap_is_reproducible_and_close_to_analytic():
    df = staggered(n_units=300)
    est = CallawaySantAnna(**ROLES)
    a = est.fit(df, inference="bootstrap", seed=11)
    b = est.fit(df, inference="bootstrap", seed=11)
    c = est.fit(df, inference="bootstrap", seed=12)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    assert a.to_dict() == b.to_dict()
    assert not np.allclose(a.tidy()["std_error"], c.tidy()["std_error"])
    analytic = est.fit(df).tidy()["std_error"].to_numpy()
    ratio = a.tidy()["std_error"].to_numpy() / analytic
    assert np.all(np.abs(ratio - 1) < 0.2)
    assert a.inference.reps == 999 and "bootstrap" in a.inference.description
    # aggregations reuse the fit's seed: identical on repetition
    pd.testing.assert_frame_equal(
        a.aggregate("event_time").tidy(), b.aggregate("event_time").tidy()
    )
    # reps and weights are honoured
    m = est.fit(df, inference=Inference("bootstrap", options={"weights": "mammen"}), reps=199)
    assert m.inference.reps == 199 and "mammen" in m.inference.description


def test_uniform_bands_are_wider_than_pointwise_and_rescale_with_level():
    df = staggered(n_units=200)
    est = CallawaySantAnna(**ROLES)
    res = est.fit(df, inference="bootstrap", seed=5)
    point = res.aggregate("event_time")
    band = res.aggregate("event_time", uniform=True)
    keyed = band.tidy()["term"] == "ATT(e)"
    width_p = (point.tidy()["conf_high"] - point.tidy()["conf_low"])[keyed]
    width_b = (band.tidy()["conf_high"] - band.tidy()["conf_low"])[keyed]
    assert (width_b > width_p).all()
    # the summary row keeps a pointwise interval
    avg_b = band.tidy().loc[~keyed]
    avg_p = point.tidy().loc[~keyed]
    np.testing.assert_allclose(avg_b["conf_low"], avg_p["conf_low"])
    # a lower level gives a narrower band, still wider than pointwise at that level
    b90 = band.tidy(level=0.9)[keyed]
    p90 = point.tidy(level=0.9)[keyed]
    assert ((b90["conf_high"] - b90["conf_low"]) < width_b).all()
    assert ((b90["conf_high"] - b90["conf_low"]) > (p90["conf_high"] - p90["conf_low"])).all()
    assert "simultaneous" in band.inference.description
    # bands at fit time (analytic standard errors, bootstrap critical value)
    fit_band = est.fit(df, inference=Inference("cluster", options={"uniform": True}), seed=5)
    analytic = est.fit(df)
    np.testing.assert_allclose(fit_band.tidy()["std_error"], analytic.tidy()["std_error"])
    assert (
        (fit_band.tidy()["conf_high"] - fit_band.tidy()["conf_low"])
        > (analytic.tidy()["conf_high"] - analytic.tidy()["conf_low"])
    ).all()


def test_inference_none_gives_point_estimates():
    df = staggered()
    res = CallawaySantAnna(**ROLES).fit(df, inference="none")
    assert res.inference.method == "none"
    assert res.tidy()["std_error"].isna().all()
    assert np.isfinite(res.aggregate("overall").estimate("ATT"))
    with pytest.raises(DesignError, match="inference"):
        res.pretest()


def test_unsupported_inference_and_options_are_named():
    df = staggered()
    est = CallawaySantAnna(**ROLES)
    with pytest.raises(InferenceNotSupportedError, match="bootstrap"):
        est.fit(df, inference="wild")
    with pytest.raises(DesignError, match="tails"):
        est.fit(df, inference=Inference("bootstrap", options={"tails": 2}))
    with pytest.raises(DesignError, match="webb"):
        est.fit(df, inference=Inference("bootstrap", options={"weights": "webb"}))


# ---------------------------------------------------------------------- aggregation
def test_aggregations_have_keys_and_average_rows():
    df = staggered()
    res = CallawaySantAnna(**ROLES).fit(df)
    es = res.aggregate("event_time")
    assert isinstance(es, AggregateResult)
    tidy = es.tidy()
    assert list(tidy["term"]) == ["ATT(e)"] * (len(tidy) - 1) + ["average"]
    assert tidy["event_time"].iloc[:-1].tolist() == [-3, -2, -1, 0, 1, 2]
    assert es.estimate("average") == pytest.approx(
        tidy.loc[tidy["event_time"].isin([0, 1, 2]), "estimate"].mean()
    )
    assert res.aggregate("cohort").tidy()["cohort"].iloc[:-1].tolist() == [3, 4, 5]
    assert res.aggregate("calendar").tidy()["time"].iloc[:-1].tolist() == [3, 4, 5]
    overall = res.aggregate("overall").tidy()
    assert overall["term"].tolist() == ["ATT"]
    json.dumps(es.to_dict(), allow_nan=False)


def test_event_time_window_and_balancing():
    df = staggered()
    res = CallawaySantAnna(**ROLES).fit(df)
    win = res.aggregate("event_time", min_e=-1, max_e=1).tidy()
    assert win["event_time"].iloc[:-1].tolist() == [-1, 0, 1]
    full = res.aggregate("event_time").tidy().set_index("event_time")
    assert win.set_index("event_time").loc[1, "estimate"] == pytest.approx(full.loc[1, "estimate"])
    # balance_e=1: only cohorts seen at least one period after treatment (3 and 4, not 5),
    # event times from 1 - (5 - 1) = -3 to 1
    bal = res.aggregate("event_time", balance_e=1).tidy()
    assert bal["event_time"].iloc[:-1].tolist() == [-2, -1, 0, 1]
    gt = res.tidy()
    e0 = gt[(gt["time"] == gt["cohort"]) & gt["cohort"].isin([3, 4])]
    shares = df[df["t"] == 1].groupby("g").size()
    expected = np.average(e0["estimate"], weights=shares.loc[e0["cohort"]].to_numpy())
    assert bal.set_index("event_time").loc[0, "estimate"] == pytest.approx(expected)


def test_aggregate_rejects_bad_requests():
    res = CallawaySantAnna(**ROLES).fit(staggered())
    with pytest.raises(DesignError, match="event_time"):
        res.aggregate("event")
    with pytest.raises(DesignError, match="min_e"):
        res.aggregate("cohort", min_e=0)
    with pytest.raises(DesignError, match="balance_e"):
        res.aggregate("event_time", balance_e=-1)
    with pytest.raises(NotEstimableError, match="window"):
        res.aggregate("event_time", min_e=10)


def test_pretest_is_a_wald_test_of_pre_treatment_cells():
    df = staggered()
    res = CallawaySantAnna(**ROLES).fit(df)
    test = res.pretest()
    gt = res.tidy()
    pre = gt[gt["time"] < gt["cohort"]]
    assert test.n_estimates == len(pre) == test.df
    v = res.vcov.to_numpy()[np.ix_(pre.index, pre.index)]
    a = pre["estimate"].to_numpy()
    assert test.statistic == pytest.approx(float(a @ np.linalg.solve(v, a)), rel=1e-8)
    assert 0 <= test.p_value <= 1


def test_universal_base_period_has_zero_reference_cells():
    df = staggered()
    res = CallawaySantAnna(**ROLES, base_period="universal").fit(df)
    tidy = res.tidy()
    ref = tidy[tidy["time"] == tidy["cohort"] - 1]
    assert len(ref) == 3
    assert (ref["estimate"] == 0).all() and (ref["std_error"] == 0).all()
    assert res.info["reference_cells"] == 3
    es = res.aggregate("event_time").tidy().set_index("event_time")
    assert es.loc[-1, "estimate"] == 0 and es.loc[-1, "std_error"] == 0


def test_plot_of_event_time_aggregation():
    import matplotlib.pyplot as plt

    res = CallawaySantAnna(**ROLES).fit(staggered())
    ax = res.aggregate("event_time").plot()
    assert ax.get_xlabel().startswith("Event time")
    plt.close("all")


# ---------------------------------------------------------------------- data handling
def test_unbalanced_panel_drops_units_with_a_counted_warning():
    df = staggered()
    df = df.drop(index=df.index[(df["id"] < 4) & (df["t"] == 2)])
    with pytest.warns(RowsDroppedWarning, match=r"dropped 16 rows of 4 of 90 units"):
        res = CallawaySantAnna(**ROLES).fit(df)
    assert res.info["n_units"] == 86
    assert res.info["dropped"]["rows of units not observed in every period"] == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error", RowsDroppedWarning)
        kept = CallawaySantAnna(**ROLES, allow_unbalanced=True).fit(df)
    assert kept.info["n_units"] == 90 and kept.info["n_obs"] == len(df)


def test_small_cohort_warns_naming_it():
    df = staggered()
    df.loc[df["id"].isin([0, 1, 2]), "g"] = 2
    with pytest.warns(SmallCohortWarning, match=r"cohort\(s\) 2 of 'g'"):
        CallawaySantAnna(**ROLES).fit(df)


def test_weak_overlap_warns():
    rng = np.random.default_rng(7)
    n = 200
    treated = np.arange(n) < 60
    x = np.where(treated, rng.normal(2.0, 1.0, n), rng.normal(-1.0, 1.0, n))
    x[60:63] = 9.0  # three never-treated units deep in the treated region
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 3),
            "t": np.tile([1, 2, 3], n),
            "g": np.repeat(np.where(treated, 3, 0), 3),
            "x": np.repeat(x, 3),
        }
    )
    df["y"] = rng.normal(size=len(df))
    with pytest.warns(WeakOverlapWarning, match="trim_level"):
        res = CallawaySantAnna(**ROLES, covariates=["x"], method="ipw").fit(df)
    assert res.info["n_trimmed"] > 0


def test_units_treated_in_first_period_are_dropped_and_counted():
    df = staggered()
    df.loc[df["id"] < 5, "g"] = 1
    with pytest.warns(RowsDroppedWarning, match="dropped 5 units"):
        res = CallawaySantAnna(**ROLES).fit(df)
    assert res.info["n_units"] == 85


def test_cohorts_after_the_sample_count_as_never_treated():
    df = staggered()
    df.loc[df["g"] == 0, "g"] = 9
    res = CallawaySantAnna(**ROLES).fit(df)
    assert res.info["cohorts"] == [3, 4, 5]
    assert res.info["recoded_never_treated"] > 0


def test_no_never_treated_uses_last_cohort_as_comparison():
    df = staggered()
    df = df[df["g"] != 0]
    with pytest.warns(RowsDroppedWarning, match="no never-treated"):
        res = CallawaySantAnna(**ROLES, control_group="not_yet_treated").fit(df)
    assert res.info["cohorts"] == [3, 4]
    assert res.tidy()["time"].max() == 4


def test_cell_without_comparison_units_raises_naming_the_cohort():
    df = staggered(n_units=60)
    df = df[df["t"] <= 4]
    df = df.assign(obs=np.arange(len(df)))
    # repeated cross-section where cohort 4 has no rows in period 1
    df = df[~((df["g"] == 4) & (df["t"] == 1))]
    rc = CallawaySantAnna(outcome="y", time="t", cohort="g", panel=False)
    with pytest.raises(NotEstimableError, match=r"cohort 4 in period 2"):
        quiet_fit(rc, df)


def test_missing_outcomes_are_dropped_and_counted():
    df = staggered()
    df.loc[[0, 1], "y"] = np.nan
    with pytest.warns(RowsDroppedWarning):
        res = CallawaySantAnna(**ROLES).fit(df)
    assert res.info["dropped"]["missing outcome (y)"] == 2


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"control_group": "notyettreated"}, "not_yet_treated"),
        ({"control_group": "all"}, "control_group"),
        ({"method": "ols"}, "method"),
        ({"base_period": "fixed"}, "base_period"),
        ({"anticipation": -1}, "anticipation"),
        ({"anticipation": True}, "anticipation"),
        ({"unit": None}, "unit"),
        ({"trim_level": 0.2}, "trim_level"),
        ({"covariates": [1]}, "covariates"),
        ({"panel": "yes"}, "panel"),
    ],
)
def test_bad_options_raise_design_errors(options, match):
    with pytest.raises(DesignError, match=match):
        CallawaySantAnna(**{**ROLES, **options})


def test_bad_data_raise_named_errors():
    df = staggered()
    with pytest.raises(DataError, match="'t'"):
        CallawaySantAnna(**ROLES).fit(df.assign(t=pd.to_datetime(df["t"], unit="D")))
    with pytest.raises(DataError, match="'g'"):
        CallawaySantAnna(**ROLES).fit(df.assign(g=-df["g"]))
    with pytest.raises(DataError, match="'g'"):
        CallawaySantAnna(**ROLES).fit(df.assign(g=0))
    varying = df.assign(w=np.arange(len(df), dtype=float) + 1)
    with pytest.raises(DataError, match="'w'"):
        CallawaySantAnna(**ROLES, weights="w").fit(varying)
    with pytest.raises(DataError, match="covariate_typo"):
        CallawaySantAnna(**ROLES, covariates=["covariate_typo"]).fit(df)
    with pytest.raises(NotEstimableError, match="never-treated"):
        # balancing the panel removes every never-treated unit
        gappy = df[~((df["g"] == 0) & (df["t"] == 2))]
        quiet_fit(CallawaySantAnna(**ROLES, control_group="never_treated"), gappy)


def test_registered_and_immutable():
    assert registry.get("did.CallawaySantAnna") is CallawaySantAnna
    est = CallawaySantAnna(**ROLES, covariates="x")
    assert est.covariates == ("x",)
    changed = est.set_params(method="ipw")
    assert changed.method == "ipw" and est.method == "dr"


def test_caller_frame_untouched_and_panel_input_accepted():
    from evalkit.data.panel import Panel

    df = staggered()
    before = df.copy(deep=True)
    res = CallawaySantAnna(**ROLES, covariates=["x"]).fit(df)
    pd.testing.assert_frame_equal(df, before)
    panel = Panel(df, outcome="y", unit="id", time="t", cohort="g", covariates=["x"])
    res2 = CallawaySantAnna(**ROLES, covariates=["x"]).fit(panel)
    pd.testing.assert_frame_equal(res.tidy(), res2.tidy())


# ---------------------------------------------------------------------- multiplier bootstrap
def test_cluster_sums_and_analytic_vcov():
    psi = np.arange(12, dtype=float).reshape(6, 2)
    codes = np.array([0, 0, 1, 1, 2, 2])
    sums = cluster_sums(psi, codes)
    np.testing.assert_allclose(sums, [[2, 4], [10, 12], [18, 20]])
    np.testing.assert_allclose(analytic_vcov(psi, codes), sums.T @ sums / 36)
    with pytest.raises(DesignError, match="cluster"):
        cluster_sums(psi, codes[:-1])


def test_multiplier_weights_have_unit_variance_and_reproduce():
    rng = np.random.default_rng(0)
    psi = rng.normal(size=(500, 3))
    for kind in ("rademacher", "mammen"):
        a = multiplier_bootstrap(psi, reps=4000, weights=kind, seed=3)
        b = multiplier_bootstrap(psi, reps=4000, weights=kind, seed=3)
        np.testing.assert_array_equal(a.draws, b.draws)
        analytic = np.sqrt((psi**2).sum(axis=0)) / 500
        np.testing.assert_allclose(a.std_error, analytic, rtol=0.06)
        np.testing.assert_allclose(np.sqrt(np.diag(a.vcov)), analytic, rtol=0.06)
        assert a.critical_value(0.95) > a.critical_value(0.95, uniform=False)
    with pytest.raises(DesignError, match="weights"):
        multiplier_bootstrap(psi, weights="normal")


def test_multiplier_clusters_draw_one_weight_per_cluster():
    psi = np.array([[1.0], [-1.0], [2.0], [-2.0]])
    # within-cluster sums are zero: every draw is exactly zero
    boot = multiplier_bootstrap(psi, cluster=np.array([0, 0, 1, 1]), reps=50, seed=1)
    assert np.all(boot.draws == 0)
    assert boot.std_error[0] == 0
    assert boot.n_clusters == 2


def test_sup_t_band_covers_jointly():
    # k independent statistics: the sup-t critical value approaches the Sidak value
    rng = np.random.default_rng(4)
    psi = rng.normal(size=(2000, 5))
    boot = multiplier_bootstrap(psi, reps=4000, seed=9)
    sidak = float(__import__("scipy").stats.norm.ppf(1 - (1 - 0.95 ** (1 / 5)) / 2))
    assert boot.critical_value(0.95) == pytest.approx(sidak, rel=0.05)
