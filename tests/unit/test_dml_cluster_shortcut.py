"""Clusters of one row each: dml.DID skips DoubleML's cluster machinery, same numbers.

The obviously-correct path is DoubleML's own cluster-robust fit, forced by switching the
shortcut off; the shortcut must give the same folds, hence the same estimate and standard error to
rounding, and report the same clusters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit.dml._base as dml_base
from evalkit.dml import DID


def _panel(n: int = 400, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    d = (rng.uniform(size=n) < 1 / (1 + np.exp(-x))).astype(float)
    rows = []
    for t in (0, 1):
        y = x + 0.5 * t + 0.3 * d * t + rng.normal(size=n)
        rows.append(
            pd.DataFrame(
                {
                    "person": np.arange(n) * 7 + 3,
                    "t": t,
                    "d": d,
                    "x": x,
                    "y": y,
                    "city": np.arange(n) % 5,
                }
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # not sorted by unit


@pytest.mark.parametrize("inference", [None, "bootstrap"])
def test_clusters_of_one_row_give_doublemls_cluster_numbers(monkeypatch, inference):
    frame = _panel()
    est = DID(
        outcome="y",
        treatment="d",
        unit="person",
        time="t",
        covariates=["x"],
        n_folds=2,
        learner="logit",
        cluster="person",
    )
    fast = est.fit(frame, seed=11, inference=inference)
    monkeypatch.setattr(dml_base, "_singleton_clusters", lambda frame, clusters: False)
    slow = est.fit(frame, seed=11, inference=inference)
    a, b = fast.tidy().iloc[0], slow.tidy().iloc[0]
    # the same folds and learners; DoubleML sums the scores in another order with
    # clusters, so the numbers agree to rounding (about 1e-16), not bit for bit
    for col in ("estimate", "std_error", "conf_low", "conf_high", "p_value"):
        assert a[col] == pytest.approx(b[col], rel=1e-12, abs=1e-15)
    assert fast.inference == slow.inference  # "... by person (400)", 400 clusters
    assert fast.inference.n_clusters == 400
    info_fast, info_slow = dict(fast.info), dict(slow.info)
    assert info_fast.pop("all_estimates") == pytest.approx(
        info_slow.pop("all_estimates"), rel=1e-12
    )
    assert info_fast == info_slow


def test_shared_clusters_use_the_cluster_machinery():
    frame = _panel()
    wide = frame[frame["t"] == 0]
    assert dml_base._singleton_clusters(wide, ("person",))
    assert not dml_base._singleton_clusters(wide, ("city",))
    assert not dml_base._singleton_clusters(wide, ("person", "city"))  # two-way: untouched
    assert not dml_base._singleton_clusters(wide, ())
