"""Size and coverage of synthetic control placebo inference on designs with known effects.

Units are exchangeable (a factor model with unit-specific loadings drawn from one
distribution), so the treated unit's rank among the placebos is uniform under the null
and the placebo test is exact: with 19 donors, P(p <= 2/20) = 0.10. The intervals invert
the same test, so they cover a constant planted effect with probability 0.90 at
level 0.9. Bands: the rate of R replications lies within 0.10 +- 3 sqrt(.1*.9/R).
V is fixed (custom_v) to keep the replications fast; the test's exactness does not depend
on how the weights are chosen, only on treating every unit the same way.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.synth import SyntheticControl

EST = SyntheticControl(
    outcome="y",
    unit="unit",
    time="t",
    treatment="d",
    lagged_outcomes=(2, 5, 8, 11),
    custom_v=[1, 1, 1, 1],
)


def _design(rng: np.random.Generator, effect: float, n_units: int = 20, n_t: int = 16):
    f = rng.normal(size=(2, n_t)).cumsum(axis=1)
    y = rng.normal(size=(n_units, 2)) @ f + rng.normal(size=(n_units, n_t))
    y[-1, 12:] += effect
    unit, t = np.meshgrid(np.arange(n_units), np.arange(n_t), indexing="ij")
    d = ((unit == n_units - 1) & (t >= 12)).astype(int)
    return pd.DataFrame({"unit": unit.ravel(), "t": t.ravel(), "y": y.ravel(), "d": d.ravel()})


def _rates(reps: int, seed: int, effect: float) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    reject = cover = 0
    for _ in range(reps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = EST.fit(_design(rng, effect), inference="placebo", level=0.9)
        row = res.tidy().iloc[0]
        reject += row["p_value"] <= 0.1 + 1e-12
        cover += row["conf_low"] <= effect <= row["conf_high"]
    return reject / reps, cover / reps


def _band(reps: int) -> float:
    return 3 * np.sqrt(0.1 * 0.9 / reps)


def test_placebo_size_fast_subset():
    reps = 30  # a loose band: catches a badly anti-conservative test only
    size, _ = _rates(reps, seed=1, effect=0.0)
    assert abs(size - 0.10) <= _band(reps)


@pytest.mark.slow
def test_placebo_size_and_coverage():
    reps = 600
    size, cover_null = _rates(reps, seed=2, effect=0.0)
    assert abs(size - 0.10) <= _band(reps)
    _, cover = _rates(reps, seed=3, effect=2.0)
    assert abs(cover - 0.90) <= _band(reps)
    assert abs(cover_null - 0.90) <= _band(reps)
