"""Study runs: parallel backends give identical results, run folders are never overwritten
silently, --set overrides are recorded, and bad extracts are caught before any analysis."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import DataError, EvalkitError, StudyError
from evalkit.simulate import get as simulator
from evalkit.study import check_study, run_study, verify_study
from evalkit.study.expected import write_expected


def _tidy(outcome):
    return [(a["id"], a["tidy"]) for a in outcome.results["analyses"]]


def test_local_processes_give_identical_results(tmp_path, tiny_study):
    one = run_study(tiny_study, out=tmp_path / "one", progress=False)
    two = run_study(tiny_study, out=tmp_path / "two", progress=False, jobs=2)
    assert _tidy(one) == _tidy(two)
    assert two.manifest["backend"] == "2 local processes"


def test_a_dask_cluster_gives_identical_results(tmp_path, tiny_study):
    distributed = pytest.importorskip("distributed")
    one = run_study(tiny_study, out=tmp_path / "one", progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        on_dask = run_study(
            tiny_study, out=tmp_path / "dask", progress=False, scheduler=cluster.scheduler_address
        )
    assert _tidy(one) == _tidy(on_dask)
    assert on_dask.manifest["backend"].startswith("Dask distributed cluster at tcp://127.0.0.1")


def test_an_earlier_run_is_never_overwritten_without_force(tmp_path, tiny_study):
    out = tmp_path / "run"
    first = run_study(tiny_study, out=out, progress=False)
    stamp = (out / "manifest.json").read_text()
    with pytest.raises(StudyError, match="already holds an earlier run"):
        run_study(tiny_study, out=out, progress=False)
    assert (out / "manifest.json").read_text() == stamp
    # a failing forced run leaves the earlier run intact and no temporary folder behind
    with pytest.raises(EvalkitError):
        run_study(
            tiny_study,
            out=out,
            progress=False,
            force=True,
            overrides={"roles.time": "no_such_column"},
        )
    assert (out / "manifest.json").read_text() == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny"]
    second = run_study(tiny_study, out=out, progress=False, force=True)
    assert _tidy(first) == _tidy(second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny"]


def test_set_overrides_are_applied_and_recorded(tmp_path, tiny_study):
    run = run_study(
        tiny_study,
        out=tmp_path / "run",
        progress=False,
        overrides={"data.options.n_persons": 900, "analysis.no_oslo.inference": "cluster"},
    )
    assert run.manifest["overrides"] == {
        "data.options.n_persons": 900,
        "analysis.no_oslo.inference": "cluster",
    }
    assert run.results["data"]["options"]["n_persons"] == 900
    entry = next(a for a in run.results["analyses"] if a["id"] == "no_oslo")
    assert entry["inference"]["method"] == "cluster"


def test_cli_set_force_and_jobs(tmp_path, tiny_study):
    out = tmp_path / "cli"
    runner = CliRunner()
    args = ["run", str(tiny_study), "--out", str(out), "--no-progress"]
    first = runner.invoke(main, [*args, "--set", "data.options.n_persons=900", "-j", "2"])
    assert first.exit_code == 0, first.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["overrides"] == {"data.options.n_persons": 900}
    again = runner.invoke(main, args)
    assert again.exit_code != 0 and "--force" in again.output
    assert runner.invoke(main, [*args, "--force"]).exit_code == 0
    bad = runner.invoke(main, [*args, "--force", "--set", "no_equals_sign"])
    assert bad.exit_code != 0 and "KEY=VALUE" in bad.output
    unknown = runner.invoke(main, [*args, "--force", "--set", "analysis.nope.inference=iid"])
    assert unknown.exit_code != 0 and "no [[analysis]] with id 'nope'" in unknown.output


def test_verify_uses_a_temporary_folder(tmp_path, tiny_study):
    write_expected(tiny_study, out=tmp_path / "expected-run", progress=False)
    outcome = verify_study(tiny_study)
    assert outcome.ok, outcome.report
    assert not (tiny_study / "out").exists()
    assert not outcome.run.out_dir.exists()


def test_verify_and_write_expected_take_a_design(tmp_path, tiny):
    design = tiny()
    target = write_expected(design, root=tmp_path, out=tmp_path / "run", progress=False)
    assert target == tmp_path.resolve() / "expected.json"
    assert verify_study(design, root=tmp_path).ok
    # a changed expected estimate fails
    doc = json.loads(target.read_text(encoding="utf-8"))
    doc["analyses"][0]["tidy"][0]["estimate"] += 1.0
    target.write_text(json.dumps(doc), encoding="utf-8")
    outcome = verify_study(design, root=tmp_path)
    assert not outcome.ok and "estimate" in outcome.report


# --------------------------------------------------------------------------- bad extracts
@pytest.fixture(scope="module")
def extract(tmp_path_factory):
    sim = simulator("bergen_rates")(seed=2, n_persons=1200, start="2019-01", end="2021-06")
    return sim.data


def _write(frame: pd.DataFrame, tmp_path, name="extract.parquet"):
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def test_a_good_extract_checks(tmp_path, tiny_study, extract):
    check_study(tiny_study, data=_write(extract, tmp_path))


def test_text_month_is_named_with_the_fix(tmp_path, tiny_study, extract):
    bad = extract.assign(month=pd.to_datetime(extract["month"]).dt.strftime("%Y-%m"))
    path = _write(bad, tmp_path)
    with pytest.raises(DataError, match=r"column 'month' in data file .* is VARCHAR") as info:
        check_study(tiny_study, data=path)
    assert "CAST" in str(info.value)
    with pytest.raises(DataError, match="is VARCHAR"):
        run_study(tiny_study, out=tmp_path / "run", progress=False, data_override=path)
    assert not (tmp_path / "run").exists()


def test_a_missing_group_column_is_named(tmp_path, tiny_study, extract):
    path = _write(extract.drop(columns=["non_western"]), tmp_path)
    with pytest.raises(EvalkitError, match="non_western"):
        check_study(tiny_study, data=path)
    with pytest.raises(EvalkitError, match="non_western"):
        run_study(tiny_study, out=tmp_path / "run", progress=False, data_override=path)


def test_missing_values_are_counted_and_reported(tmp_path, tiny_study, extract):
    rng = np.random.default_rng(1)
    bad = extract.copy()
    hole = rng.random(len(bad)) < 0.01
    bad.loc[hole, "income"] = np.nan
    run = run_study(
        tiny_study, out=tmp_path / "run", progress=False, data_override=_write(bad, tmp_path)
    )
    assert run.results["data"]["missing_values"] == {"income": int(hole.sum())}
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"`income` {int(hole.sum()):,}" in report


def test_missing_values_in_a_role_column_stop_the_run(tmp_path, tiny_study, extract):
    bad = extract.astype({"treated": "float"})
    bad.loc[bad.index[:3], "treated"] = np.nan
    with pytest.raises(DataError, match=r"role column 'treated' \(treatment\).* 3 missing"):
        check_study(tiny_study, data=_write(bad, tmp_path))


@pytest.mark.parametrize("jobs", [1, 2])
def test_jobs_are_streamed_a_bounded_window_ahead(jobs):
    # the runner builds fit jobs as the backend takes them: never more than the window
    # ahead of the results handed back, and the results in item order
    from evalkit import parallel

    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield "x" * i

    seen = []
    for n in parallel.backend(jobs=jobs).imap(len, items(), window=3):
        seen.append(n)
        assert len(made) - len(seen) <= (3 if jobs > 1 else 0)
    assert seen == list(range(20))


# --------------------------------------------------------------------------- cells in one pass
def _cells_design(tiny_design):
    """The tiny study with cells in several conditions, keys and splits (one pass)."""
    from evalkit.study.design import Analysis

    design = tiny_design()
    design.columns = {
        "after": "CAST(month >= DATE '2020-03-01' AS INTEGER)",
        "placebo": "CAST(city = 'Bergen' AND month >= DATE '2019-09-01' AS INTEGER)",
    }
    design.analyses += [
        Analysis(
            id="placebo",
            estimator="did.TWFE",
            where="month < DATE '2020-03-01'",
            collapse_by=["city", "month", "placebo"],
            options={"treatment": "placebo"},
            expand={"outcome": ["recipient", "income"], "group": ["all", "families"]},
        ),
        Analysis(
            id="ddd",
            estimator="did.TripleDiff",
            collapse_by=["city", "after", "treated"],
            options={"time": "after"},
            inference="iid",
            expand={"outcome": ["recipient", "duration"], "split_by": ["families"]},
        ),
    ]
    return design


def _same_estimates(a, b, rtol):
    """Return the largest relative gap between two runs' numbers (ids and terms must match)."""
    worst = 0.0
    for x, y in zip(a.results["analyses"], b.results["analyses"], strict=True):
        assert (x["id"], x["error"]) == (y["id"], y["error"])
        assert [r["term"] for r in x["tidy"]] == [r["term"] for r in y["tidy"]]
        for r, s in zip(x["tidy"], y["tidy"], strict=True):
            for key in ("estimate", "std_error", "conf_low", "conf_high", "p_value"):
                u, v = r.get(key), s.get(key)
                assert (u is None) == (v is None), (x["id"], key)
                if u is not None:
                    worst = max(worst, abs(u - v) / max(abs(v), 1e-12))
        assert x["data"] == y["data"]  # cell counts, suppressed cells, microdata rows
    assert worst <= rtol
    return worst


def test_cells_in_one_pass_equal_one_collapse_per_condition(
    tmp_path, monkeypatch, tiny, tiny_writer
):
    from evalkit.study import runner

    folder = tiny_writer(tmp_path / "cells", design=_cells_design(tiny))
    calls = []
    real = runner.collapse
    monkeypatch.setattr(runner, "collapse", lambda *a, **k: calls.append(1) or real(*a, **k))
    one_pass = run_study(folder, out=tmp_path / "one_pass", progress=False)
    assert one_pass.ok and not calls  # every table from the one pass
    # the slow reference: each condition and split collapsed on its own, as before
    monkeypatch.setattr(runner._Cells, "_collapse_planned", lambda self: {})
    separate = run_study(folder, out=tmp_path / "separate", progress=False)
    assert len(calls) == 7  # twfe: 3 groups; no_oslo; placebo: 2 groups; ddd: 1 split
    assert one_pass.results["cells"] == separate.results["cells"]
    # integer measures: means of exact sums; income: sums of partial sums (last bits)
    _same_estimates(one_pass, separate, rtol=1e-10)


def test_a_failing_condition_fails_only_its_analyses(tmp_path, tiny, tiny_writer):
    from evalkit.study.design import Analysis

    design = tiny()
    # binds (checked before the run) but fails on the rows: the one pass fails, then each
    # table is collapsed on its own and only this analysis reports the error
    design.analyses.append(
        Analysis(
            id="bad",
            estimator="did.TWFE",
            options={"outcome": "recipient"},
            where="CAST(city AS INTEGER) > 0",
        )
    )
    folder = tiny_writer(tmp_path / "bad", design=design)
    run = run_study(folder, out=tmp_path / "o", progress=False)
    assert [e.split(":")[0] for e in run.errors] == ["bad"]
    assert "collapsing the data failed" in run.errors[0]


def test_cells_runs_are_identical_on_one_and_two_processes(tmp_path, tiny, tiny_writer):
    folder = tiny_writer(tmp_path / "cells", design=_cells_design(tiny))
    one = run_study(folder, out=tmp_path / "one", progress=False)
    two = run_study(folder, out=tmp_path / "two", progress=False, jobs=2)
    assert one.results == two.results
