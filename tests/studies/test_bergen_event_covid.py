"""The Bergen event study and COVID-19: city unemployment as a covariate (issue 12).

The event study compares Bergen with the nine other cities weighted by their cells'
persons, so Oslo carries about half of the comparison; the simulator hits Oslo hardest
(COVID-19 intensity 1.25 against Bergen's 1.10) and lets it recover slowest (half-life 10
months against 7). Unadjusted, the comparison cities lose more work than Bergen after
March 2020 and the estimates of work, activity and earnings are biased towards no effect
(12 seeds, July 2020 - February 2021, work of non-Western immigrants: +0.0147, t = 5.4,
on a true zero). The study's ``event`` and ``honest`` analyses therefore take city
unemployment as a covariate (+0.0036, t = 1.4); ``benchmarks/results/bergen_signs.md``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from evalkit.simulate import bergen_rates
from evalkit.study import run_study
from evalkit.study.design import Design

STUDY = Path(__file__).resolve().parents[2] / "studies" / "bergen_rates"
SEED = 20200301  # the study's seed


def test_person_weighted_comparison_is_hit_harder_and_longer_than_bergen():
    """The cause: weighted by persons, the comparison cities' unemployment exceeds Bergen's."""
    sim = bergen_rates(seed=SEED, n_persons=20_000)
    data = sim.data
    months = data["month"].drop_duplicates().sort_values().reset_index(drop=True)
    march = int(np.flatnonzero(months == np.datetime64("2020-03-01"))[0])
    for group, rows in (("all", data), ("non_western", data[data["non_western"] == 1])):
        persons = rows[rows["period"] == 1].groupby("city", observed=True).size()
        unemployment = rows.groupby(["month", "city"], observed=True)["city_unemployment"].first()
        wide = unemployment.unstack("city")
        wide = wide - wide.iloc[march - 1]  # the rise from each city's own level (FE absorb it)
        donors = persons.drop("Bergen")
        weighted = wide[donors.index] @ (donors / donors.sum())
        gap = (weighted - wide["Bergen"]).to_numpy()
        assert abs(gap[:march]).max() < 1e-5, group  # no COVID-19 before March 2020
        assert donors["Oslo"] / donors.sum() > 0.4, group
        # six to eleven months after March 2020 the comparison's rise exceeds Bergen's by
        # about half a point or more (measured at the study's size: 0.47-0.61 everyone, 0.67-0.78
        # non-Western); a point of unemployment moves work by 0.010-0.016
        assert gap[march + 6 : march + 12].min() > 0.4, group


def test_event_and_honest_analyses_partial_out_city_unemployment():
    design = Design.from_toml(STUDY / "study.toml")
    by_id = {a.id: a for a in design.analyses}
    for analysis in ("event", "honest", "sc"):
        assert "city_unemployment" in by_id[analysis].options.get("covariates", ()), analysis


def _event_errors(seed: int) -> dict[tuple[str, str], float]:
    """Mean error of the study's event study over event times 4-11, by outcome and group."""
    design = Design.from_toml(STUDY / "study.toml")
    design = design.model_copy(update={"analyses": [a for a in design.analyses if a.id == "event"]})
    overrides = {
        "study.seed": seed,
        "report.figures": False,
        "analysis.event.inference": "iid",  # point estimates do not depend on it
        "analysis.event.expand.outcome": ["work", "activity"],
        "analysis.event.expand.group": ["all", "non_western"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        run = run_study(design, Path(tmp) / "out", root=STUDY, progress=False, overrides=overrides)
    out = {}
    for a in run.results["analyses"]:
        _, outcome, group = a["id"].split(".")
        errors = [r["estimate"] - r["truth"] for r in a["tidy"] if 4 <= r["event_time"] <= 11]
        out[(outcome, group)] = float(np.mean(errors))
    return out


@pytest.mark.slow
def test_event_study_is_unbiased_for_work_and_activity_after_march_2020():
    """Over 12 seeds the mean error is within 3 SE of zero (without the covariate t 4.3-7.2)."""
    runs = [_event_errors(seed) for seed in range(1, 13)]
    for key in runs[0]:
        errors = np.array([r[key] for r in runs])
        t = errors.mean() / (errors.std(ddof=1) / math.sqrt(len(errors)))
        assert abs(t) < 3, (key, errors.mean(), t)
