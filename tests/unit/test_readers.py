"""Readers: CSV (separator sniffed), Parquet, DuckDB SQL over files; errors name the input."""

from __future__ import annotations

import pandas as pd
import pytest

from evalkit.data import read, read_csv, read_parquet, read_sql
from evalkit.errors import DataError


@pytest.fixture
def frame():
    return pd.DataFrame(
        {"city": ["Bergen", "Oslo", "Bergen"], "month": [1, 1, 2], "y": [0.5, 1.5, 2.5]}
    )


def test_csv_separators_are_sniffed(tmp_path, frame):
    comma, semi = tmp_path / "a.csv", tmp_path / "b.csv"
    frame.to_csv(comma, index=False)
    frame.to_csv(semi, index=False, sep=";")
    pd.testing.assert_frame_equal(read_csv(comma), frame)
    pd.testing.assert_frame_equal(read_csv(semi), frame)
    assert list(read_csv(comma, columns=["y"]).columns) == ["y"]


def test_parquet_and_read_by_extension(tmp_path, frame):
    path = tmp_path / "a.parquet"
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(read_parquet(path), frame)
    pd.testing.assert_frame_equal(read(path), frame)


def test_sql_over_files_collapses_out_of_core(tmp_path, frame):
    for i in range(2):
        frame.assign(month=frame["month"] + 2 * i).to_parquet(tmp_path / f"part{i}.parquet")
    out = read_sql(
        f"SELECT city, count(*) AS n, avg(y) AS y FROM '{tmp_path}/part*.parquet' "
        "GROUP BY city ORDER BY city"
    )
    assert out["city"].tolist() == ["Bergen", "Oslo"]
    assert out["n"].tolist() == [4, 2]
    got = read_sql("SELECT ? + 1 AS a", params=[41])
    assert int(got["a"].iloc[0]) == 42


def test_reader_errors_are_evalkit_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.csv"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="SQL"):
        read_sql("SELEC 1")
    (tmp_path / "a.xlsx").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="extension"):
        read(tmp_path / "a.xlsx")
    good = tmp_path / "g.csv"
    good.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="could not read"):
        read_csv(good, columns=["zz"])
