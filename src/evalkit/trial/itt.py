"""Intention-to-treat effect of a randomised offer, with covariates."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.uncertainty import Analytic, TestInversion
from evalkit.errors import DesignError, NotEstimableError
from evalkit.inference import vcov as sandwich
from evalkit.trial._data import TrialEstimator, spillover_note

__all__ = ["ITT"]


@register("trial.ITT")
@dataclasses.dataclass(frozen=True, kw_only=True)
class ITT(TrialEstimator):
    """Intention-to-treat effect: the outcome regressed on random assignment and covariates.

    The coefficient of ``treatment`` (the randomised offer, 0/1) in an OLS regression of
    ``outcome`` on it, an intercept and ``covariates`` (covariates measured before
    randomisation only: they sharpen the estimate, they must not change what it means).
    Contamination (controls who get similar help) does not bias the ITT, it dilutes
    it: the ITT is the effect of the offer, not of the help; see
    :class:`~evalkit.trial.IV2SLS` for the effect of receipt on compliers. Spillover to
    the controls does bias it towards zero; ``spillover_share`` adds a bound.

    Parameters
    ----------
    outcome, treatment
        Column names; ``treatment`` is the random assignment (0/1).
    covariates
        Baseline covariates.
    cluster
        The unit of randomisation in a cluster-randomised trial (e.g. the office);
        None when persons were randomised.
    spillover_share
        If given, a largest share ``s_max`` in [0, 1) of the spillover-free ITT that
        spills over to the controls, assuming spillover in the same direction as the
        effect (caseworkers pick up what helps). The observed ITT is then
        ``(1 - s) ITT*`` for some ``s`` in ``[0, s_max]``, so the spillover-free ITT*
        lies between the ITT and the extra row ``<treatment>:no_spillover_bound``
        (``ITT / (1 - s_max)``); the union of the two rows' intervals covers it.

    Notes
    -----
    Inference: ``"cluster"`` (CR1 by ``cluster``, t with G-1 df; the default when
    ``cluster`` is given), ``"hetero"`` (HC1; the default otherwise), ``"permutation"``
    (randomization inference: the assignment is redrawn over the units of
    randomisation, all of them or ``reps`` random draws, and the covariate-adjusted
    coefficient recomputed; the p-value tests the sharp null of no effect for anyone and
    the interval inverts the test of a constant effect, see
    :mod:`evalkit.inference.randomization`) and ``"none"``. Randomization inference
    assumes complete randomisation of the units (not stratified).

    Examples
    --------
    >>> from evalkit.simulate import get
    >>> from evalkit.trial import ITT
    >>> df = get("integration_trial")(seed=2).data
    >>> res = ITT(outcome="work_12m", treatment="assigned", covariates=["age", "female"],
    ...           cluster="office").fit(df)
    >>> res.terms, res.inference.method
    (['assigned'], 'cluster')
    """

    supported_inference: ClassVar[tuple[str, ...]] = ("hetero", "cluster", "permutation", "none")
    supports_by: ClassVar[bool] = False

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        spec = ctx.inference
        cluster = (spec.cluster if spec is not None else None) or self.cluster
        method, reason = self._method(spec, cluster)
        rows = self._rows(
            data, cluster, [self.outcome, *self.covariates], [(self.treatment, "treatment")]
        )
        y = rows[self.outcome]
        d = rows[self.treatment]
        n = rows.n
        covs = np.column_stack([rows[c] for c in self.covariates]) if self.covariates else None
        base = np.ones((n, 1)) if covs is None else np.column_stack([np.ones(n), covs])
        x = np.column_stack([d, base])
        k = x.shape[1]
        if np.linalg.matrix_rank(x) < k:
            raise NotEstimableError(
                "the treatment and covariates are collinear",
                hint="drop covariates that are constant or copies of others",
                column="covariates",
            )
        bread = np.linalg.inv(x.T @ x)
        beta = bread @ (x.T @ y)
        resid = y - x @ beta

        codes = rows.cluster
        n_clusters = int(codes.max()) + 1 if codes is not None else None
        if method == "permutation" and codes is not None and n_clusters is not None:
            _check_cluster_assignment(d, codes, n_clusters, cluster)

        share = self.spillover_share
        terms = [self.treatment]
        scale = np.array([1.0])
        if share is not None:
            terms.append(f"{self.treatment}:no_spillover_bound")
            scale = np.array([1.0, 1.0 / (1.0 - share)])
        estimates = beta[0] * scale
        info = {
            "n_obs": n,
            "n_clusters": n_clusters,
            "share_assigned": float(d.mean()),
            "covariates": {c: float(b) for c, b in zip(self.covariates, beta[2:], strict=True)},
            "spillover_share": share,
            "bounds": None if share is None else spillover_note(self.treatment, share),
            "seed": ctx.seed,
        }
        table = make_table(terms, estimates, np.full(len(terms), np.nan))
        unit = cluster or "person"
        if method == "none":
            return self._point_only(table, info, ctx, reason)
        if method == "permutation":
            return self._permutation(y, d, base, codes, scale, table, info, ctx, unit, reason)
        if method == "cluster":
            assert codes is not None and n_clusters is not None
            if n_clusters < 2:
                raise NotEstimableError("one cluster: no cluster-robust variance", column=cluster)
            cov = sandwich.cr1(bread, x, resid, codes, n_clusters, n, k)
            text = f"CR1 cluster-robust by {cluster} ({n_clusters} clusters), t({n_clusters - 1})"
        else:
            cov = sandwich.hc1(bread, x, resid, n, k)
            text = f"heteroskedasticity-robust (HC1) standard errors, t({n - k})"
        se = float(np.sqrt(cov.vcov[0, 0])) * scale
        v = cov.vcov[0, 0] * np.outer(scale, scale)
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(
                method,
                text,
                distribution="t",
                cluster=cluster if method == "cluster" else None,
                n_clusters=n_clusters if method == "cluster" else None,
                reason=reason,
            ),
            info=info,
            level=ctx.level,
            uncertainty=Analytic(se, df=np.full(len(terms), cov.df[0]), vcov=v),
        )

    def _permutation(
        self,
        y: np.ndarray,
        d: np.ndarray,
        base: np.ndarray,
        codes: np.ndarray | None,
        scale: np.ndarray,
        table: pd.DataFrame,
        info: dict,
        ctx: FitContext,
        unit: str,
        reason: str,
    ) -> Result:
        from evalkit.inference.randomization import cluster_randomization

        spec = ctx.inference
        reps = (spec.reps if spec is not None else None) or ctx.reps or 1999
        q, _ = np.linalg.qr(base)

        def partial(v: np.ndarray) -> np.ndarray:
            return v - q @ (q.T @ v)

        cl = codes if codes is not None else np.arange(len(y))
        res = cluster_randomization(
            y, d, cl, np.zeros(len(y), dtype=np.int64), partial=partial, reps=reps,
            rng=ctx.rng, level=ctx.level,
        )  # fmt: skip
        k = len(scale)

        def invert(level: float) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = res.interval(level)
            return _scaled(lo, hi, scale)

        lo, hi = _scaled(res.conf_low, res.conf_high, scale)
        text = res.describe().replace("treated clusters", f"units of randomisation ({unit})")
        unc = TestInversion(
            np.full(k, res.p_value),
            lo,
            hi,
            ctx.level,
            method="permutation",
            granularity=res.granularity,
            invert=invert,
            note=text,
        )
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(
                "permutation",
                text,
                distribution="randomization",
                cluster=None if codes is None else unit,
                reason=reason,
                reps=res.n_assignments,
            ),
            info=info,
            level=ctx.level,
            uncertainty=unc,
        )


def _scaled(lo: float, hi: float, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = lo * scale, hi * scale
    return np.minimum(a, b), np.maximum(a, b)


def _check_cluster_assignment(
    d: np.ndarray, codes: np.ndarray, n_clusters: int, cluster: str | None
) -> None:
    lo = np.full(n_clusters, np.inf)
    hi = np.full(n_clusters, -np.inf)
    np.minimum.at(lo, codes, d)
    np.maximum.at(hi, codes, d)
    mixed = int((lo != hi).sum())
    if mixed:
        raise DesignError(
            f"the assignment varies within {mixed} of {n_clusters} clusters of {cluster!r}: "
            "randomization inference redraws the assignment of whole clusters, so cluster= "
            "must name the unit of randomisation",
            hint="for a person-randomised trial leave cluster= out for inference='permutation'",
            column="cluster",
        )
