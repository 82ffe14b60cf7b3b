"""The Bergen study's person-level DiD (TWFE with person effects, wild cluster bootstrap).

Same seed, same draws: the fit gives identical numbers when repeated, when run on a
worker process of :mod:`evalkit.parallel` (jobs=2), and the same to rounding
(1e-12) with the rows in another order; another seed gives other draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit import parallel
from evalkit.did import TWFE

CITIES = [f"c{i}" for i in range(16)]  # 2^16 sign vectors: drawn, not enumerated


def _persons(seed: int = 6, n: int = 1200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES, n)
    bergen = (city == "c0").astype(float)
    level = rng.normal(size=n)
    shock = dict(zip(CITIES, rng.normal(scale=0.05, size=len(CITIES)), strict=True))
    rows = []
    for t in (0, 1):
        y = level + t * (0.1 + np.array([shock[c] for c in city]) + 0.2 * bergen)
        rows.append(
            pd.DataFrame(
                {
                    "person_id": np.arange(n, dtype=np.int32),
                    "city": city,
                    "after_reform": np.full(n, t, dtype=np.int32),
                    "treated": bergen * t,  # in Bergen after the reform
                    "activity": y + rng.normal(scale=0.3, size=n),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


ESTIMATOR = TWFE(
    unit="person_id", time="after_reform", treatment="treated", cluster="city", outcome="activity"
)


def _fit(item: tuple[pd.DataFrame, int]) -> list[float]:
    frame, seed = item
    res = ESTIMATOR.fit(frame, inference="wild", seed=seed)
    row = res.tidy().iloc[0]
    return [float(row[c]) for c in ("estimate", "p_value", "conf_low", "conf_high")]


def test_same_seed_same_draws_any_jobs_and_row_order() -> None:
    frame = _persons()
    first = _fit((frame, 11))
    assert first == _fit((frame, 11))
    shuffled = frame.sample(frac=1.0, random_state=2)
    # rows in another order: the same draws; sums in another order move the last bits
    np.testing.assert_allclose(_fit((shuffled, 11)), first, rtol=1e-12)
    # on a worker process (and in this one): the same numbers
    assert parallel.map(_fit, [(frame, 11), (frame, 11)], jobs=2) == [first, first]
    other = _fit((frame, 12))
    assert other[0] == first[0]  # the same estimate
    assert other[1:] != first[1:]  # other draws: another p-value or interval
