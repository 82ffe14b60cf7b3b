"""Linear mixed model with random intercepts (and slopes) by group, on statsmodels MixedLM."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, Scores, make_table
from evalkit.data.checks import check_columns, check_identifier, check_name, check_names
from evalkit.data.checks import numeric_column as _numeric
from evalkit.errors import (
    ConvergenceError,
    ConvergenceWarning,
    DataError,
    DesignError,
    EvalkitWarning,
    NotEstimableError,
    RowsDroppedWarning,
)
from evalkit.inference.policy import THRESHOLDS

__all__ = ["MixedModel"]

#: Inference methods of :class:`MixedModel`.
MIXED_METHODS: tuple[str, ...] = ("iid", "cluster", "none")


@register("multilevel.MixedModel")
@dataclasses.dataclass(frozen=True, kw_only=True)
class MixedModel(Estimator):
    """Linear mixed model: fixed effects for configurations, random intercepts by group.

    Fits ``outcome = X beta + Z_g b_g + e`` with ``b_g ~ N(0, G)`` per group of
    ``cluster`` (e.g. the municipality) and ``e ~ N(0, sigma^2 I)``, by restricted
    (REML, the default) or full maximum likelihood in statsmodels' ``MixedLM``. ``X`` has
    an intercept, ``treatment`` and ``covariates``; text or categorical columns become
    0/1 indicators of every level but the first (``"office[proactive]"``). ``Z_g`` has an
    intercept and the ``random_slopes`` columns (an unstructured ``G``).

    Parameters
    ----------
    outcome
        The individual outcome (e.g. a transition into work in a month, 0/1: a linear
        probability model).
    cluster
        The grouping whose levels get random intercepts (and slopes), e.g. the
        municipality; also the clusters of ``inference="cluster"``.
    treatment
        The configuration of interest (numeric, 0/1, or categorical), reported first.
    covariates
        Further fixed-effect columns, numeric or categorical (a categorical column's
        reference is its first level: first in a pandas Categorical's order, else first
        sorted). A covariate that is constant in the data (``country`` on one country's
        extract) is dropped with a warning and named in ``info["dropped_covariates"]``.
    random_slopes
        Numeric columns whose coefficients also vary by group.
    categorical
        Fixed-effect columns coded as levels even when numeric (e.g. ``"year"`` for
        year effects); text and categorical columns always are.
    reml
        True for REML (as lme4's default), False for maximum likelihood.
    intercept
        Include a fixed intercept (``"Intercept"``).

    Notes
    -----
    Inference methods: ``"iid"`` gives the model-based standard errors
    (``(X'V^-1X)^-1`` at the estimated variance components, as lme4's ``vcov``; they
    assume the random-effects and residual structure is right), normal reference;
    ``"cluster"`` gives the cluster-robust sandwich by group, ``B M B`` with
    ``B = (sum_g X_g'V_g^-1X_g)^-1`` and
    ``M = G/(G-1) sum_g X_g'V_g^-1 e_g e_g'V_g^-1 X_g`` (Liang-Zeger), t with ``G-1``
    degrees of freedom; it stays right when the variance model is wrong (a linear
    probability model is heteroskedastic by construction). ``inference=None`` picks
    ``"cluster"`` with 30 or more groups and the model-based errors below that (the
    sandwich is unreliable with few clusters), and records why. The variance components,
    the intraclass correlation and the log-likelihood are in ``info``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from evalkit.multilevel import MixedModel
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(40), 25)
    >>> x = rng.integers(0, 2, g.size)
    >>> y = 1.0 + 0.5 * x + rng.normal(0, 1, 40)[g] + rng.normal(0, 1, g.size)
    >>> df = pd.DataFrame({"y": y, "x": x, "municipality": g})
    >>> res = MixedModel(outcome="y", treatment="x", cluster="municipality").fit(df)
    >>> round(res.estimate("x"), 2)
    0.53
    >>> res.inference.method
    'cluster'
    """

    outcome: str
    cluster: str
    treatment: str | None = None
    covariates: tuple[str, ...] = ()
    random_slopes: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    reml: bool = True
    intercept: bool = True

    supported_inference: ClassVar[tuple[str, ...]] = MIXED_METHODS

    def __post_init__(self) -> None:
        check_name(self.outcome, "outcome")
        check_name(self.cluster, "cluster")
        check_name(self.treatment, "treatment", required=False)
        object.__setattr__(self, "covariates", check_names(self.covariates, "covariates"))
        object.__setattr__(self, "random_slopes", check_names(self.random_slopes, "random_slopes"))
        object.__setattr__(self, "categorical", check_names(self.categorical, "categorical"))
        stray = [c for c in self.categorical if c not in self.terms]
        if stray:
            raise DesignError(
                f"categorical names {stray}, which are not fixed-effect columns",
                hint="list columns of treatment or covariates in categorical",
                column="categorical",
            )
        for option in ("reml", "intercept"):
            if not isinstance(getattr(self, option), bool):
                raise DesignError(
                    f"{option} must be True or False, got {getattr(self, option)!r}",
                    column=option,
                )
        if self.treatment is None and not self.covariates and not self.intercept:
            raise DesignError(
                "the model has no fixed effects",
                hint="name a treatment or covariates, or keep intercept=True",
                column="treatment",
            )

    @property
    def terms(self) -> tuple[str, ...]:
        """The fixed-effect columns, treatment first."""
        return (*((self.treatment,) if self.treatment else ()), *self.covariates)

    # ------------------------------------------------------------------ data
    def _rows(self, data: pd.DataFrame) -> pd.DataFrame:
        """Select the columns used and drop rows with missing values (counted)."""
        used = list(dict.fromkeys([self.outcome, self.cluster, *self.terms, *self.random_slopes]))
        check_columns(
            data,
            {
                "outcome": self.outcome,
                "cluster": self.cluster,
                "fixed effects": [t for t in self.terms if t != self.cluster],
            },
        )
        for col in self.random_slopes:
            if col not in data.columns:
                raise DataError(
                    f"random_slopes column {col!r} is not in the data",
                    column=col,
                    hint="random slopes name numeric columns of the data",
                )
        frame = data[used].copy()
        check_identifier(frame, self.cluster, "cluster")
        drop = frame.isna().any(axis=1).to_numpy()
        if drop.any():
            text = ", ".join(c for c in used if frame[c].isna().any())
            warnings.warn(
                f"dropped {int(drop.sum())} of {len(frame)} rows with missing values in: {text}",
                RowsDroppedWarning,
                stacklevel=5,
            )
            frame = frame.loc[~drop]
        if frame.empty:
            raise DataError("no rows are left to fit the mixed model", column=self.outcome)
        return frame

    def _design(
        self, frame: pd.DataFrame
    ) -> tuple[np.ndarray, list[str], dict[str, Any], list[str]]:
        """Return the fixed effects' matrix, term names, reference levels and dropped columns.

        Covariates constant in these data are dropped (the intercept absorbs them).
        """
        cols: list[np.ndarray] = []
        names: list[str] = []
        references: dict[str, Any] = {}
        dropped: list[str] = []
        if self.intercept:
            cols.append(np.ones(len(frame)))
            names.append("Intercept")
        for col in self.terms:
            series = frame[col]
            categorical = col in self.categorical or _is_categorical(series)
            values = None if categorical else _numeric(frame, col, _role(self, col))
            constant = series.nunique() < 2
            if constant and col != self.treatment and self.intercept:
                dropped.append(col)  # e.g. country on one country's extract
                continue
            if categorical:
                present = set(series.unique())
                if isinstance(series.dtype, pd.CategoricalDtype):  # its own order
                    levels = [c for c in series.cat.categories if c in present]
                else:
                    levels = sorted(present, key=str)
                if len(levels) < 2:
                    raise NotEstimableError(
                        f"fixed-effect column {col!r} has one level ({levels[0]!r})",
                        hint="drop it from the model, or fit data where it varies",
                        column=col,
                    )
                references[col] = levels[0]
                for level in levels[1:]:
                    cols.append((series == level).to_numpy(dtype=float))
                    names.append(f"{col}[{level}]")
            else:
                assert values is not None  # numeric column
                cols.append(values)
                names.append(col)
        if dropped:
            warnings.warn(
                f"dropped covariate(s) {dropped}: constant in these data (absorbed by the "
                "intercept)",
                EvalkitWarning,
                stacklevel=5,
            )
        x = np.column_stack(cols)
        rank = np.linalg.matrix_rank(x)
        if rank < x.shape[1]:
            raise NotEstimableError(
                f"the fixed effects {names} are collinear (rank {rank} of {x.shape[1]})",
                hint="drop a column that is a combination of others (e.g. a configuration "
                "that is the same in every row, or a dummy of every level with intercept=True)",
                column=self.treatment or self.covariates[0],
            )
        return x, names, references, dropped

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        frame = self._rows(data)
        y = _numeric(frame, self.outcome, "outcome")
        x, names, references, dropped = self._design(frame)
        groups = frame[self.cluster].to_numpy()
        labels, codes = np.unique(groups, return_inverse=True)
        n_groups = len(labels)
        if n_groups < 2:
            raise NotEstimableError(
                f"cluster {self.cluster!r} has {n_groups} group: random intercepts need at "
                "least two",
                column=self.cluster,
            )
        z = np.column_stack(
            [np.ones(len(frame))]
            + [_numeric(frame, c, "random_slopes") for c in self.random_slopes]
        )
        fitted = _mixedlm(y, x, codes, z, self.reml, names)
        beta = np.asarray(fitted.fe_params, dtype=float)
        k = len(names)
        method, reason = self._method(ctx, n_groups)
        cov_re = np.atleast_2d(np.asarray(fitted.cov_re, dtype=float))
        scale = float(fitted.scale)
        bread, scores = _sandwich_parts(y, x, z, codes, n_groups, beta, cov_re, scale)
        if method == "cluster":
            factor = n_groups / (n_groups - 1)
            vcov = factor * bread @ (scores.T @ scores) @ bread
            df = float(n_groups - 1)
            text = (
                f"cluster-robust sandwich by {self.cluster} ({n_groups} groups), t({n_groups - 1})"
            )
            info_inf = InferenceInfo(
                "cluster",
                text,
                distribution="t",
                cluster=self.cluster,
                n_clusters=n_groups,
                reason=reason,
            )
        elif method == "iid":
            vcov = bread
            df = np.inf
            info_inf = InferenceInfo(
                "iid",
                "model-based standard errors of the mixed model (normal reference)",
                reason=reason,
            )
        else:
            vcov, df = None, np.inf
            info_inf = InferenceInfo("none", "point estimates only", reason=reason)
        se = np.full(k, np.nan) if vcov is None else np.sqrt(np.clip(np.diag(vcov), 0, None))
        psi = scores @ bread  # per-group influence contributions, one column per term
        info = {
            "n_obs": len(frame),
            "n_clusters": n_groups,
            "cluster": self.cluster,
            "method": "REML" if self.reml else "ML",
            "converged": bool(fitted.converged),
            "log_likelihood": float(fitted.llf),
            "variance_components": _components(cov_re, scale, self.random_slopes, self.cluster),
            "icc": float(cov_re[0, 0] / (cov_re[0, 0] + scale)),
            "reference_levels": {c: str(v) for c, v in references.items()},
            "dropped_covariates": dropped,
            "roles": {
                "outcome": self.outcome,
                "cluster": self.cluster,
                "treatment": self.treatment,
                "covariates": list(self.covariates),
                "random_slopes": list(self.random_slopes),
                "categorical": list(self.categorical),
            },
            "seed": ctx.seed,
        }
        return Result(
            estimator=self.registry_name,
            _table=make_table(names, beta, se, df=df),
            inference=info_inf,
            info=info,
            level=ctx.level,
            _vcov=vcov,
            _scores=None if vcov is None else Scores(labels=labels, values=psi),
        )

    def _method(self, ctx: FitContext, n_groups: int) -> tuple[str, str]:
        spec = ctx.inference
        if spec is not None:
            if spec.cluster is not None and spec.cluster != self.cluster:
                raise DesignError(
                    f"a mixed model clusters by its groups ({self.cluster!r}), not "
                    f"{spec.cluster!r}",
                    hint=f"set cluster={spec.cluster!r} in the model to group by that column",
                    column="cluster",
                )
            return spec.method, f"requested; {n_groups} groups of {self.cluster!r}"
        if n_groups >= THRESHOLDS.few_clusters:
            return "cluster", (
                f"{n_groups} groups of {self.cluster!r}: the cluster-robust sandwich does "
                "not rely on the model's variance structure"
            )
        return "iid", (
            f"only {n_groups} groups of {self.cluster!r} (fewer than "
            f"{THRESHOLDS.few_clusters}): the cluster-robust sandwich is unreliable, so the "
            "model-based standard errors are used; they assume the random-effects structure"
        )


def _role(model: MixedModel, col: str) -> str:
    return "treatment" if col == model.treatment else "covariates"


def _is_categorical(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
    )


def _mixedlm(
    y: np.ndarray, x: np.ndarray, codes: np.ndarray, z: np.ndarray, reml: bool, names: list[str]
) -> Any:
    """Fit statsmodels MixedLM; its warnings become evalkit warnings with a hint."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning as SMConvergence

    model = sm.MixedLM(y, x, groups=codes, exog_re=z)
    model.exog_names[:] = names
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = model.fit(reml=reml)  # its default optimisers (bfgs first)
        if not np.isfinite(fitted.llf):
            # statsmodels' gradient optimisers can step onto a random-effects covariance of
            # exactly zero, where its log-likelihood evaluates to +inf: the fit is reported
            # as converged with wrong fixed effects (the intercept off by the outcome's mean
            # when the true variance is small). A derivative-free search finds the optimum.
            fitted = model.fit(reml=reml, method=["powell", "nm"])
    if not np.isfinite(fitted.llf):
        raise ConvergenceError(
            "MixedLM: no optimiser found a finite log-likelihood (bfgs, lbfgs, cg, powell, "
            "nm); check the random-effects design (random_slopes) and the covariates for "
            "columns that are constant within every cluster"
        )
    messages = [str(w.message) for w in caught if issubclass(w.category, SMConvergence)]
    boundary = [m for m in messages if "boundary" in m]
    if not fitted.converged or boundary:
        problem = "did not converge" if not fitted.converged else "is on the boundary"
        warnings.warn(
            f"MixedLM: the fit {problem} ({'; '.join(dict.fromkeys(messages))}): a variance "
            "component is at or near zero, or the optimiser stopped early; check "
            "info['variance_components'] and consider fewer random slopes",
            ConvergenceWarning,
            stacklevel=5,
        )
    return fitted


def _sandwich_parts(
    y: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    beta: np.ndarray,
    cov_re: np.ndarray,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``B = (sum_g X_g'V_g^-1 X_g)^-1`` and the rows ``X_g'V_g^-1 e_g``.

    ``V_g = scale I + Z_g G Z_g'`` is inverted by the push-through form of Woodbury's
    identity, ``V^-1 = (I - Z G (scale I + Z'Z G)^-1 Z') / scale``, which needs no
    inverse of ``G`` (it may be singular at a boundary).
    """
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_groups + 1))
    k, q = x.shape[1], z.shape[1]
    info = np.zeros((k, k))
    u = np.zeros((n_groups, k))
    resid = y - x @ beta
    eye = scale * np.eye(q)
    for g in range(n_groups):
        rows = order[starts[g] : starts[g + 1]]
        xg, zg, eg = x[rows], z[rows], resid[rows]
        inner = np.linalg.solve(eye + zg.T @ zg @ cov_re, np.eye(q))
        proj = cov_re @ inner  # G (sI + Z'Z G)^-1

        def vinv(m: np.ndarray, zg: np.ndarray = zg, proj: np.ndarray = proj) -> np.ndarray:
            return (m - zg @ (proj @ (zg.T @ m))) / scale

        info += xg.T @ vinv(xg)
        u[g] = xg.T @ vinv(eg[:, None])[:, 0]
    return np.linalg.inv(info), u


def _components(
    cov_re: np.ndarray, scale: float, slopes: tuple[str, ...], cluster: str
) -> dict[str, float]:
    names = ["Intercept", *slopes]
    out = {f"var({cluster}: {names[0]})": float(cov_re[0, 0])}
    for i in range(1, len(names)):
        out[f"var({cluster}: {names[i]})"] = float(cov_re[i, i])
        for j in range(i):
            out[f"cov({cluster}: {names[j]}, {names[i]})"] = float(cov_re[j, i])
    out["var(residual)"] = scale
    return out
