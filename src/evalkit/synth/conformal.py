"""Conformal inference (Chernozhukov, Wuthrich & Zhu 2021) for synthetic control fits.

:mod:`evalkit.inference.conformal` runs the test for any counterfactual model given as a
callable ``fit(y_null, keep) -> residuals``. This module supplies the synthetic control
models and turns the result into the estimates' uncertainty. As in Chernozhukov et al.,
the model is refitted on *every* kept period of the null-imposed data (pre- and
post-treatment): for ``synth.SyntheticControl`` the simplex weights that fit the treated
unit's outcomes with V = I (the outcome-based SC of their paper, not the predictor-based V
of the estimate). The intervals are therefore those of Chernozhukov et al.'s procedure and
need not be centred on the ADH estimate in the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evalkit.core.uncertainty import TestInversion
from evalkit.errors import InferenceNotSupportedError
from evalkit.inference.conformal import conformal_inference
from evalkit.synth.simplex import kkt_solve, simplex_lstsq, simplex_qp

__all__ = ["conformal_uncertainty", "sc_counterfactual", "sc_counterfactual_cached"]

Counterfactual = Callable[[np.ndarray, np.ndarray], np.ndarray]


def sc_counterfactual(controls: np.ndarray) -> Counterfactual:
    """Synthetic control counterfactual: simplex weights fitted on the kept periods.

    ``controls`` is ``(J, T)``; the returned callable gives the treated unit's residuals.

    Examples
    --------
    The treated unit is the average of the two controls, so the residuals vanish:

    >>> fit = sc_counterfactual(np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]]))
    >>> bool(np.abs(fit(np.array([1.0, 2.0, 3.0]), np.ones(3, bool))).max() < 1e-12)
    True
    """
    ctrl = np.asarray(controls, dtype=float)

    def fit(y_null: np.ndarray, keep: np.ndarray) -> np.ndarray:
        x = ctrl[:, keep]
        w = simplex_lstsq(x.T, y_null).weights
        return y_null - w @ x

    return fit


def _still_optimal(
    g: np.ndarray, c: np.ndarray, support: np.ndarray, tol: float = 1e-10
) -> np.ndarray | None:
    """Return the simplex QP's solution if it has the given support, else None.

    The same steps as :func:`~evalkit.synth.simplex.simplex_qp` started from ``support``
    when that support is optimal (the closed-form weights on it, then the optimality
    check with the same tolerance), without its set-up: the same weights bit for bit.
    """
    z = kkt_solve(g, c, support)
    if not (z > 0).all():
        return None
    w = np.zeros(len(c))
    w[support] = z
    grad = g @ w - c
    on = grad[support]
    slack = grad - on.sum() / on.size
    slack[support] = np.inf
    scale = max(1.0, float(np.abs(np.diag(g)).max(initial=0.0)) + float(np.abs(c).max()))
    return w if slack.min() >= -tol * scale else None


def sc_counterfactual_cached(controls: np.ndarray) -> Counterfactual:
    """:func:`sc_counterfactual` with the set-up of each period mask kept between calls.

    Conformal inference refits the same model dozens of times per period mask, with only
    the treated unit's null-imposed outcomes changing. This callable keeps, per mask, the
    donors' outcomes on the kept periods and their Gram matrix (the same products
    :func:`~evalkit.synth.simplex.simplex_lstsq` forms), and starts the active-set solver
    from the support of the previous solution for that mask instead of the best single
    donor. The solver's weights are the closed-form solution on its final support, so
    the residuals are those of :func:`sc_counterfactual` bit for bit whenever the optimum
    has the same support (always, unless a weight is exactly zero at the optimum with a
    zero multiplier, where both are optimal); ``tests/unit/test_speed_equivalence.py``
    checks it.

    Examples
    --------
    >>> ctrl = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    >>> fast, slow = sc_counterfactual_cached(ctrl), sc_counterfactual(ctrl)
    >>> y, keep = np.array([1.0, 2.5, 3.0]), np.ones(3, bool)
    >>> bool(np.array_equal(fast(y, keep), slow(y, keep)))
    True
    """
    ctrl = np.asarray(controls, dtype=float)
    cache: dict[bytes, list[Any]] = {}

    def fit(y_null: np.ndarray, keep: np.ndarray) -> np.ndarray:
        key = np.asarray(keep, dtype=bool).tobytes()
        entry = cache.get(key)
        if entry is None:
            x = ctrl[:, keep]
            a = np.asarray(x.T, dtype=float)
            entry = cache[key] = [x, a, a.T @ a, None]
        x, a, g, support = entry
        b = np.asarray(y_null, dtype=float)
        c = a.T @ b
        w = None if support is None else _still_optimal(g, c, support)
        if w is None:
            if support is None:
                support = np.array([int(np.argmin(((a - b[:, None]) ** 2).sum(axis=0)))])
            w, _, _ = simplex_qp(g, c, start=support)
            entry[3] = np.flatnonzero(w > 0)
        return y_null - w @ x

    return fit


def conformal_uncertainty(
    y1: np.ndarray, post: np.ndarray, fit: Counterfactual, spec: Any, level: float
) -> tuple[TestInversion, str]:
    """Run the conformal test on the treated unit; rows ``att`` then each post period."""
    if getattr(spec, "scheme", "moving_block") != "moving_block":
        raise InferenceNotSupportedError(
            "conformal inference with i.i.d. permutations is not implemented",
            hint="use inference.Conformal(scheme='moving_block') (the default)",
            column="inference",
        )
    q = getattr(spec, "q", "mean")
    res = conformal_inference(y1, post, fit, level=level, q=q, per_period=True)

    def invert(new_level: float) -> tuple[np.ndarray, np.ndarray]:
        again = conformal_inference(y1, post, fit, level=new_level, q=q, per_period=True)
        return np.r_[again.conf_low, again.period_low], np.r_[again.conf_high, again.period_high]

    n_pre = int((~post).sum())
    description = (
        res.describe()
        + f"; per-period p-values in steps of 1/{n_pre + 1}; the model is refitted on all "
        "periods under each null (outcome-based weights)"
    )
    unc = TestInversion(
        p_value=np.r_[res.p_value, res.period_p_value],
        conf_low=np.r_[res.conf_low, res.period_low],
        conf_high=np.r_[res.conf_high, res.period_high],
        level=level,
        method="conformal",
        granularity=None,  # 1/T for att, 1/(T0+1) per period: stated in the note
        invert=invert,
        note=description + (f"; {res.note}" if res.note else ""),
    )
    return unc, description
