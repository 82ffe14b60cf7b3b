"""collapse_many: one pass for many (keys, condition) collapses, against collapse one by one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.data import collapse as collapse_module
from evalkit.data import sandbox
from evalkit.data.collapse import CellRequest, collapse, collapse_many
from evalkit.errors import DataError, DesignError

MEASURES = {
    "work": "mean",  # integer column: exact
    "income": "mean",  # floating point: sums of partial sums
    "total": {"column": "income", "stat": "sum"},
    "spread": {"column": "income", "stat": "sd"},
    "hours": {"column": "hours", "stat": "mean", "where": "work = 1"},
    "workers": {"stat": "count", "where": "work = 1"},
    "pay": {"column": "pay", "stat": "mean"},  # decimal: exact
}


#: Values computed in floating point: sums of partial sums (floating-point columns) or an
#: exact sum divided by the count in double precision, where DuckDB's avg divides 32- and
#: 64-bit integer and decimal sums in long double (a last-bit difference at most).
FLOATS = ("income", "spread", "total", "hours", "work", "pay")


def _micro(n: int = 4000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = pd.Categorical.from_codes(
        rng.integers(0, 4, n), categories=["Oslo", "Bergen", "Aa", "Z"]
    )
    frame = pd.DataFrame(
        {
            "city": city,  # a categorical: an ENUM in DuckDB, ordered by its categories
            "month": pd.to_datetime("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 6, n) * 31, "D"),
            "kids": rng.integers(0, 3, n),
            "old": rng.integers(0, 2, n),
            "work": rng.integers(0, 2, n),
            "income": rng.normal(30000.0, 9000.0, n),
            "hours": rng.normal(30.0, 5.0, n).astype(np.float32),
            "pay": rng.integers(0, 10**6, n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "income"] = np.nan  # missing values are left out
    frame.loc[rng.random(n) < 0.03, "kids"] = None  # a key with missing values
    frame["kids"] = frame["kids"].astype("Int64")
    return frame


REQUESTS = [
    CellRequest(("city", "month")),
    CellRequest(("city", "month"), "kids >= 1"),
    CellRequest(("city", "month"), "kids >= 1 AND old = 1"),
    CellRequest(("city", "kids")),  # NULL keys: a cell of their own
    CellRequest(("month", "city", "old"), "(old = 1) AND (month < DATE '2020-04-01')"),
    CellRequest(("city",), "kids >= 1"),  # the same condition with other keys
    CellRequest(("city",), "income > 1e9"),  # no rows
    CellRequest(("city", "month")),  # the same request twice
]


def _relation(frame: pd.DataFrame):
    con = sandbox.connect()
    con.register("micro", frame)
    rel = con.table("micro").query(
        "m", "SELECT * REPLACE (CAST(pay AS DECIMAL(18, 2)) / 100 AS pay) FROM m"
    )
    return con, rel


def _compare(many: pd.DataFrame, one: pd.DataFrame) -> float:
    """Assert equal tables but for floating-point noise; return the largest relative gap."""
    assert list(many.columns) == list(one.columns)
    assert dict(many.dtypes) == dict(one.dtypes)
    worst = 0.0
    for c in one.columns:
        a, b = many[c], one[c]
        if c in FLOATS and len(a):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            assert np.array_equal(np.isnan(x), np.isnan(y)), c
            ok = ~np.isnan(y)
            gap = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-300)
            worst = max(worst, float(gap.max(initial=0.0)))
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True, obj=c)
    return worst


def test_each_request_equals_its_own_collapse():
    micro = _micro()
    before = micro.copy()
    con, rel = _relation(micro)
    try:
        many = collapse_many(rel, REQUESTS, MEASURES, min_cell_size=5)
        worst = 0.0
        for r, table in zip(REQUESTS, many, strict=True):
            one = collapse(rel, list(r.by), MEASURES, min_cell_size=5, where=r.where)
            assert len(one) == len(table)
            worst = max(worst, _compare(table, one))
    finally:
        con.close()
    # floating-point means, sums and standard deviations: the order of summation only
    assert worst < 1e-12
    assert len(many[6]) == 0  # no rows meet the condition
    pd.testing.assert_frame_equal(micro, before)  # the caller's data are not modified


def test_counts_are_exact_and_integer_means_within_one_ulp():
    con, rel = _relation(_micro(seed=9))
    try:
        req = CellRequest(("city", "month"), "kids >= 1")
        many = collapse_many(rel, [CellRequest(("city",)), req], MEASURES, min_cell_size=110)[1]
        one = collapse(rel, ["city", "month"], MEASURES, min_cell_size=110, where=req.where)
    finally:
        con.close()
    for c in ("n", "workers", "n_hours", "suppressed", "suppressed_pay", "suppressed_work"):
        pd.testing.assert_series_equal(many[c], one[c], check_exact=True)
    for c in ("work", "pay"):  # the exact sum over the count: at most one unit in the last place
        x, y = many[c].to_numpy(dtype=float), one[c].to_numpy(dtype=float)
        ok = ~np.isnan(y)
        assert np.array_equal(np.isnan(x), ~ok)
        assert np.all(np.abs(x[ok] - y[ok]) <= np.spacing(np.abs(y[ok])))
    assert 0 < one["suppressed"].sum() < len(one)  # small cells are suppressed alike


def test_dataframe_input_and_enum_order():
    micro = _micro(800)
    many = collapse_many(micro, REQUESTS[:2], {"work": "mean"}, min_cell_size=1)
    assert list(many[0]["city"].cat.categories) == ["Oslo", "Bergen", "Aa", "Z"]
    assert list(many[0]["city"].drop_duplicates()) == ["Oslo", "Bergen", "Aa", "Z"]
    one = collapse(micro, ["city", "month"], {"work": "mean"}, min_cell_size=1, where="kids >= 1")
    pd.testing.assert_frame_equal(many[1], one, check_exact=True)


def test_more_conditions_than_one_pass_flags(monkeypatch):
    monkeypatch.setattr(collapse_module, "_FLAGS_PER_PASS", 2)
    micro = _micro(600)
    requests = [CellRequest(("city",), f"kids = {k}") for k in range(3)] + [CellRequest(("city",))]
    assert collapse_module._batches(requests) == [[0, 1, 3], [2]]
    many = collapse_many(micro, requests, {"work": "mean"}, min_cell_size=1)
    for r, table in zip(requests, many, strict=True):
        one = collapse(micro, ["city"], {"work": "mean"}, min_cell_size=1, where=r.where)
        pd.testing.assert_frame_equal(table, one, check_exact=True)


def test_errors_name_the_problem():
    micro = _micro(100)
    with pytest.raises(DataError, match="collapsing the data failed"):
        collapse_many(micro, [CellRequest(("city",), "nope = 1")], {"work": "mean"})
    with pytest.raises(DesignError, match="by must be a non-empty list"):
        collapse_many(micro, [CellRequest(())], {"work": "mean"})
    with pytest.raises(DesignError, match="used twice"):
        collapse_many(micro, [CellRequest(("work",))], {"work": "mean"})
    with pytest.raises(DataError, match="pandas DataFrame or a DuckDB relation"):
        collapse_many([1, 2], [CellRequest(("city",))], {"work": "mean"})
    assert collapse_many(micro, [], {"work": "mean"}) == []
