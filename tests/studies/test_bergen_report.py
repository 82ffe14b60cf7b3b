"""The study report end to end: a tiny study with an event study and a synthetic control.

Checks what a reader opens: every figure the HTML page refers to exists (relative
paths), units on tables and axes, reform marks, one caveat per kind, the summary table,
and no count below the minimum cell size (simulator notes on real data:
tests/unit/test_study_report_fakes.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evalkit.study import check_study, run_study

# the tiny study of conftest.py with report keys, an event study and a synthetic control
REPORT = """[report]
units = {income = "NOK per month"}
marks = {"2020-03-01" = "first increase", "2021-03-01" = "second increase"}
simulated_notes = "**Simulator.** Every detail of these data is illustrative."
"""
EXTRA = """
[[analysis]]
id = "es"
estimator = "did.EventStudy"
options = {window = [-6, 12]}
inference = "cr2"
expand = {outcome = ["recipient"], group = ["all", "families"]}

[[analysis]]
id = "sc"
estimator = "synth.SyntheticControl"
inference = "none"
options = {outcome = "income"}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_writer):
    folder = tiny_writer(tmp_path_factory.mktemp("report") / "tiny_report")
    toml = folder / "study.toml"
    text = toml.read_text(encoding="utf-8")
    assert "[report]\nfigures = false\n" in text
    toml.write_text(text.replace("[report]\nfigures = false\n", REPORT) + EXTRA, encoding="utf-8")
    return run_study(folder, progress=False)


def test_the_page_opens_with_every_figure(run):
    page = (run.out_dir / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    names = {s.split("/")[-1] for s in sources}
    # the event study has only event-time rows: no forest of its own, the overlaid figure
    assert {"twfe.png", "sc_paths.png", "event_study_recipient.png"} <= names
    assert "es.png" not in names
    assert {"trends_all.png", "trends_families.png", "trends_nw_families.png"} <= names
    for src in sources:
        assert src.startswith("figures/") and (run.out_dir / src).is_file(), src
    md = (run.out_dir / "report.md").read_text(encoding="utf-8")
    assert sorted(re.findall(r"\]\((figures/[^)]+)\)", md)) == sorted(sources)


def test_units_marks_caveats_and_summary(run):
    md = (run.out_dir / "report.md").read_text(encoding="utf-8")
    assert "| recipient | `recipient` | mean |  | share |" in md  # 0/1 mean: share
    assert "| income | `income` | mean |  | NOK per month |" in md
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "| Outcome | Unit | Group | twfe | no_oslo | sc | Truth |" in summary
    assert "Estimates by event time are in the event-study figures below." in summary
    assert "| income | NOK per month | all |" in summary
    caveats = md.split("## Caveats", 1)[1].split("\n## ", 1)[0]
    assert caveats.count("Few treated clusters") == 1
    assert "all 9 `twfe` analyses; all 2 `es` analyses" in caveats  # no_oslo: conformal
    assert "`duration` is a mean among a subset of the rows" in caveats
    assert "FewClustersWarning" not in md
    assert "Every detail of these data is illustrative" in md


def test_no_count_below_the_minimum_in_the_report(run):
    md = (run.out_dir / "report.md").read_text(encoding="utf-8")
    data = md.split("## Data", 1)[1].split("\n## ", 1)[0]
    counts = [ln for ln in data.splitlines() if ln.startswith("| all |") or "families" in ln]
    assert counts
    for line in counts:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for c in cells[3:]:
            assert (
                c == "suppressed" or int(c.replace(",", "")) == 0 or int(c.replace(",", "")) >= 5
            ), line
    table = md.split("## Analyses", 1)[1].split("\n## ", 1)[0]
    for line in [
        ln for ln in table.splitlines() if ln.startswith(("| twfe", "| no_oslo", "| es", "| sc"))
    ]:
        obs = line.strip("|").split("|")[2].strip()
        assert obs == "suppressed" or int(obs.replace(",", "")) >= 5


BERGEN = Path(__file__).resolve().parents[2] / "studies" / "bergen_rates"


def test_bergen_names_a_unit_for_every_outcome_and_marks_both_increases():
    study = check_study(BERGEN)
    outcomes = {a.outcome for a in study.analyses}
    assert outcomes <= set(study.units)
    assert dict(study.marks) == {"2020-03-01": "first increase", "2021-03-01": "second increase"}
    assert "illustrative" in study.simulated_notes


@pytest.mark.slow
def test_the_bergen_report_on_a_reduced_run(tmp_path):
    run = run_study(
        BERGEN, tmp_path / "out", progress=False, overrides={"data.options.n_persons": 4000}
    )
    md = (run.out_dir / "report.md").read_text(encoding="utf-8")
    page = (run.out_dir / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all((run.out_dir / s).is_file() for s in sources)
    # every outcome's overall row carries the unit study.toml gives it (read, not copied:
    # a literal here went stale when the study's units were reworded)
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    study = check_study(BERGEN)
    for outcome in {a.outcome for a in study.analyses}:
        assert f"| {outcome} | {study.units[outcome]} | all |" in summary, outcome
    assert "These data are simulated." in md
    assert "intervals cover the truth" in md
