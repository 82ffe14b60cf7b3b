"""EventStudy, SunAbraham, ImputationDiD and TripleDiff against peer-computed reference values.

Values in tests/reference/data/did_regressions_reference.json, written by
tests/reference/generate_did_regressions_reference.py (each model's "source" names the origin of
every value): pyfixest 0.60.0 feols (coefficients, iid / hetero / CR1 with default ssc, Wald
statistics), fixest's aggregate() formulas for Sun-Abraham, diff-diff 3.13.0 (SunAbraham,
ImputationDiD = R didimputation's BJS variance, TripleDifference), statsmodels dense
dummy-variable regressions and CR2 by definition. Estimates agree to 1e-6 (in fact ~1e-12).

Convention differences found (and why), not tolerances:
- TripleDiff iid / hetero: pyfixest counts UG + TG + UT - 2 fixed-effect parameters with three
  fixed effects; evalkit uses the exact rank (UG + TG + UT - U - G - T + 1), as a dummy-variable
  regression does, so the reference is statsmodels' LSDV (pyfixest's kept as an alternative).
- ImputationDiD pre-trend test: BJS Test 1 leads -1..-K (comparison: rows more than K periods
  before treatment); diff-diff omits -1 instead. On mpdta (4 pre-periods, K = 3) both span the
  same space, so the F statistics are identical.
- pyfixest's did2s cannot run on mpdta (its first stage drops singleton untreated rows and its
  variance then mis-aligns rows); the imputation point estimates are cross-checked by hand.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit.did.event_study import EventStudy
from evalkit.did.imputation import ImputationDiD
from evalkit.did.sun_abraham import SunAbraham
from evalkit.did.triple_diff import TripleDiff

PAYLOAD = json.loads(
    (Path(__file__).parent / "data" / "did_regressions_reference.json").read_text(encoding="utf-8")
)
REF = PAYLOAD["models"]
EST_TOL = dict(rtol=1e-6, atol=1e-9)  # estimates
SE_TOL = dict(rtol=1e-6, atol=0)  # standard errors, df and test statistics


def _load_mpdta() -> pd.DataFrame:
    df = evalkit.datasets.load("mpdta")
    df["w"] = np.exp(df["lpop"])
    df["x"] = df["lpop"] * (df["year"] - 2003) / 4
    df["countyreal"] = df["countyreal"].astype(int)
    return df


@pytest.fixture(scope="module")
def mpdta():
    return _load_mpdta()


@pytest.fixture(scope="module")
def cells():
    return pd.DataFrame(PAYLOAD["data"]["triple_cells"])


def _fit(est, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(data, **kwargs)


def _col(res, column):
    return res.tidy()[column].to_numpy(dtype=float)


# ---------------------------------------------------------------------------- event study
@pytest.mark.parametrize("model", ["ES1", "ES2", "ES3", "ES4"])
def test_event_study_matches_pyfixest(mpdta, model):
    ref = REF[model]
    est = EventStudy(**ref["options"])
    for method, se in ref["se"].items():
        res = _fit(est, mpdta, inference=method)
        assert res.info["n_obs"] == ref["n"]
        assert res.tidy()["event_time"].tolist() == ref["event_time"]
        np.testing.assert_allclose(_col(res, "estimate"), ref["coef"], **EST_TOL)
        np.testing.assert_allclose(_col(res, "std_error"), se, **SE_TOL)
        if "df" in ref:
            np.testing.assert_allclose(res._table["df"], ref["df"][method], **SE_TOL)
        if method == "cluster" and "pretrend_cluster" in ref:
            test = res.info["pretrend_test"]
            np.testing.assert_allclose(
                [test["statistic"], test["p_value"]],
                [ref["pretrend_cluster"]["F"], ref["pretrend_cluster"]["p"]],
                **SE_TOL,
            )
            assert test["df1"] == ref["pretrend_cluster"]["df1"]
            assert test["df2"] == ref["pretrend_cluster"]["df2"]


# ---------------------------------------------------------------------------- Sun-Abraham
def _sa_data(mpdta, ref):
    if ref.get("data_filter") == "first.treat > 0":
        return mpdta[mpdta["first.treat"] > 0]
    return mpdta


@pytest.mark.parametrize("model", ["SA1", "SA2", "SA3"])
@pytest.mark.parametrize("method", ["iid", "hetero", "cluster"])
def test_sun_abraham_event_times_match_fixest_aggregation(mpdta, model, method):
    ref = REF[model]
    res = _fit(SunAbraham(**ref["options"]), _sa_data(mpdta, ref), inference=method)
    assert res.info["n_obs"] == ref["n"]
    assert res.tidy()["event_time"].tolist() == ref["event_time"]
    np.testing.assert_allclose(_col(res, "estimate"), ref["event"][method]["coef"], **EST_TOL)
    np.testing.assert_allclose(_col(res, "std_error"), ref["event"][method]["se"], **SE_TOL)
    np.testing.assert_allclose(res._table["df"], ref["df"][method], **SE_TOL)


@pytest.mark.parametrize("model", ["SA1", "SA2", "SA3"])
def test_sun_abraham_cells_overall_cohort_and_cr2(mpdta, model):
    ref = REF[model]
    data = _sa_data(mpdta, ref)
    res = _fit(SunAbraham(**ref["options"]), data, inference="cluster")
    cells = res.aggregate("cells").tidy()
    got = {
        (c, e): (b, s)
        for c, e, b, s in cells[["cohort", "event_time", "estimate", "std_error"]].itertuples(
            index=False
        )
    }
    for cell, b, s in zip(ref["cells"], ref["cell_coef"], ref["cell_se"], strict=True):
        gb, gs = got[(cell["cohort"], cell["event_time"])]
        assert gb == pytest.approx(b, rel=1e-6, abs=1e-9)
        assert gs == pytest.approx(s, rel=1e-6)
    overall = res.aggregate("overall")
    assert overall.estimate() == pytest.approx(ref["overall"]["coef"][0], rel=1e-6)
    assert overall.std_error() == pytest.approx(ref["overall"]["se"][0], rel=1e-6)
    cohort = res.aggregate("cohort").tidy()
    assert cohort["cohort"].tolist() == ref["cohorts"]
    np.testing.assert_allclose(cohort["estimate"], ref["cohort"]["coef"], **EST_TOL)
    np.testing.assert_allclose(cohort["std_error"], ref["cohort"]["se"], **SE_TOL)
    shares = res.info["shares"]
    for row, e in zip(ref["shares"], ref["event_time"], strict=True):
        assert sum(shares[str(e)].values()) == pytest.approx(1.0)
        assert sorted(v for v in row if v > 0) == pytest.approx(sorted(shares[str(e)].values()))
    cr2 = _fit(SunAbraham(**ref["options"]), data, inference="cr2")
    np.testing.assert_allclose(_col(cr2, "std_error"), ref["event_cr2"]["se"], **SE_TOL)
    np.testing.assert_allclose(cr2._table["df"], ref["event_cr2"]["df"], rtol=1e-6)


def test_sun_abraham_matches_diff_diff(mpdta):
    ref = REF["SA1"]
    res = _fit(SunAbraham(**ref["options"]), mpdta, inference="cluster")
    dd = ref["diff_diff"]
    assert res.tidy()["event_time"].tolist() == dd["event_time"]
    np.testing.assert_allclose(_col(res, "estimate"), dd["coef"], **EST_TOL)
    np.testing.assert_allclose(_col(res, "std_error"), dd["se"], **SE_TOL)
    assert res.aggregate("overall").estimate() == pytest.approx(dd["overall"], rel=1e-6)
    assert res.aggregate("overall").std_error() == pytest.approx(dd["overall_se"], rel=1e-6)


# ---------------------------------------------------------------------------- imputation
@pytest.mark.parametrize("model", ["IM1", "IM2"])
@pytest.mark.parametrize("variant", ["default", "leave_out"])
def test_imputation_matches_diff_diff(mpdta, model, variant):
    ref = REF[model]
    est = ImputationDiD(**ref["options"], leave_out=variant == "leave_out", pretrend_leads=3)
    res = _fit(est, mpdta)
    want = ref[variant]
    assert res.tidy()["event_time"].tolist() == want["event_time"]
    np.testing.assert_allclose(_col(res, "estimate"), want["coef"], **EST_TOL)
    np.testing.assert_allclose(_col(res, "std_error"), want["se"], **SE_TOL)
    overall = res.aggregate("overall")
    assert overall.estimate() == pytest.approx(want["overall"], rel=1e-6)
    assert overall.std_error() == pytest.approx(want["overall_se"], rel=1e-6)
    cohort = res.aggregate("cohort").tidy()
    assert cohort["cohort"].tolist() == want["cohorts"]
    np.testing.assert_allclose(cohort["estimate"], want["cohort_coef"], **EST_TOL)
    np.testing.assert_allclose(cohort["std_error"], want["cohort_se"], **SE_TOL)
    # BJS Test 1 (see the module docstring for the lead convention)
    test = res.info["pretrend_test"]
    assert test["statistic"] == pytest.approx(ref["pretrend"]["F"], rel=1e-6)
    assert test["p_value"] == pytest.approx(ref["pretrend"]["p"], rel=1e-6)
    assert test["df1"] == ref["pretrend"]["df1"]
    # independent by-hand point estimates (pyfixest untreated model + predict)
    np.testing.assert_allclose(_col(res, "estimate"), ref["by_hand"]["coef"], **EST_TOL)
    assert overall.estimate() == pytest.approx(ref["by_hand"]["overall"], rel=1e-6)


# ---------------------------------------------------------------------------- triple diff
@pytest.mark.parametrize("model", ["TD1", "TD2", "TD3"])
@pytest.mark.parametrize("method", ["iid", "hetero", "cluster", "cr2"])
def test_triple_diff_matches_pyfixest_and_lsdv(cells, model, method):
    ref = REF[model]
    res = _fit(TripleDiff(**ref["options"]), cells, inference=method)
    assert res.info["n_obs"] == ref["n"]
    assert res.info["n_fixed_effect_parameters"] == ref["fixed_effect_rank"]
    k = len(ref["terms"])
    np.testing.assert_allclose(_col(res, "estimate")[:k], ref["coef"], **EST_TOL)
    np.testing.assert_allclose(_col(res, "estimate")[:k], ref["lsdv_coef"], **EST_TOL)
    np.testing.assert_allclose(_col(res, "std_error")[:k], ref["se"][method], **SE_TOL)
    if method in ref["df"]:
        np.testing.assert_allclose(res._table["df"][:k], ref["df"][method], **SE_TOL)


def test_triple_diff_iid_differs_from_pyfixest_only_by_its_parameter_count(cells):
    ref = REF["TD3"]
    res = _fit(TripleDiff(**ref["options"]), cells, inference="iid")
    n, k = ref["n"], 1
    ratio = np.sqrt((n - k - ref["fixed_effect_rank"]) / (n - ref["alternatives"]["pyfixest_df_k"]))
    assert res.std_error("DDD") * ratio == pytest.approx(
        ref["alternatives"]["pyfixest_iid_se"][0], rel=1e-6
    )


def test_saturated_triple_diff_matches_diff_diff():
    ref = REF["TD4"]
    ind = pd.DataFrame(PAYLOAD["data"]["ddd_individuals"])
    ind["treat"] = ind["state"] * ind["period"]
    res = _fit(TripleDiff(**ref["options"]), ind, inference="hetero")
    assert res.estimate("DDD") == pytest.approx(ref["coef"][0], rel=1e-6)
    assert res.estimate("DDD") == pytest.approx(ref["by_hand_means"], rel=1e-6)
    assert res.estimate("DDD") == pytest.approx(ref["pyfixest_coef"], rel=1e-6)
