"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.heterogeneity import combine_groups, split_by
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, Scores, make_table
from evalkit.core.uncertainty import Analytic, Draws, NoInference, Uncertainty
from evalkit.data.checks import check_name
from evalkit.data.wide import WideOutcomes, wide_panel
from evalkit.errors import DesignError
from evalkit.synth.covariates import project_out
from evalkit.synth.sdid_cohorts import Draws as Draws_
from evalkit.synth.sdid_cohorts import StaggeredFit, draw_se, fit_cohorts, variance_draws

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["SyntheticDiD", "SyntheticDiDResult"]

VARIANTS = ("sdid", "sc", "did")
DEFAULT_REPS = 200
_DESCRIPTIONS = {
    "placebo": "placebo variance (donors reassigned as pseudo-treated, weights re-estimated)",
    "bootstrap": "unit bootstrap variance (units resampled, weights re-estimated)",
    "jackknife": "jackknife variance (leave one unit out, weights fixed)",
}


@register("synth.SyntheticDiD")
@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticDiD(Estimator):
    """Synthetic difference-in-differences, with SC and DiD as special cases.

    Unit weights make the donors' pre-period trajectories parallel to the treated
    units'; time weights make the pre-periods' donor outcomes match the post-periods';
    the estimate is the doubly weighted difference-in-differences. Weights solve the
    paper's regularised problems by Frank-Wolfe exactly as the R synthdid package
    defines them (see :mod:`evalkit.synth.sdid_block`).

    Parameters
    ----------
    outcome, unit, time
        Column names.
    treatment
        0/1 column (treated unit in a treated period); treatment must be absorbing.
    cohort
        Alternatively the first treated period (never treated: 0 or missing).
    covariates
        Time-varying covariates, partialled out by the ``projected`` method: their
        coefficients come from a two-way fixed-effects regression on the never-treated
        units and the estimator runs on the residualised outcome
        (:mod:`evalkit.synth.covariates`).
    variant
        ``"sdid"`` (default), ``"sc"`` (synthetic control: unit weights without
        intercept and with a vanishing penalty, no time weights) or ``"did"`` (uniform
        weights), as the R package's ``synthdid_estimate``, ``sc_estimate`` and
        ``did_estimate``.
    max_iter
        Frank-Wolfe iterations after sparsification (R default 10,000).
    sparsify
        Run the R package's sparsification step (default True).

    Notes
    -----
    Several treated units adopting together form one block. With staggered adoption
    every cohort is a block against the never-treated donors and the overall estimate
    averages the cohort estimates weighted by their treated unit-periods (Clarke et al.
    2023, Stata ``sdid``). Per-cohort estimates and event-time effects (effect by period
    since adoption, per cohort and averaged) come with the result.

    Inference: ``"placebo"`` (default; valid with one treated unit; needs more donors
    than treated units), ``"jackknife"`` and ``"bootstrap"`` (need more than one treated
    unit, and the jackknife two per cohort: otherwise they raise instead of returning
    NaN), or ``"none"``. Standard errors use the R package's formulas and normal
    intervals; ``reps`` draws (default 200) from the fit's seed.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.synth import SyntheticDiD
    >>> df = evalkit.datasets.load("prop99")
    >>> est = SyntheticDiD(outcome="PacksPerCapita", unit="State", time="Year",
    ...                    treatment="treated")
    >>> res = est.fit(df, inference="none")
    >>> round(res.estimate(), 3)
    -15.604
    >>> res.weights.sort_values().index[-1]
    'Nevada'
    """

    outcome: str
    unit: str
    time: str
    treatment: str | None = None
    cohort: str | None = None
    covariates: tuple[str, ...] = ()
    variant: Literal["sdid", "sc", "did"] = "sdid"
    max_iter: int = 10_000
    sparsify: bool = True

    supported_inference: ClassVar[tuple[str, ...]] = ("placebo", "jackknife", "bootstrap", "none")
    #: The placebo here is a variance (R synthdid's ``vcov(method="placebo")``): standard
    #: errors from the placebo draws, not a test inversion.
    method_kinds: ClassVar[dict[str, str]] = {"placebo": "draws"}
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({"ATT": "treated_periods"})

    def __post_init__(self) -> None:
        for option in ("outcome", "unit", "time"):
            check_name(getattr(self, option), option)
        if self.treatment is None and self.cohort is None:
            raise DesignError(
                "SyntheticDiD needs treatment= (a 0/1 column) or cohort= (first treated period)",
                hint="e.g. treatment='treated'",
                column="treatment",
            )
        covs = (self.covariates,) if isinstance(self.covariates, str) else self.covariates
        object.__setattr__(self, "covariates", tuple(covs or ()))
        if self.variant not in VARIANTS:
            raise DesignError(
                f"variant must be one of {VARIANTS}, got {self.variant!r}",
                hint="variant='sdid' (synthetic DiD), 'sc' (synthetic control) or 'did'",
                column="variant",
            )
        if (
            isinstance(self.max_iter, bool)
            or not isinstance(self.max_iter, int)
            or self.max_iter < 1
        ):
            raise DesignError(
                f"max_iter must be a positive whole number, got {self.max_iter!r}",
                column="max_iter",
            )
        if not isinstance(self.sparsify, bool):
            raise DesignError(
                f"sparsify must be True or False, got {self.sparsify!r}", column="sparsify"
            )

    # ------------------------------------------------------------------ fit
    def wide(self, data: pd.DataFrame) -> WideOutcomes:
        """Return the wide outcome matrix this estimator works on."""
        return wide_panel(
            data,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            treatment=self.treatment,
            cohort=self.cohort,
            covariates=self.covariates,
        )

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> SyntheticDiDResult:
        wide = self.wide(data)
        y, beta = project_out(wide.y, wide.covariates, wide.n_donors)
        cohorts = wide.cohorts
        fit = fit_cohorts(
            y,
            wide.n_donors,
            [(c.start, c.rows) for c in cohorts],
            self.variant,
            max_iter=self.max_iter,
            sparsify=self.sparsify,
        )
        method, reason = self._method(ctx, fit)
        reps = ctx.reps or (ctx.inference.reps if ctx.inference else None) or DEFAULT_REPS
        draws = None if method == "none" else variance_draws(method, y, fit, reps, ctx.rng)
        labels = [_label(c.label) for c in cohorts]
        events, event_est = fit.event_effects()
        if method == "jackknife":
            reps = len(draws.overall)  # type: ignore[union-attr]
        inference = InferenceInfo(
            method=method,
            description=_describe(method, reps),
            distribution="normal",
            reason=reason,
            reps=None if method == "none" else reps,
        )
        unit_labels = wide.units[_jackknife_rows(fit)] if method == "jackknife" else None
        views = _views(
            fit, labels, events, event_est[0], draws, method, inference, ctx, unit_labels
        )
        info = {
            "n_units": wide.n_units,
            "n_donors": wide.n_donors,
            "n_treated": wide.n_treated,
            "n_periods": wide.n_periods,
            "cohorts": {str(lab): c.n_units for lab, c in zip(labels, cohorts, strict=True)},
            "cohort_weights": dict(zip(map(str, labels), fit.cohort_weights.tolist(), strict=True)),
            "treatment_start": {
                str(lab): _label(wide.times[c.start])
                for lab, c in zip(labels, cohorts, strict=True)
            },
            "variant": self.variant,
            "zeta_omega": [c.settings.zeta_omega for c in fit.cohorts],
            "zeta_lambda": [c.settings.zeta_lambda for c in fit.cohorts],
            "covariate_coefficients": beta,
            "covariate_method": "projected" if beta else None,
            "seed": ctx.seed,
            "roles": {
                k: v
                for k, v in {
                    "outcome": self.outcome,
                    "unit": self.unit,
                    "time": self.time,
                    "treatment": self.treatment,
                    "cohort": self.cohort,
                    "covariates": list(self.covariates),
                }.items()
                if v
            },
        }
        weights, time_weights, paths = _weights_and_paths(fit, wide, labels)
        overall = views["overall"]
        return SyntheticDiDResult(
            estimator=self.registry_name,
            _table=overall._table,
            _scores=overall._scores,
            uncertainty=overall.uncertainty,
            inference=inference,
            info=info,
            level=ctx.level,
            extras={"weights": weights, "time_weights": time_weights, "paths": paths},
            views=views,
        )

    def _fit_by(self, data: pd.DataFrame, by: str, ctx: FitContext) -> Result:
        """Subgroups compared by their replicates; placebo draws paired where they can be.

        When every subgroup holds the same units, periods and treatment (each unit's
        outcome for that subgroup), the placebo draws of every subgroup reassign the same
        donors (same seed, same donor order), so they are paired draw by draw: the
        difference's standard error is that of the draw-by-draw differences. Otherwise
        (subgroups of different units) the subgroups' draws count as independent.
        """
        fits = self._fit_groups(data, by, ctx)
        if fits[0][1].inference.method != "placebo" or not self._same_design(data, by):
            return combine_groups(by, fits, ctx.level)
        paired = [(g, _paired_draws(r.headline())) for g, r in fits]
        res = combine_groups(by, paired, ctx.level)
        reps = res.inference.reps
        description = (
            f"per subgroup of {by}: {fits[0][1].inference.description}; the same donors "
            f"reassigned in every subgroup, so the {reps} placebo draws are paired across "
            "subgroups and a difference's standard error is that of the draw-by-draw "
            "differences"
        )
        return dataclasses.replace(
            res,
            inference=dataclasses.replace(
                res.inference, description=description, n_clusters=None, kind=None, missing=None
            ),
        )

    def _same_design(self, data: pd.DataFrame, by: str) -> bool:
        """Whether every subgroup of ``by`` has the same units, periods and treatment."""
        cols = [c for c in (self.unit, self.time, self.treatment, self.cohort) if c]
        designs = [
            rows[cols].drop_duplicates().sort_values(cols[:2]).reset_index(drop=True)
            for _, rows in split_by(data, by)
        ]
        return all(d.equals(designs[0]) for d in designs[1:])

    def _method(self, ctx: FitContext, fit: StaggeredFit) -> tuple[str, str | None]:
        if ctx.inference is not None:
            return ctx.inference.method, "requested"
        n1 = sum(len(c.rows) for c in fit.cohorts)
        if fit.n_donors > n1:
            return "placebo", (
                "default: the placebo variance is valid with few (even one) treated units"
            )
        if all(len(c.rows) >= 2 for c in fit.cohorts):
            return "jackknife", (
                f"default: placebo needs more donors than treated units ({fit.n_donors} <= {n1})"
            )
        raise DesignError(
            f"no variance method fits this design ({fit.n_donors} donors, {n1} treated units, "
            "a cohort with a single unit)",
            hint="pass inference='none' for the point estimate, or add donors",
            column="inference",
        )


def _paired_draws(head: Result) -> Result:
    """Return the headline with its placebo replicates labelled by draw (paired by subgroup)."""
    scores = head._scores
    assert scores is not None
    labels = np.array([f"placebo draw {i}" for i in range(scores.values.shape[0])], dtype=object)
    return dataclasses.replace(head, _scores=Scores(labels, scores.values))


def _jackknife_rows(fit: StaggeredFit) -> np.ndarray:
    """Rows left out in turn by the jackknife, in the order of its draws."""
    return np.r_[np.arange(fit.n_donors), [r for c in fit.cohorts for r in c.rows]].astype(int)


def _scores(method: str, draws: np.ndarray, labels: np.ndarray | None) -> Scores:
    """Replicate deviations scaled so that ``values.T @ values`` is the variance.

    Jackknife replicates are labelled by the unit left out (subgroups sharing units line
    up); placebo and bootstrap replicates are not tied to units and count as the
    subgroup's own.
    """
    n = draws.shape[0]
    centred = draws - draws.mean(axis=0)
    factor = np.sqrt((n - 1) / n) if method == "jackknife" else np.sqrt(1.0 / n)
    lab = None if labels is None else np.asarray(labels, dtype=object)
    return Scores(lab, centred * factor)  # type: ignore[arg-type]


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _describe(method: str, reps: int) -> str:
    if method == "none":
        return "point estimates only"
    what = f"{reps} units left out in turn" if method == "jackknife" else f"{reps} replications"
    return f"{_DESCRIPTIONS[method]}, {what}"


def _uncertainty(
    method: str,
    draws: np.ndarray | None,
    ctx: FitContext,
    reps: int,
    labels: np.ndarray | None,
    reason: str,
) -> tuple[Uncertainty, Scores | None]:
    """Wrap replicate estimates ``(B, k)`` in the result's uncertainty (and scores).

    Placebo and bootstrap replicates are kept as :class:`Draws` (centred); the
    jackknife, whose replicates are leave-one-out estimates rather than draws of
    ``theta* - theta``, gives :class:`Analytic` standard errors with the jackknife
    covariance.
    """
    if draws is None:
        return NoInference(reason), None
    se = draw_se(method, draws)
    scores = _scores(method, draws, labels)
    if method == "jackknife":
        return Analytic(se, vcov=scores.values.T @ scores.values), scores
    centred = draws - np.nanmean(draws, axis=0)
    return Draws(centred, se, method=method, reps=reps, seed=ctx.seed), scores


def _views(
    fit: StaggeredFit,
    labels: list[Any],
    events: np.ndarray,
    event_est: np.ndarray,
    draws: Draws_ | None,
    method: str,
    inference: InferenceInfo,
    ctx: FitContext,
    unit_labels: np.ndarray | None,
) -> dict[str, Result]:
    reps = inference.reps or 0
    none_reason = "inference='none' was requested"

    def result(table: pd.DataFrame, replicates: np.ndarray | None, reason: str) -> Result:
        unc, scores = _uncertainty(method, replicates, ctx, reps, unit_labels, reason)
        return Result(
            "synth.SyntheticDiD",
            table,
            inference,
            level=ctx.level,
            uncertainty=unc,
            _scores=scores,
        )

    def table(term: str, est: np.ndarray, **keys: Any) -> pd.DataFrame:
        return make_table([term] * len(est), est, np.full(len(est), np.nan), **keys)

    cohort_est = np.array([c.estimate for c in fit.cohorts])
    views = {
        "overall": result(
            table("ATT", np.array([fit.estimate])),
            None if draws is None else draws.overall[:, None],
            none_reason,
        ),
        "cohort": result(
            table("ATT(g)", cohort_est, cohort=labels),
            None if draws is None else draws.cohorts.T,
            none_reason,
        ),
        "event_time": result(
            table("ATT(e)", event_est, event_time=events.tolist()),
            None if draws is None else draws.events,
            none_reason,
        ),
    }
    cells = [
        (lab, t - c.start, eff)
        for lab, c in zip(labels, fit.cohorts, strict=True)
        for t, eff in enumerate(c.effects)
    ]
    views["cohort_event_time"] = Result(
        "synth.SyntheticDiD",
        table(
            "ATT(g,e)",
            np.array([e for _, _, e in cells]),
            cohort=[g for g, _, _ in cells],
            event_time=[e for _, e, _ in cells],
        ),
        inference,
        level=ctx.level,
        uncertainty=NoInference(
            "per-cohort event-time effects are point estimates; standard errors are given "
            "for the cohort averages (aggregate('event_time')) and the cohorts"
        ),
    )
    return views


def _weights_and_paths(
    fit: StaggeredFit, wide: WideOutcomes, labels: list[Any]
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    donors = pd.Index(wide.donors, name=wide.unit)
    times = pd.Index(wide.times, name=wide.time)
    single = len(fit.cohorts) == 1
    w_parts, t_parts, p_parts = [], [], []
    for c in fit.cohorts:
        w_parts.append(pd.Series(c.omega, index=donors, name="weight"))
        t_parts.append(pd.Series(c.lam, index=times[: c.start], name="time_weight"))
        base = float(c.lam @ (c.treated_mean[: c.start] - c.synthetic[: c.start]))
        p_parts.append(
            pd.DataFrame(
                {
                    "treated": c.treated_mean,
                    "synthetic": c.synthetic,
                    "counterfactual": c.synthetic + base,
                    "effect": c.effects,
                    "event_time": np.arange(wide.n_periods) - c.start,
                },
                index=times,
            )
        )
    if single:
        return w_parts[0], t_parts[0], p_parts[0]
    return (
        pd.concat(w_parts, keys=labels, names=["cohort", wide.unit]),
        pd.concat(t_parts, keys=labels, names=["cohort", wide.time]),
        pd.concat(p_parts, keys=labels, names=["cohort", wide.time]),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticDiDResult(Result):
    """Result of :class:`SyntheticDiD`.

    ``tidy()`` has the overall ATT. Other views, with standard errors from the same
    draws: ``aggregate("cohort")`` (one ``ATT(g)`` per adoption cohort),
    ``aggregate("event_time")`` (``ATT(e)`` by periods since adoption, averaged over
    cohorts by their numbers of units; negative ``e`` are pre-period placebo gaps) and
    ``aggregate("cohort_event_time")`` (per cohort, point estimates only).

    Attributes
    ----------
    weights
        Donor unit weights (a Series by donor; with staggered adoption indexed by
        cohort and donor).
    time_weights
        Pre-period time weights (by period; by cohort and period when staggered).
    paths
        Per period: the treated mean, the synthetic control, the counterfactual (the
        synthetic control shifted by the time-weighted pre-period gap), the effect and
        the event time (indexed by cohort too when staggered).
    """

    views: Mapping[str, Result] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "views", MappingProxyType(dict(self.views)))

    @property
    def weights(self) -> pd.Series:
        """Donor unit weights (a copy; indexed by cohort and donor when staggered)."""
        return self.extras["weights"].copy()

    @property
    def time_weights(self) -> pd.Series:
        """Pre-period time weights (a copy; by cohort and period when staggered)."""
        return self.extras["time_weights"].copy()

    @property
    def paths(self) -> pd.DataFrame:
        """Treated mean, synthetic control, counterfactual, effect and event time by period."""
        return self.extras["paths"].copy()

    @property
    def synthetic(self) -> pd.DataFrame:
        """The treated and synthetic paths (same as :attr:`paths`)."""
        return self.paths

    @property
    def aggregations(self) -> list[str]:
        """The kinds :meth:`aggregate` accepts."""
        return list(self.views)

    def aggregate(self, kind: str = "event_time") -> Result:
        """Return the estimates aggregated as ``kind`` (see :attr:`aggregations`)."""
        if kind not in self.views:
            raise DesignError(
                f"synth.SyntheticDiD has no aggregation {kind!r}",
                hint=f"available: {', '.join(self.views)}",
                column="aggregate",
            )
        return self.views[kind]

    def headline(self) -> Result:
        """Return the overall ATT (what subgroup comparisons compare)."""
        return self.views["overall"]

    def plot(
        self, ax: Axes | None = None, *, kind: str = "trajectory", cohort: Any = None, **kwargs: Any
    ) -> Axes:
        """Plot the fit.

        Parameters
        ----------
        kind
            ``"trajectory"`` (treated vs synthetic, with the time weights; default),
            ``"weights"`` (donor weights) or ``"event_time"`` (effects by period since
            treatment with intervals).
        cohort
            With staggered adoption, the cohort to draw (default the first).
        """
        from evalkit.report.synth_plots import trajectory_plot, unit_weights_plot

        paths = self.extras["paths"]
        staggered = isinstance(paths.index, pd.MultiIndex)
        if kind == "event_time":
            return self.views["event_time"].plot(ax=ax, **kwargs)
        if staggered:
            cohorts = list(dict.fromkeys(paths.index.get_level_values(0)))
            cohort = cohorts[0] if cohort is None else cohort
            if cohort not in cohorts:
                raise DesignError(
                    f"no cohort {cohort!r}", hint=f"cohorts: {cohorts}", column="cohort"
                )
        if kind == "weights":
            w = self.weights.xs(cohort) if staggered else self.weights
            return unit_weights_plot(w, ax=ax, **kwargs)
        if kind != "trajectory":
            raise DesignError(
                f"unknown plot kind {kind!r}",
                hint="kind='trajectory', 'weights' or 'event_time'",
                column="kind",
            )
        path = paths.xs(cohort) if staggered else paths
        tw = self.time_weights.xs(cohort) if staggered else self.time_weights
        start = path.index[path["event_time"].to_numpy() == 0][0]
        title = f"{self.estimator} ({self.info.get('variant')})" + (
            f", cohort {cohort}" if staggered else ""
        )
        return trajectory_plot(
            path, treatment_start=start, time_weights=tw, ax=ax, title=title, **kwargs
        )
