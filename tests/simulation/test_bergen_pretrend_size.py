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
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from evalkit.data.collapse import collapse
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
    theirs = collapse(df, ["city", "period"], measures, min_cell_size=1, where=where)
    assert len(theirs) == len(ours) == 720
    theirs = theirs.assign(city=theirs["city"].cat.codes).sort_values(["city", "period"])
    np.testing.assert_array_equal(ours["n"], theirs["n"].to_numpy(int))
    np.testing.assert_array_equal(ours["n_rec"], theirs["n_benefit"].to_numpy(int))
    for name in bench.MEASURES:
        np.testing.assert_allclose(ours[name], theirs[name].to_numpy(float), rtol=1e-12)
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


@pytest.mark.slow
def test_pretrend_size_on_the_bergen_simulator_slow():
    """Seeds 0-59 at the study's size (about 3 minutes of CPU).

    Measured on these seeds: honest 0.065 of 1,200 tests, event 0.054 of 1,680 (unsized
    0.002 and 0.000; the honest leads' normal intervals cover 0.953 of 3,600); over 299
    seeds 0.055 and 0.056 (results/bergen_pretrend_size.md). The band 0.025-0.085 runs
    from 2.8 seed-clustered standard errors below 5% to 3.9 above (0.009 with 60 seeds:
    the tests within a seed share Bergen's city shocks).
    """
    bench = _bench()
    rows = pd.DataFrame([r for seed in range(60) for r in bench.one_seed(seed)])
    for shape, sub in rows.groupby("shape"):
        rate = float((sub["p_sized"] < 0.05).mean())
        assert 0.025 <= rate <= 0.085, (shape, rate)
        # without the size scaling the test almost never rejects (Bergen's cells are
        # larger than most comparison cities', so their errors are too noisy for it)
        assert float((sub["p_unsized"] < 0.05).mean()) < 0.01, shape
    honest = rows[rows["shape"] == "honest"]
    z = np.concatenate([np.array(b.split(), float) / np.array(s.split(), float)
                        for b, s in zip(honest["beta"], honest["se"], strict=True)])  # fmt: skip
    coverage = float(np.mean(np.abs(z) <= 1.959964))
    assert abs(coverage - 0.95) < 3 * math.sqrt(0.05 * 0.95 / len(z)) * 2, coverage
