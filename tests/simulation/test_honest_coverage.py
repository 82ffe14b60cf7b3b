"""Coverage of honest_did's robust sets when the restriction holds (simulation).

beta_hat ~ N(beta, Sigma) with beta = delta + (0, tau): the trend difference delta is
chosen inside the restriction and at its edge (the least favourable place), so the
robust set must cover theta = tau_1 at least 95% of the time, up to simulation error.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from evalkit.inference import EventTimeEstimates, honest_did

TAU = 0.05


def coverage(beta, sigma, n_pre, reps, **kw):
    rng = np.random.default_rng(12345)
    root = np.linalg.cholesky(sigma)
    hits = 0
    for _ in range(reps):
        draw = beta + root @ rng.standard_normal(len(beta))
        est = EventTimeEstimates.from_arrays(draw, sigma, n_pre=n_pre)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a set cut off by the grid would fail here
            row = honest_did(est, **kw).tidy().iloc[0]
        hits += row.conf_low <= TAU <= row.conf_high
    return hits / reps


def band(reps, level=0.95):
    """Lower end of a 99.9% binomial band around the nominal level."""
    return level - stats.norm.ppf(0.999) * np.sqrt(level * (1 - level) / reps)


def test_smoothness_m0_linear_trend_coverage_fast():
    """A linear pre-trend continued after treatment: the M = 0 interval is exact."""
    reps = 150
    delta = 0.01 * np.array([-3.0, -2.0, -1.0, 1.0])
    beta = delta + np.array([0, 0, 0, TAU])
    sigma = np.diag([1e-4] * 4) + 2e-5
    cov = coverage(beta, sigma, 3, reps, restriction="smoothness", bounds=[0.0])
    assert cov >= band(reps)


@pytest.mark.slow
def test_smoothness_edge_coverage():
    """Curvature exactly M after treatment (the worst case for the FLCI)."""
    reps = 400
    m = 0.01
    # delta: linear before, then the slope changes by m each post period
    delta = np.array([-0.02, -0.01, 0.01 + m, 0.02 + 3 * m])
    beta = delta + np.array([0, 0, TAU, 0.0])
    sigma = np.diag([1e-4] * 4)
    cov = coverage(beta, sigma, 2, reps, restriction="smoothness", bounds=[m])
    assert cov >= band(reps)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["C-LF", "conditional"])
def test_relative_magnitude_edge_coverage(method):
    """Post-period change exactly Mbar times the largest pre-period change.

    The largest pre-period change (0.1) stands out from the other (0) by seven
    standard errors, so its estimate is not inflated by taking a maximum of noise.
    """
    reps = 300
    mbar = 1.0
    delta = np.array([0.1, 0.0, 0.1 * mbar])  # pre changes -0.1, 0; post +0.1
    beta = delta + np.array([0, 0, TAU])
    sigma = np.diag([1e-4] * 3)
    cov = coverage(beta, sigma, 2, reps, bounds=[mbar], method=method, grid_points=200)
    assert cov >= band(reps)
