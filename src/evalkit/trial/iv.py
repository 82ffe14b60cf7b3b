"""The complier effect of receipt by two-stage least squares (linearmodels)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.uncertainty import Analytic
from evalkit.errors import DataError, EvalkitWarning, NotEstimableError
from evalkit.trial._data import TrialEstimator, spillover_note

__all__ = ["IV2SLS"]

_COV_TYPES = {"iid": "unadjusted", "hetero": "robust", "cluster": "clustered"}


@register("trial.IV2SLS")
@dataclasses.dataclass(frozen=True, kw_only=True)
class IV2SLS(TrialEstimator):
    """Complier effect (LATE) of receipt, instrumented by random assignment, by 2SLS.

    Fits ``outcome = b * treatment + covariates + e`` with ``treatment`` (receipt of the
    intervention, measured) instrumented by ``instrument`` (the random assignment) in
    :class:`linearmodels.iv.IV2SLS`. With contamination (controls who get similar help:
    always-takers) and never-takers, and under monotonicity (nobody refuses help
    *because* of the offer), ``b`` is the average effect of receipt on compliers. The
    first-stage F statistic (the squared t statistic of the instrument in the first stage,
    with the same covariance; linearmodels' ``first_stage.diagnostics`` F for one
    instrument) is reported in ``info``; a weak first stage (F < 10) warns.

    Parameters
    ----------
    outcome, treatment, instrument
        Column names: the outcome, receipt (0/1 or a dose) and the randomised offer
        (any numeric instrument works; with a 0/1 offer ``b`` is the complier effect).
    covariates
        Baseline covariates (exogenous regressors, also in the first stage).
    cluster
        The unit of randomisation (cluster-robust standard errors by it).
    spillover_share
        As in :class:`~evalkit.trial.ITT`: the controls gain at most that share of the
        spillover-free effect (and the first stage, receipt, is untouched by spillover),
        so the spillover-free complier effect lies between ``treatment`` and the row
        ``<treatment>:no_spillover_bound`` (``b / (1 - share)``).

    Notes
    -----
    Inference: ``"cluster"`` (linearmodels' clustered covariance with its small-sample
    correction, t with G-1 df; the default with ``cluster``), ``"hetero"`` (robust;
    the default otherwise), ``"iid"`` and ``"none"``. The rows are the treatment (and the
    bound), then the covariates and ``const``.

    Examples
    --------
    >>> from evalkit.simulate import get
    >>> from evalkit.trial import IV2SLS
    >>> df = get("integration_trial")(seed=2).data
    >>> res = IV2SLS(outcome="work_12m", treatment="received", instrument="assigned",
    ...              covariates=["age"], cluster="office").fit(df)
    >>> res.terms
    ['received', 'age', 'const']
    >>> res.info["first_stage_f"] > 10
    True
    """

    instrument: str

    supported_inference: ClassVar[tuple[str, ...]] = ("iid", "hetero", "cluster", "none")
    supports_by: ClassVar[bool] = False
    extra_roles: ClassVar[tuple[str, ...]] = ("instrument",)

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        from linearmodels.iv import IV2SLS as LMIV2SLS

        spec = ctx.inference
        cluster = (spec.cluster if spec is not None else None) or self.cluster
        method, reason = self._method(spec, cluster)
        rows = self._rows(
            data, cluster, [self.outcome, self.treatment, self.instrument, *self.covariates], []
        )
        n = rows.n
        for role in ("instrument", "treatment"):
            col = getattr(self, role)
            if np.ptp(rows[col]) == 0:
                raise DataError(
                    f"{role} column {col!r} is constant: there is no variation to use",
                    column=col,
                )
        exog = pd.DataFrame({c: rows[c] for c in self.covariates}, index=pd.RangeIndex(n))
        exog["const"] = 1.0
        if np.linalg.matrix_rank(exog.to_numpy()) < exog.shape[1]:
            raise NotEstimableError(
                "the covariates are collinear (or constant)",
                hint="drop covariates that are constant or copies of others",
                column="covariates",
            )
        model = LMIV2SLS(
            pd.Series(rows[self.outcome], name=self.outcome),
            exog,
            pd.Series(rows[self.treatment], name=self.treatment),
            pd.Series(rows[self.instrument], name=self.instrument),
        )
        fit_kw: dict = {"cov_type": _COV_TYPES.get(method, "unadjusted"), "debiased": True}
        if method == "cluster":
            assert rows.cluster is not None
            fit_kw["clusters"] = rows.cluster
        fitted = model.fit(**fit_kw)
        names = [self.treatment, *self.covariates, "const"]
        beta = fitted.params[names].to_numpy()
        vcov = fitted.cov.loc[names, names].to_numpy()
        first = LMIV2SLS(
            pd.Series(rows[self.treatment], name=self.treatment),
            exog.assign(**{self.instrument: rows[self.instrument]}),
            None,
            None,
        ).fit(**fit_kw)
        f_stat = float(first.tstats[self.instrument] ** 2)
        if f_stat < 10:
            warnings.warn(
                f"weak first stage: F = {f_stat:.1f} < 10 for {self.instrument!r} on "
                f"{self.treatment!r}; 2SLS is biased towards OLS and its intervals unreliable",
                EvalkitWarning,
                stacklevel=4,
            )
        share = self.spillover_share
        terms = list(names)
        load = np.eye(len(names))
        if share is not None:
            terms.insert(1, f"{self.treatment}:no_spillover_bound")
            row = np.zeros(len(names))
            row[0] = 1.0 / (1.0 - share)
            load = np.vstack([load[:1], row, load[1:]])
        est = load @ beta
        v = load @ vcov @ load.T
        n_clusters = int(rows.cluster.max()) + 1 if rows.cluster is not None else None
        df = (n_clusters - 1) if method == "cluster" and n_clusters else n - len(names)
        info = {
            "n_obs": n,
            "n_clusters": n_clusters,
            "first_stage_f": f_stat,
            "first_stage": float(first.params[self.instrument]),
            "spillover_share": share,
            "bounds": None if share is None else spillover_note(self.treatment, share),
            "package": "linearmodels.iv.IV2SLS",
            "seed": ctx.seed,
        }
        table = make_table(terms, est, np.full(len(terms), np.nan))
        if method == "none":
            return self._point_only(table, info, ctx, reason)
        label = {
            "iid": "classical",
            "hetero": "heteroskedasticity-robust",
            "cluster": f"cluster-robust by {cluster} ({n_clusters} clusters)",
        }[method]
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(
                method,
                f"2SLS with {label} standard errors (linearmodels, debiased), t({df})",
                distribution="t",
                cluster=cluster if method == "cluster" else None,
                n_clusters=n_clusters if method == "cluster" else None,
                reason=reason,
            ),
            info=info,
            level=ctx.level,
            uncertainty=Analytic(
                np.sqrt(np.clip(np.diag(v), 0, None)), df=np.full(len(terms), float(df)), vcov=v
            ),
        )
