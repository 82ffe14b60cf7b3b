"""Size of the few-treated pre-trend test on the Bergen simulator (issue 12).

The simulation lives in benchmarks/bergen_pretrend_size.py (300 seeds in
benchmarks/results/bergen_pretrend_size.md): the simulator plants nothing before March
2020, so every rejection of the joint test of the leads is a false one. Fast: the
benchmark's cells are the study's (evalkit's DuckDB collapse) and one small draw gives
every analysis. Slow: the rejection rates over 60 seeds at the study's size.
"""

from __future__ import annotations

import math
import runpy
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from evalkit.data.collapse import collapse
from evalkit.did import EventStudy, HonestEventStudy
from evalkit.simulate import bergen_rates

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bergen_pretrend_size.py"


def _bench() -> SimpleNamespace:
    """The benchmark script's functions and constants (its command line not run)."""
    return SimpleNamespace(**runpy.run_path(str(BENCH)))


def test_benchmark_cells_are_the_study_collapse():
    # the benchmark's numpy cells equal evalkit's DuckDB collapse with the study's
    # measures (benefit and duration among recipients, each with its own count)
    bench = _bench()
    df = bergen_rates(seed=4, n_persons=3000).data
    where = "non_western = 1 AND family_with_children = 1"
    ours = bench.cells(df, ("non_western", "family_with_children"))
    measures = {
        name: {"column": col, "stat": "mean", **({"where": "recipient = 1"} if rec else {})}
        for name, (col, rec) in bench.MEASURES.items()
    }
    measures["city_unemployment"] = {"column": "city_unemployment", "stat": "mean"}
    theirs = collapse(df, ["city", "period"], measures, min_cell_size=1, where=where)
    assert len(theirs) == len(ours) == 720
    theirs = theirs.assign(city=theirs["city"].cat.codes).sort_values(["city", "period"])
    np.testing.assert_array_equal(ours["n"], theirs["n"].to_numpy(int))
    np.testing.assert_array_equal(ours["n_rec"], theirs["n_benefit"].to_numpy(int))
    for name in [*bench.MEASURES, "city_unemployment"]:
        np.testing.assert_allclose(ours[name], theirs[name].to_numpy(float), rtol=1e-12)
    # the covariate is the city-month's own value (constant over the persons)
    u = df.groupby(["city", "period"], observed=True)["city_unemployment"].first()
    np.testing.assert_allclose(ours["city_unemployment"], u.to_numpy(float), rtol=1e-6)
    assert ours["d"].sum() == 34  # Bergen from March 2020 (period 39) to December 2022


def test_one_small_draw_gives_every_analysis():
    bench = _bench()
    rows = pd.DataFrame(bench.one_seed(5, n_persons=4000, groups=("all",)))
    assert len(rows) == 5 + 7
    assert rows["p_sized"].between(0, 1).all() and rows["p_unsized"].between(0, 1).all()
    leads = rows.groupby("shape")["leads"].first()
    assert leads["honest"] == "-4 -3 -2"
    assert leads["event"].split() == [str(e) for e in range(-12, -1)]
    # Bergen's cells are about twice the comparison cities' median: smaller errors
    assert (rows["ratio"] < 1).all()


def test_covariate_fits_are_the_study_estimators():
    # with the study's covariate the benchmark's p-values are those of the study's
    # estimators (HonestEventStudy for `honest`, EventStudy's info for `event`) on the
    # same cells, and the covariate changes them (the pre-trend test depends neither on
    # HonestDiD's bounds nor on the bootstrap's draws: one bound, 9 draws keep it fast)
    bench = _bench()
    cov = ("city_unemployment",)
    rows = pd.DataFrame(bench.one_seed(6, n_persons=4000, groups=("all",), covariates=cov))
    frame = bench.cells(bergen_rates(seed=6, n_persons=4000).data, None)
    roles = {"unit": "city", "time": "month", "treatment": "d", "covariates": cov}
    p = rows.set_index(["shape", "outcome"])["p_sized"]
    shape = {"window": (-4, 4), "restriction": "relative_magnitude", "bounds": (0,)}
    honest = HonestEventStudy(outcome="benefit", weights="n_rec", **shape, **roles)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = honest.fit(frame)
        plain = HonestEventStudy(outcome="benefit", weights="n_rec", **shape,
                                 **{**roles, "covariates": ()}).fit(frame)  # fmt: skip
    assert res.info["pretrend_test"]["p_value"] == pytest.approx(p["honest", "benefit"], rel=1e-9)
    assert plain.info["pretrend_test"]["p_value"] != pytest.approx(p["honest", "benefit"], rel=1e-3)
    event = EventStudy(outcome="work", weights="n", window=(-12, 12), bin_endpoints=True, **roles)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = event.fit(frame, seed=1, reps=9)
    assert res.inference.method == "wild"
    assert res.info["pretrend_test"]["p_value"] == pytest.approx(p["event", "work"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("covariates", [(), ("city_unemployment",)], ids=["plain", "study"])
def test_pretrend_size_on_the_bergen_simulator_slow(covariates):
    """Seeds 0-59 at the study's size (about 3 minutes of CPU per design).

    ``plain``: without covariates, as measured first. On these seeds: honest 0.065 of
    1,200 tests, event 0.054 of 1,680 (unsized 0.002 and 0.000; the honest leads' normal
    intervals cover 0.953 of 3,600); over 300 seeds 0.055 and 0.056.

    ``study``: with the study's covariate ``city_unemployment`` (its ``event`` and
    ``honest`` analyses since issue 12's sign fix). On these seeds: honest 0.066, event
    0.066 (unsized 0.002 and 0.000; leads covered 0.952 and 0.956); over 300 seeds honest
    0.056 (0.004) holds its level but event 0.073 (0.005) does not: the 60-seed band
    below cannot see that excess (results/bergen_pretrend_size.md: the few-treated
    covariance's sampling noise, no longer offset by COVID-19 in the controls' errors).

    The band 0.025-0.085 runs from 2.8 seed-clustered standard errors below 5% to 3.9
    above (0.009 with 60 seeds: the tests within a seed share Bergen's city shocks).
    """
    bench = _bench()
    rows = pd.DataFrame(
        [r for seed in range(60) for r in bench.one_seed(seed, covariates=covariates)]
    )
    for shape, sub in rows.groupby("shape"):
        rate = float((sub["p_sized"] < 0.05).mean())
        assert 0.025 <= rate <= 0.085, (shape, rate)
        # without the size scaling the test almost never rejects (Bergen's cells are
        # larger than most comparison cities', so their errors are too noisy for it)
        assert float((sub["p_unsized"] < 0.05).mean()) < 0.01, shape
        if shape == "event" and not covariates:
            continue  # plain: the event leads cover 0.963 over 300 seeds (COVID-19 in
            # the comparison cities' errors makes their standard errors a little large)
        z = np.concatenate([np.array(b.split(), float) / np.array(s.split(), float)
                            for b, s in zip(sub["beta"], sub["se"], strict=True)])  # fmt: skip
        coverage = float(np.mean(np.abs(z) <= 1.959964))
        assert abs(coverage - 0.95) < 3 * math.sqrt(0.05 * 0.95 / len(z)) * 2, (shape, coverage)
