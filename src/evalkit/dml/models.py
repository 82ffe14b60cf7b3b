"""Cross-sectional DML models on DoubleML: PLR, IRM, IIVM and PLIV.

Shared options (every model): ``outcome``, ``treatment``, ``covariates`` (roles);
``cluster`` (one or two columns: cluster-robust scores and cluster-wise folds);
``learner`` (a preset name, ``"lasso"``, ``"rf"``, ``"lgbm"`` or ``"logit"``, or any
scikit-learn estimator, for every nuisance) and ``learners`` (per nuisance, e.g.
``{"ml_l": "rf", "ml_m": LogisticRegression()}``); ``n_folds`` and ``n_rep`` (repeated
cross-fitting, combined by DoubleML's median rule); ``jobs`` (processes for the
learner fits through :mod:`evalkit.parallel`, this one included; default
``EVALKIT_JOBS`` or 1: every fold's fit of every nuisance and repetition is one item,
and DoubleML scores the out-of-fold predictions, identical to the serial fit; see
:mod:`evalkit.dml.crossfit`). ``fit(seed=)`` drives the folds and every learner's
``random_state``.

Inference: ``"hetero"`` (DoubleML's variance of the scores; the default without
clusters), ``"cluster"`` (DoubleML's one- or two-way cluster-robust variance; the
default with clusters), ``"cr2"``, ``"jackknife"`` and ``"wild"`` (few clusters,
one-way: the CR2 standard error of the final-stage score with Satterthwaite degrees of
freedom, the leave-one-cluster-out jackknife with t(G-1), or the restricted wild
cluster bootstrap with a test-inversion interval; see
:mod:`evalkit.dml.few_clusters`), ``"bootstrap"`` (evalkit's multiplier bootstrap of
the scores, one weight per cluster when clustered, where DoubleML's own bootstrap
refuses clustered data) and ``"none"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.registry import register
from evalkit.data.checks import check_name
from evalkit.dml._base import DMLEstimator, binary
from evalkit.errors import DataError, DesignError

__all__ = ["IIVM", "IRM", "PLIV", "PLR"]


def _data(est: DMLEstimator, frame: pd.DataFrame, clusters: tuple[str, ...], **roles: Any) -> Any:
    import doubleml

    return doubleml.DoubleMLData(
        frame.reset_index(drop=True),
        y_col=est.outcome,
        d_cols=est.treatment,
        x_cols=list(est.covariates),
        cluster_cols=list(clusters) or None,
        **roles,
    )


def _check_instrument(est: Any, frame: pd.DataFrame) -> None:
    z = frame[est.instrument].to_numpy()
    if np.ptp(z) == 0:
        raise DataError(
            f"instrument column {est.instrument!r} is constant: it cannot shift the treatment",
            column=est.instrument,
        )
    if np.array_equal(z, frame[est.treatment].to_numpy()):
        raise DesignError(
            f"instrument column {est.instrument!r} equals the treatment {est.treatment!r} "
            "in every row: an instrument must be a separate source of variation",
            hint="with full compliance use dml.IRM (binary treatment) or dml.PLR",
            column=est.instrument,
        )


@register("dml.PLR")
@dataclasses.dataclass(frozen=True, kw_only=True)
class PLR(DMLEstimator):
    """Partially linear regression ``Y = theta D + g(X) + e`` (Chernozhukov et al. 2018).

    Nuisances: ``ml_l`` (E[Y|X], a regressor) and ``ml_m`` (E[D|X]: a classifier for a
    0/1 treatment, a regressor otherwise); with ``score="IV-type"`` also ``ml_g``.
    See :mod:`evalkit.dml.models` for the shared options and inference.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.dml import PLR
    >>> df = evalkit.datasets.load("sipp1991").iloc[::6]
    >>> res = PLR(outcome="net_tfa", treatment="e401", covariates=["age", "inc", "educ"],
    ...           learner="logit", n_folds=2).fit(df, seed=1)
    >>> res.terms
    ['e401']
    """

    score: str = "partialling out"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.score not in ("partialling out", "IV-type"):
            raise DesignError(
                f"score must be 'partialling out' or 'IV-type', got {self.score!r}",
                column="score",
            )

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:
        m = "classifier" if binary(frame[self.treatment].to_numpy()) else "regressor"
        out = {"ml_l": "regressor", "ml_m": m}
        if self.score == "IV-type":
            out["ml_g"] = "regressor"
        return out

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:
        import doubleml

        return doubleml.DoubleMLPLR(
            _data(self, frame, clusters),
            n_folds=self.n_folds,
            n_rep=self.n_rep,
            score=self.score,
            draw_sample_splitting=False,
            **learners,
        )


@register("dml.IRM")
@dataclasses.dataclass(frozen=True, kw_only=True)
class IRM(DMLEstimator):
    """Interactive regression model: ATE or ATT of a binary treatment (doubly robust).

    Nuisances: ``ml_g`` (E[Y|D,X], a regressor) and ``ml_m`` (the propensity score, a
    classifier). Propensity scores are clipped to ``[trimming, 1 - trimming]``; a
    :class:`~evalkit.errors.WeakOverlapWarning` counts the clipped units.

    Parameters
    ----------
    estimand
        ``"ate"`` or ``"att"``.
    trimming
        Clipping bound of the propensity score (DoubleML's default 0.01).

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.dml import IRM
    >>> df = evalkit.datasets.load("sipp1991").iloc[::6]
    >>> res = IRM(outcome="net_tfa", treatment="e401", covariates=["age", "inc"],
    ...           learner="logit", n_folds=2).fit(df, seed=1)
    >>> res.info["score"]
    'ATE'
    """

    estimand: str = "ate"
    trimming: float = 0.01
    binary_roles: ClassVar[tuple[str, ...]] = ("treatment",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.estimand not in ("ate", "att"):
            raise DesignError(
                f"estimand must be 'ate' or 'att', got {self.estimand!r}", column="estimand"
            )
        if not 0.0 < float(self.trimming) < 0.5:
            raise DesignError(
                f"trimming must be in (0, 0.5), got {self.trimming!r}", column="trimming"
            )

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:
        return {"ml_g": "regressor", "ml_m": "classifier"}

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:
        import doubleml
        from doubleml.utils import PSProcessorConfig

        return doubleml.DoubleMLIRM(
            _data(self, frame, clusters),
            n_folds=self.n_folds,
            n_rep=self.n_rep,
            score="ATE" if self.estimand == "ate" else "ATTE",
            ps_processor_config=PSProcessorConfig(clipping_threshold=float(self.trimming)),
            draw_sample_splitting=False,
            **learners,
        )


@register("dml.IIVM")
@dataclasses.dataclass(frozen=True, kw_only=True)
class IIVM(DMLEstimator):
    """Local average treatment effect with a binary instrument (interactive IV model).

    For a trial whose random assignment (``instrument``) shifts take-up of a binary
    ``treatment``, including controls who get similar services (contamination): the
    effect on compliers. Nuisances: ``ml_g`` (E[Y|Z,X]), ``ml_m`` (P[Z=1|X], a
    classifier) and ``ml_r`` (P[D=1|Z,X], a classifier).

    Parameters
    ----------
    instrument
        The binary instrument column (role ``instrument``).
    trimming
        Clipping bound of the instrument propensity score.
    """

    instrument: str
    trimming: float = 0.01
    extra_roles: ClassVar[tuple[str, ...]] = ("instrument",)
    binary_roles: ClassVar[tuple[str, ...]] = ("treatment", "instrument")

    def _check(self, frame: pd.DataFrame) -> None:
        _check_instrument(self, frame)

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:
        return {"ml_g": "regressor", "ml_m": "classifier", "ml_r": "classifier"}

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:
        import doubleml
        from doubleml.utils import PSProcessorConfig

        return doubleml.DoubleMLIIVM(
            _data(self, frame, clusters, z_cols=self.instrument),
            n_folds=self.n_folds,
            n_rep=self.n_rep,
            ps_processor_config=PSProcessorConfig(clipping_threshold=float(self.trimming)),
            draw_sample_splitting=False,
            **learners,
        )


@register("dml.PLIV")
@dataclasses.dataclass(frozen=True, kw_only=True)
class PLIV(DMLEstimator):
    """Partially linear IV model ``Y = theta D + g(X) + e`` with ``E[e | Z, X] = 0``.

    Nuisances: ``ml_l`` (E[Y|X]), ``ml_m`` (E[Z|X]) and ``ml_r`` (E[D|X]), regressors.

    Parameters
    ----------
    instrument
        The instrument column (role ``instrument``), continuous or binary.
    """

    instrument: str
    extra_roles: ClassVar[tuple[str, ...]] = ("instrument",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name(self.instrument, "instrument")

    def _check(self, frame: pd.DataFrame) -> None:
        _check_instrument(self, frame)

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:
        return {"ml_l": "regressor", "ml_m": "regressor", "ml_r": "regressor"}

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:
        import doubleml

        return doubleml.DoubleMLPLIV(
            _data(self, frame, clusters, z_cols=self.instrument),
            n_folds=self.n_folds,
            n_rep=self.n_rep,
            draw_sample_splitting=False,
            **learners,
        )
