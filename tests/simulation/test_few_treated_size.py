"""Size of the few-treated pre-trend test when the cities' cells differ in size.

One treated city of ten, 72 months, reform in month 38, event window -12..12 with binned
end points (the Bergen event study's shape), no pre-trend. Each cell's error is a city
shock (AR(1), rho 0.5, sd 0.5) plus the average noise of ``M`` persons (AR(1), rho 0.8,
variance 2500 / M), so a big city's errors vary less. The nine comparison cities hold
1,500-3,600 persons (geometric); the treated city 7,800 (as Bergen), 2,300 (inside the
controls' range) or 700. The regression is weighted by ``M``.

"old": the covariance learned from the controls assuming every city's errors are
distributed alike (``size_correction=False``); "new": the errors' autocovariance
modelled as ``a(h) + b(h) / M`` and taken at each city's size (the default with weights).

``python tests/simulation/test_few_treated_size.py`` reruns the 500-draw table of
benchmarks/results/few_treated_size.md and prints it.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.did.event_study import EventStudy, few_treated_event_study
from evalkit.inference.few_treated_cov import SizeCovariance, size_autocovariance_from_controls

N_MONTHS, REFORM = 72, 38
CONTROL_SIZES = np.geomspace(1500, 3600, 9)
A_SD, RHO, B, RHO_P = 0.5, 0.5, 2500.0, 0.8
ESTIMATOR = EventStudy(outcome="y", unit="city", time="month", treatment="d", weights="n",
                       window=(-12, 12), bin_endpoints=True)  # fmt: skip


def sized_cities(
    rng: np.random.Generator, treated_size: float, *, b: float = B, trend: float = 0.0
) -> pd.DataFrame:
    """City x month cells: city 0 treated from month 38, cell sizes in column ``n``."""
    sizes = np.r_[treated_size, CONTROL_SIZES]
    n = len(sizes)

    def ar1(sd: np.ndarray, rho: float) -> np.ndarray:
        u = np.empty((n, N_MONTHS))
        u[:, 0] = rng.normal(size=n)
        for t in range(1, N_MONTHS):
            u[:, t] = rho * u[:, t - 1] + math.sqrt(1 - rho**2) * rng.normal(size=n)
        return u * sd[:, None]

    eps = ar1(np.full(n, A_SD), RHO) + ar1(np.sqrt(b / sizes), RHO_P)
    city = np.repeat(np.arange(n), N_MONTHS)
    month = np.tile(np.arange(N_MONTHS), n)
    y = rng.normal(size=n)[city] + (rng.normal(size=N_MONTHS) * 0.5)[month] + eps.ravel()
    y = y + trend * (city == 0) * (month - REFORM)
    d = ((city == 0) & (month >= REFORM)).astype(int)
    return pd.DataFrame({"city": city, "month": month, "d": d, "y": y, "n": sizes[city]})


def true_model(b: float = B) -> SizeCovariance:
    h = np.arange(N_MONTHS)
    return SizeCovariance(common=A_SD**2 * RHO**h, per_size=b * RHO_P**h, n_controls=9,
                          n_periods=N_MONTHS, control_sizes=CONTROL_SIZES)  # fmt: skip


def rejections(treated_size: float, reps: int, seed: int, *, b: float = B) -> dict[str, float]:
    """Share of ``reps`` true nulls rejected at 5%, old and new covariance."""
    old = new = 0
    for r in range(reps):
        df = sized_cities(np.random.default_rng(seed + r), treated_size, b=b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            new += few_treated_event_study(ESTIMATOR, df).pretrend_test["p_value"] < 0.05
            old += (
                few_treated_event_study(ESTIMATOR, df, size_correction=False).pretrend_test[
                    "p_value"
                ]
                < 0.05
            )
    return {"old": old / reps, "new": new / reps}


def test_variance_ratio_is_unbiased_fast():
    # the treated city's (demeaned) error variance relative to the controls' average,
    # from the nine controls alone: true 2.76 at 700 persons, 0.43 at 7,800; the mean
    # of 40 estimates is within 3 Monte Carlo standard errors of it (measured over 300
    # draws at 700: mean 2.74, sd 0.95)
    truth = true_model()
    for size in (700.0, 7800.0):
        est = []
        for r in range(40):
            df = sized_cities(np.random.default_rng(300 + r), size)
            y = df.pivot(index="city", columns="month", values="y").to_numpy()[1:]
            est.append(size_autocovariance_from_controls(y, CONTROL_SIZES).variance_ratio(size))
        mcse = np.std(est) / math.sqrt(len(est))
        assert abs(np.mean(est) - truth.variance_ratio(size)) < 3 * mcse, (size, np.mean(est))


def test_small_treated_city_size_fast():
    # 15 draws with the treated city at 700 persons: the old covariance rejects 65% of
    # true nulls (500 draws), so at least 5 of 15 (probability of fewer 0.004); the new
    # one 8.6%, so at most 4 (probability of more 0.01)
    out = rejections(700.0, 15, 9000)
    assert out["old"] * 15 >= 5
    assert out["new"] * 15 <= 4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("treated_size", "b"),
    [(7800.0, B), (2300.0, B), (700.0, B), (7800.0, 0.0)],
    ids=["treated_large", "treated_middle", "treated_small", "equal_variance"],
)
def test_pretrend_size_with_cell_sizes_slow(treated_size, b):
    # 500 true nulls each; the 99% binomial band around 5% is 0.025-0.075. Measured
    # (old / new): large 0.000 / 0.044, middle 0.044 / 0.056, small 0.648 / 0.086,
    # equal variance (b = 0) 0.056 / 0.074 (the price of estimating b from nine
    # controls when it is zero)
    out = rejections(treated_size, 500, 0, b=b)
    band = 2.58 * math.sqrt(0.05 * 0.95 / 500)
    if treated_size == 700.0:
        # extrapolating the variance model to a city far smaller than every control
        # (1/M twice the controls' largest) leaves a residual excess: the treated
        # variance estimate's coefficient of variation is 35% with nine controls
        assert out["old"] > 0.5 and out["new"] < 0.10, out
    else:
        assert abs(out["new"] - 0.05) <= band, out
    if treated_size == 7800.0 and b > 0:
        assert out["old"] < 0.01, out  # the old covariance is far too conservative


def _table(reps: int = 500) -> str:
    """The rows of benchmarks/results/few_treated_size.md (design, ratio, old, new)."""
    rows = []
    designs = [
        ("treated 7,800 persons (as Bergen)", 7800.0, B),
        ("treated 2,300 (inside the controls' range)", 2300.0, B),
        ("treated 700", 700.0, B),
        ("treated 7,800, equal variances (b = 0; sizes still differ)", 7800.0, 0.0),
    ]
    for label, size, b in designs:
        out = rejections(size, reps, 0, b=b)
        ratio = true_model(b).variance_ratio(size) if b > 0 else 1.0
        rows.append(f"| {label} | {ratio:.2f} | {out['old']:.3f} | {out['new']:.3f} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    import os

    start = time.process_time()
    print("| design | variance ratio | old | new |\n|---|---|---|---|")
    print(_table())
    print(f"CPU {time.process_time() - start:.0f} s, load average {os.getloadavg()[0]:.1f}")
