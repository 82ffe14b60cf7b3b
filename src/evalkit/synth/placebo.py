"""Placebo-in-space inference for synthetic control (Abadie, Diamond & Hainmueller 2010).

Every donor is fitted as if it had been treated, with the other donors as its pool (the
treated unit left out). The treated unit's statistic is ranked among the placebos':

- for the average effect, the ratio of post- to pre-treatment root mean squared
  prediction error (RMSPE), which scales each run by its own pre-period fit;
- for the effect in period ``t``, ``|gap_t| / pre-RMSPE``.

The p-value is ``(1 + #{placebos at least as extreme}) / (1 + n)`` with ``n`` placebos,
so it moves in steps of ``1 / (1 + n)`` and cannot fall below that. Placebos whose
pre-period mean squared prediction error exceeds ``cutoff`` times the treated unit's can
be left out (ADH 2010 use cutoffs of 20, 5 and 2); the default keeps all, since the
ratio statistics are already scaled by each run's pre-period fit.

Intervals invert the test: the set of effects ``tau`` (constant over the treated periods
for the average; per period otherwise) that the test does not reject when ``tau`` is
subtracted from the treated unit's post-period outcomes. Subtracting a constant from
those outcomes leaves every fit unchanged (the weights use pre-period data only), so the
sets have closed forms. When ``1 / (1 + n)`` exceeds ``1 - level`` no effect can be
rejected and the interval is unbounded (``-inf, inf``, with the reason stated). When no
constant effect passes the ratio test the set is empty: the interval is left empty (NaN)
and the reason stated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.data.wide import WideOutcomes
from evalkit.errors import DesignError
from evalkit.inference.spec import Inference

__all__ = ["OWN_DEFAULT", "PlaceboRuns", "placebo_cutoff", "placebo_in_space", "rank_p_value"]

#: The default inference of one-treated-unit synthetic control estimators, and why.
OWN_DEFAULT = (
    "placebo",
    "automatic: one treated unit, so placebo in space (every donor refitted as if treated; "
    "Abadie, Diamond & Hainmueller 2010)",
)


def rank_p_value(stat: float, placebo_stats: np.ndarray) -> float:
    """Return ``(1 + #{placebo >= stat}) / (1 + n)``.

    Examples
    --------
    >>> rank_p_value(3.0, np.array([1.0, 2.0, 3.0, 4.0]))
    0.6
    """
    placebo_stats = np.asarray(placebo_stats, dtype=float)
    return float((1 + np.sum(placebo_stats >= stat)) / (1 + placebo_stats.size))


def _needed(n: int, alpha: float) -> int:
    """How many placebos must be at least as extreme for a p-value above ``alpha``."""
    return math.floor(alpha * (n + 1) - 1 + 1e-12) + 1


@dataclass(frozen=True, eq=False)
class PlaceboRuns:
    """The treated unit's fit and every placebo run, with the statistics ranked on them.

    Attributes
    ----------
    units
        Unit labels; the treated unit first.
    gaps
        Gap paths (outcome minus synthetic), one row per unit in ``units``.
    times
        The periods (columns of ``gaps``).
    n_pre
        Number of pre-treatment periods.
    cutoff
        Placebos with pre-period MSPE above ``cutoff`` times the treated unit's are left
        out of the comparisons (None keeps all).
    """

    units: np.ndarray
    gaps: np.ndarray
    times: np.ndarray
    n_pre: int
    cutoff: float | None = None

    @property
    def pre_rmspe(self) -> np.ndarray:
        """Pre-period RMSPE of every run."""
        return np.sqrt(np.mean(self.gaps[:, : self.n_pre] ** 2, axis=1))

    @property
    def post_rmspe(self) -> np.ndarray:
        """Post-period RMSPE of every run."""
        return np.sqrt(np.mean(self.gaps[:, self.n_pre :] ** 2, axis=1))

    @property
    def ratio(self) -> np.ndarray:
        """Post/pre RMSPE ratio of every run."""
        with np.errstate(divide="ignore"):
            return self.post_rmspe / self.pre_rmspe

    @property
    def kept(self) -> np.ndarray:
        """Which placebo runs enter the comparisons (the treated unit's entry is True)."""
        keep = np.ones(len(self.units), dtype=bool)
        if self.cutoff is not None:
            mspe = self.pre_rmspe**2
            keep[1:] = mspe[1:] <= self.cutoff * mspe[0]
        return keep

    @property
    def n_placebos(self) -> int:
        """Number of placebo runs compared with the treated unit."""
        return int(self.kept[1:].sum())

    @property
    def granularity(self) -> float:
        """The step of the p-values, ``1 / (1 + n_placebos)``."""
        return 1.0 / (1 + self.n_placebos)

    def _scaled(self) -> np.ndarray:
        """``|gap_t| / pre-RMSPE`` for every run and treated period."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(self.gaps[:, self.n_pre :]) / self.pre_rmspe[:, None]

    def statistics(self) -> np.ndarray:
        """Return the treated unit's statistics: RMSPE ratio, then each period's scaled gap."""
        return np.r_[self.ratio[0], self._scaled()[0]]

    def p_value_ratio(self) -> float:
        """p-value of the post/pre RMSPE ratio test (the average effect)."""
        ratio = self.ratio
        return rank_p_value(ratio[0], ratio[1:][self.kept[1:]])

    def p_values_by_period(self) -> np.ndarray:
        """p-value of each treated period's scaled gap."""
        scaled = self._scaled()
        others = scaled[1:][self.kept[1:]]
        return np.array([rank_p_value(scaled[0, j], others[:, j]) for j in range(scaled.shape[1])])

    def interval_att(self, level: float) -> tuple[float, float, str | None]:
        """Inverted ratio test: constant effects not rejected at ``level``.

        Returns ``(low, high, reason)``: infinite bounds with the reason when the set is
        unbounded, NaN with the reason when it is empty.
        """
        n = self.n_placebos
        need = _needed(n, 1.0 - level)
        if need <= 0:
            return -math.inf, math.inf, self._unbounded(level)
        ratios = np.sort(self.ratio[1:][self.kept[1:]])[::-1]
        crit = ratios[need - 1]
        post = self.gaps[0, self.n_pre :]
        mean = float(post.mean())
        spread = float(np.mean((post - mean) ** 2))
        room = crit**2 * self.pre_rmspe[0] ** 2 - spread
        if room < 0:
            return (
                math.nan,
                math.nan,
                f"no constant effect passes the ratio test at level {level:g}: the treated "
                "unit's gaps vary more over the treated periods than any placebo's",
            )
        half = math.sqrt(room)
        return mean - half, mean + half, None

    def intervals_by_period(self, level: float) -> tuple[np.ndarray, np.ndarray, str | None]:
        """Inverted per-period tests: ``gap_t -/+ c_t * pre-RMSPE``."""
        n = self.n_placebos
        need = _needed(n, 1.0 - level)
        post = self.gaps[0, self.n_pre :]
        if need <= 0:
            inf = np.full(post.shape, np.inf)
            return -inf, inf, self._unbounded(level)
        others = np.sort(self._scaled()[1:][self.kept[1:]], axis=0)[::-1]
        half = others[need - 1] * self.pre_rmspe[0]
        return post - half, post + half, None

    def _unbounded(self, level: float) -> str:
        return (
            f"with {self.n_placebos} placebos the smallest attainable p-value is "
            f"1/{self.n_placebos + 1} = {self.granularity:.3f} > {1 - level:.3g}, so no "
            f"effect can be rejected and the {level:.0%} interval is unbounded"
        )

    def table(self) -> pd.DataFrame:
        """One row per run: pre/post RMSPE, their ratio, its rank and whether it is kept."""
        ratio = self.ratio
        order = (-ratio).argsort(kind="stable")
        rank = np.empty(len(ratio), dtype=int)
        rank[order] = np.arange(1, len(ratio) + 1)
        return pd.DataFrame(
            {
                "unit": self.units,
                "treated": np.arange(len(self.units)) == 0,
                "pre_rmspe": self.pre_rmspe,
                "post_rmspe": self.post_rmspe,
                "ratio": ratio,
                "rank": rank,
                "kept": self.kept,
            }
        )

    def gap_frame(self) -> pd.DataFrame:
        """Gaps as a periods x units DataFrame (the placebo plot's data)."""
        return pd.DataFrame(self.gaps.T, index=pd.Index(self.times), columns=self.units)


def placebo_in_space(
    fit_gap: Callable[[int, np.ndarray], np.ndarray],
    main_gap: np.ndarray,
    wide: WideOutcomes,
    treated_row: int,
    donor_rows: np.ndarray,
    n_pre: int,
    cutoff: float | None = None,
) -> PlaceboRuns:
    """Run ``fit_gap(row, donors)`` for every donor as if treated, the treated unit left out.

    ``fit_gap`` returns the gap path of unit ``row`` fitted on ``donors`` (rows of the
    wide matrix) by the same method as the treated unit's fit, whose gap is ``main_gap``.
    """
    if donor_rows.size < 2:
        raise DesignError(
            "placebo inference needs at least two donors (each placebo needs a pool)",
            hint="use inference='none'",
            column="inference",
        )
    gaps = [main_gap]
    for j in donor_rows:
        gaps.append(fit_gap(int(j), donor_rows[donor_rows != j]))
    units = np.r_[wide.units[[treated_row]], wide.units[donor_rows]]
    return PlaceboRuns(units, np.array(gaps), wide.times, n_pre, cutoff)


def placebo_cutoff(spec: Inference | None) -> float | None:
    """Return the pre-fit exclusion cutoff of a placebo spec (None: keep every run)."""
    if spec is None or spec.method != "placebo":
        return None
    value = getattr(spec.typed(), "cutoff", None)
    return None if value is None else float(value)
