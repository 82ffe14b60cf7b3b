"""The wide outcome matrices shared by the synthetic-control estimators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit.data.wide import NEVER, wide_panel
from evalkit.errors import DataError, DesignError, RowsDroppedWarning


def _panel(n_units: int = 5, n_periods: int = 6, cohorts: dict | None = None) -> pd.DataFrame:
    cohorts = cohorts or {4: 4}
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_units):
        g = cohorts.get(i, 0)
        for t in range(1, n_periods + 1):
            rows.append(
                {
                    "id": f"u{i}",
                    "t": t,
                    "y": rng.normal(),
                    "x": rng.normal(),
                    "g": g,
                    "d": int(g > 0 and t >= g),
                }
            )
    return pd.DataFrame(rows)


def test_layout_donors_first_treated_last_by_cohort():
    df = _panel(6, 6, cohorts={0: 5, 2: 3, 4: 3})
    w = wide_panel(df, outcome="y", unit="id", time="t", treatment="d", covariates=["x"])
    assert w.units.tolist() == ["u1", "u3", "u5", "u2", "u4", "u0"]
    assert w.n_donors == 3 and w.n_treated == 3
    assert w.adoption.tolist() == [NEVER, NEVER, NEVER, 2, 2, 4]
    assert [(c.label, c.start, c.rows) for c in w.cohorts] == [(3, 2, (3, 4)), (5, 4, (5,))]
    assert w.is_staggered
    # values line up with the long data
    long = df.set_index(["id", "t"])
    for r, u in enumerate(w.units):
        assert np.array_equal(w.y[r], long.loc[u, "y"].to_numpy())
        assert np.array_equal(w.covariates["x"][r], long.loc[u, "x"].to_numpy())
    assert w.treated_mask.sum() == df["d"].sum()
    block = w.block(5)
    assert block.units.tolist() == ["u1", "u3", "u5", "u0"]
    assert block.n_pre == 4 and block.n_post == 2
    with pytest.raises(DesignError, match="2 different periods"):
        _ = w.n_pre


def test_cohort_column_equals_treatment_column():
    df = _panel(6, 6, cohorts={0: 5, 2: 3})
    a = wide_panel(df, outcome="y", unit="id", time="t", treatment="d")
    b = wide_panel(df, outcome="y", unit="id", time="t", cohort="g")
    c = wide_panel(df, outcome="y", unit="id", time="t", treatment="d", cohort="g")
    for other in (b, c):
        assert np.array_equal(a.y, other.y) and np.array_equal(a.adoption, other.adoption)


def test_arrays_read_only_and_caller_frame_untouched():
    df = _panel()
    before = df.copy()
    w = wide_panel(df, outcome="y", unit="id", time="t", treatment="d")
    pd.testing.assert_frame_equal(df, before)
    with pytest.raises(ValueError):
        w.y[0, 0] = 1.0


def test_prop99_shape():
    df = evalkit.datasets.load("prop99")
    w = wide_panel(df, outcome="PacksPerCapita", unit="State", time="Year", treatment="treated")
    assert (w.n_units, w.n_periods, w.n_donors) == (39, 31, 38)
    assert w.treated_units.tolist() == ["California"] and w.n_pre == 19


@pytest.mark.parametrize(
    ("change", "code", "text"),
    [
        (lambda d: d.drop(index=3), "W001", "unbalanced"),
        (lambda d: d.assign(d=np.where((d.id == "u4") & (d.t == 6), 0, d.d)), "P008", "switches"),
        (lambda d: d.assign(d=0), "P011", "no observations are treated"),
        (lambda d: d.assign(d=(d.t >= 3).astype(int)), "W002", "all 5 units are treated"),
        (lambda d: d.assign(d=np.where(d.id == "u4", 1, d.d)), "W004", "first period"),
        (lambda d: d.assign(x=np.where(d.t == 2, np.nan, d.x)), "W005", "'x' is missing"),
    ],
)
def test_bad_designs_raise_with_code(change, code, text):
    df = change(_panel())
    with pytest.raises(DataError, match=text) as err:
        wide_panel(df, outcome="y", unit="id", time="t", treatment="d", covariates=["x"])
    assert err.value.code == code
    assert err.value.hint


def test_donor_pool_option():
    df = _panel()
    with pytest.warns(RowsDroppedWarning, match="2 never-treated"):
        w = wide_panel(df, outcome="y", unit="id", time="t", treatment="d", donors=["u0", "u2"])
    assert w.donors.tolist() == ["u0", "u2"]
    with pytest.raises(DesignError, match="treated units"):
        wide_panel(df, outcome="y", unit="id", time="t", treatment="d", donors=["u4"])
    with pytest.raises(DesignError, match="not values"):
        wide_panel(df, outcome="y", unit="id", time="t", treatment="d", donors=["zz"])


def test_incomplete_covariates_kept_when_allowed():
    df = _panel().assign(x=lambda d: np.where(d.t == 2, np.nan, d.x))
    w = wide_panel(
        df,
        outcome="y",
        unit="id",
        time="t",
        treatment="d",
        covariates="x",
        complete_covariates=False,
    )
    assert np.isnan(w.covariates["x"][:, 1]).all() and not np.isnan(w.covariates["x"][:, 0]).any()


def test_covariates_of_a_panel_with_monthly_dates_are_aligned():
    """Dates in the time column are period codes inside the panel; the covariate matrix
    must still be read from the caller's dates (it came back all NaN before)."""
    df = _panel()
    df["t"] = pd.to_datetime([f"2020-{m:02d}-01" for m in _panel()["t"]])
    w = wide_panel(df, outcome="y", unit="id", time="t", treatment="d", covariates="x")
    expected = df.pivot(index="id", columns="t", values="x").to_numpy()
    np.testing.assert_array_equal(w.covariates["x"], expected)
    periods = df.assign(t=df["t"].dt.to_period("M"))
    w2 = wide_panel(periods, outcome="y", unit="id", time="t", treatment="d", covariates="x")
    np.testing.assert_array_equal(w2.covariates["x"], expected)
