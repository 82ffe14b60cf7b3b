"""The service-integration youth simulator: structure, reproducibility, exact truths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit import simulate
from evalkit.errors import DesignError
from evalkit.simulate.integration import integration_youth
from evalkit.simulate.integration.youth import COUNTRIES, EFFECTS, SCHEMA


@pytest.fixture(scope="module")
def sim():
    return integration_youth(seed=7, n_persons=6000)


def test_registered_with_schema_and_options():
    assert simulate.get("integration_youth") is integration_youth
    assert simulate.schema("integration_youth") == SCHEMA
    assert simulate.options("integration_youth")["select_from"] == 2021


def test_columns_dtypes_and_ranges(sim):
    d = sim.data
    assert list(d.columns) == list(SCHEMA)
    assert {c: str(t) for c, t in d.dtypes.items()} == SCHEMA
    assert d["age"].between(16, 29).all()
    assert d["year"].between(2016, 2023).all()
    assert not d.duplicated(["person_id", "year"]).any()
    # exit is a transition out of NEET: only where the person was NEET the year before
    assert (d.loc[d["exit"] == 1, "neet_prev"] == 1).all()
    assert (d.loc[d["exit"] == 1, "neet"] == 0).all()
    # neet_prev is last year's neet for persons seen in consecutive years
    s = d.sort_values(["person_id", "year"])
    same = s["person_id"].eq(s["person_id"].shift()) & s["year"].eq(s["year"].shift() + 1)
    assert (s.loc[same, "neet_prev"].to_numpy() == s["neet"].shift()[same].to_numpy()).all()
    # municipality-level columns are constant within municipality
    per_m = d.groupby("municipality", observed=True)[
        ["integration", "proactive", "reorg_year", "unemployment", "country"]
    ].nunique()
    assert (per_m == 1).all().all()
    assert d.loc[d["case_study"] == 1, "municipality"].nunique() == 6
    cases = d[d["case_study"] == 1].groupby("municipality", observed=True)["proactive"].first()
    assert cases.sum() == 3
    treated = d["reorganised"] == 1
    assert (d.loc[treated, "year"] >= d.loc[treated, "reorg_year"]).all()
    assert set(d["reorg_year"].unique()) <= {0, 2018, 2019, 2020, 2021}


def test_neet_levels_are_plausible(sim):
    share = sim.data.groupby("country", observed=True)["neet"].mean()
    assert share.between(0.05, 0.16).all(), share


def test_same_seed_same_data_and_truth():
    a = integration_youth(seed=3, n_persons=1500)
    b = integration_youth(seed=3, n_persons=1500)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert dict(a.truth_terms) == dict(b.truth_terms)
    c = integration_youth(seed=4, n_persons=1500)
    assert not a.data["neet"].equals(c.data["neet"])


def test_exit_truths_are_the_planted_effects(sim):
    t = sim.truth_terms
    for term, (standard, complex_) in EFFECTS.items():
        assert t[("exit", term, "at_risk_standard")] == pytest.approx(standard, abs=1e-12)
        assert t[("exit", term, "at_risk_complex")] == pytest.approx(complex_, abs=1e-12)
        assert standard < t[("exit", term, "at_risk")] < complex_
    # the strata reproduce the group truths (truth_where over high_need x country)
    assert sim.truth_where("reorganised", "exit", "high_need = 1") == pytest.approx(0.08)
    d = sim.data
    rows = d[(d["neet_prev"] == 1) & (d["reorganised"] == 1) & (d["country"] == "Norway")]
    share = rows["high_need"].mean()
    expected = 0.08 * share + 0.03 * (1 - share)
    assert sim.truth_where("reorganised", "exit", "country = 'Norway'") == pytest.approx(expected)
    assert t[("exit", "reorganised", "at_risk_norway")] == pytest.approx(expected)


def test_effect_scale_zero_gives_zero_effects():
    s = integration_youth(seed=3, n_persons=1500, effect_scale=0)
    assert all(v == 0 for k, v in s.truth_terms.items() if k[0] == "exit")


def test_selection_truths(sim):
    t = sim.truth_terms
    outliers = sim.parameters["outliers"]
    for country, group in (("Norway", "norway"), ("Sweden", "sweden"), ("Denmark", "denmark")):
        ratios = {k[1][6:]: v for k, v in t.items() if k[2] == group and k[1].startswith("ratio:")}
        above = {
            k[1][8:] for k, v in t.items() if k[2] == group and k[1].startswith("p_above:") and v
        }
        below = {
            k[1][8:] for k, v in t.items() if k[2] == group and k[1].startswith("p_below:") and v
        }
        assert len(above) == len(below) == 3
        ranked = sorted(ratios, key=ratios.get)
        assert set(ranked[-3:]) == above and set(ranked[:3]) == below
        # the planted outliers are the true extremes (as many as there are, up to k),
        # and the ratios straddle 1
        for side, true_set in (("above", above), ("below", below)):
            planted = set(outliers[country][side])
            assert planted <= true_set if len(planted) <= 3 else true_set <= planted
        assert min(ratios.values()) < 1 < max(ratios.values())


def test_random_outliers_are_exchangeable_and_fixed_ones_exactly_n():
    # "random" (default): each municipality above / below with probability n / M, so the
    # count per side varies around n and small municipalities are planted too;
    # "fixed": exactly n per side, only between the 40% and 90% size quantiles
    counts, small = [], 0
    for seed in range(6):
        s = integration_youth(seed=seed, n_persons=1500)
        assert s.parameters["outlier_rule"] == "random"
        sizes = s.data.groupby("municipality", observed=True)["person_id"].nunique()
        for country, planted in s.parameters["outliers"].items():
            counts += [len(planted["above"]), len(planted["below"])]
            assert not set(planted["above"]) & set(planted["below"])
            own = sizes[sizes.index.str.startswith(COUNTRIES[country])]
            small += sum(own[c] <= own.quantile(0.4) for c in planted["above"] + planted["below"])
    assert len(set(counts)) > 1 and 1.5 < np.mean(counts) < 4.5, counts
    assert small > 0
    f = integration_youth(seed=1, n_persons=1500, outlier_rule="fixed")
    assert all(len(v["above"]) == len(v["below"]) == 3 for v in f.parameters["outliers"].values())


def test_selection_truth_matches_the_observed_counts_on_a_large_sample():
    # the true ratio is the expected count over its structural prediction: on average over
    # many persons, observed NEET person-years in the window track the expected count
    s = integration_youth(
        seed=5, n_persons=60_000, n_outliers=1, outlier_effect=1.0, outlier_rule="fixed"
    )
    d = s.data[s.data["year"] >= 2021]
    norway = d[d["country"] == "Norway"]
    code = s.parameters["outliers"]["Norway"]["above"][0]
    low = s.parameters["outliers"]["Norway"]["below"][0]
    obs = norway.groupby("municipality", observed=True)["neet"].mean()
    assert obs[code] > norway["neet"].mean() > obs[low]
    assert s.truth_terms[("neet", f"ratio:{code}", "norway")] > 1.5


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("n_persons", 10),
        ("n_municipalities", [40, 30]),
        ("select_from", 2016),
        ("effect_scale", 2.0),
        ("k", 0),
        ("outlier_rule", "size"),
    ],
)
def test_bad_options_raise_with_the_option_named(option, value):
    with pytest.raises(DesignError) as err:
        integration_youth(seed=1, **({"n_persons": 1000} | {option: value}))
    assert err.value.column == option


def test_no_global_random_state():
    np.random.seed(0)  # noqa: NPY002
    before = np.random.random()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    integration_youth(seed=1, n_persons=800)
    assert np.random.random() == before  # noqa: NPY002
