"""Two-way fixed-effects difference-in-differences (including the 2x2 design)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.within import WithinTransform
from evalkit.data.panel import Panel, nested_within
from evalkit.errors import (
    DesignError,
    FewClustersWarning,
    InferenceNotSupportedError,
    NotEstimableError,
    RowsDroppedWarning,
)
from evalkit.inference import vcov as sandwich

__all__ = ["TWFE"]

#: Below these numbers of clusters (all, treated, untreated), automatic inference uses
#: CR2 with Satterthwaite degrees of freedom instead of CR1.
FEW_CLUSTERS = 30
FEW_TREATED_CLUSTERS = 5


def _check_name(value: Any, option: str, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value:
        raise DesignError(
            f"{option} must be a column name (a non-empty string), got {value!r}",
            hint=f"e.g. TWFE(..., {option}='my_column', ...)",
            column=option,
        )


@register("did.TWFE")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TWFE(Estimator):
    """Two-way fixed-effects difference-in-differences.

    Regresses the outcome on the treatment indicator (and optional time-varying
    covariates) with unit and period fixed effects, which are absorbed rather than
    estimated. With two periods and two groups this is the classic 2x2 DiD. With
    staggered adoption and heterogeneous effects the TWFE coefficient is a weighted
    average that can be misleading; use :class:`~evalkit.did.CallawaySantAnna` there.

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
    With ``inference=None`` the estimator picks CR1, or CR2 when there are fewer than
    30 clusters or fewer than 5 treated or untreated clusters, and records the reason.
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

    supported_inference: ClassVar[tuple[str, ...]] = ("iid", "hetero", "cluster", "cr2", "none")

    def __post_init__(self) -> None:
        for option in ("outcome", "treatment", "unit", "time"):
            _check_name(getattr(self, option), option)
        _check_name(self.weights, "weights", required=False)
        _check_name(self.cluster, "cluster", required=False)
        covs = self.covariates
        if isinstance(covs, str):
            covs = (covs,)
        if covs is None:
            covs = ()
        covs = tuple(covs)
        for c in covs:
            _check_name(c, "covariates")
        object.__setattr__(self, "covariates", covs)
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
        keep, reasons = _prune(panel, w, self.drop_singletons)
        if reasons:
            total = int((~keep).sum())
            warnings.warn(
                f"dropped {total} of {len(keep)} rows that carry no information about the "
                f"coefficients ({'; '.join(f'{n} {r}' for r, n in reasons.items())})",
                RowsDroppedWarning,
                stacklevel=3,
            )
            result = self._fit(panel.to_frame().loc[keep], ctx)
            dropped = {**panel.dropped, **reasons}
            return dataclasses.replace(result, info={**result.info, "dropped": dropped})
        units = panel.unit_codes
        times = panel.time_codes
        if cluster_col == self.unit:
            clusters, n_clusters = units, panel.n_units
        else:
            clusters, n_clusters = panel.cluster_codes, panel.n_clusters

        within = WithinTransform((units, times), weights=w)
        yt = within.demean(y)
        xt = within.demean(x)
        sw = np.sqrt(w) if w is not None else None
        if sw is not None:
            yt = yt * sw
            xt = xt * sw[:, None]
        _check_rank(xt, x, names, self.unit, self.time, w)
        xtx = xt.T @ xt
        bread = np.linalg.inv(xtx)
        beta = bread @ (xt.T @ yt)
        resid = yt - xt @ beta

        n, k = x.shape
        k_fe = within.n_absorbed()
        k_total = k + k_fe
        if n - k_total <= 0:
            raise NotEstimableError(
                f"no residual degrees of freedom: {n} rows for {k_total} parameters",
                hint="more periods or units are needed than fixed effects",
                column=self.unit,
            )

        treated_clusters = int(np.unique(clusters[panel.values(self.treatment) > 0]).size)
        nested = cluster_col == self.unit or bool(
            nested_within(units, clusters, panel.n_units).all()
        )
        method, reason = _choose_method(spec, n_clusters, treated_clusters)
        cluster_name = cluster_col
        if method == "cluster" and spec is not None:
            untreated = n_clusters - treated_clusters
            if min(treated_clusters, untreated) < FEW_TREATED_CLUSTERS or n_clusters < 10:
                warnings.warn(
                    f"CR1 standard errors with {n_clusters} clusters of {cluster_col!r}, "
                    f"{treated_clusters} treated, over-reject badly; inference='cr2' (or "
                    "a few-treated-cluster method) is more reliable",
                    FewClustersWarning,
                    stacklevel=3,
                )

        if method == "none":
            cov = sandwich.Sandwich(np.full((k, k), np.nan), np.full(k, np.inf))
        elif method == "iid":
            cov = sandwich.iid(bread, resid, n, k_total)
        elif method == "hetero":
            cov = sandwich.hc1(bread, xt, resid, n, k_total)
        elif method == "cluster":
            if n_clusters < 2:
                raise NotEstimableError(
                    f"cluster-robust inference needs at least 2 clusters of {cluster_col!r}",
                    column=cluster_col,
                )
            # Parameters in (N-1)/(N-K): unit effects nested in the clusters are not
            # counted; the period effects then carry the constant, so all of their
            # levels count (pyfixest 0.60, ssc defaults).
            k_small = k + panel.n_periods if nested else k_total
            cov = sandwich.cr1(bread, xt, resid, clusters, n_clusters, n, k_small)
        else:  # cr2
            if not nested:
                raise InferenceNotSupportedError(
                    f"CR2 here requires each {self.unit!r} to lie within one {cluster_col!r} "
                    "cluster",
                    hint=f"cluster by {self.unit!r} or a coarser grouping of it, or use "
                    "inference='cluster'",
                    column=cluster_col,
                )
            design = _UnitDemeanedDesign(x, times, panel.n_periods, units, w)
            cov = sandwich.cr2_nested(bread, xt, resid, clusters, n_clusters, design.rows)

        se = np.sqrt(np.clip(np.diag(cov.vcov), 0.0, None))
        if method == "none":
            se = np.full(k, np.nan)
        table = make_table(names, beta, se, df=cov.df)
        info_inf = _inference_info(method, cluster_name, n_clusters, reason, cov.df)
        ss_res = float(resid @ resid)
        ss_tot = float(yt @ yt)
        info = {
            "n_obs": n,
            "n_units": panel.n_units,
            "n_periods": panel.n_periods,
            "n_clusters": n_clusters,
            "n_treated_clusters": treated_clusters,
            "fixed_effects": [self.unit, self.time],
            "n_fixed_effect_parameters": k_fe,
            "df_resid": n - k_total,
            "r2_within": 1.0 - ss_res / ss_tot if ss_tot > 0 else np.nan,
            "solver": "closed form (balanced)" if within.closed_form else "alternating projections",
            "roles": dict(panel.roles),
            "dropped": dict(panel.dropped),
            "seed": ctx.seed,
        }
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=info_inf,
            info=info,
            level=ctx.level,
            _vcov=None if method == "none" else cov.vcov,
        )


def _prune(
    panel: Panel, w: np.ndarray | None, singletons: bool
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows to keep: positive weight and (optionally) no singleton unit or period."""
    keep = np.ones(panel.n_obs, dtype=bool) if w is None else w > 0
    reasons: dict[str, int] = {}
    if w is None and panel.is_balanced and min(panel.n_units, panel.n_periods) >= 2:
        return keep, reasons  # a complete grid has no singletons
    if w is not None and not keep.all():
        reasons["with zero weight"] = int((~keep).sum())
    if singletons:
        before = int(keep.sum())
        while True:
            changed = False
            for codes, size in (
                (panel.unit_codes, panel.n_units),
                (panel.time_codes, panel.n_periods),
            ):
                counts = np.bincount(codes[keep], minlength=size)
                single = keep & (counts[codes] == 1)
                if single.any():
                    keep &= ~single
                    changed = True
            if not changed:
                break
        if int(keep.sum()) < before:
            reasons["singleton units or periods"] = before - int(keep.sum())
    return keep, reasons


def _choose_method(spec: Any, n_clusters: int, treated: int) -> tuple[str, str | None]:
    if spec is not None:
        return spec.method, None
    untreated = n_clusters - treated
    if n_clusters < FEW_CLUSTERS or min(treated, untreated) < FEW_TREATED_CLUSTERS:
        return "cr2", (
            f"{n_clusters} clusters ({treated} treated, {untreated} untreated): CR1 is "
            "unreliable with few (treated) clusters, so CR2 with Satterthwaite degrees of "
            "freedom was used"
        )
    return "cluster", f"{n_clusters} clusters ({treated} treated): CR1 is the convention"


def _inference_info(
    method: str, cluster: str, n_clusters: int, reason: str | None, df: np.ndarray
) -> InferenceInfo:
    if method == "none":
        return InferenceInfo("none", "point estimates only", reason=reason)
    if method in ("iid", "hetero"):
        label = "classical" if method == "iid" else "heteroskedasticity-robust (HC1)"
        return InferenceInfo(
            method, f"{label} standard errors, t({int(df[0])})", distribution="t", reason=reason
        )
    if method == "cluster":
        text = f"CR1 cluster-robust by {cluster} ({n_clusters} clusters), t({n_clusters - 1})"
    else:
        text = (
            f"CR2 (Bell-McCaffrey) cluster-robust by {cluster} ({n_clusters} clusters), "
            "Satterthwaite degrees of freedom"
        )
    return InferenceInfo(
        method, text, distribution="t", cluster=cluster, n_clusters=n_clusters, reason=reason
    )


def _check_rank(
    xt: np.ndarray,
    x: np.ndarray,
    names: list[str],
    unit: str,
    time: str,
    w: np.ndarray | None,
) -> None:
    """Raise NotEstimableError naming the first regressor absorbed by the fixed effects."""
    raw = x - np.average(x, axis=0, weights=w)
    if w is not None:
        raw = raw * np.sqrt(w)[:, None]
    raw_norm = np.sqrt((raw**2).sum(axis=0))
    try:
        # the diagonal of the Cholesky factor of X'X is that of R in X = QR
        diag = np.abs(np.diag(np.linalg.cholesky(xt.T @ xt)))
    except np.linalg.LinAlgError:
        diag = np.abs(np.diag(np.linalg.qr(xt, mode="r")))
    for j, name in enumerate(names):
        if raw_norm[j] == 0 or not diag[j] > 1e-9 * raw_norm[j]:
            raise NotEstimableError(
                f"{name!r} cannot be estimated: it is collinear with the {unit} and {time} "
                "fixed effects or with the other regressors",
                hint=f"drop {name!r}; time-invariant covariates are absorbed by the unit effects",
                column=name,
            )


@dataclasses.dataclass(frozen=True)
class _UnitDemeanedDesign:
    """Rows of ``[X, period dummies]`` with unit (weighted) means removed, for CR2."""

    x: np.ndarray
    times: np.ndarray
    n_periods: int
    units: np.ndarray
    weights: np.ndarray | None

    def rows(self, idx: np.ndarray) -> np.ndarray:
        t = self.times[idx]
        z = np.zeros((len(idx), self.x.shape[1] + self.n_periods - 1), order="F")
        z[:, : self.x.shape[1]] = self.x[idx]
        cols = self.x.shape[1] + t - 1
        has = t > 0
        z[np.flatnonzero(has), cols[has]] = 1.0
        local, codes = np.unique(self.units[idx], return_inverse=True)
        w = self.weights[idx] if self.weights is not None else np.ones(len(idx))
        totals = np.bincount(codes, weights=w, minlength=len(local))
        for j in range(z.shape[1]):
            means = np.bincount(codes, weights=z[:, j] * w, minlength=len(local)) / totals
            z[:, j] -= means[codes]
        return z * np.sqrt(w)[:, None]
