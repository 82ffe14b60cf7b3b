"""Coverage of trial.ITT and trial.IV2SLS intervals on the simulated trial (slow).

Each draw is a new trial from ``integration_trial`` (new persons, offices, assignment and
outcomes); the truth is that draw's own average over its persons (``truth_terms``). The
95% intervals must cover it at a rate within a binomial band, and the spillover bounds
(``spillover_share=0.5``: the simulated spillover is about a third of the effect) must
cover the spillover-free truths at least as often.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evalkit.simulate import get
from evalkit.trial import ITT, IV2SLS

COVS = ["age", "female", "health_problem", "prior_months"]


def _covered(seed: int, design: str) -> dict[str, bool]:
    sim = get("integration_trial")(seed=seed, design=design)
    t = sim.truth_terms
    cluster = "office" if design == "cluster" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        itt = ITT(
            outcome="work_12m",
            treatment="assigned",
            covariates=COVS,
            cluster=cluster,
            spillover_share=0.5,
        ).fit(sim.data)
        iv = IV2SLS(
            outcome="work_12m",
            treatment="received",
            instrument="assigned",
            covariates=COVS,
            cluster=cluster,
            spillover_share=0.5,
        ).fit(sim.data)
    out = {}
    for name, res, term in (("itt", itt, "assigned"), ("late", iv, "received")):
        tidy = res.tidy().set_index("term")
        truth = t[("work_12m", term, "all")]
        out[name] = tidy.loc[term, "conf_low"] <= truth <= tidy.loc[term, "conf_high"]
        free = t[("work_12m", f"{term}:no_spillover", "all")]
        lo = tidy.loc[[term, f"{term}:no_spillover_bound"], "conf_low"].min()
        hi = tidy.loc[[term, f"{term}:no_spillover_bound"], "conf_high"].max()
        out[f"{name}_bound"] = lo <= free <= hi
        # without the bound the spillover-free truth is missed more often
        out[f"{name}_naive"] = tidy.loc[term, "conf_low"] <= free <= tidy.loc[term, "conf_high"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("design", ["cluster", "person"])
def test_intervals_cover_the_truths(design):
    draws = 200
    rows = [_covered(seed, design) for seed in range(draws)]
    rate = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    band = 3 * np.sqrt(0.95 * 0.05 / draws)
    print(design, rate)
    assert abs(rate["itt"] - 0.95) <= band, rate
    assert abs(rate["late"] - 0.95) <= band, rate
    assert rate["itt_bound"] >= 0.95 - band and rate["late_bound"] >= 0.95 - band, rate
