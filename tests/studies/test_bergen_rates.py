"""The committed bergen_rates study: it parses, its expected.json matches it, it verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.study import check_study, verify_study

STUDY = Path(__file__).resolve().parents[2] / "studies" / "bergen_rates"
OUTCOMES = ["work", "recipient", "duration", "activity", "income"]
GROUPS = ["all", "families_with_children", "non_western", "non_western_families_with_children"]


SPLITS = ["families_with_children", "non_western", "non_western_families_with_children"]


def test_study_parses_into_twenty_twfe_and_fifteen_triple_difference_analyses():
    study = check_study(STUDY)
    twfe = [f"twfe.{o}.{g}" for o in OUTCOMES for g in GROUPS]
    ddd = [f"ddd.{o}.{s}" for o in OUTCOMES for s in SPLITS]
    assert [a.id for a in study.analyses] == twfe + ddd
    assert study.data.kind == "simulator" and study.data.simulator == "bergen_rates"
    assert study.min_cell_size == 5
    for a in study.analyses:
        assert a.kwargs["cluster"] == "city"
        assert a.kwargs["weights"] == ("n_duration" if a.outcome == "duration" else "n")
        if a.family == "twfe":
            assert a.estimator == "did.TWFE"
            assert a.inference is None  # evalkit's default: conformal with one treated city
            assert a.split is None and study.cell_keys(a) == ("city", "month", "treated")
        else:
            assert a.estimator == "did.TripleDiff"
            assert a.inference.method == "iid"
            assert a.group == "all" and a.split.by in SPLITS
            assert a.kwargs["group"] == f"in_{a.split.by}" and a.kwargs["target"] == 1
            assert a.kwargs["time"] == "after_reform"
            assert study.cell_keys(a) == ("city", "after_reform", "treated", f"in_{a.split.by}")
    assert study.columns["after_reform"] == "CAST(month >= DATE '2020-03-01' AS INTEGER)"


def test_groups_match_the_simulators_so_truth_is_reported():
    from evalkit.simulate.bergen import GROUPS as SIM_GROUPS
    from evalkit.simulate.bergen import MEASURES

    study = check_study(STUDY)
    for name, condition in study.groups.items():
        assert SIM_GROUPS[name] == condition
    for m in study.collapse.measures:
        assert m.to_dict() == {"stat": "mean", **MEASURES[m.name]}


def test_expected_json_matches_the_study():
    study = check_study(STUDY)
    doc = json.loads((STUDY / "expected.json").read_text())
    assert [a["id"] for a in doc["analyses"]] == [a.id for a in study.analyses]
    assert doc["design_sha256"] == study.design_sha256, "regenerate expected.json"
    for a in doc["analyses"]:
        (row,) = a["tidy"]
        assert row["term"] == ("DDD" if a["id"].startswith("ddd.") else "treated")
        assert row["truth"] is not None


def test_readme_states_the_city_level_inference():
    text = (STUDY / "README.md").read_text()
    assert "few treated clusters" in text and "conformal inference over time" in text
    assert "1/72" in text


@pytest.mark.slow
def test_study_verifies(tmp_path):
    outcome = verify_study(STUDY, out=tmp_path)
    assert outcome.ok, outcome.report
    assert outcome.run.seconds < 60
