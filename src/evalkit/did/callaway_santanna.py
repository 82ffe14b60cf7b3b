"""Callaway & Sant'Anna (2021): group-time average treatment effects under staggered adoption.

With staggered adoption, units start treatment at different times (their *cohort* ``g``,
the first treated period) and stay treated. Two-way fixed-effects regressions then
compare late-treated with already-treated units and can be badly biased when effects
vary over time. Callaway and Sant'Anna instead estimate one effect per cohort and
period,

    ATT(g, t) = E[Y_t(g) - Y_t(0) | G = g],

each from a clean 2x2 comparison: cohort ``g`` against units not (yet) treated, between
a base period before ``g`` and period ``t``. Each 2x2 comparison uses a doubly robust,
inverse probability weighting or outcome regression estimator
(:mod:`evalkit.did.drdid`), which allows parallel trends to hold only conditionally on
covariates. The ``ATT(g,t)`` are then aggregated into event-study, cohort,
calendar-time and overall effects (:meth:`GroupTimeResult.aggregate`).

The implementation follows the R package did (version 2.5.1) and reproduces its
estimates and analytic standard errors; see ``docs/methods/callaway_santanna.md``.

References
----------
Callaway, B. and Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple
time periods. *Journal of Econometrics* 225(2), 200-230.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import pandas as pd

from evalkit.core.aggregation import (
    GroupTimeData,
    GroupTimeInference,
    GroupTimeResult,
    infer,
)
from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import make_table
from evalkit.data.panel import Panel
from evalkit.data.periods import PeriodCoding, period_label
from evalkit.did import drdid
from evalkit.errors import (
    DataError,
    DesignError,
    NotEstimableError,
    RowsDroppedWarning,
    SmallCohortWarning,
    WeakOverlapWarning,
)
from evalkit.inference.multiplier import BOOTSTRAP_WEIGHTS
from evalkit.inference.policy import choose_inference, count_clusters
from evalkit.inference.spec import Inference

__all__ = ["CallawaySantAnna"]

ControlGroup = Literal["never_treated", "not_yet_treated"]
BasePeriod = Literal["varying", "universal"]
CONTROL_GROUPS: tuple[str, ...] = get_args(ControlGroup)
BASE_PERIODS: tuple[str, ...] = get_args(BasePeriod)
MIN_COHORT_SIZE = 5
"""Cohorts (and comparison groups) smaller than this trigger a SmallCohortWarning."""
_DEFAULT_REPS = 999


@register("did.CallawaySantAnna")
@dataclasses.dataclass(frozen=True, kw_only=True)
class CallawaySantAnna(Estimator):
    """Group-time average treatment effects of Callaway & Sant'Anna (2021).

    Parameters
    ----------
    outcome
        Outcome column.
    unit
        Unit identifier (required for panel data). In a repeated cross-section
        (``panel=False``) it is optional and names a group (e.g. a city) whose rows are
        clustered together for inference.
    time
        Period column: numbers (years, months as a running index, ...), dates or pandas
        periods (see :mod:`evalkit.data.periods`; results are then keyed by
        :class:`pandas.Period`).
    cohort
        First treated period of each unit, on the scale of ``time`` (dates or periods
        when ``time`` holds them, ``NaT`` for never treated); 0 or missing for
        never-treated units. Cohorts later than the last period (net of anticipation)
        count as never treated, as in did.
    covariates
        Covariates for conditional parallel trends (taken in the earlier of the two
        periods of each comparison). Empty for unconditional parallel trends.
    weights
        Sampling weights column (constant within unit for panel data).
    cluster
        Column to cluster standard errors by (constant within unit); by default the
        unit.
    control_group
        ``"never_treated"`` or ``"not_yet_treated"`` (units not treated by period
        ``max(t, base) + anticipation``, never-treated included).
    method
        2x2 estimator: ``"dr"`` (doubly robust, default), ``"ipw"`` or ``"reg"``.
    anticipation
        Number of periods before ``g`` in which units may already react.
    base_period
        ``"varying"`` (pre-treatment ``ATT(g,t)`` compare consecutive periods; the did
        default) or ``"universal"`` (every ``ATT(g,t)`` compares with period
        ``g - anticipation - 1``, whose own cell is fixed at 0).
    panel
        True when ``unit`` x ``time`` is a panel; False for repeated cross-sections.
    allow_unbalanced
        For an unbalanced panel: False (default, as did) keeps only units observed in
        every period and warns how many rows and units were dropped; True keeps every
        row and uses the repeated cross-section estimators with influence functions
        summed by unit.
    trim_level
        Comparison units with propensity score at or above this get zero weight
        (``"dr"``/``"ipw"``; default 0.995 as DRDID).

    Notes
    -----
    ``fit(data, inference=...)`` accepts ``None`` or ``"cluster"`` (analytic
    influence-function standard errors, clustered by unit or by ``cluster``; the
    default), ``"bootstrap"`` (multiplier bootstrap; ``reps`` draws, default 999;
    options ``weights`` = ``"rademacher"`` or ``"mammen"`` and ``uniform`` for
    simultaneous sup-t bands), or ``"none"``. Pass options with
    ``evalkit.inference.Inference("bootstrap", options={"uniform": True})``.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did.callaway_santanna import CallawaySantAnna
    >>> df = evalkit.datasets.load("mpdta")
    >>> cs = CallawaySantAnna(outcome="lemp", unit="countyreal", time="year",
    ...                       cohort="first.treat")
    >>> res = cs.fit(df)
    >>> round(res.estimate("ATT(g,t)", cohort=2004, time=2006), 4)
    -0.1373
    >>> es = res.aggregate("event_time")
    >>> round(es.estimate("ATT(e)", event_time=0), 4)
    -0.0199
    """

    outcome: str
    unit: str | None = None
    time: str
    cohort: str
    covariates: Sequence[str] = ()
    weights: str | None = None
    cluster: str | None = None
    control_group: ControlGroup = "never_treated"
    method: drdid.DRMethod = "dr"
    anticipation: int = 0
    base_period: BasePeriod = "varying"
    panel: bool = True
    allow_unbalanced: bool = False
    trim_level: float = 0.995

    supported_inference = ("cluster", "bootstrap", "none")
    #: ATT(g,t): the mean effect on cohort g's observations in period t (truth on simulated
    #: data, see :mod:`evalkit.study.truth`).
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({"ATT(g,t)": "cohort_time"})

    def __post_init__(self) -> None:
        for role in ("outcome", "time", "cohort"):
            value = getattr(self, role)
            if not isinstance(value, str) or not value:
                raise DesignError(
                    f"{role} must name a column, got {value!r}",
                    hint=f"e.g. {role}='...' with the column's name",
                    column=role,
                )
        for role in ("unit", "weights", "cluster"):
            value = getattr(self, role)
            if value is not None and not isinstance(value, str):
                raise DesignError(f"{role} must name a column, got {value!r}", column=role)
        covs = self.covariates
        if isinstance(covs, str):
            covs = (covs,)
        if covs is None:
            covs = ()
        try:
            covs = tuple(covs)
        except TypeError:
            raise DesignError(
                f"covariates must be a list of column names, got {self.covariates!r}",
                column="covariates",
            ) from None
        if not all(isinstance(c, str) for c in covs):
            raise DesignError("covariates must be column names (strings)", column="covariates")
        object.__setattr__(self, "covariates", covs)
        _choice("control_group", self.control_group, CONTROL_GROUPS)
        _choice("method", self.method, drdid.METHODS)
        _choice("base_period", self.base_period, BASE_PERIODS)
        if (
            isinstance(self.anticipation, bool)
            or not isinstance(self.anticipation, (int, np.integer))
            or self.anticipation < 0
        ):
            raise DesignError(
                f"anticipation must be a whole number >= 0, got {self.anticipation!r}",
                hint="anticipation=1 lets units react one period before treatment",
                column="anticipation",
            )
        for flag in ("panel", "allow_unbalanced"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise DesignError(
                    f"{flag} must be True or False, got {getattr(self, flag)!r}", column=flag
                )
        if self.panel and self.unit is None:
            raise DesignError(
                "panel data need the unit column",
                hint="pass unit='id', or panel=False for repeated cross-sections",
                column="unit",
            )
        try:
            trim = float(self.trim_level)
        except (TypeError, ValueError):
            trim = math.nan
        if not 0.5 < trim <= 1.0:
            raise DesignError(
                f"trim_level must be in (0.5, 1], got {self.trim_level!r}",
                hint="the default 0.995 follows DRDID",
                column="trim_level",
            )

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> GroupTimeResult:
        settings, cluster_col = self._inference_settings(ctx)
        panel = Panel(
            data,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            cohort=self.cohort,
            covariates=list(self.covariates),
            cluster=cluster_col if cluster_col != self.unit else None,
            weights=self.weights,
            panel=self.panel,
            cluster_nests_unit=self.panel,
            require_variation=False,
            stacklevel=3,
        )
        sample = _Sample.build(self, panel, cluster_col)
        cells = sample.estimate(self)
        return self._result(sample, cells, settings, ctx)

    def _inference_settings(self, ctx: FitContext) -> tuple[GroupTimeInference, str | None]:
        spec: Inference | None = ctx.inference
        reason = None
        if spec is None:
            spec = Inference("cluster")
            reason = (
                "default: analytic influence-function standard errors clustered by unit "
                "(did's bstrap=FALSE); use inference='bootstrap' for the multiplier "
                "bootstrap and simultaneous bands"
            )
        options = dict(spec.options)
        allowed = {"bootstrap": {"weights", "uniform"}, "cluster": {"uniform"}, "none": set()}
        unknown = sorted(set(options) - allowed[spec.method])
        if unknown:
            raise DesignError(
                f"inference {spec.method!r} has no option(s) {', '.join(unknown)}",
                hint=f"options for {spec.method!r}: "
                + (", ".join(sorted(allowed[spec.method])) or "none"),
                column="inference",
            )
        weights = options.get("weights", "rademacher")
        if weights not in BOOTSTRAP_WEIGHTS:
            raise DesignError(
                f"bootstrap weights must be one of {', '.join(map(repr, BOOTSTRAP_WEIGHTS))}, "
                f"got {weights!r}",
                hint="'rademacher' is the did default",
                column="weights",
            )
        uniform = options.get("uniform", False)
        if not isinstance(uniform, (bool, np.bool_)):
            raise DesignError(f"uniform must be True or False, got {uniform!r}", column="uniform")
        reps = spec.reps or ctx.reps or _DEFAULT_REPS
        if reps < 2 and (spec.method == "bootstrap" or uniform):
            raise DesignError(f"reps must be at least 2, got {reps}", column="reps")
        cluster_col = spec.cluster or self.cluster
        if spec.cluster is not None and not isinstance(spec.cluster, str):
            raise DesignError("Inference.cluster must name a column", column="cluster")
        settings = GroupTimeInference(
            method=spec.method,
            cluster_name=cluster_col or self.unit,
            reps=int(reps),
            weights=str(weights),
            seed=ctx.seed,
            uniform=bool(uniform),
            reason=reason,
        )
        return settings, cluster_col

    def _result(
        self,
        sample: _Sample,
        cells: _Cells,
        settings: GroupTimeInference,
        ctx: FitContext,
    ) -> GroupTimeResult:
        settings = dataclasses.replace(
            settings,
            n_clusters=sample.n_clusters,
            cluster_name=sample.cluster_name,
        )
        n = len(sample.unit_cohort)
        codes = np.arange(n) if sample.cluster is None else sample.cluster
        choice = choose_inference(
            ctx.inference,
            supported=self.supported_inference,
            counts=count_clusters(
                codes,
                np.zeros(n, dtype=np.int64),
                sample.unit_cohort > 0,
                name=str(sample.cluster_name or self.unit),
            ),
            design="influence",
            own=(settings.method, settings.reason or ""),
        )
        settings = dataclasses.replace(settings, reason=choice.reason)
        if sample.explicit_cluster:  # clusters of one unit each are many by design
            choice.warn(stacklevel=4)
        gt = GroupTimeData(
            cohort=cells.cohort,
            time=cells.time,
            att=cells.att,
            influence=cells.influence,
            unit_cohort=sample.unit_cohort,
            unit_weights=sample.unit_weights,
            cluster=sample.cluster,
            cluster_labels=sample.cluster_labels,
            reference=cells.reference,
            anticipation=int(self.anticipation),
            t_first=float(sample.times[0]),
            t_last=float(sample.times[-1]),
            integer_times=sample.integer_times,
            periods=sample.periods,
        )
        # one set of bootstrap draws of the base columns serves the fit and every aggregate
        inf = infer(cells.att, gt.linear(gt.forms), sample.cluster, settings, ctx.level)
        key = sample.key
        table = make_table(
            ["ATT(g,t)"] * len(cells.att),
            cells.att,
            inf.std_error,
            cohort=[key(g) for g in cells.cohort],
            time=[key(t) for t in cells.time],
        )
        info: dict[str, Any] = {
            "outcome": self.outcome,
            "unit": self.unit,
            "time": self.time,
            "cohort": self.cohort,
            "covariates": list(self.covariates),
            "weights": self.weights,
            "control_group": self.control_group,
            "method": self.method,
            "anticipation": int(self.anticipation),
            "base_period": self.base_period,
            "data_structure": sample.structure,
            "n_obs": sample.n_obs,
            "n_units": sample.n_units,
            "n_periods": len(sample.times),
            "periods": [key(t) for t in sample.times],
            "cohorts": [key(g) for g in sample.glist],
            "n_cells": len(cells.att),
            "reference_cells": int(cells.reference.sum()),
            "dropped": dict(sample.dropped),
            "recoded_never_treated": sample.recoded,
            "n_trimmed": cells.n_trimmed,
            "trim_level": float(self.trim_level),
            "seed": ctx.seed,
        }
        return GroupTimeResult(
            estimator=self.registry_name,
            _table=table,
            inference=settings.info(),
            info=info,
            level=ctx.level,
            _vcov=inf.vcov,
            uncertainty=inf.uncertainty,
            _gt=gt,
            _settings=settings,
        )


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        import difflib

        close = difflib.get_close_matches(
            str(value).replace("nevertreated", "never_treated"), options, n=1
        )
        if str(value) == "notyettreated":
            close = ["not_yet_treated"]
        raise DesignError(
            f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}",
            hint=f"did you mean {close[0]!r}?" if close else None,
            column=name,
        )


# ---------------------------------------------------------------------- the sample
@dataclasses.dataclass
class _Cells:
    cohort: np.ndarray
    time: np.ndarray
    att: np.ndarray
    influence: np.ndarray
    reference: np.ndarray
    n_trimmed: int


@dataclasses.dataclass
class _Sample:
    """The estimation sample after did's preprocessing, in arrays.

    ``structure`` is ``"panel"`` (balanced; arrays are wide, one row per unit),
    ``"repeated_cross_section"`` or ``"unbalanced_panel"`` (arrays are long, one entry
    per row; the latter sums influence functions by unit).
    """

    structure: str
    times: np.ndarray
    glist: np.ndarray
    integer_times: bool
    n_obs: int
    n_units: int
    dropped: dict[str, int]
    recoded: int
    # long arrays (one per row)
    y: np.ndarray
    tcode: np.ndarray
    g_row: np.ndarray
    w_row: np.ndarray
    x_row: np.ndarray
    ucode: np.ndarray | None
    # sampling-unit arrays (units for panels, rows for cross-sections)
    unit_cohort: np.ndarray
    unit_weights: np.ndarray
    cluster: np.ndarray | None
    n_clusters: int
    cluster_name: str | None
    explicit_cluster: bool
    cluster_labels: np.ndarray | None  # label of each cluster (or sampling unit) code
    # wide arrays (balanced panel only)
    y_wide: np.ndarray | None = None
    x_wide: np.ndarray | None = None  # (T, n, k) or (n, k) when time-invariant
    periods: PeriodCoding | None = None  # date or Period time: code -> period

    def key(self, value: float) -> Any:
        """Return a period or cohort as results show it (a Period for dates/periods)."""
        return period_label(value, integer=self.integer_times, periods=self.periods)

    # .................................................................. build
    @classmethod
    def build(cls, est: CallawaySantAnna, panel: Panel, cluster_col: str | None) -> _Sample:
        frame = panel.to_frame()
        t = frame[est.time].to_numpy(dtype=float)  # numbers, or period codes of dates
        g = panel.values(est.cohort).astype(float).copy()
        if (g < 0).any():
            raise DataError(
                f"cohort column {est.cohort!r} has negative values",
                hint="code never-treated units as 0 (or missing) and others by their first "
                "treated period",
                column=est.cohort,
            )
        y = panel.values(est.outcome).astype(float)
        w = panel.values(est.weights).astype(float) if est.weights is not None else np.ones(len(y))
        x = panel.matrix(list(est.covariates)) if est.covariates else np.empty((len(y), 0))
        unit_ids = frame[est.unit].to_numpy() if est.unit is not None else None
        clus = frame[cluster_col].to_numpy() if cluster_col is not None else None
        delta = int(est.anticipation)
        dropped: dict[str, int] = dict(panel.dropped)
        keep = np.ones(len(y), dtype=bool)

        times = np.unique(t)
        t_last = times[-1]
        # cohorts first treated after the sample (net of anticipation): never treated
        late = g > t_last + delta
        recoded = _count_units(late, unit_ids)
        g[late] = 0.0
        # no never-treated units: the last cohort becomes the comparison group
        latest = None
        if not (g == 0).any():
            latest = float(g.max())
            cut = latest - delta
            drop = t >= cut
            if drop.all():
                raise DataError(
                    f"no periods before the last cohort ({latest:g}) remain",
                    hint=f"check that {est.cohort!r} is on the scale of {est.time!r}",
                    column=est.cohort,
                )
            role = (
                "coded as never treated"
                if est.control_group == "never_treated"
                else "kept as not-yet-treated comparison units"
            )
            n_drop = int(drop.sum())
            dropped[f"periods from {cut:g} on (no never-treated units)"] = n_drop
            warnings.warn(
                f"there are no never-treated units: the last cohort ({latest:g}) is {role} "
                f"and the {n_drop} rows from period {cut:g} on are dropped (as did)",
                RowsDroppedWarning,
                stacklevel=4,
            )
            keep &= ~drop
            if est.control_group == "never_treated":
                g[g == latest] = 0.0
        # units treated in the first period (net of anticipation): no pre-period
        t_first = times[0]
        early = keep & (g > 0) & (g <= t_first + delta)
        if early.any():
            n_units_early = _count_units(early, unit_ids)
            what = "units" if unit_ids is not None else "rows"
            dropped["rows of units treated in the first period"] = int(early.sum())
            warnings.warn(
                f"dropped {n_units_early} {what} ({int(early.sum())} rows) already treated in "
                f"the first period{' net of anticipation' if delta else ''} (as did)",
                RowsDroppedWarning,
                stacklevel=4,
            )
            keep &= ~early

        def subset(mask: np.ndarray) -> None:
            nonlocal y, t, g, w, x, unit_ids, clus
            y, t, g, w, x = y[mask], t[mask], g[mask], w[mask], x[mask]
            unit_ids = unit_ids[mask] if unit_ids is not None else None
            clus = clus[mask] if clus is not None else None

        subset(keep)
        if len(y) == 0:
            raise DataError("no rows remain after dropping already-treated units")
        times = np.unique(t)
        if len(times) < 2:
            raise DataError(f"fewer than two periods of {est.time!r} remain", column=est.time)

        structure = "panel" if est.panel else "repeated_cross_section"
        ucode = None
        n_units = 0
        if est.panel:
            assert unit_ids is not None
            ucode, uniq = pd.factorize(unit_ids, sort=True)
            counts = np.bincount(ucode)
            if (counts != len(times)).any():
                if est.allow_unbalanced:
                    structure = "unbalanced_panel"
                else:
                    full = counts[ucode] == len(times)
                    n_rows = int((~full).sum())
                    n_bad = int((counts != len(times)).sum())
                    dropped["rows of units not observed in every period"] = n_rows
                    warnings.warn(
                        f"unbalanced panel: dropped {n_rows} rows of {n_bad} of {len(uniq)} "
                        f"units not observed in all {len(times)} periods (as did with "
                        "allow_unbalanced_panel=FALSE); pass allow_unbalanced=True to keep "
                        "them",
                        RowsDroppedWarning,
                        stacklevel=4,
                    )
                    subset(full)
                    if len(y) == 0:
                        raise DataError(
                            "no unit is observed in every period",
                            hint="pass allow_unbalanced=True",
                            column=est.unit,
                        )
                    times = np.unique(t)
                    ucode, uniq = pd.factorize(unit_ids, sort=True)
            n_units = len(uniq)
            if est.weights is not None:
                wmin = np.full(n_units, np.inf)
                wmax = np.full(n_units, -np.inf)
                np.minimum.at(wmin, ucode, w)
                np.maximum.at(wmax, ucode, w)
                if np.any(wmax - wmin > 1e-12 * np.maximum(1.0, np.abs(wmax))):
                    raise DataError(
                        f"weights {est.weights!r} vary over time within units",
                        hint="panel weights must be constant within unit (e.g. base-period "
                        "weights)",
                        column=est.weights,
                    )

        glist = np.unique(g[g > 0])
        if latest is not None and est.control_group == "not_yet_treated":
            glist = glist[glist < latest]
        if glist.size == 0:
            raise DataError(
                f"no treated cohorts remain in {est.cohort!r}",
                hint="cohort must be the first treated period on the scale of "
                f"{est.time!r}, with 0 or missing for never-treated units",
                column=est.cohort,
            )
        if est.control_group == "never_treated" and not (g == 0).any():
            raise NotEstimableError(
                "no never-treated units remain",
                hint="use control_group='not_yet_treated'",
                column="control_group",
            )
        tcode = np.searchsorted(times, t)
        integer_times = bool(np.all(times == np.round(times)) and np.all(glist == np.round(glist)))

        # clusters and sampling units
        explicit = cluster_col is not None and cluster_col != est.unit
        if structure == "panel" or structure == "unbalanced_panel":
            assert ucode is not None
            first = np.zeros(n_units, dtype=np.int64)
            first[ucode] = np.arange(len(ucode))  # some row of each unit
            unit_cohort = g[first]
            unit_weights = w[first]
            if explicit:
                assert clus is not None
                cl, cl_uniq = pd.factorize(clus[first], sort=True)
                cluster, n_clusters = cl.astype(np.int64), len(cl_uniq)
                cluster_labels = np.asarray(cl_uniq, dtype=object)
            else:
                cluster, n_clusters = None, n_units
                cluster_labels = (
                    np.asarray(unit_ids[first], dtype=object) if unit_ids is not None else None
                )
            cluster_name = cluster_col if explicit else est.unit
        else:
            unit_cohort = g
            unit_weights = w
            group_ids = clus if cluster_col is not None else unit_ids
            if group_ids is not None:
                cl, cl_uniq = pd.factorize(group_ids, sort=True)
                cluster, n_clusters = cl.astype(np.int64), len(cl_uniq)
                cluster_name = cluster_col or est.unit
                cluster_labels = np.asarray(cl_uniq, dtype=object)
            else:
                cluster, n_clusters, cluster_name = None, len(y), None
                cluster_labels = None
            explicit = cluster is not None
        unit_weights = unit_weights / unit_weights.mean()

        sample = cls(
            structure=structure,
            times=times,
            glist=glist,
            integer_times=integer_times,
            n_obs=len(y),
            n_units=n_units if est.panel else 0,
            dropped=dropped,
            recoded=recoded,
            y=y,
            tcode=tcode,
            g_row=g,
            w_row=w,
            x_row=x,
            ucode=ucode,
            unit_cohort=unit_cohort,
            unit_weights=unit_weights,
            cluster=cluster,
            n_clusters=n_clusters,
            cluster_name=cluster_name,
            explicit_cluster=explicit,
            cluster_labels=cluster_labels,
            periods=panel.periods,
        )
        if structure == "panel":
            sample._make_wide(len(times), n_units)
        sample._warn_small(est)
        return sample

    def _make_wide(self, n_periods: int, n_units: int) -> None:
        assert self.ucode is not None
        y_wide = np.empty((n_units, n_periods))
        y_wide[self.ucode, self.tcode] = self.y
        self.y_wide = y_wide
        k = self.x_row.shape[1]
        if k == 0:
            self.x_wide = np.ones((n_units, 1))
            return
        x_wide = np.empty((n_periods, n_units, k))
        x_wide[self.tcode, self.ucode] = self.x_row
        if np.all(x_wide == x_wide[:1]):
            self.x_wide = np.column_stack([np.ones(n_units), x_wide[0]])
        else:
            ones = np.ones((n_periods, n_units, 1))
            self.x_wide = np.concatenate([ones, x_wide], axis=2)

    def _warn_small(self, est: CallawaySantAnna) -> None:
        what = "units" if self.structure != "repeated_cross_section" else "observations"
        sizes = {g: int(np.sum(self.unit_cohort == g)) for g in self.glist}
        small = [self.key(g) for g, n in sizes.items() if n < MIN_COHORT_SIZE]
        if small:
            warnings.warn(
                f"cohort(s) {', '.join(map(str, small))} of {est.cohort!r} have fewer than "
                f"{MIN_COHORT_SIZE} {what}: their ATT(g,t) and standard errors are unreliable",
                SmallCohortWarning,
                stacklevel=5,
            )
        never = int(np.sum(self.unit_cohort == 0))
        if est.control_group == "never_treated" and 0 < never < MIN_COHORT_SIZE:
            warnings.warn(
                f"the never-treated comparison group has fewer than {MIN_COHORT_SIZE} {what}",
                SmallCohortWarning,
                stacklevel=5,
            )

    # .................................................................. estimation
    def cell_plan(self, est: CallawaySantAnna) -> list[tuple[float, int, int, int]]:
        """List (cohort, period index, base index, comparison index) of every ATT(g,t).

        The comparison index is the period whose date (plus anticipation) the
        not-yet-treated comparison units must not yet be treated by. A base index equal
        to the period index marks a reference cell fixed at zero.
        """
        times = self.times
        delta = est.anticipation
        plan = []
        n_t = len(times)
        for g in self.glist:
            pre = np.flatnonzero(times + delta < g)
            if pre.size == 0:  # pragma: no cover - such units were dropped
                continue
            last_pre = int(pre[-1])
            if est.base_period == "varying":
                for c in range(1, n_t):
                    base = last_pre if g <= times[c] else c - 1
                    plan.append((float(g), c, base, c))
            else:
                for c in range(n_t):
                    plan.append((float(g), c, last_pre, max(c, last_pre)))
        return plan

    def estimate(self, est: CallawaySantAnna) -> _Cells:
        plan = self.cell_plan(est)
        n_cells = len(plan)
        n_infl = len(self.unit_cohort) if self.structure == "panel" else len(self.y)
        influence = np.zeros((n_infl, n_cells))
        att = np.zeros(n_cells)
        reference = np.zeros(n_cells, dtype=bool)
        n_trimmed = 0
        max_ps = 0.0
        overlap_cells: list[str] = []
        by_period = None
        logits: dict[tuple[Any, ...], drdid._Logit] = {}
        if self.structure != "panel":
            order = np.argsort(self.tcode, kind="stable")
            bounds = np.searchsorted(self.tcode[order], np.arange(len(self.times) + 1))
            by_period = [order[bounds[i] : bounds[i + 1]] for i in range(len(self.times))]
        for j, (g, c, base, comp) in enumerate(plan):
            if c == base:
                reference[j] = True
                continue
            not_yet = self.times[comp] + est.anticipation
            try:
                if self.structure == "panel":
                    res, rows = self._panel_cell(est, g, c, base, not_yet, logits)
                else:
                    assert by_period is not None
                    res, rows = self._rcs_cell(est, g, c, base, not_yet, by_period)
            except NotEstimableError as exc:
                raise NotEstimableError(
                    f"ATT(g,t) for cohort {self.key(g)} in period {self.key(self.times[c])} "
                    f"cannot be estimated: {exc.message}",
                    hint=exc.hint,
                    column=est.cohort,
                ) from None
            att[j] = res.att
            influence[rows, j] = (n_infl / len(rows)) * res.influence
            n_trimmed += res.n_trimmed
            if res.max_pscore is not None and res.max_pscore >= 0.999:
                overlap_cells.append(f"({self.key(g)}, {self.key(self.times[c])})")
            if res.max_pscore is not None:
                max_ps = max(max_ps, res.max_pscore)
        if overlap_cells or n_trimmed:
            shown = ", ".join(overlap_cells[:5]) + (" ..." if len(overlap_cells) > 5 else "")
            warnings.warn(
                f"weak overlap: {n_trimmed} comparison observation(s) had propensity scores "
                f">= trim_level={est.trim_level} and got zero weight; the largest comparison "
                f"propensity score is {max_ps:.4f}"
                + (f" (>= 0.999 in cells {shown}, which did reports as NA)" if shown else ""),
                WeakOverlapWarning,
                stacklevel=4,
            )
        if self.structure == "unbalanced_panel":
            assert self.ucode is not None
            scale = self.n_units / len(self.y)
            unit_psi = np.empty((self.n_units, n_cells))
            for j in range(n_cells):
                unit_psi[:, j] = np.bincount(
                    self.ucode, weights=influence[:, j], minlength=self.n_units
                )
            influence = unit_psi * scale
        cohorts = np.array([p[0] for p in plan])
        periods = self.times[[p[1] for p in plan]]
        return _Cells(cohorts, periods, att, influence, reference, n_trimmed)

    def _comparison(self, cohort: np.ndarray, g: float, not_yet: float, est: Any) -> np.ndarray:
        if est.control_group == "never_treated":
            return cohort == 0
        return (cohort == 0) | ((cohort > not_yet) & (cohort != g))

    def _panel_cell(
        self,
        est: CallawaySantAnna,
        g: float,
        c: int,
        base: int,
        not_yet: float,
        logits: dict[tuple[Any, ...], drdid._Logit],
    ) -> tuple[drdid.DiD2x2, np.ndarray]:
        assert self.y_wide is not None and self.x_wide is not None
        treat = self.unit_cohort == g
        ctrl = self._comparison(self.unit_cohort, g, not_yet, est)
        _check_counts(int(treat.sum()), int(ctrl.sum()))
        rows = np.flatnonzero(treat | ctrl)
        dy = self.y_wide[rows, c] - self.y_wide[rows, base]
        varying_x = self.x_wide.ndim == 3
        x = self.x_wide[min(c, base)][rows] if varying_x else self.x_wide[rows]
        d = treat[rows].astype(float)
        w = self.unit_weights[rows]
        logit = None
        if est.method != "reg":
            # the propensity score depends only on the comparison sample and the covariates
            key = (
                g,
                not_yet if est.control_group == "not_yet_treated" else None,
                min(c, base) if varying_x else None,
            )
            logit = logits.get(key)
            if logit is None:
                logit = logits[key] = drdid._Logit(x, d, w / w.mean())
        res = drdid._panel(
            dy,
            d,
            x,
            w,
            method=est.method,
            trim_level=float(est.trim_level),
            logit=logit,
        )
        return res, rows

    def _rcs_cell(
        self,
        est: CallawaySantAnna,
        g: float,
        c: int,
        base: int,
        not_yet: float,
        by_period: list[np.ndarray],
    ) -> tuple[drdid.DiD2x2, np.ndarray]:
        cand = np.concatenate([by_period[base], by_period[c]])
        cand.sort()
        gc = self.g_row[cand]
        treat = gc == g
        ctrl = self._comparison(gc, g, not_yet, est)
        rows = cand[treat | ctrl]
        d = (self.g_row[rows] == g).astype(float)
        post = (self.tcode[rows] == c).astype(float)
        for dv, label in ((1.0, "treated"), (0.0, "comparison")):
            for pv, period in ((1.0, "this"), (0.0, "the base")):
                if not np.any((d == dv) & (post == pv)):
                    raise NotEstimableError(
                        f"no {label} observations in {period} period",
                        hint="repeated cross-sections need both groups in both periods",
                    )
        x = self.x_row[rows]
        x = np.column_stack([np.ones(len(rows)), x])
        res = drdid._rcs(
            self.y[rows],
            post,
            d,
            x,
            self.w_row[rows],
            method=est.method,
            trim_level=float(est.trim_level),
        )
        return res, rows


def _check_counts(n_treat: int, n_ctrl: int) -> None:
    if n_treat == 0:
        raise NotEstimableError("the cohort has no units", hint="check the cohort column")
    if n_ctrl == 0:
        raise NotEstimableError(
            "there are no comparison units",
            hint="with control_group='not_yet_treated' late periods may have none left; "
            "use control_group='never_treated' or drop those periods",
        )


def _count_units(mask: np.ndarray, unit_ids: np.ndarray | None) -> int:
    if unit_ids is None:
        return int(mask.sum())
    return len(pd.unique(unit_ids[mask])) if mask.any() else 0
