"""The report's figures drawn on the fit workers while later analyses are fitted.

The runner starts each figure as soon as what it shows is fitted
(:class:`evalkit.study.figures_ahead.FiguresAhead`); the files must be the same, in the
same report order, as when the report draws every figure itself after the last fit.
"""

from __future__ import annotations

import hashlib

import pytest

from evalkit import parallel
from evalkit.study.design import Analysis
from evalkit.study.runner import run_study


def _design(tiny):
    design = tiny(figures=True)
    design.analyses.append(
        Analysis(
            id="event",
            estimator="did.EventStudy",
            options={"window": [-6, 6], "bin_endpoints": True},
            expand={"outcome": ["recipient", "income"], "group": ["all", "families"]},
        )
    )
    # a result with paths (drawn in its own figure, sent to a worker by cloudpickle)
    design.analyses.append(
        Analysis(
            id="sc",
            estimator="synth.SyntheticControl",
            options={"outcome": "income"},
            inference="none",
        )
    )
    return design


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny, tiny_writer):
    tmp = tmp_path_factory.mktemp("ahead")
    folder = tiny_writer(tmp / "study", design=_design(tiny))
    one = run_study(folder, out=tmp / "one", progress=False, jobs=1)
    two = run_study(folder, out=tmp / "two", progress=False, jobs=2)
    return one, two


def _pngs(run):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.files if p.suffix == ".png"
    }


def test_figures_drawn_on_workers_are_the_same_files(runs):
    one, two = runs
    assert one.results == two.results
    names = set(_pngs(one))
    # every kind of figure is there: the families' estimates, event studies, cell means
    assert {"twfe.png", "event_study_recipient.png", "event_study_income.png"} <= names
    assert {"sc.png", "sc_paths.png"} <= names
    assert {"trends_all.png", "trends_families.png", "trends_nw_families.png"} <= names
    assert _pngs(one) == _pngs(two)
    for run in runs:
        assert {p.name for p in (run.out_dir / "figures").iterdir()} == names
    assert (one.out_dir / "report.md").read_text() == (two.out_dir / "report.md").read_text()
    assert one.manifest["outputs"] == two.manifest["outputs"]  # same files, same order
    assert two.manifest["timings"]["figures_cpu_seconds"] > 0


def test_the_files_are_listed_in_the_report_order(runs):
    # the figures' order in the manifest is figure_jobs' order (families, events, trends)
    one, _ = runs
    listed = [k for k in one.manifest["outputs"] if k.endswith(".png")]
    assert listed[0] == "figures/twfe.png"
    first_event = listed.index("figures/event_study_recipient.png")
    first_trend = listed.index("figures/trends_all.png")
    assert all(k.startswith("figures/trends_") for k in listed[first_trend:])
    assert first_event < first_trend


def test_submit_runs_on_a_worker_or_here():
    assert parallel.Backend(jobs=1).submit(sum, [1, 2]).result() == 3
    pending = parallel.Backend(jobs=2).submit(sum, [3, 4])
    assert pending.result() == 7
    assert pending.done()


def test_the_fit_stream_ends_without_dropping_the_workers(tmp_path, tiny_study):
    # a fit stream dropped before its end is closed, which cancels whatever else is
    # queued on the workers (figures) and drops the pool: the run lets it end instead
    run_study(tiny_study, out=tmp_path / "a", progress=False, jobs=2)
    pool = parallel._warm_pool(2)
    assert pool is not None
    run_study(tiny_study, out=tmp_path / "b", progress=False, jobs=2)
    assert parallel._warm_pool(2) is pool
