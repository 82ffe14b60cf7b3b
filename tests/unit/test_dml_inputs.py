"""Bad inputs, diagnostics and learner presets of evalkit.dml (small simulated data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor

from evalkit import EvalkitError
from evalkit.dml import DID, IIVM, IRM, PLIV, PLR
from evalkit.dml.diagnostics import ConstantLearnerWarning
from evalkit.dml.learners import make_preset, seeded
from evalkit.errors import RowsDroppedWarning, WeakOverlapWarning


def sample(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    z = (rng.random(n) < 0.5).astype(int)
    d = ((0.8 * z + 0.5 * x1 + rng.normal(size=n)) > 0.4).astype(int)
    y = d + x1 + rng.normal(size=n)
    return pd.DataFrame(
        {"y": y, "d": d, "z": z, "x1": x1, "x2": x2, "dose": x1 + rng.normal(size=n)}
    )


FAST = dict(covariates=["x1", "x2"], learner="logit", n_folds=2)


def test_constant_treatment_is_named():
    df = sample().assign(d=1)
    with pytest.raises(EvalkitError, match="'d' is constant"):
        PLR(outcome="y", treatment="d", **FAST).fit(df, seed=1)


def test_irm_needs_binary_treatment():
    with pytest.raises(EvalkitError, match="'dose' must be binary"):
        IRM(outcome="y", treatment="dose", **FAST).fit(sample(), seed=1)


def test_nan_covariates_are_dropped_and_counted():
    df = sample()
    df.loc[[3, 7, 11], "x2"] = np.nan
    with pytest.warns(RowsDroppedWarning, match=r"dropped 3 of 300 rows .* x2 \(3\)"):
        res = PLR(outcome="y", treatment="d", **FAST).fit(df, seed=1)
    assert res.info["n_obs"] == 297 and res.info["dropped"] == 3
    assert df["x2"].isna().sum() == 3  # caller's frame untouched


def test_instrument_equal_to_treatment_is_named():
    df = sample()
    df["z"] = df["d"]
    for cls in (IIVM, PLIV):
        with pytest.raises(EvalkitError, match="instrument column 'z' equals the treatment"):
            cls(outcome="y", treatment="d", instrument="z", **FAST).fit(df, seed=1)


def test_iivm_needs_binary_instrument_and_instrument_is_a_role():
    from evalkit.data import ROLES

    assert "instrument" in ROLES
    df = sample().assign(zc=lambda f: f["z"] + 0.5 * f["x1"])
    with pytest.raises(EvalkitError, match="instrument column 'zc' must be binary"):
        IIVM(outcome="y", treatment="d", instrument="zc", **FAST).fit(df, seed=1)


def test_options_are_checked():
    with pytest.raises(EvalkitError, match="covariates"):
        PLR(outcome="y", treatment="d")
    with pytest.raises(EvalkitError, match="estimand"):
        IRM(outcome="y", treatment="d", estimand="atu", covariates=["x1"])
    with pytest.raises(EvalkitError, match="n_folds"):
        PLR(outcome="y", treatment="d", covariates=["x1"], n_folds=1)
    with pytest.raises(EvalkitError, match="unknown learner preset 'xgb'"):
        PLR(outcome="y", treatment="d", covariates=["x1"], learner="xgb").fit(sample(), seed=1)
    with pytest.raises(EvalkitError, match="unknown nuisance"):
        PLR(outcome="y", treatment="d", covariates=["x1"], learners={"ml_q": "rf"}).fit(sample())
    with pytest.raises(EvalkitError, match="must be a classifier"):
        IRM(outcome="y", treatment="d", covariates=["x1"], learners={"ml_m": DummyRegressor()}).fit(
            sample()
        )
    with pytest.raises(EvalkitError, match="exactly two values"):
        DID(outcome="y", treatment="d", unit="x1", time="x2", covariates=["dose"]).fit(sample())


def test_constant_learner_warns_and_diagnostics_report_fit():
    est = PLR(
        outcome="y",
        treatment="dose",
        covariates=["x1", "x2"],
        learners={"ml_l": DummyRegressor(), "ml_m": "logit"},
        n_folds=2,
    )
    with pytest.warns(ConstantLearnerWarning, match="ml_l"):
        res = est.fit(sample(), seed=1)
    diag = res.extras["diagnostics"].set_index("nuisance")
    assert bool(diag.loc["ml_l", "constant"]) and not bool(diag.loc["ml_m", "constant"])
    # out-of-fold RMSE of E[dose|X] is near the noise sd of 1
    assert 0.8 < diag.loc["ml_m", "value"] < 1.3


def test_trimmed_propensity_scores_are_counted():
    rng = np.random.default_rng(2)
    n = 400
    x = rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-6 * x))).astype(int)
    df = pd.DataFrame({"y": d + x + rng.normal(size=n), "d": d, "x": x, "x2": rng.normal(size=n)})
    with pytest.warns(
        WeakOverlapWarning, match=r"propensity scores were clipped to \[0.05, 0.95\]"
    ):
        res = IRM(
            outcome="y",
            treatment="d",
            covariates=["x", "x2"],
            learner="logit",
            n_folds=2,
            trimming=0.05,
        ).fit(df, seed=1)
    assert res.info["n_trimmed"] > 0


def test_seeded_learners_and_presets():
    rf = seeded(RandomForestRegressor(), 5)
    assert rf.random_state == seeded(RandomForestRegressor(), 5).random_state
    assert rf.random_state != seeded(RandomForestRegressor(), 6).random_state
    pipe = seeded(make_preset("lasso", "classifier"), 5)
    assert pipe[-1].random_state == rf.random_state
    assert make_preset("rf", "regressor").get_params()["n_estimators"] == 500


def test_lgbm_preset_or_named_error():
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        with pytest.raises(EvalkitError, match=r"pip install 'evalkit\[lgbm\]'"):
            make_preset("lgbm", "regressor")
    else:
        assert type(make_preset("lgbm", "classifier")).__name__ == "LGBMClassifier"


def test_inference_options():
    est = PLR(outcome="y", treatment="d", **FAST)
    df = sample().assign(g=np.arange(300) % 25, h=np.arange(300) % 7)
    with pytest.raises(EvalkitError, match="needs a cluster column"):
        est.fit(df, inference="cluster")
    two = PLR(outcome="y", treatment="d", cluster=["g", "h"], **FAST)
    res = two.fit(df, seed=1)
    assert res.info["n_clusters"] == [25, 7]
    with pytest.raises(EvalkitError, match="one-way"):
        two.fit(df, seed=1, inference="bootstrap")
    none = est.fit(df, seed=1, inference="none")
    assert none.inference.kind == "none" and np.isnan(none.tidy()["std_error"]).all()


@pytest.mark.slow  # starting worker processes takes seconds
def test_parallel_repetitions_equal_serial():
    est = PLR(
        outcome="y", treatment="d", covariates=["x1", "x2"], learner="logit", n_folds=2, n_rep=2
    )
    serial = est.fit(sample(), seed=3)
    both = est.set_params(jobs=2).fit(sample(), seed=3)
    assert both.estimate() == serial.estimate() and both.std_error() == serial.std_error()
    pd.testing.assert_frame_equal(both.extras["diagnostics"], serial.extras["diagnostics"])


def test_group_effects_are_clustered_and_reconstruct_the_full_estimate():
    df = sample(n=400).assign(
        g=np.arange(400) % 20, half=lambda f: np.where(f["x2"] > 0, "hi", "lo")
    )
    est = IRM(outcome="y", treatment="d", cluster="g", **FAST)
    full = est.fit(df, seed=2)
    res = est.fit(df, seed=2, by="half")
    tidy = res.tidy().set_index("subgroup")
    assert "clustered by g" in res.inference.description
    assert res.inference.n_clusters == 20  # the groups share the 20 clusters
    # the ATE is the share-weighted average of the two group ATEs (psi_a = -1)
    share = (df["half"] == "hi").mean()
    blend = share * tidy.loc["hi", "estimate"] + (1 - share) * tidy.loc["lo", "estimate"]
    assert blend == pytest.approx(full.estimate(), rel=1e-10)
    assert tidy.loc["hi - lo", "estimate"] == pytest.approx(
        tidy.loc["hi", "estimate"] - tidy.loc["lo", "estimate"]
    )
