"""Truths of the staggered-DiD and configuration terms of the service-integration study.

The truth lookup (study/truth.py, rules ``cohort_time`` and ``cohort_event_time``, from
the simulator's ``truth_strata``) is checked against a brute-force computation from the
rows of a small simulation: every at-risk person-year of a reorganised municipality has
the planted effect ``EFFECTS["reorganised"][high_need] * effect_scale`` on its exit
probability, and no other row has one.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pytest

from evalkit.did import CallawaySantAnna, ImputationDiD
from evalkit.simulate.integration.youth import EFFECTS, integration_youth
from evalkit.study import load_study
from evalkit.study.truth import _strata_condition, truth_lookup

STUDY = pathlib.Path(__file__).resolve().parents[2] / "studies" / "service_integration"
SCALE = 1.3


@pytest.fixture(scope="module")
def sim():
    return integration_youth(seed=11, n_persons=6000, effect_scale=SCALE)


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY, check_data=False)


def _spec(study, analysis_id):
    (spec,) = [s for s in study.analyses if s.id == analysis_id]
    return spec


def _row_effects(sim) -> pd.DataFrame:
    """At-risk rows with each row's planted effect of the reorganisation (brute force)."""
    d = sim.data
    rows = d[d["neet_prev"] == 1].copy()
    standard, complex_ = EFFECTS["reorganised"]
    per_need = np.where(rows["high_need"] == 1, complex_, standard) * SCALE
    rows["effect"] = per_need * rows["reorganised"]
    return rows


def test_estimators_declare_the_staggered_rules():
    assert CallawaySantAnna.effect_average == {"ATT(g,t)": "cohort_time"}
    assert ImputationDiD.effect_average == {"ATT(e)": "cohort_event_time"}


def test_group_time_truth_is_the_mean_effect_of_the_cohort_in_the_year(sim, study):
    rows = _row_effects(sim)
    cohorts = sorted(c for c in rows["reorg_year"].unique() if c > 0)
    years = sorted(rows["year"].unique())
    asked = [{"term": "ATT(g,t)", "cohort": int(g), "time": int(t)} for g in cohorts for t in years]
    got = truth_lookup(study, sim, _spec(study, "reorg_cs"))(asked)
    n_post = 0
    for r, value in zip(asked, got, strict=True):
        cell = rows[(rows["reorg_year"] == r["cohort"]) & (rows["year"] == r["time"])]
        brute = float(cell["effect"].mean()) if len(cell) else 0.0
        assert value == pytest.approx(brute, abs=1e-12), r
        if r["time"] < r["cohort"]:
            assert value == 0.0  # no anticipation planted
        else:
            n_post += 1
            standard, complex_ = EFFECTS["reorganised"]
            assert SCALE * standard <= value <= SCALE * complex_
    assert n_post >= 10


def test_event_time_truth_weights_municipality_years_equally(sim, study):
    # the study averages the at-risk rows within municipality x year before fitting,
    # so each treated municipality-year counts once (brute force: mean of cell means)
    rows = _row_effects(sim)
    treated = rows[rows["reorganised"] == 1]
    cells = treated.groupby(["municipality", "year"], observed=True).agg(
        effect=("effect", "mean"), cohort=("reorg_year", "first")
    )
    cells["event"] = cells.index.get_level_values("year") - cells["cohort"]
    asked = [{"term": "ATT(e)", "event_time": e} for e in range(-2, 7)]
    got = truth_lookup(study, sim, _spec(study, "reorg_imputation"))(asked)
    for r, value in zip(asked, got, strict=True):
        part = cells[cells["event"] == r["event_time"]]
        brute = float(part["effect"].mean()) if len(part) else 0.0
        assert value == pytest.approx(brute, abs=1e-12), r
    # and it differs from the person-year-weighted average (the weights matter)
    person = treated.assign(event=treated["year"] - treated["reorg_year"])
    at0 = float(person.loc[person["event"] == 0, "effect"].mean())
    assert got[2] != pytest.approx(at0, abs=1e-6)


def test_staggered_truths_are_unknown_for_other_treatments_or_weights(sim, study):
    spec = _spec(study, "reorg_imputation")
    weighted = type(spec)(**{**spec.__dict__, "kwargs": {**spec.kwargs, "weights": "w"}})
    assert truth_lookup(study, sim, weighted)([{"term": "ATT(e)", "event_time": 0}]) == [None]
    other = type(spec)(**{**spec.__dict__, "kwargs": {**spec.kwargs, "cohort": "year"}})
    assert truth_lookup(study, sim, other)([{"term": "ATT(e)", "event_time": 0}]) == [None]


def test_configuration_truths_are_the_planted_effects_at_the_same_index(sim):
    rows = _row_effects(sim)
    standard, complex_ = EFFECTS["proactive"]
    pro = np.where(rows["high_need"] == 1, complex_, standard) * SCALE
    for name in ("coordinated, proactive", "integrated, reactive", "integrated, proactive"):
        mask = (rows["configuration"] == name).to_numpy()
        brute = float(pro[mask].mean()) if "proactive" in name else 0.0
        got = sim.truth_terms[("exit", f"configuration[{name}]", "at_risk")]
        assert got == pytest.approx(brute, abs=1e-12)
    assert ("exit", "configuration[coordinated, reactive]", "at_risk") not in sim.truth_terms


@pytest.mark.parametrize(
    ("condition", "measure", "expected"),
    [
        ("neet_prev = 1", "neet_prev = 1", (True, None)),
        ("(neet_prev = 1) AND (high_need = 1)", "neet_prev = 1", (True, "(high_need = 1)")),
        ("high_need = 1", "neet_prev = 1", (False, None)),
        ("neet_prev = 1 OR high_need = 1", "neet_prev = 1", (False, None)),
        (None, "neet_prev = 1", (False, None)),
        ("country = 'Norway'", None, (True, "country = 'Norway'")),
    ],
)
def test_strata_condition(condition, measure, expected):
    assert _strata_condition(condition, measure) == expected
