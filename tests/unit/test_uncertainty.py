"""The uncertainty contract: four kinds behind Result.tidy / ci / to_dict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.core.result import InferenceInfo, Result, jsonable, make_table
from evalkit.core.uncertainty import Analytic, Band, Draws, NoInference, TestInversion
from evalkit.errors import (
    InferenceNotSupportedError,
    LevelFixedError,
    NotEstimableError,
    SerializationError,
)


def _table(k=2):
    return pd.DataFrame({"term": [f"b{i}" for i in range(k)], "estimate": np.arange(1.0, k + 1)})


def _result(unc, level=0.95, **kw):
    method = {"analytic": "cluster", "draws": "bootstrap", "none": "none"}.get(
        unc.kind, "permutation"
    )
    return Result(
        "test.Fake",
        _table(2),
        InferenceInfo(method, "test"),
        level=level,
        uncertainty=unc,
        **kw,
    )


def test_analytic_matches_the_legacy_table_path():
    se, df = np.array([0.5, 1.0]), np.array([8.0, np.inf])
    legacy = Result(
        "test.Fake", make_table(["b0", "b1"], [1.0, 2.0], se, df=df), InferenceInfo("cluster", "t")
    )
    explicit = _result(Analytic(se, df=df))
    pd.testing.assert_frame_equal(legacy.tidy(), explicit.tidy())
    pd.testing.assert_frame_equal(legacy.tidy(level=0.8), explicit.tidy(level=0.8))
    row = explicit.tidy(level=0.8).iloc[0]
    assert row["conf_low"] == pytest.approx(1.0 - stats.t.ppf(0.9, 8) * 0.5)
    assert explicit.inference.kind == "analytic" and explicit.inference.missing is None


def test_analytic_band_recomputes_at_any_level():
    sup_t = np.abs(np.random.default_rng(0).normal(size=(999, 2))).max(axis=1)
    res = _result(Analytic(np.array([0.5, 1.0]), band=Band(sup_t, np.array([True, False]))))
    t90 = res.tidy(level=0.9)
    crit = np.quantile(sup_t, 0.9, method="inverted_cdf")
    assert t90["conf_high"].iloc[0] == pytest.approx(1.0 + crit * 0.5)
    assert t90["conf_high"].iloc[1] == pytest.approx(2.0 + stats.norm.ppf(0.95) * 1.0)


def test_draws_give_se_and_percentile_intervals():
    draws = np.random.default_rng(1).normal(0.0, [0.5, 2.0], size=(4000, 2))
    se = draws.std(axis=0, ddof=1)
    res = _result(Draws(draws, se, interval="percentile", reps=4000, seed=1))
    tidy = res.tidy(level=0.9)
    q = np.quantile(draws, [0.05, 0.95], axis=0, method="inverted_cdf")
    assert tidy["conf_low"].tolist() == pytest.approx((np.array([1.0, 2.0]) + q[0]).tolist())
    assert tidy["std_error"].tolist() == pytest.approx(se.tolist())
    assert res.to_dict()["uncertainty"] == {
        "kind": "draws",
        "method": "bootstrap",
        "reps": 4000,
        "weights": None,
        "seed": 1,
        "interval": "percentile",
        "band": None,
    }
    assert res.vcov is not None and res.vcov.shape == (2, 2)


def test_test_inversion_has_no_se_and_refuses_other_levels_with_how_to_refit():
    unc = TestInversion(
        np.array([0.1, 0.6]),
        np.array([0.2, -1.0]),
        np.array([1.9, 4.0]),
        level=0.9,
        method="permutation",
        granularity=0.1,
    )
    res = _result(unc, level=0.9)
    tidy = res.tidy()
    assert tidy["std_error"].isna().all()  # empty, with the reason stated:
    assert "no standard error" in res.inference.missing
    assert "steps of 0.1" in res.inference.missing
    assert tidy["p_value"].tolist() == [0.1, 0.6]
    # the old behaviour was NaN intervals from tidy(level=0.95) without a word
    with pytest.raises(LevelFixedError, match=r"fit\(\.\.\., level=0\.95\)"):
        res.tidy(level=0.95)
    with pytest.raises(LevelFixedError):
        res.ci(level=0.5)
    pd.testing.assert_frame_equal(res.tidy(level=0.9), tidy)
    with pytest.raises(NotEstimableError, match="no standard error"):
        res.std_error("b0")


def test_test_inversion_with_invert_recomputes():
    def invert(level):
        half = stats.norm.ppf(0.5 + level / 2)
        return np.array([1.0 - half, 2.0 - half]), np.array([1.0 + half, 2.0 + half])

    unc = TestInversion(
        np.array([0.3, 0.04]), *invert(0.95), level=0.95, method="conformal", invert=invert
    )
    res = _result(unc)
    assert res.tidy(level=0.5)["conf_high"].iloc[0] == pytest.approx(1.0 + stats.norm.ppf(0.75))
    assert res.to_dict()["uncertainty"]["recomputable"] is True


def test_no_inference_states_the_reason():
    res = _result(NoInference("a decomposition has no sampling distribution"))
    assert res.tidy()[["std_error", "conf_low"]].isna().all().all()
    # asking for intervals is refused with the reason, never answered with NaN
    with pytest.raises(InferenceNotSupportedError, match="no sampling distribution"):
        res.tidy(level=0.9)
    with pytest.raises(InferenceNotSupportedError, match="no confidence intervals"):
        res.ci()
    assert res.inference.missing.endswith("a decomposition has no sampling distribution")
    assert res.to_dict()["uncertainty"]["kind"] == "none"


def test_undefined_analytic_se_gets_a_note():
    res = _result(Analytic(np.array([0.5, np.nan])))
    assert "1 of 2" in res.inference.missing
    with pytest.raises(NotEstimableError):
        res.std_error("b1")


def test_to_dict_writes_typed_extras_and_refuses_unknown_types():
    weights = pd.Series([0.75, 0.25], index=["oslo", "trondheim"], name="weight")
    balance = pd.DataFrame({"treated": [1.0], "synthetic": [0.9]}, index=["income"])
    res = _result(Analytic(np.array([0.5, 1.0])), extras={"weights": weights, "balance": balance})
    payload = res.to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    assert payload["extras"]["weights"] == {
        "name": "weight",
        "index": ["oslo", "trondheim"],
        "values": [0.75, 0.25],
    }
    assert payload["extras"]["balance"]["data"] == [[1.0, 0.9]]
    pd.testing.assert_series_equal(res.extras["weights"], weights)

    class Opaque:
        pass

    for bad in ({"thing": Opaque()}, {"f": lambda: 1}):
        broken = _result(Analytic(np.array([0.5, 1.0])), info=bad)
        with pytest.raises(SerializationError, match="cannot write"):
            broken.to_dict()
    with pytest.raises(SerializationError):
        jsonable(object())


def test_result_uncertainty_is_read_only():
    res = _result(Analytic(np.array([0.5, 1.0])))
    with pytest.raises(ValueError):
        res.uncertainty.std_error[0] = 9.0
