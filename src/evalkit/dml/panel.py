"""Static panel model with unit effects: DoubleML's partially linear panel regression.

``Y_it = theta D_it + g(X_it) + alpha_i + e_it`` with unobserved unit effects
``alpha_i`` (Clarke & Polselli 2025), estimated by DoubleML's ``DoubleMLPLPR``. The
unit effects are removed by first differences (``approach="fd_exact"``, the default),
by within-group demeaning (``"wg_approx"``), or modelled as correlated random effects
(``"cre_general"``, ``"cre_normal"``: Mundlak unit means of the covariates and the
treatment enter the learners). Folds split units, and standard errors are clustered by
unit (DoubleML treats the unit as the cluster).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pandas as pd

from evalkit.core.registry import register
from evalkit.data.checks import check_name
from evalkit.dml._base import DMLEstimator
from evalkit.errors import DesignError

__all__ = ["APPROACHES", "PLPR"]

APPROACHES: tuple[str, ...] = ("fd_exact", "wg_approx", "cre_general", "cre_normal")


@register("dml.PLPR")
@dataclasses.dataclass(frozen=True, kw_only=True)
class PLPR(DMLEstimator):
    """Partially linear panel regression with unit effects (DoubleMLPLPR).

    Parameters
    ----------
    unit, time
        Panel columns.
    approach
        One of :data:`APPROACHES` (how the unit effects are removed).

    Notes
    -----
    Nuisances ``ml_l`` (outcome) and ``ml_m`` (treatment), regressors. ``by=`` is not
    available (the scores are on transformed rows). Inference: ``"cluster"`` (by unit,
    the default), ``"bootstrap"`` (multiplier by unit) or ``"none"``.
    """

    unit: str
    time: str
    approach: str = "fd_exact"
    supports_by: ClassVar[bool] = False
    supported_inference: ClassVar[tuple[str, ...]] = ("cluster", "bootstrap", "none")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name(self.unit, "unit")
        check_name(self.time, "time")
        if self.approach not in APPROACHES:
            raise DesignError(
                f"approach must be one of {', '.join(map(repr, APPROACHES))}, got "
                f"{self.approach!r}",
                column="approach",
            )
        if self.cluster is not None:
            raise DesignError(
                "the panel model clusters by unit; cluster= is not available",
                hint="drop cluster=",
                column="cluster",
            )

    def _roles(self) -> list[str]:
        return [self.outcome, self.treatment, self.unit, self.time]

    def _method(self, spec: Any, clusters: tuple[str, ...]) -> tuple[str, str]:
        if spec is None:
            return "cluster", f"cluster-robust by unit {self.unit!r} (the panel model's default)"
        return spec.method, "requested"

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:
        return {"ml_l": "regressor", "ml_m": "regressor"}

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:
        import doubleml

        data = doubleml.DoubleMLPanelData(
            frame.reset_index(drop=True),
            y_col=self.outcome,
            d_cols=self.treatment,
            t_col=self.time,
            id_col=self.unit,
            x_cols=list(self.covariates),
            static_panel=True,
        )
        return doubleml.DoubleMLPLPR(
            data,
            n_folds=self.n_folds,
            n_rep=self.n_rep,
            approach=self.approach,
            draw_sample_splitting=False,
            **learners,
        )
