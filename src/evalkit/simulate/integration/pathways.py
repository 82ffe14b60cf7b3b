"""Monthly pathways of young work-assessment-allowance recipients ("integration_pathways").

A cohort of young persons entering work assessment allowance (WAA) in 2010-2014 is
followed month by month from entry. Each person follows one of six planted pathway
types, with random durations and occasional off-pattern months:

``quick_work``        WAA a few months, a short spell of job seeking, then work.
``measures_work``     short WAA, then a long spell of labour-market measures, then work.
``to_disability``     long WAA ending in disability benefit.
``health_cycling``    WAA alternating with health treatment throughout.
``assistance_churn``  short WAA, then social assistance with spells of job seeking and work.
``sickness_waa``      sickness benefit, then WAA to the end of follow-up.

Which type a person follows depends on age, sex, immigrant background, low education
and an earlier health diagnosis (a multinomial logit), so membership regressions have
something to find. Outcomes: ``decent_income`` (income above a decent level in the
last year, more likely in the work types) and ``work_end`` (in work in the last month).
The column ``planted_type`` exists only in simulated data: a study compares the
recovered typology with it (adjusted Rand index). Illustrative choices throughout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.errors import DesignError
from evalkit.simulate.base import SimulatedData, register

__all__ = ["PATHWAY_TYPES", "STATES", "integration_pathways"]

STATES: tuple[str, ...] = (
    "waa",
    "work",
    "measures",
    "job_seeking",
    "sickness_benefit",
    "disability_benefit",
    "social_assistance",
    "health_treatment",
)
PATHWAY_TYPES: tuple[str, ...] = (
    "quick_work",
    "measures_work",
    "to_disability",
    "health_cycling",
    "assistance_churn",
    "sickness_waa",
)
SCHEMA = {
    "person_id": "int64",
    "month": "int16",
    "state": "str",
    "entry_year": "int16",
    "age": "int16",
    "female": "int8",
    "immigrant": "int8",
    "low_education": "int8",
    "health_diagnosis": "int8",
    "decent_income": "int8",
    "work_end": "int8",
    "planted_type": "str",
}
_S = {s: i for i, s in enumerate(STATES)}
# logit coefficients of type membership: intercept, age - 24, female, immigrant,
# low education, health diagnosis (quick_work is the reference type)
_COEF = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, -0.05, 0.3, 0.4, 0.5, -0.2],
        [-1.2, 0.12, 0.0, 0.2, 0.6, 1.4],
        [-0.6, 0.0, 0.5, -0.3, 0.0, 1.6],
        [-0.5, -0.08, -0.2, 1.0, 0.9, 0.2],
        [-0.3, 0.08, 0.4, 0.0, -0.4, 0.5],
    ]
)
_DECENT = np.array([0.70, 0.60, 0.05, 0.15, 0.20, 0.10])


def _pathway(kind: int, t: int, rng: np.random.Generator) -> list[int]:
    s = _S
    out: list[int] = []

    def add(state: str, lo: int, hi: int) -> None:
        out.extend([s[state]] * int(rng.integers(lo, hi + 1)))

    if kind == 0:
        add("waa", 3, 8)
        add("job_seeking", 1, 4)
        add("work", t, t)
    elif kind == 1:
        add("waa", 3, 6)
        add("measures", 12, 20)
        add("work", t, t)
    elif kind == 2:
        add("waa", 14, 26)
        add("disability_benefit", t, t)
    elif kind == 3:
        while len(out) < t:
            add("waa", 3, 6)
            add("health_treatment", 2, 4)
    elif kind == 4:
        add("waa", 2, 6)
        while len(out) < t:
            add("social_assistance", 3, 8)
            add("job_seeking" if rng.uniform() < 0.6 else "work", 1, 3)
    else:
        add("sickness_benefit", 6, 12)
        add("waa", t, t)
    return out[:t]


@register("integration_pathways", SCHEMA)
def integration_pathways(
    *, seed: int = 1, n_persons: int = 1000, n_months: int = 36, noise: float = 0.03
) -> SimulatedData:
    """Simulate monthly pathways of a WAA cohort with six planted pathway types.

    Parameters
    ----------
    seed
        Seed of every draw.
    n_persons
        Persons in the cohort.
    n_months
        Months followed from entry.
    noise
        Chance that any month is replaced by a random state (off-pattern months).

    Examples
    --------
    >>> sim = integration_pathways(seed=1, n_persons=50, n_months=24)
    >>> sim.data.shape
    (1200, 12)
    >>> sorted(sim.data["state"].unique())[:3]
    ['disability_benefit', 'health_treatment', 'job_seeking']
    """
    for name, value, low in (("n_persons", n_persons, 10), ("n_months", n_months, 12)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DesignError(f"{name} must be a whole number >= {low}, got {value!r}", column=name)
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise <= 0.3:
        raise DesignError(f"noise must be a number in [0, 0.3], got {noise!r}", column="noise")
    rng = np.random.default_rng(seed)
    n = n_persons
    age = rng.integers(18, 30, size=n)
    female = rng.binomial(1, 0.5, size=n)
    immigrant = rng.binomial(1, 0.2, size=n)
    low_edu = rng.binomial(1, 0.45, size=n)
    health = rng.binomial(1, 0.35, size=n)
    x = np.column_stack([np.ones(n), age - 24, female, immigrant, low_edu, health])
    logits = x @ _COEF.T
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    kind = (prob.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    seqs = np.array([_pathway(int(k), n_months, rng) for k in kind])
    flip = rng.uniform(size=seqs.shape) < noise
    seqs[flip] = rng.integers(0, len(STATES), size=int(flip.sum()))
    p_decent = np.clip(_DECENT[kind] + 0.05 * female - 0.05 * low_edu, 0.01, 0.99)
    decent = (rng.uniform(size=n) < p_decent).astype(int)
    work_end = (seqs[:, -1] == _S["work"]).astype(int)
    person = np.repeat(np.arange(n), n_months)
    frame = pd.DataFrame(
        {
            "person_id": person + 1,
            "month": np.tile(np.arange(1, n_months + 1), n),
            "state": np.array(STATES, dtype=object)[seqs.ravel()],
            "entry_year": rng.integers(2010, 2015, size=n)[person],
            "age": age[person],
            "female": female[person],
            "immigrant": immigrant[person],
            "low_education": low_edu[person],
            "health_diagnosis": health[person],
            "decent_income": decent[person],
            "work_end": work_end[person],
            "planted_type": np.array(PATHWAY_TYPES, dtype=object)[kind][person],
        }
    ).astype(SCHEMA)
    shares = {t: float(np.mean(kind == i)) for i, t in enumerate(PATHWAY_TYPES)}
    truth_terms = {("decent_income", "planted_share", t): v for t, v in shares.items()} | {
        ("decent_income", "planted_mean", t): float(p_decent[kind == i].mean())
        for i, t in enumerate(PATHWAY_TYPES)
        if (kind == i).any()
    }
    description = (
        f"Simulated monthly pathways of {n} young persons entering work assessment "
        f"allowance (WAA) in 2010-2014, followed {n_months} months in eight states "
        f"({', '.join(STATES)}). Six pathway types are planted ("
        + ", ".join(f"{t} {v:.0%}" for t, v in shares.items())
        + f"), with random durations and {noise:.0%} off-pattern months; type membership "
        "depends on age, sex, immigrant background, low education and an earlier health "
        "diagnosis. The recovered typology is compared with the planted one."
    )
    return SimulatedData(
        data=frame,
        truth={},
        description=description,
        name="integration_pathways",
        term="planted_type",
        groups={"all": None},
        parameters={"seed": seed, "n_persons": n, "n_months": n_months, "noise": noise},
        truth_terms=truth_terms,
    )
