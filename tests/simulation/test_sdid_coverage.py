"""Coverage of synthetic DiD placebo intervals with one treated unit.

Design: 20 donors and one treated unit, 12 periods (treated from period 9), outcomes
from a two-factor model with unit loadings drawn from one distribution for every unit
(so the treated unit is exchangeable with the donors, the condition the placebo
variance needs) plus iid noise; the effect is 1. Bands are binomial: with R replications
the rejection rate of a valid 5% test lies within 0.05 +- 3 sqrt(.05*.95/R) with high
probability. The full runs (the estimator end to end) are marked slow; the fast subset
runs the same placebo machinery on the outcome matrices with the DiD variant (no weights
to solve), so that it takes a few seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.synth import SyntheticDiD
from evalkit.synth.sdid_cohorts import draw_se, fit_cohorts, placebo_draws

EFFECT = 1.0


def _matrix(rng: np.random.Generator, n_donors: int = 20, n_periods: int = 12) -> np.ndarray:
    """Outcomes, donors first and the treated unit last (treated from column 8)."""
    n = n_donors + 1
    loadings = rng.normal(size=(n, 2))
    factors = rng.normal(size=(n_periods, 2)).cumsum(axis=0) * 0.5
    y = 5 + loadings @ factors.T + rng.normal(scale=0.5, size=(n, n_periods))
    y[-1, 8:] += EFFECT
    return y


def _design(rng: np.random.Generator, n_donors: int = 20, n_periods: int = 12) -> pd.DataFrame:
    y = _matrix(rng, n_donors, n_periods)
    n = n_donors + 1
    d = np.zeros((n, n_periods), dtype=int)
    d[-1, 8:] = 1
    unit = np.repeat(np.arange(n), n_periods)
    time = np.tile(np.arange(1, n_periods + 1), n)
    return pd.DataFrame({"unit": unit, "time": time, "d": d.ravel(), "y": y.ravel()})


def _rejection_rate(variant: str, sims: int, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    est = SyntheticDiD(outcome="y", unit="unit", time="time", treatment="d", variant=variant)
    misses = 0
    for s in range(sims):
        res = est.fit(_design(rng), inference="placebo", reps=reps, seed=s)
        low, high = res.tidy().loc[0, ["conf_low", "conf_high"]]
        misses += not (low <= EFFECT <= high)
    return misses / sims


def _band(sims: int) -> float:
    return 3 * np.sqrt(0.05 * 0.95 / sims)


def test_placebo_coverage_one_treated_unit_fast():
    sims = 400
    rng = np.random.default_rng(1)
    misses = 0
    for _ in range(sims):
        y = _matrix(rng)
        fit = fit_cohorts(y, 20, [(8, (20,))], "did")
        se = draw_se("placebo", placebo_draws(y, fit, 50, rng).overall)[()]
        misses += abs(fit.estimate - EFFECT) > 1.959964 * se
    assert abs(misses / sims - 0.05) <= _band(sims)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["sdid", "sc"])
def test_placebo_coverage_one_treated_unit(variant):
    sims = 200
    rate = _rejection_rate(variant, sims, reps=50, seed=2)
    assert abs(rate - 0.05) <= _band(sims)
