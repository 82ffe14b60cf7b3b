"""``[[analysis]] by = "<column>"``: subgroups compared in the study layer.

The fit gets ``by=`` (one fit per subgroup, differences, equality tests); for cells the
column is a cell key; each subgroup row's truth is the estimand on its own rows and a
difference row's truth the difference of the two; the report lists the equality tests.
"""

from __future__ import annotations

import math
import textwrap

import pytest

from evalkit.errors import DesignError, EvalkitError
from evalkit.simulate import bergen_rates
from evalkit.study import load_study, run_study
from evalkit.study.truth import _split_difference, truth_lookup

HOUSEHOLD = (
    "CASE WHEN non_western = 1 THEN 'non_western' ELSE 'native' END || "
    "CASE WHEN family_with_children = 1 THEN '_children' ELSE '' END"
)

STUDY = textwrap.dedent(
    f'''
    [study]
    name = "by"
    seed = 7
    min_cell_size = 1

    [report]
    figures = false

    [data]
    simulator = "bergen_rates"
    options = {{n_persons = 1500, start = "2019-09", end = "2020-08"}}

    [columns]
    household = "{HOUSEHOLD}"
    after_reform = "CAST(month >= DATE '2020-03-01' AS INTEGER)"

    [roles]
    unit = "city"
    time = "month"
    treatment = "treated"
    cluster = "city"

    [collapse]
    by = ["city", "month", "treated"]
    count = "n"
    measures = {{activity = "mean", earnings = "mean"}}

    [[analysis]]
    id = "sc_by"
    estimator = "synth.SyntheticControl"
    inference = "placebo"
    by = "household"
    options = {{outcome = "activity", custom_v = [1, 1, 1, 1, 1, 1]}}

    [[analysis]]
    id = "dml_by"
    estimator = "dml.DID"
    fit_on = "rows"
    where = "pre_reform_recipient = 1"
    collapse_by = ["person_id", "city", "after_reform"]
    by = "household"

    [analysis.options]
    outcome = "earnings"
    unit = "person_id"
    time = "after_reform"
    cluster = "person_id"
    n_folds = 2
    covariates = ["age"]
    learner = "logit"
    '''
)


SC_BY = 'by = "household"\noptions = {outcome = "activity", custom_v = [1, 1, 1, 1, 1, 1]}'


def _sc_by(lines):
    """The study with the synthetic control's ``by`` line replaced by ``lines``."""
    assert SC_BY in STUDY
    return STUDY.replace(SC_BY, lines + "\n" + SC_BY.split("\n")[1])


def _write(folder, text=STUDY):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.toml").write_text(text)
    return folder


@pytest.fixture(scope="module")
def by_run(tmp_path_factory):
    folder = _write(tmp_path_factory.mktemp("by") / "study")
    return run_study(folder, progress=False, jobs=1)


def _rows(run, analysis_id):
    (entry,) = [a for a in run.results["analyses"] if a["id"] == analysis_id]
    assert entry["error"] is None, entry["error"]
    return entry


def test_by_is_a_cell_key_and_reaches_the_fit(tmp_path):
    study = load_study(_write(tmp_path / "s"), check_data=False)
    sc = study.analysis("sc_by")
    assert sc.by == "household"
    assert study.cell_keys(sc) == ("city", "month", "treated", "household")
    assert study.cell_keys(study.analysis("dml_by")) == ()  # rows: averaged within keys


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('by = "house hold"', "must be a column name"),
    ],
)
def test_bad_by_is_refused_with_a_hint(tmp_path, change, message):
    with pytest.raises(EvalkitError, match=message):
        load_study(_write(tmp_path / "s", _sc_by(change)), check_data=False)


def test_by_and_split_by_together_are_refused(tmp_path):
    text = STUDY.replace("[roles]", '[groups]\nfamilies = "family_with_children = 1"\n\n[roles]')
    text += textwrap.dedent(
        """
        [[analysis]]
        id = "ddd"
        estimator = "did.TripleDiff"
        split_by = "families"
        by = "household"
        options = {outcome = "activity"}
        """
    )
    with pytest.raises(DesignError, match="by and split_by both") as err:
        load_study(_write(tmp_path / "s", text), check_data=False)
    assert "keep one" in err.value.hint


def test_by_with_an_estimator_without_subgroups_names_it(tmp_path):
    text = STUDY + textwrap.dedent(
        """
        [[analysis]]
        id = "bacon"
        estimator = "did.BaconDecomposition"
        by = "household"
        options = {outcome = "activity"}
        """
    )
    with pytest.raises(DesignError, match="does not compare subgroups") as err:
        load_study(_write(tmp_path / "s", text), check_data=False)
    assert err.value.column == "by"


def test_by_column_missing_from_the_data_is_named(tmp_path):
    text = _sc_by('by = "housholds"')
    with pytest.raises(DesignError, match="housholds"):
        load_study(_write(tmp_path / "s", text))


def test_split_difference_labels():
    plain = {"a", "b - c", "b", "c"}
    assert _split_difference("a - b", plain) == ("a", "b")
    assert _split_difference("a", plain) is None


def test_truth_of_subgroup_and_difference_rows_is_the_estimand_on_their_rows(tmp_path):
    study = load_study(_write(tmp_path / "s"), check_data=False)
    sim = bergen_rates(seed=7, n_persons=600, start="2019-09", end="2020-08")
    spec = study.analysis("dml_by")
    rows = [
        {"term": "treated", "subgroup": "native"},
        {"term": "treated", "subgroup": "non_western_children"},
        {"term": "treated", "subgroup": "native - non_western_children"},
    ]
    native, nwc, diff = truth_lookup(study, sim, spec)(rows)
    # the slow, obvious path: the simulator's own effect on the subgroup's rows
    cond = "pre_reform_recipient = 1 AND non_western = 1 AND family_with_children = 1"
    assert nwc == pytest.approx(sim.truth_where("treated", "earnings", cond))
    assert native == 0.0 and nwc < 0
    assert diff == pytest.approx(native - nwc)


@pytest.mark.slow
def test_synthetic_control_by_rows_truths_and_equality_tests(by_run):
    entry = _rows(by_run, "sc_by")
    rows = entry["tidy"]
    groups = entry["info"]["groups"]
    assert groups == ["native", "native_children", "non_western", "non_western_children"]
    truth = {(r["subgroup"], r["term"], r.get("time")): r["truth"] for r in rows}
    for (label, term, time), value in truth.items():
        if label in groups:
            assert value is not None and math.isfinite(value)
        else:
            a, b = label.split(" - ")
            assert value == pytest.approx(truth[(a, term, time)] - truth[(b, term, time)])
    # the planted effect on activity: none for native persons without children, a fall
    # for the three groups of the research
    assert truth[("native", "att", None)] == 0.0
    assert truth[("non_western_children", "att", None)] < 0
    tests = entry["info"]["equality_tests"]
    assert {t["term"] for t in tests} == {"att", "effect"}
    assert all(0 < t["p_value"] <= 1 for t in tests)


@pytest.mark.slow
def test_dml_by_rows_truths_and_the_report(by_run):
    entry = _rows(by_run, "dml_by")
    rows = entry["tidy"]
    truth = {r["subgroup"]: r["truth"] for r in rows}
    assert truth["native"] == 0.0 and truth["non_western_children"] < 0
    assert truth["native - non_western_children"] == pytest.approx(
        truth["native"] - truth["non_western_children"]
    )
    (test,) = entry["info"]["equality_tests"]
    assert test["df"] == 3
    report = (by_run.out_dir / "report.md").read_text()
    assert "## Equality tests across groups" in report
    assert "| dml_by | household |" in report
