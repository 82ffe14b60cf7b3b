"""Disclosure control (protect/audit) and collapsing microdata to suppressed cells."""

from __future__ import annotations

import copy

import duckdb
import numpy as np
import pandas as pd
import pytest

from evalkit.data.collapse import Measure, collapse, parse_measures
from evalkit.data.disclosure import (
    DisclosurePolicy,
    audit,
    check_min_cell_size,
    is_count_key,
    protect,
)
from evalkit.errors import DataError, DesignError

# --------------------------------------------------------------------------- protect


def test_small_counts_are_suppressed_and_marked():
    out, paths = protect({"n_obs": 3, "estimate": 0.25, "n_rows": 4000}, 5)
    assert out["n_obs"] is None
    assert out["n_rows"] == 4000
    assert out["estimate"] == 0.25
    assert out["suppressed"] is True
    assert out["suppressed_fields"] == ["n_obs"]
    assert paths == ["n_obs"]


@pytest.mark.parametrize("value", [0, 5, 6, 10_000, 2.0e9])
def test_zero_and_counts_at_or_above_the_minimum_are_kept(value):
    out, paths = protect({"count": value}, 5)
    assert out == {"count": value} and paths == []


@pytest.mark.parametrize("value", [1, 2, 4, 4.5, np.int64(3)])
def test_counts_from_one_to_below_the_minimum_are_suppressed(value):
    out, _ = protect({"n_units": value}, 5)
    assert out["n_units"] is None


def test_nested_structures_and_lists_are_walked():
    payload = {
        "analyses": [
            {"id": "a", "info": {"n_units": 2, "n_periods": 3}, "tidy": [{"term": "x", "n": 1}]},
            {"id": "b", "info": {"n_units": 20}},
        ]
    }
    out, paths = protect(payload, 5)
    assert out["analyses"][0]["info"]["n_units"] is None
    assert out["analyses"][0]["info"]["n_periods"] == 3  # structural, never a person count
    assert out["analyses"][0]["tidy"][0]["n"] is None
    assert out["analyses"][0]["tidy"][0]["suppressed"] is True
    assert out["analyses"][1]["info"] == {"n_units": 20}
    assert sorted(paths) == ["analyses[0].info.n_units", "analyses[0].tidy[0].n"]


def test_count_containers_have_every_value_checked():
    out, paths = protect({"info": {"dropped": {"missing outcome (y)": 3, "zero weight": 40}}}, 5)
    assert out["info"]["dropped"] == {"missing outcome (y)": None, "zero weight": 40}
    assert out["info"]["suppressed_fields"] == ["dropped.missing outcome (y)"]
    assert paths == ["info.dropped.missing outcome (y)"]


def test_input_is_not_modified():
    payload = {"a": {"n_obs": 2, "list": [{"count": 1}]}}
    before = copy.deepcopy(payload)
    protect(payload, 5)
    assert payload == before


def test_small_numbers_in_warning_text_are_masked_for_person_level_data():
    out, _ = protect({"warnings": ["dropped 3 of 1200 rows", "t(9) reference"]}, 5)
    assert out["warnings"] == ["dropped <5 of 1200 rows", "t(9) reference"]
    cells, _ = protect({"warnings": ["dropped 3 of 1200 rows"]}, DisclosurePolicy(5).for_cells())
    assert cells["warnings"] == ["dropped 3 of 1200 rows"]


def test_policy_for_cells_exempts_counts_of_cells_and_units_only():
    pol = DisclosurePolicy(5).for_cells()
    out, _ = protect({"n_treated_clusters": 1, "n_cells": 3, "n_microdata_rows": 2}, pol)
    assert out["n_treated_clusters"] == 1
    assert out["n_cells"] == 3
    assert out["n_microdata_rows"] is None


def test_booleans_and_non_count_keys_are_left_alone():
    data = {"n_flag": True, "estimate": 1, "p_value": 0.01, "seed": 2, "level": 0.95}
    assert protect(data, 5)[0] == data


def test_audit_finds_what_protect_removes():
    raw = {"info": {"n_obs": 2, "dropped": [1, 10]}, "rows": [{"count": 4}]}
    assert sorted(audit(raw, 5)) == ["info.dropped.0", "info.n_obs", "rows[0].count"]
    assert audit(protect(raw, 5)[0], 5) == []


def test_count_key_names():
    for key in ("n", "n_obs", "count", "counts", "cell_count", "group_size", "treated_n"):
        assert is_count_key(key), key
    for key in ("estimate", "seed", "std_error", "income", "min"):
        assert not is_count_key(key), key


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "5"])
def test_min_cell_size_must_be_a_positive_whole_number(bad):
    with pytest.raises(DesignError, match="min_cell_size"):
        check_min_cell_size(bad)


# --------------------------------------------------------------------------- collapse


@pytest.fixture
def micro() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    sizes = {"A": 40, "B": 12, "C": 3}
    rows = []
    for city, n in sizes.items():
        for month in (1, 2):
            rec = (rng.random(n) < 0.3).astype(int)
            rec[:2] = 1
            if city == "B":
                rec[:] = 0
                rec[:4] = 1  # four recipients: duration among them must be suppressed
            rows.append(
                pd.DataFrame(
                    {
                        "city": city,
                        "month": month,
                        "work": rng.integers(0, 2, n),
                        "recipient": rec,
                        "months": rng.integers(1, 13, n),
                        "income": rng.normal(20_000, 5_000, n),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


MEASURES = {
    "work": "mean",
    "income": "mean",
    "duration": {"column": "months", "stat": "mean", "where": "recipient = 1"},
    "recipients": {"stat": "count", "where": "recipient = 1"},
}


def test_collapse_matches_pandas_and_suppresses_small_cells(micro):
    cells = collapse(micro, by=["city", "month"], measures=MEASURES, min_cell_size=5)
    assert list(cells["city"]) == ["A", "A", "B", "B", "C", "C"]
    expected = micro.groupby(["city", "month"])[["work", "income"]].mean().reset_index()
    kept = ~cells["suppressed"]
    np.testing.assert_allclose(cells.loc[kept, "work"], expected.loc[kept.to_numpy(), "work"])
    np.testing.assert_allclose(cells.loc[kept, "income"], expected.loc[kept.to_numpy(), "income"])
    c = cells[cells["city"] == "C"]
    assert c["suppressed"].all()
    assert c["n"].isna().all()
    assert c[["work", "income", "duration"]].isna().all().all()
    assert cells.loc[cells["city"] == "A", "n"].tolist() == [40, 40]


def test_conditional_measures_get_their_own_counts_and_suppression(micro):
    cells = collapse(micro, by=["city", "month"], measures=MEASURES, min_cell_size=5)
    b = cells[cells["city"] == "B"]
    assert not b["suppressed"].any()  # 12 persons: the cell is shown
    assert b["duration"].isna().all() and b["suppressed_duration"].all()
    assert b["n_duration"].isna().all()
    assert b["recipients"].isna().all() and b["suppressed_recipients"].all()  # 4 < 5
    a = cells[cells["city"] == "A"]
    want = micro[(micro.city == "A") & (micro.recipient == 1)].groupby("month")["months"]
    np.testing.assert_allclose(a["duration"], want.mean())
    assert a["n_duration"].tolist() == want.size().tolist()
    assert a["recipients"].tolist() == want.size().tolist()


def test_no_small_count_survives_in_the_cells(micro):
    cells = collapse(micro, by=["city", "month"], measures=MEASURES, min_cell_size=5)
    for col in ("n", "n_duration", "recipients"):
        values = cells[col].dropna().astype(int)
        assert ((values == 0) | (values >= 5)).all(), col


def test_collapse_reads_duckdb_relations_and_filters_rows(micro):
    con = duckdb.connect()
    con.register("micro", micro)
    rel = con.table("micro")
    cells = collapse(rel, by=["city"], measures={"work": "mean"}, where="month = 1")
    assert cells["n"].tolist()[:2] == [40, 12]
    con.close()


def test_collapse_does_not_modify_the_input(micro):
    before = micro.copy()
    collapse(micro, by=["city"], measures=MEASURES)
    pd.testing.assert_frame_equal(micro, before)


def test_unknown_columns_raise_data_error(micro):
    with pytest.raises(DataError, match="wrk"):
        collapse(micro, by=["city"], measures={"x": {"column": "wrk"}})


@pytest.mark.parametrize(
    ("measures", "match"),
    [
        ({"work": "max"}, "unknown stat"),
        ({"work": {"column": "work", "weights": "n"}}, "unknown key"),
        ({}, "non-empty"),
        ({"bad name": "mean"}, "identifier"),
        ({"n": "mean"}, "used twice"),
    ],
)
def test_bad_measures_raise_design_error(micro, measures, match):
    with pytest.raises(DesignError, match=match):
        collapse(micro, by=["city"], measures=measures)


def test_by_must_name_columns(micro):
    with pytest.raises(DesignError, match="by"):
        collapse(micro, by=[], measures={"work": "mean"})


def test_parse_measures_normalises_conditions():
    (m,) = parse_measures({"d": {"column": "x", "where": "  r =   1 "}})
    assert m == Measure("d", "x", "mean", "r = 1")
    assert m.count_column == "n_d"
