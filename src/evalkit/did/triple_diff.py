"""Triple differences (DDD) with unit x group, time x group and unit x time effects."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import Result, make_table
from evalkit.data.panel import Panel, nested_within
from evalkit.did._absorbed import absorbed_ols, absorbed_rank, prune, warn_dropped
from evalkit.did._covariance import (
    REGRESSION_METHODS,
    NestedProjectedDesign,
    covariance,
    inference_info,
    regression_scores,
    standard_errors,
)
from evalkit.did._options import check_role_names
from evalkit.did._test_inversion import inversion_info, wild_from_fit
from evalkit.errors import (
    DataError,
    DesignError,
    FewClustersWarning,
    NotEstimableError,
    RowsDroppedWarning,
)
from evalkit.inference.policy import choose_inference, count_clusters
from evalkit.numerics.within import WithinTransform

__all__ = ["TripleDiff"]

_GROUP_CODE = "__evalkit_triple_diff_group__"


@register("did.TripleDiff")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TripleDiff(Estimator):
    """Triple differences: a difference in differences between groups within units.

    The data are outcomes by unit (e.g. city), time and group (e.g. household type
    within the city): cells, or individuals within cells. Treatment reaches the
    targeted groups of treated units in treated periods. The regression

    ``y_ugt = a_ug + b_tg + c_ut + tau * D_ut * 1{g in target} (+ x'gamma) + e``

    absorbs every two-way interaction: unit x group effects (levels differ by group
    within a unit), time x group effects (each group has its own time path, common
    across units) and unit x time effects (every shock that hits a unit in a period,
    whatever the group, e.g. a city's COVID-19 wave or local labour market). ``tau``
    is then identified only from how the targeted groups' outcomes change relative to
    the other groups in the same unit and period, compared with the same contrast in
    untreated units and periods. With a single treated city this differences out the
    city-level shocks that make the city-level DiD imprecise.

    Parameters
    ----------
    outcome, unit, time
        Column names. ``unit`` is the level treatment is assigned at (e.g. city).
    group
        Column with the group of each row (e.g. household type).
    target
        The group value, or a list of values, that the treatment targets.
    treatment
        0/1 column: 1 in treated units and periods (all groups, or only the targeted
        ones: the regressor is ``treatment * 1{group in target}`` either way).
    cohort
        Alternatively, the unit's first treated period (0 or missing: never); the
        treatment is then ``time >= cohort``.
    covariates
        Covariates varying within unit x time (time-varying group composition, ...).
    weights
        Observation weights, e.g. cell counts when the data are collapsed cells.
    cluster
        Column to cluster standard errors by; defaults to ``unit``.
    separate
        With several target values: estimate one effect per target group (each compared
        with the non-targeted groups) instead of one pooled effect.
    drop_singletons
        Drop levels of any of the three fixed effects observed once (repeatedly).

    Notes
    -----
    Inference: ``"iid"``, ``"hetero"`` (HC1), ``"cluster"`` (CR1), ``"cr2"`` and
    ``"none"``. Automatic choice (:func:`evalkit.inference.choose_inference`): HC1 with
    fewer than 5 clusters carrying treated or control variation (see below), CR1 with at
    least 30 clusters, CR2 otherwise; the reason is recorded. Clusters are counted by
    whether their units are treated, so a region holding a treated and a control city
    carries both kinds of variation. The residual degrees of freedom count the
    exact rank of the three sets of fixed effects (``UG + TG + UT - U - G - T + 1`` on
    a complete grid), as a dummy-variable regression would; pyfixest subtracts only
    one redundancy per extra fixed effect (``UG + TG + UT - 2``), so its ``iid`` and
    ``hetero`` standard errors are slightly larger. CR1 follows the fixest/pyfixest
    convention: effects nested in the clusters (unit x group, unit x time) are not
    counted, the time x group levels are. CR2 is exact for the full dummy-variable
    regression (Bell & McCaffrey 2002, Satterthwaite df of Pustejovsky & Tipton 2018)
    and needs units nested within clusters.

    With one treated unit (Bergen among ten cities) cluster-robust standard errors rest
    on a single treated cluster and are far too small, CR2 included: in a simulated
    one-treated-city design their 95% intervals covered about half the time (CR2 removes
    the treated cluster's high-leverage direction, and with it nearly all of its
    information). The unit x time effects already absorb everything the groups of a
    unit share in a period, so with fewer than 5 treated clusters the automatic choice
    is HC1, valid when the remaining errors are independent across unit x group x time
    cells (it covered 95% in the same simulation); persistent group-specific shocks
    within a unit would make it too small. Asking for ``"cluster"`` or ``"cr2"`` there
    warns.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from evalkit.did.triple_diff import TripleDiff
    >>> u, t, g = np.meshgrid(np.arange(6), np.arange(8), np.arange(2), indexing="ij")
    >>> u, t, g = u.ravel(), t.ravel(), g.ravel()
    >>> rng = np.random.default_rng(3)
    >>> post = (u < 2) & (t >= 4)
    >>> y = 0.3 * u + 0.1 * t * g + np.sin(u + t) + 2.0 * (post & (g == 1))
    >>> df = pd.DataFrame({"city": u, "month": t, "hh": np.where(g == 1, "kids", "other"),
    ...                    "post": post.astype(int), "y": y + rng.normal(0, 0.01, u.size)})
    >>> est = TripleDiff(outcome="y", unit="city", time="month", group="hh",
    ...                  target="kids", treatment="post")
    >>> round(est.fit(df).estimate("DDD"), 1)
    2.0
    """

    outcome: str
    unit: str
    time: str
    group: str
    target: Any
    treatment: str | None = None
    cohort: str | None = None
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    separate: bool = False
    drop_singletons: bool = True

    supported_inference: ClassVar[tuple[str, ...]] = (*REGRESSION_METHODS, "wild")
    within_unit: ClassVar[bool] = True
    effect_term: ClassVar[str] = "DDD"
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({"DDD": "treated_cells"})

    def __post_init__(self) -> None:
        check_role_names(
            self,
            ("outcome", "unit", "time", "group"),
            ("treatment", "cohort", "weights", "cluster"),
        )
        if (self.treatment is None) == (self.cohort is None):
            raise DesignError(
                "TripleDiff needs exactly one of treatment= (0/1 in treated units and "
                "periods) or cohort= (the unit's first treated period)",
                hint="e.g. treatment='post_bergen'",
                column="treatment",
            )
        target = self.target
        values = (
            tuple(target)
            if isinstance(target, (list, tuple, set, frozenset, np.ndarray))
            else (target,)
        )
        if not values or any(v is None for v in values):
            raise DesignError(
                f"target must be a group value or a list of them, got {target!r}",
                hint="e.g. target='families with children'",
                column="target",
            )
        object.__setattr__(self, "target", values[0] if len(values) == 1 else values)
        for option in ("separate", "drop_singletons"):
            if not isinstance(getattr(self, option), bool):
                raise DesignError(
                    f"{option} must be True or False, got {getattr(self, option)!r}",
                    column=option,
                )

    @property
    def targets(self) -> tuple[Any, ...]:
        """The targeted group values as a tuple."""
        return self.target if isinstance(self.target, tuple) else (self.target,)

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        if not isinstance(data, pd.DataFrame):  # pragma: no cover - fit() checks
            raise DataError("data must be a pandas DataFrame")
        if self.group not in data.columns:
            raise DataError(
                f"group column {self.group!r} is not in the data",
                hint=f"columns are: {', '.join(map(str, data.columns[:20]))}",
                column=self.group,
            )
        missing = data[self.group].isna().to_numpy()
        n_missing = int(missing.sum())
        if n_missing:
            warnings.warn(
                f"dropped {n_missing} of {len(data)} rows with missing group ({self.group})",
                RowsDroppedWarning,
                stacklevel=3,
            )
            data = data.loc[~missing]
        codes, levels = pd.factorize(data[self.group], sort=True)
        absent = [v for v in self.targets if v not in set(levels)]
        if absent:
            raise DesignError(
                f"target value(s) {absent!r} do not occur in group column {self.group!r}",
                hint=f"its values are: {list(levels)[:20]}",
                column="target",
            )
        if len(levels) < 2 or set(levels) <= set(self.targets):
            raise DesignError(
                f"group column {self.group!r} needs at least one non-targeted group",
                hint="the targeted groups are compared with the others in the same unit",
                column="group",
            )
        frame = data.assign(**{_GROUP_CODE: codes})
        spec = ctx.inference
        cluster_col = (spec.cluster if spec is not None else None) or self.cluster or self.unit
        panel = Panel(
            frame,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            treatment=self.treatment,
            cohort=self.cohort,
            covariates=[*self.covariates, _GROUP_CODE],
            cluster=None if cluster_col == self.unit else cluster_col,
            weights=self.weights,
            panel=False,
            require_variation=self.treatment is not None,
            stacklevel=3,
        )
        group = panel.values(_GROUP_CODE).astype(np.int64)
        if self.treatment is not None:
            d_unit = panel.values(self.treatment)
        else:
            t = panel.column(self.time)  # numbers, or period codes of dates and periods
            g = panel.values(self.cohort)
            d_unit = ((g > 0) & (t.to_numpy(dtype=float) >= g)).astype(float)
        target_codes = [int(np.flatnonzero(levels == v)[0]) for v in self.targets]
        label = ", ".join(map(str, self.targets))
        if self.separate:
            terms_groups = [(str(v), [c]) for v, c in zip(self.targets, target_codes, strict=True)]
        else:
            terms_groups = [(label, target_codes)]
        regs = [d_unit * np.isin(group, codes_k) for _, codes_k in terms_groups]
        result = self._estimate(panel, ctx, group, len(levels), regs, terms_groups, cluster_col)
        if n_missing:
            dropped = {f"missing group ({self.group})": n_missing, **result.info["dropped"]}
            result = dataclasses.replace(result, info={**result.info, "dropped": dropped})
        return result

    def _estimate(
        self,
        panel: Panel,
        ctx: FitContext,
        group: np.ndarray,
        n_groups: int,
        regs: list[np.ndarray],
        terms_groups: list[tuple[str, list[int]]],
        cluster_col: str,
    ) -> Result:
        unit, time = panel.unit_codes, panel.time_codes
        y = panel.values(self.outcome)
        w = panel.values(self.weights).astype(float) if self.weights else None
        covs = panel.matrix(list(self.covariates))
        clusters = unit if cluster_col == self.unit else panel.cluster_codes
        cluster_labels = (
            np.asarray(panel.units)
            if cluster_col == self.unit
            else np.asarray(pd.factorize(panel.column(cluster_col), sort=True)[1])
        )
        ug = _factor(unit * n_groups + group)
        tg = _factor(time * n_groups + group)
        ut = _factor(unit * np.int64(panel.n_periods) + time)
        keep, reasons = prune(
            [ug, tg, ut],
            w,
            self.drop_singletons,
            label="singleton unit x group, time x group or unit x time cells",
        )
        dropped = dict(panel.dropped)
        if reasons:
            warn_dropped(reasons, len(keep), stacklevel=5)
            if not keep.any():
                raise NotEstimableError(
                    "no rows remain after dropping singleton unit x group, time x group and "
                    "unit x time cells: each unit x time needs several groups, each unit x "
                    "group and time x group several rows",
                    hint="give cells (or individuals within cells) of every group in each unit "
                    "and period",
                    column=self.group,
                )
            dropped.update(reasons)
            unit, time, group, y, covs = unit[keep], time[keep], group[keep], y[keep], covs[keep]
            clusters = clusters[keep]
            regs = [r[keep] for r in regs]
            w = None if w is None else w[keep]
            ug, tg, ut = (_factor(f[0][keep]) for f in (ug, tg, ut))
        cluster_labels = cluster_labels[np.unique(clusters)]
        clusters = _factor(clusters)[0]
        n_clusters = int(clusters.max()) + 1
        units_codes, n_units = _factor(unit)
        names = [self.effect_term] * len(regs) + list(self.covariates)
        x = np.column_stack([*regs, covs]) if covs.size else np.column_stack(regs)
        factors = (ug[0], tg[0], ut[0])
        within = WithinTransform(factors, weights=w)
        labels = [f"DDD[{g}]" for g, _ in terms_groups] + list(self.covariates)
        fit = absorbed_ols(
            y,
            x,
            labels,
            within,
            w,
            f"{self.unit} x {self.group}, {self.time} x {self.group} and {self.unit} x {self.time}",
            hint="the targeted groups need treated and untreated units and periods, and "
            "covariates must vary within unit x time",
        )
        k_fe, exact = absorbed_rank(factors, within)
        k_total = fit.k + k_fe
        treated = np.any(np.column_stack(regs) > 0, axis=1)
        # the unit x time effects absorb a unit's within-unit contrasts: count clusters
        # by whether their *units* are treated (a region holding a treated and a control
        # city carries both; a treated city alone is one treated cluster)
        choice = choose_inference(
            ctx.inference,
            supported=self.supported_inference,
            counts=count_clusters(
                clusters, _factor(time)[0], treated, name=cluster_col, unit=units_codes
            ),
            design="within_unit",
        )
        method, reason = choice.method, choice.reason
        assert choice.counts is not None
        n_treated = choice.counts.treated_side
        n_periods = int(np.unique(time).size)
        if ctx.inference is None and method == "hetero" and n_periods > 2:
            warnings.warn(
                f"HC1 standard errors with {n_treated} treated cluster(s) of {cluster_col!r} "
                f"and {n_periods} periods assume the cells' errors are independent over time; "
                "when the same persons stay in a cell from period to period they are not, and "
                "HC1 over-rejects (about 41% of true nulls at 5% on monthly cells in the "
                "Bergen simulator). Collapse to one before and one after period per cell "
                "(then inference='iid' held its level there) or use inference over units",
                FewClustersWarning,
                stacklevel=4,
            )
        choice.warn(stacklevel=4)
        nested = cluster_col == self.unit or bool(
            nested_within(units_codes, clusters, n_units).all()
        )
        # CR1 small-sample K as fixest/pyfixest: the unit x group and unit x time effects
        # nested in the clusters are not counted; every time x group level is.
        k_small = fit.k + tg[1] if nested else k_total
        design = NestedProjectedDesign(x, tg[0], tg[1], (ug[0], ut[0]), w).rows if nested else None
        wild = None
        if method == "wild":
            wild = wild_from_fit(
                choice.spec,
                xt=fit.xt,
                yt=fit.yt,
                within=within,
                w=w,
                cluster=clusters,
                rng=ctx.rng,
                level=ctx.level,
                coefs=range(len(names)),
            )
        cov = covariance(
            "none" if wild is not None else method,
            fit,
            clusters=clusters,
            n_clusters=n_clusters,
            k_total=k_total,
            k_small=k_small,
            design_rows=design,
            cluster_name=cluster_col,
        )
        se = standard_errors(cov.vcov, method)
        groups = [g for g, _ in terms_groups] + [None] * len(self.covariates)
        table = make_table(names, fit.beta, se, df=cov.df, group=groups)
        info = {
            "n_obs": fit.n,
            "n_units": n_units,
            "n_periods": int(np.unique(time).size),
            "n_groups": int(np.unique(group).size),
            "n_clusters": n_clusters,
            "n_treated_clusters": n_treated,
            "clusters": choice.counts.to_dict(),
            "target": [str(v) for v in self.targets],
            "separate": self.separate,
            "fixed_effects": [
                f"{self.unit} x {self.group}",
                f"{self.time} x {self.group}",
                f"{self.unit} x {self.time}",
            ],
            "n_fixed_effect_parameters": k_fe,
            "fixed_effect_rank_exact": exact,
            "df_resid": fit.n - k_total,
            "r2_within": fit.r2_within(),
            "solver": "alternating projections",
            "roles": {
                k: v
                for k, v in {
                    "outcome": self.outcome,
                    "unit": self.unit,
                    "time": self.time,
                    "group": self.group,
                    "treatment": self.treatment,
                    "cohort": self.cohort,
                    "covariates": list(self.covariates),
                    "cluster": self.cluster,
                    "weights": self.weights,
                }.items()
                if v not in (None, [])
            },
            "dropped": dropped,
            "seed": ctx.seed,
        }
        if wild is not None:
            unc, text, reps = wild
            return Result(
                estimator=self.registry_name,
                _table=table,
                inference=inversion_info("wild", text, cluster_col, n_clusters, reason, reps),
                info=info,
                level=ctx.level,
                uncertainty=unc,
            )
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=inference_info(method, cluster_col, n_clusters, reason, cov.df),
            info=info,
            level=ctx.level,
            _vcov=None if method == "none" else cov.vcov,
            _scores=regression_scores(fit, method, clusters, n_clusters, cluster_labels),
        )


def _factor(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Return contiguous integer codes ``0..n-1`` of ``values`` and ``n``."""
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).ravel(), len(uniq)
