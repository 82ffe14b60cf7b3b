"""The service-integration study's organisation analyses (siorg) and pooling across countries.

Fast: the analyses parse as designed. Slow: the study runs on its default simulated data,
the organisation analyses' intervals cover the truths the study reports beside them (the
simulator's ``truth_terms`` by outcome, term and group, and the staggered-DiD truths on
each estimator's declared estimand) with the right signs, and the same design run on
each country's extract pools into fixed- and random-effects estimates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.study import load_study

STUDY = Path(__file__).resolve().parents[2] / "studies" / "service_integration"
OURS = {
    "reorg_cs": "did.CallawaySantAnna",
    "reorg_imputation": "did.ImputationDiD",
    "organisation_mixed": "multilevel.MixedModel",
    "configuration_mixed": "multilevel.MixedModel",
    "integration_plr.at_risk": "dml.PLR",
    "integration_plr.at_risk_complex": "dml.PLR",
    "integration_plr.at_risk_standard": "dml.PLR",
    "proactive_ri": "did.TWFE",
}


def test_the_organisation_analyses_are_in_the_design() -> None:
    study = load_study(STUDY)
    specs = {a.id: a for a in study.analyses}
    for aid, estimator in OURS.items():
        assert specs[aid].estimator == estimator, aid
        assert specs[aid].fit_on == "rows", aid
    assert specs["reorg_imputation"].collapse_by == ("municipality", "year", "reorg_year")
    assert specs["proactive_ri"].group == "case_studies_at_risk"
    # the groups are the simulator's, so its truth_terms apply to these analyses
    from evalkit.simulate.integration.youth import GROUPS

    for name in ("at_risk", "at_risk_complex", "at_risk_standard", "case_studies_at_risk"):
        assert " ".join(study.groups[name].split()) == GROUPS[name]


@pytest.mark.slow
def test_organisation_analyses_cover_the_truth_and_pool_across_countries(tmp_path: Path) -> None:
    from evalkit.pool import pool_runs
    from evalkit.simulate import get
    from evalkit.study import run_study

    study = load_study(STUDY)
    run = run_study(STUDY, out=tmp_path / "all", progress=False)
    sim = get("integration_youth")(**dict(study.data.options))
    entries = {a["id"]: a for a in run.results["analyses"]}
    checked, covered, signed, right = 0, 0, 0, 0
    misses = []
    for aid in OURS:
        entry = entries[aid]
        assert entry["error"] is None, (aid, entry["error"])
        for row in entry["tidy"]:
            truth = row.get("truth")
            direct = sim.truth_terms.get(("exit", row["term"], entry["group"]))
            if direct is not None:
                assert truth == pytest.approx(direct), (aid, row["term"])
            if truth is None:
                continue
            checked += 1
            lo, hi = row["conf_low"], row["conf_high"]
            lo = -float("inf") if lo is None else lo
            hi = float("inf") if hi is None else hi
            covered += int(lo <= truth <= hi)
            if not lo <= truth <= hi:
                misses.append((aid, row["term"], row.get("cohort"), row.get("time")))
            if truth != 0:
                signed += 1
                right += int((row["estimate"] > 0) == (truth > 0))
    print(f"truth covered by {covered} of {checked} intervals; right sign {right} of {signed}")
    print("misses:", misses)
    # every reported estimand has its truth: the group-time ATTs, the event-time ATTs
    # and the configurations' coefficients too
    for aid in ("reorg_cs", "reorg_imputation"):
        assert all(r.get("truth") is not None for r in entries[aid]["tidy"]), aid
    configs = [r for r in entries["configuration_mixed"]["tidy"] if "configuration[" in r["term"]]
    assert len(configs) == 3 and all(r["truth"] is not None for r in configs)
    assert checked >= 40
    assert covered / checked >= 0.8, (covered, checked)
    assert right / signed >= 0.8, (right, signed)
    # the headline estimates have the right sign
    for aid, term in (
        ("organisation_mixed", "reorganised"),
        ("organisation_mixed", "proactive"),
        ("integration_plr.at_risk", "integration"),
        ("integration_plr.at_risk_complex", "integration"),
    ):
        (row,) = [r for r in entries[aid]["tidy"] if r["term"] == term]
        assert row["estimate"] > 0, (aid, term)

    # the same design on each country's extract, then pooled
    runs = []
    for country in ("Norway", "Sweden", "Denmark"):
        extract = tmp_path / f"{country}.parquet"
        sim.data[sim.data["country"] == country].to_parquet(extract)
        out = tmp_path / "runs" / country.lower()
        run_study(STUDY, out=out, progress=False, data_override=extract)
        runs.append(out)
    pooled = pool_runs(runs)
    print(pooled.table().query("analysis != 'reorg_cs'").round(4).to_string())
    names = {(p.analysis, p.term) for p in pooled.estimates}
    assert ("organisation_mixed", "integration") in names
    assert ("integration_plr.at_risk", "integration") in names
    files = pooled.write(tmp_path / "pooled")
    assert any(p.name == "forest_integration_plr_at_risk_integration.png" for p in files)
    saved = json.loads((tmp_path / "pooled" / "pooled.json").read_text())
    assert all(r["data_sha256"] for r in saved["runs"])
