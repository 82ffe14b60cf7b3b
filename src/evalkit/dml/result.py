"""The result of a DML fit: the one result protocol plus the fitted DoubleML model.

The DoubleML object is kept (in memory, never serialised) so that the result can give
the best linear predictor of the CATE (:meth:`DMLResult.blp`) and the sensitivity
analysis (:meth:`DMLResult.sensitivity`) without refitting. Nothing here changes the
result or the model: each call works on copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core.result import Result
from evalkit.errors import DesignError, NotEstimableError

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.dml.sensitivity import Sensitivity

__all__ = ["DMLResult", "influence"]


def influence(model: Any) -> np.ndarray:
    """Return the ``(n, n_rep)`` influence functions ``-psi / mean(psi_a)`` of a fitted model.

    ``theta_hat - theta ~ mean(influence)`` in each repetition.
    """
    psi = np.asarray(model.psi)[:, 0, :]
    psi_a = np.asarray(model.psi_elements["psi_a"])[:, 0, :]
    return -psi / psi_a.mean(axis=0, keepdims=True)


@dataclass(frozen=True, eq=False)
class DMLResult(Result):
    """A :class:`~evalkit.core.result.Result` of a DML estimator.

    Extras: ``diagnostics`` (a DataFrame of the out-of-fold fit of every nuisance, with
    the propensity scores' range where there is one).
    """

    _model: Any = field(default=None, repr=False)
    _index: pd.Index | None = field(default=None, repr=False)
    _codes: np.ndarray | None = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        """A deep copy of the fitted DoubleML object (changes to it do not reach the result)."""
        import copy

        return copy.deepcopy(self._model)

    def blp(self, covariates: Sequence[str], *, intercept: bool = True) -> Result:
        """Best linear predictor of the conditional average treatment effect.

        Regresses the orthogonal signal of the ATE (DoubleML's ``cate``; Semenova &
        Chernozhukov 2021) on ``covariates`` (and a constant), with
        heteroskedasticity-robust (HC0) standard errors.

        Parameters
        ----------
        covariates
            Columns of the fit's covariates to project the CATE on.
        intercept
            Include a constant.

        Returns
        -------
        Result
            One row per coefficient (``term`` = ``"const"`` or the covariate).

        Raises
        ------
        NotEstimableError
            For models other than IRM with ``estimand="ate"``.
        """
        model = self._model
        if type(model).__name__ != "DoubleMLIRM" or model.score != "ATE":
            raise NotEstimableError(
                "the best linear predictor of the CATE needs dml.IRM with estimand='ate'",
                column="covariates",
            )
        names = [covariates] if isinstance(covariates, str) else list(covariates)
        known = list(model._dml_data.x_cols)
        for c in names:
            if c not in known:
                raise DesignError(
                    f"blp covariate {c!r} is not a covariate of this fit",
                    hint=f"choose from {known}",
                    column=c,
                )
        if model.n_rep != 1:
            raise NotEstimableError(
                "the best linear predictor is defined for n_rep=1 (DoubleML's cate)",
                column="n_rep",
            )
        basis = model._dml_data.data[names].reset_index(drop=True).astype(float)
        if intercept:
            basis.insert(0, "const", 1.0)
        blp = model.cate(basis)
        from evalkit.core.result import InferenceInfo, make_table
        from evalkit.core.uncertainty import Analytic

        coef = np.asarray(blp.coef, dtype=float)
        se = np.asarray(blp.se, dtype=float)
        return Result(
            estimator=self.estimator,
            _table=make_table(list(basis.columns), coef, se),
            inference=InferenceInfo(
                method="hetero",
                description="best linear predictor of the CATE, HC0 standard errors",
            ),
            info={
                "n_obs": len(basis),
                "basis": list(basis.columns),
                "seed": self.info["seed"],
            },
            level=self.level,
            uncertainty=Analytic(se, vcov=np.asarray(blp.blp_omega)),
        )

    def sensitivity(
        self,
        *,
        cf_y: float = 0.03,
        cf_d: float = 0.03,
        rho: float = 1.0,
        null: float = 0.0,
        level: float | None = None,
        benchmarks: Sequence[str | Sequence[str]] = (),
    ) -> Sensitivity:
        """Sensitivity of the estimate to unobserved confounding (Chernozhukov et al. 2022).

        Parameters
        ----------
        cf_y
            Share of the outcome's residual variation explained by the omitted
            confounders (partial R-squared).
        cf_d
            Gain in the Riesz representer's variation from the omitted confounders.
        rho
            Correlation of the two confounding errors (1: adversarial).
        null
            Effect the robustness values refer to.
        level
            Level of the confidence bounds; defaults to the fit's.
        benchmarks
            Covariates (or groups of covariates) whose omission benchmarks the strength
            of confounding: each refits the model without them (same folds and learners).

        Returns
        -------
        Sensitivity
        """
        from evalkit.dml.sensitivity import sensitivity

        return sensitivity(
            self,
            cf_y=cf_y,
            cf_d=cf_d,
            rho=rho,
            null=null,
            level=self.level if level is None else level,
            benchmarks=benchmarks,
        )
