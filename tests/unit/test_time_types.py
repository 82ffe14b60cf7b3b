"""One rule for types in every role; dates and pandas periods as time in every estimator.

Numbers stored as text are rejected in every role with the P004 hint; a time column of
dates or of pandas periods (with the cohort in the same form) gives exactly the
estimates of the same design coded as consecutive integers, with periods reported as
pandas Period labels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.data import Panel
from evalkit.did import (
    TWFE,
    CallawaySantAnna,
    EventStudy,
    ImputationDiD,
    SunAbraham,
    TripleDiff,
)
from evalkit.errors import DataError, NotEstimableError

START = pd.Period("2019-11", "M")  # month code 1
MONTHS = [m for m in range(1, 13) if m != 7]  # month 7 is missing for everybody: a gap


def staggered(seed: int = 0, n_units: int = 60) -> pd.DataFrame:
    """Integer-coded staggered adoption over months 1..12 (7 missing), three cohorts."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), len(MONTHS))
    month = np.tile(MONTHS, n_units)
    cohort = np.array([0, 5, 9, 11])[np.arange(n_units) % 4][unit]
    post = ((cohort > 0) & (month >= cohort)).astype(int)
    y = (
        rng.normal(size=n_units)[unit]
        + 0.1 * month
        + post * (0.5 + 0.1 * (month - cohort))
        + rng.normal(scale=0.5, size=unit.size)
    )
    return pd.DataFrame({"id": unit, "m": month, "g": cohort, "post": post, "y": y})


def cells(seed: int = 0, n_units: int = 8) -> pd.DataFrame:
    """Integer-coded unit x month x group cells for TripleDiff (two treated cohorts)."""
    rng = np.random.default_rng(seed)
    unit, month, kids = (
        a.ravel() for a in np.meshgrid(np.arange(n_units), MONTHS, [0, 1], indexing="ij")
    )
    cohort = np.array([0, 5, 0, 9])[unit % 4]
    post = ((cohort > 0) & (month >= cohort)).astype(int)
    y = (
        rng.normal(size=(n_units, 2))[unit, kids]
        + rng.normal(size=(13, 2))[month, kids]
        + rng.normal(size=(n_units, 13))[unit, month]
        + 0.5 * post * kids
        + rng.normal(scale=0.3, size=unit.size)
    )
    hh = np.where(kids == 1, "kids", "other")
    return pd.DataFrame({"id": unit, "m": month, "g": cohort, "post": post, "y": y, "hh": hh})


def as_dates(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The same data with month and cohort as datetime64 or as Period[M] columns."""
    out = df.copy()
    month = [START + int(m) - 1 for m in df["m"]]
    cohort = [START + int(g) - 1 if g > 0 else pd.NaT for g in df["g"]]
    out["m"] = pd.Series(pd.PeriodIndex(month, freq="M"), index=df.index)
    out["g"] = pd.Series(pd.PeriodIndex(cohort, freq="M"), index=df.index)
    if kind == "datetime":
        out["m"] = out["m"].dt.to_timestamp()
        out["g"] = out["g"].dt.to_timestamp()
    return out


def quiet_fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(df, **kw)


ROLES = {"outcome": "y", "unit": "id", "time": "m"}
ESTIMATORS = {
    "CallawaySantAnna": CallawaySantAnna(**ROLES, cohort="g"),
    "CallawaySantAnna-notyet": CallawaySantAnna(
        **ROLES, cohort="g", control_group="not_yet_treated"
    ),
    "SunAbraham": SunAbraham(**ROLES, cohort="g"),
    "ImputationDiD": ImputationDiD(**ROLES, cohort="g"),
    "EventStudy": EventStudy(**ROLES, cohort="g"),
    "EventStudy-treatment": EventStudy(**ROLES, treatment="post"),
    "TWFE": TWFE(**ROLES, treatment="post"),
    "TripleDiff-cohort": TripleDiff(**ROLES, group="hh", target="kids", cohort="g"),
    "TripleDiff": TripleDiff(**ROLES, group="hh", target="kids", treatment="post"),
}


def to_period(value):
    return None if value is None else START + int(value) - 1


@pytest.mark.parametrize("kind", ["datetime", "period"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_dates_and_periods_give_the_integer_coded_estimates(name, kind):
    est = ESTIMATORS[name]
    df = cells() if name.startswith("TripleDiff") else staggered()
    dated = as_dates(df, kind)
    before = dated.copy()
    ref = quiet_fit(est, df).tidy()
    got = quiet_fit(est, dated).tidy()
    pd.testing.assert_frame_equal(dated, before)  # the caller's frame is untouched
    assert len(got) == len(ref) > 0
    np.testing.assert_allclose(got["estimate"], ref["estimate"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["std_error"], ref["std_error"], rtol=1e-10, atol=1e-12)
    assert got["term"].tolist() == ref["term"].tolist()
    if "event_time" in ref:  # counted in months, across the missing month
        assert got["event_time"].tolist() == ref["event_time"].tolist()
    for key in ("cohort", "time"):  # periods reported as pandas Period labels
        if key in ref:
            assert got[key].tolist() == [to_period(v) for v in ref[key]]


@pytest.mark.parametrize("kind", ["datetime", "period"])
def test_aggregates_are_keyed_by_periods(kind):
    est = CallawaySantAnna(**ROLES, cohort="g")
    ref, got = quiet_fit(est, staggered()), quiet_fit(est, as_dates(staggered(), kind))
    for how, key in (("cohort", "cohort"), ("calendar", "time"), ("event_time", "event_time")):
        a, b = ref.aggregate(how).tidy(), got.aggregate(how).tidy()
        np.testing.assert_allclose(b["estimate"], a["estimate"], rtol=1e-10)
        expected = a[key].tolist() if key == "event_time" else [to_period(v) for v in a[key]]
        assert b[key].tolist() == expected
    assert got.estimate(
        "ATT(g,t)", cohort=pd.Period("2020-03", "M"), time=pd.Period("2020-06", "M")
    ) == (ref.estimate("ATT(g,t)", cohort=5, time=8))
    assert got.to_dict()["tidy"][0]["cohort"] == "2020-03"  # JSON-safe


def test_datetime_unit_is_the_coarsest_that_tells_dates_apart():
    quarters = pd.to_datetime(["2020-01-01", "2020-04-01", "2020-07-01", "2020-10-01"] * 2)
    df = pd.DataFrame({"id": np.repeat([1, 2], 4), "t": quarters, "y": np.arange(8.0)})
    panel = Panel(df, unit="id", time="t", outcome="y")
    assert panel.periods.unit == "quarter" and panel.times.tolist() == [1, 2, 3, 4]
    assert panel.label(2) == pd.Period("2020Q2", "Q")
    month_ends = df.assign(
        t=pd.to_datetime(["2020-01-31", "2020-02-29", "2020-03-31", "2020-05-31"] * 2)
    )
    panel = Panel(month_ends, unit="id", time="t", outcome="y")
    assert panel.periods.unit == "month" and panel.times.tolist() == [1, 2, 3, 5]
    assert panel.describe()["time_unit"] == "month"


@pytest.mark.parametrize("role", ["outcome", "treatment", "weights", "covariates"])
def test_numbers_stored_as_text_are_rejected_in_every_role(role):
    df = staggered().assign(w=1.0, x=0.5)
    column = {"outcome": "y", "treatment": "post", "weights": "w", "covariates": "x"}[role]
    df[column] = df[column].astype(str)
    est = TWFE(**ROLES, treatment="post", weights="w", covariates=["x"])
    with pytest.raises(
        DataError, match=rf"\[P004\] column '{column}' \(role {role}\) holds numbers stored as text"
    ) as err:
        est.fit(df)
    assert err.value.column == column
    assert f"df['{column}'] = pd.to_numeric(df['{column}'])" in str(err.value)


def test_text_cohort_and_categorical_treatment_follow_the_same_rule():
    df = staggered()
    with pytest.raises(
        DataError, match=r"\[P004\] column 'g' \(role cohort\) holds numbers stored as text"
    ):
        CallawaySantAnna(**ROLES, cohort="g").fit(df.assign(g=df["g"].astype(str)))
    with pytest.raises(DataError, match=r"holds numbers stored as categories"):
        TWFE(**ROLES, treatment="post").fit(df.assign(post=df["post"].astype("category")))
    with pytest.raises(DataError, match=r"2 non-numeric value\(s\), e.g. 'yes'"):
        TWFE(**ROLES, treatment="post").fit(df.assign(post=["yes", "no"] + [0] * (len(df) - 2)))


@pytest.mark.parametrize("est", [ESTIMATORS["TWFE"], ESTIMATORS["CallawaySantAnna"]])
def test_time_as_text_is_rejected_alike_and_the_hint_works(est):
    df = staggered()
    with pytest.raises(
        DataError, match=r"\[P004\] time column 'm' holds numbers stored as text"
    ) as err:
        quiet_fit(est, df.assign(m=df["m"].astype(str)))
    assert "pd.to_numeric(df['m'])" in str(err.value)
    dated = as_dates(df, "period")
    text = dated.assign(m=dated["m"].astype(str), g=dated["g"].astype(str).replace("NaT", None))
    with pytest.raises(DataError, match=r"\[P004\] time column 'm' must hold numbers") as err:
        quiet_fit(est, text)
    assert "pd.to_datetime(df['m'])" in str(err.value) and "to_period('M')" in str(err.value)
    fixed = text.assign(m=pd.to_datetime(text["m"]), g=pd.to_datetime(text["g"]))  # the hint
    np.testing.assert_allclose(
        quiet_fit(est, fixed).tidy()["estimate"], quiet_fit(est, df).tidy()["estimate"]
    )


def test_cohort_must_be_in_the_unit_of_time():
    dated = as_dates(staggered(), "period")
    est = CallawaySantAnna(**ROLES, cohort="g")
    with pytest.raises(DataError, match=r"\[P004\] cohort column 'g' holds periods of unit Q-DEC"):
        est.fit(dated.assign(g=dated["g"].dt.asfreq("Q")))
    with pytest.raises(DataError, match=r"\[P004\] cohort column 'g' must hold dates or periods"):
        est.fit(dated.assign(g=staggered()["g"]))  # integer cohort with a Period time
    with pytest.raises(DataError, match=r"\[P004\] cohort column 'g' holds dates or periods but"):
        est.fit(staggered().assign(g=dated["g"]))  # Period cohort with an integer time


def test_boolean_time_is_rejected():
    df = staggered()
    with pytest.raises(DataError, match=r"\[P004\] time column 'm' is boolean"):
        TWFE(**ROLES, treatment="post").fit(df.assign(m=df["m"] > 6))


def test_triple_diff_without_any_non_singleton_cell_says_so():
    df = staggered().assign(hh=lambda d: np.where(d["id"] % 2 == 0, "kids", "other"))
    with pytest.raises(NotEstimableError, match="no rows remain after dropping singleton"):
        quiet_fit(TripleDiff(**ROLES, group="hh", target="kids", treatment="post"), df)


def test_subgroups_keep_the_period_unit_of_the_whole_data():
    """by=: a subgroup seen only in quarter months still counts event times in months."""
    df = staggered()
    quarterly = (df["id"] >= 40) & df["m"].isin([1, 4, 10, 12])
    df = df[(df["id"] < 40) | quarterly].copy()
    df.loc[df["id"] >= 40, "g"] = np.where(df.loc[df["id"] >= 40, "id"] % 2 == 0, 10, 0)
    df["post"] = ((df["g"] > 0) & (df["m"] >= df["g"])).astype(int)
    df["grp"] = np.where(df["id"] >= 40, "b", "a")
    est = EventStudy(**ROLES, cohort="g", reference=-6)  # b has no month -1
    by = quiet_fit(est, as_dates(df, "datetime"), by="grp").tidy()
    alone = quiet_fit(est, as_dates(df[df["grp"] == "b"], "period")).tidy()
    integer = quiet_fit(est, df[df["grp"] == "b"]).tidy()
    key = "subgroup" if "subgroup" in by else "group"  # the key's name in the result
    rows = by[(by[key] == "b") & (by["term"] == "ATT(e)")]
    assert rows["event_time"].tolist() == alone["event_time"].tolist()
    assert rows["event_time"].tolist() == integer["event_time"].tolist() == [-9, 0, 2]
    np.testing.assert_allclose(rows["estimate"], integer["estimate"], rtol=1e-10)
