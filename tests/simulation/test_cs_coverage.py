"""Coverage of CallawaySantAnna's intervals on a design with known heterogeneous effects.

Design: a balanced panel of ``n`` units over periods 1..6. A binary covariate ``x`` shifts
both the trend (``0.5 t`` extra for ``x = 1``) and the chance of each cohort, so
parallel trends hold only conditionally on ``x`` (the doubly robust estimator with
covariate ``x`` is needed). Effects vary with the cohort and the time since treatment:
``tau(g, t) = (1 + 0.5 (t - g)) (1 + 0.2 (g - 3))`` for ``t >= g``. The true ``ATT(g,t)``
is ``tau(g, t)`` after treatment and 0 before; aggregated truths weight cohorts by their
population shares, which are known in closed form.

Coverage counts over ``R`` replications are compared with Binomial(R, 0.95) (and, for
simultaneous bands, with the joint level) in a two-sided band at 0.1%, Bonferroni
corrected over the targets checked.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.did.callaway_santanna import CallawaySantAnna
from evalkit.inference import Inference

PERIODS = np.arange(1, 7)
COHORTS = np.array([0, 3, 4, 5])
P_COHORT = {0: np.array([0.4, 0.2, 0.2, 0.2]), 1: np.array([0.1, 0.3, 0.3, 0.3])}
SHARE = 0.5 * (P_COHORT[0] + P_COHORT[1])  # population P(G = g), x ~ Bernoulli(1/2)
EST = CallawaySantAnna(outcome="y", unit="id", time="t", cohort="g", covariates=["x"])


def tau(g: float, t: float) -> float:
    """The effect on cohort g in period t (zero before treatment)."""
    return (1 + 0.5 * (t - g)) * (1 + 0.2 * (g - 3)) if t >= g else 0.0


def simulate(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One draw of the design."""
    x = rng.integers(0, 2, size=n)
    u = rng.random(n)
    cum = np.where(x[:, None] == 1, np.cumsum(P_COHORT[1]), np.cumsum(P_COHORT[0]))
    g = COHORTS[(u[:, None] > cum).sum(axis=1)]
    alpha = rng.normal(size=n) + 0.5 * x
    t = np.repeat(PERIODS[None, :], n, axis=0)
    effect = np.vectorize(tau)(np.repeat(g[:, None], len(PERIODS), axis=1), t) * (g[:, None] > 0)
    y = (
        alpha[:, None]
        + 0.2 * t
        + 0.5 * x[:, None] * t
        + effect
        + rng.normal(scale=1.0, size=(n, len(PERIODS)))
    )
    return pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), len(PERIODS)),
            "t": t.ravel(),
            "g": np.repeat(g, len(PERIODS)),
            "x": np.repeat(x, len(PERIODS)).astype(float),
            "y": y.ravel(),
        }
    )


def truth_att_gt(tidy: pd.DataFrame) -> np.ndarray:
    return np.array([tau(g, t) for g, t in zip(tidy["cohort"], tidy["time"], strict=True)])


def truth_event(e: float) -> float:
    gs = [g for g in COHORTS[1:] if g + e in PERIODS]
    w = np.array([SHARE[list(COHORTS).index(g)] for g in gs])
    return float(np.sum(w * [tau(g, g + e) for g in gs]) / w.sum())


def truth_overall() -> float:
    cells = [(g, t) for g in COHORTS[1:] for t in PERIODS if t >= g]
    w = np.array([SHARE[list(COHORTS).index(g)] for g, _ in cells])
    return float(np.sum(w * [tau(g, t) for g, t in cells]) / w.sum())


def covered(tidy: pd.DataFrame, truth: np.ndarray) -> np.ndarray:
    return (tidy["conf_low"].to_numpy() <= truth) & (truth <= tidy["conf_high"].to_numpy())


def within_band(hits: np.ndarray, reps: int, level: float, n_targets: int) -> np.ndarray:
    """Whether coverage counts are plausible under Binomial(reps, level), two-sided 0.1%."""
    alpha = 0.001 / max(n_targets, 1)
    lo = stats.binom.ppf(alpha / 2, reps, level)
    hi = stats.binom.isf(alpha / 2, reps, level)
    return (hits >= lo) & (hits <= hi)


def run(reps: int, n: int, seed: int, inference=None, boot_reps: int | None = None):
    rng = np.random.default_rng(seed)
    hits: dict[str, np.ndarray] = {}
    for r in range(reps):
        df = simulate(n, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = EST.fit(df, inference=inference, seed=seed + r, reps=boot_reps)
        gt = res.tidy()
        es = res.aggregate("event_time")
        es_tidy = es.tidy()
        keyed = es_tidy["term"] == "ATT(e)"
        e_truth = np.array([truth_event(e) for e in es_tidy.loc[keyed, "event_time"]])
        post_e = es_tidy.loc[keyed, "event_time"].to_numpy(dtype=float) >= 0
        avg_truth = float(np.mean(e_truth[post_e]))
        parts = {
            "att_gt": covered(gt, truth_att_gt(gt)),
            "event_time": covered(es_tidy[keyed], e_truth),
            "event_average": covered(es_tidy[~keyed], np.array([avg_truth])),
            "overall": covered(res.aggregate("overall").tidy(), np.array([truth_overall()])),
        }
        if inference is not None:
            band = res.aggregate("event_time", uniform=True).tidy()
            parts["event_band"] = np.array([covered(band[keyed], e_truth).all()])
        for key, value in parts.items():
            hits[key] = hits.get(key, np.zeros(len(value), dtype=int)) + value
    return hits


def test_coverage_smoke():
    """A fast subset: 40 replications, analytic standard errors."""
    reps = 40
    hits = run(reps, n=400, seed=1)
    for key in ("overall", "event_average"):
        assert within_band(hits[key], reps, 0.95, 2).all(), (key, hits[key])


@pytest.mark.slow
def test_coverage_analytic():
    reps = 1000
    hits = run(reps, n=600, seed=2)
    n_targets = sum(len(v) for v in hits.values())
    for key, count in hits.items():
        assert within_band(count, reps, 0.95, n_targets).all(), (key, count / reps)


@pytest.mark.slow
def test_coverage_bootstrap_and_uniform_band():
    reps = 300
    hits = run(reps, n=600, seed=3, inference=Inference("bootstrap"), boot_reps=499)
    n_targets = sum(len(v) for v in hits.values())
    for key, count in hits.items():
        # the simultaneous band covers all event times jointly with probability 0.95
        assert within_band(count, reps, 0.95, n_targets).all(), (key, count / reps)
