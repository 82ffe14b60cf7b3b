"""The committed service_integration study: it parses, expected.json matches, it verifies.

Other engineers append their analyses to this study; these tests check the case
selection's part and that the whole file stays consistent with expected.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evalkit.study import check_study, verify_study

STUDY = Path(__file__).resolve().parents[2] / "studies" / "service_integration"
COUNTRIES = ["norway", "sweden", "denmark"]


def test_case_selection_runs_per_country_and_anonymised():
    study = check_study(STUDY)
    assert study.data.kind == "simulator" and study.data.simulator == "integration_youth"
    selection = [a for a in study.analyses if a.estimator == "selection.ObservedExpected"]
    assert [a.id for a in selection] == [f"selection.{c}" for c in COUNTRIES]
    for a in selection:
        assert a.kwargs["anonymise"] is True
        assert a.kwargs["cluster"] == "person_id"  # persons, never the municipality
        assert a.kwargs["holdout_from"] == study.data.options["select_from"]
        assert a.inference.method == "bootstrap"


def test_groups_match_the_simulators_so_truth_is_reported():
    from evalkit.simulate.integration.youth import GROUPS as SIM_GROUPS

    study = check_study(STUDY)
    for name, condition in study.groups.items():
        assert SIM_GROUPS[name] == condition


def test_expected_json_matches_the_study_and_names_no_municipality():
    study = check_study(STUDY)
    text = (STUDY / "expected.json").read_text()
    doc = json.loads(text)
    assert [a["id"] for a in doc["analyses"]] == [a.id for a in study.analyses]
    assert doc["design_sha256"] == study.design_sha256, "regenerate expected.json"
    assert not re.search(r"\b(NO|SE|DK)\d\d\b", text), "a municipality code in the outputs"
    for a in doc["analyses"]:
        if a["id"].startswith("selection."):
            terms = [r["term"] for r in a["tidy"]]
            assert terms[:2] == ["level", "prior_cv"]
            assert "ratio:above-1" in terms and "p_below:below-3" in terms


def test_readme_ties_the_selection_to_the_research():
    text = (STUDY / "README.md").read_text()
    for phrase in ("NEET", "O4O", "anonym", "hypothetical", "three above"):
        assert phrase in text


@pytest.mark.slow
def test_study_verifies(tmp_path):
    outcome = verify_study(STUDY, out=tmp_path)
    assert outcome.ok, outcome.report
