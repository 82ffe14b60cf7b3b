"""evalkit.dml equals DoubleML called directly with the same learners, folds and seed.

The fast tests use linear learners or small forests on the 401(k) data (9,915 rows);
the full random forests of the published reference are in
tests/reference/test_dml_401k_reference.py (slow).
"""

from __future__ import annotations

import warnings

import doubleml
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

import evalkit
from evalkit.dml import IRM, PLR, fold_splits, seeded

X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]


@pytest.fixture(scope="module")
def sipp():
    return evalkit.datasets.load("sipp1991")


def _direct(cls, df, learners, seed, n_folds=5, n_rep=1, clusters=None, **kwargs):
    data = doubleml.DoubleMLData(
        df, y_col="net_tfa", d_cols="e401", x_cols=X, cluster_cols=clusters
    )
    seeded_learners = {k: seeded(v, seed) for k, v in learners.items()}
    obj = cls(
        data, n_folds=n_folds, n_rep=n_rep, draw_sample_splitting=False, **seeded_learners, **kwargs
    )
    labels = None
    if clusters:
        labels = [df[c].to_numpy() for c in clusters]
    smpls, smpls_cluster = fold_splits(len(df), n_folds, n_rep, seed, labels)
    if smpls_cluster is None:
        obj.set_sample_splitting(smpls)
    else:
        obj.set_sample_splitting(smpls, smpls_cluster)
    obj.fit()
    return obj


def test_plr_equals_doubleml_with_small_forests(sipp):
    rf = RandomForestRegressor(n_estimators=20, max_depth=5, min_samples_leaf=5)
    rfc = RandomForestClassifier(n_estimators=20, max_depth=5, min_samples_leaf=5)
    est = PLR(
        outcome="net_tfa",
        treatment="e401",
        covariates=X,
        learners={"ml_l": rf, "ml_m": rfc},
        n_folds=3,
    )
    res = est.fit(sipp, seed=11)
    direct = _direct(doubleml.DoubleMLPLR, sipp, {"ml_l": rf, "ml_m": rfc}, 11, n_folds=3)
    assert res.estimate() == pytest.approx(float(direct.coef[0]), rel=1e-12, abs=1e-12)
    assert res.std_error() == pytest.approx(float(direct.se[0]), rel=1e-12)
    # the learners were seeded: a second fit is identical
    assert est.fit(sipp, seed=11).estimate() == res.estimate()
    assert est.fit(sipp, seed=12).estimate() != res.estimate()


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_irm_equals_doubleml_with_linear_learners(sipp, estimand):
    est = IRM(
        outcome="net_tfa",
        treatment="e401",
        covariates=X,
        learner="logit",
        estimand=estimand,
        n_rep=2,
    )
    res = est.fit(sipp, seed=5)
    learners = {"ml_g": est_learner("regressor"), "ml_m": est_learner("classifier")}
    direct = _direct(
        doubleml.DoubleMLIRM,
        sipp,
        learners,
        5,
        n_rep=2,
        score="ATE" if estimand == "ate" else "ATTE",
    )
    assert res.estimate() == pytest.approx(float(direct.coef[0]), rel=1e-12)
    assert res.std_error() == pytest.approx(float(direct.se[0]), rel=1e-12)


def est_learner(kind):
    from evalkit.dml.learners import make_preset

    return make_preset("logit", kind)


def test_one_way_cluster_equals_doubleml_and_bootstrap_works_where_doubleml_stops(sipp):
    df = sipp.assign(region=np.arange(len(sipp)) % 40)
    learners = {"ml_l": est_learner("regressor"), "ml_m": est_learner("classifier")}
    est = PLR(
        outcome="net_tfa", treatment="e401", covariates=X, learners=learners, cluster="region"
    )
    res = est.fit(df, seed=2)
    direct = _direct(doubleml.DoubleMLPLR, df, learners, 2, clusters=["region"])
    assert res.estimate() == pytest.approx(float(direct.coef[0]), rel=1e-12)
    assert res.std_error() == pytest.approx(float(direct.se[0]), rel=1e-12)
    assert res.inference.method == "cluster" and res.inference.n_clusters == 40
    with pytest.raises(NotImplementedError):
        direct.bootstrap()  # DoubleML: no bootstrap with clustered data
    boot = est.fit(df, seed=2, inference="bootstrap", reps=499)
    assert boot.inference.kind == "draws"
    assert "40 clusters" in boot.inference.description
    # the cluster multiplier bootstrap agrees with the analytic cluster-robust SE
    assert boot.std_error() == pytest.approx(res.std_error(), rel=0.15)


def test_gate_equals_doubleml_gate_and_blp_equals_cate(sipp):
    import pandas as pd

    est = IRM(outcome="net_tfa", treatment="e401", covariates=X, learner="logit")
    df = sipp.assign(quintile=pd.qcut(sipp["inc"], 5, labels=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.fit(df, seed=3, by="quintile")
        full = est.fit(df, seed=3)
    groups = pd.get_dummies(df["quintile"]).astype(bool)
    gate = full.model.gate(groups=groups)
    tidy = res.tidy()
    ours = tidy[~tidy["subgroup"].str.contains(" - ")].reset_index(drop=True)
    np.testing.assert_allclose(ours["estimate"], np.asarray(gate.coef), rtol=1e-10)
    np.testing.assert_allclose(ours["std_error"], np.asarray(gate.se), rtol=1e-10)
    assert res.info["equality_tests"][0]["df"] == 4
    blp = full.blp(["inc", "age"])
    cate = full.model.cate(
        pd.concat(
            [pd.Series(1.0, index=df.index, name="const"), df[["inc", "age"]]], axis=1
        ).reset_index(drop=True)
    )
    np.testing.assert_allclose(blp.tidy()["estimate"], np.asarray(cate.coef), rtol=1e-12)
    np.testing.assert_allclose(blp.tidy()["std_error"], np.asarray(cate.se), rtol=1e-12)


def test_sensitivity_matches_doubleml(sipp):
    import matplotlib.pyplot as plt

    est = PLR(outcome="net_tfa", treatment="e401", covariates=X, learner="logit")
    res = est.fit(sipp, seed=4)
    sens = res.sensitivity(cf_y=0.04, cf_d=0.03, benchmarks=["inc"])
    model = res.model
    model.sensitivity_analysis(cf_y=0.04, cf_d=0.03)
    params = model.sensitivity_params
    row = sens.table.iloc[0]
    assert row["theta_lower"] == pytest.approx(float(params["theta"]["lower"][0]), rel=1e-12)
    assert row["ci_upper"] == pytest.approx(float(params["ci"]["upper"][0]), rel=1e-12)
    assert row["rv"] == pytest.approx(float(params["rv"][0]), rel=1e-9)
    assert sens.benchmarks["benchmark"].tolist() == ["inc"]
    assert 0 < sens.benchmarks["cf_y"].iloc[0] < 1
    # the scenario's bound from the contour function equals DoubleML's lower bound
    assert float(sens.bounds(np.array(0.04), np.array(0.03))) == pytest.approx(row["theta_lower"])
    ax = sens.plot(grid_size=15)
    assert ax.has_data()
    plt.close("all")
    # the stored model is untouched by the analysis
    assert res.model.sensitivity_params is None
