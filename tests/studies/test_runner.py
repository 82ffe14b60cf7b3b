"""The study runner end to end on a tiny simulated study: outputs, privacy, truth, verify."""

from __future__ import annotations

import json
import re
import warnings

import pandas as pd
import pytest
from click.testing import CliRunner

from evalkit.cli import main as cli
from evalkit.core.result import TIDY_COLUMNS
from evalkit.data.disclosure import AGGREGATE_KEYS, STRUCTURAL_KEYS, DisclosurePolicy, audit
from evalkit.errors import DesignError
from evalkit.simulate import bergen_rates
from evalkit.study import run_study, verify_study
from evalkit.study.design import Data, Design, ToleranceTable, Verify
from evalkit.study.expected import main as expected_main
from evalkit.study.expected import write_expected


@pytest.fixture(scope="module")
def full(tmp_path_factory, tiny_writer):
    """One run of the tiny study with figures, shared by the tests that only read it."""
    folder = tiny_writer(tmp_path_factory.mktemp("full") / "tiny", figures=True)
    return folder, run_study(folder, progress=False)


@pytest.fixture
def run(full):
    return full[1]


def _json_files(out):
    return {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_run_writes_every_output(run):
    out = run.out_dir
    assert out.name == "out"
    names = {p.relative_to(out).as_posix() for p in run.files}
    assert {"results.json", "report.md", "report.html", "manifest.json"} <= names
    assert any(n.startswith("figures/") and n.endswith(".png") for n in names)
    for p in run.files:
        assert p.exists() and p.stat().st_size > 0
    assert run.ok and run.errors == ()


def test_results_follow_the_contract(run):
    results = json.loads((run.out_dir / "results.json").read_text())
    assert results == run.results
    ids = [a["id"] for a in results["analyses"]]
    assert ids[:3] == [
        "twfe.recipient.all",
        "twfe.recipient.families",
        "twfe.recipient.nw_families",
    ]
    assert ids[-1] == "no_oslo" and len(ids) == 10
    for a in results["analyses"]:
        assert a["estimator"] == "did.TWFE"
        assert a["tidy"], a["id"]
        for row in a["tidy"]:
            assert set(TIDY_COLUMNS) <= set(row)
            assert "truth" in row  # simulated data: the column is there (None when unknown)
            assert isinstance(row["estimate"], float)
    assert results["data"]["simulated"] is True
    assert results["data"]["simulator"] == "bergen_rates"
    assert results["min_cell_size"] == 5


def test_manifest_records_versions_hashes_and_seeds(run):
    manifest = json.loads((run.out_dir / "manifest.json").read_text())
    for pkg in ("evalkit", "numpy", "pandas", "scipy", "statsmodels", "duckdb"):
        assert manifest["packages"][pkg], pkg
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["data"]["sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["design"]["sha256"])
    assert manifest["seeds"]["study"] == 17
    assert manifest["seeds"]["data"] == 17
    assert set(manifest["seeds"]["analyses"]) == {a["id"] for a in run.results["analyses"]}
    assert "results.json" in manifest["outputs"]


def test_report_has_tables_figures_and_the_inference_caution(run):
    md = (run.out_dir / "report.md").read_text()
    assert md.startswith("# Tiny test study")
    assert "| Outcome | Group | Unit | Term | Estimate |" in md
    assert "![" in md and "figures/" in md
    assert "Few treated clusters." in md and "1 treated cluster" in md
    page = (run.out_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all((run.out_dir / s).is_file() for s in sources)  # opens as it is
    assert "<table>" in page


def test_no_count_below_the_minimum_anywhere(run):
    docs = _json_files(run.out_dir)
    person_level = DisclosurePolicy(5)
    assert audit(docs["manifest.json"], person_level) == []
    envelope = {k: v for k, v in docs["results.json"].items() if k != "analyses"}
    assert audit(envelope, person_level) == []
    # analyses run on cells of >= 5 persons: only counts of cells or cities may be small
    cells = person_level.for_cells()
    assert audit(docs["results.json"]["analyses"], cells) == []
    for a in docs["results.json"]["analyses"]:
        small = {
            k: v for k, v in {**a["info"], **a["data"]}.items() if isinstance(v, int) and 0 < v < 5
        }
        assert set(small) <= AGGREGATE_KEYS | STRUCTURAL_KEYS, (a["id"], small)
    # suppression happened, and the suppressed cells were left out of the fits
    nw = next(a for a in docs["results.json"]["analyses"] if a["id"] == "twfe.duration.nw_families")
    assert nw["data"]["n_suppressed_cells"] > 0
    assert nw["info"]["n_obs"] <= nw["data"]["n_cells"]


def test_no_microdata_in_any_output(run):
    sim = bergen_rates(seed=17, n_persons=1200, start="2019-01", end="2021-06")
    incomes = {str(v) for v in sim.data["income"].head(200)}
    for p in run.out_dir.rglob("*"):
        if p.suffix in (".json", ".md", ".html"):
            text = p.read_text()
            assert "person_id" not in text
            found = set(re.findall(r"\b\d{5}\b", text)) & incomes
            assert not found, (p.name, found)
    assert (run.out_dir / "results.json").stat().st_size < 200_000


def test_truth_is_attached_where_the_analysis_targets_a_planted_effect(
    tmp_path, tiny_study, tiny, tiny_writer
):
    design = tiny()
    design.groups["families_with_children"] = design.groups.pop("families")
    design.analyses[0].expand["group"] = ["all", "families_with_children", "nw_families"]
    tiny_writer(tiny_study, design=design)
    run = run_study(tiny_study, out=tmp_path / "o", progress=False)
    sim = bergen_rates(seed=17, n_persons=1200, start="2019-01", end="2021-06")
    by_id = {a["id"]: a for a in run.results["analyses"]}
    for outcome in ("recipient", "income", "duration"):
        for group in ("all", "families_with_children"):
            row = by_id[f"twfe.{outcome}.{group}"]["tidy"][0]
            assert row["truth"] == pytest.approx(sim.truth[outcome][group], rel=1e-12)
    # a group the simulator does not name but defines by its stratum columns: the truth
    # is the effect on those strata; a condition on another column: the mean of the
    # rows' exact effects (the simulator keeps them), for an average over treated cells
    condition = "non_western = 1 AND family_with_children = 1"
    assert by_id["twfe.recipient.nw_families"]["tidy"][0]["truth"] == pytest.approx(
        sim.truth_where("treated", "recipient", condition), rel=1e-12
    )
    no_oslo = by_id["no_oslo"]
    assert no_oslo["tidy"][0]["truth"] == pytest.approx(
        sim.truth_where("treated", "recipient", no_oslo["where"]), rel=1e-12
    )


def test_data_override_with_a_frame_has_no_truth(tmp_path, tiny_study):
    sim = bergen_rates(seed=1, n_persons=800, start="2019-06", end="2020-12")
    run = run_study(tiny_study, out=tmp_path / "o", progress=False, data_override=sim.data)
    assert run.results["data"]["kind"] == "frame"
    assert run.results["data"]["simulated"] is False
    assert all("truth" not in r for a in run.results["analyses"] for r in a["tidy"])


def test_person_level_analyses_suppress_small_counts(tmp_path):
    study = tmp_path / "micro"
    study.mkdir()
    (study / "study.toml").write_text(
        """
[study]
seed = 2
[data]
simulator = "bergen_rates"
options = {n_persons = 300, start = "2019-10", end = "2020-06"}
[roles]
unit = "city"
time = "month"
treatment = "treated"
[[analysis]]
id = "rows"
estimator = "did.TWFE"
options = {outcome = "recipient", panel = false}
inference = "cr2"
"""
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_study(study, progress=False)
    entry = run.results["analyses"][0]
    assert entry["data"]["mode"] == "rows"
    assert entry["info"]["n_treated_clusters"] is None  # 1 treated city: below 5, suppressed
    assert "n_treated_clusters" in entry["info"]["suppressed_fields"]
    assert entry["info"]["n_units"] == 10
    assert audit(run.results, DisclosurePolicy(5)) == []


def test_a_failing_analysis_is_reported_not_fatal(tmp_path, tiny_study, tiny, tiny_writer):
    design = tiny()
    design.analyses[1].where = "city = 'Oslo'"
    tiny_writer(tiny_study, design=design)
    run = run_study(tiny_study, out=tmp_path / "o", progress=False)
    assert not run.ok
    assert run.errors[0].startswith("no_oslo: ")
    failed = run.results["analyses"][-1]
    assert failed["tidy"] == [] and failed["error"]


def test_progress_is_one_line_per_step_when_stderr_is_not_a_terminal(tmp_path, tiny_study, capsys):
    run_study(tiny_study, out=tmp_path / "o", progress=True)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0] == "tiny: opening the data ..."
    steps = [line for line in lines if line.startswith("tiny: [")]
    assert len(steps) == 10 and steps[0].startswith("tiny: [1/10] twfe.")
    assert steps[-1].startswith("tiny: [10/10] no_oslo (")
    assert any(line.startswith("tiny: writing the report done (") for line in lines)
    assert lines[-1].startswith("tiny: done in ")
    assert captured.out == ""
    run_study(tiny_study, out=tmp_path / "o", progress=False, force=True)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- verify


@pytest.fixture(scope="module")
def expected_doc(tmp_path_factory, tiny_writer):
    """expected.json of the tiny study, generated once (it does not depend on the folder)."""
    folder = tiny_writer(tmp_path_factory.mktemp("expected") / "tiny")
    return write_expected(folder, progress=False).read_text()


@pytest.fixture
def with_expected(tiny_study, expected_doc):
    (tiny_study / "expected.json").write_text(expected_doc)
    return tiny_study


def _tamper(folder, change):
    path = folder / "expected.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_write_expected_records_the_analyses(with_expected):
    doc = json.loads((with_expected / "expected.json").read_text())
    assert doc["study"] == "tiny" and len(doc["analyses"]) == 10
    assert re.fullmatch(r"[0-9a-f]{64}", doc["design_sha256"])
    assert {"estimate", "std_error", "term"} <= set(doc["analyses"][0]["tidy"][0])


def test_verify_passes_on_an_unchanged_run(with_expected):
    outcome = verify_study(with_expected)
    assert outcome.ok, outcome.report
    assert outcome.mismatches == ()
    assert "OK:" in outcome.report
    assert "note:" not in outcome.report


def test_verify_fails_when_an_estimate_differs(with_expected):
    def nudge(doc):
        row = doc["analyses"][1]["tidy"][0]
        row["estimate"] = row["estimate"] * (1 + 1e-5)

    _tamper(with_expected, nudge)
    outcome = verify_study(with_expected)
    assert not outcome.ok
    (m,) = outcome.mismatches
    assert m.analysis == "twfe.recipient.families" and m.column == "estimate"
    assert "FAILED" in outcome.report


def test_verify_fails_on_missing_or_extra_rows_and_analyses(with_expected):
    def edit(doc):
        doc["analyses"][0]["tidy"] = []
        doc["analyses"].append({"id": "ghost", "estimator": "did.TWFE", "tidy": []})
        doc["analyses"][2]["tidy"][0]["std_error"] = None

    _tamper(with_expected, edit)
    outcome = verify_study(with_expected)
    assert not outcome.ok
    reasons = {(m.analysis, m.reason.split(":")[0]) for m in outcome.mismatches}
    assert ("twfe.recipient.all", "row not in expected.json") in reasons
    assert ("ghost", "analysis missing from the new run") in reasons
    assert any(m.column == "std_error" for m in outcome.mismatches)


def test_verify_tolerances_come_from_the_study(with_expected):
    design = Design.from_toml(with_expected)
    design.verify = Verify(estimate=ToleranceTable(rtol=1e-3))
    design.to_toml(with_expected / "study.toml")

    def nudge(doc):
        row = doc["analyses"][0]["tidy"][0]
        row["estimate"] = row["estimate"] * (1 + 1e-4)

    _tamper(with_expected, nudge)
    outcome = verify_study(with_expected)
    assert outcome.ok, outcome.report
    assert "study.toml has changed" in outcome.report


def test_verify_without_expected_json_says_how_to_make_it(tiny_study):
    with pytest.raises(DesignError, match=r"python -m evalkit\.study\.expected"):
        verify_study(tiny_study)


def test_command_line_check_run_and_verify(with_expected):
    runner = CliRunner()
    res = runner.invoke(cli, ["check", str(with_expected)])
    assert res.exit_code == 0 and "OK (10 analyses)" in res.output
    res = runner.invoke(cli, ["run", str(with_expected), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (with_expected / "out" / "results.json").exists()
    _tamper(with_expected, lambda d: d["analyses"][0]["tidy"][0].update(estimate=123.0))
    res = runner.invoke(cli, ["verify", str(with_expected)])
    assert res.exit_code == 1
    assert "FAILED" in res.stdout and "twfe.recipient.all" in res.stdout
    assert "tiny: [10/10] no_oslo" in res.stderr  # progress goes to standard error


def test_expected_helper_command_line(tmp_path, capsys):
    assert expected_main([str(tmp_path / "nowhere")]) == 2
    assert "no study file" in capsys.readouterr().err


def test_run_leaves_the_simulated_frame_untouched(tmp_path, tiny_study):
    sim = bergen_rates(seed=3, n_persons=500, start="2019-06", end="2020-12")
    before = sim.data.copy()
    run_study(tiny_study, out=tmp_path / "o2", progress=False, data_override=sim)
    pd.testing.assert_frame_equal(sim.data, before)


@pytest.mark.parametrize("source", ["file", "query"])
def test_same_study_runs_unchanged_on_an_extract(tmp_path, tiny_study, source, tiny, tiny_writer):
    """A register extract with the simulator's columns gives the same estimates."""
    sim_run = run_study(tiny_study, out=tmp_path / "sim", progress=False)
    sim = bergen_rates(seed=17, n_persons=1200, start="2019-01", end="2021-06")
    sim.data.to_parquet(tiny_study / "extract.parquet", index=False)
    design = tiny()
    design.data = (
        Data(file="extract.parquet")
        if source == "file"
        else Data(query="SELECT * FROM 'extract.parquet' WHERE month >= DATE '2019-01-01'")
    )
    tiny_writer(tiny_study, design=design)
    real = run_study(tiny_study, out=tmp_path / "real", progress=False)
    assert real.results["data"]["kind"] == source
    assert real.results["data"]["simulated"] is False
    for a, b in zip(sim_run.results["analyses"], real.results["analyses"], strict=True):
        assert a["id"] == b["id"]
        assert b["tidy"][0]["estimate"] == pytest.approx(a["tidy"][0]["estimate"], rel=1e-9)
        # test-inversion rows (conformal, the default with one treated city) have no SE
        for col in ("std_error", "p_value", "conf_low", "conf_high"):
            if a["tidy"][0][col] is None:
                assert b["tidy"][0][col] is None
            else:
                assert b["tidy"][0][col] == pytest.approx(a["tidy"][0][col], rel=1e-9)
        assert "truth" not in b["tidy"][0]
