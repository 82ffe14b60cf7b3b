"""Event study: dynamic two-way fixed effects with leads and lags of treatment."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import make_table
from evalkit.did._covariance import (
    REGRESSION_METHODS,
    inference_info,
    regression_scores,
    standard_errors,
    wald_test,
)
from evalkit.did._event_time import EventTimeResult, event_term
from evalkit.did._options import reference_periods
from evalkit.did._staggered import (
    check_staggered_roles,
    cohort_sizes,
    panel_regression,
    prune_sample,
    staggered_roles,
    staggered_sample,
)
from evalkit.did._test_inversion import inversion_info, run_test_inversion
from evalkit.errors import DesignError, NotEstimableError, RowsDroppedWarning

__all__ = ["EventStudy"]

ControlGroup = Literal["never_treated", "not_yet_treated"]
CONTROL_GROUPS: tuple[str, ...] = get_args(ControlGroup)


@register("did.EventStudy")
@dataclasses.dataclass(frozen=True, kw_only=True)
class EventStudy(Estimator):
    """Event study: two-way fixed effects with leads and lags of treatment.

    Regresses the outcome on indicators of event time ``e = t - g`` (periods since the
    unit's cohort ``g``, its first treated period), leaving out the reference period(s),
    with unit and period effects absorbed and optional time-varying covariates. Each
    coefficient compares treated units ``e`` periods from treatment with their reference
    period, relative to the same change among comparison observations: never-treated
    units and (with ``control_group="not_yet_treated"``) treated units' observations
    more than the window's lead periods before treatment. Leads (``e < 0``) are
    pre-trend checks; their joint Wald test is in ``info["pretrend_test"]``.

    With staggered adoption and effects that vary across cohorts, the coefficients mix
    cohorts with weights that can be negative and leads can pick up post-treatment
    effects (Sun & Abraham 2021); use :class:`~evalkit.did.SunAbraham`,
    :class:`~evalkit.did.ImputationDiD` or :class:`~evalkit.did.CallawaySantAnna` there.

    Parameters
    ----------
    outcome, unit, time
        Column names. ``time`` holds numbers (e.g. year or a running month number),
        dates or pandas periods (:mod:`evalkit.data.periods`: event times then count
        periods of that unit, e.g. months).
    cohort
        First treated period of each unit, on the scale of ``time`` (dates or periods
        with ``NaT`` for never treated when ``time`` holds them); never-treated units
        coded 0 or missing. Give this or ``treatment``.
    treatment
        An absorbing 0/1 treatment column, from which the cohort is derived.
    covariates
        Time-varying covariates (shown in ``info["covariates"]``, not in the table).
    weights
        Observation weights.
    cluster
        Column to cluster standard errors by; defaults to ``unit``.
    reference
        Event time(s) left out as the reference, ``-1`` by default. Without never-treated
        units a fully dynamic specification is not identified (the event-time dummies
        span a linear trend together with the unit and period effects): give two, e.g.
        ``reference=(-1, -5)``, or bin the end points.
    window
        ``(first, last)`` event times to estimate, e.g. ``(-4, 5)``; None estimates every
        event time observed.
    bin_endpoints
        With a window: pool the event times beyond it into the end points (the first
        and last coefficients then average over "that far or farther"). Without
        binning, treated observations beyond the window are dropped (counted in a
        warning), except leads with ``control_group="not_yet_treated"``.
    control_group
        ``"never_treated"`` (default): every observation of an eventually-treated unit
        in the window has its event-time indicator, so the comparison comes from
        never-treated units (and the reference periods). ``"not_yet_treated"`` (needs a
        window): treated units' observations before the window have no indicator and
        serve as comparisons too.
    drop_singletons
        Drop units and periods observed once (repeatedly), as :class:`~evalkit.did.TWFE`.

    Notes
    -----
    Inference as :class:`~evalkit.did.TWFE`: ``"iid"``, ``"hetero"``, ``"cluster"``
    (CR1), ``"cr2"`` and ``"none"``; automatic choice of CR1, or CR2 with few (treated)
    clusters. The pre-trend test uses the covariance of the fit: ``F = b'V^{-1}b / q``
    for the ``q`` leads against ``F(q, G - 1)`` when clustered (as Stata's ``test`` and
    pyfixest's ``wald_test``), ``F(q, N - K)`` otherwise. Units treated from the first
    period on have no untreated period and are dropped; cohorts after the last period
    count as never treated.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did.event_study import EventStudy
    >>> df = evalkit.datasets.load("mpdta")
    >>> res = EventStudy(outcome="lemp", unit="countyreal", time="year",
    ...                  cohort="first.treat").fit(df)
    >>> res.tidy()["event_time"].tolist()
    [-4, -3, -2, 0, 1, 2, 3]
    >>> round(res.estimate(event_time=0), 4)
    -0.0181
    >>> round(res.info["pretrend_test"]["p_value"], 3)
    0.181
    """

    outcome: str
    unit: str
    time: str
    cohort: str | None = None
    treatment: str | None = None
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    reference: Any = -1
    window: tuple[int, int] | None = None
    bin_endpoints: bool = False
    control_group: ControlGroup = "never_treated"
    drop_singletons: bool = True

    supported_inference: ClassVar[tuple[str, ...]] = (*REGRESSION_METHODS, "wild")
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({"ATT(e)": "event_time"})

    def __post_init__(self) -> None:
        check_staggered_roles(self)
        refs = reference_periods(self.reference)
        object.__setattr__(self, "reference", refs[0] if len(refs) == 1 else refs)
        if self.control_group not in CONTROL_GROUPS:
            raise DesignError(
                f"control_group must be one of {CONTROL_GROUPS}, got {self.control_group!r}",
                column="control_group",
            )
        if not isinstance(self.bin_endpoints, bool):
            raise DesignError(
                f"bin_endpoints must be True or False, got {self.bin_endpoints!r}",
                column="bin_endpoints",
            )
        if self.window is not None:
            try:
                lo, hi = (float(v) for v in self.window)
            except (TypeError, ValueError):
                lo, hi = math.nan, math.nan
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise DesignError(
                    f"window must be (first, last) event times with first < last, got "
                    f"{self.window!r}",
                    hint="e.g. window=(-4, 5)",
                    column="window",
                )
            if any(r < lo or r > hi for r in refs):
                raise DesignError(
                    f"the reference event time(s) {refs} must lie in the window {self.window}",
                    column="reference",
                )
            object.__setattr__(self, "window", (lo, hi))
        elif self.bin_endpoints or self.control_group == "not_yet_treated":
            option = "bin_endpoints" if self.bin_endpoints else "control_group"
            raise DesignError(
                f"{option}={getattr(self, option)!r} needs an event window",
                hint="give window=(first, last), e.g. window=(-4, 5)",
                column=option,
            )

    @property
    def references(self) -> tuple[float, ...]:
        """The reference event times as a tuple."""
        return reference_periods(self.reference)

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> EventTimeResult:
        sample = staggered_sample(self, data, ctx)
        if self.window is not None:
            lo, hi = self.window
            ev = sample.event
            treated = sample.cohort > 0
            outside = treated & (ev > hi)
            if self.control_group == "never_treated":
                outside |= treated & (ev < lo)
            if not self.bin_endpoints and outside.any():
                n_units = sample.units_in(outside)
                warnings.warn(
                    f"dropped {int(outside.sum())} rows of {n_units} treated unit(s) outside "
                    f"the event window {self.window} (bin_endpoints=True pools them instead)",
                    RowsDroppedWarning,
                    stacklevel=3,
                )
                sample = sample.subset(
                    ~outside, {"rows of treated units outside the event window": int(outside.sum())}
                )
        sample = prune_sample(sample, self.drop_singletons)
        ev = self._binned(sample.event)
        refs = self.references
        observed = np.unique(ev[np.isfinite(ev)])
        missing = [r for r in refs if r not in observed]
        if missing:
            raise DesignError(
                f"reference event time(s) {[sample.key(r) for r in missing]} not observed",
                hint=f"observed event times: {[sample.key(e) for e in observed]}",
                column="reference",
            )
        events = [e for e in observed if e not in refs]
        if not events:
            raise NotEstimableError(
                "no event time left to estimate besides the reference period(s)",
                column="reference",
            )
        dummies = np.column_stack([(ev == e).astype(float) for e in events])
        names = [f"event_time={sample.key(e)}" for e in events]
        x = np.column_stack([dummies, sample.x])
        hint = (
            "the event-time indicators are collinear with the unit and period effects; "
            "without never-treated units give two reference periods, e.g. "
            f"reference=(-1, {sample.key(events[0])}), or a window with bin_endpoints=True"
        )
        if not (sample.cohort == 0).any():
            gap = float(np.ptp(np.unique(sample.cohort)))
            hint += (
                f", and keep event times below {sample.key(gap)} (the last minus the first "
                "cohort): later ones have no untreated comparison, e.g. window=(-4, "
                f"{sample.key(gap - 1)})"
            )
        reg = panel_regression(
            sample,
            x,
            [*names, *self.covariates],
            treated=(sample.cohort > 0) & (sample.t >= sample.cohort),
            spec=ctx.inference,
            hint=hint,
            supported=self.supported_inference,
        )
        m = len(events)
        wild = None
        if reg.method == "wild":
            wild, wild_text, wild_reps = run_test_inversion(
                reg.spec,
                y=sample.y,
                x=x,
                names=[*names, *self.covariates],
                unit=sample.unit,
                time=sample.time,
                cluster=sample.cluster,
                w=sample.w,
                rng=ctx.rng,
                level=ctx.level,
                coefs=range(m),
                n_rows=m,
            )
        beta, vcov = reg.fit.beta, reg.cov.vcov
        se = standard_errors(vcov, reg.method)
        table = make_table(
            [event_term()] * m,
            beta[:m],
            se[:m],
            df=reg.cov.df[:m],
            event_time=[sample.key(e) for e in events],
        )
        leads = [j for j, e in enumerate(events) if e < 0]
        if not leads:
            pretrend: dict[str, Any] | None = None
        elif reg.method == "none":
            pretrend = {"skipped": "inference='none'"}
        elif wild is not None:
            pretrend = {"skipped": "no joint test of the leads with the wild bootstrap yet"}
        else:
            idx = np.array(leads)
            pretrend = wald_test(
                beta[idx], vcov[np.ix_(idx, idx)], reg.wald_df(), "leads", reg.method
            )
            pretrend["event_times"] = [sample.key(events[j]) for j in leads]
        info = {
            "n_obs": sample.n_obs,
            "n_units": sample.n_units,
            "n_periods": sample.n_periods,
            "n_clusters": sample.n_clusters,
            "n_treated_clusters": reg.n_treated_clusters,
            "cohorts": cohort_sizes(sample),
            "event_times": [sample.key(e) for e in events],
            "reference": [sample.key(r) for r in refs],
            "window": None if self.window is None else [sample.key(v) for v in self.window],
            "bin_endpoints": self.bin_endpoints,
            "control_group": self.control_group,
            "covariates": {
                name: {"estimate": float(beta[m + j]), "std_error": float(se[m + j])}
                for j, name in enumerate(self.covariates)
            },
            "pretrend_test": pretrend,
            "fixed_effects": [self.unit, self.time],
            "n_fixed_effect_parameters": reg.k_total - reg.fit.k,
            "df_resid": reg.df_resid,
            "r2_within": reg.fit.r2_within(),
            "solver": "closed form (balanced)"
            if reg.within.closed_form
            else "alternating projections",
            "roles": staggered_roles(self),
            "dropped": dict(sample.dropped),
            "seed": ctx.seed,
        }
        if wild is not None:
            return EventTimeResult(
                estimator=self.registry_name,
                _table=table,
                inference=inversion_info(
                    "wild", wild_text, sample.cluster_name, sample.n_clusters, reg.reason, wild_reps
                ),
                info=info,
                level=ctx.level,
                uncertainty=wild,
                reference=tuple(sample.key(r) for r in refs),
            )
        return EventTimeResult(
            estimator=self.registry_name,
            _table=table,
            inference=inference_info(
                reg.method, sample.cluster_name, sample.n_clusters, reg.reason, reg.cov.df
            ),
            info=info,
            level=ctx.level,
            _vcov=None if reg.method == "none" else vcov[:m, :m],
            _scores=regression_scores(
                reg.fit,
                reg.method,
                sample.cluster,
                sample.n_clusters,
                sample.cluster_labels,
                transform=np.eye(m),
            ),
            reference=tuple(sample.key(r) for r in refs),
        )

    def _binned(self, ev: np.ndarray) -> np.ndarray:
        """Event times used for the indicators: binned, or NaN for comparison rows."""
        if self.window is None:
            return ev
        lo, hi = self.window
        out = ev.copy()
        below = np.isfinite(ev) & (ev < lo)
        above = np.isfinite(ev) & (ev > hi)
        if self.bin_endpoints:
            out[above] = hi
            out[below] = lo
        if self.control_group == "not_yet_treated":
            out[below] = np.nan  # before the window: a comparison observation
        return out
