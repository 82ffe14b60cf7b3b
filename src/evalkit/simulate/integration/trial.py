"""A trial of a complex intervention with contamination and spillover ("integration_trial").

Labour and welfare offices (or persons within them) are randomised to an intensive,
integrated follow-up. Receipt is measured, and compliance is imperfect in both arms:
some persons offered the follow-up never get it (never-takers), and some controls get
similar help anyway (always-takers: contamination, which varies by office). Ideas
also travel to the control group's caseworkers: every control person's chance of
work rises by a spillover that depends on how exposed the office's caseworkers are.

The potential outcomes are probabilities, so the truths are exact averages over the
persons drawn (not over the coin flips that make the 0/1 outcome):

``ITT``
    ``mean_i [P_i(Z=1) - P_i(Z=0)]`` with the spillover the controls actually get: what
    a comparison of the arms estimates (term ``assigned``).
``complier effect``
    ``ITT / first stage`` (term ``received``): what IV estimates under spillover.
``spillover-free``
    the same two without spillover (terms ``assigned:no_spillover`` and
    ``received:no_spillover``, the latter the average effect of receipt on compliers).
    The difference is the bias spillover puts into both.

Everything here is illustrative: the shares and effects are chosen to look like a
trial of integrated services, not taken from one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.errors import DesignError
from evalkit.simulate.base import SimulatedData, register

__all__ = ["integration_trial"]

SCHEMA = {
    "person_id": "int64",
    "office": "int64",
    "assigned": "int8",
    "received": "int8",
    "age": "int16",
    "female": "int8",
    "health_problem": "int8",
    "prior_months": "int16",
    "work_12m": "int8",
}


def _check(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise DesignError(
            f"{name} must be a number in [{low:g}, {high:g}], got {value!r}", column=name
        )
    return float(value)


@register("integration_trial", SCHEMA)
def integration_trial(
    *,
    seed: int = 1,
    n_offices: int = 40,
    persons_per_office: int = 60,
    design: str = "cluster",
    complier_share: float = 0.6,
    contamination: float = 0.15,
    effect: float = 0.15,
    spillover: float = 0.03,
) -> SimulatedData:
    """Simulate a trial of integrated follow-up with contamination and spillover.

    Parameters
    ----------
    seed
        Seed of every draw.
    n_offices, persons_per_office
        Offices and persons in each (equal sizes, so the difference in means is unbiased
        under cluster randomisation).
    design
        ``"cluster"``: half the offices are assigned; ``"person"``: half the persons,
        completely at random.
    complier_share
        Average share of compliers (lower with a health problem, higher under 25).
    contamination
        Average share of always-takers (controls who get similar help), varying by office.
    effect
        Average effect of receipt on the probability of work 12 months on.
    spillover
        Average rise in the controls' probability of work from their caseworkers'
        exposure to the intervention (zero: no spillover).

    Examples
    --------
    >>> sim = integration_trial(seed=3, n_offices=10, persons_per_office=20)
    >>> sim.data.shape
    (200, 9)
    >>> t = sim.truth_terms
    >>> t[("work_12m", "assigned", "all")] < t[("work_12m", "assigned:no_spillover", "all")]
    True
    """
    if design not in ("cluster", "person"):
        raise DesignError(f"design must be 'cluster' or 'person', got {design!r}", column="design")
    for name, value in (("n_offices", n_offices), ("persons_per_office", persons_per_office)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise DesignError(f"{name} must be a whole number >= 2, got {value!r}", column=name)
    complier_share = _check("complier_share", complier_share, 0.05, 0.8)
    contamination = _check("contamination", contamination, 0.0, 0.15)
    effect = _check("effect", effect, -0.3, 0.3)
    spillover = _check("spillover", spillover, 0.0, 0.1)
    rng = np.random.default_rng(seed)
    n = n_offices * persons_per_office
    office = np.repeat(np.arange(n_offices), persons_per_office)
    if design == "cluster":
        treated_offices = rng.permutation(n_offices) < n_offices // 2
        z = treated_offices[office].astype(int)
    else:
        z = (rng.permutation(n) < n // 2).astype(int)

    age = rng.integers(18, 30, size=n)
    female = rng.binomial(1, 0.45, size=n)
    health = rng.binomial(1, 0.35, size=n)
    prior = np.minimum(rng.poisson(8 + 6 * health), 24)
    office_level = rng.normal(0.0, 0.05, size=n_offices)[office]
    # office-level contamination rate (mean `contamination`) and caseworker exposure (mean 1)
    contam = (contamination * rng.uniform(0.0, 2.0, size=n_offices))[office]
    exposure = rng.uniform(0.4, 1.6, size=n_offices)[office]

    comp = np.clip(complier_share + 0.10 * (age < 22) - 0.15 * health, 0.05, 0.95 - contam)
    u = rng.uniform(size=n)
    always = u < contam
    complier = (u >= contam) & (u < contam + comp)
    d1 = (always | complier).astype(int)
    d0 = always.astype(int)

    base = 0.40 + 0.08 * female - 0.15 * health - 0.008 * prior + 0.01 * (age - 24) + office_level
    tau = effect + 0.05 * (age < 22) - 0.05 * health
    spill = spillover * exposure

    def prob(v: np.ndarray) -> np.ndarray:
        return np.clip(v, 0.01, 0.99)

    p1 = prob(base + tau * d1)
    p0 = prob(base + tau * d0 + spill)
    p0_free = prob(base + tau * d0)
    d = np.where(z == 1, d1, d0)
    p = np.where(z == 1, p1, p0)
    y = (rng.uniform(size=n) < p).astype(int)

    first_stage = float(np.mean(d1 - d0))
    itt = float(np.mean(p1 - p0))
    itt_free = float(np.mean(p1 - p0_free))
    frame = pd.DataFrame(
        {
            "person_id": np.arange(1, n + 1),
            "office": office + 1,
            "assigned": z,
            "received": d,
            "age": age,
            "female": female,
            "health_problem": health,
            "prior_months": prior,
            "work_12m": y,
        }
    ).astype(SCHEMA)
    truth_terms = {
        ("work_12m", "assigned", "all"): itt,
        ("work_12m", "received", "all"): itt / first_stage,
        ("work_12m", "assigned:no_spillover", "all"): itt_free,
        ("work_12m", "received:no_spillover", "all"): itt_free / first_stage,
    }
    unit = "offices" if design == "cluster" else "persons"
    description = (
        f"Simulated trial of integrated follow-up: {n_offices} offices of "
        f"{persons_per_office} young persons, half the {unit} randomised to the offer "
        f"(`assigned`). Receipt (`received`) is imperfect: {first_stage:.0%} compliers, "
        f"{np.mean(d0):.0%} of persons would get similar help without the offer "
        "(contamination, varying by office). Control caseworkers pick up the approach, "
        f"raising the controls' chance of work by {np.mean(spill):.3f} on average "
        f"(spillover). True ITT on work after 12 months {itt:.4f} (without spillover "
        f"{itt_free:.4f}); complier effect {itt / first_stage:.4f} (without spillover "
        f"{itt_free / first_stage:.4f})."
    )
    return SimulatedData(
        data=frame,
        truth={"work_12m": {"all": itt}},
        description=description,
        name="integration_trial",
        term="assigned",
        groups={"all": None},
        measures={"work_12m": {"column": "work_12m", "stat": "mean"}},
        parameters={
            "seed": seed,
            "n_offices": n_offices,
            "persons_per_office": persons_per_office,
            "design": design,
            "complier_share": complier_share,
            "contamination": contamination,
            "effect": effect,
            "spillover": spillover,
            "first_stage": first_stage,
            "mean_spillover": float(np.mean(spill)),
        },
        truth_terms=truth_terms,
    )
