"""Coverage (slow) of dml.DIDMulti's overall ATT on staggered data with known effect 1."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from evalkit.dml import DIDMulti


def _est():
    return DIDMulti(
        outcome="y", cohort="g", unit="id", time="t", covariates=["x"], learner="logit", n_folds=2
    )


def selected(seed: int, n: int = 300) -> pd.DataFrame:
    """Cohorts chosen by a logit in x, trends that depend on x, a constant effect of 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p_treated = 1 / (1 + np.exp(-0.8 * x))
    treated = rng.random(n) < p_treated
    g = np.where(treated, np.where(rng.random(n) < 0.5, 3, 4), 0)
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 4),
            "t": np.tile(np.arange(1, 5), n),
            "g": np.repeat(g, 4),
            "x": np.repeat(x, 4),
        }
    )
    effect = (df["g"] > 0) & (df["t"] >= df["g"])
    df["y"] = df["x"] + 0.3 * df["x"] * df["t"] + effect + rng.normal(size=len(df))
    return df


@pytest.mark.slow
def test_overall_att_coverage():
    reps = int(os.environ.get("EVALKIT_DML_COVERAGE_REPS", "200"))
    covered = 0
    for seed in range(reps):
        row = _est().fit(selected(2000 + seed), seed=seed).tidy().set_index("term").loc["overall"]
        covered += row["conf_low"] <= 1.0 <= row["conf_high"]
    rate = covered / reps
    print(f"dml.DIDMulti overall ATT: coverage {rate:.3f} over {reps} draws")
    half = 2.58 * np.sqrt(0.95 * 0.05 / reps)  # a 99% binomial band around 0.95
    assert 0.95 - half <= rate <= 0.95 + half
