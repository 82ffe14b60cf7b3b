"""Behaviour of did.TWFE beyond the numbers: options, errors, warnings, choices."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit import EvalkitError
from evalkit.did import TWFE
from evalkit.errors import (
    DesignError,
    FewClustersWarning,
    InferenceNotSupportedError,
    NotEstimableError,
    RowsDroppedWarning,
)


def _bergen_like(seed=0, n_per_city=30, n_cities=10, n_periods=12):
    rng = np.random.default_rng(seed)
    n = n_per_city * n_cities
    unit = np.repeat(np.arange(n), n_periods)
    time = np.tile(np.arange(n_periods), n)
    city = unit % n_cities
    d = ((city == 0) & (time >= n_periods // 2)).astype(int)
    y = rng.normal(size=n)[unit] + rng.normal(size=n_cities)[city] + 0.2 * d
    y = y + rng.normal(size=len(unit))
    return pd.DataFrame({"person": unit, "month": time, "city": city, "d": d, "y": y})


EST = TWFE(outcome="y", treatment="d", unit="person", time="month", cluster="city")


def test_automatic_inference_with_one_treated_cluster_is_conformal_and_says_why():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        res = EST.fit(_bergen_like(), seed=1)
    assert res.inference.method == "conformal"
    assert res.inference.kind == "test_inversion"
    assert "1 treated" in res.inference.reason
    assert "conformal" in res.inference.reason
    assert res.info["n_treated_clusters"] == 1
    row = res.tidy().iloc[0]
    assert np.isnan(row["std_error"]) and 0 < row["p_value"] <= 1
    assert row["conf_low"] < row["estimate"] < row["conf_high"]
    assert res.uncertainty.granularity == pytest.approx(1 / 12)
    # the cluster-robust figure stays available on request
    with pytest.warns(FewClustersWarning):
        assert EST.fit(_bergen_like(), inference="cr2").inference.method == "cr2"


def test_one_treated_cluster_with_covariates_falls_back_to_wild():
    df = _bergen_like()
    df["x"] = np.random.default_rng(5).normal(size=len(df))
    est = TWFE(
        outcome="y", treatment="d", unit="person", time="month", cluster="city", covariates="x"
    )
    res = est.fit(df, seed=1)
    assert res.inference.method == "wild"
    assert res.inference.reps == 1024  # 2^10 sign vectors enumerated
    assert res.tidy()["p_value"].notna().all()  # the wild bootstrap tests every coefficient


def test_two_to_four_treated_clusters_use_the_wild_bootstrap():
    df = _bergen_like()
    df["d"] = ((df["city"] < 3) & (df["month"] >= 6)).astype(int)
    res = EST.fit(df, seed=2)
    assert res.inference.method == "wild"
    assert "3 treated" in res.inference.reason
    again = EST.fit(df, seed=2)
    pd.testing.assert_frame_equal(res.tidy(), again.tidy())
    narrow = res.tidy(level=0.8).iloc[0]
    wide = res.tidy().iloc[0]
    assert wide["conf_low"] < narrow["conf_low"] < narrow["conf_high"] < wide["conf_high"]


def test_cr2_with_enough_treated_clusters_does_not_warn():
    df = _bergen_like(n_cities=12)
    df["d"] = ((df["city"] < 6) & (df["month"] >= 6)).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        res = EST.fit(df)
    assert res.inference.method == "cr2"
    assert "descriptive" not in res.inference.reason


def test_requesting_cr1_with_one_treated_cluster_warns():
    with pytest.warns(FewClustersWarning, match="1 treated"):
        res = EST.fit(_bergen_like(), inference="cluster")
    assert res.inference.method == "cluster"
    # an explicit choice records its reason too, with the design's counts
    assert res.inference.reason.startswith("requested: inference=Cluster()")
    assert "1 treated and 9 untreated" in res.inference.reason


def test_many_clusters_default_to_cr1():
    df = _bergen_like(n_cities=40)
    df["d"] = ((df["city"] < 20) & (df["month"] >= 6)).astype(int)
    res = EST.fit(df)
    assert res.inference.method == "cluster"
    assert res._table["df"].iloc[0] == 39


def test_time_invariant_covariate_is_not_estimable_and_named():
    df = _bergen_like()
    df["female"] = df["person"] % 2
    with pytest.raises(NotEstimableError, match="female"):
        TWFE(outcome="y", treatment="d", unit="person", time="month", covariates=["female"]).fit(df)


def test_cr2_needs_units_nested_in_clusters():
    df = _bergen_like()
    df["region"] = df["month"] % 3  # varies within person
    est = TWFE(outcome="y", treatment="d", unit="person", time="month", cluster="region")
    with pytest.raises(InferenceNotSupportedError, match="region"):
        est.fit(df, inference="cr2")


def test_singletons_and_zero_weights_are_dropped_and_counted():
    df = _bergen_like()
    df["w"] = 1.0
    df.loc[df.index[:3], "w"] = 0.0
    lonely = pd.DataFrame(
        {"person": [9999], "month": [0], "city": [1], "d": [0], "y": [1.0], "w": [1.0]}
    )
    df = pd.concat([df, lonely], ignore_index=True)
    est = TWFE(outcome="y", treatment="d", unit="person", time="month", weights="w")
    with pytest.warns(RowsDroppedWarning, match="4 of"):
        res = est.fit(df, inference="hetero")
    assert res.info["dropped"] == {"with zero weight": 3, "singleton units or periods": 1}
    assert res.info["n_obs"] == len(df) - 4


def test_missing_outcome_rows_dropped_with_count():
    df = _bergen_like()
    df.loc[df.index[:5], "y"] = np.nan
    with pytest.warns(RowsDroppedWarning, match="dropped 5 of"):
        res = EST.fit(df, inference="iid")
    assert res.info["n_obs"] == len(df) - 5


def test_inference_none_gives_point_estimate_only():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = EST.fit(_bergen_like(), inference="none")
    assert np.isnan(res.tidy()["std_error"]).all()
    assert res.vcov is None


def test_unknown_inference_is_listed():
    with pytest.raises(InferenceNotSupportedError, match="cr2"):
        EST.fit(_bergen_like(), inference="jackknife")
    with pytest.raises(DesignError, match="cluster"):
        EST.fit(_bergen_like(), inference="clster")


@pytest.mark.parametrize("bad", [dict(outcome=3), dict(unit=""), dict(covariates=[None])])
def test_bad_options_are_named(bad):
    opts = dict(outcome="y", treatment="d", unit="person", time="month") | bad
    with pytest.raises(DesignError, match=next(iter(bad))):
        TWFE(**opts)


def test_set_params_returns_new_estimator():
    other = EST.set_params(cluster="person")
    assert other.cluster == "person" and EST.cluster == "city"
    with pytest.raises(DesignError, match="clustr"):
        EST.set_params(clustr="x")


def test_two_by_two_equals_difference_in_mean_changes():
    rng = np.random.default_rng(5)
    n = 40
    df = pd.DataFrame(
        {"id": np.repeat(np.arange(n), 2), "t": np.tile([0, 1], n), "y": rng.normal(size=2 * n)}
    )
    treated = df["id"] < 15
    df["d"] = (treated & (df["t"] == 1)).astype(int)
    res = TWFE(outcome="y", treatment="d", unit="id", time="t").fit(df, inference="iid")
    means = df.groupby([treated, df["t"]])["y"].mean()
    did = (means[True, 1] - means[True, 0]) - (means[False, 1] - means[False, 0])
    assert res.estimate("d") == pytest.approx(did, abs=1e-12)


def test_repeated_cross_section_with_group_effects():
    df = _bergen_like()
    df["cell"] = df["city"]
    est = TWFE(outcome="y", treatment="d", unit="city", time="month", panel=False)
    res = est.fit(df, inference="cr2")
    means = df.groupby(["city", "month"])["y"].mean().reset_index()
    means["d"] = ((means["city"] == 0) & (means["month"] >= 6)).astype(int)
    # balanced cells of equal size: the individual-level and the cell-mean regressions agree
    cell = TWFE(outcome="y", treatment="d", unit="city", time="month").fit(means, inference="iid")
    assert res.estimate() == pytest.approx(cell.estimate(), abs=1e-10)


def test_results_are_independent_of_row_order():
    df = _bergen_like()
    a = EST.fit(df, inference="cr2")
    b = EST.fit(df.sample(frac=1, random_state=3), inference="cr2")
    pd.testing.assert_frame_equal(a.tidy(), b.tidy(), rtol=1e-10)


def test_errors_are_evalkit_errors():
    with pytest.raises(EvalkitError):
        EST.fit("not a frame")  # type: ignore[arg-type]
