"""Young people, NEET status and the organisation of services, by municipality and year.

Simulator ``"integration_youth"`` for the service-integration study: persons aged 16-29
in municipalities of varied size (many small) in Norway, Sweden and Denmark, observed
once a year (person-year rows), with register covariates, their status as not in
employment, education or training (NEET), and the organisation of their municipality's
labour and welfare office. Every number is illustrative: the levels are chosen to look
like Nordic NEET shares (8-12%), not estimated from any register.

How the data are drawn
----------------------
*Municipalities* (``n_municipalities`` per country) get a size (log-normal, so most are
small), structural risk factors (``unemployment`` rate in %, ``low_education`` share of
adults with compulsory schooling only, ``centrality`` from 0 rural to 1 urban) and a
deviation ``u_m`` on the logit scale of NEET entry that no risk factor explains: each
municipality, whatever its size, gets ``+outlier_effect`` (truly above prediction) with
probability ``n_outliers / M`` and ``-outlier_effect`` (truly below) with the same
probability (``M`` municipalities in the country; ``n_outliers`` per side on average), the
others a small normal deviation (sd 0.12). ``outlier_rule="fixed"`` plants exactly
``n_outliers`` per side among the mid-size and large municipalities instead.

*Offices* (one per municipality) have an ``integration`` index in [0, 1] (higher in
central municipalities and in Denmark: context shapes the configuration), ``proactive``
follow-up (more likely in rural municipalities; in six Norwegian ``case_study``
municipalities exactly three are proactive, by lot, for randomization inference), and a
reorganisation adopted in ``reorg_year`` (2018-2021, earlier in central municipalities
and in Denmark; 0 = never, about 30%).

*Persons* are born 1987-2007 and followed from age 16 (before ``start`` too, so spells
are not censored) to 29; rows are the years ``start``-``end`` they are 16-29. NEET status
is a two-state Markov chain: a person not NEET enters with probability
``logistic(eta_in)`` (country baseline, individual risk factors, structural risk factors,
``u_m``, age, a 2020 shock); a NEET person leaves for work or education with probability

    p_exit = 0.08 + 0.5 * logistic(eta_out) + tau_R * reorganised + theta_I * integration
             + tau_P * proactive

where the last three terms are the planted effects of the organisation, *additive on the
probability scale* and larger for persons with complex needs (``high_need``):

=============================  ===============  ==============
effect on p_exit (x effect_scale)  standard needs   complex needs
=============================  ===============  ==============
reorganisation ``tau_R``              0.03             0.08
integration index ``theta_I``         0.02             0.10  (per unit of the index)
proactive follow-up ``tau_P``         0.02             0.06
=============================  ===============  ==============

``p_exit`` stays in (0.08, 0.94) for ``effect_scale <= 1.5``, so no probability is clipped
and each effect is exactly the planted number for every at-risk person-year.

Columns (``SCHEMA``)
--------------------
=========================  ========  =====================================================
column                     dtype     meaning
=========================  ========  =====================================================
person_id                  int32     person
year                       int16     calendar year (the time role)
country                    category  Norway, Sweden or Denmark
municipality               category  municipality code, e.g. ``NO07`` (unit / cluster)
municipality_size          int32     persons 16-29 of the municipality in the simulation
unemployment               float64   structural: local unemployment rate, %
low_education              float64   structural: share of adults with compulsory school only
centrality                 float64   structural: 0 rural ... 1 urban
age                        int8      age in the year (16-29)
age_group                  category  16-19, 20-24, 25-29
female                     int8      0/1
immigrant                  int8      0/1
parents_low_education      int8      0/1: neither parent beyond compulsory school
dropout                    int8      0/1: left upper secondary school without completing
health_problems            int8      0/1: health-related benefit or diagnosis
high_need                  int8      0/1: complex needs (health problems, or dropout with
                                     parents of low education)
need                       category  ``complex`` or ``standard`` (the same as high_need)
neet                       int8      0/1: NEET in the year (outcome of the case selection)
neet_prev                  int8      0/1: NEET the year before (0 at 16: in school)
exit                       int8      0/1: NEET the year before and in work or education
                                     now (a transition; meaningful where neet_prev = 1)
integration                float64   office's integration index, 0-1 (time-invariant)
proactive                  int8      0/1: proactive rather than reactive follow-up
configuration              category  office configuration: ``integrated`` (index >= 0.5)
                                     or ``coordinated``, and ``proactive`` or ``reactive``
case_study                 int8      0/1: one of six Norwegian municipalities in which
                                     proactive follow-up was assigned by lot (3 of 6)
reorg_year                 int16     year of the reorganisation (the cohort); 0 = never
reorganised                int8      0/1: reorganised by this year (the treatment)
=========================  ========  =====================================================

Truth
-----
``truth_terms[(outcome, term, group)]`` for the groups of :data:`GROUPS`:

- ``("exit", "reorganised", g)``: average effect of the reorganisation on the exit
  probability over the reorganised at-risk person-years (``neet_prev = 1``) in ``g``
  (an ATT); ``("exit", "proactive", g)``: the same for proactive offices;
  ``("exit", "integration", g)``: the average over at-risk person-years of ``theta_I`` (the
  slope of a partially linear model, whose weights, the residual variance of the index
  given the covariates, do not depend on need here).
- ``("exit", "configuration[<configuration>]", g)`` for the three configurations other
  than the reference ``coordinated, reactive``: the planted effect of the configuration
  relative to the reference *at the same integration index*, averaged over the
  configuration's at-risk person-years in ``g``: ``tau_P`` for the proactive ones, 0 for
  ``integrated, reactive`` (the index acts only through its slope ``theta_I``; crossing
  0.5 adds nothing). A model of exits on the configuration that also adjusts for the
  index (and the context the configuration depends on) estimates these; without the
  index, a configuration's coefficient mixes in ``theta_I`` times the index's difference
  between configurations, which is no planted quantity.
- ``("neet", "ratio:<code>", g)`` for each municipality in a country group or ``all``: the
  true ratio of the municipality's expected NEET person-years in the selection window
  (``select_from``-``end``) to the count structural conditions predict, i.e. the
  expected count in a world with ``u_m = 0`` and the office's organisation at its
  expectation given the context, rescaled so that the group's predicted and expected
  totals agree (as a risk model fitted with an intercept makes them). Both counts are
  exact sums of each person-year's marginal NEET probability (forward recursion of the
  Markov chain), not draws.
- ``("neet", "prior_cv", g)``: the coefficient of variation (sd / mean) of the true
  ratios of the group's municipalities, which the gamma prior's ``sd / mean`` estimates.
- ``("neet", "p_above:<code>", g)`` and ``("neet", "p_below:<code>", g)``: whether the
  municipality is truly among the ``k`` with the highest (lowest) true ratio in ``g``:
  1 or 0. Given the simulated world this probability is exact; a selection's estimated
  probability of being among the ``k`` above is judged against it (calibration).

``truth`` and ``truth_strata`` give the effect of ``reorganised`` on ``exit`` (the
simulator's ``term``) by stratum (``high_need`` x ``municipality``, with its ``country``
and ``reorg_year``) and year, so that
:meth:`~evalkit.simulate.SimulatedData.truth_where` gives it for any group defined by
those columns, and a study computes the truth of a staggered-DiD term on the estimand the
estimator reports: a group-time ATT(g,t) (the mean effect of cohort ``g``'s at-risk
person-years in year ``t``) or an event-time average over municipality-years (see
:mod:`evalkit.study.truth`).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from evalkit.core.random import resolve_seed
from evalkit.errors import DesignError
from evalkit.simulate.base import SimulatedData, register

__all__ = [
    "COUNTRIES",
    "EFFECTS",
    "GROUPS",
    "MEASURES",
    "RISK_FACTORS",
    "SCHEMA",
    "integration_youth",
]

#: Countries with their code prefix.
COUNTRIES: dict[str, str] = {"Norway": "NO", "Sweden": "SE", "Denmark": "DK"}

#: Planted effects on the exit probability: (standard needs, complex needs).
EFFECTS: dict[str, tuple[float, float]] = {
    "reorganised": (0.03, 0.08),
    "integration": (0.02, 0.10),
    "proactive": (0.02, 0.06),
}

#: The risk factors NEET entry depends on: individual register covariates, then the
#: municipality's structural factors (the covariates of a case-selection risk model).
RISK_FACTORS: tuple[str, ...] = (
    "age_group",
    "female",
    "immigrant",
    "parents_low_education",
    "dropout",
    "health_problems",
    "unemployment",
    "low_education",
    "centrality",
)

#: Subgroups as DuckDB SQL predicates over the data (None: everyone).
GROUPS: dict[str, str | None] = {
    "all": None,
    "norway": "country = 'Norway'",
    "sweden": "country = 'Sweden'",
    "denmark": "country = 'Denmark'",
    "at_risk": "neet_prev = 1",
    "at_risk_complex": "neet_prev = 1 AND high_need = 1",
    "at_risk_standard": "neet_prev = 1 AND high_need = 0",
    "at_risk_norway": "neet_prev = 1 AND country = 'Norway'",
    "at_risk_sweden": "neet_prev = 1 AND country = 'Sweden'",
    "at_risk_denmark": "neet_prev = 1 AND country = 'Denmark'",
    "case_studies_at_risk": "case_study = 1 AND neet_prev = 1",
}

#: What each outcome's truth refers to.
MEASURES: dict[str, dict[str, str]] = {
    "neet": {"column": "neet", "stat": "mean"},
    "exit": {"column": "exit", "stat": "mean", "where": "neet_prev = 1"},
}

SCHEMA: dict[str, str] = {
    "person_id": "int32",
    "year": "int16",
    "country": "category",
    "municipality": "category",
    "municipality_size": "int32",
    "unemployment": "float64",
    "low_education": "float64",
    "centrality": "float64",
    "age": "int8",
    "age_group": "category",
    "female": "int8",
    "immigrant": "int8",
    "parents_low_education": "int8",
    "dropout": "int8",
    "health_problems": "int8",
    "high_need": "int8",
    "need": "category",
    "neet": "int8",
    "neet_prev": "int8",
    "exit": "int8",
    "integration": "float64",
    "proactive": "int8",
    "configuration": "category",
    "case_study": "int8",
    "reorg_year": "int16",
    "reorganised": "int8",
}

# Country baselines: logit of NEET entry, logit of the exit base, mean unemployment (%),
# shift of the integration index, earlier reorganisation (all illustrative).
_COUNTRY = {
    "Norway": (-3.55, 0.35, 3.5, 0.00, 0.0),
    "Sweden": (-3.60, 0.10, 7.5, -0.05, 0.0),
    "Denmark": (-3.55, 0.25, 5.0, 0.10, 0.6),
}
_REORG_YEARS = (2018, 2019, 2020, 2021)
_NEVER = 0.30  # share of municipalities that never reorganise
_INTEGRATION_SD = 0.15
_U_SD = 0.12
_MIN_SIZE = 15
_FIRST_BIRTH, _LAST_BIRTH = 1987, 2007
_AGE_MIN, _AGE_MAX = 16, 29
_AGE_GROUPS = ("16-19", "20-24", "25-29")
#: Office configurations: integration index below / from 0.5, reactive / proactive.
_CONFIGURATIONS = (
    "coordinated, reactive",
    "coordinated, proactive",
    "integrated, reactive",
    "integrated, proactive",
)


def _check(value: Any, option: str, *, low: float, high: float = np.inf, integer: bool = False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value) == int(value)
    if not ok or not low <= float(value) <= high:
        kind = "a whole number" if integer else "a number"
        span = f">= {low}" if high == np.inf else f"in [{low}, {high}]"
        raise DesignError(
            f"{option} must be {kind} {span}, got {value!r}",
            hint=f"e.g. {option}={int(low) + 1 if integer else low}",
            column=option,
        )
    return int(value) if integer else float(value)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _clipped_normal_mean(mu: np.ndarray, sd: float) -> np.ndarray:
    """E[min(max(X, 0), 1)] for X ~ N(mu, sd^2): E[X+] - E[(X - 1)+]."""
    from scipy import stats

    def plus(a: np.ndarray) -> np.ndarray:  # E[(X - a)+]
        z = (mu - a) / sd
        return (mu - a) * stats.norm.cdf(z) + sd * stats.norm.pdf(z)

    return plus(np.zeros_like(mu)) - plus(np.ones_like(mu))


def _municipalities(
    rng: np.random.Generator, counts: tuple[int, int, int], n_outliers: int, outlier: float
) -> pd.DataFrame:
    """Draw the municipalities, their structural risk factors, deviation and organisation."""
    rows = []
    for (country, prefix), n_m in zip(COUNTRIES.items(), counts, strict=True):
        _, _, unemp, shift, early = _COUNTRY[country]
        log_size = np.clip(rng.normal(0.0, 1.0, n_m), -2.0, 2.5)
        centrality = np.clip(
            0.5 + 0.25 * (log_size - log_size.mean()) + rng.normal(0, 0.15, n_m), 0, 1
        )
        for j in range(n_m):
            rows.append(
                {
                    "country": country,
                    "municipality": f"{prefix}{j + 1:02d}",
                    "weight": float(np.exp(log_size[j])),
                    "unemployment": float(max(1.0, unemp + rng.normal(0.0, 1.0))),
                    "low_education": float(np.clip(0.25 + rng.normal(0.0, 0.05), 0.08, 0.5)),
                    "centrality": float(centrality[j]),
                    "shift": shift,
                    "early": early,
                }
            )
    m = pd.DataFrame(rows)
    return m


def _plant(
    rng: np.random.Generator, idx: np.ndarray, size: np.ndarray, n: int, rule: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pick one country's outliers above and below (positions in ``idx``).

    ``"random"``: each municipality, whatever its size, is above with probability
    ``n / M`` and below with probability ``n / M`` (one uniform draw each), so ``n`` per
    side are expected and the municipalities are exchangeable. ``"fixed"``: exactly ``n``
    on each side, drawn among the mid-size and large (between the 40% and 90% size
    quantiles).
    """
    if rule == "random":
        draw = rng.random(len(idx))
        q = n / len(idx)
        return idx[draw < q], idx[draw > 1 - q]
    lo, hi = np.quantile(size, [0.4, 0.9])  # mid-size and large, not the largest
    big = idx[(size >= lo) & (size <= hi)]
    chosen = rng.choice(big, size=2 * n, replace=False)
    return chosen[:n], chosen[n:]


@register("integration_youth", schema=SCHEMA)
def integration_youth(
    seed: int | None = 20240613,
    n_persons: int = 40_000,
    *,
    n_municipalities: tuple[int, int, int] | list[int] = (40, 30, 20),
    start: int = 2016,
    end: int = 2023,
    select_from: int = 2021,
    k: int = 3,
    n_outliers: int = 3,
    outlier_effect: float = 0.6,
    outlier_rule: str = "random",
    effect_scale: float = 1.0,
) -> SimulatedData:
    """Simulate person-year register data on young people, NEET status and office organisation.

    Parameters
    ----------
    seed
        Seed of every random draw; None draws fresh entropy (recorded).
    n_persons
        Persons born 1987-2007, placed in municipalities by size; each is in the data
        for the years ``start``-``end`` in which they are 16-29 (about 5.3 rows each).
    n_municipalities
        Municipalities in Norway, Sweden and Denmark.
    start, end
        First and last year of the data (2016-2023 by default; the reorganisations
        happen in 2018-2021).
    select_from
        First year of the case selection's window (to ``end``): the truth of the
        municipality ratios refers to these years. A selection that fits its risk model
        on earlier years and predicts these (``holdout_from`` of
        :class:`evalkit.selection.ObservedExpected`) should use the same year.
    k
        Size of the true top and bottom sets (``p_above`` / ``p_below`` truths).
    n_outliers
        Planted outliers above and below prediction per country: the expected number
        per side (``outlier_rule="random"``) or the exact number (``"fixed"``).
    outlier_effect
        Their deviation on the logit of NEET entry (and half of it, reversed, on exit).
    outlier_rule
        How outliers are planted. ``"random"`` (default): each municipality, whatever
        its size, is an outlier above with probability ``n_outliers / M`` and below
        with the same probability (``M`` municipalities in the country), so the
        municipalities are exchangeable, as an empirical-Bayes prior assumes, and a
        country has ``n_outliers`` per side on average (possibly none). ``"fixed"``:
        exactly ``n_outliers`` on each side, drawn among the mid-size and large
        municipalities (between the 40% and 90% size quantiles), the rule before
        issue 13's calibration study.
    effect_scale
        Multiplies the planted effects of the organisation (0 to 1.5).

    Returns
    -------
    SimulatedData
        Person-year rows with the columns of :data:`SCHEMA`; the truths described in
        the module docstring; ``parameters`` also hold ``outliers`` (the planted
        municipalities above and below, by country).

    Examples
    --------
    >>> sim = integration_youth(seed=2, n_persons=3000)
    >>> sim.data["country"].cat.categories.tolist()
    ['Denmark', 'Norway', 'Sweden']
    >>> bool(sim.data.groupby("person_id")["age"].agg(lambda a: a.between(16, 29).all()).all())
    True
    >>> t = sim.truth_terms
    >>> round(t[("exit", "reorganised", "at_risk_complex")], 12)
    0.08
    >>> above = [term for (o, term, g), v in t.items() if g == "norway" and v == 1.0]
    >>> len([term for term in above if term.startswith("p_above")])
    3
    >>> integration_youth(seed=2, n_persons=3000).data.equals(sim.data)
    True
    """
    used_seed = resolve_seed(seed)
    n_persons = _check(n_persons, "n_persons", low=200, integer=True)
    if isinstance(n_municipalities, str) or len(n_municipalities) != 3:
        raise DesignError(
            f"n_municipalities must be three counts (Norway, Sweden, Denmark), got "
            f"{n_municipalities!r}",
            hint="e.g. n_municipalities=[40, 30, 20]",
            column="n_municipalities",
        )
    n_outliers = _check(n_outliers, "n_outliers", low=0, high=5, integer=True)
    counts = tuple(
        _check(c, "n_municipalities", low=max(8, 4 * n_outliers + 2), integer=True)
        for c in n_municipalities
    )
    start = _check(start, "start", low=2005, high=2030, integer=True)
    end = _check(end, "end", low=start + 2, high=2035, integer=True)
    select_from = _check(select_from, "select_from", low=start + 1, high=end, integer=True)
    k = _check(k, "k", low=1, high=min(counts) // 2, integer=True)
    outlier_effect = _check(outlier_effect, "outlier_effect", low=0, high=3)
    if outlier_rule not in ("random", "fixed"):
        raise DesignError(
            f"outlier_rule must be 'random' or 'fixed', got {outlier_rule!r}",
            hint="outlier_rule='random' (exchangeable, the default) or 'fixed'",
            column="outlier_rule",
        )
    effect_scale = _check(effect_scale, "effect_scale", low=0, high=1.5)
    rng = np.random.default_rng(used_seed)

    # ---- municipalities: size, structure, deviation, organisation
    m = _municipalities(rng, counts, n_outliers, outlier_effect)
    n_m = len(m)
    share = m["weight"].to_numpy() / m["weight"].sum()
    # every municipality has at least _MIN_SIZE persons, the rest are placed by size
    floor = min(_MIN_SIZE, n_persons // n_m)
    muni = np.concatenate(
        [np.repeat(np.arange(n_m), floor), rng.choice(n_m, size=n_persons - floor * n_m, p=share)]
    )
    size = np.bincount(muni, minlength=n_m)
    m["size"] = size
    u = rng.normal(0.0, _U_SD, n_m)
    outliers: dict[str, dict[str, list[str]]] = {}
    for country in COUNTRIES:
        idx = np.flatnonzero(m["country"].to_numpy() == country)
        up, down = _plant(rng, idx, size[idx], n_outliers, outlier_rule)
        u[up], u[down] = outlier_effect, -outlier_effect
        outliers[country] = {
            "above": sorted(m["municipality"].iloc[up]),
            "below": sorted(m["municipality"].iloc[down]),
        }
    central = m["centrality"].to_numpy()
    mu_int = 0.45 + 0.25 * (central - 0.5) + m["shift"].to_numpy()
    integration = np.clip(mu_int + rng.normal(0.0, _INTEGRATION_SD, n_m), 0.0, 1.0)
    p_pro = _logistic(0.8 - 1.6 * central)
    proactive = (rng.random(n_m) < p_pro).astype(np.int8)
    case_study = np.zeros(n_m, np.int8)
    norway = np.flatnonzero(m["country"].to_numpy() == "Norway")
    mid = norway[(size[norway] >= np.quantile(size[norway], 0.3))]
    cases = rng.choice(mid, size=6, replace=False)
    case_study[cases] = 1
    proactive[cases] = 0
    proactive[rng.choice(cases, size=3, replace=False)] = 1
    p_pro = np.where(case_study == 1, 0.5, p_pro)
    # reorganisation year: never with probability _NEVER, else earlier when central / early
    slope = 1.6 * central - 0.8 + m["early"].to_numpy()
    w = np.exp(np.outer(slope, -np.arange(len(_REORG_YEARS))))
    p_year = (1 - _NEVER) * w / w.sum(axis=1, keepdims=True)
    draw = rng.random(n_m)
    cum = np.cumsum(p_year, axis=1)
    j = (draw[:, None] >= cum).sum(axis=1)
    reorg_year = np.where(j < len(_REORG_YEARS), np.array([*_REORG_YEARS, 0])[j], 0)
    reorg_year = reorg_year.astype(np.int16)

    # ---- persons
    birth = rng.integers(_FIRST_BIRTH, _LAST_BIRTH + 1, n_persons)
    female = rng.random(n_persons) < 0.49
    immigrant = rng.random(n_persons) < 0.08 + 0.15 * central[muni]
    low_ed = m["low_education"].to_numpy()[muni]
    parents_low = rng.random(n_persons) < np.clip(low_ed + 0.10 * immigrant, 0, 1)
    dropout = rng.random(n_persons) < _logistic(
        -1.8 + 0.9 * parents_low + 0.4 * immigrant - 0.3 * female
    )
    health = rng.random(n_persons) < 0.10 + 0.06 * dropout
    high_need = health | (dropout & parents_low)
    country_code = m["country"].map({c: i for i, c in enumerate(COUNTRIES)}).to_numpy()[muni]
    base_in = np.array([v[0] for v in _COUNTRY.values()])[country_code]
    base_out = np.array([v[1] for v in _COUNTRY.values()])[country_code]
    unemp_c = np.array([v[2] for v in _COUNTRY.values()])[country_code]
    unemp = m["unemployment"].to_numpy()[muni]
    structural_in = (
        0.10 * (unemp - unemp_c) + 0.04 * unemp_c + 2.0 * (low_ed - 0.25) - 0.3 * central[muni]
    )
    person_in = (
        base_in
        + structural_in
        + 0.4 * immigrant
        + 0.4 * parents_low
        + 0.9 * dropout
        + 1.0 * health
        - 0.1 * female
    )
    person_out = (
        base_out
        - 0.06 * (unemp - 5.0)
        - 0.6 * dropout
        - 0.8 * health
        - 0.3 * immigrant
        + 0.2 * female
    )
    need = high_need.astype(int)
    eff = {k_: effect_scale * np.asarray(v)[need] for k_, v in EFFECTS.items()}

    # ---- the chain, calendar year by calendar year, in three worlds:
    # drawn (actual), marginal probability (actual), marginal probability (structural)
    first_year = _FIRST_BIRTH + _AGE_MIN
    years = np.arange(first_year, end + 1)
    n_y = len(years)
    state = np.zeros(n_persons, bool)
    q_act = np.zeros(n_persons)
    q_str = np.zeros(n_persons)
    obs_years = np.arange(start, end + 1)
    n_obs = len(obs_years)
    neet = np.zeros((n_obs, n_persons), np.int8)
    prev = np.zeros((n_obs, n_persons), np.int8)
    q_window = np.zeros((2, n_persons))  # sums of marginal probabilities in the window
    p_exit_obs = np.zeros((n_obs, n_persons))
    u_p = u[muni]
    int_p = integration[muni]
    int_str = _clipped_normal_mean(mu_int, _INTEGRATION_SD)[muni]
    pro_p = proactive[muni].astype(float)
    pro_str = p_pro[muni]
    reorg_p = reorg_year[muni]
    reorg_cum = np.cumsum(p_year, axis=1)  # P(reorganised by _REORG_YEARS[j])
    for t in range(n_y):
        year = years[t]
        age = year - birth
        alive = (age >= _AGE_MIN) & (age <= _AGE_MAX)
        starting = age == _AGE_MIN
        age_in = np.where(age <= 18, -0.6, np.where(age <= 24, 0.2, 0.0))
        shock = 0.3 if year == 2020 else 0.0
        eta_in = person_in + age_in + shock
        p_in_act = _logistic(eta_in + u_p)
        p_in_str = _logistic(eta_in)
        base = 0.08 + 0.5 * _logistic(person_out + 0.3 * (age <= 19) - 0.5 * u_p)
        base_str = 0.08 + 0.5 * _logistic(person_out + 0.3 * (age <= 19))
        reorganised = (reorg_p > 0) & (year >= reorg_p)
        k_year = np.searchsorted(_REORG_YEARS, year, side="right")
        p_reorg_str = reorg_cum[:, k_year - 1][muni] if k_year > 0 else np.zeros(n_persons)
        p_out_act = (
            base
            + eff["reorganised"] * reorganised
            + eff["integration"] * int_p
            + eff["proactive"] * pro_p
        )
        p_out_str = (
            base_str
            + eff["reorganised"] * p_reorg_str
            + eff["integration"] * int_str
            + eff["proactive"] * pro_str
        )
        was = state.copy()
        draw_in = rng.random(n_persons)
        draw_out = rng.random(n_persons)
        new_state = np.where(was, draw_out >= p_out_act, draw_in < p_in_act)
        new_state = np.where(starting, draw_in < p_in_act, new_state)
        new_q_act = q_act * (1 - p_out_act) + (1 - q_act) * p_in_act
        new_q_str = q_str * (1 - p_out_str) + (1 - q_str) * p_in_str
        new_q_act = np.where(starting, p_in_act, new_q_act)
        new_q_str = np.where(starting, p_in_str, new_q_str)
        state = np.where(alive, new_state, False)
        q_act = np.where(alive, new_q_act, 0.0)
        q_str = np.where(alive, new_q_str, 0.0)
        if year >= start:
            i = year - start
            neet[i] = state
            prev[i] = np.where(starting, False, was) & alive
            p_exit_obs[i] = p_out_act
            if year >= select_from:
                q_window[0] += q_act
                q_window[1] += q_str

    # ---- the frame
    ages = obs_years[:, None] - birth[None, :]
    keep = (ages >= _AGE_MIN) & (ages <= _AGE_MAX)  # (year, person)
    yy, pp = np.nonzero(keep)  # year index, person index
    order = np.lexsort((yy, pp))
    yy, pp = yy[order], pp[order]
    mm = muni[pp]
    age_v = ages[yy, pp]
    codes = m["municipality"].to_numpy()
    frame = pd.DataFrame(
        {
            "person_id": pp.astype(np.int32),
            "year": obs_years[yy].astype(np.int16),
            "country": pd.Categorical(m["country"].to_numpy()[mm], categories=sorted(COUNTRIES)),
            "municipality": pd.Categorical(codes[mm], categories=list(codes)),
            "municipality_size": size[mm].astype(np.int32),
            "unemployment": m["unemployment"].to_numpy()[mm].round(2),
            "low_education": m["low_education"].to_numpy()[mm].round(3),
            "centrality": central[mm].round(3),
            "age": age_v.astype(np.int8),
            "age_group": pd.Categorical.from_codes(
                np.where(age_v <= 19, 0, np.where(age_v <= 24, 1, 2)), categories=_AGE_GROUPS
            ),
            "female": female[pp].astype(np.int8),
            "immigrant": immigrant[pp].astype(np.int8),
            "parents_low_education": parents_low[pp].astype(np.int8),
            "dropout": dropout[pp].astype(np.int8),
            "health_problems": health[pp].astype(np.int8),
            "high_need": high_need[pp].astype(np.int8),
            "need": pd.Categorical.from_codes(need[pp], categories=["standard", "complex"]),
            "neet": neet[yy, pp],
            "neet_prev": prev[yy, pp],
        }
    )
    frame["exit"] = ((frame["neet_prev"] == 1) & (frame["neet"] == 0)).astype(np.int8)
    frame["integration"] = integration[mm].round(4)
    frame["proactive"] = proactive[mm].astype(np.int8)
    config = 2 * (integration[mm] >= 0.5) + proactive[mm]
    frame["configuration"] = pd.Categorical.from_codes(config, categories=_CONFIGURATIONS)
    frame["case_study"] = case_study[mm]
    frame["reorg_year"] = reorg_year[mm]
    frame["reorganised"] = (
        (frame["reorg_year"] > 0) & (frame["year"] >= frame["reorg_year"])
    ).astype(np.int8)
    p_exit = p_exit_obs[yy, pp]

    masks = _group_masks(frame)
    terms, truth, strata = _truths(frame, masks, eff, yy, pp, p_exit)
    terms.update(_selection_truths(m, muni, q_window, masks, k))
    parameters = {
        "seed": used_seed,
        "n_persons": n_persons,
        "n_municipalities": list(counts),
        "start": start,
        "end": end,
        "select_from": select_from,
        "k": k,
        "n_outliers": n_outliers,
        "outlier_effect": outlier_effect,
        "outlier_rule": outlier_rule,
        "effect_scale": effect_scale,
        "outliers": outliers,
    }
    return SimulatedData(
        data=frame,
        truth=truth,
        description=_describe(parameters, len(frame)),
        name="integration_youth",
        term="reorganised",
        groups=GROUPS,
        measures=MEASURES,
        parameters=parameters,
        truth_strata=strata,
        truth_terms=terms,
    )


def _group_masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean row masks of :data:`GROUPS` (the same conditions, evaluated in pandas)."""
    risk = frame["neet_prev"].to_numpy() == 1
    need = frame["high_need"].to_numpy() == 1
    country = frame["country"].to_numpy()
    out = {"all": np.ones(len(frame), bool), "at_risk": risk}
    out["at_risk_complex"] = risk & need
    out["at_risk_standard"] = risk & ~need
    for c in COUNTRIES:
        out[c.lower()] = country == c
        out[f"at_risk_{c.lower()}"] = risk & (country == c)
    out["case_studies_at_risk"] = risk & (frame["case_study"].to_numpy() == 1)
    return out


def _truths(
    frame: pd.DataFrame,
    masks: dict[str, np.ndarray],
    eff: dict[str, np.ndarray],
    yy: np.ndarray,
    pp: np.ndarray,
    p_exit: np.ndarray,
) -> tuple[dict[tuple[str, str, str], float], dict[str, dict[str, float]], pd.DataFrame]:
    """Exact effects of the organisation on the exit probability of at-risk person-years."""
    risk = frame["neet_prev"].to_numpy() == 1
    per_row = {k_: v[pp] for k_, v in eff.items()}
    treated = {
        "reorganised": frame["reorganised"].to_numpy() == 1,
        "proactive": frame["proactive"].to_numpy() == 1,
        "integration": np.ones(len(frame), bool),  # a slope: every at-risk row counts
    }
    terms: dict[tuple[str, str, str], float] = {}
    truth: dict[str, dict[str, float]] = {"exit": {}}
    for group, mask in masks.items():
        for term, on in treated.items():
            rows = mask & risk & on
            if rows.any():
                value = float(per_row[term][rows].mean())
                terms[("exit", term, group)] = value
                if term == "reorganised":
                    truth["exit"][group] = value
    # office configurations, relative to the reference (coordinated, reactive) at the same
    # integration index: the planted effect of proactive follow-up, and none for crossing
    # the index's threshold of 0.5 (the index acts only through its slope)
    config = frame["configuration"].to_numpy()
    for group, mask in masks.items():
        for name in _CONFIGURATIONS[1:]:
            rows = mask & risk & (config == name)
            if rows.any():
                value = float(per_row["proactive"][rows].mean()) if "proactive" in name else 0.0
                terms[("exit", f"configuration[{name}]", group)] = value
    # strata: high_need x municipality (with its country and adoption year) x year, with
    # and without the reorganisation; the municipality and its cohort let a truth be
    # computed for a cohort x year cell or a municipality-year cell (staggered DiD)
    rows = risk & treated["reorganised"]
    keys = ["high_need", "country", "municipality", "reorg_year", "year"]
    sub = frame.loc[rows, keys].copy()
    sub["p1"] = p_exit[rows]
    sub["p0"] = p_exit[rows] - per_row["reorganised"][rows]
    grouped = sub.groupby(keys, observed=True, sort=True)
    strata = grouped.agg(n1=("p1", "size"), sum1=("p1", "sum"), sum0=("p0", "sum")).reset_index()
    strata["n0"] = strata["n1"]
    strata.insert(0, "outcome", "exit")
    strata = strata.rename(columns={"year": "period"})
    for column in ("country", "municipality"):
        strata[column] = strata[column].astype(str)
    strata = strata[["outcome", "period", *keys[:-1], "n1", "sum1", "n0", "sum0"]]
    types = {"n1": "int64", "n0": "int64", "high_need": "int8", "reorg_year": "int16"}
    return terms, truth, strata.astype(types)


def _selection_truths(
    m: pd.DataFrame,
    muni: np.ndarray,
    q_window: np.ndarray,
    masks: dict[str, np.ndarray],
    k: int,
) -> dict[tuple[str, str, str], float]:
    """Return the true ratio and top/bottom-k membership of each municipality, by group."""
    n_m = len(m)
    expected = np.bincount(muni, weights=q_window[0], minlength=n_m)
    structural = np.bincount(muni, weights=q_window[1], minlength=n_m)
    codes = m["municipality"].to_numpy()
    country = m["country"].to_numpy()
    terms: dict[tuple[str, str, str], float] = {}
    groups = {"all": np.ones(n_m, bool)} | {c.lower(): country == c for c in COUNTRIES}
    for group, chosen in groups.items():
        idx = np.flatnonzero(chosen & (structural > 0))
        scale = expected[idx].sum() / structural[idx].sum()
        ratio = expected[idx] / (scale * structural[idx])
        order = np.argsort(ratio, kind="stable")
        top, bottom = set(order[-k:]), set(order[:k])
        terms[("neet", "prior_cv", group)] = float(ratio.std() / ratio.mean())
        for pos, i in enumerate(idx):
            terms[("neet", f"ratio:{codes[i]}", group)] = float(ratio[pos])
            terms[("neet", f"p_above:{codes[i]}", group)] = float(pos in top)
            terms[("neet", f"p_below:{codes[i]}", group)] = float(pos in bottom)
    del masks  # the groups of municipalities are whole countries
    return terms


def _planted(p: dict[str, Any]) -> str:
    if p["outlier_rule"] == "fixed":
        return (
            f"{p['n_outliers']} municipalities are planted above and {p['n_outliers']} below "
            "what their structure predicts"
        )
    return (
        "each municipality, whatever its size, is planted above (and as likely below) what "
        f"its structure predicts with probability {p['n_outliers']}/M (M municipalities in "
        "the country)"
    )


def _describe(p: dict[str, Any], n_rows: int) -> str:
    eff = "; ".join(
        f"{k_} {v[0] * p['effect_scale']:+.2f} (standard needs) / "
        f"{v[1] * p['effect_scale']:+.2f} (complex needs)"
        for k_, v in EFFECTS.items()
    )
    return (
        f"Simulated person-year register data (simulator 'integration_youth', seed "
        f"{p['seed']}): {p['n_persons']} persons aged 16-29 in "
        f"{sum(p['n_municipalities'])} municipalities of Norway, Sweden and Denmark "
        f"({', '.join(map(str, p['n_municipalities']))}), {p['start']}-{p['end']}, "
        f"{n_rows} person-years. NEET status follows a two-state Markov chain whose entry "
        "depends on individual and structural risk factors; in each country "
        + _planted(p)
        + f" (logit deviation {p['outlier_effect']:g}). Planted "
        f"effects of the office's organisation on the probability of leaving NEET for work "
        f"or education: {eff}. Reorganisations are adopted 2018-2021 depending on context. "
        "The true values are exact: effects are additive on the probability scale, and the "
        "municipality ratios are sums of each person-year's marginal NEET probability."
    )
