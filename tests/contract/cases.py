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


def one_treated_city(seed: int = 0) -> pd.DataFrame:
    """Ten cities over 24 months, one treated from month 12 (the Bergen design)."""
    from evalkit.simulate.designs import cities

    return cities(np.random.default_rng(seed), n_months=24, reform=12, effect=1.0)


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


def iv_sample(seed: int = 0, n: int = 400) -> pd.DataFrame:
    """A cross-section with a binary instrument, a binary treatment and two covariates."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    z = (rng.random(n) < 0.5).astype(int)
    d = ((0.8 * z + 0.3 * x1 + rng.normal(size=n)) > 0.4).astype(int)
    y = 1.0 * d + x1 + 0.5 * x2 + rng.normal(size=n)
    return pd.DataFrame({"unit": np.arange(n), "z": z, "d": d, "x1": x1, "x2": x2, "y": y})


def trial_sample(seed: int = 0, n_offices: int = 30, size: int = 10) -> pd.DataFrame:
    """A cluster-randomised trial: offices assigned (z), receipt d with two-sided noncompliance."""
    rng = np.random.default_rng(seed)
    office = np.repeat(np.arange(n_offices), size)
    z = (rng.permutation(n_offices) < n_offices // 2).astype(int)[office]
    x1 = rng.normal(size=office.size)
    d = (rng.random(office.size) < 0.1 + 0.6 * z).astype(int)
    y = 0.5 * d + 0.4 * x1 + rng.normal(scale=0.3, size=n_offices)[office]
    y = y + rng.normal(size=office.size)
    unit = np.arange(office.size)
    return pd.DataFrame({"unit": unit, "office": office, "z": z, "d": d, "x1": x1, "y": y})


def pathway_sample(seed: int = 0) -> pd.DataFrame:
    """Monthly states of 60 persons (the simulated WAA cohort), with a person-level outcome."""
    from evalkit.simulate import get

    df = get("integration_pathways")(seed=seed + 1, n_persons=60, n_months=12).data
    return df.rename(columns={"person_id": "unit", "decent_income": "y"})


def jem_sample(seed: int = 0) -> pd.DataFrame:
    """Survey and register rows of the simulated job exposure matrix (``y``: sickness days)."""
    from evalkit.simulate import get

    df = get("integration_jem")(seed=seed + 1, n_occupations=20, n_survey=300, n_register=400)
    return df.data.rename(columns={"sickness_days": "y"}).assign(unit=lambda d: d["person_id"])


def two_period_panel(seed: int = 0, n: int = 200) -> pd.DataFrame:
    """A two-period panel: the treated group gains 1 in the second period."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    g = (rng.random(n) < 0.4 + 0.2 * (x > 0)).astype(int)
    y0 = x + rng.normal(size=n)
    y1 = y0 + 0.3 * x + g + rng.normal(size=n)
    return pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n), 2),
            "time": np.tile([0, 1], n),
            "y": np.column_stack([y0, y1]).ravel(),
            "g": np.repeat(g, 2),
            "x": np.repeat(x, 2),
        }
    )


def dose_panel(seed: int = 0, n_units: int = 60, n_periods: int = 4) -> pd.DataFrame:
    """A panel with unit effects and a continuous treatment correlated with them."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_periods)
    alpha = rng.normal(size=n_units)[unit]
    x = rng.normal(size=unit.size) + 0.5 * alpha
    dose = 0.5 * x + alpha + rng.normal(size=unit.size)
    y = 0.7 * dose + x + 2.0 * alpha + rng.normal(size=unit.size)
    time = np.tile(np.arange(n_periods), n_units)
    return pd.DataFrame({"unit": unit, "time": time, "x": x, "dose": dose, "y": y})


def selection_sample(seed: int = 0, n_units: int = 8) -> pd.DataFrame:
    """Persons by year in units of varied size with a 0/1 event (case selection)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(25, 90, n_units)
    unit = np.repeat(np.arange(n_units), sizes)
    n = unit.size
    x1 = (rng.random(n) < 0.4).astype(int)
    x2 = rng.normal(size=n_units)[unit]
    eta = -1.2 + 0.6 * x1 + 0.3 * x2 + rng.normal(scale=0.3, size=n_units)[unit]
    years = np.arange(2001, 2005)
    rows = pd.DataFrame(
        {
            "person": np.repeat(np.arange(n), years.size),
            "unit": np.repeat(unit, years.size),
            "time": np.tile(years, n),
            "x1": np.repeat(x1, years.size),
            "x2": np.repeat(x2, years.size),
        }
    )
    p = 1 / (1 + np.exp(-np.repeat(eta, years.size)))
    rows["y"] = (rng.random(len(rows)) < p).astype(int)
    return rows


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
    "did.HonestEventStudy": Case(
        dict(outcome="y", unit="city", time="month", treatment="d", bounds=(0.0, 0.1)),
        data=one_treated_city,
    ),
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
    "selection.ObservedExpected": Case(
        dict(
            outcome="y",
            unit="unit",
            time="time",
            cluster="person",
            covariates=["x1", "x2"],
            holdout_from=2003,
            k=2,
            posterior_draws=50,
        ),
        data=selection_sample,
        fit=dict(reps=40),
    ),
    "dml.PLR": Case(
        dict(outcome="y", treatment="d", covariates=["x1", "x2"], learner="logit", n_folds=2),
        data=iv_sample,
    ),
    "dml.IRM": Case(
        dict(outcome="y", treatment="d", covariates=["x1", "x2"], learner="logit", n_folds=2),
        data=iv_sample,
    ),
    "dml.IIVM": Case(
        dict(
            outcome="y",
            treatment="d",
            instrument="z",
            covariates=["x1", "x2"],
            learner="logit",
            n_folds=2,
        ),
        data=iv_sample,
    ),
    "dml.PLIV": Case(
        dict(
            outcome="y",
            treatment="d",
            instrument="z",
            covariates=["x1", "x2"],
            learner="logit",
            n_folds=2,
        ),
        data=iv_sample,
    ),
    "dml.DID": Case(
        dict(
            outcome="y",
            treatment="g",
            unit="unit",
            time="time",
            covariates=["x"],
            learner="logit",
            n_folds=2,
        ),
        data=two_period_panel,
    ),
    "dml.DIDMulti": Case(
        dict(
            outcome="y",
            cohort="cohort",
            unit="unit",
            time="time",
            covariates=["x"],
            learner="logit",
            n_folds=2,
        ),
        data=staggered_panel,
    ),
    "dml.PLPR": Case(
        dict(
            outcome="y",
            treatment="dose",
            unit="unit",
            time="time",
            covariates=["x"],
            learner="logit",
            n_folds=2,
        ),
        data=dose_panel,
    ),
    "exposure.JobExposure": Case(
        dict(
            outcome="y",
            exposure="physical_strain",
            occupation="occupation",
            sample="source",
            covariates=["age", "female", "low_education"],
            learner="logit",
            n_folds=2,
        ),
        data=jem_sample,
    ),
    "sequence.Typology": Case(
        dict(unit="unit", time="month", state="state", outcomes=["y"], n_types=3),
        data=pathway_sample,
    ),
    "trial.ITT": Case(
        dict(outcome="y", treatment="z", covariates=["x1"], cluster="office"),
        data=trial_sample,
        fit={"reps": 199},
    ),
    "trial.IV2SLS": Case(
        dict(outcome="y", treatment="d", instrument="z", covariates=["x1"], cluster="office"),
        data=trial_sample,
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


CASES["multilevel.MixedModel"] = Case(
    dict(outcome="y", treatment="treat", covariates=["x"], cluster="city")
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


def _with_clusters(make: Callable[[], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
    """The same data with a cluster column: 20 or more groups of neighbouring units."""

    def data() -> pd.DataFrame:
        frame = make()
        return frame.assign(cl=frame["unit"] // 10)

    return data


# DML's cluster-robust scores need the cluster column named in the constructor
for _name in ("dml.PLR", "dml.IRM", "dml.IIVM", "dml.PLIV", "dml.DID"):
    for _method in ("cluster", "cr2", "jackknife", "wild"):
        METHOD_CASES[(_name, _method)] = Case(
            {**CASES[_name].options, "cluster": "cl"}, data=_with_clusters(CASES[_name].data)
        )
