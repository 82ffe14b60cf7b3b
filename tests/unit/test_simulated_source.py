"""A study's simulated data: written in chunks to Parquet, read by DuckDB, removed on close."""

from __future__ import annotations

import textwrap

import pandas as pd

from evalkit.simulate import bergen_rates
from evalkit.simulate.bergen import ROW_EFFECTS, SCHEMA
from evalkit.study import check_study
from evalkit.study.source import open_source

STUDY = """
[study]
name = "chunked"
seed = 4

[data]
simulator = "bergen_rates"
options = {n_persons = 700, start = "2019-10", end = "2020-09", chunk_persons = 1}

[roles]
unit = "city"
time = "month"
treatment = "treated"

[collapse]
by = ["city", "month", "treated"]
measures = {work = "mean"}

[[analysis]]
id = "twfe"
estimator = "did.TWFE"
inference = "cr2"
options = {outcome = "work"}
"""


def test_simulated_rows_are_read_from_parquet_and_removed_on_close(tmp_path):
    (tmp_path / "study.toml").write_text(textwrap.dedent(STUDY), encoding="utf-8")
    study = check_study(tmp_path)
    source = open_source(study)
    try:
        folder = source.scratch
        assert folder is not None and list(folder.glob("*.parquet"))
        assert source.simulated.data is None and source.simulated.store == folder
        assert source.relation.columns == list(SCHEMA)  # the effects stay hidden
        rows = source.rows(None).sort_values(["person_id", "period"], ignore_index=True)
    finally:
        source.close()
    assert not folder.exists()
    same = bergen_rates(seed=4, n_persons=700, start="2019-10", end="2020-09").data
    pd.testing.assert_frame_equal(rows, same, check_dtype=False, check_categorical=False)


def test_stored_simulation_can_be_passed_as_data(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.toml").write_text(textwrap.dedent(STUDY), encoding="utf-8")
    study = check_study(tmp_path / "s")
    sim = bergen_rates(
        seed=9, n_persons=300, start="2019-10", end="2020-09", store=tmp_path / "rows"
    )
    source = open_source(study, sim)
    try:
        assert source.kind == "simulator" and source.simulated is sim
        hidden = {c for c in ROW_EFFECTS.values() if c}
        assert not hidden & set(source.columns)
        assert source.relation.aggregate("count(*)").fetchall()[0][0] == sim.n_rows
    finally:
        source.close()
    assert (tmp_path / "rows").exists()  # the caller's folder is left alone
