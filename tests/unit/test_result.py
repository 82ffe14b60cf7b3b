from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.core.result import InferenceInfo, Result, check_level, jsonable, make_table
from evalkit.errors import DesignError


def _result(df=None):
    table = make_table(["a", "b"], [1.0, -2.0], [0.5, 1.0], df=df)
    return Result("test.Fake", table, InferenceInfo("iid", "test"), {"n_obs": 10})


def test_normal_and_t_inference_filled():
    res = _result()
    row = res.tidy().iloc[0]
    assert row["statistic"] == pytest.approx(2.0)
    assert row["p_value"] == pytest.approx(2 * stats.norm.sf(2.0))
    assert row["conf_low"] == pytest.approx(1.0 - stats.norm.ppf(0.975) * 0.5)
    res_t = _result(df=5)
    assert res_t.tidy()["p_value"].iloc[0] == pytest.approx(2 * stats.t.sf(2.0, 5))


def test_level_changes_intervals_only():
    res = _result(df=8)
    a, b = res.tidy(), res.tidy(level=0.9)
    pd.testing.assert_series_equal(a["p_value"], b["p_value"])
    assert (b["conf_high"] < a["conf_high"]).all()
    with pytest.raises(DesignError, match="level"):
        res.tidy(level=95)
    assert check_level(0.5) == 0.5


def test_estimate_lookup_errors_name_terms():
    res = _result()
    assert res.estimate("b") == -2.0
    with pytest.raises(DesignError, match="need exactly one"):
        res.estimate()
    with pytest.raises(DesignError, match="cohort"):
        res.estimate("a", cohort=2004)


def test_jsonable_and_round_trip():
    assert jsonable({"x": np.float32(1.5), "y": [np.int64(2)], "z": np.nan}) == {
        "x": 1.5,
        "y": [2],
        "z": None,
    }
    payload = _result().to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload


def test_info_is_read_only():
    res = _result()
    with pytest.raises(TypeError):
        res.info["n_obs"] = 3  # type: ignore[index]
