"""Coverage of MixedModel's 95% intervals for a municipality-level configuration effect.

Design: 40 municipalities of 10-60 young people, half with the configuration (assigned at
random), a 0/1 outcome (a linear probability model, heteroskedastic by construction) with
municipality random effects and an effect of 0.05. The true coefficient is 0.05, so each
draw's interval covers it or not; the share over ``reps`` draws should be within a
binomial band of 0.95. Both the model-based and the cluster-robust (sandwich) intervals
are checked.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.multilevel import MixedModel

EFFECT = 0.05


def _draw(rng: np.random.Generator, n_groups: int = 40, largest: int = 60) -> pd.DataFrame:
    sizes = rng.integers(10, largest + 1, n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    config = rng.permutation(np.repeat([0, 1], n_groups // 2))[g]
    x = rng.normal(size=g.size)
    p = 0.25 + EFFECT * config + 0.05 * x + rng.normal(0, 0.05, n_groups)[g]
    y = (rng.random(g.size) < np.clip(p, 0.01, 0.99)).astype(float)
    return pd.DataFrame({"y": y, "config": config, "x": x, "municipality": g})


def _coverage(reps: int, seed: int, **design: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    model = MixedModel(outcome="y", treatment="config", covariates=("x",), cluster="municipality")
    hits = {"iid": 0, "cluster": 0}
    for _ in range(reps):
        df = _draw(rng, **design)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for method in hits:
                row = model.fit(df, inference=method).tidy().set_index("term").loc["config"]
                hits[method] += int(row["conf_low"] <= EFFECT <= row["conf_high"])
    return {m: h / reps for m, h in hits.items()}


def test_coverage_fast_subset() -> None:
    cov = _coverage(reps=8, seed=1, n_groups=30, largest=30)
    # 8 draws: a 95% interval covers 6 or more of them with probability 0.994
    assert cov["iid"] >= 0.75 and cov["cluster"] >= 0.75, cov


@pytest.mark.slow
def test_coverage_of_95_percent_intervals() -> None:
    reps = 400
    cov = _coverage(reps=reps, seed=2)
    band = 2.576 * np.sqrt(0.95 * 0.05 / reps)  # 99% binomial band around 0.95
    print(f"coverage over {reps} draws: {cov}")
    assert abs(cov["iid"] - 0.95) <= band, cov
    assert abs(cov["cluster"] - 0.95) <= band + 0.01, cov  # t(39) sandwich: slightly under
