"""Simulated register data for the Bergen social-assistance rates study.

The research (the O4O project description; Bergen municipality's own evaluation, 2021)
compares Bergen, which from March 2020 paid social assistance above the national
guideline and raised its rates further from 1 March 2021 (and leaves child benefit out
of the means test), with nine other large cities. Its findings: no effect on work, on
the number of recipients or on the duration of receipt; for families with children,
non-Western immigrants and non-Western immigrant families with children, less activity
in the labour market and lower incomes. This simulator plants exactly that pattern.

**Illustrative details.** The nine comparison cities, the period (2017-01 to
2022-12), every rate, level, share and effect size, the COVID-19 intensities and the
population sizes are illustrative, chosen to look plausible; none is an estimate for
the real cities.

Population and design
---------------------
Persons of a low-income at-risk population in ten cities; the study population is
everyone who received social assistance at some time in the two years before March
2020 (``pre_reform_recipient = 1``) plus the inflow (first receipt in that window's
absence, from March 2020 to the end of the data). Each is observed every month of the
data (a balanced panel of person-months). Outcome probabilities are additive in a group
baseline (household type x background), a city effect, a common trend and season, a
city AR(1) shock and COVID-19; receipt, work and measures are thresholds of correlated
Gaussian latents with a person component and an AR(1) component, so receipt comes in
persistent spells. See :mod:`evalkit.simulate.bergen_model` for every number.

**COVID-19** hits every city from March 2020 through its registered unemployment
(``city_unemployment``), which jumps by a city-specific amount and recovers at a
city-specific speed; work, receipt and measures respond to it, more strongly for
non-Western immigrants. Bergen is hit a little harder than the nine cities' average, so
a naive before/after or an unadjusted comparison is biased; the city's unemployment
is in the data as a covariate.

Planted effects (Bergen, from the reform; the second step from ``second_reform``)
-----------------------------------------------------------------------------------
- **First stage**: the benefit paid per recipient rises (rates up 5% per step of
  ``effect_scale``; the second step makes it ``second_increase`` times the first), and
  more for families with children, who keep the child benefit (NOK 1,800 a month)
  instead of having it deducted.
- **Work, receipt and duration: exactly zero** for every person-month. Receipt and
  work are drawn from the same random numbers with and without the reform and do not
  depend on it, so the effect on the share working, the share receiving, and the
  months on assistance (in the current spell and in the last twelve months) is zero on
  every estimand: any cell, group, city contrast, cohort or month, including the means
  among recipients (the recipients are the same persons in both worlds).
- **Activity and earnings** fall for families with children, non-Western immigrants
  and (most) non-Western immigrant families with children; nothing changes for other
  persons. Activity is working *or* taking part in a labour-market measure or
  education (``measure_or_education``); the reform lowers participation in measures
  and education (not work), so activity falls while work does not, and earnings fall
  among those who work (fewer hours), not through fewer people working. The step
  from March 2021 is larger than the first (``second_increase`` = 2.2: the effect
  from March 2021 is 2.2 times that of the first increase).
- **Income** is earnings plus benefit, so its effect is the sum of both (it can have
  either sign; it is reported exactly).

Truth
-----
Every person-month has both potential outcomes (the same latents with and without the
reform), and its effect (their difference, exactly, after rounding to whole NOK) is
kept beside the data, hidden from the study: :meth:`SimulatedData.truth_where` gives
the average effect on the treated rows of any subset (a group, a city contrast, a
cohort, the months after March 2021...), and ``truth[outcome][group]`` the effect on
Bergen's treated person-months for the cell measures of :data:`MEASURES`.

Columns (the schema of a real extract)
--------------------------------------
A real register extract for this study has one row per person and month with these
columns (types as in the simulated data; a real extract may store ``city`` as text and
``month`` as a date):

====================== ========== ==========================================================
column                 type       meaning
====================== ========== ==========================================================
person_id              int32      pseudonymous person identifier
city                   category   municipality of residence in the month
month                  datetime   first day of the month
period                 int16      month number, 1 for the first month of the data
cohort                 int16      period of the first rate increase for Bergen, 0 elsewhere
treated                int8       1 for Bergen from the first increase (March 2020)
treated_2021           int8       1 for Bergen from the second increase (March 2021)
age                    int8       age in whole years in the month
female                 int8       1 for women
family_with_children   int8       1 if the household has children under 18
non_western            int8       1 for immigrants from outside Western Europe/North America/Oceania
pre_reform_recipient   int8       1 if the person received social assistance in the two years
                                  before the first increase (the stock; 0: the inflow)
recipient              int8       1 if social assistance was paid in the month
spell_months           int16      months in the current spell of assistance (0 if not receiving)
months_on_assistance   int16      months with assistance in the last 12, this month included
work                   int8       1 if employed in the month
measure_or_education   int8       1 if in a labour-market measure or in education
activity               int8       1 if working or in a measure or education
earnings               int32      earnings from work, NOK in the month
benefit                int32      social assistance paid, NOK in the month (0 if not receiving)
income                 int32      earnings + benefit, NOK in the month
city_unemployment      float32    registered unemployment in the city, percent of the labour force
====================== ========== ==========================================================

Memory and chunks
-----------------
Persons are simulated in blocks of :data:`~evalkit.simulate.bergen_model.BLOCK`, each
with its own random stream (child ``b`` of a :class:`numpy.random.SeedSequence` spawned
from the seed), so the data are identical for any ``chunk_persons`` and any number of
``jobs``. With ``store`` the chunks are written to Parquet files in that folder and the
rows are never held in memory together (see :attr:`SimulatedData.store`).
:attr:`SimulatedData.content_sha256` fingerprints the rows as they are made: the SHA-256
of each block's BLAKE2b digest of its data columns (names, dtypes, values), in block
order, so it too does not depend on the chunk size or the number of jobs.
"""

from __future__ import annotations

import functools
import hashlib
import numbers
import operator
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.core.random import resolve_seed
from evalkit.errors import DesignError
from evalkit.simulate import bergen_model as model
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

EFFECTS = model.EFFECTS

#: The treated city first, then the nine comparison cities (illustrative choice).
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

#: Outcomes (cell measures, see :data:`MEASURES`) with their meaning.
OUTCOMES: dict[str, str] = {
    "work": "share in work (employed during the month)",
    "recipient": "share receiving social assistance during the month",
    "duration": "months with assistance in the last 12 months, among current recipients",
    "spell": "months in the current spell of assistance, among current recipients",
    "activity": "share working or in a labour-market measure or education",
    "measure": "share in a labour-market measure or education",
    "earnings": "earnings from work, NOK per person and month",
    "benefit": "social assistance paid, NOK per recipient and month",
    "income": "earnings plus social assistance, NOK per person and month",
}

#: Subgroups as DuckDB SQL predicates over the microdata (None: everyone).
GROUPS: dict[str, str | None] = {
    "all": None,
    "families_with_children": "family_with_children = 1",
    "non_western": "non_western = 1",
    "non_western_families_with_children": "non_western = 1 AND family_with_children = 1",
}

#: How each outcome is measured in a cell (see :func:`evalkit.data.collapse.collapse`).
MEASURES: dict[str, dict[str, str]] = {
    "work": {"column": "work", "stat": "mean"},
    "recipient": {"column": "recipient", "stat": "mean"},
    "duration": {"column": "months_on_assistance", "stat": "mean", "where": "recipient = 1"},
    "spell": {"column": "spell_months", "stat": "mean", "where": "recipient = 1"},
    "activity": {"column": "activity", "stat": "mean"},
    "measure": {"column": "measure_or_education", "stat": "mean"},
    "earnings": {"column": "earnings", "stat": "mean"},
    "benefit": {"column": "benefit", "stat": "mean", "where": "recipient = 1"},
    "income": {"column": "income", "stat": "mean"},
}

#: Columns of the microdata and their dtypes (the schema of a real extract).
SCHEMA: dict[str, str] = {
    "person_id": "int32",
    "city": "category",
    "month": "datetime64[ns]",
    "period": "int16",
    "cohort": "int16",
    "treated": "int8",
    "treated_2021": "int8",
    "age": "int8",
    "female": "int8",
    "family_with_children": "int8",
    "non_western": "int8",
    "pre_reform_recipient": "int8",
    "recipient": "int8",
    "spell_months": "int16",
    "months_on_assistance": "int16",
    "work": "int8",
    "measure_or_education": "int8",
    "activity": "int8",
    "earnings": "int32",
    "benefit": "int32",
    "income": "int32",
    "city_unemployment": "float32",
}

#: Data column -> hidden column with each row's exact effect (None: no effect at all).
ROW_EFFECTS: dict[str, str | None] = {
    "work": None,
    "recipient": None,
    "months_on_assistance": None,
    "spell_months": None,
    "measure_or_education": "effect__measure_or_education",
    "activity": "effect__activity",
    "earnings": "effect__earnings",
    "benefit": "effect__benefit",
    "income": "effect__income",
}

_G_LABELS = (
    "others without children",
    "others in families with children",
    "non-Western immigrants without children",
    "non-Western immigrants in families with children",
)
# Peak bytes per person-month held in memory without a store (data, effects, one block).
_BYTES_PER_PERSON_MONTH = 75
# Bytes per person-month on disk with a store (Parquet, measured: about 9).
_DISK_PER_PERSON_MONTH = 12
_STRATA = ("family_with_children", "non_western", "pre_reform_recipient")


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


def _check_size(n: int, n_months: int, store: Path | None) -> None:
    """Refuse a population that cannot fit in memory (or, with a store, on disk)."""
    rows = n * n_months
    if store is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
            total = 64 * 2**30
        need, what, per = rows * _BYTES_PER_PERSON_MONTH, "memory", _BYTES_PER_PERSON_MONTH
        hint_more = "; or write the rows in chunks to a folder with store=..."
    else:
        probe = store if store.exists() else store.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        total = shutil.disk_usage(probe).free
        need, what, per = rows * _DISK_PER_PERSON_MONTH, "free disk space", _DISK_PER_PERSON_MONTH
        hint_more = ""
    if need > 0.8 * total:
        raise DesignError(
            f"n_persons = {n:,} over {n_months} months would need about "
            f"{need / 2**30:,.0f} GiB of {what}; there are {total / 2**30:,.0f} GiB",
            hint=f"use at most about {int(0.8 * total / per / n_months):,} persons{hint_more}",
            column="n_persons",
        )


@dataclass(frozen=True)
class _Setting:
    """What every chunk needs (picklable): the grids and the calendar."""

    grids: model.Grids
    blocks: np.random.SeedSequence
    n: int
    months: np.ndarray  # datetime64[ns] of the observed months
    reform_period: int
    second_period: int
    n_post: int  # observed months from the reform on


@dataclass(frozen=True)
class _Chunk:
    """Simulate blocks ``[first, last)``: return the rows or write them to ``path``."""

    setting: _Setting
    store: str | None

    def __call__(self, span: tuple[int, int]) -> tuple[Any, np.ndarray, list[bytes]]:
        first, last = span
        s = self.setting
        frames = []
        acc = np.zeros((len(MEASURES), s.n_post, 8, 3))
        digests = []
        writer = None
        try:
            for b in range(first, last):
                size = min(model.BLOCK, s.n - b * model.BLOCK)
                # child b of the block sequence, as s.blocks.spawn(n)[b] would give
                seed = np.random.SeedSequence(s.blocks.entropy, spawn_key=(*s.blocks.spawn_key, b))
                out = model.simulate_block(s.grids, seed, size, b * model.BLOCK)
                acc += _accumulate(out, s)
                columns = _columns(out, s)
                digests.append(_digest(columns))
                if self.store is None:
                    frames.append(_frame(columns))
                    continue
                import pyarrow.parquet as pq

                table = _arrow(columns)
                if writer is None:
                    path = Path(self.store) / f"part-{first:07d}.parquet"
                    # LZ4, dictionary only for the city, no statistics: measured on
                    # 10.8M rows, about half the CPU of pyarrow's defaults to write and
                    # a quarter less than Snappy for DuckDB to scan; ~9 bytes per row
                    writer = pq.ParquetWriter(
                        path,
                        table.schema,
                        compression="lz4",
                        use_dictionary=["city"],
                        write_statistics=False,
                    )
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        return (pd.concat(frames, ignore_index=True) if frames else None), acc, digests


def _digest(columns: dict[str, np.ndarray]) -> bytes:
    """Return a BLAKE2b digest of a block's data columns (names, dtypes and values)."""
    h = hashlib.blake2b(digest_size=32)
    for name in SCHEMA:
        h.update(f"{name}:{columns[name].dtype.str}".encode())
        h.update(np.ascontiguousarray(columns[name]).view(np.uint8).data)
    return h.digest()


def _columns(out: dict[str, np.ndarray], s: _Setting) -> dict[str, np.ndarray]:
    """Return the block's columns in schema order, then the hidden effect columns.

    ``city`` holds the codes into :data:`CITIES` (made categorical by the caller).
    """
    t, code = out["t"], out["city_code"]
    bergen = code == 0
    period = (t + 1).astype(np.int16)
    data = {
        "person_id": out["person_id"],
        "city": code,
        "month": s.months[t],
        "period": period,
        "cohort": np.where(bergen, s.reform_period, 0).astype(np.int16),
        "treated": (bergen & (period >= s.reform_period)).astype(np.int8),
        "treated_2021": (bergen & (period >= s.second_period)).astype(np.int8),
        "city_unemployment": s.grids.unemployment[s.grids.burn_in :][t, code].astype(np.float32),
    }
    names = [*SCHEMA, *(c for c in ROW_EFFECTS.values() if c)]
    return {c: data[c] if c in data else out[c] for c in names}


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Return the columns as a DataFrame (``city`` categorical)."""
    frame = dict(columns)
    frame["city"] = pd.Categorical.from_codes(columns["city"], categories=CITIES)
    return pd.DataFrame(frame)


def _arrow(columns: dict[str, np.ndarray]) -> Any:
    """Return the columns as an Arrow table (``city`` dictionary-encoded), as pandas would."""
    import pyarrow as pa

    arrays = {c: pa.array(v) for c, v in columns.items() if c != "city"}
    arrays["city"] = pa.DictionaryArray.from_arrays(
        pa.array(columns["city"], pa.int8()), pa.array(CITIES, pa.string())
    )
    return pa.table({c: arrays[c] for c in columns})


def _accumulate(out: dict[str, np.ndarray], s: _Setting) -> np.ndarray:
    """Return the sums behind the truth on Bergen's treated rows of one block.

    Returns ``acc[measure, post month, stratum, (rows, sum with, sum of effects)]``, the
    stratum being ``4 * family_with_children + 2 * non_western + pre_reform_recipient``.
    """
    first_post = s.reform_period - 1
    rows = (out["city_code"] == 0) & (out["t"] >= first_post)
    key = (
        (out["t"][rows].astype(np.int64) - first_post) * 8
        + 4 * out["family_with_children"][rows]
        + 2 * out["non_western"][rows]
        + out["pre_reform_recipient"][rows]
    )
    size = s.n_post * 8
    recipient = out["recipient"][rows] == 1
    acc = np.zeros((len(MEASURES), s.n_post, 8, 3))
    for i, m in enumerate(MEASURES.values()):
        keep = recipient if m.get("where") else slice(None)
        k = key[keep]
        y = out[m["column"]][rows][keep]
        effect = ROW_EFFECTS[m["column"]]
        acc[i, :, :, 0] = np.bincount(k, minlength=size).reshape(s.n_post, 8)
        acc[i, :, :, 1] = np.bincount(k, weights=y, minlength=size).reshape(s.n_post, 8)
        if effect is not None:
            d = out[effect][rows][keep]
            acc[i, :, :, 2] = np.bincount(k, weights=d, minlength=size).reshape(s.n_post, 8)
    return acc


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
    covid: str = "2020-03",
    effect_scale: float = 1.0,
    second_increase: float = 2.2,
    city_noise: float = 1.0,
    burn_in: int = 24,
    store: str | Path | None = None,
    chunk_persons: int = 65_536,
    jobs: int | None = None,
) -> SimulatedData:
    """Simulate person-month register data for the Bergen social-assistance study.

    Parameters
    ----------
    seed
        Seed of every random draw; None draws fresh entropy (recorded in
        ``parameters["seed"]``).
    n_persons
        Persons in the study population of the ten cities (recipients in the two years
        before the reform, plus the inflow), placed in cities roughly in proportion to
        their population (Bergen gets about 15%). Each is observed in every month.
    scale
        Multiplies ``n_persons`` (for benchmarks).
    start, end
        First and last month of the data (illustrative: 2017-01 to 2022-12).
    reform, second_reform
        Months of Bergen's first and second rate increase.
    covid
        Month COVID-19 hits every city.
    effect_scale
        Multiplies every planted effect (the first stage included); 0 gives data
        without any effect of the reform.
    second_increase
        The planted effects from ``second_reform`` on are this multiple of those of the
        first increase (2.2: the step in March 2021 is 1.2 times the first step).
    city_noise
        Multiplies the city-level AR(1) shocks; 0 removes them.
    burn_in
        Months simulated before ``start`` and discarded, so spells are not censored.
    store
        A folder (created; it must be empty or new) to write the rows to, as Parquet
        files of ``chunk_persons`` persons each, instead of returning them in memory.
        The result's :attr:`~SimulatedData.data` is then None; read the rows with
        DuckDB from :attr:`~SimulatedData.store` (or :meth:`~SimulatedData.read`).
    chunk_persons
        Persons generated (and written) at a time, rounded up to whole blocks of
        4,096; peak memory grows with it, the data do not depend on it.
    jobs
        Processes that generate chunks (see :mod:`evalkit.parallel`; default
        ``EVALKIT_JOBS`` or 1). The data do not depend on it.

    Returns
    -------
    SimulatedData
        ``data`` has the columns of :data:`SCHEMA` (see the module docstring).
        ``truth[outcome][group]`` is the average effect on Bergen's treated
        person-months of the reform (the ``treated`` term) for the cell measures of
        :data:`MEASURES` and the groups of :data:`GROUPS`; ``truth_strata`` gives the
        same by household type, background, stock/inflow and month, and
        :meth:`~SimulatedData.truth_where` the effect on any subset of the rows.

    Examples
    --------
    >>> from evalkit.simulate import bergen_rates
    >>> sim = bergen_rates(seed=3, n_persons=500)
    >>> sim.data.shape
    (36000, 22)
    >>> sorted(sim.data["city"].unique())[:3]
    ['Bergen', 'Drammen', 'Fredrikstad']
    >>> [sim.truth[k]["all"] for k in ("work", "recipient", "duration")]
    [0.0, 0.0, 0.0]
    >>> sim.truth["benefit"]["families_with_children"] > sim.truth["benefit"]["all"] > 0
    True
    >>> bergen_rates(seed=3, n_persons=500, chunk_persons=100).data.equals(sim.data)
    True
    """
    used_seed = resolve_seed(seed)
    n_persons = _number(n_persons, "n_persons", low=1, integer=True)
    scale = _number(scale, "scale", low=0)
    effect_scale = _number(effect_scale, "effect_scale", low=0)
    second_increase = _number(second_increase, "second_increase", low=0)
    city_noise = _number(city_noise, "city_noise", low=0)
    burn_in = _number(burn_in, "burn_in", low=0, integer=True)
    chunk_persons = _number(chunk_persons, "chunk_persons", low=1, integer=True)
    n = round(n_persons * scale)
    if n < 1:
        raise DesignError(
            f"n_persons * scale gives {n} persons", hint="use a larger scale", column="scale"
        )
    first, last = _month(start, "start"), _month(end, "end")
    reform_m, second_m = _month(reform, "reform"), _month(second_reform, "second_reform")
    covid_m = _month(covid, "covid")
    if not first < reform_m <= last:
        raise DesignError(
            f"reform {reform_m} must lie after start {first} and not after end {last}",
            column="reform",
        )
    if second_m < reform_m:
        raise DesignError(
            f"second_reform {second_m} must not precede reform {reform_m}",
            column="second_reform",
        )
    folder = None if store is None else Path(store).expanduser().resolve()
    n_obs = (last - first).n + 1
    _check_size(n, n_obs, folder)
    if folder is not None:
        if folder.exists() and any(folder.iterdir()):
            raise DesignError(
                f"store folder {str(folder)!r} is not empty",
                hint="name a new or empty folder",
                column="store",
            )
        folder.mkdir(parents=True, exist_ok=True)

    months = pd.period_range(first - burn_in, last, freq="M")
    years = np.array([(m - first).n for m in months]) / 12.0
    root = np.random.SeedSequence(used_seed)
    city_seed, blocks = root.spawn(2)
    grids = model.make_grids(
        np.random.default_rng(city_seed),
        n_t=len(months),
        burn_in=burn_in,
        reform=(reform_m - months[0]).n,
        second=(second_m - months[0]).n,
        covid=(covid_m - months[0]).n,
        month_of_year=np.array([m.month - 1 for m in months]),
        years=years,
        effect_scale=effect_scale,
        second_increase=second_increase,
        city_noise=city_noise,
    )
    reform_period = (reform_m - first).n + 1
    setting = _Setting(
        grids=grids,
        blocks=blocks,
        n=n,
        months=months[burn_in:].to_timestamp().to_numpy(dtype="datetime64[ns]"),
        reform_period=reform_period,
        second_period=(second_m - first).n + 1,
        n_post=n_obs - reform_period + 1,
    )
    n_blocks = -(-n // model.BLOCK)
    per_chunk = max(1, -(-chunk_persons // model.BLOCK))
    spans = [(b, min(b + per_chunk, n_blocks)) for b in range(0, n_blocks, per_chunk)]
    from evalkit import parallel

    results = parallel.backend(jobs=jobs).map(
        _Chunk(setting, None if folder is None else str(folder)), spans
    )
    acc: np.ndarray = functools.reduce(operator.add, (r[1] for r in results))
    content = hashlib.sha256(b"".join(d for r in results for d in r[2])).hexdigest()
    data = effects = None
    if folder is None:
        frame = pd.concat([r[0] for r in results], ignore_index=True)
        effects = frame[[c for c in ROW_EFFECTS.values() if c]]
        data = frame[list(SCHEMA)]
        del frame
    strata = _strata(acc, setting)
    truth, by_period = _truth(acc, setting)
    parameters = {
        "seed": used_seed,
        "n_persons": n_persons,
        "scale": scale,
        "start": str(first),
        "end": str(last),
        "reform": str(reform_m),
        "second_reform": str(second_m),
        "covid": str(covid_m),
        "effect_scale": effect_scale,
        "second_increase": second_increase,
        "city_noise": city_noise,
        "burn_in": burn_in,
    }
    return SimulatedData(
        data=data,  # type: ignore[arg-type]
        truth=truth,
        description=_describe(parameters, n),
        name="bergen_rates",
        term="treated",
        groups=GROUPS,
        measures=MEASURES,
        truth_by_period=by_period,
        parameters=parameters,
        truth_strata=strata,
        effects=effects,
        store=folder,
        row_effects=ROW_EFFECTS,
        n_rows=n * n_obs,
        content_sha256=content,
    )


def _strata(acc: np.ndarray, s: _Setting) -> pd.DataFrame:
    """Return the counts and sums behind each measure, by stratum and treated month.

    With and without the reform the same rows are counted (receipt does not depend on
    it), so ``n0 == n1`` and ``sum0 = sum1 - (sum of the rows' effects)``.
    """
    n_m = len(MEASURES)
    m_idx, t_idx, k_idx = np.meshgrid(
        np.arange(n_m), np.arange(s.n_post), np.arange(8), indexing="ij"
    )
    flat = acc.reshape(-1, 3)
    period = (s.reform_period + t_idx.ravel()).astype(np.int16)
    frame = pd.DataFrame(
        {
            "outcome": np.array(list(MEASURES))[m_idx.ravel()],
            "period": period,
            "month": s.months[period - 1],
            "treated_2021": (period >= s.second_period).astype(np.int8),
            "family_with_children": (k_idx.ravel() // 4).astype(np.int8),
            "non_western": ((k_idx.ravel() // 2) % 2).astype(np.int8),
            "pre_reform_recipient": (k_idx.ravel() % 2).astype(np.int8),
            "n1": flat[:, 0].astype(np.int64),
            "sum1": flat[:, 1],
            "n0": flat[:, 0].astype(np.int64),
            "sum0": flat[:, 1] - flat[:, 2],
        }
    )
    return frame[frame["n1"] > 0].reset_index(drop=True)


def _truth(acc: np.ndarray, s: _Setting) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Return the effect on Bergen's treated rows by outcome and group, overall and monthly."""
    k = np.arange(8)
    family, non_western = k // 4 == 1, (k // 2) % 2 == 1
    masks = {
        "all": np.ones(8, bool),
        "families_with_children": family,
        "non_western": non_western,
        "non_western_families_with_children": family & non_western,
    }
    names = list(MEASURES)
    months = s.months[s.reform_period - 1 :]
    periods = np.arange(s.reform_period, s.reform_period + len(months))
    phase = np.where(periods >= s.second_period, "second", "first")
    truth: dict[str, dict[str, float]] = {m: {} for m in names}
    parts = []
    for group, mask in masks.items():
        sub = acc[:, :, mask, :].sum(axis=2)  # (measure, month, [rows, sum, effects])
        rows, effects = sub[..., 0], sub[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            total = effects.sum(axis=1) / rows.sum(axis=1)
            monthly = effects / rows
        for i, m in enumerate(names):
            truth[m][group] = float(total[i])
            ok = rows[i] > 0
            parts.append(
                pd.DataFrame(
                    {
                        "outcome": m,
                        "group": group,
                        "month": months[ok],
                        "phase": phase[ok],
                        "effect": monthly[i][ok],
                        "weight": rows[i][ok],
                    }
                )
            )
    return truth, pd.concat(parts, ignore_index=True)


def _describe(p: dict[str, Any], n: int) -> str:
    fmt = ", ".join
    return (
        f"Simulated person-month register data (simulator 'bergen_rates', seed {p['seed']}): "
        f"{n} persons who received social assistance in the two years before "
        f"{p['reform']} or later (the inflow), in ten Norwegian cities, observed monthly "
        f"from {p['start']} to {p['end']}. Bergen raises its social-assistance rates in "
        f"{p['reform']} and again in {p['second_reform']}; the other nine cities do not. "
        f"COVID-19 hits every city from {p['covid']} through its unemployment, with "
        "city-specific intensity and recovery. Planted effects in Bergen (first increase; "
        f"from {p['second_reform']} {p['second_increase']:g} times as large; all scaled by "
        f"effect_scale = {p['effect_scale']:g}): rates up "
        f"{EFFECTS['rate'][0]:.0%}, and families with children keep the child benefit; "
        "participation in labour-market measures or education changes by "
        f"{fmt(f'{v:+.3f}' for v in EFFECTS['measure'])} and earnings of those who work "
        f"by {fmt(f'{v:+.0%}' for v in EFFECTS['earnings'])} for {fmt(_G_LABELS)}; no "
        "effect at all on work, receipt or the duration of receipt. Illustrative cities, "
        "period, levels and effect sizes. The true values are the average effects on "
        "Bergen's treated person-months, from both potential outcomes of every row."
    )
