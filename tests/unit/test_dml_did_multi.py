"""dml.DIDMulti equals DoubleMLDIDMulti called directly with the same learners and folds."""

from __future__ import annotations

import warnings

import doubleml
import numpy as np
import pandas as pd
import pytest
from doubleml.did import DoubleMLDIDMulti
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

import evalkit
from evalkit.dml import DIDMulti, fold_splits, seeded


def staggered(seed: int = 0, n: int = 150) -> pd.DataFrame:
    """Cohorts 3 and 4 and never-treated units over periods 1-4; effect 1 from adoption."""
    rng = np.random.default_rng(seed)
    g = np.array([0, 3, 4])[np.arange(n) % 3]
    x = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 4),
            "t": np.tile(np.arange(1, 5), n),
            "g": np.repeat(g, 4),
            "x": np.repeat(x, 4),
        }
    )
    treated = (df["g"] > 0) & (df["t"] >= df["g"])
    df["y"] = df["x"] + 0.1 * df["t"] + 1.0 * treated + rng.normal(size=len(df))
    return df


def _direct(df, learners, seed, n_folds=2, **kwargs):
    """DoubleMLDIDMulti by hand: never treated coded inf, folds from fold_splits."""
    frame = df.assign(g=np.where(df["g"] == 0, np.inf, df["g"]).astype(float))
    frame = frame.astype({"t": float, "x": float, "y": float, "id": float})
    data = doubleml.DoubleMLPanelData(
        frame, y_col="y", d_cols="g", id_col="id", t_col="t", x_cols=["x"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = DoubleMLDIDMulti(
            data,
            n_folds=n_folds,
            draw_sample_splitting=False,
            **{k: seeded(v, seed) for k, v in learners.items()},
            **kwargs,
        )
        rng = np.random.default_rng(seed)
        seeds = rng.integers(0, 2**32 - 1, size=len(obj.modellist))
        for sub, s in zip(obj.modellist, seeds, strict=True):
            sub.set_sample_splitting(fold_splits(sub.n_obs_subset, n_folds, 1, int(s))[0])
        obj.fit()
        overall = obj.aggregate("group").overall_aggregated_framework
        events = obj.aggregate("eventstudy").aggregated_frameworks
    return obj, overall, events


def _est(**kw):
    opts = dict(
        outcome="y", cohort="g", unit="id", time="t", covariates=["x"], learner="logit", n_folds=2
    )
    return DIDMulti(**{**opts, **kw})


@pytest.mark.parametrize(
    ("learner", "control"), [("logit", "never_treated"), ("forest", "not_yet_treated")]
)
def test_equals_doubleml_direct(learner, control):
    df = staggered()
    if learner == "logit":
        from sklearn.linear_model import LinearRegression, LogisticRegression

        learners = {"ml_g": LinearRegression(), "ml_m": LogisticRegression()}
    else:
        learners = {
            "ml_g": RandomForestRegressor(n_estimators=10, max_depth=3),
            "ml_m": RandomForestClassifier(n_estimators=10, max_depth=3),
        }
    res = DIDMulti(
        outcome="y",
        cohort="g",
        unit="id",
        time="t",
        covariates=["x"],
        learners=learners,
        n_folds=2,
        control_group=control,
    ).fit(df, seed=5)
    direct, overall, events = _direct(df, learners, 5, control_group=control)
    tidy = res.tidy()
    gt = tidy[tidy["term"].str.startswith("ATT")]
    assert len(gt) == direct.n_gt_atts == 6
    np.testing.assert_allclose(gt["estimate"], direct.coef, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gt["std_error"], direct.se, rtol=1e-12, atol=1e-12)
    row = tidy.set_index("term").loc["overall"]
    assert row["estimate"] == pytest.approx(float(overall.thetas[0]), rel=1e-12, abs=1e-12)
    assert row["std_error"] == pytest.approx(float(overall.ses[0]), rel=1e-12, abs=1e-12)
    ev = tidy[tidy["term"].str.startswith("event")]
    np.testing.assert_allclose(ev["estimate"], events.thetas, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ev["std_error"], events.ses, rtol=1e-12, atol=1e-12)
    # keys: cohort and evaluation period of every ATT(g, t)
    combos = np.array(direct.gt_combinations, dtype=float)
    np.testing.assert_array_equal(gt["cohort"], combos[:, 0])
    np.testing.assert_array_equal(gt["time"], combos[:, 2])


def test_same_seed_same_result_other_seed_differs_global_state_kept():
    df = staggered(1)
    est = _est()
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a = est.fit(df, seed=3).tidy()
    b = est.fit(df, seed=3).tidy()
    c = est.fit(df, seed=4).tidy()
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["estimate"], c["estimate"])


def test_recovers_effect_and_keeps_data():
    df = staggered(2, n=300)
    copy = df.copy()
    res = _est().fit(df, seed=0)
    pd.testing.assert_frame_equal(df, copy)
    tidy = res.tidy().set_index("term")
    assert abs(tidy.loc["overall", "estimate"] - 1.0) < 4 * tidy.loc["overall", "std_error"]
    assert res.estimator == "dml.DIDMulti"


def test_bad_inputs_raise_evalkit_errors():
    df = staggered()
    with pytest.raises(evalkit.EvalkitError, match="never-treated"):
        _est().fit(df[df["g"] > 0], seed=0)
    with pytest.raises(evalkit.EvalkitError, match="changes within"):
        _est().fit(df.assign(g=np.where((df["id"] == 1) & (df["t"] == 1), 4, df["g"])), seed=0)
    with pytest.raises(evalkit.EvalkitError, match="not a period"):
        _est().fit(df.assign(g=np.where(df["g"] == 4, 9, df["g"])), seed=0)
    with pytest.raises(evalkit.EvalkitError, match="more than once"):
        _est().fit(pd.concat([df, df.iloc[:1]]), seed=0)
    with pytest.raises(evalkit.EvalkitError, match="control_group"):
        _est(control_group="everyone")
    with pytest.raises(evalkit.EvalkitError, match="cohort"):
        _est(treatment="d")
    with pytest.raises(evalkit.EvalkitError, match="cluster"):
        _est(cluster="id")
    with pytest.raises(evalkit.EvalkitError, match="anticipation"):
        _est(anticipation=-1)
    with pytest.raises(evalkit.EvalkitError):
        _est().fit(df, seed=0, inference="bootstrap")
