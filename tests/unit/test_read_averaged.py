"""Reading a shared person-level pass on a worker: the pyarrow/NumPy path equals DuckDB's.

:func:`evalkit.study.source.read_averaged` sums the parts of a file written by
:meth:`DataSource.averaged_parts` within the analysis' keys. The arrow path must give
DuckDB's frame bit for bit (values, dtypes, row order), for every key type it takes,
and hand everything else to DuckDB.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.data import sandbox
from evalkit.study import source as src
from evalkit.study.source import DataSource, read_averaged


def _frame(n: int = 3000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["Bergen", "bergen", "Ålesund", "Zeta", "a b", "Øst", ""])
    y = rng.normal(size=n) * 10.0 ** rng.integers(-3, 17, n)  # sums that depend on order
    y[rng.random(n) < 0.15] = np.nan
    return pd.DataFrame(
        {
            "i8": rng.integers(-3, 3, n).astype("int8"),
            "i16": rng.integers(-300, 300, n).astype("int16"),
            "i32": rng.integers(0, 40, n).astype("int32"),
            "i64": rng.integers(-(2**40), 2**40, n) // 2**36,
            "u8": rng.integers(0, 5, n).astype("uint8"),
            "u32": rng.integers(0, 7, n).astype("uint32"),
            "flag": rng.random(n) < 0.4,
            "word": pd.array(words[rng.integers(0, len(words), n)], dtype="str"),
            "x": rng.integers(0, 10, n),
            "y": y,
            "z": rng.integers(0, 3, n).astype(float),
            "gone": np.where(rng.random(n) < 0.5, np.nan, 1.0),  # missing for many groups
        }
    )


WHERES = [None, "x >= 3", "x < 2 OR flag", "x = 9 AND word = 'Zeta'", "x > 100"]
KEYS = [
    ["i32"],
    ["word"],
    ["i32", "word"],
    ["word", "flag", "i8"],
    ["i16", "u8"],
    ["i64", "u32", "word"],
    ["flag"],
]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The pass for every key list: {keys: (path, types)}, on the finest keys' file too."""
    folder = tmp_path_factory.mktemp("parts")
    con = sandbox.connect()
    con.register("evalkit_data", _frame())
    source = DataSource(con, con.table("evalkit_data"), "frame", "-", "-")
    out = {}
    try:
        for j, keys in enumerate(KEYS):
            path = folder / f"parts-{j}.parquet"
            types = source.averaged_parts(WHERES, ["y", "z", "gone"], keys, None, path)
            out[tuple(keys)] = (path, types)
    finally:
        con.close()
    return out


@pytest.mark.parametrize("keys", KEYS, ids=["-".join(k) for k in KEYS])
def test_arrow_read_equals_duckdb_bit_for_bit(written, keys):
    path, types = written[tuple(keys)]
    for i, where in enumerate(WHERES[:4]):
        for picked in (["y", "z", "gone"], ["gone", "y"]):
            args = (i, types, ["y", "z", "gone"], picked)
            got = src._read_averaged_arrow(path, *args)
            assert got is not None, (keys, where)
            frame, n = got
            expected, n_expected = src._read_averaged_duckdb(path, *args)
            pd.testing.assert_frame_equal(frame, expected, check_exact=True)
            assert src.frame_sha256(frame) == src.frame_sha256(expected)
            assert n == n_expected > 0
            assert list(frame.columns) == [*keys, *picked]


def test_a_subset_of_the_files_keys_in_another_order(written):
    # an analysis whose keys are a subset of the pass' keys (its rows summed over the
    # others), named in another order than the file's: the rows are ordered by its keys
    path, types = written[("i64", "u32", "word")]
    sub = {"word": types["word"], "i64": types["i64"]}
    for i in range(4):
        frame, n = src._read_averaged_arrow(path, i, sub, ["y", "z", "gone"], ["y"])
        expected, n_expected = src._read_averaged_duckdb(path, i, sub, ["y", "z", "gone"], ["y"])
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)
        assert n == n_expected
        assert list(frame.columns) == ["word", "i64", "y"]


def test_the_averages_are_those_of_pandas(written):
    # independent of both paths: the mean of y within the keys among the rows meeting
    # the condition (missing values left out), to rounding
    path, types = written[("i32", "word")]
    data = _frame()
    rows = data[(data["x"] >= 3)]
    expected = rows.groupby(["i32", "word"], as_index=False, sort=True)["y"].mean()
    frame, n = read_averaged(path, 1, types, ["y", "z", "gone"], ["y"])
    assert n == len(rows)
    assert frame[["i32", "word"]].equals(expected[["i32", "word"]])
    np.testing.assert_allclose(frame["y"], expected["y"], rtol=1e-12, atol=0)


def test_other_key_types_and_empty_conditions_go_to_duckdb(tmp_path):
    data = _frame(400)
    data["city"] = pd.Categorical(data["word"], categories=sorted(set(data["word"]))[::-1])
    data["day"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(data["x"], unit="D")
    con = sandbox.connect()
    con.register("evalkit_data", data)
    source = DataSource(con, con.table("evalkit_data"), "frame", "-", "-")
    try:
        for keys in (["city"], ["day", "i32"]):
            path = tmp_path / f"{keys[0]}.parquet"
            types = source.averaged_parts(WHERES, ["y"], keys, None, path)
            assert src._read_averaged_arrow(path, 0, types, ["y"], ["y"]) is None
            frame, n = read_averaged(path, 0, types, ["y"], ["y"])
            expected, n_expected = source.averaged(None, ["y"], keys)
            pd.testing.assert_frame_equal(frame, expected, check_exact=False, rtol=1e-13)
            assert n == n_expected
            if keys == ["city"]:  # an ENUM: categories in its order, rows ordered by it
                assert isinstance(frame["city"].dtype, pd.CategoricalDtype)
                order = list(data["city"].cat.categories)
                assert list(frame["city"].cat.categories) == order
                assert list(frame["city"].astype(str)) == [
                    c for c in order if c in set(data["word"])
                ]
        path = tmp_path / "empty.parquet"
        types = source.averaged_parts(WHERES, ["y"], ["i32"], None, path)
        assert src._read_averaged_arrow(path, 4, types, ["y"], ["y"]) is None  # x > 100
        frame, n = read_averaged(path, 4, types, ["y"], ["y"])
        assert len(frame) == 0 and n == 0 and list(frame.columns) == ["i32", "y"]
    finally:
        con.close()


def test_missing_key_values_go_to_duckdb(tmp_path):
    data = _frame(300)
    data["maybe"] = pd.array(np.where(data["x"] > 7, None, data["x"]), dtype="Int32")
    con = sandbox.connect()
    con.register("evalkit_data", data)
    source = DataSource(con, con.table("evalkit_data"), "frame", "-", "-")
    path = tmp_path / "null.parquet"
    try:
        types = source.averaged_parts([None, "x <= 7"], ["y"], ["maybe"], None, path)
    finally:
        con.close()
    assert src._read_averaged_arrow(path, 0, types, ["y"], ["y"]) is None
    frame, n = read_averaged(path, 0, types, ["y"], ["y"])
    expected, n_expected = src._read_averaged_duckdb(path, 0, types, ["y"], ["y"])
    pd.testing.assert_frame_equal(frame, expected)
    assert n == n_expected == 300
    # the rows of a condition whose keys are all present take the arrow path
    got = src._read_averaged_arrow(path, 1, types, ["y"], ["y"])
    assert got is not None
    expected, n_expected = src._read_averaged_duckdb(path, 1, types, ["y"], ["y"])
    pd.testing.assert_frame_equal(got[0], expected, check_exact=True)
    assert got[1] == n_expected == int((data["x"] <= 7).sum())


def test_a_worker_returns_a_person_level_jobs_memory():
    # glibc's malloc_trim is found on Linux and the release runs without error anywhere
    import sys

    from evalkit.study import runner

    runner._release_memory()
    assert (runner._malloc_trim() is not None) == sys.platform.startswith("linux")
