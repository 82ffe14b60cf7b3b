"""Slow: coverage and calibration of selection.ObservedExpected on the youth simulator.

Over independent simulated data sets (each country separately, as the study runs it):

- the share of true municipality ratios inside their 95% intervals;
- calibration of ``p_above`` / ``p_below``: among municipalities given a probability in a
  band, the share truly among the k highest (lowest) true ratios (the simulator's exact
  0/1 truth) should be about the band's mean probability;
- how often the selection is exactly the planted outliers.

Measured with the earlier planting rule (exactly three outliers a side; seeds 1-20,
reps=100, 2026-11-30): coverage 0.932; calibration by band of the
reported probability (mean reported / share true): 0.015/0.009, 0.176/0.151, 0.433/0.472,
0.781/0.874; the three selected above are exactly the true three in 38% of countries.
With the probabilities drawn from the prior's profile likelihood and the gamma posteriors
(sisel, 2026-11-30): the top band reads 0.781 against 0.886 true, 0.005 outside the
tolerance: the probabilities of the selected municipalities are too low.

The nonparametric prior (``prior="npmle"``, sisel2) did not fix it, and the cause was not
the shape of the prior (benchmarks/results/selection_calibration.md): the simulator
planted *exactly* three outliers on each side, only in mid-size and large municipalities,
while any exchangeable empirical-Bayes prior treats every municipality as equally likely
to be an outlier. The criterion stated before measuring (sisel2): the mean reported
probability of the selected municipalities within the 95% binomial band of the share truly
among the three, above and below, besides the bands below.

Since sisel3 the simulator plants outliers exchangeably by default
(``outlier_rule="random"``: each municipality, whatever its size, above or below with
probability 3/M each). Measured (seeds 1-20, reps=100, 2026-11-30, load average 13-15):
ratio coverage 0.907; calibration by band (mean reported / share true) 0.019/0.020,
0.175/0.175, 0.429/0.435, 0.774/0.743; the three selected above are exactly the true three
in 8% of countries (several planted outliers with similar true ratios often compete for
the top three). The criterion holds here and over 300 countries in the benchmark, so
``test_selection_calibration`` is an ordinary test now; with ``outlier_rule="fixed"`` the
shortfall above remains (the benchmark's earlier table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.selection import ObservedExpected
from evalkit.simulate import integration_youth
from evalkit.simulate.integration.youth import RISK_FACTORS

COVARIATES = list(RISK_FACTORS)
COUNTRIES = {"Norway": "norway", "Sweden": "sweden", "Denmark": "denmark"}


def replicate(
    seed: int, reps: int = 100, n_persons: int = 40_000, prior: str = "gamma"
) -> pd.DataFrame:
    """One simulated data set: a row per municipality with estimates and truths."""
    sim = integration_youth(seed=seed, n_persons=n_persons)
    est = ObservedExpected(
        outcome="neet",
        unit="municipality",
        time="year",
        cluster="person_id",
        holdout_from=2021,
        covariates=COVARIATES,
        prior=prior,
    )
    rows = []
    for country, group in COUNTRIES.items():
        data = sim.data[sim.data["country"] == country]
        tidy = est.fit(data, seed=seed, reps=reps).tidy().set_index("term")
        codes = [t[6:] for t in tidy.index if t.startswith("ratio:")]
        for code in codes:
            truth = {
                k: sim.truth_terms[("neet", f"{k}:{code}", group)]
                for k in ("ratio", "p_above", "p_below")
            }
            rows.append(
                {
                    "seed": seed,
                    "country": country,
                    "unit": code,
                    "ratio": tidy.loc[f"ratio:{code}", "estimate"],
                    "low": tidy.loc[f"ratio:{code}", "conf_low"],
                    "high": tidy.loc[f"ratio:{code}", "conf_high"],
                    "p_above": tidy.loc[f"p_above:{code}", "estimate"],
                    "p_below": tidy.loc[f"p_below:{code}", "estimate"],
                    "true_ratio": truth["ratio"],
                    "true_above": truth["p_above"],
                    "true_below": truth["p_below"],
                }
            )
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> dict[str, float]:
    """Coverage, calibration by band and exact recovery of the planted outliers."""
    covered = (table["low"] <= table["true_ratio"]) & (table["true_ratio"] <= table["high"])
    probs = pd.concat(
        [
            table[["p_above", "true_above"]].set_axis(["p", "truth"], axis=1),
            table[["p_below", "true_below"]].set_axis(["p", "truth"], axis=1),
        ]
    )
    bands = pd.cut(probs["p"], [-0.01, 0.1, 0.3, 0.6, 1.0])
    calib = probs.groupby(bands, observed=True).agg(p=("p", "mean"), truth=("truth", "mean"))
    top = table.sort_values("ratio").groupby(["seed", "country"])
    recovered = top.apply(
        lambda g: set(g["unit"].iloc[-3:]) == set(g.loc[g["true_above"] == 1, "unit"])
    )
    out = {"coverage": float(covered.mean()), "recovered_above": float(recovered.mean())}
    for band, row in calib.iterrows():
        out[f"calibration {band}: p"] = float(row["p"])
        out[f"calibration {band}: truth"] = float(row["truth"])
    return out


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.concat([replicate(seed) for seed in range(1, 21)], ignore_index=True)


@pytest.mark.slow
def test_selection_interval_coverage(table):
    s = summarise(table)
    print(s)
    # 20 data sets x 90 municipalities: 95% intervals must cover at least 90% of true ratios
    assert s["coverage"] >= 0.90, s


@pytest.mark.slow
def test_selection_calibration(table):
    probs = pd.concat(
        [
            table[["p_above", "true_above"]].set_axis(["p", "truth"], axis=1),
            table[["p_below", "true_below"]].set_axis(["p", "truth"], axis=1),
        ]
    )
    # calibration: the mean truth in each band within 0.1 of the mean probability
    bands = pd.cut(probs["p"], [-0.01, 0.1, 0.3, 0.6, 1.0])
    calib = probs.groupby(bands, observed=True).agg(p=("p", "mean"), truth=("truth", "mean"))
    assert (np.abs(calib["p"] - calib["truth"]) < 0.1).all(), calib
    selected_within_binomial_band(table)


def selected_within_binomial_band(table: pd.DataFrame) -> None:
    """Mean p of the selected within the 95% binomial band of the share truly selected."""
    by_country = table.groupby(["seed", "country"], group_keys=False)
    for side, kind, pick in (
        ("above", "p_above", lambda g: g.nlargest(3, "ratio")),
        ("below", "p_below", lambda g: g.nsmallest(3, "ratio")),
    ):
        chosen = by_country.apply(pick)
        share = chosen[f"true_{side}"].mean()
        half = 1.96 * np.sqrt(max(share * (1 - share), 0.01) / len(chosen))
        assert abs(chosen[kind].mean() - share) <= half, (side, chosen[kind].mean(), share)
