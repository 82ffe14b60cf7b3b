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
