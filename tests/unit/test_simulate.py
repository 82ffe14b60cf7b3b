"""The Bergen simulator: reproducibility, chunking, structure and the planted effects."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from evalkit import simulate
from evalkit.errors import DesignError
from evalkit.simulate import SimulatedData, bergen_rates
from evalkit.simulate.bergen import CITIES, GROUPS, MEASURES, ROW_EFFECTS, SCHEMA
from evalkit.simulate.bergen_model import BLOCK

SMALL = {"n_persons": 600, "start": "2019-01", "end": "2021-06"}
THREE = [g for g in GROUPS if g != "all"]
ZERO = ("work", "recipient", "duration", "spell")


@pytest.fixture(scope="module")
def sim() -> SimulatedData:
    return bergen_rates(seed=11, n_persons=6000)


@pytest.fixture(scope="module")
def rows(sim) -> pd.DataFrame:
    """The data with each row's effect columns beside them."""
    return pd.concat([sim.data, sim.effects], axis=1)


def test_same_seed_gives_identical_data_and_truth():
    a = bergen_rates(seed=5, **SMALL)
    b = bergen_rates(seed=5, **SMALL)
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.effects, b.effects)
    assert json.dumps(dict(a.truth), default=dict) == json.dumps(dict(b.truth), default=dict)
    pd.testing.assert_frame_equal(a.truth_strata, b.truth_strata)


def test_different_seeds_give_different_data():
    a = bergen_rates(seed=5, **SMALL)
    b = bergen_rates(seed=6, **SMALL)
    assert a.data.shape == b.data.shape
    assert not a.data["income"].equals(b.data["income"])
    assert a.content_sha256 != b.content_sha256


def test_data_do_not_depend_on_chunk_size_or_storage(tmp_path):
    n = BLOCK + 700  # a full block and a partial one
    opts = {"seed": 8, "n_persons": n, "start": "2019-12", "end": "2020-06", "burn_in": 3}
    whole = bergen_rates(**opts)  # one chunk
    stored = bergen_rates(**opts, chunk_persons=1, store=tmp_path / "rows")  # two chunks
    assert stored.data is None and len(list((tmp_path / "rows").glob("*.parquet"))) == 2
    back = stored.read().sort_values(["person_id", "period"], ignore_index=True)
    pd.testing.assert_frame_equal(back, whole.data, check_dtype=False, check_categorical=False)
    pd.testing.assert_frame_equal(whole.truth_strata, stored.truth_strata)
    assert whole.content_sha256 == stored.content_sha256
    # a smaller population is a prefix of a larger one
    fewer = bergen_rates(**{**opts, "n_persons": 500})
    pd.testing.assert_frame_equal(fewer.data, whole.data.iloc[: len(fewer.data)])


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
    assert len(d) == 6000 * 72 == sim.n_rows
    assert d.groupby("person_id").size().eq(72).all()
    assert set(d["city"].cat.categories) == set(CITIES)
    assert d["month"].min() == pd.Timestamp("2017-01-01")
    assert d["month"].max() == pd.Timestamp("2022-12-01")
    assert sorted(d["period"].unique()) == list(range(1, 73))
    assert list(sim.effects.columns) == [c for c in ROW_EFFECTS.values() if c]


def test_treatment_columns_mark_bergen_after_each_increase(sim):
    d = sim.data
    bergen = d["city"] == "Bergen"
    assert (d["treated"] == (bergen & (d["month"] >= "2020-03-01"))).all()
    assert (d["treated_2021"] == (bergen & (d["month"] >= "2021-03-01"))).all()
    assert set(d.loc[bergen, "cohort"]) == {39}  # 2020-03 is period 39 from 2017-01
    assert set(d.loc[~bergen, "cohort"]) == {0}


def test_population_is_recent_recipients_plus_inflow(sim):
    d = sim.data
    window = d[d["month"] >= "2018-03-01"].groupby("person_id")["recipient"].max()
    assert window.eq(1).all()  # everyone received assistance from March 2018 on
    before = d[d["month"].between("2018-03-01", "2020-02-01")]
    stock = before.groupby("person_id")["recipient"].max()
    first = d.groupby("person_id")["pre_reform_recipient"].first()
    assert (stock == first).all()
    assert 0.5 < first.mean() < 0.95  # the inflow exists


def test_person_attributes_fixed_and_outcomes_consistent(sim):
    d = sim.data
    fixed = ["city", "female", "family_with_children", "non_western", "pre_reform_recipient"]
    assert d.groupby("person_id")[fixed].nunique().max().max() == 1
    assert d.groupby("person_id")["age"].agg(lambda a: a.max() - a.min()).between(5, 6).all()
    for col in ("recipient", "work", "activity", "measure_or_education", "female"):
        assert set(d[col].unique()) <= {0, 1}
    assert (d["activity"] == (d["work"] | d["measure_or_education"])).all()
    assert (d["income"] == d["earnings"] + d["benefit"]).all()
    assert ((d["benefit"] > 0) == (d["recipient"] == 1)).all()
    assert ((d["earnings"] > 0) <= (d["work"] == 1)).all()
    rec = d["recipient"] == 1
    assert d.loc[rec, "months_on_assistance"].between(1, 12).all()
    assert (d.loc[~rec, "spell_months"] == 0).all() and (d.loc[rec, "spell_months"] >= 1).all()


def test_spells_and_last_twelve_months_follow_receipt(sim):
    d = sim.data[sim.data["person_id"] < 200].sort_values(["person_id", "period"])
    for _, person in d.groupby("person_id"):
        r = person["recipient"].to_numpy()
        spell = person["spell_months"].to_numpy()
        last = person["months_on_assistance"].to_numpy()
        for t in range(12, len(r)):  # the data start after a burn-in: check where known
            assert last[t] == r[t - 11 : t + 1].sum()
            if r[t] and not r[: t + 1].all():
                run = np.argmin(r[t::-1])  # months back to the last month off
                assert spell[t] == run


def test_zero_effects_are_exactly_zero_for_every_group(sim):
    for outcome in ZERO:
        assert all(v == 0.0 for v in sim.truth[outcome].values()), outcome
    # also on any subset of rows, e.g. young women in Bergen after March 2021
    for outcome in ZERO:
        value = sim.truth_where(
            "treated", outcome, "female = 1 AND age < 35 AND month >= DATE '2021-03-01'"
        )
        assert value == 0.0


def test_planted_effects_follow_the_research(sim):
    t = sim.truth
    for outcome in ("activity", "measure", "earnings"):
        assert all(t[outcome][g] < 0 for g in THREE), outcome
    assert t["activity"]["non_western_families_with_children"] == min(t["activity"].values())
    assert t["earnings"]["non_western_families_with_children"] == min(t["earnings"].values())
    # nothing happens to the other persons
    others = "family_with_children = 0 AND non_western = 0"
    for outcome in ("activity", "measure", "earnings"):
        assert sim.truth_where("treated", outcome, others) == 0.0
    # first stage: more per recipient, most for families with children
    assert t["benefit"]["families_with_children"] > t["benefit"]["all"] > 0
    assert sim.truth_where("treated", "benefit", others) > 0
    # and income, earnings plus benefit, falls for families and non-Western immigrants
    assert t["income"]["families_with_children"] < 0 and t["income"]["non_western"] < 0


def test_second_increase_is_a_larger_step(sim):
    by = sim.truth_by_period

    def phases(outcome: str, group: str) -> list[float]:
        part = by[(by["outcome"] == outcome) & (by["group"] == group)]
        return [np.average(p["effect"], weights=p["weight"]) for _, p in part.groupby("phase")]

    for group in THREE:
        for outcome in ("earnings", "activity"):
            first, second = phases(outcome, group)
            assert second - first < first < 0, (outcome, group, first, second)
    # rates rise again; the child benefit families keep came with the first increase
    first, second = phases("benefit", "families_with_children")
    assert second > first > 0


def test_row_effects_are_exact_potential_outcomes():
    with_effect = bergen_rates(seed=9, **SMALL)
    without = bergen_rates(seed=9, effect_scale=0, **SMALL)
    treated = with_effect.data["treated"] == 1
    for column, effect in ROW_EFFECTS.items():
        y1 = with_effect.data[column].astype(np.int64)
        y0 = without.data[column].astype(np.int64)
        if effect is None:
            assert (y1 == y0).all(), column
        else:
            d = with_effect.effects[effect].astype(np.int64)
            assert (y1 - d == y0).all(), column
            assert (d[~treated] == 0).all(), column
    for outcome in MEASURES:
        assert all(v == 0.0 for v in without.truth[outcome].values())


CONDITIONS = {  # SQL condition -> the same selection in pandas
    None: lambda d: d["treated"] == 1,
    "non_western = 1": lambda d: d["non_western"] == 1,
    "pre_reform_recipient = 0 AND family_with_children = 1": lambda d: (
        (d["pre_reform_recipient"] == 0) & (d["family_with_children"] == 1)
    ),
    "month >= DATE '2021-03-01'": lambda d: d["month"] >= "2021-03-01",
    "city = 'Bergen' AND age < 30": lambda d: (d["city"] == "Bergen") & (d["age"] < 30),
    "female = 1 AND period BETWEEN 40 AND 50": lambda d: (
        (d["female"] == 1) & d["period"].between(40, 50)
    ),
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_truth_where_is_the_mean_of_row_effects(sim, rows, condition):
    treated = rows[(rows["treated"] == 1) & CONDITIONS[condition](rows)]
    for outcome, m in MEASURES.items():
        sub = treated[treated["recipient"] == 1] if m.get("where") else treated
        effect = ROW_EFFECTS[m["column"]]
        brute = float(sub[effect].mean()) if effect else 0.0
        assert sim.truth_where("treated", outcome, condition) == pytest.approx(
            brute, rel=1e-12, abs=1e-12
        ), (outcome, condition)


def test_truth_where_accepts_derived_columns_and_refuses_unknowns(sim):
    value = sim.truth_where(
        "treated", "earnings", "late = 1", columns={"late": "CAST(period >= 51 AS INTEGER)"}
    )
    assert value == pytest.approx(sim.truth_where("treated", "earnings", "period >= 51"))
    assert sim.truth_where("treated_2021", "earnings", None) is None
    assert sim.truth_where("treated", "no_such_outcome", None) is None
    assert sim.truth_where("treated", "earnings", "no_such_column = 1") is None
    assert sim.truth_where("treated", "earnings", "city = 'Oslo'") is None  # no treated row


def test_covid_hits_every_city_through_unemployment(sim):
    d = sim.data
    u = d.groupby(["city", "month"], observed=True)["city_unemployment"].first().unstack()
    jump = u.loc[:, "2020-03-01":"2021-12-01"].sub(u["2020-02-01"], axis=0)
    assert (jump["2020-04-01"] > 4).all()
    assert len({tuple(path.round(3)) for path in jump.to_numpy()}) == len(CITIES)
    assert (u["2022-12-01"] - u["2020-02-01"] < 0.2 * jump["2020-04-01"]).all()  # recovery
    controls = d[d["city"] != "Bergen"]
    spring = controls["month"].dt.month.isin([4, 5, 6])
    year = controls["month"].dt.year
    share = controls[spring].groupby([year[spring], "non_western"])["work"].mean().unstack()
    drop = share.loc[2020] - share.loc[2019]
    assert drop[0] < -0.03 and drop[1] < drop[0]


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"n_persons": 0}, "n_persons"),
        ({"n_persons": 2.5}, "n_persons"),
        ({"reform": "not a month"}, "reform"),
        ({"reform": "2016-01"}, "reform"),
        ({"second_reform": "2019-01"}, "second_reform"),
        ({"covid": "soon"}, "covid"),
        ({"effect_scale": -1}, "effect_scale"),
        ({"chunk_persons": 0}, "chunk_persons"),
        ({"seed": -3}, "seed"),
        ({"n_persons": 10**12}, "n_persons"),
    ],
)
def test_bad_options_name_the_option(options, name):
    with pytest.raises(DesignError) as err:
        bergen_rates(**{**SMALL, **options})
    assert err.value.column == name


def test_store_must_be_new_or_empty(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DesignError, match="not empty") as err:
        bergen_rates(seed=1, **SMALL, store=tmp_path)
    assert err.value.column == "store"


def test_simulated_data_is_frozen_and_truth_read_only(sim):
    with pytest.raises(dataclasses.FrozenInstanceError):
        sim.truth = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        sim.truth["recipient"]["all"] = 1.0  # type: ignore[index]
    assert (
        sim.truth_for("treated", "earnings", "non_western") == sim.truth["earnings"]["non_western"]
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
    assert not set(back.columns) & set(sim.effects.columns)  # effects are never saved
    meta = json.loads((tmp_path / "sim.truth.json").read_text())
    assert meta["truth"]["earnings"]["all"] == pytest.approx(sim.truth["earnings"]["all"])
    assert meta["parameters"]["seed"] == 1


@pytest.mark.slow
def test_data_do_not_depend_on_the_number_of_processes(tmp_path):
    opts = {"seed": 3, "n_persons": 2 * BLOCK + 5, "start": "2020-01", "end": "2020-06"}
    serial = bergen_rates(**opts, chunk_persons=BLOCK, burn_in=2)
    pooled = bergen_rates(**opts, chunk_persons=BLOCK, burn_in=2, jobs=2, store=tmp_path / "rows")
    assert serial.content_sha256 == pooled.content_sha256
    pd.testing.assert_frame_equal(serial.truth_strata, pooled.truth_strata)
