"""did.TWFE against peer-computed reference values.

Values in tests/reference/data/twfe_reference.json, written by
tests/reference/generate_twfe_reference.py: coefficients, iid, HC1 and CR1 standard errors
from pyfixest 0.60.0 feols with its default small-sample settings (equal to statsmodels'
dummy-variable OLS for iid/HC1), CR2 and its Satterthwaite df from a dense dummy-variable
regression computed by definition (cross-checked against diff-diff 3.13.0's Bell-McCaffrey
routine to 1e-14). Each model's "source" entry in the JSON names the origin of each value.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit.did import TWFE

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "twfe_reference.json").read_text(encoding="utf-8")
)["models"]


def _mpdta() -> pd.DataFrame:
    df = evalkit.datasets.load("mpdta")
    df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    df["w"] = np.exp(df["lpop"])
    df["x"] = df["lpop"] * (df["year"] - 2003) / 4
    return df


def _basque() -> pd.DataFrame:
    df = evalkit.datasets.load("basque")
    df = df[df["regionno"] != 1].dropna(subset=["invest"]).copy()
    basque = df["regionname"] == "Basque Country (Pais Vasco)"
    df["treat"] = (basque & (df["year"] >= 1970)).astype(int)
    return df


MODELS = {
    "M1": (_mpdta, dict(outcome="lemp", treatment="post", unit="countyreal", time="year")),
    "M2": (
        _mpdta,
        dict(outcome="lemp", treatment="post", unit="countyreal", time="year", weights="w"),
    ),
    "M3": (
        _mpdta,
        dict(outcome="lemp", treatment="post", unit="countyreal", time="year", covariates=["x"]),
    ),
    "P1": (
        lambda: evalkit.datasets.load("prop99"),
        dict(outcome="PacksPerCapita", treatment="treated", unit="State", time="Year"),
    ),
    "B1": (
        _basque,
        dict(
            outcome="gdpcap", treatment="treat", unit="regionno", time="year", covariates=["invest"]
        ),
    ),
}
METHODS = {"iid": "iid", "hetero": "hetero", "cluster": "cr1", "cr2": "cr2"}


@pytest.fixture(scope="module")
def frames():
    return {name: make() for name, (make, _) in MODELS.items()}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("method", list(METHODS))
def test_twfe_matches_reference(frames, model, method):
    ref = REFERENCE[model]
    est = TWFE(**MODELS[model][1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.fit(frames[model], inference=method)
    assert res.info["n_obs"] == ref["n"]
    key = METHODS[method]
    for term, coef in ref["coef"].items():
        assert res.estimate(term) == pytest.approx(coef, rel=1e-9)
        assert res.std_error(term) == pytest.approx(ref["se"][key][term], rel=1e-8)
        df = ref["df"][key]
        expected_df = df[term] if isinstance(df, dict) else df
        got_df = float(res._table.loc[res._table["term"] == term, "df"].iloc[0])
        assert got_df == pytest.approx(expected_df, rel=1e-7)
