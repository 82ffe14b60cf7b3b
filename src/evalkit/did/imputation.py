"""Borusyak, Jaravel & Spiess (2024) imputation estimator for staggered adoption."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, Scores, make_table
from evalkit.did._absorbed import absorbed_ols
from evalkit.did._covariance import covariance, standard_errors, wald_test
from evalkit.did._event_time import EventTimeResult, event_term
from evalkit.did._staggered import (
    StaggeredSample,
    check_staggered_roles,
    cohort_sizes,
    staggered_roles,
    staggered_sample,
)
from evalkit.errors import (
    DesignError,
    InferenceUnavailableWarning,
    NotEstimableError,
    RowsDroppedWarning,
)
from evalkit.inference.policy import choose_inference, count_clusters
from evalkit.numerics.within import WithinTransform, group_sums

if TYPE_CHECKING:  # pragma: no cover
    from scipy import sparse

__all__ = ["ImputationDiD"]


@register("did.ImputationDiD")
@dataclasses.dataclass(frozen=True, kw_only=True)
class ImputationDiD(Estimator):
    """Borusyak, Jaravel & Spiess (2024) imputation difference-in-differences.

    1. Fit unit and period effects (and time-varying covariates) by least squares on
       the untreated observations only: never-treated units and eventually-treated units
       before their cohort (first treated period).
    2. Impute each treated observation's untreated outcome ``Y(0)`` from that model; its
       effect estimate is ``Y - Y(0)^``.
    3. Average the effects: by event time ``e = t - g`` (the table), over all treated
       observations (``aggregate("overall")``) and by cohort (``aggregate("cohort")``).

    Under parallel trends and no anticipation this is the efficient estimator with
    homoskedastic errors, and it stays valid when effects differ across cohorts and
    over time.

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
        Time-varying covariates of the untreated model.
    weights
        Observation weights: the untreated model is fitted by weighted least squares and
        every average weights the observations.
    cluster
        Column to cluster standard errors by; defaults to ``unit``.
    horizons
        ``(first, last)`` event times (``>= 0``) reported in the table; all by default.
        The overall and cohort averages always use every treated observation.
    pretrend_leads
        Number ``K`` of leads for the pre-trend test of Borusyak et al. (2024, Test 1):
        on the untreated observations, regress the outcome on the unit and period
        effects (and covariates) plus indicators of being ``1..K`` periods before
        treatment, and test the lead coefficients jointly with CR1 standard errors
        clustered as the estimates (``F(K, G - 1)``). Result in ``info["pretrend_test"]``,
        the coefficients in ``aggregate("pretrend")``. None (default) skips it.
    leave_out
        Use the leave-one-out refinement of the auxiliary residuals (Borusyak et al.
        2024, appendix A.9; Stata ``did_imputation, leaveout``), which removes their
        downward bias in small groups.

    Notes
    -----
    Standard errors are the conservative clustered ones of Borusyak et al. (2024,
    Theorem 3): an estimate is ``sum_it v_it Y_it`` with known weights ``v`` (the
    averaging weights on treated observations, minus the imputation weights
    ``-W A0 (A0'W A0)^+ A1' v1`` on untreated ones); its variance is estimated by
    ``sum_c (sum_{it in c} v_it e_it)^2`` over clusters ``c``. Untreated residuals
    ``e`` are those of the untreated model. Treated ones are ``tau_it - tau~_g``, the
    effect estimate minus the auxiliary-model average of its cohort x event-time group
    ``g``, ``tau~_g = sum_i a_ig b_ig / sum_i a_ig^2`` with ``a_ig``, ``b_ig`` unit
    ``i``'s sums of ``v`` and ``v tau`` in ``g`` (their equation 8; with
    ``leave_out=True`` each residual is divided by ``1 - a_ig^2 / sum_j a_jg^2``).
    The reference distribution is the normal, as in ``did_imputation`` (Stata) and
    ``didimputation`` (R), whose non-leave-out numbers this reproduces (checked against
    diff-diff 3.13, which matches R ``didimputation``). Inference methods:
    ``"cluster"`` (the default) and ``"none"``.

    Treated observations whose unit or period has no untreated observation (or whose
    unit and period are in disconnected parts of the untreated data) cannot be imputed
    and are dropped, counted in a warning; so are units treated from the first period.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did.imputation import ImputationDiD
    >>> df = evalkit.datasets.load("mpdta")
    >>> res = ImputationDiD(outcome="lemp", unit="countyreal", time="year",
    ...                     cohort="first.treat").fit(df)
    >>> [round(v, 4) for v in res.tidy()["estimate"]]
    [-0.0311, -0.0522, -0.1361, -0.1047]
    >>> overall = res.aggregate("overall")
    >>> round(overall.estimate(), 4), round(overall.std_error(), 4)
    (-0.0477, 0.0132)
    """

    outcome: str
    unit: str
    time: str
    cohort: str | None = None
    treatment: str | None = None
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    horizons: tuple[int, int] | None = None
    pretrend_leads: int | None = None
    leave_out: bool = False

    supported_inference: ClassVar[tuple[str, ...]] = ("cluster", "none")
    #: ATT(e): the mean effect over the treated observations at event time e, each
    #: observation weighted equally (truth on simulated data, see :mod:`evalkit.study.truth`).
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({"ATT(e)": "cohort_event_time"})

    #: No singleton dropping: every untreated observation informs the imputation.
    drop_singletons: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_staggered_roles(self)
        if self.horizons is not None:
            try:
                lo, hi = (float(v) for v in self.horizons)
            except (TypeError, ValueError):
                lo, hi = math.nan, math.nan
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
                raise DesignError(
                    f"horizons must be (first, last) event times with 0 <= first <= last, got "
                    f"{self.horizons!r}",
                    hint="e.g. horizons=(0, 5)",
                    column="horizons",
                )
            object.__setattr__(self, "horizons", (lo, hi))
        k = self.pretrend_leads
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise DesignError(
                f"pretrend_leads must be a positive whole number or None, got {k!r}",
                hint="e.g. pretrend_leads=3",
                column="pretrend_leads",
            )
        if not isinstance(self.leave_out, bool):
            raise DesignError(
                f"leave_out must be True or False, got {self.leave_out!r}", column="leave_out"
            )

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> EventTimeResult:
        sample = staggered_sample(self, data, ctx)
        sample = _drop_unimputable(sample)
        treated = (sample.cohort > 0) & (sample.t >= sample.cohort)
        w = np.ones(sample.n_obs) if sample.w is None else sample.w
        model = _UntreatedModel.fit(sample, ~treated, w, self.covariates)
        tau = sample.y - model.predict(sample)
        ev = sample.event

        choice = choose_inference(
            ctx.inference,
            supported=self.supported_inference,
            counts=count_clusters(sample.cluster, sample.time, treated, name=sample.cluster_name),
            design="imputation",
            own=(
                "cluster",
                "the conservative clustered variance of Borusyak, Jaravel & Spiess (2024, "
                "Theorem 3) is the estimator's own",
            ),
        )
        choice.warn(stacklevel=3)
        method, reason = choice.method, choice.reason
        assert choice.counts is not None
        n_treated_clusters = choice.counts.treated_side

        events = np.unique(ev[treated])
        if self.horizons is not None:
            lo, hi = self.horizons
            events = events[(events >= lo) & (events <= hi)]
            if events.size == 0:
                raise NotEstimableError(
                    f"no treated observations at event times {self.horizons}",
                    column="horizons",
                )
        cohorts = np.unique(sample.cohort[treated])
        targets = [treated & (ev == e) for e in events]
        targets += [treated, *[treated & (sample.cohort == g) for g in cohorts]]
        variance = _Variance(sample, model, treated, tau, w, self.leave_out)
        estimates = np.empty(len(targets))
        psi = np.zeros((sample.n_clusters, len(targets)))
        for j, mask in enumerate(targets):
            v1 = np.where(mask, w, 0.0)
            v1 /= v1.sum()
            estimates[j] = float(v1 @ np.where(treated, tau, 0.0))
            if method != "none":
                psi[:, j] = variance.cluster_scores(v1)
        variance.warn_singletons()
        vcov = psi.T @ psi
        se = standard_errors(vcov, method)
        n_e = len(events)
        inf = _inference_info(method, sample, reason)

        def view(rows: slice, term: str, **keys: Any) -> tuple[pd.DataFrame, np.ndarray]:
            table = make_table([term] * len(estimates[rows]), estimates[rows], se[rows], **keys)
            return table, vcov[rows, rows]

        def scores(rows: slice) -> Scores | None:
            if method == "none":
                return None
            return Scores(np.asarray(sample.cluster_labels, dtype=object), psi[:, rows])

        table, event_vcov = view(
            slice(0, n_e), event_term(), event_time=[sample.key(e) for e in events]
        )
        views: dict[str, Result] = {}
        for kind, rows, keys in (
            ("overall", slice(n_e, n_e + 1), {}),
            ("cohort", slice(n_e + 1, None), {"cohort": [sample.label(g) for g in cohorts]}),
        ):
            t, v = view(rows, event_term(kind), **keys)
            views[kind] = Result(
                estimator=self.registry_name,
                _table=t,
                inference=inf,
                info={"aggregation": kind, "seed": ctx.seed},
                level=ctx.level,
                _vcov=None if method == "none" else v,
                _scores=scores(rows),
            )
        pretrend = None
        if self.pretrend_leads is not None:
            pretrend, pre_view = self._pretrend(sample, treated, w, method, ctx, inf)
            if pre_view is not None:
                views["pretrend"] = pre_view
        info = {
            "n_obs": sample.n_obs,
            "n_treated_obs": int(treated.sum()),
            "n_untreated_obs": int((~treated).sum()),
            "n_units": sample.n_units,
            "n_periods": sample.n_periods,
            "n_clusters": sample.n_clusters,
            "n_treated_clusters": n_treated_clusters,
            "clusters": choice.counts.to_dict(),
            "cohorts": cohort_sizes(sample),
            "event_times": [sample.key(e) for e in events],
            "n_treated_by_event_time": {
                str(sample.key(e)): int((treated & (ev == e)).sum()) for e in events
            },
            "covariates": {name: float(model.delta[j]) for j, name in enumerate(self.covariates)},
            "untreated_model": "unit + period effects"
            + (" + covariates" if self.covariates else "")
            + ", least squares on untreated observations",
            "variance": "Borusyak-Jaravel-Spiess (2024) Theorem 3, conservative; auxiliary "
            "model: cohort x event-time averages (eq. 8)"
            + ("; leave-one-out residuals (app. A.9)" if self.leave_out else ""),
            "pretrend_test": pretrend,
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
            _vcov=None if method == "none" else event_vcov,
            _scores=scores(slice(0, n_e)),
            views=views,
        )

    def _pretrend(
        self,
        sample: StaggeredSample,
        treated: np.ndarray,
        w: np.ndarray,
        method: str,
        ctx: FitContext,
        inf: InferenceInfo,
    ) -> tuple[dict[str, Any] | None, Result | None]:
        """Test 1 of Borusyak et al. (2024): leads on the untreated observations."""
        if method == "none":
            return {"skipped": "inference='none'"}, None
        sub = sample.subset(~treated)
        ev = sub.event
        leads = [-k for k in range(self.pretrend_leads or 0, 0, -1) if (ev == -k).any()]
        if not leads:
            return {"skipped": "no untreated observation at the requested leads"}, None
        x = np.column_stack([*[(ev == e).astype(float) for e in leads], sub.x])
        names = [f"event_time={sub.key(e)}" for e in leads] + list(self.covariates)
        wt = None if sub.w is None else sub.w
        within = WithinTransform((sub.unit, sub.time), weights=wt)
        fit = absorbed_ols(
            sub.y,
            x,
            names,
            within,
            wt,
            "unit and period",
            hint="with this many leads no untreated observation of a treated unit is left "
            "without a lead indicator; use fewer pretrend_leads",
        )
        k_total = fit.k + within.n_absorbed()
        cov = covariance(
            "cluster",
            fit,
            clusters=sub.cluster,
            n_clusters=sub.n_clusters,
            k_total=k_total,
            k_small=fit.k + sub.n_periods if sub.nested else k_total,
            design_rows=None,
            cluster_name=sub.cluster_name,
        )
        q = len(leads)
        test = wald_test(
            fit.beta[:q], cov.vcov[:q, :q], float(sub.n_clusters - 1), "leads", "cluster"
        )
        test["event_times"] = [sub.key(e) for e in leads]
        test["n_obs"] = sub.n_obs
        se = standard_errors(cov.vcov, "cluster")
        table = make_table(
            ["pre-trend(e)"] * q,
            fit.beta[:q],
            se[:q],
            df=cov.df[:q],
            event_time=[sub.key(e) for e in leads],
        )
        view = Result(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(
                "cluster",
                f"CR1 cluster-robust by {sub.cluster_name} ({sub.n_clusters} clusters), "
                f"t({sub.n_clusters - 1}); lead coefficients of the untreated model",
                distribution="t",
                cluster=sub.cluster_name,
                n_clusters=sub.n_clusters,
            ),
            info={"aggregation": "pretrend", "test": test, "seed": ctx.seed},
            level=ctx.level,
            _vcov=cov.vcov[:q, :q],
        )
        return test, view


def _inference_info(method: str, sample: StaggeredSample, reason: str | None) -> InferenceInfo:
    if method == "none":
        return InferenceInfo("none", "point estimates only", reason=reason)
    return InferenceInfo(
        "cluster",
        f"conservative clustered variance (Borusyak, Jaravel & Spiess 2024, Theorem 3) by "
        f"{sample.cluster_name} ({sample.n_clusters} clusters), normal reference",
        distribution="normal",
        cluster=sample.cluster_name,
        n_clusters=sample.n_clusters,
        reason=reason,
    )


def _components(
    unit: np.ndarray, time: np.ndarray, n_units: int, n_periods: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return the connected components of the bipartite unit-period graph of some rows."""
    from scipy import sparse  # imported on first use: SciPy is slow to import
    from scipy.sparse import csgraph

    graph = sparse.coo_matrix(
        (np.ones(len(unit)), (unit, time + n_units)),
        shape=(n_units + n_periods, n_units + n_periods),
    ).tocsr()
    n_comp, labels = csgraph.connected_components(graph, directed=False)
    return labels[:n_units], labels[n_units:], int(n_comp)


def _drop_unimputable(sample: StaggeredSample) -> StaggeredSample:
    """Drop treated rows whose untreated outcome the untreated data cannot impute."""
    treated = (sample.cohort > 0) & (sample.t >= sample.cohort)
    untreated = ~treated
    if not untreated.any():
        raise NotEstimableError("there are no untreated observations to fit the model on")
    u_has = np.bincount(sample.unit[untreated], minlength=sample.n_units) > 0
    t_has = np.bincount(sample.time[untreated], minlength=sample.n_periods) > 0
    u_lab, t_lab, _ = _components(
        sample.unit[untreated], sample.time[untreated], sample.n_units, sample.n_periods
    )
    ok = u_has[sample.unit] & t_has[sample.time] & (u_lab[sample.unit] == t_lab[sample.time])
    bad = treated & ~ok
    if not bad.any():
        return sample
    n = int(bad.sum())
    warnings.warn(
        f"dropped {n} treated rows whose untreated outcome cannot be imputed: their unit or "
        "period has no untreated observation (e.g. periods after every unit is treated, "
        "with no never-treated units)",
        RowsDroppedWarning,
        stacklevel=4,
    )
    out = sample.subset(~bad, {"treated rows that cannot be imputed": n})
    if not ((out.cohort > 0) & (out.t >= out.cohort)).any():
        raise NotEstimableError("no treated observation can be imputed")
    return out


@dataclasses.dataclass(frozen=True)
class _UntreatedModel:
    """Unit + period effects (+ covariates) fitted by least squares on untreated rows.

    The normal equations ``A0'W A0 theta = r`` are solved by eliminating the unit
    effects (a diagonal block): the remaining ``(T + K)`` system is the Schur complement
    ``S``, inverted once (Moore-Penrose, its null space being the one constant per
    connected component that the unit and period effects share). Any right-hand side
    ``A1'v`` of an imputable target lies in the range, so ``A0 z`` is unique.
    """

    unit0: np.ndarray
    time0: np.ndarray
    x0: np.ndarray
    w0: np.ndarray
    du: np.ndarray
    b: sparse.csr_matrix
    cu: np.ndarray
    s_pinv: np.ndarray
    theta_u: np.ndarray
    theta_t: np.ndarray
    delta: np.ndarray
    mask0: np.ndarray

    @classmethod
    def fit(
        cls, sample: StaggeredSample, mask0: np.ndarray, w: np.ndarray, covariates: tuple
    ) -> _UntreatedModel:
        from scipy import sparse

        n_u, n_t = sample.n_units, sample.n_periods
        u0, t0 = sample.unit[mask0], sample.time[mask0]
        x0, w0 = sample.x[mask0], w[mask0]
        k = x0.shape[1]
        du = np.bincount(u0, weights=w0, minlength=n_u)
        dt = np.bincount(t0, weights=w0, minlength=n_t)
        b = sparse.coo_matrix((w0, (u0, t0)), shape=(n_u, n_t)).tocsr()
        xw = x0 * w0[:, None]
        cu = group_sums(u0, xw, n_u) if k else np.zeros((n_u, 0))
        ct = group_sums(t0, xw, n_t) if k else np.zeros((n_t, 0))
        b_scaled = sparse.diags(1.0 / du) @ b
        s_tt = np.diag(dt) - (b.T @ b_scaled).toarray()
        s_tx = ct - b_scaled.T @ cu
        s_xx = x0.T @ xw - cu.T @ (cu / du[:, None])
        s = np.block([[s_tt, s_tx], [s_tx.T, s_xx]])
        vals, vecs = np.linalg.eigh((s + s.T) / 2.0)
        _, _, n_comp = _components(u0, t0, n_u, n_t)
        scale = max(float(vals[-1]), 1.0)
        if vals.size > n_comp and vals[n_comp] <= 1e-10 * scale:
            raise NotEstimableError(
                "the covariates are collinear with the unit and period effects on the "
                "untreated observations",
                hint="drop time-invariant covariates (the unit effects absorb them)",
                column=covariates[0] if covariates else None,
            )
        inv = np.zeros_like(vals)
        inv[n_comp:] = 1.0 / vals[n_comp:]
        s_pinv = (vecs * inv) @ vecs.T
        model = cls(
            unit0=u0,
            time0=t0,
            x0=x0,
            w0=w0,
            du=du,
            b=b,
            cu=cu,
            s_pinv=s_pinv,
            theta_u=np.zeros(n_u),
            theta_t=np.zeros(n_t),
            delta=np.zeros(k),
            mask0=mask0,
        )
        y0w = sample.y[mask0] * w0
        r_u = np.bincount(u0, weights=y0w, minlength=n_u)
        r_t = np.bincount(t0, weights=y0w, minlength=n_t)
        r_x = x0.T @ y0w
        z_u, z_t, z_x = model.solve(r_u, r_t, r_x)
        return dataclasses.replace(model, theta_u=z_u, theta_t=z_t, delta=z_x)

    def solve(
        self, r_u: np.ndarray, r_t: np.ndarray, r_x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Solve the normal equations for a right-hand side (unit, period, covariate parts)."""
        n_t = self.b.shape[1]
        ru_scaled = r_u / self.du
        rest = np.concatenate([r_t - self.b.T @ ru_scaled, r_x - self.cu.T @ ru_scaled])
        z = self.s_pinv @ rest
        z_t, z_x = z[:n_t], z[n_t:]
        z_u = (r_u - self.b @ z_t - self.cu @ z_x) / self.du
        return z_u, z_t, z_x

    def predict(self, sample: StaggeredSample) -> np.ndarray:
        """Return the fitted untreated outcome of every row."""
        return self.theta_u[sample.unit] + self.theta_t[sample.time] + sample.x @ self.delta

    def imputation_weights(self, sample: StaggeredSample, v1: np.ndarray) -> np.ndarray:
        """Weights on the untreated rows: ``-W A0 (A0'W A0)^+ A1' v1`` (BJS Theorem 3)."""
        r_u = np.bincount(sample.unit, weights=v1, minlength=sample.n_units)
        r_t = np.bincount(sample.time, weights=v1, minlength=sample.n_periods)
        r_x = sample.x.T @ v1
        z_u, z_t, z_x = self.solve(r_u, r_t, r_x)
        return -self.w0 * (z_u[self.unit0] + z_t[self.time0] + self.x0 @ z_x)


class _Variance:
    """Cluster scores ``sum_{it in c} v_it e_it`` of BJS (2024) Theorem 3."""

    def __init__(
        self,
        sample: StaggeredSample,
        model: _UntreatedModel,
        treated: np.ndarray,
        tau: np.ndarray,
        w: np.ndarray,
        leave_out: bool,
    ) -> None:
        self.sample = sample
        self.model = model
        self.treated = treated
        self.tau1 = tau[treated]
        self.resid0 = tau[~treated]  # y - fitted on untreated rows: the model residuals
        ev = sample.event[treated]
        _, group = np.unique(
            np.column_stack([sample.cohort[treated], ev]), axis=0, return_inverse=True
        )
        self.group = np.asarray(group, dtype=np.int64).ravel()
        self.n_groups = int(self.group.max()) + 1 if self.group.size else 0
        key = self.group * np.int64(sample.n_units) + sample.unit[treated]
        self.key, self.key_inverse = np.unique(key, return_inverse=True)
        self.key_group = self.key // np.int64(sample.n_units)
        self.leave_out = leave_out
        self.single_groups = 0

    def cluster_scores(self, v1_all: np.ndarray) -> np.ndarray:
        """Return the per-cluster sums of ``v e`` for the target weights ``v1_all``."""
        s, treated = self.sample, self.treated
        v1 = v1_all[treated]
        v0 = self.model.imputation_weights(s, v1_all)
        n_keys = len(self.key)
        a = np.bincount(self.key_inverse, weights=v1, minlength=n_keys)
        b = np.bincount(self.key_inverse, weights=v1 * self.tau1, minlength=n_keys)
        num = np.bincount(self.key_group, weights=a * b, minlength=self.n_groups)
        den = np.bincount(self.key_group, weights=a * a, minlength=self.n_groups)
        tau_tilde = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        e1 = self.tau1 - tau_tilde[self.group]
        if self.leave_out:
            share = np.divide(
                a * a, den[self.key_group], out=np.zeros(n_keys), where=den[self.key_group] > 0
            )
            live = a != 0
            single = live & (share >= 1.0 - 1e-12)
            self.single_groups = max(
                self.single_groups, int(np.unique(self.key_group[single]).size)
            )
            factor = np.where(live & ~single, 1.0 / np.where(single, 1.0, 1.0 - share), 1.0)
            e1 = e1 * factor[self.key_inverse]
        scores = np.zeros(s.n_obs)
        scores[treated] = v1 * e1
        scores[~treated] = v0 * self.resid0
        return np.bincount(s.cluster, weights=scores, minlength=s.n_clusters)

    def warn_singletons(self) -> None:
        """Warn when leave-one-out residuals were undefined for some groups."""
        if self.single_groups:
            warnings.warn(
                f"leave_out=True: {self.single_groups} cohort x event-time group(s) have a "
                "single unit, where the leave-one-out residual is undefined; their ordinary "
                "residuals were used",
                InferenceUnavailableWarning,
                stacklevel=4,
            )
