"""dml.DID's data preparation: the same rows as the frame-copying implementation it replaced.

``DMLEstimator._clean`` builds the cleaned frame column by column (sharing the caller's
memory under copy-on-write) and ``DID._prepare`` finds each unit's later row by
position; both are compared with the straightforward pandas versions (kept here as the
slow, obviously correct path), on a panel with missing values, units seen in one
period only and rows in no particular order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.dml import DID
from evalkit.errors import RowsDroppedWarning


def _panel(seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.normal(size=n)
    g = (rng.random(n) < 0.4).astype(int)
    y0 = x + rng.normal(size=n)
    y1 = y0 + 0.5 * x + 1.0 * g + rng.normal(size=n)
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n) * 3 + 1, 2),
            "t": np.tile([2019, 2021], n),
            "y": np.column_stack([y0, y1]).ravel(),
            "g": np.repeat(g, 2),
            "x": np.repeat(x, 2),
            "z": rng.integers(0, 3, 2 * n),  # an integer covariate (cast to float)
        }
    )
    df.loc[[5, 17, 60], "y"] = np.nan  # three units lose a period
    df.loc[[101], "x"] = np.inf
    df = df.drop(index=[200, 333])  # two more units seen once
    return df.sample(frac=1.0, random_state=3)  # rows in no particular order


def _clean_reference(data: pd.DataFrame, cols: list[str], numeric: list[str]) -> pd.DataFrame:
    frame = data[cols].copy()
    frame[numeric] = frame[numeric].astype(float)
    bad = frame.isna() | np.isinf(frame[numeric]).reindex(columns=cols, fill_value=False)
    return frame.loc[~bad.any(axis=1).to_numpy()]


def _prepare_reference(frame: pd.DataFrame, est: DID) -> pd.DataFrame:
    periods = np.unique(frame[est.time])
    post = (frame[est.time] == periods[1]).to_numpy()
    before = frame[~post]
    after = frame[post].set_index(est.unit)
    both = before[before[est.unit].isin(after.index)]
    wide = both.copy()
    wide["_dy"] = after.loc[both[est.unit], est.outcome].to_numpy() - both[est.outcome].to_numpy()
    wide[est.treatment] = np.maximum(
        both[est.treatment].to_numpy(), after.loc[both[est.unit], est.treatment].to_numpy()
    )
    return wide


def test_clean_and_prepare_equal_the_reference() -> None:
    df = _panel()
    before = df.copy(deep=True)
    est = DID(outcome="y", treatment="g", unit="id", time="t", covariates=["x", "z"])
    cols = ["y", "g", "t", "id", "x", "z"]
    with pytest.warns(RowsDroppedWarning, match=r"dropped 4 of 798 rows .* y \(3\), x \(1\)"):
        clean = est._clean(df, ())
    ref = _clean_reference(df, cols, cols)
    pd.testing.assert_frame_equal(clean, ref)
    with pytest.warns(RowsDroppedWarning, match=r"dropped 6 unit\(s\) of 'id'"):
        wide = est._prepare(clean)
    pd.testing.assert_frame_equal(wide, _prepare_reference(ref, est))
    pd.testing.assert_frame_equal(df, before)  # the caller's data are unchanged


def test_fit_leaves_data_unchanged_and_writes_do_not_reach_it() -> None:
    df = _panel().dropna()
    df = df[np.isfinite(df["x"])]
    before = df.copy(deep=True)
    est = DID(outcome="y", treatment="g", unit="id", time="t", covariates=["x"], learner="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        clean = est._clean(df, ())
        clean.iloc[0, 0] = 1e9  # a write to the cleaned frame stays there
        est.fit(df, seed=1, inference="none")
    pd.testing.assert_frame_equal(df, before)
