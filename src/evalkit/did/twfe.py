"""Two-way fixed-effects difference-in-differences (including the 2x2 design)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import Result, make_table
from evalkit.data.panel import Panel, nested_within
from evalkit.did._absorbed import absorbed_ols, prune, warn_dropped
from evalkit.did._covariance import (
    REGRESSION_METHODS,
    UnitDemeanedDesign,
    covariance,
    inference_info,
    regression_inference,
    regression_scores,
)
from evalkit.did._options import check_role_names
from evalkit.did._test_inversion import TEST_INVERSION_METHODS, inversion_info, run_test_inversion
from evalkit.errors import DesignError, StaggeredAdoptionWarning
from evalkit.inference.panel import PanelData, conformal_applicable
from evalkit.numerics.within import WithinTransform

__all__ = ["TWFE"]


@register("did.TWFE")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TWFE(Estimator):
    """Two-way fixed-effects difference-in-differences.

    Regresses the outcome on the treatment indicator (and optional time-varying
    covariates) with unit and period fixed effects, which are absorbed rather than
    estimated. With two periods and two groups this is the classic 2x2 DiD. With
    staggered adoption and heterogeneous effects the TWFE coefficient is a weighted
    average that can be misleading; use :class:`~evalkit.did.CallawaySantAnna` there
    (fitting TWFE to a treatment that starts in several periods issues a
    :class:`~evalkit.errors.StaggeredAdoptionWarning`), and
    :class:`~evalkit.did.BaconDecomposition` to see the comparisons it averages.

    Parameters
    ----------
    outcome, treatment, unit, time
        Column names. ``treatment`` is 0/1 (treated unit in a treated period).
    covariates
        Time-varying covariates (time-invariant ones are absorbed by the unit effects
        and raise :class:`~evalkit.errors.NotEstimableError`).
    weights
        Observation weights (e.g. cell counts when the data are collapsed cells).
    cluster
        Column to cluster standard errors by; defaults to ``unit``.
    panel
        True for a panel (unit x time unique). False for repeated cross-sections, where
        ``unit`` names the group (e.g. a city) whose effects are absorbed.
    drop_singletons
        Drop units (and periods) observed once, repeatedly until none is left, as
        reghdfe and pyfixest do: they are fitted exactly by their own effect, say nothing
        about the coefficients, and would otherwise shrink cluster-robust standard errors.
        Rows with zero weight are always dropped. Both are counted in a warning.

    Notes
    -----
    Inference methods: ``"iid"``, ``"hetero"`` (HC1), ``"cluster"`` (CR1, Stata/fixest
    small-sample factor, t with G-1 df), ``"cr2"`` (Bell-McCaffrey with Satterthwaite df,
    exact for the full dummy regression; needs units nested in clusters) and ``"none"``.
    With ``inference=None`` the one policy (:func:`evalkit.inference.choose_inference`)
    picks CR1, or CR2 when there are fewer than 30 clusters or fewer than 5 clusters
    carrying treated or control variation (a cluster with treated and untreated units
    in a period carries both), and records the reason.
    Balanced unweighted panels are demeaned in closed form in one pass; otherwise
    alternating projections are used.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did import TWFE
    >>> df = evalkit.datasets.load("mpdta")
    >>> df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    >>> res = TWFE(outcome="lemp", treatment="post", unit="countyreal", time="year").fit(df)
    >>> round(res.estimate("post"), 4)
    -0.0365
    """

    outcome: str
    treatment: str
    unit: str
    time: str
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    panel: bool = True
    drop_singletons: bool = True

    supported_inference: ClassVar[tuple[str, ...]] = REGRESSION_METHODS + TEST_INVERSION_METHODS
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({"{treatment}": "treated_cells"})

    def __post_init__(self) -> None:
        check_role_names(self, ("outcome", "treatment", "unit", "time"), ("weights", "cluster"))
        if not isinstance(self.panel, bool):
            raise DesignError(f"panel must be True or False, got {self.panel!r}", column="panel")

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        spec = ctx.inference
        cluster_col = (spec.cluster if spec is not None else None) or self.cluster or self.unit
        panel = Panel(
            data,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            treatment=self.treatment,
            covariates=list(self.covariates),
            cluster=None if cluster_col == self.unit else cluster_col,
            weights=self.weights,
            panel=self.panel,
            stacklevel=3,
        )
        names = [self.treatment, *self.covariates]
        y = panel.values(self.outcome)
        x = panel.matrix(names)
        w = panel.values(self.weights) if self.weights else None
        keep, reasons = prune(
            [(panel.unit_codes, panel.n_units), (panel.time_codes, panel.n_periods)],
            w,
            self.drop_singletons,
            complete=w is None and panel.is_balanced and min(panel.n_units, panel.n_periods) >= 2,
        )
        if reasons:
            warn_dropped(reasons, len(keep), stacklevel=4)
            result = self._fit(panel.to_frame().loc[keep], ctx)
            dropped = {**panel.dropped, **reasons}
            return dataclasses.replace(result, info={**result.info, "dropped": dropped})
        units = panel.unit_codes
        times = panel.time_codes
        warn_staggered(panel, self.treatment, stacklevel=5)
        if cluster_col == self.unit:
            clusters, n_clusters = units, panel.n_units
        else:
            clusters, n_clusters = panel.cluster_codes, panel.n_clusters

        within = WithinTransform((units, times), weights=w)
        fit = absorbed_ols(y, x, names, within, w, f"{self.unit} and {self.time}")
        n, k = fit.n, fit.k
        k_fe = within.n_absorbed()
        k_total = k + k_fe

        supported = self.supported_inference
        if spec is None and not conformal_applicable(PanelData(y, x, units, times, clusters, w)):
            supported = tuple(m for m in supported if m != "conformal")
        choice = regression_inference(
            spec,
            supported,
            clusters=clusters,
            time=times,
            treated=panel.values(self.treatment) != 0,
            cluster_name=cluster_col,
            stacklevel=3,
        )
        method, reason = choice.method, choice.reason
        assert choice.counts is not None
        treated_clusters = choice.counts.treated_side
        nested = cluster_col == self.unit or bool(
            nested_within(units, clusters, panel.n_units).all()
        )
        info = {
            "n_obs": n,
            "n_units": panel.n_units,
            "n_periods": panel.n_periods,
            "n_clusters": n_clusters,
            "n_treated_clusters": treated_clusters,
            "clusters": choice.counts.to_dict(),
            "fixed_effects": [self.unit, self.time],
            "n_fixed_effect_parameters": k_fe,
            "df_resid": n - k_total,
            "r2_within": fit.r2_within(),
            "solver": "closed form (balanced)" if within.closed_form else "alternating projections",
            "roles": dict(panel.roles),
            "dropped": dict(panel.dropped),
            "seed": ctx.seed,
        }
        if method in TEST_INVERSION_METHODS:
            # the wild bootstrap tests every coefficient; the others test the treatment
            rows = k if method == "wild" else 1
            unc, text, reps = run_test_inversion(
                choice.spec,
                y=y,
                x=x,
                names=names,
                unit=units,
                time=times,
                cluster=clusters,
                w=w,
                rng=ctx.rng,
                level=ctx.level,
                n_rows=rows,
            )
            if rows < k:
                info["covariates"] = {
                    name: float(b) for name, b in zip(names[1:], fit.beta[1:], strict=True)
                }
            return Result(
                estimator=self.registry_name,
                _table=make_table(names[:rows], fit.beta[:rows], np.full(rows, np.nan)),
                inference=inversion_info(method, text, cluster_col, n_clusters, reason, reps),
                info=info,
                level=ctx.level,
                uncertainty=unc,
            )
        # Parameters in (N-1)/(N-K): unit effects nested in the clusters are not
        # counted; the period effects then carry the constant, so all of their
        # levels count (pyfixest 0.60, ssc defaults).
        k_small = k + panel.n_periods if nested else k_total
        design = UnitDemeanedDesign(x, times, panel.n_periods, units, w) if nested else None
        cov = covariance(
            method,
            fit,
            clusters=clusters,
            n_clusters=n_clusters,
            k_total=k_total,
            k_small=k_small,
            design_rows=None if design is None else design.rows,
            cluster_name=cluster_col,
        )
        se = np.sqrt(np.clip(np.diag(cov.vcov), 0.0, None))
        if method == "none":
            se = np.full(k, np.nan)
        table = make_table(names, fit.beta, se, df=cov.df)
        info_inf = inference_info(method, cluster_col, n_clusters, reason, cov.df)
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=info_inf,
            info=info,
            level=ctx.level,
            _vcov=None if method == "none" else cov.vcov,
            _scores=regression_scores(
                fit,
                method,
                clusters,
                n_clusters,
                panel.units if cluster_col == self.unit else panel.clusters,
            ),
        )


def warn_staggered(panel: Panel, treatment: str, stacklevel: int) -> None:
    """Warn when treatment starts in more than one period (staggered adoption)."""
    treated = panel.values(treatment) > 0
    first = np.full(panel.n_units, panel.n_periods)
    np.minimum.at(first, panel.unit_codes[treated], panel.time_codes[treated])
    starts = np.unique(first[first < panel.n_periods])
    if starts.size < 2:
        return
    shown = ", ".join(str(panel.times[c]) for c in starts[:5]) + (
        ", ..." if starts.size > 5 else ""
    )
    warnings.warn(
        f"treatment {treatment!r} starts in {starts.size} different periods ({shown}): with "
        "staggered adoption the static TWFE coefficient averages 2x2 comparisons that use "
        "already-treated units as controls, and is biased when effects change with time since "
        "treatment or differ across cohorts (Goodman-Bacon 2021). Use did.CallawaySantAnna, "
        "did.SunAbraham or did.ImputationDiD for robust estimates, and "
        "did.BaconDecomposition to see the comparisons and their weights",
        StaggeredAdoptionWarning,
        stacklevel=stacklevel,
    )
