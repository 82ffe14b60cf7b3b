"""Group-time results and their aggregation (event time, cohort, calendar time, overall).

Staggered-adoption estimators (Callaway & Sant'Anna and relatives) estimate one average
effect per cohort ``g`` (first treated period) and period ``t``, ``ATT(g,t)``, with an
influence function per sampling unit. :class:`GroupTimeResult` holds those and
aggregates them as in Callaway & Sant'Anna (2021, section 3) and the R package did
(``aggte``):

``"overall"``
    Average of the post-treatment ``ATT(g,t)`` (``t >= g``) weighted by cohort size.
``"event_time"``
    ``ATT(e)`` for each event time ``e = t - g``: the cohort-size weighted average of
    the ``ATT(g, g+e)``; plus the ``average`` of ``ATT(e)`` over ``e >= 0``. Options
    ``min_e``/``max_e`` restrict the event times and ``balance_e`` keeps only cohorts
    observed for at least ``balance_e`` periods after treatment, so that the
    composition of cohorts does not change with ``e``.
``"cohort"``
    ``ATT(g)``: the mean of cohort ``g``'s post-treatment effects; plus their
    cohort-size weighted ``average``.
``"calendar"``
    ``ATT(t)``: the cohort-size weighted average of the effects in period ``t`` of the
    cohorts treated by then; plus their ``average`` over periods.

Cohort sizes are estimated (the weighted share of units in each cohort), and the
standard errors account for that: the influence function of every weighted average
carries the influence of the estimated weights (as did's ``get_agg_inf_func``). Every
aggregate gets its standard error from its own influence function, with the inference
of the fit (analytic, or the multiplier bootstrap with the same draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core.result import InferenceInfo, Result, Scores, make_table
from evalkit.core.uncertainty import Analytic, Band, Draws, NoInference, Uncertainty
from evalkit.errors import DesignError, InferenceUnavailableWarning, NotEstimableError
from evalkit.inference.multiplier import (
    analytic_vcov,
    bootstrap_draws,
    cluster_sums,
    multiplier_bootstrap,
    summarise_draws,
)
from evalkit.numerics.levels import check_level

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "AGGREGATIONS",
    "AggregateResult",
    "BandResult",
    "GroupTimeData",
    "GroupTimeInference",
    "GroupTimeResult",
    "WaldTest",
    "infer",
]

AGGREGATIONS: tuple[str, ...] = ("overall", "event_time", "cohort", "calendar")
_TERMS = {"event_time": "ATT(e)", "cohort": "ATT(g)", "calendar": "ATT(t)", "overall": "ATT"}


@dataclass(frozen=True, eq=False)
class GroupTimeData:
    """What aggregation needs from a group-time fit (arrays are not copied; do not mutate).

    Attributes
    ----------
    cohort, time
        ``(K,)`` cohort and period of each ``ATT(g,t)`` cell, as floats.
    att
        ``(K,)`` the estimates.
    influence
        ``(n, K)`` influence functions, one row per sampling unit (unit of a panel, row
        of a repeated cross-section), normalised so that ``att_hat - att ~ mean(psi)``.
    unit_cohort
        ``(n,)`` cohort of each sampling unit (0 for never-treated units).
    unit_weights
        ``(n,)`` sampling weights of the units, rescaled to mean one.
    cluster
        ``(n,)`` integer cluster codes, or None when each sampling unit is a cluster.
    cluster_labels
        The label of each cluster code (or of each sampling unit when ``cluster`` is None),
        for lining up subgroup fits; None when sampling units have no labels.
    reference
        ``(K,)`` True for cells fixed at zero by construction (the base period of a
        universal base period), which have no sampling variation.
    anticipation
        Periods of anticipation (cells with ``t < g - anticipation`` are pre-treatment).
    t_first, t_last
        First and last period of the sample (for ``balance_e``).
    integer_times
        Whether periods are whole numbers (keys are then shown as integers).
    """

    cohort: np.ndarray
    time: np.ndarray
    att: np.ndarray
    influence: np.ndarray
    unit_cohort: np.ndarray
    unit_weights: np.ndarray
    cluster: np.ndarray | None
    reference: np.ndarray
    cluster_labels: np.ndarray | None = None
    anticipation: int = 0
    t_first: float = 0.0
    t_last: float = 0.0
    integer_times: bool = True

    @property
    def n(self) -> int:
        """Number of sampling units (rows of the influence function)."""
        return int(self.influence.shape[0])

    def key(self, value: float) -> Any:
        """Return a period, cohort or event time as it is shown in tables."""
        if self.integer_times and math.isfinite(value):
            return round(value)
        return float(value)

    @cached_property
    def cohort_levels(self) -> np.ndarray:
        """The cohorts of the cells, sorted (one unit column per cohort in the base)."""
        return np.unique(self.cohort)

    @cached_property
    def forms(self) -> np.ndarray:
        """``(p, K)``: each cell's influence function as a form over the base columns.

        The base columns are the K cells' influence functions followed by one column per
        cohort, ``w_i 1{G_i = g}``; every aggregate's influence function (including the
        estimation of the cohort shares) is a linear form over them.
        """
        k = len(self.att)
        return np.eye(k + len(self.cohort_levels))[:, :k]

    @cached_property
    def _base(self) -> tuple[np.ndarray, dict[tuple[int, str, int], np.ndarray]]:
        units = self.unit_weights[:, None] * (
            self.unit_cohort[:, None] == self.cohort_levels[None, :]
        )
        sums = np.hstack(
            [cluster_sums(self.influence, self.cluster), cluster_sums(units, self.cluster)]
        )
        return sums, {}

    def linear(self, forms: np.ndarray) -> LinearInfluence:
        """Influence functions given as forms ``(p, m)`` over the base columns."""
        sums, cache = self._base
        return LinearInfluence(sums, self.n, np.asarray(forms, dtype=float), cache)


@dataclass(frozen=True, eq=False)
class LinearInfluence:
    """Influence functions as linear forms over base columns whose cluster sums are kept.

    Multiplier-bootstrap draws of the base columns are computed once per (reps, weights,
    seed) and shared: the draws of any linear form are the same form of them.
    """

    base_sums: np.ndarray
    n: int
    forms: np.ndarray
    cache: dict[tuple[int, str, int], np.ndarray]

    def sums(self) -> np.ndarray:
        """``(G, m)`` cluster sums of the influence functions."""
        return self.base_sums @ self.forms

    def draws(self, reps: int, weights: str, seed: int) -> np.ndarray:
        """``(reps, m)`` multiplier-bootstrap draws."""
        key = (int(reps), str(weights), int(seed))
        if key not in self.cache:
            self.cache[key] = bootstrap_draws(
                self.base_sums, self.n, reps=int(reps), weights=weights, seed=int(seed)
            )
        return self.cache[key] @ self.forms


@dataclass(frozen=True)
class GroupTimeInference:
    """How inference is done for a group-time fit and every aggregation of it.

    Attributes
    ----------
    method
        ``"cluster"`` (analytic influence-function standard errors from cluster sums),
        ``"bootstrap"`` (multiplier bootstrap) or ``"none"``.
    cluster_name
        Name of the clustering column (the unit column by default).
    n_clusters
        Number of clusters.
    reps
        Bootstrap draws (also used for simultaneous bands under analytic inference).
    weights
        Multiplier weights, ``"rademacher"`` or ``"mammen"``.
    seed
        Seed of the multiplier draws.
    uniform
        Whether intervals are simultaneous (sup-t) bands rather than pointwise.
    reason
        Why this inference was chosen automatically, else None.
    """

    method: str = "cluster"
    cluster_name: str | None = None
    n_clusters: int = 0
    reps: int = 999
    weights: str = "rademacher"
    seed: int = 0
    uniform: bool = False
    reason: str | None = None

    def info(self) -> InferenceInfo:
        """Return the :class:`InferenceInfo` recorded in results."""
        by = f"by {self.cluster_name} " if self.cluster_name else ""
        clusters = f"({self.n_clusters} clusters)"
        band = "simultaneous (sup-t) confidence bands" if self.uniform else "pointwise intervals"
        if self.method == "cluster":
            text = f"analytic influence-function standard errors clustered {by}{clusters}"
            if self.uniform:
                text += (
                    f"; simultaneous (sup-t) bands from a multiplier bootstrap "
                    f"({self.reps} draws, {self.weights} weights, seed {self.seed})"
                )
            reps = self.reps if self.uniform else None
        elif self.method == "bootstrap":
            text = (
                f"multiplier bootstrap over influence functions ({self.reps} draws, "
                f"{self.weights} weights, seed {self.seed}) clustered {by}{clusters}; "
                f"standard errors from the interquartile range; {band}"
            )
            reps = self.reps
        else:
            text = "point estimates only (inference='none')"
            reps = None
        return InferenceInfo(
            method=self.method,
            description=text,
            distribution="normal",
            cluster=self.cluster_name,
            n_clusters=self.n_clusters or None,
            reason=self.reason,
            reps=reps,
        )


@dataclass(frozen=True)
class _Inferred:
    std_error: np.ndarray
    vcov: np.ndarray | None
    uncertainty: Uncertainty


def infer(
    estimates: np.ndarray,
    influence: np.ndarray | LinearInfluence,
    cluster: np.ndarray | None,
    settings: GroupTimeInference,
    level: float,
    band: np.ndarray | None = None,
) -> _Inferred:
    """Compute standard errors, covariance and the uncertainty from influence functions.

    Columns of ``influence`` that are identically zero (estimates fixed by construction)
    get a standard error of exactly 0 and are left out of simultaneous bands. With
    ``settings.uniform``, the estimates selected by ``band`` (all by default) get a
    simultaneous sup-t band; the others get pointwise intervals. Analytic inference
    gives :class:`~evalkit.core.uncertainty.Analytic` (normal reference), the multiplier
    bootstrap :class:`~evalkit.core.uncertainty.Draws`.
    """
    est = np.asarray(estimates, dtype=float)
    k = est.shape[0]
    if settings.method == "none":
        return _Inferred(np.full(k, np.nan), None, NoInference(_NONE_REASON))
    in_band = np.ones(k, dtype=bool) if band is None else np.asarray(band, dtype=bool)
    boot = None
    need_boot = settings.method == "bootstrap" or (settings.uniform and in_band.any())
    if isinstance(influence, LinearInfluence):
        sums = influence.sums()
        if need_boot:
            draws = influence.draws(settings.reps, settings.weights, settings.seed)
            boot = summarise_draws(draws, sums, weights=settings.weights, seed=settings.seed)
        vcov = (sums.T @ sums) / influence.n**2
    else:
        psi = np.asarray(influence, dtype=float)
        if need_boot:
            boot = multiplier_bootstrap(
                psi,
                cluster=cluster,
                reps=settings.reps,
                weights=settings.weights,
                seed=settings.seed,
            )
        vcov = analytic_vcov(psi, cluster)
    if settings.method == "bootstrap":
        assert boot is not None
        se = boot.std_error
        vcov = boot.vcov
    else:
        se = np.sqrt(np.clip(np.diag(vcov), 0.0, None))
    sim = None
    if settings.uniform and boot is not None:
        cols = in_band & (se > 0)
        if cols.any():
            sup_t = np.max(np.abs(boot.draws[:, cols]) / se[cols], axis=1)
            sim = Band(sup_t=sup_t, rows=in_band)
    unc: Uncertainty
    if settings.method == "bootstrap":
        assert boot is not None
        unc = Draws(
            boot.draws,
            se,
            band=sim,
            method="bootstrap",
            reps=boot.reps,
            weights=settings.weights,
            seed=settings.seed,
        )
    else:
        unc = Analytic(se, df=np.full(k, np.inf), vcov=vcov, band=sim)
    return _Inferred(se, vcov, unc)


_NONE_REASON = "inference='none' was requested: point estimates only"


@dataclass(frozen=True, eq=False)
class BandResult(Result):
    """A result whose intervals may be simultaneous (sup-t) bands.

    The band lives in the result's uncertainty (:class:`~evalkit.core.uncertainty.Band`,
    the sup-t draws: ``reps`` numbers, no microdata), so :meth:`tidy` gives bands at any
    confidence level.
    """


@dataclass(frozen=True)
class WaldTest:
    """A Wald test that a set of estimates are all zero.

    Attributes
    ----------
    statistic
        The Wald (chi-squared) statistic.
    df
        Degrees of freedom (the rank of the covariance of the tested estimates).
    p_value
        Chi-squared p-value.
    n_estimates
        Number of estimates tested.
    description
        What was tested.
    """

    statistic: float
    df: int
    p_value: float
    n_estimates: int
    description: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary."""
        return {
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "n_estimates": self.n_estimates,
            "description": self.description,
        }


@dataclass(frozen=True, eq=False)
class AggregateResult(BandResult):
    """An aggregation of group-time effects (from :meth:`GroupTimeResult.aggregate`).

    Rows are keyed by ``event_time``, ``cohort`` or ``time`` (term ``ATT(e)``,
    ``ATT(g)``, ``ATT(t)``), followed by the summary row ``average`` whose key is
    missing; ``aggregate("overall")`` has the single row ``ATT``.
    """

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Plot the keyed estimates (not the summary row) with their intervals."""
        from evalkit.report.plots import coefficient_plot

        if "terms" not in kwargs:
            kwargs["terms"] = [t for t in dict.fromkeys(self.terms) if t != "average"]
        return coefficient_plot(self, ax=ax, **kwargs)


@dataclass(frozen=True, eq=False)
class GroupTimeResult(BandResult):
    """Group-time average treatment effects ``ATT(g,t)`` with their influence functions.

    ``tidy()`` has one row per cohort and period (term ``ATT(g,t)``, keys ``cohort`` and
    ``time``). :meth:`aggregate` summarises them; :meth:`pretest` tests parallel
    pre-trends.
    """

    _gt: GroupTimeData | None = None
    _settings: GroupTimeInference = field(default_factory=GroupTimeInference)

    def aggregate(
        self,
        kind: str = "event_time",
        *,
        min_e: float | None = None,
        max_e: float | None = None,
        balance_e: int | None = None,
        uniform: bool | None = None,
        level: float | None = None,
    ) -> AggregateResult:
        """Aggregate the group-time effects.

        Parameters
        ----------
        kind
            ``"overall"``, ``"event_time"``, ``"cohort"`` or ``"calendar"``.
        min_e, max_e
            Event-time window (``event_time`` only).
        balance_e
            Keep only cohorts observed at least ``balance_e`` periods after treatment, and
            event times from ``balance_e - (T_last - T_first)`` to ``balance_e``
            (``event_time`` only).
        uniform
            Simultaneous (sup-t) confidence bands over the keyed rows instead of pointwise
            intervals; None keeps the choice made at fit time. Under analytic inference
            the band's critical value comes from a multiplier bootstrap with the fit's
            seed.
        level
            Confidence level; defaults to the fit's.

        Returns
        -------
        AggregateResult

        Examples
        --------
        >>> import evalkit
        >>> from evalkit.did.callaway_santanna import CallawaySantAnna
        >>> df = evalkit.datasets.load("mpdta")
        >>> cs = CallawaySantAnna(outcome="lemp", unit="countyreal", time="year",
        ...                       cohort="first.treat")
        >>> res = cs.fit(df)
        >>> round(res.aggregate("overall").estimate("ATT"), 4)
        -0.04
        """
        if self._gt is None:  # pragma: no cover - built by estimators only
            raise NotEstimableError("this result holds no influence functions to aggregate")
        if kind not in AGGREGATIONS:
            import difflib

            close = difflib.get_close_matches(str(kind), AGGREGATIONS, n=1)
            raise DesignError(
                f"unknown aggregation {kind!r}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"choose one of {', '.join(AGGREGATIONS)}",
                column="kind",
            )
        if kind != "event_time":
            given = [
                n
                for n, v in (("min_e", min_e), ("max_e", max_e), ("balance_e", balance_e))
                if v is not None
            ]
            if given:
                raise DesignError(
                    f"{', '.join(given)} only apply to aggregate('event_time')",
                    hint="drop the option, or aggregate by event time",
                    column=given[0],
                )
        level = self.level if level is None else check_level(level)
        settings = self._settings
        if uniform is not None:
            if settings.method == "none" and uniform:
                raise DesignError(
                    "uniform bands need inference; this fit used inference='none'",
                    hint="refit with inference='cluster' or 'bootstrap'",
                    column="uniform",
                )
            settings = _replace(settings, uniform=bool(uniform))
        gt = self._gt
        if kind == "overall":
            rows = _agg_overall(gt)
        elif kind == "cohort":
            rows = _agg_cohort(gt)
        elif kind == "calendar":
            rows = _agg_calendar(gt)
        else:
            rows = _agg_event(gt, min_e=min_e, max_e=max_e, balance_e=balance_e)
        keys = [r[0] for r in rows]
        est = np.array([r[1] for r in rows])
        linear = gt.linear(np.column_stack([r[2] for r in rows]))
        main = np.array([k is not None for k in keys])
        # bands cover the keyed rows jointly; the summary row gets a pointwise interval
        inf = infer(est, linear, gt.cluster, settings, level, band=main)
        se = inf.std_error
        term = _TERMS[kind]
        summary = "ATT" if kind == "overall" else "average"
        terms = [term if k is not None else summary for k in keys]
        key_col = {"event_time": "event_time", "cohort": "cohort", "calendar": "time"}.get(kind)
        columns: dict[str, Any] = {}
        if key_col is not None:
            columns[key_col] = pd.Series([k for k in keys], dtype=object)
        table = make_table(terms, est, se, **columns)
        info = dict(self.info)
        info["aggregation"] = kind
        info["aggregation_options"] = {
            "min_e": min_e,
            "max_e": max_e,
            "balance_e": balance_e,
            "uniform": settings.uniform,
        }
        return AggregateResult(
            estimator=self.estimator,
            _table=table,
            inference=settings.info(),
            info=info,
            level=level,
            _vcov=inf.vcov,
            _scores=Scores(gt.cluster_labels, linear.sums() / gt.n),
            uncertainty=inf.uncertainty,
        )

    def headline(self) -> Result:
        """Return the overall ATT: what subgroup comparisons (``by=``) compare."""
        return self.aggregate("overall")

    def pretest(self) -> WaldTest:
        """Wald test that all pre-treatment ``ATT(g,t)`` are zero (parallel pre-trends).

        Pre-treatment cells are those with ``t < g - anticipation``; cells fixed at zero
        (universal base period) are left out. The covariance is the fit's (analytic or
        bootstrap). A small p-value is evidence against parallel trends before
        treatment; a large one is not evidence for them (low power is common).

        Returns
        -------
        WaldTest

        Examples
        --------
        >>> import evalkit
        >>> from evalkit.did.callaway_santanna import CallawaySantAnna
        >>> df = evalkit.datasets.load("mpdta")
        >>> res = CallawaySantAnna(outcome="lemp", unit="countyreal", time="year",
        ...                        cohort="first.treat").fit(df)
        >>> res.pretest().df
        5
        """
        gt = self._gt
        if gt is None:  # pragma: no cover
            raise NotEstimableError("this result holds no influence functions")
        if self._settings.method == "none":
            raise DesignError(
                "the pre-test needs inference; this fit used inference='none'",
                hint="refit with inference='cluster' or 'bootstrap'",
                column="inference",
            )
        pre = (gt.time < gt.cohort - gt.anticipation) & ~gt.reference
        pre &= np.any(gt.influence != 0.0, axis=0)
        if not pre.any():
            raise NotEstimableError(
                "there are no pre-treatment ATT(g,t) to test",
                hint="the pre-test needs periods before treatment (net of anticipation)",
            )
        a = gt.att[pre]
        if self._settings.method == "bootstrap":
            boot = multiplier_bootstrap(
                gt.influence[:, pre],
                cluster=gt.cluster,
                reps=self._settings.reps,
                weights=self._settings.weights,
                seed=self._settings.seed,
            )
            v = boot.vcov
            what = "bootstrap"
        else:
            v = analytic_vcov(gt.influence[:, pre], gt.cluster)
            what = "analytic"
        vals, vecs = np.linalg.eigh(v)
        tol = vals.max() * max(v.shape) * np.finfo(float).eps * 10 if vals.size else 0.0
        good = vals > tol
        if good.sum() < len(a):
            import warnings

            warnings.warn(
                f"the covariance of the {len(a)} pre-treatment estimates has rank "
                f"{int(good.sum())}; the Wald test uses a generalised inverse",
                InferenceUnavailableWarning,
                stacklevel=2,
            )
        proj = vecs[:, good].T @ a
        stat = float(np.sum(proj**2 / vals[good]))
        df = int(good.sum())
        from scipy import stats

        return WaldTest(
            statistic=stat,
            df=df,
            p_value=float(stats.chi2.sf(stat, df)),
            n_estimates=len(a),
            description=(
                f"Wald test that the {len(a)} pre-treatment ATT(g,t) are zero ({what} covariance)"
            ),
        )


def _replace(settings: GroupTimeInference, **changes: Any) -> GroupTimeInference:
    import dataclasses

    return dataclasses.replace(settings, **changes)


# ---------------------------------------------------------------------- aggregation maths
def _cohort_shares(gt: GroupTimeData, cohorts: np.ndarray) -> np.ndarray:
    """Weighted share of sampling units in each cohort: mean(w * 1{G = g})."""
    uniq = np.unique(cohorts)
    pos = np.searchsorted(uniq, gt.unit_cohort)
    pos_c = np.clip(pos, 0, len(uniq) - 1)
    match = uniq[pos_c] == gt.unit_cohort
    sums = np.bincount(pos_c[match], weights=gt.unit_weights[match], minlength=len(uniq))
    share = sums / gt.n
    return share[np.searchsorted(uniq, cohorts)]


def _weighted(
    gt: GroupTimeData,
    att: np.ndarray,
    forms: np.ndarray,
    cohorts: np.ndarray,
    shares: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Share-weighted average of estimates and its influence function (as a form).

    The influence function includes the estimation of the shares: with
    ``S = sum_j p_j`` and the average ``A``, unit ``i`` contributes
    ``w_i (sum_{j: g_j = G_i} att_j - A * #{j: g_j = G_i}) / S``, which is the cohort
    column ``w_i 1{G_i = g}`` of the base times ``(sum_{j: g_j = g} att_j - A n_g) / S``.
    """
    total = float(shares.sum())
    wts = shares / total
    est = float(wts @ att)
    form = forms @ wts
    uniq, inv = np.unique(cohorts, return_inverse=True)
    a_sum = np.bincount(inv, weights=att, minlength=len(uniq))
    count = np.bincount(inv, minlength=len(uniq)).astype(float)
    columns = len(gt.att) + np.searchsorted(gt.cohort_levels, uniq)
    form[columns] += (a_sum - est * count) / total
    return est, form


Row = tuple[Any, float, np.ndarray]


def _post(gt: GroupTimeData) -> np.ndarray:
    return gt.cohort <= gt.time


def _agg_overall(gt: GroupTimeData) -> list[Row]:
    keep = _post(gt)
    if not keep.any():
        raise NotEstimableError(
            "there are no post-treatment ATT(g,t) to aggregate",
            hint="no cohort is observed at or after its first treated period",
        )
    est, psi = _weighted(
        gt,
        gt.att[keep],
        gt.forms[:, keep],
        gt.cohort[keep],
        _cohort_shares(gt, gt.cohort[keep]),
    )
    return [(None, est, psi)]


def _agg_cohort(gt: GroupTimeData) -> list[Row]:
    post = _post(gt)
    rows: list[Row] = []
    cohorts = [g for g in np.unique(gt.cohort) if (post & (gt.cohort == g)).any()]
    if not cohorts:
        raise NotEstimableError(
            "there are no post-treatment ATT(g,t) to aggregate",
            hint="no cohort is observed at or after its first treated period",
        )
    atts, psis = [], []
    for g in cohorts:
        sel = post & (gt.cohort == g)
        est = float(gt.att[sel].mean())
        psi = gt.forms[:, sel].mean(axis=1)
        rows.append((gt.key(g), est, psi))
        atts.append(est)
        psis.append(psi)
    garr = np.array(cohorts, dtype=float)
    est, psi = _weighted(gt, np.array(atts), np.column_stack(psis), garr, _cohort_shares(gt, garr))
    rows.append((None, est, psi))
    return rows


def _agg_calendar(gt: GroupTimeData) -> list[Row]:
    post = _post(gt)
    rows: list[Row] = []
    for t in np.unique(gt.time[post]):
        sel = post & (gt.time == t)
        est, psi = _weighted(
            gt,
            gt.att[sel],
            gt.forms[:, sel],
            gt.cohort[sel],
            _cohort_shares(gt, gt.cohort[sel]),
        )
        rows.append((gt.key(t), est, psi))
    if not rows:
        raise NotEstimableError(
            "there are no post-treatment ATT(g,t) to aggregate",
            hint="no cohort is observed at or after its first treated period",
        )
    est = float(np.mean([r[1] for r in rows]))
    psi = np.column_stack([r[2] for r in rows]).mean(axis=1)
    rows.append((None, est, psi))
    return rows


def _number(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if math.isnan(out):
        raise DesignError(f"{name} must be a number, got {value!r}", column=name)
    return out


def _agg_event(
    gt: GroupTimeData,
    *,
    min_e: float | None,
    max_e: float | None,
    balance_e: int | None,
) -> list[Row]:
    e_all = np.round(gt.time - gt.cohort, 9)
    include = np.ones(len(e_all), dtype=bool)
    eseq = np.unique(e_all)
    if balance_e is not None:
        b = _number(balance_e, "balance_e")
        if b < 0:
            raise DesignError(
                f"balance_e must be non-negative, got {balance_e!r}",
                hint="balance_e=2 keeps cohorts observed at least 2 periods after treatment",
                column="balance_e",
            )
        include = (gt.t_last - gt.cohort) >= b
        if not include.any():
            raise NotEstimableError(
                f"no cohort is observed {balance_e} periods after treatment",
                hint="use a smaller balance_e",
                column="balance_e",
            )
        eseq = np.unique(e_all[include])
        eseq = eseq[(eseq <= b) & (eseq >= b - (gt.t_last - gt.t_first))]
    lo = -math.inf if min_e is None else _number(min_e, "min_e")
    hi = math.inf if max_e is None else _number(max_e, "max_e")
    eseq = eseq[(eseq >= lo) & (eseq <= hi)]
    if eseq.size == 0:
        raise NotEstimableError(
            "no event times fall within the requested window",
            hint="widen min_e/max_e or lower balance_e",
            column="min_e",
        )
    rows: list[Row] = []
    for e in eseq:
        sel = include & (e_all == e)
        est, psi = _weighted(
            gt,
            gt.att[sel],
            gt.forms[:, sel],
            gt.cohort[sel],
            _cohort_shares(gt, gt.cohort[sel]),
        )
        rows.append((gt.key(e), est, psi))
    post = [r for r, e in zip(rows, eseq, strict=True) if e >= 0]
    if post:
        est = float(np.mean([r[1] for r in post]))
        psi = np.column_stack([r[2] for r in post]).mean(axis=1)
        rows.append((None, est, psi))
    return rows
