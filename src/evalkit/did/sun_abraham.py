"""Sun & Abraham (2021) interaction-weighted event-study estimator."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, Scores, make_table
from evalkit.did._covariance import (
    REGRESSION_METHODS,
    cr2_contrasts,
    inference_info,
    regression_scores,
    standard_errors,
    wald_test,
)
from evalkit.did._event_time import EventTimeResult, event_term
from evalkit.did._options import reference_periods
from evalkit.did._staggered import (
    PanelRegression,
    StaggeredSample,
    check_staggered_roles,
    cohort_sizes,
    panel_regression,
    prune_sample,
    staggered_roles,
    staggered_sample,
)
from evalkit.errors import DesignError, NotEstimableError, RowsDroppedWarning
from evalkit.inference.vcov import Sandwich

__all__ = ["SunAbraham"]

ControlCohort = Literal["never_treated", "last_treated"]
CONTROL_COHORTS: tuple[str, ...] = get_args(ControlCohort)


@register("did.SunAbraham")
@dataclasses.dataclass(frozen=True, kw_only=True)
class SunAbraham(Estimator):
    """Sun & Abraham (2021) interaction-weighted event study.

    Estimates a cohort-specific effect ``CATT(g, e)`` for every treated cohort ``g``
    (first treated period) and event time ``e = t - g`` other than the reference, from
    one two-way fixed-effects regression on the full set of cohort x event-time
    indicators, with the control cohort (never-treated, or the last-treated cohort)
    as the comparison. These are then averaged to event time with the cohorts' shares
    of the observations at that event time as weights:
    ``ATT(e) = sum_g s(g, e) CATT(g, e)``. Unlike the dynamic TWFE coefficients of
    :class:`~evalkit.did.EventStudy`, the result is a proper weighted average of the
    cohorts' effects even when these differ across cohorts.

    Parameters
    ----------
    outcome, unit, time
        Column names; ``time`` holds numbers, dates or pandas periods (then cohorts are
        dates or periods too and results are keyed by :class:`pandas.Period`).
    cohort
        First treated period (never-treated units 0 or missing); or give ``treatment``.
    treatment
        An absorbing 0/1 treatment column from which the cohort is derived.
    covariates
        Time-varying covariates (in ``info["covariates"]``).
    weights
        Observation weights; the cohort shares are then weighted shares.
    cluster
        Column to cluster standard errors by; defaults to ``unit``.
    reference
        Event time(s) left out for every cohort, ``-1`` by default.
    control_cohort
        ``"never_treated"`` (default; needs never-treated units) or ``"last_treated"``:
        the last cohort serves as the comparison (with any never-treated units), and the
        periods from its first treated period on are dropped (counted in a warning), as
        Sun & Abraham (2021, section 4) prescribe.
    drop_singletons
        Drop units and periods observed once, as :class:`~evalkit.did.TWFE`.

    Notes
    -----
    Standard errors of the aggregates are by the delta method, ``W V W'``, with ``V``
    the covariance of the cohort-specific coefficients and the shares ``W`` treated as
    known: the convention of fixest's ``sunab``/``aggregate`` (whose shares are the
    column sums of the interaction indicators, times the weights) and of diff-diff's
    ``SunAbraham``. Sun & Abraham's (2021) own variance and Stata's
    ``eventstudyinteract`` add a term for the estimated shares; that term is not
    included here (it is usually small: the shares are estimated from the unit counts).
    Inference methods as :class:`~evalkit.did.TWFE`; with ``"cr2"`` the Satterthwaite
    degrees of freedom of each aggregate are those of its own linear combination.

    ``aggregate("overall")`` gives the ATT over every post-treatment cohort x event-time
    cell weighted by its number of observations (fixest's ``agg = "ATT"``),
    ``aggregate("cohort")`` each cohort's post-treatment average, and
    ``aggregate("cells")`` the cohort-specific ``CATT(g, e)``.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did.sun_abraham import SunAbraham
    >>> df = evalkit.datasets.load("mpdta")
    >>> res = SunAbraham(outcome="lemp", unit="countyreal", time="year",
    ...                  cohort="first.treat").fit(df)
    >>> round(res.estimate(event_time=0), 4)
    -0.0199
    >>> round(res.aggregate("overall").estimate(), 4)
    -0.04
    >>> res.aggregate("cohort").tidy()["cohort"].tolist()
    [2004, 2006, 2007]
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
    control_cohort: ControlCohort = "never_treated"
    drop_singletons: bool = True

    supported_inference: ClassVar[tuple[str, ...]] = REGRESSION_METHODS

    def __post_init__(self) -> None:
        check_staggered_roles(self)
        refs = reference_periods(self.reference)
        object.__setattr__(self, "reference", refs[0] if len(refs) == 1 else refs)
        if self.control_cohort not in CONTROL_COHORTS:
            raise DesignError(
                f"control_cohort must be one of {CONTROL_COHORTS}, got {self.control_cohort!r}",
                column="control_cohort",
            )

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> EventTimeResult:
        sample = staggered_sample(self, data, ctx)
        sample, last = self._control(sample)
        sample = prune_sample(sample, self.drop_singletons)
        control = (sample.cohort == 0) | (sample.cohort == last)
        refs = reference_periods(self.reference)
        ev = sample.event
        cohorts = np.unique(sample.cohort[~control])
        if cohorts.size == 0:
            raise NotEstimableError("no treated cohort remains besides the control cohort")
        for g in cohorts:
            seen = np.unique(ev[sample.cohort == g])
            if not any(r in seen for r in refs):
                raise DesignError(
                    f"cohort {sample.label(g)} is not observed at the reference event time(s) "
                    f"{[sample.key(r) for r in refs]}",
                    hint=f"its observed event times: {[sample.key(e) for e in seen]}; "
                    "choose a reference it has",
                    column="reference",
                )
        in_cell = ~control & ~np.isin(ev, refs)
        pairs = np.unique(np.column_stack([ev[in_cell], sample.cohort[in_cell]]), axis=0)
        cells = [(float(g), float(e)) for e, g in pairs]  # ordered by event time, cohort
        cell_of = {c: j for j, c in enumerate(cells)}
        m = len(cells)
        dummies = np.zeros((sample.n_obs, m))
        rows = np.flatnonzero(in_cell)
        cols = [cell_of[(float(sample.cohort[i]), float(ev[i]))] for i in rows]
        dummies[rows, cols] = 1.0
        names = [f"cohort={sample.label(g)},event_time={sample.key(e)}" for g, e in cells]
        reg = panel_regression(
            sample,
            np.column_stack([dummies, sample.x]),
            [*names, *self.covariates],
            treated=~control & (sample.t >= sample.cohort),
            spec=ctx.inference,
        )
        w = np.ones(sample.n_obs) if sample.w is None else sample.w
        counts = dummies.T @ w  # fixest: column sums of the indicators (times the weights)
        aggregates = _Aggregates(cells, counts, reg, sample)

        events = sorted({e for _, e in cells})
        w_event = aggregates.weights(lambda g, e, target: e == target, events)
        event_res = aggregates.contrast(w_event)
        leads = [j for j, e in enumerate(events) if e < 0]
        if not leads:
            pretrend: dict[str, Any] | None = None
        elif reg.method == "none":
            pretrend = {"skipped": "inference='none'"}
        else:
            idx = np.array(leads)
            pretrend = wald_test(
                event_res.beta[idx],
                event_res.vcov[np.ix_(idx, idx)],
                reg.wald_df(),
                "leads",
                reg.method,
            )
            pretrend["event_times"] = [sample.key(events[j]) for j in leads]
        table = make_table(
            [event_term("event_time")] * len(events),
            event_res.beta,
            event_res.se,
            df=event_res.df,
            event_time=[sample.key(e) for e in events],
        )
        treated_cohorts = sorted({g for g, e in cells if e >= 0})
        views: dict[str, Result] = {}
        inf = inference_info(
            reg.method, sample.cluster_name, sample.n_clusters, reg.reason, reg.cov.df
        )
        if treated_cohorts:
            w_all = aggregates.weights(lambda g, e, _: e >= 0, [None])
            views["overall"] = aggregates.result(
                self, ctx, inf, aggregates.contrast(w_all), [event_term("overall")], {}
            )
            w_cohort = aggregates.weights(
                lambda g, e, target: g == target and e >= 0, treated_cohorts
            )
            views["cohort"] = aggregates.result(
                self,
                ctx,
                inf,
                aggregates.contrast(w_cohort),
                [event_term("cohort")] * len(treated_cohorts),
                {"cohort": [sample.label(g) for g in treated_cohorts]},
            )
        views["cells"] = aggregates.result(
            self,
            ctx,
            inf,
            aggregates.contrast(np.eye(m)),
            [event_term("cells")] * m,
            {
                "cohort": [sample.label(g) for g, _ in cells],
                "event_time": [sample.key(e) for _, e in cells],
            },
        )
        beta = reg.fit.beta
        se = standard_errors(reg.cov.vcov, reg.method)
        info = {
            "n_obs": sample.n_obs,
            "n_units": sample.n_units,
            "n_periods": sample.n_periods,
            "n_clusters": sample.n_clusters,
            "n_treated_clusters": reg.n_treated_clusters,
            "cohorts": cohort_sizes(sample),
            "control_cohort": self.control_cohort,
            "control_cohort_period": None if last is None else sample.label(last),
            "event_times": [sample.key(e) for e in events],
            "reference": [sample.key(r) for r in refs],
            "shares": {
                str(sample.key(e)): {
                    str(sample.label(g)): float(w_event[i, cell_of[(g, e)]])
                    for g, e2 in cells
                    if e2 == e
                }
                for i, e in enumerate(events)
            },
            "cell_counts": {n: float(c) for n, c in zip(names, counts, strict=True)},
            "covariates": {
                name: {"estimate": float(beta[m + j]), "std_error": float(se[m + j])}
                for j, name in enumerate(self.covariates)
            },
            "pretrend_test": pretrend,
            "fixed_effects": [self.unit, self.time],
            "n_fixed_effect_parameters": reg.k_total - reg.fit.k,
            "df_resid": reg.df_resid,
            "variance_of_shares": "not included (shares treated as known, as fixest sunab)",
            "roles": staggered_roles(self),
            "dropped": dict(sample.dropped),
            "seed": ctx.seed,
        }
        return EventTimeResult(
            estimator=self.registry_name,
            _table=table,
            inference=inf,
            info=info,
            level=ctx.level,
            _vcov=None if reg.method == "none" else event_res.vcov,
            _scores=event_res.scores,
            reference=tuple(sample.key(r) for r in refs),
            views=views,
        )

    def _control(self, sample: StaggeredSample) -> tuple[StaggeredSample, float | None]:
        """Apply the control cohort: check never-treated units or cut at the last cohort."""
        never = sample.cohort == 0
        if self.control_cohort == "never_treated":
            if not never.any():
                raise NotEstimableError(
                    "there are no never-treated units to serve as the control cohort",
                    hint="use control_cohort='last_treated'",
                    column="control_cohort",
                )
            return sample, None
        last = float(sample.cohort.max())
        late = sample.t >= last
        if late.all():
            raise NotEstimableError(
                f"no period before the last cohort ({sample.label(last)}) is observed",
                column="control_cohort",
            )
        if late.any():
            n = int(late.sum())
            warnings.warn(
                f"dropped the {n} rows from period {sample.label(last)} on, when the control "
                f"cohort {sample.label(last)} is itself treated",
                RowsDroppedWarning,
                stacklevel=4,
            )
            sample = sample.subset(~late, {"rows from the control cohort's first period on": n})
        return sample, last


@dataclasses.dataclass(frozen=True)
class _Contrast:
    beta: np.ndarray
    vcov: np.ndarray
    se: np.ndarray
    df: np.ndarray
    scores: Scores | None


@dataclasses.dataclass(frozen=True)
class _Aggregates:
    """Share-weighted averages of the cohort x event-time coefficients."""

    cells: list[tuple[float, float]]
    counts: np.ndarray
    reg: PanelRegression
    sample: StaggeredSample

    def weights(self, member: Any, targets: list[Any]) -> np.ndarray:
        """Rows of share weights: for each target, the cells ``member(g, e, target)``."""
        out = np.zeros((len(targets), len(self.cells)))
        for i, target in enumerate(targets):
            mask = np.array([member(g, e, target) for g, e in self.cells])
            total = self.counts[mask].sum()
            if total <= 0:
                raise NotEstimableError("an aggregate has no observations to average")
            out[i, mask] = self.counts[mask] / total
        return out

    def contrast(self, w: np.ndarray) -> _Contrast:
        """Estimates, covariance, standard errors and df of ``w @ CATT``."""
        reg = self.reg
        m = len(self.cells)
        delta = reg.fit.beta[:m]
        v = reg.cov.vcov[:m, :m]
        beta = w @ delta
        vcov = w @ v @ w.T
        if reg.method == "cr2":
            full = np.zeros((w.shape[0], reg.fit.k))
            full[:, :m] = w
            assert reg.design is not None
            cov: Sandwich = cr2_contrasts(
                reg.fit, full, self.sample.cluster, self.sample.n_clusters, reg.design.rows
            )
            vcov, df = cov.vcov, cov.df
        else:
            df = np.full(len(beta), reg.cov.df[0])
        se = standard_errors(vcov, reg.method)
        s = self.sample
        scores = regression_scores(
            reg.fit, reg.method, s.cluster, s.n_clusters, s.cluster_labels, transform=w
        )
        return _Contrast(beta=beta, vcov=vcov, se=se, df=df, scores=scores)

    def result(
        self,
        est: SunAbraham,
        ctx: FitContext,
        inf: InferenceInfo,
        c: _Contrast,
        terms: list[str],
        keys: dict[str, list[Any]],
    ) -> Result:
        """Wrap an aggregate as a Result."""
        table = make_table(terms, c.beta, c.se, df=c.df, **keys)
        return Result(
            estimator=est.registry_name,
            _table=table,
            inference=inf,
            info={"aggregation": terms[0], "seed": ctx.seed},
            level=ctx.level,
            _vcov=None if self.reg.method == "none" else c.vcov,
            _scores=c.scores,
        )
