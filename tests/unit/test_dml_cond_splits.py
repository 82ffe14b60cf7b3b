"""``cond_splits`` equals DoubleML's ``_get_cond_smpls``; a DID fit is the same with it."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest

from evalkit.dml import DID
from evalkit.dml.cond_splits import cond_splits, fast_cond_splits
from evalkit.dml.splits import fold_splits


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("values", ["int", "float"])
def test_cond_splits_equal_doubleml(dtype, values) -> None:
    from doubleml.utils._estimation import _get_cond_smpls

    rng = np.random.default_rng(1)
    n = 500
    d = (rng.random(n) < 0.3).astype(int if values == "int" else float)
    smpls, _ = fold_splits(n, 3, 1, seed=2)
    smpls = [(tr.astype(dtype), te) for tr, te in smpls[0]]
    smpls.append((rng.permutation(n)[:200].astype(dtype), np.arange(3)))  # unsorted: fallback
    for fast, slow in zip(cond_splits(smpls, d), _get_cond_smpls(smpls, d), strict=True):
        for (a_tr, a_te), (b_tr, b_te) in zip(fast, slow, strict=True):
            assert a_tr.dtype == b_tr.dtype
            np.testing.assert_array_equal(a_tr, b_tr)
            assert a_te is b_te


def _did_data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=n)
    g = (rng.random(n) < 0.5).astype(int)
    y0 = x + rng.normal(size=n)
    y1 = y0 + 0.5 * x + 2.0 * g + rng.normal(size=n)
    return pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 2),
            "t": np.tile([0, 1], n),
            "y": np.column_stack([y0, y1]).ravel(),
            "g": np.repeat(g, 2),
            "x": np.repeat(x, 2),
        }
    )


def test_did_fit_identical_with_doubleml_splits(monkeypatch) -> None:
    import doubleml.did.did

    df = _did_data()
    est = DID(outcome="y", treatment="g", unit="id", time="t", covariates=["x"], learner="logit")
    fast = est.fit(df, seed=3).tidy()
    assert doubleml.did.did._get_cond_smpls is not cond_splits  # put back after the fit
    monkeypatch.setattr(DID, "_fitting", lambda self: contextlib.nullcontext())
    slow = est.fit(df, seed=3).tidy()
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)


def test_nested_blocks_restore_doubleml() -> None:
    import doubleml.did.did

    original = doubleml.did.did._get_cond_smpls
    with fast_cond_splits(doubleml.did.did):
        with fast_cond_splits(doubleml.did.did):
            assert doubleml.did.did._get_cond_smpls is cond_splits
        assert doubleml.did.did._get_cond_smpls is cond_splits
    assert doubleml.did.did._get_cond_smpls is original
