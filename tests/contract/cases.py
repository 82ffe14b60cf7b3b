"""One small, valid example per registered estimator, for the contract tests.

Every estimator in the registry must have an entry here; the contract test fails for a
registered estimator without one, so new estimators cannot skip the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


def staggered_panel(seed: int = 0, n_units: int = 60, n_periods: int = 8) -> pd.DataFrame:
    """A balanced staggered-adoption panel with two groups per unit-period cell."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_periods)
    time = np.tile(np.arange(2001, 2001 + n_periods), n_units)
    cohorts = np.array([0, 2004, 2006])
    cohort = cohorts[np.arange(n_units) % 3][unit]
    d = ((cohort > 0) & (time >= cohort)).astype(int)
    x = rng.normal(size=len(unit)) + 0.1 * (time - 2001)
    y = (
        rng.normal(size=n_units)[unit]
        + 0.2 * (time - 2001)
        + 0.5 * d
        + 0.3 * x
        + rng.normal(scale=0.5, size=len(unit))
    )
    return pd.DataFrame(
        {
            "unit": unit,
            "time": time,
            "city": unit // 4,
            "cohort": cohort,
            "treat": d,
            "x": x,
            "y": y,
            "w": rng.uniform(1, 3, size=len(unit)),
        }
    )


def synth_panel(seed: int = 0) -> pd.DataFrame:
    """The staggered panel with two thirds of the units never treated."""
    df = staggered_panel(seed)
    cohort = np.where(df["unit"] % 6 == 1, 2004, np.where(df["unit"] % 6 == 2, 2006, 0))
    return df.assign(cohort=cohort, treat=((cohort > 0) & (df["time"] >= cohort)).astype(int))


def triple_cells(seed: int = 0) -> pd.DataFrame:
    """City x month x group cells; the targeted group in treated cities gains from month 4."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(np.arange(12), np.arange(8), np.arange(3), indexing="ij")
    c, m, g = (a.ravel() for a in grid)
    post = ((c < 5) & (m >= 4)).astype(int)
    y = (
        rng.normal(size=(12, 3))[c, g]
        + rng.normal(size=(8, 3))[m, g]
        + rng.normal(size=(12, 8))[c, m]
        + 0.5 * post * (g == 2)
        + rng.normal(scale=0.5, size=c.size)
    )
    n = rng.integers(5, 50, size=c.size)
    return pd.DataFrame({"city": c, "month": m, "group": g, "post": post, "n": n, "y": y})


@dataclass(frozen=True)
class Case:
    """Constructor options, data, and the column whose removal must be reported."""

    options: dict[str, Any]
    data: Callable[[], pd.DataFrame] = staggered_panel
    fit: dict[str, Any] = field(default_factory=dict)
    outcome: str = "y"
    #: by= needs every unit in every subgroup (placebo runs shared by the subgroups): the
    #: contract's subgroups are then two outcomes of every unit, not two halves of the units
    by_within_units: bool = False


CASES: dict[str, Case] = {
    "did.TWFE": Case(
        dict(outcome="y", treatment="treat", unit="unit", time="time", covariates=["x"])
    ),
    "did.CallawaySantAnna": Case(dict(outcome="y", unit="unit", time="time", cohort="cohort")),
    "did.EventStudy": Case(dict(outcome="y", unit="unit", time="time", cohort="cohort")),
    "did.SunAbraham": Case(dict(outcome="y", unit="unit", time="time", cohort="cohort")),
    "did.ImputationDiD": Case(dict(outcome="y", unit="unit", time="time", cohort="cohort")),
    "did.BaconDecomposition": Case(dict(outcome="y", unit="unit", time="time", treatment="treat")),
    "synth.SyntheticDiD": Case(
        # two thirds never treated, so that the placebo (more donors than treated units),
        # the jackknife and the bootstrap all apply; max_iter keeps the solver quick
        dict(outcome="y", unit="unit", time="time", cohort="cohort", max_iter=200),
        data=synth_panel,
    ),
    "did.TripleDiff": Case(
        dict(
            outcome="y",
            unit="city",
            time="month",
            group="group",
            target=2,
            treatment="post",
            weights="n",
        ),
        data=triple_cells,
    ),
}


def one_treated_panel(seed: int = 0, n_donors: int = 12, n_periods: int = 10) -> pd.DataFrame:
    """One treated unit (the last) from period 2007 and a covariate, for synthetic control."""
    rng = np.random.default_rng(seed)
    n = n_donors + 1
    unit = np.repeat(np.arange(n), n_periods)
    time = np.tile(np.arange(2001, 2001 + n_periods), n)
    y = (
        rng.normal(size=n)[unit]
        + rng.normal(scale=0.3, size=n)[unit] * (time - 2001)
        + rng.normal(scale=0.2, size=unit.size)
    )
    treat = ((unit == n - 1) & (time >= 2007)).astype(int)
    return pd.DataFrame(
        {
            "unit": unit,
            "time": time,
            "treat": treat,
            "x": rng.normal(size=unit.size),
            "y": y - treat,
        }
    )


CASES.update(
    {
        "synth.SyntheticControl": Case(
            dict(
                outcome="y",
                unit="unit",
                time="time",
                treatment="treat",
                predictors=[("x", (2001, 2006))],
                lagged_outcomes=(2002, 2004, 2006),
                random_starts=1,
            ),
            data=one_treated_panel,
            by_within_units=True,
        ),
        "synth.AugmentedSyntheticControl": Case(
            dict(outcome="y", unit="unit", time="time", treatment="treat"),
            data=one_treated_panel,
            by_within_units=True,
        ),
    }
)


def single_start_panel() -> pd.DataFrame:
    """The staggered panel with one treatment start (2004) for every treated unit."""
    df = staggered_panel()
    df["treat"] = ((df["cohort"] > 0) & (df["time"] >= 2004)).astype(int)
    return df


#: Methods that need a particular design get their own example: conformal inference over
#: time needs one treatment start and no covariates.
METHOD_CASES: dict[tuple[str, str], Case] = {
    ("did.TWFE", "conformal"): Case(
        dict(outcome="y", treatment="treat", unit="unit", time="time"), data=single_start_panel
    ),
}
