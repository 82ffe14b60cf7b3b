"""Ridge augmented synthetic control (Ben-Michael, Feller & Rothstein 2021).

The synthetic control weights ``w`` (simplex, balancing the pre-treatment outcomes with
V = I) are corrected by a ridge regression of the outcomes on the pre-treatment
outcomes among the donors:

    w_aug = w + X_c' (X_c X_c' + lambda I)^{-1} (x_1 - X_c w)

with ``X_c`` the donors' pre-treatment outcomes (periods x donors) centred at the donor
mean of each period and ``x_1`` the treated unit's, centred the same way. The correction
sums to zero, so ``w_aug`` sums to one but may be negative.
The penalty is chosen as the R package ``augsynth`` does: a geometric grid of
``n_lambda + 1`` values from the largest squared singular value of ``X_c`` down by
``lambda_min_ratio``; for each pre-period but the last, refit SC and ridge without it and
predict it; take the largest penalty whose mean squared error is within one standard
error of the smallest (``min_1se``), or the smallest-error penalty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import Result
from evalkit.data.wide import WideOutcomes, wide_panel
from evalkit.errors import DesignError
from evalkit.inference.policy import choose_inference
from evalkit.synth.placebo import OWN_DEFAULT, placebo_cutoff, placebo_in_space
from evalkit.synth.problem import UnitFit
from evalkit.synth.result import build_result
from evalkit.synth.simplex import simplex_lstsq
from evalkit.synth.subgroups import placebo_fit_by
from evalkit.synth.synthetic_control import check_roles

__all__ = ["AugmentedSyntheticControl", "RidgeASCM", "lambda_grid", "ridge_ascm"]


@dataclasses.dataclass(frozen=True)
class RidgeASCM:
    """Weights of one ridge ASCM fit.

    Attributes
    ----------
    weights
        Augmented weights (sum to one, may be negative).
    sc_weights
        The synthetic control weights it corrects.
    penalty
        The ridge penalty used.
    lambdas, cv_error, cv_se
        The penalty grid with the cross-validation error and its standard error (empty
        when the penalty was given).
    """

    weights: np.ndarray
    sc_weights: np.ndarray
    penalty: float
    lambdas: np.ndarray
    cv_error: np.ndarray
    cv_se: np.ndarray


def lambda_grid(xc: np.ndarray, ratio: float = 1e-8, n: int = 20) -> np.ndarray:
    """Return ``augsynth``'s penalty grid: ``s_max^2 * ratio^(i/n)``, ``i = 0..n``.

    ``xc`` is the centred periods x donors matrix; ``s_max`` its largest singular value.

    Examples
    --------
    >>> g = lambda_grid(np.array([[2.0, -2.0], [0.0, 0.0]]), ratio=1e-2, n=2)
    >>> np.round(g, 6).tolist()
    [8.0, 0.8, 0.08]
    """
    top = float(np.linalg.svd(xc, compute_uv=False)[0]) ** 2
    return top * ratio ** (np.arange(n + 1) / n)


def _correction(xc: np.ndarray, x1: np.ndarray, w: np.ndarray, penalty: float) -> np.ndarray:
    """Return ``X_c (X_c'X_c + lambda I)^{-1} (x_1 - X_c'w)`` with donors in columns of xc."""
    # xc is periods x donors; the ridge system lives in the periods dimension
    t = xc.shape[0]
    gram = xc @ xc.T + penalty * np.eye(t)
    return xc.T @ np.linalg.solve(gram, x1 - xc @ w)


def _cv_errors(
    xc: np.ndarray, xt: np.ndarray, lambdas: np.ndarray, start: np.ndarray | None = None
) -> np.ndarray:
    """Squared errors of leave-one-period-out fits, (held-out period, penalty).

    Each held-out period's ridge systems for every penalty are solved in one batched
    LAPACK call (the same ``gesv`` on the same matrices as one :func:`_correction` per
    penalty, so the same numbers; ``tests/unit/test_speed_equivalence.py``). ``start``
    (the support of the SC weights on every period) starts each held-out SC fit; the
    solver's weights are the closed-form solution on the optimal support whatever the
    start, so only the number of active-set steps changes.
    """
    t0 = xc.shape[0]
    err = np.empty((t0 - 1, lambdas.size))
    eye = np.eye(t0 - 1)
    for i in range(t0 - 1):  # hold out period i (augsynth never holds out the last)
        keep = np.arange(t0) != i
        xk, tk = xc[keep], xt[keep]
        w = simplex_lstsq(xk, tk, start=start).weights
        gram = xk @ xk.T
        grams = gram[None, :, :] + lambdas[:, None, None] * eye[None, :, :]
        sols = np.linalg.solve(
            grams, np.broadcast_to((tk - xk @ w)[None, :, None], (lambdas.size, t0 - 1, 1))
        )
        for j in range(lambdas.size):
            aug = w + xk.T @ sols[j, :, 0]
            err[i, j] = (xt[i] - xc[i] @ aug) ** 2
    return err


def ridge_ascm(
    x1: np.ndarray,
    x0: np.ndarray,
    *,
    penalty: float | None = None,
    lambda_min_ratio: float = 1e-8,
    n_lambda: int = 20,
    min_1se: bool = True,
) -> RidgeASCM:
    """Ridge ASCM weights for pre-period outcomes ``x1`` (T0) and ``x0`` (T0 x donors).

    Examples
    --------
    The treated unit lies outside the donors' hull: SC cannot fit it, a small penalty
    (three pre-periods, five donors) fits it exactly with weights that sum to one.

    >>> rng = np.random.default_rng(0)
    >>> x0 = rng.normal(size=(3, 5)); x1 = x0.max(axis=1) + 1.0
    >>> fit = ridge_ascm(x1, x0, penalty=1e-9)
    >>> bool(np.abs(x0 @ fit.sc_weights - x1).max() > 0.5), bool(np.allclose(x0 @ fit.weights, x1))
    (True, True)
    >>> round(float(fit.weights.sum()), 12)
    1.0
    """
    mean = x0.mean(axis=1)
    xc = x0 - mean[:, None]
    xt = x1 - mean
    sc = simplex_lstsq(xc, xt).weights
    lambdas = np.empty(0)
    errors = np.empty(0)
    ses = np.empty(0)
    if penalty is None:
        lambdas = lambda_grid(xc, lambda_min_ratio, n_lambda)
        t0 = xc.shape[0]
        if t0 < 2:
            raise DesignError(
                "cross-validating the ridge penalty needs at least two pre-treatment periods",
                hint="give penalty= explicitly",
                column="penalty",
            )
        err = _cv_errors(xc, xt, lambdas, start=np.flatnonzero(sc > 0))
        errors = err.mean(axis=0)
        ses = err.std(axis=0, ddof=1) / np.sqrt(err.shape[0]) if err.shape[0] > 1 else 0 * errors
        best = int(np.argmin(errors))
        if min_1se:
            penalty = float(lambdas[errors <= errors[best] + ses[best]].max())
        else:
            penalty = float(lambdas[best])
    weights = sc + _correction(xc, xt, sc, penalty)
    return RidgeASCM(weights, sc, float(penalty), lambdas, errors, ses)


@register("synth.AugmentedSyntheticControl")
@dataclasses.dataclass(frozen=True, kw_only=True)
class AugmentedSyntheticControl(Estimator):
    """Ridge augmented synthetic control for one treated unit (Ben-Michael et al. 2021).

    Synthetic control weights on the pre-treatment outcomes, corrected by a ridge
    outcome model so that the pre-treatment fit improves where SC alone cannot reach
    the treated unit (it lies outside the donors' convex hull). The corrected weights
    sum to one but may be negative (extrapolation, controlled by the penalty).

    Parameters
    ----------
    outcome, unit, time, treatment
        Column names; ``treatment`` is 0/1 and marks exactly one unit.
    penalty
        The ridge penalty lambda; None (default) chooses it by cross-validation over the
        pre-treatment periods as ``augsynth`` does.
    lambda_min_ratio, n_lambda
        The penalty grid: ``n_lambda + 1`` values from the largest squared singular value
        of the centred donor outcomes down by the factor ``lambda_min_ratio``.
    min_1se
        Take the largest penalty within one standard error of the smallest CV error
        (default, as ``augsynth``), else the smallest-error penalty.
    donors
        Restrict the donor pool to these units.

    Notes
    -----
    Inference: ``"placebo"`` (default; every donor refitted as if treated, its penalty
    chosen again by cross-validation, ranked as for
    :class:`~evalkit.synth.SyntheticControl`) or ``"none"``. Conformal inference
    (augsynth's default) is not offered yet: refitting the ridge model on every period
    under the null, with the penalty chosen on the pre-period, gave intervals on
    Proposition 99 that exclude the estimate, which needs study first. As the penalty grows the
    estimator becomes synthetic control on the pre-treatment outcomes; as it shrinks
    (with fewer pre-periods than donors) the pre-treatment fit becomes exact.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.synth import AugmentedSyntheticControl
    >>> df = evalkit.datasets.load("prop99")
    >>> asc = AugmentedSyntheticControl(outcome="PacksPerCapita", unit="State",
    ...                                 time="Year", treatment="treated")
    >>> res = asc.fit(df, inference="none")
    >>> round(res.estimate("att"), 2)
    -15.95
    """

    outcome: str
    unit: str
    time: str
    treatment: str
    penalty: float | None = None
    lambda_min_ratio: float = 1e-8
    n_lambda: int = 20
    min_1se: bool = True
    donors: tuple[Any, ...] | None = None

    supported_inference: ClassVar[tuple[str, ...]] = ("placebo", "none")
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"att": "treated_periods", "effect": "period"}
    )

    def __post_init__(self) -> None:
        check_roles(self, ("outcome", "unit", "time", "treatment"))
        if self.penalty is not None and not (
            isinstance(self.penalty, (int, float))
            and not isinstance(self.penalty, bool)
            and self.penalty > 0
        ):
            raise DesignError(
                f"penalty must be a positive number or None (cross-validated), got "
                f"{self.penalty!r}",
                column="penalty",
            )
        if not (0 < self.lambda_min_ratio < 1):
            raise DesignError("lambda_min_ratio must lie in (0, 1)", column="lambda_min_ratio")
        if (
            isinstance(self.n_lambda, bool)
            or not isinstance(self.n_lambda, int)
            or self.n_lambda < 1
        ):
            raise DesignError("n_lambda must be a whole number >= 1", column="n_lambda")
        if self.donors is not None:
            donors = [self.donors] if isinstance(self.donors, str) else list(self.donors)
            object.__setattr__(self, "donors", tuple(donors))

    def _wide(self, data: pd.DataFrame) -> WideOutcomes:
        wide = wide_panel(
            data,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            treatment=self.treatment,
            donors=self.donors,
        )
        if wide.n_treated != 1:
            raise DesignError(
                f"AugmentedSyntheticControl fits one treated unit; {self.treatment!r} marks "
                f"{wide.n_treated} units",
                hint="fit each treated unit on its own, or use synth.SyntheticDiD",
                column=self.treatment,
            )
        return wide

    def _fit_one(self, wide: WideOutcomes, row: int, donors: np.ndarray) -> UnitFit:
        n_pre = wide.n_pre
        y = wide.y
        fit = ridge_ascm(
            y[row, :n_pre],
            y[donors, :n_pre].T,
            penalty=self.penalty,
            lambda_min_ratio=self.lambda_min_ratio,
            n_lambda=self.n_lambda,
            min_1se=self.min_1se,
        )
        synthetic = fit.weights @ y[donors]
        return UnitFit(row, donors, fit.weights, synthetic, y[row] - synthetic, n_pre, fit)

    def _fit_by(self, data: pd.DataFrame, by: str, ctx: FitContext) -> Result:
        """One fit per subgroup with the same placebo runs (:mod:`evalkit.synth.subgroups`)."""
        return placebo_fit_by(self, data, by, ctx)

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        choice = choose_inference(
            ctx.inference, supported=self.supported_inference, counts=None, own=OWN_DEFAULT
        )
        method, reason = choice.spec.method, choice.reason
        cutoff = placebo_cutoff(choice.spec)
        wide = self._wide(data)
        treated = wide.n_units - 1
        donors = np.arange(wide.n_donors)
        main = self._fit_one(wide, treated, donors)
        runs = None
        if method == "placebo":
            runs = placebo_in_space(
                lambda row, pool: self._fit_one(wide, row, pool).gap,
                main.gap,
                wide,
                treated,
                donors,
                wide.n_pre,
                cutoff,
            )
        fit: RidgeASCM = main.solution
        n_pre = wide.n_pre
        pre = wide.y[:, :n_pre]
        balance = pd.DataFrame(
            {
                "treated": pre[treated],
                "synthetic": fit.weights @ pre[donors],
                "sc": fit.sc_weights @ pre[donors],
                "donor_mean": pre[donors].mean(axis=0),
            },
            index=pd.Index([f"{self.outcome} ({t})" for t in wide.times[:n_pre]], name="predictor"),
        )
        info = {
            "penalty": fit.penalty,
            "penalty_chosen_by": "given"
            if self.penalty is not None
            else (
                "cross-validation (largest within 1 se)"
                if self.min_1se
                else "cross-validation (min)"
            ),
            "cv": {
                "lambda": fit.lambdas,
                "error": fit.cv_error,
                "se": fit.cv_se,
            },
            "sc_weights": dict(zip(map(str, wide.units[donors]), fit.sc_weights, strict=True)),
            "negative_weight_sum": float(fit.weights[fit.weights < 0].sum()),
        }
        return build_result(
            self,
            wide,
            main,
            runs,
            ctx,
            method=method,
            reason=reason,
            v=pd.Series(dtype=float, name="v"),
            balance=balance,
            info=info,
        )
