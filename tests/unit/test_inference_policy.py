"""Typed inference specs and the one policy (issue 8 item 2)."""

from __future__ import annotations

import ast
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit import inference
from evalkit.did import TWFE, EventStudy, TripleDiff
from evalkit.errors import DesignError, FewClustersWarning, InferenceNotSupportedError
from evalkit.inference import policy
from evalkit.inference.policy import ClusterCounts, Thresholds, choose_inference, count_clusters

REGRESSION = ("iid", "hetero", "cluster", "cr2", "none")


# ------------------------------------------------------------------ specs
def test_every_method_name_has_a_typed_spec_of_a_known_kind():
    for name in inference.METHODS:
        cls = inference.spec_class(name.upper())
        assert cls().method == name
        assert cls().kind in ("analytic", "draws", "test_inversion", "none")


def test_strings_are_case_insensitive_with_aliases():
    for text, cls in [
        ("CR1", inference.Cluster),
        ("Wild", inference.Wild),
        ("HC1", inference.Hetero),
        ("multiplier", inference.Bootstrap),
        ("conley-taber", inference.ConleyTaber),
    ]:
        spec = inference.parse_inference(text, tuple(inference.METHODS), "x")
        assert type(spec) is cls


def test_unknown_names_get_did_you_mean_among_supported_methods():
    with pytest.raises(DesignError, match=r"did you mean 'cr2'\? supported here: iid, hetero"):
        inference.parse_inference("crr2", REGRESSION, "did.TWFE")
    with pytest.raises(DesignError, match="'wild' \\(not available here\\)") as err:
        inference.parse_inference("wlid", REGRESSION, "did.TWFE")
    assert "conformal" not in str(err.value)  # hints list only what the estimator has
    with pytest.raises(InferenceNotSupportedError, match="supported: iid, hetero, cluster"):
        inference.parse_inference(inference.Wild(), REGRESSION, "did.TWFE")


def test_typed_options_are_validated_and_untyped_specs_become_typed():
    assert inference.Wild(weights="WEBB", variant="wcu").options == {
        "weights": "webb",
        "variant": "wcu",
    }
    with pytest.raises(DesignError, match="did you mean 'webb'"):
        inference.Wild(weights="web")
    with pytest.raises(DesignError, match="did you mean 'weights'"):
        inference.Inference("wild", options={"weight": "webb"})
    typed = inference.Inference("bootstrap", reps=99, options={"weights": "mammen"}).typed()
    assert typed == inference.Bootstrap(reps=99, weights="mammen")
    assert dataclasses.replace(inference.Wild(), reps=19).reps == 19
    with pytest.raises(DesignError, match="reps"):
        inference.Wild(reps=0)


# ------------------------------------------------------------------ counting clusters
def states_panel(n_states=50, per_state=4, n_periods=8, seed=0):
    """Every state holds treated counties and never-treated ones."""
    rng = np.random.default_rng(seed)
    county = np.repeat(np.arange(n_states * per_state), n_periods)
    period = np.tile(np.arange(n_periods), n_states * per_state)
    state = county // per_state
    treated_county = county % per_state < per_state // 2
    d = (treated_county & (period >= 4)).astype(int)
    y = rng.normal(size=n_states)[state] + rng.normal(size=county.max() + 1)[county]
    y = y + 0.1 * period + 0.3 * d + rng.normal(size=county.size)
    cohort = np.where(treated_county, 4, 0)
    return pd.DataFrame(
        {"county": county, "period": period, "state": state, "d": d, "g": cohort, "y": y}
    )


def test_states_with_treated_and_control_counties_are_not_a_few_treated_design():
    df = states_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        twfe = TWFE(outcome="y", treatment="d", unit="county", time="period", cluster="state")
        res = twfe.fit(df)
        es = EventStudy(outcome="y", unit="county", time="period", cohort="g", cluster="state")
        es_res = es.fit(df)
    # was: "50 treated, 0 untreated clusters", CR2 and a warning that intervals over-reject
    assert res.inference.method == "cluster"
    assert es_res.inference.method == "cluster"
    assert "0 treated and 0 untreated, 50 with treated and untreated units within" in (
        res.inference.reason
    )
    assert res.info["clusters"] == {
        "cluster": "state",
        "n_clusters": 50,
        "treated": 0,
        "untreated": 0,
        "mixed": 50,
    }


def test_few_treated_warning_gives_the_actual_counts():
    df = states_panel(n_states=30, per_state=1)
    df["d"] = ((df["state"] < 3) & (df["period"] >= 4)).astype(int)
    twfe = TWFE(outcome="y", treatment="d", unit="county", time="period", cluster="state")
    with pytest.warns(FewClustersWarning, match="3 treated and 27 untreated clusters of 'state'"):
        res = twfe.fit(df, inference="cr2")
    assert res.inference.reason.startswith("requested: inference=CR2() (30 clusters of 'state'")
    # automatic: 2-4 treated clusters -> the wild cluster bootstrap, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        auto = twfe.fit(df, seed=1)
    assert auto.inference.method == "wild"
    assert auto.inference.reason.startswith("automatic (30 clusters of 'state': 3 treated and 27")


def test_triple_diff_with_region_clusters_counts_regions_holding_both_as_mixed():
    # 30 cities in 10 regions; one treated city per region
    rng = np.random.default_rng(5)
    c, m, g = (
        a.ravel() for a in np.meshgrid(np.arange(30), np.arange(4), np.arange(2), indexing="ij")
    )
    post = ((c % 3 == 0) & (m >= 2)).astype(int)
    y = rng.normal(size=(30, 2))[c, g] + rng.normal(size=(30, 4))[c, m] + 0.5 * post * (g == 1)
    df = pd.DataFrame(
        {
            "city": c,
            "region": c // 3,
            "month": m,
            "hh": g,
            "post": post,
            "y": y + rng.normal(size=c.size),
        }
    )
    est = TripleDiff(
        outcome="y",
        unit="city",
        time="month",
        group="hh",
        target=1,
        treatment="post",
        cluster="region",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        res = est.fit(df)
    # was: "10 treated, 0 untreated" -> CR2 "descriptive" with a few-treated warning
    assert res.inference.method == "cr2"
    assert "10 with treated and untreated units within" in res.inference.reason
    assert "descriptive" not in res.inference.reason
    # by city, the treated city is a cluster of its own: few treated -> HC1
    by_city = TripleDiff(
        outcome="y", unit="city", time="month", group="hh", target=1, treatment="post"
    )
    counts = by_city.fit(df).info["clusters"]
    assert (counts["treated"], counts["untreated"], counts["mixed"]) == (10, 20, 0)


def test_count_clusters_by_definition():
    cl = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    t = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    d = np.array([0, 1, 0, 0, 0, 1, 0, 1, 0, 0], dtype=bool)
    c = count_clusters(cl, t, d, name="x")
    assert (c.treated, c.untreated, c.mixed, c.n_clusters) == (1, 1, 1, 3)
    # with units: a unit-period is treated when any of its rows is (cells of groups)
    unit = np.array([0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    c = count_clusters(cl, t, d, name="x", unit=unit)
    assert (c.treated, c.untreated, c.mixed) == (1, 1, 1)


# ------------------------------------------------------------------ the one table
def test_every_choice_records_its_reason():
    counts = ClusterCounts("city", 10, 1, 9)
    auto = choose_inference(None, supported=REGRESSION, counts=counts)
    asked = choose_inference(inference.Hetero(), supported=REGRESSION, counts=counts)
    # an estimator without conformal or wild falls back to CR2 and says why
    assert auto.method == "cr2" and "descriptive" in auto.reason
    assert "prefers conformal, wild" in auto.reason
    full = choose_inference(None, supported=(*REGRESSION, "wild", "conformal"), counts=counts)
    assert full.method == "conformal" and full.warning is None
    assert asked.reason.startswith("requested: inference=Hetero()")
    assert "1 treated and 9 untreated" in asked.reason


def test_the_policy_reads_one_table(monkeypatch):
    one = ClusterCounts("city", 10, 1, 9)
    rule = policy.POLICY["one_treated"]
    monkeypatch.setitem(policy.POLICY, "one_treated", dataclasses.replace(rule, prefer=("iid",)))
    assert choose_inference(None, supported=REGRESSION, counts=one).method == "iid"
    counts = ClusterCounts("city", 10, 3, 7)
    assert choose_inference(None, supported=REGRESSION, counts=counts).method == "cr2"
    rule = policy.POLICY["few_treated"]
    monkeypatch.setitem(policy.POLICY, "few_treated", dataclasses.replace(rule, prefer=("iid",)))
    assert choose_inference(None, supported=REGRESSION, counts=counts).method == "iid"
    # an unsupported preference falls through to the next one
    monkeypatch.setitem(
        policy.POLICY, "few_treated", dataclasses.replace(rule, prefer=("wild", "hetero"))
    )
    assert choose_inference(None, supported=REGRESSION, counts=counts).method == "hetero"
    lenient = Thresholds(few_treated=1, few_clusters=5)
    assert (
        choose_inference(None, supported=REGRESSION, counts=counts, thresholds=lenient).method
        == "cluster"
    )


def test_estimators_route_through_the_policy(monkeypatch):
    df = evalkit.datasets.load("mpdta")
    df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    df["block"] = df["countyreal"] % 3
    est = TWFE(outcome="lemp", treatment="post", unit="countyreal", time="year", cluster="block")
    rule = policy.POLICY["few_clusters"]
    monkeypatch.setitem(policy.POLICY, "few_clusters", dataclasses.replace(rule, prefer=("iid",)))
    for row in ("one_treated", "few_treated"):
        monkeypatch.setitem(policy.POLICY, row, dataclasses.replace(rule, prefer=("iid",)))
    assert est.fit(df).inference.method == "iid"


# ------------------------------------------------------------------ layering
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_inference_and_numerics_do_not_import_core():
    root = Path(evalkit.__file__).parent
    for package, banned in (
        ("inference", ("evalkit.core",)),
        ("numerics", ("evalkit.core", "evalkit.inference")),
    ):
        for path in (root / package).glob("*.py"):
            bad = [m for m in _imports(path) if m.startswith(banned)]
            assert not bad, f"{path.name} imports {bad}"
