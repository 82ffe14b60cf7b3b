"""Simulated register data for the Bergen social-assistance rates study.

Person-month microdata for ten Norwegian cities, 2017-01 to 2022-12, with the columns a
register extract on social assistance would have. Bergen raises its social-assistance
rates in March 2020 and again in March 2021; the nine other cities keep the national
guideline. A COVID-19 shock hits every city from March 2020 to June 2021, harder for
non-Western immigrants. The planted effects of the rate increase differ by household
type and immigrant background, and their exact values on the simulated sample (the
average effect on the treated person-months) are returned with the data.

How the outcomes are drawn
--------------------------
Each binary outcome (receiving social assistance, working, taking part in a
labour-market measure) is ``1{z_it < Phi^-1(p_gct)}`` where ``p_gct`` is a probability that
is *additive* in a group baseline, a city effect, a common secular trend, common
seasonality, a group-specific COVID-19 shock, a city-level AR(1) shock and, in Bergen after
the reform, the planted effect; ``z_it`` is a standard normal latent with a person
component and an AR(1) component (a Gaussian copula). So the share of a city-month cell
equals ``p_gct`` in expectation, parallel trends hold exactly within each of the four
groups for the shares, and receipt comes in persistent spells; the duration measure is
the number of months with assistance in the last twelve. The latents of work and
activity are correlated with that of receipt. Income
(NOK per month) is earnings from work plus social assistance plus person, city, season
and shock terms. Bergen's persons are also run through the world without the reform with
the same latents, which gives each person-month's effect exactly.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from evalkit.core.random import resolve_seed
from evalkit.errors import DesignError
from evalkit.simulate.base import SimulatedData, register

__all__ = [
    "CITIES",
    "EFFECTS",
    "GROUPS",
    "MEASURES",
    "OUTCOMES",
    "SCHEMA",
    "bergen_rates",
]

#: The treated city first, then the nine comparison cities.
CITIES: tuple[str, ...] = (
    "Bergen",
    "Oslo",
    "Trondheim",
    "Stavanger",
    "Kristiansand",
    "Drammen",
    "Fredrikstad",
    "Tromsø",
    "Sandnes",
    "Sarpsborg",
)
# Residents in thousands, 1 January 2020, rounded (Statistics Norway, table 07459); used
# only as the probabilities with which simulated persons are placed in cities.
_POPULATION = np.array([284, 693, 205, 144, 112, 101, 83, 77, 80, 57], dtype=float)
# Share of non-Western immigrants in the simulated at-risk population: illustrative,
# higher in Oslo and Drammen, lower in Tromsø (not estimates for the real cities).
_NON_WESTERN = np.array([0.30, 0.45, 0.25, 0.30, 0.30, 0.45, 0.30, 0.20, 0.28, 0.35])
# Share of persons in families with children, natives and non-Western immigrants.
_FAMILY_SHARE = (0.28, 0.45)

#: Outcomes with their meaning (cell measures for duration: among recipients).
OUTCOMES: dict[str, str] = {
    "work": "share in work (employed during the month)",
    "recipient": "share receiving social assistance during the month",
    "duration": "months with assistance in the last 12 months, among current recipients",
    "activity": "share taking part in a labour-market measure",
    "income": "income in NOK per month (earnings plus social assistance)",
}

#: Subgroups as DuckDB SQL predicates over the microdata (None: everyone).
GROUPS: dict[str, str | None] = {
    "all": None,
    "families_with_children": "family_with_children = 1",
    "non_western": "non_western = 1",
    "non_western_families_with_children": "non_western = 1 AND family_with_children = 1",
}

#: How each outcome is measured in a city-month cell (see evalkit.data.collapse).
MEASURES: dict[str, dict[str, str]] = {
    "work": {"column": "work", "stat": "mean"},
    "recipient": {"column": "recipient", "stat": "mean"},
    "duration": {"column": "months_on_assistance", "stat": "mean", "where": "recipient = 1"},
    "activity": {"column": "activity", "stat": "mean"},
    "income": {"column": "income", "stat": "mean"},
}

#: Columns of the microdata and their dtypes.
SCHEMA: dict[str, str] = {
    "person_id": "int32",
    "city": "category",
    "month": "datetime64[ns]",
    "period": "int16",
    "cohort": "int16",
    "treated": "int8",
    "treated_2021": "int8",
    "family_with_children": "int8",
    "non_western": "int8",
    "recipient": "int8",
    "months_on_assistance": "int16",
    "work": "int8",
    "activity": "int8",
    "income": "int32",
}

# Groups are coded g = family_with_children + 2 * non_western:
# 0 others without children, 1 others with children, 2 non-Western immigrants without
# children, 3 non-Western immigrants with children.
_G_LABELS = (
    "others without children",
    "others in families with children",
    "non-Western immigrants without children",
    "non-Western immigrants in families with children",
)

#: Planted effects of the first increase (March 2020) on the probability of each binary
#: outcome, by group code (see above); multiplied by ``second_increase`` from March 2021.
EFFECTS: dict[str, tuple[float, float, float, float]] = {
    "recipient": (0.010, 0.020, 0.015, 0.035),
    "work": (-0.003, -0.006, -0.006, -0.012),
    "activity": (0.004, 0.004, 0.008, 0.010),
}
#: Planted increase of the monthly social-assistance amount in Bergen (first increase),
#: without / with children; multiplied by ``second_increase`` from March 2021.
BENEFIT_INCREASE: tuple[float, float] = (0.10, 0.15)

# Baselines by group (before city effects): illustrative levels for a low-income at-risk
# population, not estimates.
_BASE = {
    "recipient": np.array([0.12, 0.10, 0.25, 0.28]),
    "work": np.array([0.55, 0.62, 0.40, 0.36]),
    "activity": np.array([0.06, 0.05, 0.10, 0.08]),
}
_COVID = {  # effect at the peak of the shock
    "recipient": np.array([0.015, 0.015, 0.030, 0.030]),
    "work": np.array([-0.04, -0.04, -0.07, -0.07]),
    "activity": np.array([-0.02, -0.02, -0.02, -0.02]),
    "income": np.array([-300.0, -300.0, -600.0, -600.0]),
}
_TREND = {"recipient": -0.003, "work": 0.006, "activity": 0.0, "income": 250.0}  # per year
_SEASON = {  # by calendar month, January first
    "recipient": np.array([6, 5, 3, 0, -2, -4, -6, -4, -1, 0, 1, 2]) / 1000,
    "work": np.array([-15, -10, -5, 0, 5, 15, 20, 15, 5, 0, -5, -20]) / 1000,
    "activity": np.array([0, 5, 5, 5, 0, -10, -25, -15, 5, 10, 10, 5]) / 1000,
    "income": np.array([-300, -200, 0, 0, 200, 1500, -500, 0, 0, 0, 0, 600], dtype=float),
}
_CITY_SD = {"recipient": 0.02, "work": 0.03, "activity": 0.01, "income": 800.0}
_SHOCK_SD = {"recipient": 0.004, "work": 0.006, "activity": 0.003, "income": 150.0}
_SHOCK_AR = 0.6
_INCOME_BASE = np.array([4000.0, 5000.0, 2500.0, 3500.0])
_WAGE = np.array([19000.0, 21000.0, 16000.0, 17000.0])
_BENEFIT = np.array([6500.0, 11000.0, 6500.0, 11000.0])  # national guideline level
_PERSON_INCOME_SD = 2000.0
_INCOME_NOISE_SD = 1500.0
# Latent persistence: share of variance from a person component, AR(1) coefficient of
# the rest; correlation of the work and activity latents with the receipt latent.
_PERSON_SHARE = {"recipient": 0.5, "work": 0.5, "activity": 0.3}
_AR = {"recipient": 0.85, "work": 0.8, "activity": 0.8}
_WINDOW = 12  # months_on_assistance counts the months with assistance in this window
_LINK = {"work": 0.5, "activity": 0.4}
_P_RANGE = (0.005, 0.995)


def _month(value: Any, option: str) -> pd.Period:
    try:
        return pd.Period(str(value), freq="M")
    except (ValueError, TypeError):
        raise DesignError(
            f"{option} must be a month like '2020-03', got {value!r}",
            hint=f"e.g. {option}='2020-03'",
            column=option,
        ) from None


def _number(value: Any, option: str, *, low: float, integer: bool = False) -> Any:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value) == int(value)
    if not ok or not np.isfinite(float(value)) or float(value) < low:
        kind = "a whole number" if integer else "a number"
        raise DesignError(
            f"{option} must be {kind} >= {low}, got {value!r}",
            hint=f"e.g. {option}={int(low) + 1 if integer else 1.0}",
            column=option,
        )
    return int(value) if integer else float(value)


#: Peak bytes per simulated person (measured: ~2.3 GB at 400,000 and ~7.6 GB at 1.5
#: million persons over 2017-2022), used to refuse sizes that cannot fit in memory.
_BYTES_PER_PERSON = 5_100


def _check_memory(n: int) -> None:
    """Refuse a population whose simulation would need more than the machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        total = 64 * 2**30
    need = n * _BYTES_PER_PERSON
    if need > 0.8 * total:
        raise DesignError(
            f"n_persons = {n:,} would need about {need / 2**30:,.0f} GiB of memory to simulate; "
            f"this machine has {total / 2**30:,.0f} GiB",
            hint=f"use at most about {int(0.8 * total / _BYTES_PER_PERSON):,} persons",
            column="n_persons",
        )


def _covid_shape(months: pd.PeriodIndex, start: pd.Period, end: pd.Period) -> np.ndarray:
    """Intensity of the COVID-19 shock: a jump, a plateau of three months, a slow decay."""
    k = np.array([(m - start).n for m in months], dtype=float)
    last = max((end - start).n, 4)
    shape = np.where(k == 0, 0.7, 1.0)
    decay = 1.0 - 0.7 * (k - 3) / (last - 3)
    shape = np.where(k > 3, decay, shape)
    return np.where((k >= 0) & (k <= (end - start).n), shape, 0.0)


@register("bergen_rates", schema=SCHEMA)
def bergen_rates(
    seed: int | None = 20200301,
    n_persons: int = 20_000,
    *,
    scale: float = 1.0,
    start: str = "2017-01",
    end: str = "2022-12",
    reform: str = "2020-03",
    second_reform: str = "2021-03",
    covid: Sequence[str] = ("2020-03", "2021-06"),
    effect_scale: float = 1.0,
    second_increase: float = 1.5,
    city_noise: float = 1.0,
    burn_in: int = 24,
) -> SimulatedData:
    """Simulate person-month register data for the Bergen social-assistance study.

    Parameters
    ----------
    seed
        Seed of every random draw; None draws fresh entropy (recorded in
        ``parameters["seed"]``).
    n_persons
        Persons in the simulated at-risk population of the ten cities, placed in cities
        in proportion to their population (Bergen gets about 15%). Each is observed in
        every month.
    scale
        Multiplies ``n_persons`` (for benchmarks: ``scale=100`` gives two million persons
        and about 140 million person-months; memory is about 30 bytes per person-month).
    start, end
        First and last month of the data.
    reform, second_reform
        Months of Bergen's first and second rate increase.
    covid
        First and last month of the COVID-19 shock (common to all cities).
    effect_scale
        Multiplies every planted effect; 0 gives data with no effect of the reform.
    second_increase
        The planted effects from ``second_reform`` on are this multiple of the first.
    city_noise
        Multiplies the city-level AR(1) shocks; 0 removes them (then the city-month
        cells differ from their expectation only by sampling noise).
    burn_in
        Months simulated before ``start`` and discarded, so spells are not censored.

    Returns
    -------
    SimulatedData
        ``data`` has the columns of :data:`SCHEMA`: ``person_id``, ``city``, ``month``
        (first day of the month), ``period`` (1 for ``start``), ``cohort`` (the period of
        the reform for Bergen, 0 elsewhere), ``treated`` (Bergen from ``reform``),
        ``treated_2021`` (Bergen from ``second_reform``), ``family_with_children``,
        ``non_western``, ``recipient``, ``months_on_assistance`` (months with assistance
        in the last 12, the current one included), ``work``, ``activity``, ``income`` (NOK).
        ``truth[outcome][group]`` is the average effect on Bergen's treated
        person-months of the reform (the ``treated`` term) for the outcomes of
        :data:`OUTCOMES` and the groups of :data:`GROUPS`: for the cell measure of
        :data:`MEASURES`, the cell-size weighted mean over treated city-month cells of
        the cell value with the reform minus the cell value without it.
        ``truth_strata`` gives the same by household type x background (and treated
        month), so the effect on any group defined by ``family_with_children`` and
        ``non_western`` follows exactly (:meth:`SimulatedData.truth_where`), e.g. the
        effect on other households that a triple difference compares with.

    Examples
    --------
    >>> from evalkit.simulate import bergen_rates
    >>> sim = bergen_rates(seed=3, n_persons=500)
    >>> sim.data.shape
    (36000, 14)
    >>> sorted(sim.data["city"].unique())[:3]
    ['Bergen', 'Drammen', 'Fredrikstad']
    >>> sim.truth["recipient"]["families_with_children"] > sim.truth["recipient"]["all"] > 0
    True
    >>> bergen_rates(seed=3, n_persons=500).data.equals(sim.data)
    True
    """
    used_seed = resolve_seed(seed)
    n_persons = _number(n_persons, "n_persons", low=1, integer=True)
    scale = _number(scale, "scale", low=0)
    effect_scale = _number(effect_scale, "effect_scale", low=0)
    second_increase = _number(second_increase, "second_increase", low=0)
    city_noise = _number(city_noise, "city_noise", low=0)
    burn_in = _number(burn_in, "burn_in", low=0, integer=True)
    n = round(n_persons * scale)
    if n < 1:
        raise DesignError(
            f"n_persons * scale gives {n} persons", hint="use a larger scale", column="scale"
        )
    _check_memory(n)
    first, last = _month(start, "start"), _month(end, "end")
    reform_m, second_m = _month(reform, "reform"), _month(second_reform, "second_reform")
    if isinstance(covid, str) or len(covid) != 2:
        raise DesignError(
            f"covid must be [first month, last month], got {covid!r}",
            hint="e.g. covid=['2020-03', '2021-06']",
            column="covid",
        )
    covid_a, covid_b = _month(covid[0], "covid"), _month(covid[1], "covid")
    if not first < reform_m <= last:
        raise DesignError(
            f"reform {reform_m} must lie after start {first} and not after end {last}",
            column="reform",
        )
    if second_m < reform_m or covid_b < covid_a:
        raise DesignError(
            "second_reform must not precede reform, nor the end of covid its start",
            column="second_reform" if second_m < reform_m else "covid",
        )

    rng = np.random.default_rng(used_seed)
    months = pd.period_range(first - burn_in, last, freq="M")
    n_t, n_c = len(months), len(CITIES)
    obs = np.arange(burn_in, n_t)
    years = np.array([(m - first).n for m in months]) / 12.0
    moy = np.array([m.month - 1 for m in months])
    covid_shape = _covid_shape(months, covid_a, covid_b)
    phase = np.where(months >= second_m, second_increase, np.where(months >= reform_m, 1.0, 0.0))
    treated_city = np.zeros(n_c)
    treated_city[0] = 1.0

    # ---- persons
    city = rng.choice(n_c, size=n, p=_POPULATION / _POPULATION.sum())
    non_western = rng.random(n) < _NON_WESTERN[city]
    family = rng.random(n) < np.where(non_western, _FAMILY_SHARE[1], _FAMILY_SHARE[0])
    g = family.astype(np.int64) + 2 * non_western.astype(np.int64)
    cell = g * n_c + city  # index into (group, city) grids

    # ---- expected values on (time, group, city) grids, without and with the reform
    city_eff = {k: rng.normal(0.0, sd, n_c) for k, sd in _CITY_SD.items()}
    shocks = {}
    for k, sd in _SHOCK_SD.items():
        s = np.zeros((n_t, n_c))
        s[0] = rng.normal(0.0, sd, n_c)
        innov = rng.normal(0.0, sd * np.sqrt(1 - _SHOCK_AR**2), (n_t, n_c))
        for t in range(1, n_t):
            s[t] = _SHOCK_AR * s[t - 1] + innov[t]
        shocks[k] = city_noise * s

    def grid(k: str, base: np.ndarray) -> np.ndarray:
        common = _TREND[k] * years + _SEASON[k][moy]
        return (
            base[None, :, None]
            + common[:, None, None]
            + _COVID[k][None, :, None] * covid_shape[:, None, None]
            + city_eff[k][None, None, :]
            + shocks[k][:, None, :]
        )

    effect_on = (effect_scale * phase)[:, None, None] * treated_city[None, None, :]
    from scipy import stats  # imported on first use: SciPy is slow to import

    thresholds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k in ("recipient", "work", "activity"):
        p0 = grid(k, _BASE[k])
        p1 = p0 + effect_on * np.asarray(EFFECTS[k])[None, :, None]
        thresholds[k] = tuple(
            stats.norm.ppf(np.clip(p, *_P_RANGE)).reshape(n_t, -1) for p in (p0, p1)
        )
    inc_level = grid("income", _INCOME_BASE).reshape(n_t, -1)
    increase = np.array(BENEFIT_INCREASE)[family.astype(int)]  # by person
    bergen = np.flatnonzero(city == 0)

    # ---- latents and outcomes, month by month
    eta = {k: rng.standard_normal(n) for k in _AR}
    ar = {k: rng.standard_normal(n) for k in _AR}
    person_income = rng.normal(0.0, _PERSON_INCOME_SD, n)
    n_obs_t = len(obs)
    out: dict[str, np.ndarray] = {
        "recipient": np.empty((n_obs_t, n), np.int8),
        "months_on_assistance": np.empty((n_obs_t, n), np.int16),
        "work": np.empty((n_obs_t, n), np.int8),
        "activity": np.empty((n_obs_t, n), np.int8),
        "income": np.empty((n_obs_t, n), np.int32),
    }
    cf = {k: np.empty((n_obs_t, len(bergen)), v.dtype) for k, v in out.items()}
    # receipt in the last _WINDOW months (a ring buffer) and its running count
    history = np.zeros((_WINDOW, n), np.int8)
    history0 = np.zeros((_WINDOW, len(bergen)), np.int8)
    spell = np.zeros(n, np.int16)
    spell0 = np.zeros(len(bergen), np.int16)
    for t in range(n_t):
        for k in _AR:
            phi = _AR[k]
            ar[k] = phi * ar[k] + np.sqrt(1 - phi**2) * rng.standard_normal(n)
        z = {
            k: np.sqrt(_PERSON_SHARE[k]) * eta[k] + np.sqrt(1 - _PERSON_SHARE[k]) * ar[k]
            for k in _AR
        }
        z_work = _LINK["work"] * z["recipient"] + np.sqrt(1 - _LINK["work"] ** 2) * z["work"]
        z_act = (
            _LINK["activity"] * z["recipient"] + np.sqrt(1 - _LINK["activity"] ** 2) * z["activity"]
        )
        noise = rng.normal(0.0, _INCOME_NOISE_SD, n)
        mult = 1.0 + effect_scale * phase[t] * increase  # benefit multiplier in Bergen
        for world in (1, 0):
            idx = slice(None) if world == 1 else bergen
            c = cell[idx]
            rec = z["recipient"][idx] < thresholds["recipient"][world][t][c]
            wrk = -z_work[idx] < thresholds["work"][world][t][c]
            act = z_act[idx] < thresholds["activity"][world][t][c]
            benefit = _BENEFIT[g[idx]]
            slot = t % _WINDOW
            if world == 1:
                benefit = np.where(city == 0, benefit * mult, benefit)
                spell += rec - history[slot]
                history[slot] = rec
                dur = spell
            else:
                spell0 += rec - history0[slot]
                history0[slot] = rec
                dur = spell0
            inc = (
                inc_level[t][c]
                + person_income[idx]
                + noise[idx]
                + _WAGE[g[idx]] * wrk
                + benefit * rec
            )
            if t >= burn_in:
                target = out if world == 1 else cf
                i = t - burn_in
                target["recipient"][i] = rec
                target["months_on_assistance"][i] = dur
                target["work"][i] = wrk
                target["activity"][i] = act
                target["income"][i] = np.rint(np.clip(inc, 0.0, None))

    # ---- the frame, person by month
    obs_months = months[obs]
    period = np.arange(1, n_obs_t + 1, dtype=np.int16)
    reform_period = (reform_m - first).n + 1
    second_period = (second_m - first).n + 1
    per_person = np.repeat
    is_bergen = city == 0
    frame = pd.DataFrame(
        {
            "person_id": per_person(np.arange(n, dtype=np.int32), n_obs_t),
            "city": pd.Categorical.from_codes(per_person(city, n_obs_t), categories=CITIES),
            "month": np.tile(obs_months.to_timestamp().to_numpy(dtype="datetime64[ns]"), n),
            "period": np.tile(period, n),
            "cohort": per_person(np.where(is_bergen, reform_period, 0).astype(np.int16), n_obs_t),
        }
    )
    tile_period = frame["period"].to_numpy()
    frame["treated"] = (np.repeat(is_bergen, n_obs_t) & (tile_period >= reform_period)).astype(
        np.int8
    )
    frame["treated_2021"] = (np.repeat(is_bergen, n_obs_t) & (tile_period >= second_period)).astype(
        np.int8
    )
    frame["family_with_children"] = per_person(family.astype(np.int8), n_obs_t)
    frame["non_western"] = per_person(non_western.astype(np.int8), n_obs_t)
    for k in ("recipient", "months_on_assistance", "work", "activity", "income"):
        frame[k] = out[k].T.reshape(-1)

    truth, by_period = _truth(out, cf, bergen, family, non_western, obs_months, reform_m, second_m)
    strata = _strata(out, cf, bergen, family, non_western, obs_months, reform_m)
    parameters = {
        "seed": used_seed,
        "n_persons": n_persons,
        "scale": scale,
        "start": str(first),
        "end": str(last),
        "reform": str(reform_m),
        "second_reform": str(second_m),
        "covid": [str(covid_a), str(covid_b)],
        "effect_scale": effect_scale,
        "second_increase": second_increase,
        "city_noise": city_noise,
        "burn_in": burn_in,
    }
    return SimulatedData(
        data=frame,
        truth=truth,
        description=_describe(parameters, n, int(is_bergen.sum())),
        name="bergen_rates",
        term="treated",
        groups=GROUPS,
        measures=MEASURES,
        truth_by_period=by_period,
        parameters=parameters,
        truth_strata=strata,
    )


def _truth(
    out: dict[str, np.ndarray],
    cf: dict[str, np.ndarray],
    bergen: np.ndarray,
    family: np.ndarray,
    non_western: np.ndarray,
    months: pd.PeriodIndex,
    reform: pd.Period,
    second: pd.Period,
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Effects on Bergen's treated months, per cell and overall, from both worlds."""
    post = np.flatnonzero(months >= reform)
    fam, nw = family[bergen], non_western[bergen]
    masks = {
        "all": np.ones(len(bergen), bool),
        "families_with_children": fam,
        "non_western": nw,
        "non_western_families_with_children": fam & nw,
    }
    rows = []
    truth: dict[str, dict[str, float]] = {k: {} for k in OUTCOMES}
    for group, mask in masks.items():
        for outcome in OUTCOMES:
            num = den = 0.0
            for t in post:
                if outcome == "duration":
                    on1 = mask & (out["recipient"][t, bergen] == 1)
                    on0 = mask & (cf["recipient"][t] == 1)
                    if not on1.any() or not on0.any():
                        continue
                    d1 = out["months_on_assistance"][t, bergen][on1].mean()
                    d0 = cf["months_on_assistance"][t][on0].mean()
                    effect, weight = d1 - d0, float(on1.sum())
                else:
                    if not mask.any():
                        continue
                    y1 = out[outcome][t, bergen][mask].astype(float)
                    y0 = cf[outcome][t][mask].astype(float)
                    effect, weight = float((y1 - y0).mean()), float(mask.sum())
                num += effect * weight
                den += weight
                rows.append(
                    {
                        "outcome": outcome,
                        "group": group,
                        "month": months[t].to_timestamp(),
                        "phase": "second" if months[t] >= second else "first",
                        "effect": float(effect),
                        "weight": weight,
                    }
                )
            truth[outcome][group] = num / den if den > 0 else float("nan")
    by_period = pd.DataFrame(
        rows, columns=["outcome", "group", "month", "phase", "effect", "weight"]
    )
    return truth, by_period


def _strata(
    out: dict[str, np.ndarray],
    cf: dict[str, np.ndarray],
    bergen: np.ndarray,
    family: np.ndarray,
    non_western: np.ndarray,
    months: pd.PeriodIndex,
    reform: pd.Period,
) -> pd.DataFrame:
    """Return the counts and sums behind each outcome's cell measure, by stratum.

    One row per outcome, treated month and stratum (household type x background) of
    Bergen's persons: ``n1``/``sum1`` with the reform, ``n0``/``sum0`` without it. For
    duration the rows counted are the month's recipients (in each world), as in the
    cell measure; for the other outcomes every person. The effect on any union of
    strata, e.g. "other households" for a triple difference, follows exactly
    (:meth:`SimulatedData.truth_where`).
    """
    post = np.flatnonzero(months >= reform)
    fam, nw = family[bergen], non_western[bergen]
    rows = []
    for f in (0, 1):
        for w in (0, 1):
            mask = (fam == bool(f)) & (nw == bool(w))
            for outcome in OUTCOMES:
                for t in post:
                    if outcome == "duration":
                        on1 = mask & (out["recipient"][t, bergen] == 1)
                        on0 = mask & (cf["recipient"][t] == 1)
                        y1 = out["months_on_assistance"][t, bergen][on1]
                        y0 = cf["months_on_assistance"][t][on0]
                    else:
                        y1 = out[outcome][t, bergen][mask]
                        y0 = cf[outcome][t][mask]
                    rows.append(
                        (
                            outcome,
                            months[t].to_timestamp(),
                            f,
                            w,
                            y1.size,
                            float(y1.sum(dtype=np.int64)),
                            y0.size,
                            float(y0.sum(dtype=np.int64)),
                        )
                    )
    frame = pd.DataFrame(
        rows,
        columns=[
            "outcome",
            "period",
            "family_with_children",
            "non_western",
            "n1",
            "sum1",
            "n0",
            "sum0",
        ],
    )
    return frame.astype(
        {"family_with_children": "int8", "non_western": "int8", "n1": "int64", "n0": "int64"}
    )


def _describe(p: dict[str, Any], n: int, n_bergen: int) -> str:
    eff = ", ".join(f"{k} {', '.join(f'{v:+.3f}' for v in vals)}" for k, vals in EFFECTS.items())
    return (
        f"Simulated person-month register data (simulator 'bergen_rates', seed {p['seed']}): "
        f"{n} persons in ten Norwegian cities ({n_bergen} in Bergen), observed monthly from "
        f"{p['start']} to {p['end']}. Bergen raises its social-assistance rates in "
        f"{p['reform']} and again in {p['second_reform']}; the other nine cities do not. A "
        f"COVID-19 shock hits all cities from {p['covid'][0]} to {p['covid'][1]}, harder "
        "for non-Western immigrants. Planted effects of the first increase on the "
        f"probabilities of the binary outcomes, for {', '.join(_G_LABELS)}: {eff}; the "
        f"monthly assistance amount rises by {BENEFIT_INCREASE[0]:.0%} without and "
        f"{BENEFIT_INCREASE[1]:.0%} with children. From {p['second_reform']} all planted "
        f"effects are {p['second_increase']:g} times as large; every planted effect is "
        f"scaled by effect_scale = {p['effect_scale']:g}. Effects on duration and income "
        "follow from these. The true values reported are the average effects on Bergen's "
        "treated person-months in this sample, computed by running Bergen's persons "
        "through the world without the reform with the same random draws."
    )
