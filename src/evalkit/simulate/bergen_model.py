"""The person-level model behind :func:`evalkit.simulate.bergen_rates`, one block at a time.

Every number in this module is illustrative: chosen to give a low-income population
that looks plausible for Norwegian cities around 2020, not estimated from any register.

The model (see the docstring of :mod:`evalkit.simulate.bergen` for the whole design):

- **Grids** (:func:`make_grids`, drawn once per seed): for each month, household
  group and city the probability of receiving social assistance, of working and of
  taking part in a labour-market measure or education, each *additive* in a group
  baseline, a city effect, a common trend and season, a city AR(1) shock and the
  COVID-19 term ``beta_group x (city unemployment - its level before COVID-19)``; the
  city's registered unemployment jumps in March 2020 by a city-specific amount and
  recovers at a city-specific speed.
- **Persons** (:func:`simulate_block`): a block of candidates is drawn and their receipt
  simulated; the persons who received assistance at some time from two years before
  the reform to the end of the data are kept (the study population: the stock of
  recent recipients plus the inflow). Work and measures are thresholds of latents
  correlated with the receipt latent (a Gaussian copula with a person component and an
  AR(1) component), so the share of a cell equals its probability in expectation.
- **Potential outcomes**: receipt and work do not depend on the reform at all (the
  same draws give the same values in both worlds), so the effects on work, receipt
  and duration are exactly zero for every person-month, and every measure that
  conditions on receipt counts the same rows in both worlds. In Bergen after the
  reform the threshold of measures/education is lower for the three groups (the same
  latent gives both potential outcomes), earnings among those who work are lower
  (fewer hours), and the benefit paid per recipient is higher (higher rates, and
  families keep the child benefit). Each person-month's effect is the difference of
  its two potential outcomes, stored exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "BLOCK",
    "Grids",
    "make_grids",
    "simulate_block",
]

#: Persons per block: the unit that carries its own random stream (child ``b`` of the
#: seed's block sequence), so the data do not depend on how blocks are grouped in chunks.
BLOCK = 4096

# Candidates drawn at a time for a block: about 69% of candidates are in the study
# population over 2017-2022 (more are drawn when a block needs them).
CANDIDATES = 6144
N_CITIES = 10
# Residents in thousands, 1 January 2020, rounded (Statistics Norway, table 07459); used
# only as the probabilities with which simulated persons are placed in cities.
POPULATION = np.array([284, 693, 205, 144, 112, 101, 83, 77, 80, 57], dtype=float)
# Share of non-Western immigrants among candidates, by city (illustrative).
NON_WESTERN = np.array([0.30, 0.45, 0.25, 0.30, 0.30, 0.45, 0.30, 0.20, 0.28, 0.35])
# Share of candidates in families with children: natives and Western, non-Western.
FAMILY_SHARE = (0.28, 0.45)
# Registered unemployment before COVID-19 (percent) and the COVID-19 shock: the jump is
# PEAK_UNEMPLOYMENT x intensity, decaying with a city-specific half-life in months
# (illustrative; Bergen is a little harder hit than the nine cities' average).
UNEMPLOYMENT = np.array([2.4, 3.0, 2.3, 2.8, 2.7, 3.2, 3.3, 2.0, 2.6, 3.4])
COVID_INTENSITY = np.array([1.10, 1.25, 0.90, 1.15, 0.95, 1.00, 0.90, 0.85, 1.10, 0.95])
COVID_HALF_LIFE = np.array([7.0, 10.0, 6.0, 9.0, 7.0, 8.0, 7.0, 5.0, 9.0, 8.0])
PEAK_UNEMPLOYMENT = 7.0

# Groups are coded g = family_with_children + 2 * non_western.
BASE = {  # probabilities by group before city effects
    "recipient": np.array([0.15, 0.13, 0.24, 0.28]),
    "work": np.array([0.45, 0.52, 0.32, 0.27]),
    "measure": np.array([0.09, 0.07, 0.15, 0.13]),
}
# COVID-19: change of each probability per percentage point of unemployment above the
# city's level before COVID-19, by group (non-Western immigrants are hit harder).
COVID_BETA = {
    "recipient": np.array([0.003, 0.003, 0.005, 0.005]),
    "work": np.array([-0.010, -0.010, -0.016, -0.016]),
    "measure": np.array([-0.003, -0.003, -0.004, -0.004]),
}
TREND = {"recipient": -0.003, "work": 0.006, "measure": 0.0}  # per year
SEASON = {  # by calendar month, January first
    "recipient": np.array([6, 5, 3, 0, -2, -4, -6, -4, -1, 0, 1, 2]) / 1000,
    "work": np.array([-15, -10, -5, 0, 5, 15, 20, 15, 5, 0, -5, -20]) / 1000,
    "measure": np.array([0, 5, 5, 5, 0, -10, -25, -15, 5, 10, 10, 5]) / 1000,
}
CITY_SD = {"recipient": 0.02, "work": 0.03, "measure": 0.012}
SHOCK_SD = {"recipient": 0.004, "work": 0.006, "measure": 0.003}
SHOCK_AR = 0.6
# Latents: share of variance from a person component, AR(1) coefficient of the rest;
# loading of the work and measure latents on the receipt latent.
PERSON_SHARE = {"recipient": 0.5, "work": 0.5, "measure": 0.3}
AR = {"recipient": 0.85, "work": 0.8, "measure": 0.8}
LINK = {"work": 0.5, "measure": 0.4}
P_RANGE = (0.005, 0.995)
WINDOW = 12  # months_on_assistance counts receipt in the last WINDOW months
# Earnings of those who work (NOK per month): a person's monthly wage (log-normal around
# the group's median), month-to-month variation in hours, wage growth per year, and
# fewer hours when unemployment is high.
WAGE = np.array([21000.0, 23000.0, 17000.0, 18000.0])
WAGE_SD, HOURS_SD, WAGE_GROWTH, HOURS_PER_POINT = 0.35, 0.25, 0.03, 0.012
# Social assistance paid to a recipient (NOK per month): the guideline amount for the
# household type times a person factor (household size, housing costs), halved for
# those who work; families' child benefit is deducted as income (the national practice)
# except in Bergen after the reform. Guideline amounts rise by RATE_GROWTH a year.
RATE = np.array([7000.0, 13000.0, 7000.0, 13000.0])
RATE_SD, RATE_GROWTH, MIN_BENEFIT = 0.2, 0.025, 300.0
CHILD_BENEFIT = np.array([0.0, 1800.0, 0.0, 1800.0])

#: Planted effects of the first increase (March 2020) in Bergen, by group code; from the
#: second increase (March 2021) they are ``second_increase`` times as large.
#: ``measure``: change of the probability of taking part in a measure or education;
#: ``earnings``: relative change of earnings of those who work; ``rate``: relative
#: increase of the social-assistance rates (every group); families also keep the child
#: benefit from the first increase on.
EFFECTS: dict[str, np.ndarray] = {
    "measure": np.array([0.0, -0.012, -0.015, -0.030]),
    "earnings": np.array([0.0, -0.06, -0.07, -0.15]),
    "rate": np.array([0.05, 0.05, 0.05, 0.05]),
}


@dataclass(frozen=True)
class Grids:
    """Everything shared by the blocks of one simulation (picklable, a few kB).

    Months are indexed ``0 .. n_t - 1`` from the first burn-in month; the data keep
    ``burn_in ..``. ``thr[k]`` are normal quantiles of the probabilities, shape
    ``(4 * N_CITIES, n_t)`` indexed by ``group * N_CITIES + city``; ``earnings_level``
    is (city, month) and ``earnings_reform`` (group, month).
    """

    n_t: int
    burn_in: int
    reform: int  # index of the reform month
    window: tuple[int, int]  # months whose receipt puts a person in the population
    thr: dict[str, np.ndarray]
    thr_measure_reform: np.ndarray  # measure threshold with the reform (Bergen rows)
    earnings_level: np.ndarray  # (N_CITIES, n_t) multiplier of a person's wage
    earnings_reform: np.ndarray  # (4, n_t) multiplier with the reform (Bergen)
    rate_level: np.ndarray  # (n_t,) guideline growth
    rate_reform: np.ndarray  # (n_t,) Bergen's rate multiplier with the reform
    child_kept: np.ndarray  # (n_t,) share of child benefit kept with the reform
    unemployment: np.ndarray  # (n_t, N_CITIES) percent


def _quantile(p: np.ndarray) -> np.ndarray:
    """Return standard normal quantiles of a (small) array, without importing SciPy.

    Examples
    --------
    >>> _quantile(np.array([0.5, 0.975])).round(6).tolist()
    [0.0, 1.959964]
    """
    inv = np.frompyfunc(NormalDist().inv_cdf, 1, 1)
    return inv(p).astype(float)


def _cells(q: np.ndarray) -> np.ndarray:
    """(n_t, group, city) -> (group * N_CITIES + city, n_t), float32, contiguous."""
    n_t = q.shape[0]
    return np.ascontiguousarray(q.reshape(n_t, -1).T, dtype=np.float32)


def covid_shape(n_t: int, start: int, half_life: np.ndarray) -> np.ndarray:
    """Return the COVID-19 unemployment shape, (n_t, cities): 0 before, 1 at the peak.

    The first month is at 0.6 of the peak (the shock came mid-March), the peak is the
    month after, then it decays with the city's half-life.

    Examples
    --------
    >>> s = covid_shape(6, 2, np.array([1.0]))
    >>> s[:, 0].round(3).tolist()
    [0.0, 0.0, 0.6, 1.0, 0.5, 0.25]
    """
    k = np.arange(n_t)[:, None] - start
    decay = np.exp2(-np.maximum(k - 1, 0) / half_life[None, :])
    return np.where(k < 0, 0.0, np.where(k == 0, 0.6, decay))


def make_grids(
    rng: np.random.Generator,
    *,
    n_t: int,
    burn_in: int,
    reform: int,
    second: int,
    covid: int,
    month_of_year: np.ndarray,
    years: np.ndarray,
    effect_scale: float,
    second_increase: float,
    city_noise: float,
) -> Grids:
    """Draw the city effects and shocks and build the probability grids (once per seed)."""
    n_c = N_CITIES
    shape = covid_shape(n_t, covid, COVID_HALF_LIFE)
    covid_points = PEAK_UNEMPLOYMENT * COVID_INTENSITY[None, :] * shape  # (n_t, n_c)
    phase = np.where(np.arange(n_t) >= second, second_increase, 0.0)
    phase = np.where((np.arange(n_t) >= reform) & (np.arange(n_t) < second), 1.0, phase)
    phase = effect_scale * phase
    thr = {}
    thr_reform = None
    for k in ("recipient", "work", "measure"):
        city_eff = rng.normal(0.0, CITY_SD[k], n_c)
        shock = np.empty((n_t, n_c))
        shock[0] = rng.normal(0.0, SHOCK_SD[k], n_c)
        innov = rng.normal(0.0, SHOCK_SD[k] * np.sqrt(1 - SHOCK_AR**2), (n_t, n_c))
        for t in range(1, n_t):
            shock[t] = SHOCK_AR * shock[t - 1] + innov[t]
        common = TREND[k] * years + SEASON[k][month_of_year]
        p = (
            BASE[k][None, :, None]
            + common[:, None, None]
            + COVID_BETA[k][None, :, None] * covid_points[:, None, :]
            + city_eff[None, None, :]
            + city_noise * shock[:, None, :]
        )  # (n_t, group, city)
        thr[k] = _cells(_quantile(np.clip(p, *P_RANGE)))
        if k == "measure":
            p1 = p.copy()
            p1[:, :, 0] += phase[:, None] * EFFECTS["measure"][None, :]
            thr_reform = _cells(_quantile(np.clip(p1, *P_RANGE)))
    growth = (1 + WAGE_GROWTH) ** years
    earnings_level = growth[:, None] * (1 - HOURS_PER_POINT * covid_points)
    post = (np.arange(n_t) >= reform).astype(float)
    return Grids(
        n_t=n_t,
        burn_in=burn_in,
        reform=reform,
        window=(max(reform - 24, 0), n_t),
        thr=thr,
        thr_measure_reform=thr_reform,  # type: ignore[arg-type]
        earnings_level=np.ascontiguousarray(earnings_level.T),
        earnings_reform=np.ascontiguousarray((1 + phase[:, None] * EFFECTS["earnings"][None, :]).T),
        rate_level=(1 + RATE_GROWTH) ** years,
        rate_reform=1 + phase * EFFECTS["rate"][0],
        child_kept=effect_scale * post,
        unemployment=UNEMPLOYMENT[None, :] + covid_points,
    )


def _ar1(rng: np.random.Generator, n: int, n_t: int, phi: float) -> np.ndarray:
    """Stationary AR(1) paths with unit variance, shape (n, n_t) (float32)."""
    e = rng.standard_normal((n_t, n), dtype=np.float32)
    scale, phi32 = np.float32(np.sqrt(1 - phi**2)), np.float32(phi)
    e[1:] *= scale
    for t in range(1, n_t):  # a loop over months of whole-vector steps: cheap
        e[t] += phi32 * e[t - 1]
    return np.ascontiguousarray(e.T)


def _latent(rng: np.random.Generator, k: str, n: int, n_t: int) -> np.ndarray:
    share = PERSON_SHARE[k]
    person = rng.standard_normal(n, dtype=np.float32)
    out = _ar1(rng, n, n_t, AR[k])
    out *= np.float32(np.sqrt(1 - share))
    out += np.float32(np.sqrt(share)) * person[:, None]
    return out


def _candidates(rng: np.random.Generator, grids: Grids, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` candidates and their receipt; return those in the study population."""
    city = rng.choice(N_CITIES, size=n, p=POPULATION / POPULATION.sum())
    non_western = rng.random(n) < NON_WESTERN[city]
    family = rng.random(n) < np.where(non_western, FAMILY_SHARE[1], FAMILY_SHARE[0])
    g = family.astype(np.int64) + 2 * non_western.astype(np.int64)
    age0 = rng.integers(18 * 12, 62 * 12, n)  # age in months at the first month
    female = rng.random(n) < 0.5
    z_rec = _latent(rng, "recipient", n, grids.n_t)
    cell = g * N_CITIES + city
    rec = z_rec < grids.thr["recipient"][cell]
    a, b = grids.window
    keep = rec[:, a:b].any(axis=1)
    return {
        "city": city[keep],
        "non_western": non_western[keep],
        "family": family[keep],
        "g": g[keep],
        "age0": age0[keep],
        "female": female[keep],
        "z_rec": z_rec[keep],
        "rec": rec[keep],
    }


def _runs(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Months in the current spell and months with receipt in the last WINDOW months.

    ``rec`` is (persons, months); so are the results.

    Examples
    --------
    >>> spell, last = _runs(np.array([[1, 1, 0, 1, 1, 1]], dtype=bool))
    >>> spell.tolist(), last.tolist()
    ([[1, 2, 0, 1, 2, 3]], [[1, 2, 2, 3, 4, 5]])
    """
    n_t = rec.shape[1]
    t = np.arange(n_t, dtype=np.int16)[None, :]
    last_off = np.maximum.accumulate(np.where(rec, np.int16(-1), t), axis=1)
    spell = np.where(rec, t - last_off, 0).astype(np.int16)
    c = np.cumsum(rec, axis=1, dtype=np.int16)
    window = c.copy()
    window[:, WINDOW:] -= c[:, :-WINDOW]
    return spell, window


def simulate_block(
    grids: Grids, seed: np.random.SeedSequence, size: int, first_id: int
) -> dict[str, np.ndarray]:
    """Simulate ``size`` persons of one block; return their person-months (person-major).

    The block always draws its candidates as for a full :data:`BLOCK` and keeps the first
    ``size`` persons of the population, so a partial last block is a prefix of the full
    one. Returns the person-month columns of the simulator's schema that do not follow
    from the calendar (``t`` is the month index from the first observed month,
    ``city_code`` the index into the cities) and the ``effect__*`` columns.
    """
    rng = np.random.default_rng(seed)
    parts = []
    kept = 0
    while kept < BLOCK:
        part = _candidates(rng, grids, CANDIDATES)
        parts.append(part)
        kept += len(part["city"])
    p = {k: np.concatenate([q[k] for q in parts], axis=0)[:size] for k in parts[0]}
    n = size
    n_t, b = grids.n_t, grids.burn_in
    cell = p["g"] * N_CITIES + p["city"]
    z_rec, rec = p["z_rec"], p["rec"]
    spell, last12 = _runs(rec)
    pre_reform = rec[:, grids.window[0] : grids.reform].any(axis=1)
    obs = slice(b, n_t)
    n_obs = n_t - b

    # Draws are made for a full block and cut to its size (a partial block is a prefix).
    def linked(k: str) -> np.ndarray:
        z = _latent(rng, k, BLOCK, n_t)[:n, obs]
        z *= np.float32(np.sqrt(1 - LINK[k] ** 2))
        z += np.float32(LINK[k]) * z_rec[:, obs]
        return z

    z_work, z_meas = linked("work"), linked("measure")
    wage = WAGE[p["g"]] * np.exp(rng.normal(0.0, WAGE_SD, BLOCK)[:n])
    hours = rng.standard_normal((BLOCK, n_obs), dtype=np.float32)[:n]
    factor = np.exp(rng.normal(0.0, RATE_SD, BLOCK)[:n])

    rec, spell, last12 = rec[:, obs], spell[:, obs], last12[:, obs]
    bergen = p["city"] == 0
    work = -z_work < grids.thr["work"][cell][:, obs]
    m0 = z_meas < grids.thr["measure"][cell][:, obs]
    m1 = m0.copy()
    m1[bergen] = z_meas[bergen] < grids.thr_measure_reform[cell[bergen]][:, obs]
    act0, act1 = work | m0, work | m1
    hours *= np.float32(HOURS_SD)
    hours += np.float32(-(HOURS_SD**2) / 2)
    np.exp(hours, out=hours)
    e0 = work * wage[:, None] * hours * grids.earnings_level[p["city"]][:, obs]
    earn0 = np.rint(e0)
    earn1 = earn0.copy()
    earn1[bergen] = np.rint(e0[bergen] * grids.earnings_reform[p["g"][bergen]][:, obs])
    amount = (RATE[p["g"]] * factor)[:, None] * grids.rate_level[None, obs]
    amount = amount * np.where(work, 0.5, 1.0)
    child = CHILD_BENEFIT[p["g"]][:, None]
    ben0 = np.rint(np.maximum(amount - child, MIN_BENEFIT)) * rec
    ben1 = ben0.copy()
    ben1[bergen] = (
        np.rint(
            np.maximum(
                amount[bergen] * grids.rate_reform[None, obs]
                - child[bergen] * (1 - grids.child_kept[None, obs]),
                MIN_BENEFIT,
            )
        )
        * rec[bergen]
    )

    def person(x: Any, dtype: str) -> np.ndarray:
        return np.repeat(x.astype(dtype), n_obs)

    def monthly(x: np.ndarray, dtype: str) -> np.ndarray:
        return x.astype(dtype, copy=False).reshape(-1)

    age = (p["age0"][:, None] + np.arange(n_obs)[None, :]) // 12
    return {
        "person_id": person(first_id + np.arange(n), "int32"),
        "city_code": person(p["city"], "int8"),
        "t": np.tile(np.arange(n_obs, dtype=np.int16), n),
        "age": monthly(age, "int8"),
        "female": person(p["female"], "int8"),
        "family_with_children": person(p["family"], "int8"),
        "non_western": person(p["non_western"], "int8"),
        "pre_reform_recipient": person(pre_reform, "int8"),
        "recipient": monthly(rec, "int8"),
        "spell_months": monthly(spell, "int16"),
        "months_on_assistance": monthly(last12, "int16"),
        "work": monthly(work, "int8"),
        "measure_or_education": monthly(m1, "int8"),
        "activity": monthly(act1, "int8"),
        "earnings": monthly(earn1, "int32"),
        "benefit": monthly(ben1, "int32"),
        "income": monthly(earn1 + ben1, "int32"),
        "effect__measure_or_education": monthly(m1.astype(np.int8) - m0, "int8"),
        "effect__activity": monthly(act1.astype(np.int8) - act0, "int8"),
        "effect__earnings": monthly(earn1 - earn0, "int32"),
        "effect__benefit": monthly(ben1 - ben0, "int32"),
        "effect__income": monthly(earn1 + ben1 - earn0 - ben0, "int32"),
    }
