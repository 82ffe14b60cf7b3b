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
from evalkit.core.random import make_rng
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
from evalkit.errors import DesignError, EvalkitError, NotEstimableError, RowsDroppedWarning
from evalkit.inference.few_treated_cov import (
    autocovariance_from_controls,
    coefficient_covariance,
    size_autocovariance_from_controls,
    wald_pretrend,
)
from evalkit.inference.spec import parse_inference

__all__ = ["EventStudy", "FewTreatedEventStudy", "few_treated_event_study"]

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
    size_correction
        With the few-treated pre-trend test (below) and ``weights``: read the weights as
        cell sizes (persons behind each cell mean) and let the errors' variance shrink
        with size, ``a + b / M`` (Ferman & Pinto 2019), so that a treated city larger or
        smaller than the comparison cities gets errors of its own scale (default True;
        False assumes every unit's errors are distributed alike).

    Notes
    -----
    Inference as :class:`~evalkit.did.TWFE`: ``"iid"``, ``"hetero"``, ``"cluster"``
    (CR1), ``"cr2"`` and ``"none"``; automatic choice of CR1, or CR2 with few (treated)
    clusters. The pre-trend test uses the covariance of the fit: ``F = b'V^{-1}b / q``
    for the ``q`` leads against ``F(q, G - 1)`` when clustered (as Stata's ``test`` and
    pyfixest's ``wald_test``), ``F(q, N - K)`` otherwise. With the wild bootstrap (one or
    two treated clusters) the leads' covariance is instead learned from the
    never-treated units' errors (Conley & Taber 2011, errors stationary over time; see
    :func:`few_treated_event_study`) and the Wald statistic is referred to chi-squared
    (``method="wald_few_treated"``), with the errors' variance modelled in the cell
    sizes when weights are given (``size_correction``). Units treated from the first
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
    size_correction: bool = True

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
        if not isinstance(self.size_correction, bool):
            raise DesignError(
                f"size_correction must be True or False, got {self.size_correction!r}",
                column="size_correction",
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
    def _regression(
        self, data: pd.DataFrame, ctx: FitContext, depth: int = 1
    ) -> tuple[Any, Any, list[float], list[str], np.ndarray]:
        """Return the sample, the regression, the event times, their names and ``x``.

        ``depth``: calls between the caller's ``fit`` and this method (for warnings).
        """
        sample = staggered_sample(self, data, ctx, stacklevel=4 + depth)
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
                    stacklevel=3 + depth,
                )
                sample = sample.subset(
                    ~outside, {"rows of treated units outside the event window": int(outside.sum())}
                )
        sample = prune_sample(sample, self.drop_singletons, stacklevel=5 + depth)
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
            stacklevel=5 + depth,
        )
        return sample, reg, events, names, x

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> EventTimeResult:
        sample, reg, events, names, x = self._regression(data, ctx)
        refs = self.references
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
            pretrend = _few_treated_pretrend(
                sample, reg, m, leads, [events[j] for j in leads], self.size_correction
            )
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


def coefficient_map(reg: Any, sample: Any, m: int) -> np.ndarray:
    """Return ``A`` (``m x n``): the first ``m`` coefficients are ``A @ y``.

    By Frisch-Waugh-Lovell the absorbed regression's coefficients are
    ``(X~'W X~)^{-1} X~'W y`` with ``X~`` the regressors net of the fixed effects.
    """
    fit = reg.fit
    a = fit.bread[:m] @ fit.xt.T
    if sample.w is not None:
        a = a * np.sqrt(sample.w)[None, :]
    return a


def unit_sizes(sample: Any) -> np.ndarray | None:
    """Each unit's size from the weights (harmonic mean over its rows), or None.

    None when the fit is unweighted or a weight is not positive.
    """
    if sample.w is None or not np.all(np.isfinite(sample.w) & (sample.w > 0)):
        return None
    rows = np.bincount(sample.unit, minlength=sample.n_units)
    inv = np.bincount(sample.unit, weights=1.0 / sample.w, minlength=sample.n_units)
    with np.errstate(divide="ignore", invalid="ignore"):
        return rows / inv


def few_treated_vcov(
    reg: Any,
    sample: Any,
    m: int,
    *,
    max_lag: int | None = None,
    size_correction: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Covariance of the first ``m`` coefficients from the never-treated units' errors.

    See :mod:`evalkit.inference.few_treated_cov` (Conley & Taber 2011, with stationary
    errors). Needs units that are their own clusters (city x period cells), and the
    never-treated units observed in every period. With ``size_correction`` and
    weights, the weights are read as cell sizes and the errors' autocovariance is
    modelled as ``a + b / M`` (Ferman & Pinto 2019), each unit's at its own size; with
    equal sizes among the controls it falls back to the unsized covariance (said in
    ``about["sizes"]``).
    """
    if sample.n_clusters != sample.n_units:
        raise DesignError(
            "the few-treated covariance learns a unit's errors from the other units, "
            f"so units must be the clusters ({sample.n_units} units in "
            f"{sample.n_clusters} clusters)",
            hint="collapse to cluster x period cells (a study's [collapse]) first",
            column="cluster",
        )
    control_rows = sample.cohort == 0
    control_units = np.unique(sample.unit[control_rows])
    if len(control_units) < 3:
        raise NotEstimableError(
            f"{len(control_units)} never-treated unit(s): the few-treated covariance "
            "learns the errors from at least three",
            column="cohort",
        )
    counts = np.bincount(sample.unit[control_rows], minlength=sample.n_units)[control_units]
    if np.any(counts != sample.n_periods):
        raise DesignError(
            "the never-treated units are not all observed in every period",
            hint="the few-treated covariance needs a balanced panel of comparison units",
            column="time",
        )
    y = sample.y - sample.x @ reg.fit.beta[m:] if sample.x.shape[1] else sample.y
    grid = np.full((sample.n_units, sample.n_periods), np.nan)
    grid[sample.unit[control_rows], sample.time[control_rows]] = y[control_rows]
    a = coefficient_map(reg, sample, m)
    sizes = unit_sizes(sample) if size_correction else None
    about: dict[str, Any] = {"n_controls": len(control_units)}
    if sizes is not None:
        try:
            model = size_autocovariance_from_controls(
                grid[control_units], sizes[control_units], max_lag=max_lag
            )
        except NotEstimableError as exc:
            about["sizes"] = f"not used: {exc}"
        else:
            treated = np.unique(sample.unit[sample.cohort > 0])
            about.update(
                covariance="few-treated (errors learned from the never-treated units, "
                "stationary, variance a + b / size in the cell sizes: Ferman-Pinto)",
                sizes="weights (harmonic mean over each unit's rows)",
                max_lag=int(len(model.common) - 1),
                treated_sizes=[float(sizes[u]) for u in treated],
                control_size_range=[float(sizes[control_units].min()),
                                    float(sizes[control_units].max())],
                treated_variance_ratio=[model.variance_ratio(sizes[u]) for u in treated],
            )  # fmt: skip
            vcov = coefficient_covariance(a, sample.unit, sample.time, model, unit_sizes=sizes)
            return vcov, about
    elif size_correction:
        about["sizes"] = "not used: no positive weights to read as cell sizes"
    else:
        about["sizes"] = "not used: size_correction=False"
    cov = autocovariance_from_controls(grid[control_units], max_lag=max_lag)
    vcov = coefficient_covariance(a, sample.unit, sample.time, cov)
    about.update(
        covariance="few-treated (errors learned from the never-treated units, stationary)",
        max_lag=int(len(cov.gamma) - 1),
    )
    return vcov, about


def _few_treated_pretrend(
    sample: Any,
    reg: Any,
    m: int,
    leads: list[int],
    lead_events: list[float],
    size_correction: bool = True,
) -> dict[str, Any]:
    """Wald test of the leads with the few-treated covariance (or why it was skipped)."""
    try:
        vcov, about = few_treated_vcov(reg, sample, m, size_correction=size_correction)
    except EvalkitError as exc:
        return {"skipped": f"no few-treated covariance: {exc}"}
    idx = np.array(leads)
    out: dict[str, Any] = dict(wald_pretrend(reg.fit.beta[idx], vcov[np.ix_(idx, idx)]))
    out.update(
        hypothesis="leads",
        method="wald_few_treated",
        distribution=f"chi2({out['df']})",
        event_times=[sample.key(e) for e in lead_events],
        **about,
    )
    return out


@dataclasses.dataclass(frozen=True)
class FewTreatedEventStudy:
    """Event-time estimates with the few-treated covariance (:func:`few_treated_event_study`).

    Attributes
    ----------
    beta
        The event-time coefficients, in event-time order (reference left out).
    vcov
        Their covariance learned from the never-treated units' errors.
    event_times
        The event time of each coefficient.
    reference
        The reference event time(s).
    pretrend_test
        The Wald test of the leads with ``vcov`` (None without leads).
    about
        What the covariance was learned from (controls, lags).
    dropped
        Rows dropped, by reason.
    """

    beta: np.ndarray
    vcov: np.ndarray
    event_times: tuple[Any, ...]
    reference: tuple[Any, ...]
    pretrend_test: dict[str, Any] | None
    about: dict[str, Any]
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)


def few_treated_event_study(
    estimator: EventStudy,
    data: pd.DataFrame,
    *,
    max_lag: int | None = None,
    size_correction: bool | None = None,
    _depth: int = 0,
) -> FewTreatedEventStudy:
    """Fit an event study and its covariance learned from the never-treated units.

    The covariance of :mod:`evalkit.inference.few_treated_cov` (Conley & Taber 2011,
    with errors stationary over time): valid with one treated unit when its errors
    have the distribution of the comparison units'. Needs units that are their own
    clusters (e.g. city x month cells) and never-treated units observed every period.
    With weights, read as cell sizes, the errors' variance is modelled as ``a + b /
    size`` (Ferman & Pinto 2019) unless ``size_correction`` is False (default: the
    estimator's ``size_correction``).

    Examples
    --------
    >>> import numpy as np
    >>> from evalkit.simulate.designs import cities
    >>> df = cities(np.random.default_rng(3), n_months=36, reform=20)
    >>> est = EventStudy(outcome="y", unit="city", time="month", treatment="d",
    ...                  window=(-4, 4), bin_endpoints=True)
    >>> fit = few_treated_event_study(est, df)
    >>> fit.event_times
    (-4, -3, -2, 0, 1, 2, 3, 4)
    >>> round(fit.pretrend_test["p_value"], 3)
    0.673
    """
    ctx = FitContext(
        inference=parse_inference("none", estimator.supported_inference, "did.EventStudy"),
        seed=0,
        rng=make_rng(0)[0],
        reps=None,
        level=0.95,
    )
    sample, reg, events, _, _ = estimator._regression(data, ctx, depth=_depth)
    m = len(events)
    if size_correction is None:
        size_correction = estimator.size_correction
    vcov, about = few_treated_vcov(reg, sample, m, max_lag=max_lag, size_correction=size_correction)
    leads = [j for j, e in enumerate(events) if e < 0]
    pretrend: dict[str, Any] | None = None
    if leads:
        idx = np.array(leads)
        pretrend = dict(wald_pretrend(reg.fit.beta[idx], vcov[np.ix_(idx, idx)]))
        pretrend["event_times"] = [sample.key(events[j]) for j in leads]
    return FewTreatedEventStudy(
        beta=np.array(reg.fit.beta[:m], dtype=float),
        vcov=vcov,
        event_times=tuple(sample.key(e) for e in events),
        reference=tuple(sample.key(r) for r in estimator.references),
        pretrend_test=pretrend,
        about=about,
        dropped=dict(sample.dropped),
    )
