"""Coverage of the ``prior_cv`` interval of selection.ObservedExpected on the youth simulator.

The truth is the simulator's ``("neet", "prior_cv", country)``: the coefficient of
variation of the true ratios of the country's municipalities. The interval is the
profile-likelihood interval of the gamma prior's coefficient of variation on the
effective counts (:func:`evalkit.selection.shrinkage.cv_interval`), exactly what the
estimator reports (tests/unit/test_selection.py checks that).

Measured (benchmarks/results/selection_calibration.md, 111 countries of the study's
design): coverage 0.99, conservative; the basic-bootstrap interval used before covered
0.46.
"""

from __future__ import annotations

import pytest

from evalkit.selection import ObservedExpected, shrinkage
from evalkit.simulate import integration_youth
from evalkit.simulate.integration.youth import RISK_FACTORS

COUNTRIES = ("Norway", "Sweden", "Denmark")


def _intervals(seed: int, n_persons: int = 40_000) -> list[tuple[float, float, float]]:
    """(low, high, truth) of the 95% interval in each country of one simulated data set."""
    sim = integration_youth(seed=seed, n_persons=n_persons)
    est = ObservedExpected(
        outcome="neet",
        unit="municipality",
        time="year",
        cluster="person_id",
        holdout_from=2021,
        covariates=list(RISK_FACTORS),
    )
    out = []
    for country in COUNTRIES:
        fit = est._prepare(sim.data[sim.data["country"] == country])["fit"]
        low, high = shrinkage.cv_interval(
            fit["observed"] / fit["phi"], fit["expected"] / fit["phi"], 0.95
        )
        out.append((low, high, sim.truth_terms[("neet", "prior_cv", country.lower())]))
    return out


def test_prior_cv_interval_covers_in_one_data_set():
    # one smaller data set: each country's interval contains its true spread
    for low, high, truth in _intervals(7, n_persons=6_000):
        assert low <= truth <= high, (low, high, truth)


@pytest.mark.slow
def test_prior_cv_interval_coverage_over_102_countries():
    # 34 data sets x 3 countries (about 4 minutes); binomial band of 95% for 102 runs:
    # [0.908, 0.992]. The interval may be conservative (measured 0.99), never short.
    runs = [r for seed in range(101, 135) for r in _intervals(seed)]
    covered = sum(low <= truth <= high for low, high, truth in runs) / len(runs)
    assert covered >= 0.908, covered
