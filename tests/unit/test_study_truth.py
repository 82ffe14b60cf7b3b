"""Truth rules of study/truth.py against brute force on tiny simulated data.

Two references: (1) a hand-made SimulatedData whose rows carry both potential outcomes,
so every estimand is computed row by row; (2) the Bergen simulator's own per-month
truth (``truth_by_period``, computed by its generator from both worlds, independently of
``truth_strata``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.core import registry
from evalkit.simulate import SimulatedData, bergen_rates
from evalkit.study import load_study
from evalkit.study.design import (
    Analysis,
    Collapse,
    Data,
    Design,
    MeasureTable,
    Roles,
    StudyInfo,
)
from evalkit.study.truth import average, period_effects, truth_lookup

MONTHS = pd.date_range("2019-01-01", periods=12, freq="MS")
REFORM = pd.Timestamp("2019-07-01")


@pytest.fixture(scope="module")
def hand() -> tuple[SimulatedData, pd.DataFrame]:
    """Treated city's person-months with y1 (observed) and y0, effects varying by row."""
    rng = np.random.default_rng(5)
    n = 40
    persons = pd.DataFrame(
        {"person_id": np.arange(n), "kid": rng.integers(0, 2, n), "nw": rng.integers(0, 2, n)}
    )
    rows = persons.merge(pd.DataFrame({"month": MONTHS}), how="cross")
    # some persons are missing in some months, so counts differ by month
    rows = rows[rng.random(len(rows)) > 0.2].reset_index(drop=True)
    post = rows["month"] >= REFORM
    y0 = rng.normal(size=len(rows))
    effect = np.where(post, 0.5 + rows["kid"] - 0.3 * rows["nw"] + 0.05 * rows.index % 7, 0.0)
    rows["y0"], rows["y"] = y0, y0 + effect
    treated = rows[post]
    strata = (
        treated.groupby(["month", "kid", "nw"])
        .agg(n1=("y", "size"), sum1=("y", "sum"), n0=("y0", "size"), sum0=("y0", "sum"))
        .reset_index()
        .rename(columns={"month": "period"})
    )
    strata.insert(0, "outcome", "y")
    sim = SimulatedData(
        data=rows,
        truth={"y": {"all": float((treated["y"] - treated["y0"]).mean())}},
        description="hand-made",
        term="treated",
        groups={"all": None},
        measures={"y": {"column": "y", "stat": "mean"}},
        truth_strata=strata,
    )
    return sim, rows


def _brute(rows: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    part = rows[mask & (rows["month"] >= REFORM)]
    by = part.groupby("month").agg(n1=("y", "size"), y1=("y", "mean"), y0=("y0", "mean"))
    return by.assign(effect=by["y1"] - by["y0"])


@pytest.mark.parametrize(
    "condition", [None, "kid = 1", "nw = 0 AND kid = 1", "month >= DATE '2019-09-01'"]
)
def test_each_rule_equals_brute_force(hand, condition):
    sim, rows = hand
    mask = pd.Series(True, index=rows.index)
    if condition == "kid = 1":
        mask = rows["kid"] == 1
    elif condition == "nw = 0 AND kid = 1":
        mask = (rows["nw"] == 0) & (rows["kid"] == 1)
    elif condition is not None:
        mask = rows["month"] >= pd.Timestamp("2019-09-01")
    brute = _brute(rows, mask)
    eff = period_effects(sim, "y", condition, time="month")
    np.testing.assert_allclose(eff["effect"], brute["effect"], rtol=1e-12)
    # treated cells weighted by counts = mean over treated person-months
    part = rows[mask & (rows["month"] >= REFORM)]
    assert average(eff, "treated_cells") == pytest.approx((part["y"] - part["y0"]).mean())
    # unweighted over periods = mean of the monthly cell effects
    assert average(eff, "treated_periods") == pytest.approx(brute["effect"].mean())
    for k in range(len(brute)):
        assert average(eff, "period", position=k) == pytest.approx(brute["effect"].iloc[k])


def test_event_time_rule_with_binned_end_points(hand):
    sim, rows = hand
    eff = period_effects(sim, "y", None, time="month")
    brute = _brute(rows, pd.Series(True, index=rows.index))
    first = brute.index.min()
    ev = np.array([(m.year - first.year) * 12 + m.month - first.month for m in brute.index])
    for e in range(-3, 3):
        got = average(eff, "event_time", event_time=e, window=(-3, 3), bin_endpoints=True)
        want = brute["effect"].to_numpy()[ev == e][0] if e >= 0 else 0.0
        assert got == pytest.approx(want, abs=1e-12)
    tail = brute[ev >= 3]
    want = float((tail["effect"] * tail["n1"]).sum() / tail["n1"].sum())
    got = average(eff, "event_time", event_time=3, window=(-3, 3), bin_endpoints=True)
    assert got == pytest.approx(want)
    # without binning event time 3 is that month alone
    assert average(eff, "event_time", event_time=3) == pytest.approx(tail["effect"].iloc[0])


def test_no_treated_row_means_a_zero_effect_and_other_columns_are_unknown(hand):
    sim, _ = hand
    before = period_effects(sim, "y", "month < DATE '2019-07-01'", time="month")
    assert before.empty
    for rule in ("treated_cells", "treated_periods", "period"):
        assert average(before, rule, position=0) == 0.0
    assert period_effects(sim, "y", "city = 'Oslo'", time="month") is None
    assert period_effects(sim, "z", None) is None
    assert average(period_effects(sim, "y", None), "unknown rule") is None


@pytest.fixture(scope="module")
def bergen() -> SimulatedData:
    return bergen_rates(seed=4, n_persons=1500, start="2019-01", end="2021-12")


def test_bergen_rules_equal_the_simulators_own_monthly_truth(bergen):
    by = bergen.truth_by_period
    for outcome in ("work", "duration", "income"):
        for group, condition in bergen.groups.items():
            mine = by[(by["outcome"] == outcome) & (by["group"] == group)].set_index("month")
            eff = period_effects(bergen, outcome, condition, time="month")
            np.testing.assert_allclose(eff["effect"], mine["effect"], rtol=1e-10, atol=1e-12)
            assert average(eff, "treated_cells") == pytest.approx(
                bergen.truth[outcome][group], rel=1e-10
            )
            assert average(eff, "treated_periods") == pytest.approx(mine["effect"].mean())
            # an exclusion window drops those months from the average
            kept = mine[(mine.index < "2020-03-01") | (mine.index > "2021-06-01")]
            cut = "(month < DATE '2020-03-01' OR month > DATE '2021-06-01')"
            where = cut if condition is None else f"({condition}) AND {cut}"
            got = average(period_effects(bergen, outcome, where, time="month"), "treated_cells")
            want = (kept["effect"] * kept["weight"]).sum() / kept["weight"].sum()
            assert got == pytest.approx(want, rel=1e-10)


def test_estimators_declare_rules_for_the_terms_they_report():
    rules = {
        "did.TWFE": {"{treatment}": "treated_cells"},
        "did.TripleDiff": {"DDD": "treated_cells"},
        "did.EventStudy": {"ATT(e)": "event_time"},
        "did.HonestEventStudy": {"original": "event_window", "honest:*": "event_window"},
        "synth.SyntheticControl": {"att": "treated_periods", "effect": "period"},
        "synth.AugmentedSyntheticControl": {"att": "treated_periods", "effect": "period"},
        "synth.SyntheticDiD": {"ATT": "treated_periods"},
        "dml.DID": {"{treatment}": "treated_cells"},
        "did.CallawaySantAnna": {"ATT(g,t)": "cohort_time"},
        "did.ImputationDiD": {"ATT(e)": "cohort_event_time"},
    }
    for name, declared in rules.items():
        assert dict(registry.get(name).effect_average) == declared, name
    # an estimator without a declaration gets no truth (not a guessed one)
    assert dict(registry.get("did.SunAbraham").effect_average) == {}


def test_study_layer_names_no_estimator():
    import ast
    import inspect

    from evalkit.study import truth

    tree = ast.parse(inspect.getsource(truth))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    code = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    }
    names = {n for n in registry.names()} | {n.split(".")[-1] for n in registry.names()}
    assert not code & names
    assert "treated_cells" in code  # the rules are read by name, the estimators are not


def test_truth_terms_are_frozen_and_checked():
    from evalkit.errors import DesignError

    sim = SimulatedData(
        data=pd.DataFrame(),
        truth={},
        description="",
        truth_terms={("employed", "ITT", "all"): 0.05},
    )
    assert sim.truth_terms[("employed", "ITT", "all")] == 0.05
    with pytest.raises(TypeError):
        sim.truth_terms[("a", "b", "c")] = 1.0  # type: ignore[index]
    with pytest.raises(DesignError, match="truth_terms"):
        SimulatedData(data=pd.DataFrame(), truth={}, description="", truth_terms={("a",): 1.0})


def _design(collapse: Collapse, analyses: list[Analysis]) -> Design:
    """A Bergen study design with city x month cells, built in Python."""
    return Design(
        study=StudyInfo(name="t"),
        data=Data(simulator="bergen_rates"),
        roles=Roles(unit="city", time="month", treatment="treated"),
        collapse=collapse,
        analyses=analyses,
    )


CELLS = ["city", "month", "treated"]


def test_a_condition_beyond_the_strata_uses_the_rows_exact_effects(tmp_path):
    condition = "city <> 'Oslo' AND age < 40"
    design = _design(
        Collapse(by=CELLS, measures={"earnings": "mean"}),
        [
            Analysis(id=id_, estimator=name, options={"outcome": "earnings"}, where=condition)
            for id_, name in [("twfe", "did.TWFE"), ("sc", "synth.SyntheticControl")]
        ],
    )
    study = load_study(design, check_data=False, root=tmp_path)
    sim = bergen_rates(seed=2, n_persons=1500, start="2019-06", end="2021-06")
    want = sim.truth_where("treated", "earnings", condition)
    assert want is not None and want < 0
    twfe, sc = study.analyses
    assert truth_lookup(study, sim, twfe)([{"term": "treated"}]) == [pytest.approx(want)]
    # the rows' effects give no monthly effects: the per-period rules stay unknown
    assert truth_lookup(study, sim, sc)([{"term": "att"}, {"term": "effect", "time": 1}]) == [
        None,
        None,
    ]


def test_a_group_condition_applies_to_a_measure_with_its_own_condition(tmp_path, bergen):
    """Benefit is a mean among recipients (the measure's own ``where``); a group's truth
    is that of the group's recipients, not of every recipient (a regression: the group
    condition was dropped when it did not contain the measure's condition)."""
    benefit = MeasureTable(column="benefit", stat="mean", where="recipient = 1")
    design = _design(
        Collapse(by=CELLS, measures={"benefit": benefit}),
        [
            Analysis(id="all", estimator="did.TWFE", options={"outcome": "benefit"}),
            Analysis(
                id="families",
                estimator="did.TWFE",
                options={"outcome": "benefit"},
                where=bergen.groups["families_with_children"],
            ),
        ],
    )
    study = load_study(design, check_data=False, root=tmp_path)
    everyone, families = (
        truth_lookup(study, bergen, a)([{"term": "treated"}])[0] for a in study.analyses
    )
    assert everyone == pytest.approx(bergen.truth["benefit"]["all"], rel=1e-10)
    assert families == pytest.approx(bergen.truth["benefit"]["families_with_children"], rel=1e-10)
    assert families > 1.5 * everyone  # families keep child benefit on top of the rates


def test_scratch_cursors_share_one_locked_database_and_keep_their_tables_apart():
    import duckdb

    from evalkit.data import sandbox

    with sandbox.scratch() as a, sandbox.scratch() as b:
        a.register("strata", pd.DataFrame({"x": [1, 2]}))
        with pytest.raises(duckdb.Error):
            b.execute("SELECT * FROM strata")
        with pytest.raises(duckdb.Error):
            a.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            a.execute("SELECT * FROM read_csv('/etc/hostname')")
