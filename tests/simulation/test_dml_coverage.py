"""IIVM, PLIV, DID, the panel model and the cluster bootstrap on data with known effects.

Fast: one draw of each design lies near the truth, and each model equals DoubleML called
directly with the same learners, folds and seed. Slow: coverage of 95% intervals over
repeated draws within a binomial band (linear data, so the linear ``"logit"`` preset is
correctly specified and the intervals should hold their level).
"""

from __future__ import annotations

import os
import warnings

import doubleml
import numpy as np
import pandas as pd
import pytest

from evalkit.dml import DID, IIVM, PLIV, PLPR, PLR, fold_splits, seeded
from evalkit.dml.learners import make_preset

REG, CLF = make_preset("logit", "regressor"), make_preset("logit", "classifier")


def iivm_data(rng, n=800):
    """A trial with contamination: 15% of people take the service whatever their
    assignment (always-takers), 25% never do; the effect on compliers (the LATE) is 1,
    on always-takers 2."""
    x = rng.normal(size=n)
    z = (rng.random(n) < 0.5).astype(int)
    kind = rng.choice(3, size=n, p=[0.6, 0.15, 0.25])  # complier, always, never
    d = np.where(kind == 0, z, np.where(kind == 1, 1, 0))
    effect = np.where(kind == 1, 2.0, 1.0)
    y = x + effect * d + 0.5 * (kind == 1) + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "z": z, "x": x, "x2": rng.normal(size=n)}), 1.0


def pliv_data(rng, n=800):
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    v = rng.normal(size=n)
    d = 0.8 * z + 0.5 * x + v
    y = 0.7 * d + x + 0.6 * v + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "z": z, "x": x, "x2": rng.normal(size=n)}), 0.7


def did_panel(rng, n=600):
    x = rng.normal(size=n)
    g = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x))).astype(int)
    y0 = x + rng.normal(size=n)
    y1 = y0 + 0.3 * x + 1.0 * g + rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 2),
            "t": np.tile([0, 1], n),
            "y": np.column_stack([y0, y1]).ravel(),
            "g": np.repeat(g, 2),
            "x": np.repeat(x, 2),
        }
    )
    return frame, 1.0


def did_rcs(rng, n=1200):
    x = rng.normal(size=n)
    g = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x))).astype(int)
    t = (rng.random(n) < 0.5).astype(int)
    y = x + 0.3 * x * t + 0.5 * g + 0.2 * t + 1.0 * g * t + rng.normal(size=n)
    return pd.DataFrame({"y": y, "g": g, "t": t, "x": x}), 1.0


def panel_data(rng, n_units=150, n_periods=4):
    unit = np.repeat(np.arange(n_units), n_periods)
    alpha = rng.normal(size=n_units)[unit]
    x = rng.normal(size=unit.size) + 0.5 * alpha
    dose = 0.5 * x + alpha + rng.normal(size=unit.size)
    y = 0.7 * dose + x + 2.0 * alpha + rng.normal(size=unit.size)
    time = np.tile(np.arange(n_periods), n_units)
    return pd.DataFrame({"unit": unit, "time": time, "x": x, "dose": dose, "y": y}), 0.7


def clustered_data(rng, n_clusters=30, size=20):
    g = np.repeat(np.arange(n_clusters), size)
    x = rng.normal(size=g.size)
    d = 0.5 * x + rng.normal(size=n_clusters)[g] + rng.normal(size=g.size)
    y = 0.5 * d + x + 1.5 * rng.normal(size=n_clusters)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "d": d, "x": x, "x2": rng.normal(size=g.size), "g": g}), 0.5


DESIGNS = {
    "cluster bootstrap": (
        clustered_data,
        lambda: PLR(
            outcome="y", treatment="d", covariates=["x", "x2"], learner="logit", cluster="g"
        ),
        {"inference": "bootstrap", "reps": 399},
    ),
    "IIVM": (
        iivm_data,
        lambda: IIVM(
            outcome="y", treatment="d", instrument="z", covariates=["x", "x2"], learner="logit"
        ),
        {},
    ),
    "PLIV": (
        pliv_data,
        lambda: PLIV(
            outcome="y", treatment="d", instrument="z", covariates=["x", "x2"], learner="logit"
        ),
        {},
    ),
    "DID": (
        did_panel,
        lambda: DID(
            outcome="y", treatment="g", unit="id", time="t", covariates=["x"], learner="logit"
        ),
        {},
    ),
    "DIDCS": (
        did_rcs,
        lambda: DID(
            outcome="y", treatment="g", time="t", panel=False, covariates=["x"], learner="logit"
        ),
        {},
    ),
    "PLPR": (
        panel_data,
        lambda: PLPR(
            outcome="y",
            treatment="dose",
            unit="unit",
            time="time",
            covariates=["x"],
            learner="logit",
        ),
        {},
    ),
}


def _fit(name, seed):
    make, est, kwargs = DESIGNS[name]
    df, truth = make(np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est().fit(df, seed=seed, **kwargs)
    return res, truth


@pytest.mark.parametrize("name", list(DESIGNS))
def test_one_draw_is_near_the_truth(name):
    res, truth = _fit(name, 1)
    assert abs(res.estimate() - truth) < 4 * res.std_error()


def _direct(obj, seed, n_folds=5):
    data = obj._dml_data
    labels = None
    if data.is_cluster_data:
        cv = np.asarray(data.cluster_vars)
        labels = [cv[:, j] for j in range(cv.shape[1])]
    smpls, smpls_cluster = fold_splits(int(data.n_obs), n_folds, 1, seed, labels)
    if smpls_cluster is None:
        obj.set_sample_splitting(smpls)
    else:
        obj.set_sample_splitting(smpls, smpls_cluster)
    obj.fit()
    return float(obj.coef[0]), float(obj.se[0])


def test_iivm_and_pliv_equal_doubleml():
    rng = np.random.default_rng(3)
    df, _ = iivm_data(rng)
    res = IIVM(
        outcome="y", treatment="d", instrument="z", covariates=["x", "x2"], learner="logit"
    ).fit(df, seed=9)
    data = doubleml.DoubleMLData(df, y_col="y", d_cols="d", x_cols=["x", "x2"], z_cols="z")
    obj = doubleml.DoubleMLIIVM(
        data,
        ml_g=seeded(REG, 9),
        ml_m=seeded(CLF, 9),
        ml_r=seeded(CLF, 9),
        draw_sample_splitting=False,
    )
    assert (res.estimate(), res.std_error()) == pytest.approx(_direct(obj, 9), rel=1e-12)
    df, _ = pliv_data(rng)
    res = PLIV(
        outcome="y", treatment="d", instrument="z", covariates=["x", "x2"], learner="logit"
    ).fit(df, seed=9)
    data = doubleml.DoubleMLData(df, y_col="y", d_cols="d", x_cols=["x", "x2"], z_cols="z")
    obj = doubleml.DoubleMLPLIV(
        data,
        ml_l=seeded(REG, 9),
        ml_m=seeded(REG, 9),
        ml_r=seeded(REG, 9),
        draw_sample_splitting=False,
    )
    assert (res.estimate(), res.std_error()) == pytest.approx(_direct(obj, 9), rel=1e-12)


def test_did_panel_rcs_and_plpr_equal_doubleml():
    rng = np.random.default_rng(4)
    df, _ = did_panel(rng)
    res = DID(
        outcome="y", treatment="g", unit="id", time="t", covariates=["x"], learner="logit"
    ).fit(df, seed=8)
    pre, post = df[df["t"] == 0].reset_index(drop=True), df[df["t"] == 1].reset_index(drop=True)
    wide = pre.assign(dy=post["y"].to_numpy() - pre["y"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = doubleml.DoubleMLDIDData(wide, y_col="dy", d_cols="g", x_cols=["x"])
        obj = doubleml.DoubleMLDID(
            data, ml_g=seeded(REG, 8), ml_m=seeded(CLF, 8), draw_sample_splitting=False
        )
        direct = _direct(obj, 8)
    assert (res.estimate(), res.std_error()) == pytest.approx(direct, rel=1e-12)
    df, _ = did_rcs(rng)
    res = DID(
        outcome="y", treatment="g", time="t", panel=False, covariates=["x"], learner="logit"
    ).fit(df, seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = doubleml.DoubleMLDIDData(
            df.astype(float).rename(columns={"t": "_t"}),
            y_col="y",
            d_cols="g",
            x_cols=["x"],
            t_col="_t",
        )
        obj = doubleml.DoubleMLDIDCS(
            data, ml_g=seeded(REG, 8), ml_m=seeded(CLF, 8), draw_sample_splitting=False
        )
        direct = _direct(obj, 8)
    assert (res.estimate(), res.std_error()) == pytest.approx(direct, rel=1e-12)
    df, _ = panel_data(rng)
    res = PLPR(
        outcome="y", treatment="dose", unit="unit", time="time", covariates=["x"], learner="logit"
    ).fit(df, seed=8)
    data = doubleml.DoubleMLPanelData(
        df.astype(float),
        y_col="y",
        d_cols="dose",
        t_col="time",
        id_col="unit",
        x_cols=["x"],
        static_panel=True,
    )
    obj = doubleml.DoubleMLPLPR(
        data, ml_l=seeded(REG, 8), ml_m=seeded(REG, 8), draw_sample_splitting=False
    )
    assert (res.estimate(), res.std_error()) == pytest.approx(_direct(obj, 8), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DESIGNS))
def test_coverage(name):
    reps = int(os.environ.get("EVALKIT_DML_COVERAGE_REPS", "200"))
    covered = 0
    for seed in range(reps):
        res, truth = _fit(name, 1000 + seed)
        row = res.tidy().iloc[0]
        covered += row["conf_low"] <= truth <= row["conf_high"]
    rate = covered / reps
    print(f"{name}: coverage {rate:.3f} over {reps} draws")
    # a 99% binomial band around 0.95 for this many draws
    half = 2.58 * np.sqrt(0.95 * 0.05 / reps)
    assert 0.95 - half <= rate <= 0.95 + half
