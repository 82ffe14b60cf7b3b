"""Property-based tests: malformed frames never escape as anything but EvalkitError."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit import EvalkitError
from evalkit.data import Panel
from evalkit.did import TWFE

CELL = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["a", "1", "", "nan", "0"]),
    st.booleans(),
)


@st.composite
def messy_frames(draw):
    n = draw(st.integers(0, 12))
    columns = {}
    for name in ("id", "t", "y", "d", "x", "c"):
        if draw(st.booleans()) or name in ("y",):
            kind = draw(st.sampled_from(["int", "float", "mixed", "str", "bool", "const"]))
            if kind == "int":
                col = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
            elif kind == "float":
                col = draw(
                    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)
                )
            elif kind == "mixed":
                col = draw(st.lists(CELL, min_size=n, max_size=n))
            elif kind == "str":
                col = draw(st.lists(st.sampled_from(["x", "y", "1"]), min_size=n, max_size=n))
            elif kind == "bool":
                col = draw(st.lists(st.booleans(), min_size=n, max_size=n))
            else:
                col = [1] * n
            columns[name] = col
    return pd.DataFrame(columns)


ROLES = dict(outcome="y", unit="id", time="t", treatment="d", covariates=["x"], cluster="c")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=messy_frames(), absorbing=st.booleans(), balanced=st.booleans())
def test_panel_raises_only_evalkit_errors(frame, absorbing, balanced):
    before = frame.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            Panel(frame, **ROLES, absorbing=absorbing, balanced=balanced, cluster_nests_unit=True)
        except EvalkitError:
            pass
    pd.testing.assert_frame_equal(frame, before)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=messy_frames(), method=st.sampled_from(["iid", "hetero", "cluster", "cr2", None]))
def test_twfe_raises_only_evalkit_errors(frame, method):
    est = TWFE(outcome="y", treatment="d", unit="id", time="t", covariates=["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = est.fit(frame, inference=method)
        except EvalkitError:
            return
    assert np.isfinite(res.tidy()["estimate"]).all()


@settings(max_examples=100, deadline=None)
@given(
    n_units=st.integers(2, 6),
    n_periods=st.integers(2, 5),
    dup=st.booleans(),
    switch_off=st.booleans(),
)
def test_structural_problems_get_their_codes(n_units, n_periods, dup, switch_off):
    unit = np.repeat(np.arange(n_units), n_periods)
    time = np.tile(np.arange(n_periods), n_units)
    d = ((unit == 0) & (time >= 1)).astype(int)
    if switch_off and n_periods >= 3:
        d[(unit == 0) & (time == n_periods - 1)] = 0
    frame = pd.DataFrame({"id": unit, "t": time, "y": 1.0, "d": d})
    if dup:
        frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    try:
        Panel(frame, outcome="y", unit="id", time="t", treatment="d", absorbing=True)
    except EvalkitError as err:
        expected = "P003" if dup else "P008"
        assert err.code == expected
        assert err.column in ("id", "d")
    else:
        assert not dup and not (switch_off and n_periods >= 3)
