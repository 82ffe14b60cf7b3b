"""Staggered-adoption samples and their two-way fixed-effects regression.

The rows of a staggered-adoption design (cohorts, event times) as integer-coded arrays
(:func:`staggered_sample`, :class:`StaggeredSample`), pruned of rows without
information (:func:`prune_sample`), and the unit-and-period regression of the
event-study estimators with its covariance (:func:`panel_regression`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.data.panel import Panel, nested_within
from evalkit.data.periods import PeriodCoding, period_label
from evalkit.did._absorbed import AbsorbedFit, absorbed_ols, prune, warn_dropped
from evalkit.did._covariance import (
    REGRESSION_METHODS,
    UnitDemeanedDesign,
    covariance,
    regression_inference,
)
from evalkit.did._options import check_role_names
from evalkit.errors import DataError, DesignError, RowsDroppedWarning
from evalkit.inference import vcov as sandwich
from evalkit.numerics.within import WithinTransform

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.core.estimator import FitContext

__all__ = [
    "PanelRegression",
    "StaggeredSample",
    "check_staggered_roles",
    "cohort_sizes",
    "panel_regression",
    "prune_sample",
    "staggered_roles",
    "staggered_sample",
]


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), len(uniq)


@dataclasses.dataclass(frozen=True)
class StaggeredSample:
    """The rows of a staggered-adoption design, as arrays with integer codes.

    Attributes
    ----------
    y, x, w
        Outcome, covariates (n, p) and weights (None when unweighted).
    unit, time, cluster
        Integer codes ``0..n-1``; ``n_units``, ``n_periods``, ``n_clusters`` levels.
    t, cohort
        Period values and each row's cohort (first treated period; 0 = never treated).
    times
        The sorted distinct periods present.
    periods
        For a date or Period time column, how the period codes map to periods.
    """

    y: np.ndarray
    x: np.ndarray
    w: np.ndarray | None
    unit: np.ndarray
    time: np.ndarray
    cluster: np.ndarray
    t: np.ndarray
    cohort: np.ndarray
    n_units: int
    n_periods: int
    n_clusters: int
    times: np.ndarray
    cluster_name: str
    nested: bool
    integer_times: bool
    dropped: dict[str, int]
    cluster_labels: np.ndarray
    periods: PeriodCoding | None = None

    @property
    def n_obs(self) -> int:
        """Number of rows."""
        return len(self.y)

    @property
    def event(self) -> np.ndarray:
        """Event time ``t - cohort`` of each row (NaN for never-treated units)."""
        with np.errstate(invalid="ignore"):
            return np.where(self.cohort > 0, self.t - self.cohort, np.nan)

    def key(self, value: float) -> Any:
        """Return an event time as an int when periods are whole numbers."""
        return period_label(value, integer=self.integer_times, periods=None)

    def label(self, value: float) -> Any:
        """Return a period or cohort as results show it (a Period for dates/periods)."""
        return period_label(value, integer=self.integer_times, periods=self.periods)

    def subset(self, mask: np.ndarray, reasons: Mapping[str, int] | None = None) -> StaggeredSample:
        """Return the rows in ``mask`` with codes recomputed (and reasons recorded)."""
        unit, n_units = _codes(self.unit[mask])
        time, n_periods = _codes(self.time[mask])
        kept_clusters = np.unique(self.cluster[mask])
        cluster, n_clusters = _codes(self.cluster[mask])
        t = self.t[mask]
        return dataclasses.replace(
            self,
            y=self.y[mask],
            x=self.x[mask],
            w=None if self.w is None else self.w[mask],
            unit=unit,
            time=time,
            cluster=cluster,
            t=t,
            cohort=self.cohort[mask],
            n_units=n_units,
            n_periods=n_periods,
            n_clusters=n_clusters,
            times=np.unique(t),
            dropped={**self.dropped, **(reasons or {})},
            cluster_labels=self.cluster_labels[kept_clusters],
        )

    def units_in(self, mask: np.ndarray) -> int:
        """Return the number of distinct units among the rows in ``mask``."""
        return int(np.unique(self.unit[mask]).size)


def check_staggered_roles(est: Any) -> None:
    """Validate the roles shared by the staggered-adoption estimators (in place)."""
    check_role_names(
        est, ("outcome", "unit", "time"), ("cohort", "treatment", "weights", "cluster")
    )
    if (est.cohort is None) == (est.treatment is None):
        raise DesignError(
            f"{type(est).__name__} needs exactly one of cohort= (first treated period) or "
            "treatment= (an absorbing 0/1 column)",
            hint="e.g. cohort='first.treat' with never-treated units coded 0",
            column="cohort",
        )
    if not isinstance(est.drop_singletons, bool):
        raise DesignError(
            f"drop_singletons must be True or False, got {est.drop_singletons!r}",
            column="drop_singletons",
        )


def staggered_sample(
    est: Any, data: pd.DataFrame, ctx: FitContext, *, stacklevel: int = 4
) -> StaggeredSample:
    """Validate a staggered-adoption design and return its rows.

    ``est`` has the roles ``outcome, unit, time, cohort`` or ``treatment``,
    ``covariates``, ``weights``, ``cluster``. The cohort is read from ``cohort``
    (never-treated coded 0 or missing) or derived from an absorbing 0/1 ``treatment``
    as each unit's first treated period. Cohorts after the last period are recoded as
    never treated; units treated from the first period on (no untreated period) are
    dropped with a :class:`~evalkit.errors.RowsDroppedWarning`.
    """
    spec = ctx.inference
    cluster_col = (spec.cluster if spec is not None else None) or est.cluster or est.unit
    panel = Panel(
        data,
        outcome=est.outcome,
        unit=est.unit,
        time=est.time,
        treatment=est.treatment,
        cohort=est.cohort,
        covariates=list(est.covariates),
        cluster=None if cluster_col == est.unit else cluster_col,
        weights=est.weights,
        panel=True,
        absorbing=est.treatment is not None,
        stacklevel=stacklevel,
    )
    t = panel.column(est.time).to_numpy(dtype=float)  # numbers, or period codes of dates
    unit = panel.unit_codes
    if est.cohort is not None:
        cohort = panel.values(est.cohort).astype(float).copy()
        if (cohort < 0).any():
            raise DataError(
                f"cohort column {est.cohort!r} has negative values",
                hint="code never-treated units as 0 (or missing) and others by their first "
                "treated period",
                column=est.cohort,
            )
    else:
        d = panel.values(est.treatment)
        first = np.full(panel.n_units, np.inf)
        np.minimum.at(first, unit[d > 0], t[d > 0])
        cohort = np.where(np.isfinite(first), first, 0.0)[unit]
    dropped = dict(panel.dropped)
    times = np.unique(t)
    late = cohort > times[-1]
    cohort[late] = 0.0  # first treated after the sample: never treated within it
    if cluster_col == est.unit:
        cluster = unit
        nested = True
        labels = np.asarray(panel.units)
    else:
        cluster = panel.cluster_codes
        nested = bool(nested_within(unit, cluster, panel.n_units).all())
        labels = np.asarray(pd.factorize(panel.column(cluster_col), sort=True)[1])
    integer_times = bool(np.all(times == np.round(times)) and np.all(cohort == np.round(cohort)))
    sample = StaggeredSample(
        y=panel.values(est.outcome).astype(float),
        x=panel.matrix(list(est.covariates)),
        w=panel.values(est.weights).astype(float) if est.weights else None,
        unit=unit,
        time=panel.time_codes,
        cluster=cluster,
        t=t,
        cohort=cohort,
        n_units=panel.n_units,
        n_periods=panel.n_periods,
        n_clusters=panel.n_clusters if cluster_col != est.unit else panel.n_units,
        times=times,
        cluster_name=cluster_col,
        nested=nested,
        integer_times=integer_times,
        dropped=dropped,
        cluster_labels=labels,
        periods=panel.periods,
    )
    early = (cohort > 0) & (cohort <= times[0])
    if early.any():
        n_units = sample.units_in(early)
        reason = "rows of units treated from the first period on"
        warnings.warn(
            f"dropped {int(early.sum())} rows of {n_units} unit(s) treated from the first "
            f"period on: they have no untreated period to compare with",
            RowsDroppedWarning,
            stacklevel=stacklevel,
        )
        sample = sample.subset(~early, {reason: int(early.sum())})
    if not (sample.cohort > 0).any():
        raise DataError(
            f"no treated units remain in {est.cohort or est.treatment!r}",
            hint="cohort must be the first treated period on the scale of "
            f"{est.time!r}, with 0 or missing for never-treated units",
            column=est.cohort or est.treatment,
        )
    return sample


def prune_sample(sample: StaggeredSample, singletons: bool, stacklevel: int = 5) -> StaggeredSample:
    """Drop zero-weight rows and (optionally) singleton units or periods, with a warning."""
    keep, reasons = prune(
        [(sample.unit, sample.n_units), (sample.time, sample.n_periods)], sample.w, singletons
    )
    if not reasons:
        return sample
    warn_dropped(reasons, len(keep), stacklevel=stacklevel)
    return sample.subset(keep, reasons)


@dataclasses.dataclass(frozen=True)
class PanelRegression:
    """A two-way fixed-effects regression on a staggered sample, with its covariance."""

    fit: AbsorbedFit
    cov: sandwich.Sandwich
    method: str
    reason: str | None
    within: WithinTransform
    k_total: int
    n_treated_clusters: int
    design: UnitDemeanedDesign | None
    n_clusters: int
    spec: Any = None

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom (rows minus regressors and fixed effects)."""
        return self.fit.n - self.k_total

    def wald_df(self) -> float:
        """Denominator df of Wald F tests: G - 1 when clustered, else the residual df."""
        if self.method in ("cluster", "cr2"):
            return float(self.n_clusters - 1)
        return float(self.df_resid)


def panel_regression(
    sample: StaggeredSample,
    x: np.ndarray,
    names: Sequence[str],
    treated: np.ndarray,
    spec: Any,
    hint: str | None = None,
    stacklevel: int = 5,
    supported: tuple[str, ...] = REGRESSION_METHODS,
) -> PanelRegression:
    """Regress the outcome on ``x`` with unit and period effects absorbed.

    ``treated`` marks the treated observations (used to count treated clusters for the
    automatic choice of inference). Inference as :class:`~evalkit.did.TWFE`.
    """
    w = sample.w
    within = WithinTransform((sample.unit, sample.time), weights=w)
    fit = absorbed_ols(sample.y, x, names, within, w, "unit and period", hint=hint)
    k_total = fit.k + within.n_absorbed()
    choice = regression_inference(
        spec,
        supported,
        clusters=sample.cluster,
        time=sample.time,
        treated=treated,
        cluster_name=sample.cluster_name,
        stacklevel=stacklevel - 1,
    )
    method, reason = choice.method, choice.reason
    n_treated = choice.counts.treated_side if choice.counts is not None else 0
    # CR1 small-sample K: unit effects nested in the clusters are not counted, the
    # period effects carry the constant (pyfixest 0.60 / fixest defaults), as TWFE.
    k_small = fit.k + sample.n_periods if sample.nested else k_total
    design = (
        UnitDemeanedDesign(x, sample.time, sample.n_periods, sample.unit, w)
        if sample.nested
        else None
    )
    cov = covariance(
        "none" if method == "wild" else method,  # wild: test inversion by the caller
        fit,
        clusters=sample.cluster,
        n_clusters=sample.n_clusters,
        k_total=k_total,
        k_small=k_small,
        design_rows=None if design is None else design.rows,
        cluster_name=sample.cluster_name,
    )
    return PanelRegression(
        fit=fit,
        cov=cov,
        method=method,
        reason=reason,
        within=within,
        k_total=k_total,
        n_treated_clusters=n_treated,
        design=design,
        n_clusters=sample.n_clusters,
        spec=choice.spec,
    )


def cohort_sizes(sample: Any) -> dict[str, int]:
    """Count the units per cohort (``"never"`` for never-treated), with JSON-safe keys."""
    first = np.zeros(sample.n_units, dtype=float)
    first[sample.unit] = sample.cohort
    values, counts = np.unique(first, return_counts=True)
    return {
        ("never" if v == 0 else str(sample.label(v))): int(c)
        for v, c in zip(values, counts, strict=True)
    }


def staggered_roles(est: Any) -> dict[str, Any]:
    """Return the role options of a staggered-adoption estimator that are set (for ``info``)."""
    roles = {
        "outcome": est.outcome,
        "unit": est.unit,
        "time": est.time,
        "cohort": est.cohort,
        "treatment": est.treatment,
        "covariates": list(est.covariates),
        "cluster": est.cluster,
        "weights": est.weights,
    }
    return {k: v for k, v in roles.items() if v not in (None, [])}
