"""The register-like simulators: reproducibility, structure, planted effects."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit import simulate
from evalkit.errors import DesignError
from evalkit.simulate import SimulatedData, bergen_rates
from evalkit.simulate.bergen import CITIES, GROUPS, OUTCOMES, SCHEMA

SMALL = {"n_persons": 600, "start": "2019-01", "end": "2021-06"}


@pytest.fixture(scope="module")
def sim() -> SimulatedData:
    return bergen_rates(seed=11, n_persons=4000)


def test_same_seed_gives_identical_data_and_truth():
    a = bergen_rates(seed=5, **SMALL)
    b = bergen_rates(seed=5, **SMALL)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert json.dumps(dict(a.truth), default=dict) == json.dumps(dict(b.truth), default=dict)
    pd.testing.assert_frame_equal(a.truth_by_period, b.truth_by_period)


def test_different_seeds_give_different_data():
    a = bergen_rates(seed=5, **SMALL)
    b = bergen_rates(seed=6, **SMALL)
    assert a.data.shape == b.data.shape
    assert not a.data["income"].equals(b.data["income"])
    assert a.truth["recipient"]["all"] != b.truth["recipient"]["all"]


def test_no_global_random_state_is_used():
    np.random.seed(0)  # noqa: NPY002 - the legacy global state is what is checked
    before = np.random.random()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    bergen_rates(seed=1, **SMALL)
    assert np.random.random() == before  # noqa: NPY002


def test_columns_dtypes_and_panel_shape(sim):
    d = sim.data
    assert list(d.columns) == list(SCHEMA)
    assert {c: str(t) for c, t in d.dtypes.items()} == SCHEMA
    assert len(d) == 4000 * 72
    assert d.groupby("person_id").size().eq(72).all()
    assert set(d["city"].cat.categories) == set(CITIES)
    assert d["month"].min() == pd.Timestamp("2017-01-01")
    assert d["month"].max() == pd.Timestamp("2022-12-01")
    assert sorted(d["period"].unique()) == list(range(1, 73))


def test_treatment_columns_mark_bergen_after_each_increase(sim):
    d = sim.data
    bergen = d["city"] == "Bergen"
    assert (d["treated"] == (bergen & (d["month"] >= "2020-03-01"))).all()
    assert (d["treated_2021"] == (bergen & (d["month"] >= "2021-03-01"))).all()
    assert set(d.loc[bergen, "cohort"]) == {39}  # 2020-03 is period 39 from 2017-01
    assert set(d.loc[~bergen, "cohort"]) == {0}


def test_person_attributes_are_fixed_and_outcomes_in_range(sim):
    d = sim.data
    per_person = d.groupby("person_id")[["city", "family_with_children", "non_western"]]
    assert per_person.nunique().max().max() == 1
    for col in ("recipient", "work", "activity", "family_with_children", "non_western"):
        assert set(d[col].unique()) <= {0, 1}
    rec = d["recipient"] == 1
    assert d.loc[rec, "months_on_assistance"].between(1, 12).all()
    assert d["months_on_assistance"].between(0, 12).all()
    assert (d["income"] >= 0).all()


def test_receipt_comes_in_spells(sim):
    d = sim.data.sort_values(["person_id", "period"])
    rec = d["recipient"].to_numpy()
    same = d["person_id"].to_numpy()[1:] == d["person_id"].to_numpy()[:-1]
    stay = (rec[1:] == 1) & (rec[:-1] == 1) & same
    # persistence: P(on next month | on) far above the share on
    assert stay.sum() / ((rec[:-1] == 1) & same).sum() > 2 * rec.mean()


def test_covid_shock_hits_all_cities_and_immigrants_harder():
    d = bergen_rates(seed=2, n_persons=20_000).data
    controls = d[d["city"] != "Bergen"]
    spring = controls["month"].dt.month.isin([4, 5, 6])
    year = controls["month"].dt.year
    share = controls[spring].groupby([year[spring], "non_western"])["work"].mean().unstack()
    drop = share.loc[2020] - share.loc[2019]
    assert drop[0] < -0.02 and drop[1] < -0.045
    assert drop[1] < drop[0] - 0.015


def test_truth_covers_every_outcome_and_group(sim):
    assert set(sim.truth) == set(OUTCOMES)
    for outcome in OUTCOMES:
        assert set(sim.truth[outcome]) == set(GROUPS)
        assert all(np.isfinite(v) for v in sim.truth[outcome].values())
    assert sim.term == "treated"
    assert set(sim.truth_by_period["phase"]) == {"first", "second"}


def test_planted_effects_have_the_documented_signs_and_ordering(sim):
    rec, work, inc = sim.truth["recipient"], sim.truth["work"], sim.truth["income"]
    assert (
        0 < rec["all"] < rec["families_with_children"] < rec["non_western_families_with_children"]
    )
    assert work["non_western_families_with_children"] < work["all"] < 0
    assert 0 < inc["all"] < inc["non_western_families_with_children"]
    assert sim.truth["activity"]["all"] > 0


def test_second_increase_is_larger():
    sim = bergen_rates(seed=3, n_persons=3000)
    by = sim.truth_by_period
    rec = by[(by["outcome"] == "recipient") & (by["group"] == "all")]
    first = np.average(
        rec.loc[rec.phase == "first", "effect"], weights=rec.loc[rec.phase == "first", "weight"]
    )
    second = np.average(
        rec.loc[rec.phase == "second", "effect"], weights=rec.loc[rec.phase == "second", "weight"]
    )
    assert second > 1.2 * first > 0


def test_effect_scale_zero_plants_nothing():
    sim = bergen_rates(seed=4, effect_scale=0, **SMALL)
    for outcome in OUTCOMES:
        for value in sim.truth[outcome].values():
            assert value == 0.0


def test_truth_is_the_effect_on_the_treated_person_months():
    # with and without effects, only Bergen's treated months differ (common random numbers)
    with_effect = bergen_rates(seed=9, **SMALL).data
    without = bergen_rates(seed=9, effect_scale=0, **SMALL).data
    diff = with_effect["recipient"].astype(int) - without["recipient"].astype(int)
    assert (diff[with_effect["treated"] == 0] == 0).all()
    planted = bergen_rates(seed=9, **SMALL).truth["recipient"]["all"]
    assert diff[with_effect["treated"] == 1].mean() == pytest.approx(planted, abs=1e-12)


def test_scale_multiplies_persons():
    sim = bergen_rates(seed=1, n_persons=100, scale=3, start="2020-01", end="2020-12")
    assert sim.data["person_id"].nunique() == 300
    assert sim.parameters["scale"] == 3.0


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"n_persons": 0}, "n_persons"),
        ({"n_persons": 2.5}, "n_persons"),
        ({"reform": "not a month"}, "reform"),
        ({"reform": "2016-01"}, "reform"),
        ({"covid": "2020-03"}, "covid"),
        ({"effect_scale": -1}, "effect_scale"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_options_name_the_option(options, name):
    with pytest.raises(DesignError) as err:
        bergen_rates(**{**SMALL, **options})
    assert err.value.column == name


def test_simulated_data_is_frozen_and_truth_read_only(sim):
    with pytest.raises(dataclasses.FrozenInstanceError):
        sim.truth = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        sim.truth["recipient"]["all"] = 1.0  # type: ignore[index]
    assert (
        sim.truth_for("treated", "recipient", "non_western")
        == sim.truth["recipient"]["non_western"]
    )
    assert sim.truth_for("treated", "no_such_outcome") is None
    assert sim.seed == 11


def test_registry_and_schema():
    assert simulate.get("bergen_rates") is bergen_rates
    assert simulate.schema("bergen_rates") == SCHEMA
    with pytest.raises(DesignError, match="did you mean 'bergen_rates'"):
        simulate.get("bergen_rate")


def test_save_writes_parquet_and_truth(tmp_path):
    sim = bergen_rates(seed=1, **SMALL)
    path = sim.save(tmp_path / "sim.parquet")
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, sim.data, check_dtype=False, check_categorical=False)
    meta = json.loads((tmp_path / "sim.truth.json").read_text())
    assert meta["truth"]["recipient"]["all"] == pytest.approx(sim.truth["recipient"]["all"])
    assert meta["parameters"]["seed"] == 1


@pytest.mark.slow
def test_planted_effects_are_recovered_on_a_large_sample():
    """TWFE on city x month cells finds the planted effects when Bergen is large.

    City-level shocks are switched off (with one treated city they do not average out,
    however many persons there are); what remains is sampling noise of about a quarter
    of each tolerance. Duration is left out: it is a mean among recipients, whose
    composition reacts to the COVID shock differently in cities with different levels of
    receipt, so parallel trends do not hold exactly for it.
    """
    from evalkit.data.collapse import collapse
    from evalkit.did import TWFE

    sim = bergen_rates(seed=2024, n_persons=200_000, city_noise=0)
    tolerance = {"recipient": 0.004, "work": 0.005, "activity": 0.004, "income": 100.0}
    measures = {k: "mean" for k in tolerance}
    for group, where in GROUPS.items():
        cells = collapse(sim.data, by=["city", "month", "treated"], measures=measures, where=where)
        factor = 2.0 if group.startswith("non_western") else 1.0
        for outcome, tol in tolerance.items():
            est = TWFE(outcome=outcome, treatment="treated", unit="city", time="month", weights="n")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = est.fit(cells, inference="none")
            truth = sim.truth[outcome][group]
            assert abs(res.estimate() - truth) < factor * tol, (group, outcome, truth)
