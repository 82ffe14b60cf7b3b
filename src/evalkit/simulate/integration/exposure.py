"""A job exposure matrix from a survey, linked to register occupations ("integration_jem").

Two samples in one table (column ``source``):

``survey``
    Respondents of a living-conditions survey report a physical-strain index
    (``physical_strain``, about 0-10) in their occupation. Occupations differ widely in
    how many respondents they have (a handful to dozens).
``register``
    Employed persons with their occupation code, age, sex, low education, days of
    sickness absence in the next year (``sickness_days``) and entry to work assessment
    allowance within two years (``waa_entry``). Their own exposure is not observed.

Every person's true exposure is the occupation's mean exposure plus an individual
deviation (Berkson error: assigning the occupation mean to a person misses the
deviation, which is independent of the mean); survey answers add reporting noise. Low
education steers persons into straining occupations and raises both outcomes
(confounding by covariates). The planted effect is per unit of a person's true
exposure, linear, so the occupation mean identifies it; the survey's occupation means
are noisy (classical error, worst in small occupations), which attenuates a regression
on raw means and is what shrinkage towards the overall mean corrects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.errors import DesignError
from evalkit.simulate.base import SimulatedData, register

__all__ = ["integration_jem"]

SCHEMA = {
    "source": "str",
    "person_id": "int64",
    "occupation": "str",
    "physical_strain": "float64",
    "age": "float64",
    "female": "float64",
    "low_education": "float64",
    "sickness_days": "float64",
    "waa_entry": "float64",
}


@register("integration_jem", SCHEMA)
def integration_jem(
    *,
    seed: int = 1,
    n_occupations: int = 80,
    n_survey: int = 1500,
    n_register: int = 8000,
    effect_sickness: float = 1.5,
    effect_waa: float = 0.01,
) -> SimulatedData:
    """Simulate survey exposures by occupation and register outcomes of persons in them.

    Parameters
    ----------
    seed
        Seed of every draw.
    n_occupations
        Occupation codes.
    n_survey, n_register
        Survey respondents and register persons.
    effect_sickness, effect_waa
        Effect of one unit of physical strain on days of sickness absence and on the
        probability of entering work assessment allowance.

    Examples
    --------
    >>> sim = integration_jem(seed=1, n_survey=300, n_register=500)
    >>> sim.data["source"].value_counts().to_dict()
    {'register': 500, 'survey': 300}
    >>> sim.truth_terms[("sickness_days", "physical_strain", "all")]
    1.5
    """
    for name, value, low in (
        ("n_occupations", n_occupations, 5),
        ("n_survey", n_survey, 50),
        ("n_register", n_register, 50),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DesignError(f"{name} must be a whole number >= {low}, got {value!r}", column=name)
    rng = np.random.default_rng(seed)
    mu = rng.normal(5.0, 1.5, size=n_occupations)  # true occupation mean exposure
    popularity = rng.lognormal(0.0, 1.0, size=n_occupations)
    codes = np.array([f"{4000 + 37 * j:04d}" for j in range(n_occupations)], dtype=object)

    def occupations(size: int, low_edu: np.ndarray) -> np.ndarray:
        # low education tilts the choice towards straining occupations
        tilt = np.exp(0.5 * np.outer(low_edu - 0.4, (mu - 5.0)))
        p = popularity * tilt
        p /= p.sum(axis=1, keepdims=True)
        return (p.cumsum(axis=1) > rng.uniform(size=(size, 1))).argmax(axis=1)

    low_s = rng.binomial(1, 0.4, size=n_survey).astype(float)
    occ_s = occupations(n_survey, low_s)
    answer = mu[occ_s] + rng.normal(0.0, 1.5, size=n_survey) + rng.normal(0.0, 1.0, n_survey)

    low_r = rng.binomial(1, 0.4, size=n_register).astype(float)
    occ_r = occupations(n_register, low_r)
    age = rng.uniform(20, 62, size=n_register).round()
    female = rng.binomial(1, 0.5, size=n_register).astype(float)
    own = mu[occ_r] + rng.normal(0.0, 1.5, size=n_register)  # Berkson: mean + deviation
    days = (
        4.0
        + effect_sickness * own
        + 3.0 * low_r
        + 2.0 * female
        + 0.1 * (age - 40)
        + rng.normal(0.0, 6.0, size=n_register)
    )
    p_waa = np.clip(0.08 + effect_waa * (own - 5.0) + 0.03 * low_r + 0.0005 * (age - 40), 0, 1)
    waa = (rng.uniform(size=n_register) < p_waa).astype(float)
    nan_s = np.full(n_survey, np.nan)
    survey = pd.DataFrame(
        {
            "source": "survey",
            "person_id": np.arange(1, n_survey + 1),
            "occupation": codes[occ_s],
            "physical_strain": answer.round(1),
            "age": nan_s,
            "female": nan_s,
            "low_education": low_s,
            "sickness_days": nan_s,
            "waa_entry": nan_s,
        }
    )
    reg = pd.DataFrame(
        {
            "source": "register",
            "person_id": np.arange(n_survey + 1, n_survey + n_register + 1),
            "occupation": codes[occ_r],
            "physical_strain": np.full(n_register, np.nan),
            "age": age,
            "female": female,
            "low_education": low_r,
            "sickness_days": days,
            "waa_entry": waa,
        }
    )
    frame = pd.concat([reg, survey], ignore_index=True).astype(SCHEMA)
    sizes = np.bincount(occ_s, minlength=n_occupations)
    description = (
        f"Simulated job exposure matrix: {n_survey} survey respondents report physical "
        f"strain in {n_occupations} occupations (from {sizes.min()} to {sizes.max()} "
        f"respondents each; {int((sizes < 5).sum())} occupations with fewer than five), "
        f"linked by occupation code to {n_register} register persons. One unit of strain "
        f"adds {effect_sickness:g} days of sickness absence and {effect_waa:g} to the "
        "probability of entering work assessment allowance; low education leads to both "
        "straining occupations and worse outcomes. Persons' own exposure deviates from "
        "their occupation's mean (Berkson error)."
    )
    return SimulatedData(
        data=frame,
        truth={},
        description=description,
        name="integration_jem",
        term="physical_strain",
        groups={"all": None},
        parameters={
            "seed": seed,
            "n_occupations": n_occupations,
            "n_survey": n_survey,
            "n_register": n_register,
            "effect_sickness": effect_sickness,
            "effect_waa": effect_waa,
        },
        truth_terms={
            ("sickness_days", "physical_strain", "all"): float(effect_sickness),
            ("waa_entry", "physical_strain", "all"): float(effect_waa),
        },
    )
