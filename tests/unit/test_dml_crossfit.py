"""Learner fits spread over processes (evalkit.dml.crossfit) equal DoubleML's own fit.

Each test builds two identical DoubleML models directly (same learners, folds and
seeds), fits one with ``model.fit()`` and the other with :func:`fit_in_parts` on two
processes (this one and a worker), and requires identical coefficients, standard errors,
predictions, targets and scores (exact equality, no tolerance).
"""

from __future__ import annotations

import warnings

import doubleml
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

from evalkit import parallel
from evalkit.dml import DID, IRM, PLR, fold_splits
from evalkit.dml.crossfit import fit_in_parts

N = 400


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    parallel.shutdown()


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 3))
    z = (rng.uniform(size=N) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    d = ((0.8 * z + 0.5 * x[:, 1] + rng.normal(size=N)) > 0.4).astype(float)
    y = 1.0 * d + x[:, 0] - 0.5 * x[:, 2] + rng.normal(size=N)
    return pd.DataFrame(
        {
            "y": y,
            "d": d,
            "z": z,
            "dc": d + 0.3 * x[:, 0],
            "x0": x[:, 0],
            "x1": x[:, 1],
            "x2": x[:, 2],
        }
    )


def _rf(kind: str):
    cls = RandomForestClassifier if kind == "c" else RandomForestRegressor
    return cls(n_estimators=8, max_depth=3, random_state=4)


def _pair(build, n_folds=3, n_rep=2, seed=1):
    """Fit two identical models: DoubleML directly and in parts on two processes."""
    models = []
    for _ in range(2):
        m = build()
        smpls, _ = fold_splits(m._dml_data.n_obs, n_folds, n_rep, seed)
        m.set_sample_splitting(smpls)
        models.append(m)
    direct, parts = models
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct.fit(store_predictions=True)
        counts = fit_in_parts(parts, parallel.backend(jobs=2))
    return direct, parts, counts


def _assert_identical(direct, parts):
    assert np.array_equal(direct.coef, parts.coef)
    assert np.array_equal(direct.se, parts.se)
    assert np.array_equal(direct.all_coef, parts.all_coef)
    assert np.array_equal(direct.psi, parts.psi, equal_nan=True)
    for k, v in direct.predictions.items():
        assert np.array_equal(v, parts.predictions[k], equal_nan=True), k
    for k, v in direct.nuisance_targets.items():
        assert np.array_equal(v, parts.nuisance_targets[k], equal_nan=True), k
    assert {k: type(v) for k, v in parts.learner.items()} == {
        k: type(v) for k, v in direct.learner.items()
    }  # the real learners are back in place


def _data(**cols):
    return doubleml.DoubleMLData(_frame(), x_cols=["x0", "x1", "x2"], **cols)


@pytest.mark.parametrize("score", ["partialling out", "IV-type"])
def test_plr(score):
    learners = {"ml_l": _rf("r"), "ml_m": _rf("c")}
    if score == "IV-type":
        learners["ml_g"] = _rf("r")
    direct, parts, counts = _pair(
        lambda: doubleml.DoubleMLPLR(
            _data(y_col="y", d_cols="d"), n_folds=3, n_rep=2, score=score, **learners
        )
    )
    _assert_identical(direct, parts)
    assert counts["fits"] == 3 * 2 * len(learners)
    # IV-type: ml_g's target depends on ml_l's and ml_m's predictions, so the six ml_g
    # fits differ from the recorded ones and run here instead
    assert counts["local"] == (6 if score == "IV-type" else 0)


@pytest.mark.parametrize("score", ["ATE", "ATTE"])
def test_irm(score):
    direct, parts, counts = _pair(
        lambda: doubleml.DoubleMLIRM(
            _data(y_col="y", d_cols="d"),
            ml_g=_rf("r"),
            ml_m=LogisticRegression(),
            n_folds=3,
            n_rep=2,
            score=score,
        )
    )
    _assert_identical(direct, parts)
    assert counts["local"] == 0 and counts["fits"] > 0


def test_iivm():
    direct, parts, counts = _pair(
        lambda: doubleml.DoubleMLIIVM(
            _data(y_col="y", d_cols="d", z_cols="z"),
            ml_g=_rf("r"),
            ml_m=_rf("c"),
            ml_r=LogisticRegression(),
            n_folds=3,
            n_rep=2,
        )
    )
    _assert_identical(direct, parts)
    assert counts["local"] == 0


def test_pliv():
    direct, parts, counts = _pair(
        lambda: doubleml.DoubleMLPLIV(
            _data(y_col="y", d_cols="dc", z_cols="z"),
            ml_l=_rf("r"),
            ml_m=LinearRegression(),
            ml_r=_rf("r"),
            n_folds=3,
            n_rep=1,
        ),
        n_rep=1,
    )
    _assert_identical(direct, parts)
    assert counts["local"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("panel", [True, False])
def test_did(panel):
    frame = _frame(3)
    frame["t"] = (np.arange(N) % 2).astype(float)

    def build():
        if panel:
            data = doubleml.DoubleMLDIDData(frame, y_col="y", d_cols="d", x_cols=["x0", "x1"])
            return doubleml.DoubleMLDID(data, ml_g=_rf("r"), ml_m=_rf("c"), n_folds=3, n_rep=2)
        data = doubleml.DoubleMLDIDData(
            frame, y_col="y", d_cols="d", t_col="t", x_cols=["x0", "x1"]
        )
        return doubleml.DoubleMLDIDCS(data, ml_g=_rf("r"), ml_m=_rf("c"), n_folds=3, n_rep=2)

    direct, parts, counts = _pair(build)
    _assert_identical(direct, parts)
    assert counts["local"] == 0


def test_estimators_with_jobs_equal_the_serial_fit():
    # evalkit's estimators with jobs=2 (in parts) against jobs=1 (DoubleML's fit), clustered
    # folds included
    frame = _frame(5).assign(g=np.arange(N) % 20)
    common = {"outcome": "y", "treatment": "d", "covariates": ["x0", "x1", "x2"], "n_rep": 2}
    for est in (
        PLR(learners={"ml_l": _rf("r"), "ml_m": _rf("c")}, cluster="g", **common),
        IRM(learners={"ml_g": _rf("r"), "ml_m": _rf("c")}, estimand="att", **common),
    ):
        one = est.fit(frame, seed=9)
        two = est.set_params(jobs=2).fit(frame, seed=9)
        assert one.estimate() == two.estimate()
        assert one.std_error() == two.std_error()
        assert one.info["all_estimates"] == two.info["all_estimates"]


def test_did_estimator_with_jobs_equals_the_serial_fit():
    rng = np.random.default_rng(2)
    units = 150
    x = rng.normal(size=units)
    d = (rng.uniform(size=units) < 0.4).astype(float)
    rows = []
    for t in (0, 1):
        y = x + t * (1.0 * d + 0.3 * x) + rng.normal(size=units)
        rows.append(pd.DataFrame({"id": range(units), "t": t, "y": y, "d": d * t, "x": x}))
    panel = pd.concat(rows, ignore_index=True)
    learners = {"ml_g": _rf("r"), "ml_m": _rf("c")}
    est = DID(outcome="y", treatment="d", unit="id", time="t", covariates=["x"], learners=learners)
    one = est.fit(panel, seed=4)
    two = est.set_params(jobs=2).fit(panel, seed=4)
    assert (one.estimate(), one.std_error()) == (two.estimate(), two.std_error())


def test_did_multi_with_jobs_equals_the_serial_fit():
    from test_dml_did_multi import staggered  # tests/unit is on sys.path

    from evalkit.dml import DIDMulti

    learners = {"ml_g": _rf("r"), "ml_m": _rf("c")}
    est = DIDMulti(
        outcome="y", cohort="g", unit="id", time="t", covariates=["x"], learners=learners, n_folds=2
    )
    df = staggered(n=60)
    one = est.fit(df, seed=5).tidy()
    two = est.set_params(jobs=2).fit(df, seed=5).tidy()
    pd.testing.assert_frame_equal(one, two, check_exact=True)


class _Broken(LinearRegression):
    def fit(self, X, y, sample_weight=None):
        raise RuntimeError("learner failed")


def test_a_failing_learner_raises_and_the_learners_are_restored():
    model = doubleml.DoubleMLPLR(
        _data(y_col="y", d_cols="d"), ml_l=_Broken(), ml_m=LogisticRegression(), n_folds=2
    )
    with pytest.raises(RuntimeError, match="learner failed"):
        fit_in_parts(model, parallel.backend(jobs=2))
    assert isinstance(model.learner["ml_l"], _Broken)
    assert isinstance(model.learner["ml_m"], LogisticRegression)
