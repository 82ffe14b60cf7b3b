"""Person-level analyses (``fit_on = "rows"``, ``collapse_by``) and extra data tables.

Each study is small and written into a temporary folder. The person-level fits are
compared with the obviously-correct path: the same rows averaged with pandas and the
estimator called directly.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.data.disclosure import DisclosurePolicy
from evalkit.did import TWFE
from evalkit.dml import PLR
from evalkit.errors import DesignError, EvalkitError
from evalkit.simulate import get as simulator
from evalkit.study import check_study, load_study, run_study
from evalkit.study.runner import _Cells, _gate, _materialise, _rows_frame, _SharedRows
from evalkit.study.source import frame_sha256, open_source

OPTIONS = {"n_persons": 300, "start": "2019-09", "end": "2020-08"}

PERSONS = """
[study]
name = "persons"
seed = 3

[data]
simulator = "bergen_rates"
options = {n_persons = 300, start = "2019-09", end = "2020-08"}

[columns]
after = "CAST(month >= DATE '2020-03-01' AS INTEGER)"

[roles]
unit = "city"
time = "month"
treatment = "treated"

[collapse]
by = ["city", "month", "treated"]
measures = {income = "mean"}

[report]
figures = false

[[analysis]]
id = "cells"
estimator = "did.TWFE"
options = {outcome = "income"}
inference = "cr2"

[[analysis]]
id = "persons"
estimator = "did.TWFE"
fit_on = "rows"
options = {outcome = "income", unit = "person_id", time = "after"}
collapse_by = ["person_id", "city", "after", "treated"]
inference = {method = "cluster", cluster = "city"}

[[analysis]]
id = "plr"
estimator = "dml.PLR"
fit_on = "rows"
where = "after = 1"
collapse_by = ["person_id", "treated", "family_with_children"]

[analysis.options]
outcome = "income"
covariates = ["family_with_children"]
learner = "lasso"
n_folds = 2
"""

TABLES = """
[study]
name = "tables"
seed = 3

[data]
simulator = "bergen_rates"
options = {n_persons = 300, start = "2019-09", end = "2020-08"}

[data.tables.other]
simulator = "bergen_rates"
options = {n_persons = 200, start = "2019-09", end = "2020-08", seed = 11}

[data.tables.slim]
query = "SELECT person_id, city, month, treated, activity FROM 'slim.csv'"

[roles]
unit = "person_id"
time = "month"
treatment = "treated"

[groups]
families = "family_with_children = 1"

[report]
figures = false

[[analysis]]
id = "main"
estimator = "did.TWFE"
options = {outcome = "activity"}
inference = "hetero"

[[analysis]]
id = "other"
estimator = "did.TWFE"
table = "other"
options = {outcome = "activity"}
inference = "hetero"

[[analysis]]
id = "slim"
estimator = "did.TWFE"
table = "slim"
options = {outcome = "activity"}
inference = "hetero"
"""


def _sim(**extra):
    return simulator("bergen_rates")(**{"seed": 3, **OPTIONS, **extra})


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    slim = _sim(seed=5, n_persons=100).data
    slim[["person_id", "city", "month", "treated", "activity"]].to_csv(
        folder / "slim.csv", index=False
    )
    return folder


def _entry(results, analysis_id):
    return next(a for a in results["analyses"] if a["id"] == analysis_id)


@pytest.fixture(scope="module")
def persons_run(tmp_path_factory):
    folder = _write(tmp_path_factory.mktemp("persons"), PERSONS)
    return folder, run_study(folder, progress=False)


@pytest.fixture(scope="module")
def tables_run(tmp_path_factory):
    folder = _write(tmp_path_factory.mktemp("tables"), TABLES)
    return folder, run_study(folder, progress=False)


# --------------------------------------------------------------------------- fit_on = rows
def _person_periods() -> pd.DataFrame:
    """The obviously-correct path: pandas averages of the simulated person-months."""
    data = _sim().data
    data = data.assign(after=(data["month"] >= "2020-03-01").astype(int))
    keys = ["person_id", "city", "after", "treated"]
    return data.groupby(keys, observed=True, as_index=False)["income"].mean()


def test_person_level_twfe_equals_twfe_on_pandas_averages(persons_run):
    _, run = persons_run
    assert run.ok, run.errors
    entry = _entry(run.results, "persons")
    frame = _person_periods()
    direct = TWFE(
        outcome="income", treatment="treated", unit="person_id", time="after", cluster="city"
    )
    expected = direct.fit(frame, inference="cluster", seed=entry["seed"]).tidy().iloc[0]
    row = entry["tidy"][0]
    assert row["term"] == "treated"
    assert row["estimate"] == pytest.approx(expected["estimate"], rel=1e-10)
    assert row["std_error"] == pytest.approx(expected["std_error"], rel=1e-10)
    # 300 persons x 12 months, averaged to one row per person and before/after
    assert entry["data"] == {
        "mode": "rows",
        "n_rows": 3600,
        "n_averaged_rows": 600,
        "collapse_by": ["person_id", "city", "after", "treated"],
        "n_units": 300,
    }
    assert _entry(run.results, "cells")["data"]["mode"] == "cells"


def test_person_level_dml_equals_plr_on_pandas_averages(persons_run):
    _, run = persons_run
    entry = _entry(run.results, "plr")
    data = _sim().data
    data = data.loc[data["month"] >= "2020-03-01"]
    keys = ["person_id", "treated", "family_with_children"]
    frame = data.groupby(keys, as_index=False)["income"].mean()
    plr = PLR(
        outcome="income",
        treatment="treated",
        covariates=("family_with_children",),
        learner="lasso",
        n_folds=2,
    )
    expected = plr.fit(frame, seed=entry["seed"]).tidy().iloc[0]
    row = entry["tidy"][0]
    assert row["estimate"] == pytest.approx(expected["estimate"], rel=1e-10)
    assert row["std_error"] == pytest.approx(expected["std_error"], rel=1e-10)
    assert entry["data"]["n_rows"] == 300 * 6
    assert entry["data"]["n_averaged_rows"] == len(frame)
    timings = persons_run[1].manifest["timings"]
    assert set(timings["fit_cpu_seconds_by_family"]) == {"cells", "persons", "plr"}
    assert timings["shared_rows_seconds"] > 0 and timings["open_data_seconds"] > 0


def test_the_fit_job_gets_only_the_columns_it_uses(tmp_path):
    study = load_study(_write(tmp_path / "s", PERSONS))
    source = open_source(study)
    try:
        cells = _Cells(study, source)
        jobs = {a.id: _materialise(study, source, a, cells)[0] for a in study.analyses}
    finally:
        source.close()
    assert sorted(jobs["persons"].frame.columns) == [
        "after",
        "city",
        "income",
        "person_id",
        "treated",
    ]
    assert sorted(jobs["plr"].frame.columns) == [
        "family_with_children",
        "income",
        "person_id",
        "treated",
    ]
    assert "weights" not in jobs["persons"].kwargs  # no cell counts behind person rows
    assert jobs["cells"].kwargs["weights"] == "n"


def test_row_counts_pass_the_strict_gate_and_cell_counts_the_cell_gate():
    policy = DisclosurePolicy(5)
    entries = [
        {"id": "cells", "data": {"n_cells": 3, "n_rows": 3}},
        {"id": "rows", "data": {"n_rows": 3, "n_units": 2}},
    ]
    safe = _gate({}, [("analyses", entries, [policy.for_cells(), policy])], policy)
    assert safe["analyses"][0]["data"]["n_cells"] == 3
    rows = safe["analyses"][1]["data"]
    assert rows["n_rows"] != 3 and rows["n_units"] != 2  # suppressed
    assert entries[1]["data"]["n_rows"] == 3  # the caller's payload is not modified


# --------------------------------------------------------------------------- tables
def test_each_table_has_its_own_data_truth_and_fingerprint(tables_run):
    _, run = tables_run
    assert run.ok, run.errors
    main, other = _sim(), _sim(seed=11, n_persons=200)
    truth = {
        "main": main.truth_for("treated", "activity", "all"),
        "other": other.truth_for("treated", "activity", "all"),
    }
    assert truth["main"] != truth["other"]
    for name in ("main", "other"):
        assert _entry(run.results, name)["tidy"][0]["truth"] == pytest.approx(truth[name])
    assert "truth" not in _entry(run.results, "slim")["tidy"][0]  # a file: no truth
    assert _entry(run.results, "other")["data"]["n_rows"] == 200 * 12
    assert _entry(run.results, "other")["data"]["table"] == "other"
    tables = run.manifest["data"]["tables"]
    assert tables["other"]["sha256"] == frame_sha256(other.data)
    assert tables["other"]["kind"] == "simulator"
    assert tables["slim"]["kind"] == "query"
    assert len(tables["slim"]["sha256"]) == 64
    # the main simulator writes its rows in chunks (bsim's store): an order-independent
    # DuckDB fingerprint of the rows, not the frame's hash as for the in-memory tables
    assert len(run.manifest["data"]["sha256"]) == 64
    assert run.manifest["data"]["sha256"] not in {t["sha256"] for t in tables.values()}
    assert run.results["data"]["tables"]["other"]["sha256"] == tables["other"]["sha256"]


def test_an_analysis_on_a_table_equals_the_same_fit_on_its_rows(tables_run):
    _, run = tables_run
    entry = _entry(run.results, "other")
    data = _sim(seed=11, n_persons=200).data
    twfe = TWFE(outcome="activity", treatment="treated", unit="person_id", time="month")
    expected = twfe.fit(data, inference="hetero", seed=entry["seed"]).tidy().iloc[0]
    assert entry["tidy"][0]["estimate"] == pytest.approx(expected["estimate"], rel=1e-10)


def test_check_with_data_replaces_the_main_table_only(tmp_path):
    folder = _write(tmp_path / "s", TABLES)
    extract = tmp_path / "extract.parquet"
    _sim(seed=4).data.to_parquet(extract)
    study = check_study(folder, data=extract)
    assert set(study.tables) == {"other", "slim"}


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("text", "edit", "pattern"),
    [
        (TABLES, ('table = "other"', 'table = "othr"'), r"table 'othr' is not defined"),
        (TABLES, ('table = "other"', 'fit_on = "cell"'), r"fit_on must be one of"),
        (TABLES, ('table = "other"', 'table = "other"\nfit_on = "cells"'), r"needs \[collapse\]"),
        (
            PERSONS,
            ('id = "plr"', 'id = "plr"\ntable = "other"\n'),
            r"table 'other' is not defined.*\n.*\[data\.tables\.other\]",
        ),
        (
            TABLES,
            (
                'simulator = "bergen_rates"\noptions = {n_persons = 200',
                'simulater = "x"\noptions = {n_persons = 200',
            ),
            r"unknown key 'simulater' in \[data\.tables\.other\]",
        ),
        (
            TABLES,
            (
                'table = "slim"\noptions = {outcome = "activity"}',
                'table = "slim"\noptions = {outcome = "income"}',
            ),
            r"column 'income' \(outcome\) is not in table 'slim'\n  hint: available: person_id",
        ),
        (
            TABLES,
            ('table = "slim"\n', 'table = "slim"\ngroup = "families"\n'),
            r"condition 'family_with_children = 1' does not work on table 'slim'",
        ),
    ],
    ids=[
        "unknown_table",
        "fit_on_value",
        "cells_without_collapse",
        "hint_names_the_section",
        "unknown_table_key",
        "missing_column_in_table",
        "group_column_missing_in_table",
    ],
)
def test_errors_name_the_key_table_and_fix(tmp_path, text, edit, pattern):
    old, new = edit
    text = textwrap.dedent(text)
    assert old in text
    folder = _write(tmp_path / "s", text.replace(old, new, 1))
    with pytest.raises(EvalkitError, match=pattern):
        check_study(folder)


def test_cells_on_another_table_is_refused(tmp_path):
    text = PERSONS + '\n[data.tables.other]\nsimulator = "bergen_rates"\n'
    text = text.replace('id = "cells"', 'id = "cells"\ntable = "other"\nfit_on = "cells"')
    folder = _write(tmp_path / "s", text)
    with pytest.raises(
        DesignError, match=r"\[collapse\] applies to the main \[data\] only"
    ) as info:
        load_study(folder, check_data=False)
    assert 'fit_on = "rows"' in str(info.value)


def test_averaging_a_text_column_names_it(tmp_path):
    text = PERSONS.replace(
        'collapse_by = ["person_id", "city", "after", "treated"]',
        'collapse_by = ["person_id", "after", "treated"]',
    )
    run = run_study(_write(tmp_path / "s", text), progress=False)
    (error,) = [e for e in run.errors if e.startswith("persons:")]
    assert "column 'city'" in error and "add 'city' to collapse_by" in error
    assert np.isfinite(_entry(run.results, "cells")["tidy"][0]["estimate"])


def test_a_table_query_outside_its_declared_files_is_stopped_by_the_sandbox(tmp_path):
    """The extra tables share the run's locked-down connection (data/sandbox.py)."""
    folder = _write(tmp_path / "s", TABLES)
    outside = tmp_path / "secret.csv"
    outside.write_text("person_id\n1\n", encoding="utf-8")
    text = (folder / "study.toml").read_text(encoding="utf-8")
    dynamic = f"SELECT * FROM read_csv(concat('{tmp_path}', '/secret', '.csv'))"
    (folder / "study.toml").write_text(
        text.replace("SELECT person_id, city, month, treated, activity FROM 'slim.csv'", dynamic),
        encoding="utf-8",
    )
    with pytest.raises(EvalkitError, match=r"the query of \[data\.tables\.slim\] reads something"):
        check_study(folder)


def test_the_report_gives_row_counts_and_tables(persons_run, tables_run):
    folder, _ = persons_run
    report = (folder / "out" / "report.md").read_text(encoding="utf-8")
    assert (
        "| persons | main | 3600 | `person_id`, `city`, `after`, `treated` | 600 | 300 |" in report
    )
    assert "Analyses `persons` use cells" not in report  # rows are not described as cells
    folder, run = tables_run
    report = (folder / "out" / "report.md").read_text(encoding="utf-8")
    sha = run.manifest["data"]["tables"]["other"]["sha256"][:16]
    assert f"`other` (simulator `bergen_rates`, sha256 `{sha}…`)" in report


def test_small_row_counts_are_suppressed_in_the_report():
    from evalkit.report.study_report import _rows_blocks

    policy = DisclosurePolicy(5)
    entry = {"id": "few", "data": {"mode": "rows", "n_rows": 24, "n_units": 2}}
    safe = _gate({}, [("analyses", [entry], policy)], policy)["analyses"]
    (_, (_, _, rows)) = _rows_blocks(safe, {})
    assert rows == [["few", "main", "24", "", "", "suppressed"]]


def test_a_text_month_in_a_table_is_named_with_its_table(tmp_path):
    text = TABLES.replace(
        "SELECT person_id, city, month, treated, activity FROM 'slim.csv'",
        "SELECT * REPLACE (CAST(month AS VARCHAR) AS month) FROM 'slim.csv'",
    )
    with pytest.raises(EvalkitError, match=r"column 'month' in table 'slim' \(a DuckDB query\)"):
        run_study(_write(tmp_path / "s", text), progress=False)


@pytest.mark.slow  # ~10 s: starts two worker processes that import DoubleML
def test_rows_analyses_give_identical_results_on_two_workers(persons_run, tmp_path):
    folder, run = persons_run
    two = run_study(folder, out=tmp_path / "two", progress=False, jobs=2)
    assert [a["tidy"] for a in two.results["analyses"]] == [
        a["tidy"] for a in run.results["analyses"]
    ]
    assert [a["data"] for a in two.results["analyses"]] == [
        a["data"] for a in run.results["analyses"]
    ]


SHARED = PERSONS.replace(
    "[roles]",
    'odd = "CAST(month(month) % 2 AS INTEGER)"\n\n[roles]',
).replace(
    "[collapse]",
    '[groups]\nfamilies = "family_with_children = 1"\nodd_months = "odd = 1"\n\n[collapse]',
) + textwrap.dedent(
    """
    [[analysis]]
    id = "by_group"
    estimator = "did.TWFE"
    fit_on = "rows"
    where = "month <> DATE '2019-12-01'"
    collapse_by = ["person_id", "city", "after", "treated"]
    options = {unit = "person_id", time = "after"}
    inference = {method = "cluster", cluster = "city"}

    [analysis.expand]
    outcome = ["income", "work"]
    group = ["all", "families", "odd_months"]

    # keys a subset of by_group's: it shares their pass (the worker sums over treated)
    [[analysis]]
    id = "nested"
    estimator = "did.TWFE"
    fit_on = "rows"
    where = "family_with_children = 1 AND month <> DATE '2019-12-01'"
    collapse_by = ["person_id", "city", "after"]
    options = {unit = "person_id", time = "after", outcome = "income"}
    inference = {method = "cluster", cluster = "city"}
    """
)


def test_shared_rows_equal_per_analysis_reads(tmp_path):
    # one pass per (table, keys, split) for several conditions, a group whose condition
    # varies within a person's period (odd months), and missing outcome values: each
    # analysis' rows equal the rows it would read on its own
    study = load_study(_write(tmp_path / "s", SHARED))
    data = _sim().data.copy()
    data.loc[data.index % 7 == 0, "income"] = np.nan
    source = open_source(study, data)
    shared = _SharedRows(study, source)
    try:
        specs = [a for a in study.analyses if a.fit_on == "rows"]
        assert len(specs) == 9
        for spec in specs:
            ref = shared.ref(spec)
            assert ref is not None
            frame, info = ref.load()
            expected, expected_info = _rows_frame(source, spec)
            assert list(frame.columns) == list(expected.columns)
            pd.testing.assert_frame_equal(frame, expected, check_exact=False, rtol=1e-12)
            assert {"mode": "rows", **info} == expected_info
            assert frame.isna().any().any() == expected.isna().any().any()
        # persons, the six by_group analyses and nested (keys a subset of theirs) share
        # one pass, plr has its own keys
        assert len(shared.files) == 2
        assert len({shared.ref(s).path for s in specs if s.id != "plr"}) == 1
        nested = next(s for s in specs if s.id == "nested")
        assert [k for k, _ in shared.ref(nested).keys] == ["person_id", "city", "after"]
    finally:
        shared.close()
        source.close()
    assert shared.folder is not None and not shared.folder.exists()


def test_a_text_column_in_a_shared_pass_fails_only_its_analysis(tmp_path):
    text = SHARED.replace(
        'options = {unit = "person_id", time = "after"}',
        'options = {unit = "person_id", time = "after", covariates = ["sex_text"]}',
    ).replace("[columns]\n", '[columns]\nsex_text = "CAST(female AS VARCHAR)"\n')
    run = run_study(_write(tmp_path / "s", text), progress=False)
    errors = {a["id"]: a["error"] for a in run.results["analyses"]}
    assert all("column 'sex_text'" in errors[k] for k in errors if k.startswith("by_group"))
    assert errors["persons"] is None and errors["plr"] is None


def test_results_travel_back_without_scores_or_fitted_models():
    # the parent holds every result until the report: per-observation scores and a
    # DoubleML model stay on the worker; estimates, inference and info are unchanged
    from evalkit.study.runner import _for_report

    keys = ["person_id", "treated", "family_with_children"]
    frame = _sim().data.groupby(keys, observed=True, as_index=False)["income"].mean()
    plr = PLR(outcome="income", treatment="treated", covariates=["family_with_children"], n_folds=2)
    full = plr.fit(frame, seed=1)
    light = _for_report(full)
    assert full._model is not None and light._model is None and light._scores is None
    pd.testing.assert_frame_equal(light.tidy(), full.tidy())
    assert light.inference == full.inference and dict(light.info) == dict(full.info)
    assert _for_report("not a result") == "not a result"


@pytest.mark.slow  # ~15 s: two runs, one on two worker processes
def test_shared_passes_give_identical_results_on_one_and_two_workers(tmp_path):
    folder = _write(tmp_path / "s", SHARED)
    one = run_study(folder, out=tmp_path / "one", progress=False, jobs=1)
    two = run_study(folder, out=tmp_path / "two", progress=False, jobs=2)
    assert one.ok and two.ok, (one.errors, two.errors)
    for key in ("tidy", "data", "info", "warnings"):
        assert [a[key] for a in two.results["analyses"]] == [
            a[key] for a in one.results["analyses"]
        ]


def test_a_shared_pass_with_more_conditions_than_one_code_holds(tmp_path):
    # 62 conditions per code column: the 70 conditions of one pass take two columns,
    # and each condition's rows equal the rows averaged on their own
    from evalkit.data import sandbox
    from evalkit.study.source import DataSource, read_averaged

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"g": rng.integers(0, 4, 600), "x": rng.integers(0, 80, 600), "y": rng.normal(size=600)}
    )
    con = sandbox.connect()
    con.register("evalkit_data", frame)
    source = DataSource(con, con.table("evalkit_data"), "frame", "-", "-")
    wheres = [None, *(f"x >= {k}" for k in range(69))]
    path = tmp_path / "parts.parquet"
    try:
        types = source.averaged_parts(wheres, ["y"], ["g"], None, path)
        for i in (0, 1, 61, 62, 63, 69):
            got, n = read_averaged(path, i, types, ["y"], ["y"])
            expected, n_expected = source.averaged(wheres[i], ["y"], ["g"])
            pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-13)
            assert n == n_expected
    finally:
        con.close()
