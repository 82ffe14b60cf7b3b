"""Hand-made results with fixed numbers for the table golden tests.

They have the public surface that ``evalkit.report.table`` reads (``tidy()``, ``info``,
``inference``, ``level``, ``estimator``), so the golden outputs pin the renderer alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from evalkit.core.result import InferenceInfo

COLS = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
NAN = float("nan")


@dataclass
class Fake:
    rows: list[tuple]
    inference: InferenceInfo
    info: dict[str, Any] = field(default_factory=dict)
    estimator: str = "did.Fake"
    level: float = 0.95

    def tidy(self, level: float | None = None) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLS)


# analytic standard errors, two terms (one with a LaTeX special), fixed effects, clusters
A = Fake(
    [("post", 0.51234, 0.1, 5.1, 0.0004, 0.3, 0.7), ("x_1", -0.02, 0.03, -0.7, 0.5, -0.1, 0.04)],
    InferenceInfo("cluster", "CR1 by city", cluster="city", n_clusters=10),
    {"n_obs": 1200, "n_clusters": 10, "fixed_effects": ["city", "month"], "outcome": "y"},
)
# an interval and p-value by test inversion, no standard error
B = Fake(
    [("post", 0.4, NAN, NAN, 0.03, 0.05, 0.81)],
    InferenceInfo("wild", "wild cluster bootstrap, test inversion", cluster="city", n_clusters=10),
    {"n_obs": 1200, "fixed_effects": ["city", "month"], "outcome": "y"},
)
# point estimates only, a term of its own with specials, no fixed effects reported
C = Fake(
    [("ATT & 50%", -0.25, NAN, NAN, NAN, NAN, NAN), ("post", 1.0, NAN, NAN, NAN, NAN, NAN)],
    InferenceInfo("none", "a decomposition of point estimates"),
    {"n_obs": 980, "outcome": "y_$"},
)
# a p-value only (e.g. a randomization test without an inverted interval)
D = Fake(
    [("post", 0.3, NAN, NAN, 0.2, NAN, NAN)],
    InferenceInfo("permutation", "randomization test"),
    {"n_obs": 50},
)


# ---------------------------------------------------------------------- study reports
def _row(term, est, lo, hi, truth=None, **keys):
    return {
        "term": term,
        "estimate": est,
        "std_error": None,
        "statistic": None,
        "p_value": 0.04,
        "conf_low": lo,
        "conf_high": hi,
        "truth": truth,
        **keys,
    }


def _entry(aid, family, outcome, group, tidy, *, warnings=(), method="conformal", **extra):
    return {
        "id": aid,
        "family": family,
        "title": f"{family} analyses",
        "estimator": "did.Fake",
        "labels": {"outcome": outcome, "group": group},
        "outcome": outcome,
        "group": group,
        "where": None,
        "split": None,
        "options": {"unit": "city", "time": "month", "outcome": outcome},
        "inference": {"method": method, "description": f"{method} inference", "kind": "analytic"},
        "level": 0.95,
        "seed": 1,
        "tidy": tidy,
        "info": {"n_obs": 720, "n_clusters": 10, "n_treated_clusters": 1},
        "data": {"n_cells": 720, "n_suppressed_cells": 0},
        "warnings": list(warnings),
        "error": None,
        **extra,
    }


FEW = (
    "FewClustersWarning: CR2 standard errors with 1 treated and 9 untreated clusters of "
    "'city' over-reject"
)


def study_payload(simulated: bool = True) -> dict[str, Any]:
    """A results.json payload with fixed numbers: two families, an event study, warnings."""
    event = [
        _row("ATT(e)", 0.01 * e, 0.01 * e - 0.02, 0.01 * e + 0.02, event_time=e)
        for e in (-3, -2, 0, 1, 2, 12, 13)
    ]
    analyses = [
        _entry(
            "twfe.work.all",
            "twfe",
            "work",
            "all",
            [_row("treated", -0.0068, -0.02, 0.011, -0.0068)],
        ),
        _entry(
            "twfe.income.all",
            "twfe",
            "income",
            "all",
            [_row("treated", 181.5, -120.0, 306.3, 298.6)],
        ),
        _entry(
            "twfe.work.nw", "twfe", "work", "nw", [_row("treated", -0.004, -0.03, 0.015, -0.011)]
        ),
        _entry(
            "es.work.all",
            "es",
            "work",
            "all",
            [_row("average", -0.005, -0.03, 0.02, -0.0068), *event],
            warnings=[FEW],
            method="cr2",
        ),
        _entry(
            "es.work.nw",
            "es",
            "work",
            "nw",
            event,
            warnings=[FEW.replace("9 untreated", "8 untreated")],
            method="cr2",
        ),
        _entry(
            "ddd.work.nw",
            "ddd",
            "work",
            "nw",
            [_row("DDD", 0.0056, -0.0118, 0.0231, -0.0061)],
            method="iid",
        ),
    ]
    analyses[-1]["labels"] = {"outcome": "work", "split_by": "nw"}
    analyses[-1]["split"] = {"by": "nw", "column": "in_nw", "condition": "nw = 1"}
    if not simulated:
        for a in analyses:
            for r in a["tidy"]:
                r.pop("truth", None)
    return {
        "evalkit_version": "0",
        "design_sha256": "d" * 64,
        "seed": 1,
        "min_cell_size": 5,
        "data": {
            "kind": "simulator" if simulated else "file",
            "simulated": simulated,
            "simulator": "bergen_rates" if simulated else None,
            "file": None if simulated else "extract.parquet",
            "description": "Simulated person-months." if simulated else None,
            "sha256": "e" * 64,
        },
        "cells": [],
        "analyses": analyses,
    }


@dataclass
class FakeStudy:
    """The attributes of a Study that the report reads."""

    root: Any
    title: str = "Fake study"
    name: str = "fake"
    description: str = ""
    notes: str = "**COVID-19.** A study note."
    simulated_notes: str = "**Simulator.** Every detail is illustrative."
    units: dict[str, str] = field(default_factory=lambda: {"income": "NOK per month"})
    marks: dict[str, str] = field(
        default_factory=lambda: {"2020-03-01": "first increase", "2021-03-01": "second"}
    )
    figures: bool = True
    min_cell_size: int = 5
    collapse: Any = None
    columns: dict[str, str] = field(default_factory=dict)
    analyses: tuple = ()
