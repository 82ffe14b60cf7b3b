"""The study report on fake results with fixed numbers: summary, caveats, units, marks."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from report_fakes import FEW, FakeStudy, study_payload

from evalkit.report import study_figures as figs
from evalkit.report.caveats import concerns, consolidate, warning_kind
from evalkit.report.comparison import coverage, summary_table
from evalkit.report.study_report import FEW_TREATED_CLUSTERS, write_report
from evalkit.report.units import draw_marks, event_time_marks, looks_like_share, unit_of


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    study = FakeStudy(root=out)
    paths = write_report(study, study_payload(), [], {}, out)
    return out, paths, (out / "report.md").read_text(), (out / "report.html").read_text()


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_every_figure_the_page_refers_to_exists(written):
    out, paths, md, page = written
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sources and all((out / s).is_file() for s in sources)
    assert all(s.startswith("figures/") for s in sources)  # relative: the folder moves whole
    assert "base64" not in page
    assert {p.name for p in paths} >= {"report.md", "report.html", "event_study_work.png"}


def test_summary_puts_estimators_side_by_side_with_truth(written):
    _, _, md, _ = written
    summary = _section(md, "Summary: every estimator side by side")
    assert "| Outcome | Unit | Group | twfe | es | ddd (group - rest) | Truth |" in summary
    # work, nw: twfe has its truth in the Truth column, the triple difference its own
    row = next(ln for ln in summary.splitlines() if ln.startswith("| work |  | nw |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "-0.004 \\[-0.03, 0.015\\]"
    assert cells[5] == "0.0056 \\[-0.0118, 0.0231\\]; truth -0.0061"
    assert cells[-1] == "-0.011"
    # the event study of nw has only event-time rows: nothing in the summary
    assert cells[4] == ""
    assert "| income | NOK per month | all | 181.5 \\[-120, 306.3\\] |" in summary
    assert "5 of 5 intervals cover the truth (`twfe` 3 of 3, `es` 1 of 1, `ddd` 1 of 1)" in summary
    assert "Estimates by event time are in the event-study figures below." in summary


def test_coverage_counts_intervals_that_contain_the_truth():
    cover = coverage(study_payload()["analyses"])
    assert cover == {"twfe": (3, 3), "es": (1, 1), "ddd": (1, 1)}


def test_summary_has_no_truth_on_real_data():
    head, rows, _ = summary_table(
        study_payload(simulated=False)["analyses"], fmt=str, unit=lambda o: "", simulated=False
    )
    assert "Truth" not in head and not any("truth" in c for r in rows for c in r)


def test_same_kind_warnings_become_one_caveat(written):
    _, _, md, _ = written
    caveats = _section(md, "Caveats")
    assert caveats.count("Few treated clusters") == 1
    assert "only 1 treated cluster(s) of 10" in caveats
    assert "*Concerns 2 analyses (the wording differs by analysis; the first is shown): " in caveats
    assert "all 2 `es` analyses" in caveats
    assert "**COVID-19.** A study note." in caveats
    table = _section(md, "Analyses")
    assert "| es.work.all |" in table and "| C1 |" in table
    assert "FewClustersWarning" not in table  # stated once, in the caveats


def test_warning_kinds_ignore_numbers_and_names():
    assert warning_kind(FEW) == warning_kind(FEW.replace("9 untreated", "8 untreated"))
    assert warning_kind("a 'x' b") != warning_kind("a 'x' c")
    entries = study_payload()["analyses"]
    found = consolidate(entries, few_treated=FEW_TREATED_CLUSTERS, robust=("cr2",))
    assert [(c.key, c.analyses) for c in found] == [("few_clusters", ("es.work.all", "es.work.nw"))]
    alone = consolidate(entries, few_treated=FEW_TREATED_CLUSTERS)  # no robust method named
    assert alone[0].key == "few_clusters" and alone[0].text.startswith("CR2 standard errors")
    assert alone[0].varies  # 9 and 8 untreated clusters
    families = {"twfe": ["twfe.a"], "es": ["es.work.all", "es.work.nw"]}
    assert concerns(found[0].analyses, families) == "all 2 `es` analyses"


def test_composition_caveat_for_means_over_a_subset():
    entries = study_payload()["analyses"]
    found = consolidate(entries, few_treated=2, subsets={"income": "recipient = 1"})
    comp = [c for c in found if c.key == "composition:income"]
    assert comp and comp[0].analyses == ("twfe.income.all",)
    assert "`recipient = 1`" in comp[0].text


def test_simulator_notes_only_on_simulated_data(tmp_path):
    study = FakeStudy(root=tmp_path, figures=False)
    write_report(study, study_payload(simulated=True), [], {}, tmp_path)
    assert "Every detail is illustrative" in (tmp_path / "report.md").read_text()
    write_report(study, study_payload(simulated=False), [], {}, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Every detail is illustrative" not in md and "Truth" not in md
    assert "Data file `extract.parquet`" in md


def test_units_on_tables(written):
    _, _, md, _ = written
    results = _section(md, "Results")
    assert "| Outcome | Group | Unit | Term |" in results
    assert "| income | all | NOK per month | treated |" in results


def test_unit_fallbacks():
    assert unit_of("work", {}, {"work"}) == "share"
    assert unit_of("work", {"work": "share of persons"}, {"work"}) == "share of persons"
    assert unit_of("income", {}, {"work"}) == ""
    assert looks_like_share(pd.Series([0.0, 0.3, 1.0]))
    assert not looks_like_share(pd.Series([0.2, 1.5]))


def test_marks_in_event_time_and_on_axes():
    months = pd.date_range("2017-01-01", "2022-12-01", freq="MS")
    first = pd.Timestamp("2020-03-01")
    marks = {"2020-03-01": "first", "2021-03-01": "second", "2030-01-01": "outside"}
    assert event_time_marks(marks, months, first) == [(-0.5, "first"), (11.5, "second")]
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    draw_marks(ax, [(pd.Timestamp("2020-03-01"), "first"), (2021.0, "a year")], axis="years")
    xs = [line.get_xdata()[0] for line in ax.lines]
    assert xs == pytest.approx([2020 + 60 / 365.25, 2021.0])
    assert [t.get_text().strip() for t in ax.texts] == ["first", "a year"]
    ax = Figure().subplots()
    draw_marks(ax, [(pd.Timestamp("2020-03-01"), "date")], axis="numbers")
    assert not ax.lines  # a date cannot be placed on a numeric axis


def test_event_figure_overlays_families_with_marks_and_units():
    entries = study_payload()["analyses"]
    fig = figs.event_figure(entries, "work", lambda o: "share", [(-0.5, "first"), (11.5, "2nd")])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["group: all", "group: nw"]
    assert axes[0].get_ylabel() == "effect on work (share)"
    assert axes[0].get_xlabel() == "periods since the first treated period"
    assert {t.get_text().strip() for t in axes[0].texts} == {"first", "2nd"}
    assert len(axes[0].containers) == 1  # es only: twfe has no event-time rows
    assert figs.event_figure(entries, "income", lambda o: "", []) is None


def test_forest_labels_axes_with_units():
    entries = [e for e in study_payload()["analyses"] if e["family"] == "twfe"]
    fig = figs.forest(entries, True, lambda o: {"income": "NOK per month"}.get(o, "share"))
    labels = [ax.get_xlabel() for ax in fig.axes if ax.get_visible()]
    assert labels == ["effect (share)", "effect (NOK per month)"]


def test_a_within_unit_analysis_keeps_its_own_few_clusters_warning():
    entries = study_payload()["analyses"]
    found = consolidate(entries, few_treated=FEW_TREATED_CLUSTERS, skip_few=lambda e: True)
    assert [(c.key, c.title, c.analyses) for c in found] == [
        ("warning:1", "FewClustersWarning", ("es.work.all", "es.work.nw"))
    ]


def test_study_text_in_units_and_marks_stays_inert(tmp_path):
    study = FakeStudy(
        root=tmp_path,
        units={"income": "<script>x</script> $ per month"},
        marks={"2020-03-01": "<b>$reform"},
    )
    write_report(study, study_payload(), [], {}, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt; $ per month" in page
    md = (tmp_path / "report.md").read_text()
    assert "<script>" not in md
    # the figures drew the text literally (an unbalanced $ would fail in mathtext)
    assert (tmp_path / "figures" / "twfe.png").stat().st_size > 0
    fig = figs.event_figure(study_payload()["analyses"], "work", lambda o: "$", [(0.5, "<b>$")])
    fig.savefig(tmp_path / "events.png")


def test_subgroup_rows_go_to_their_groups_and_grids_stay_out():
    from report_fakes import _entry, _row

    dml = _entry(
        "dml.work",
        "dml",
        "work",
        "all",
        [
            _row("ATT", 0.01, 0.0, 0.02, subgroup="all"),
            _row("ATT", -0.02, -0.03, -0.01, subgroup="nw"),
        ],
    )
    grid = _entry(
        "hd.work", "hd", "work", "all", [_row(f"M={m}", 0, -m, m) for m in (0.5, 1, 1.5, 2)]
    )
    twfe = study_payload()["analyses"][:3]
    head, rows, _ = summary_table([*twfe, dml, grid], fmt=str, unit=lambda o: "", simulated=False)
    assert head == ["Outcome", "Unit", "Group", "twfe", "dml"]  # 4 terms: hd stays out
    by = {(r[0], r[2]): r for r in rows}
    assert by[("work", "nw")][4] == "-0.02 [-0.03, -0.01]"
    assert by[("work", "all")][4] == "0.01 [0.0, 0.02]"
