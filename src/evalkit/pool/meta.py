"""Meta-analysis of one estimate from several studies: fixed and random effects.

Given estimates ``y_i`` with standard errors ``s_i`` (``v_i = s_i^2``) from ``k`` studies
(here: the same design run in several countries), :func:`meta_analysis` returns

- the fixed-effect (inverse-variance) estimate ``sum w_i y_i / sum w_i``, ``w_i = 1/v_i``,
  with standard error ``(sum w_i)^-1/2``;
- Cochran's ``Q = sum w_i (y_i - mu_FE)^2`` on ``k - 1`` degrees of freedom, Higgins and
  Thompson's ``I^2 = max(0, (Q - (k-1)) / Q)`` and ``H^2 = Q / (k-1)``;
- random-effects estimates ``sum w*_i y_i / sum w*_i``, ``w*_i = 1/(v_i + tau^2)``, for
  three estimators of the between-study variance ``tau^2``: DerSimonian-Laird (method of
  moments, closed form), REML (Fisher scoring) and Paule-Mandel (the root of
  ``Q(tau^2) = k - 1``). Each carries its own ``I^2 = tau^2 / (tau^2 + s^2)`` with the
  typical within-study variance ``s^2 = (k-1) sum w / ((sum w)^2 - sum w^2)``
  (Higgins and Thompson 2002), as R's metafor reports it.

Intervals are Wald intervals with the normal reference (metafor's ``test="z"``), or with
``knapp_hartung=True`` the Hartung-Knapp-Sidik-Jonkman variance with t on ``k - 1``
degrees of freedom for the random-effects estimates, which keeps its level better with
few studies (three countries).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.errors import DataError, DesignError

__all__ = ["TAU2_METHODS", "MetaAnalysis", "Pooled", "meta_analysis", "tau2"]

#: The estimators of the between-study variance.
TAU2_METHODS: tuple[str, ...] = ("dl", "reml", "pm")

_NAMES = {"dl": "DerSimonian-Laird", "reml": "REML", "pm": "Paule-Mandel"}


@dataclass(frozen=True)
class Pooled:
    """One pooled estimate: fixed effect, or random effects with one ``tau^2`` estimator."""

    model: str
    estimate: float
    std_error: float
    conf_low: float
    conf_high: float
    statistic: float
    p_value: float
    tau2: float = 0.0
    i2: float | None = None
    df: float | None = None
    weights: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary (the weights as shares summing to one)."""
        out = {k: v for k, v in self.__dict__.items() if k != "weights"}
        out["weights"] = list(self.weights)
        return out


@dataclass(frozen=True)
class MetaAnalysis:
    """Fixed- and random-effects meta-analysis of one estimate (see the module docstring)."""

    k: int
    level: float
    q: float
    q_df: int
    q_p_value: float
    i2: float
    h2: float
    fixed: Pooled
    random: dict[str, Pooled] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary."""
        return {
            "k": self.k,
            "level": self.level,
            "q": self.q,
            "q_df": self.q_df,
            "q_p_value": self.q_p_value,
            "i2": self.i2,
            "h2": self.h2,
            "fixed": self.fixed.to_dict(),
            "random": {m: p.to_dict() for m, p in self.random.items()},
        }


def _arrays(estimates: Sequence[float], std_errors: Sequence[float]) -> tuple[np.ndarray, ...]:
    y = np.asarray(estimates, dtype=float).reshape(-1)
    s = np.asarray(std_errors, dtype=float).reshape(-1)
    if y.shape != s.shape:
        raise DesignError(f"{y.size} estimates but {s.size} standard errors", column="std_errors")
    if y.size < 2:
        raise DataError(
            f"a meta-analysis needs at least two estimates, got {y.size}",
            hint="pool the runs of two or more countries",
            column="estimates",
        )
    if not (np.isfinite(y).all() and np.isfinite(s).all() and (s > 0).all()):
        raise DataError(
            "every estimate needs a finite value and a positive, finite standard error",
            hint="estimates inferred by test inversion (no standard error) cannot be pooled "
            "by inverse variance",
            column="std_errors",
        )
    return y, s * s


def _check_method(method: str) -> None:
    if method not in TAU2_METHODS:
        raise DesignError(
            f"unknown tau2 method {method!r}",
            hint=f"choose one of {', '.join(TAU2_METHODS)}",
            column="tau2",
        )


def _q(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    w = 1.0 / (v + tau2)
    mu = float(w @ y / w.sum())
    return float(w @ (y - mu) ** 2)


def tau2(estimates: Sequence[float], std_errors: Sequence[float], method: str = "reml") -> float:
    """Return the between-study variance by ``method`` (``"dl"``, ``"reml"`` or ``"pm"``).

    Examples
    --------
    >>> round(tau2([0.1, 0.5, 0.9], [0.1, 0.1, 0.1], "dl"), 4)
    0.15
    """
    y, v = _arrays(estimates, std_errors)
    _check_method(method)
    return _tau2(y, v, method)


def _tau2(y: np.ndarray, v: np.ndarray, method: str) -> float:
    """Return tau^2 by ``method`` from checked estimates ``y`` and variances ``v``."""
    k = y.size
    w = 1.0 / v
    q = _q(y, v, 0.0)
    dl = float(max(0.0, (q - (k - 1)) / (w.sum() - (w * w).sum() / w.sum())))
    if method == "dl":
        return dl
    if method == "pm":
        return _paule_mandel(y, v)
    return float(_reml(y, v, dl))


def _paule_mandel(y: np.ndarray, v: np.ndarray) -> float:
    """Return the root of the generalised Q statistic ``Q(tau^2) = k - 1`` (0 if Q(0) <= k-1)."""
    from scipy.optimize import brentq

    target = y.size - 1
    if _q(y, v, 0.0) <= target:
        return 0.0
    upper = max(float(np.var(y, ddof=1)), float(v.max()), 1e-12)
    while _q(y, v, upper) > target:  # Q decreases in tau^2 towards 0
        upper *= 2.0
    return float(brentq(lambda t: _q(y, v, t) - target, 0.0, upper, xtol=1e-14, rtol=1e-14))


def _reml(y: np.ndarray, v: np.ndarray, start: float) -> float:
    """REML estimate of tau^2 by Fisher scoring, truncated at zero."""
    t = start
    for _ in range(500):
        w = 1.0 / (v + t)
        sw = w.sum()
        mu = float(w @ y / sw)
        # score and expected information of the restricted likelihood
        score = 0.5 * (float((w * w) @ (y - mu) ** 2) - sw + float((w * w).sum()) / sw)
        info = 0.5 * (
            float((w * w).sum()) - 2 * float((w**3).sum()) / sw + float((w * w).sum()) ** 2 / sw**2
        )
        new = max(0.0, t + score / info)
        if abs(new - t) < 1e-12 * max(1.0, t):
            return new
        t = new
    return t  # pragma: no cover - Fisher scoring converges in a few steps here


def _pooled(
    model: str,
    y: np.ndarray,
    v: np.ndarray,
    tau2_value: float,
    level: float,
    knapp_hartung: bool,
) -> Pooled:
    from scipy import stats

    w = 1.0 / (v + tau2_value)
    mu = float(w @ y / w.sum())
    var = 1.0 / float(w.sum())
    k = y.size
    df: float | None = None
    if knapp_hartung and model != "fixed":
        var = float(w @ (y - mu) ** 2) / ((k - 1) * float(w.sum()))
        df = float(k - 1)
    se = math.sqrt(var)
    stat = mu / se
    if df is None:
        crit = float(stats.norm.ppf(0.5 + level / 2))
        p = float(2 * stats.norm.sf(abs(stat)))
    else:
        crit = float(stats.t.ppf(0.5 + level / 2, df))
        p = float(2 * stats.t.sf(abs(stat), df))
    sw = float((1.0 / v).sum())
    s2 = (k - 1) * sw / (sw**2 - float(((1.0 / v) ** 2).sum()))
    return Pooled(
        model=model,
        estimate=mu,
        std_error=se,
        conf_low=mu - crit * se,
        conf_high=mu + crit * se,
        statistic=stat,
        p_value=p,
        tau2=tau2_value,
        i2=None if model == "fixed" else 100.0 * tau2_value / (tau2_value + s2),
        df=df,
        weights=tuple(float(x) for x in w / w.sum()),
    )


def meta_analysis(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    *,
    level: float = 0.95,
    methods: Sequence[str] = TAU2_METHODS,
    knapp_hartung: bool = False,
) -> MetaAnalysis:
    """Pool estimates by fixed-effect and random-effects meta-analysis.

    Parameters
    ----------
    estimates, std_errors
        One estimate and its standard error per study (two or more).
    level
        Confidence level of the intervals.
    methods
        The ``tau^2`` estimators of the random-effects estimates (:data:`TAU2_METHODS`).
    knapp_hartung
        Use the Hartung-Knapp-Sidik-Jonkman variance and t(k-1) for the random-effects
        estimates.

    Returns
    -------
    MetaAnalysis

    Examples
    --------
    >>> m = meta_analysis([0.10, 0.30, 0.20], [0.05, 0.10, 0.08])
    >>> round(m.fixed.estimate, 4), round(m.q, 3), m.q_df
    (0.1543, 3.629, 2)
    >>> round(m.random["dl"].tau2, 5)
    0.00452
    """
    from scipy import stats

    from evalkit.numerics.levels import check_level

    level = check_level(level)
    y, v = _arrays(estimates, std_errors)
    for method in methods:
        _check_method(method)
    k = y.size
    q = _q(y, v, 0.0)
    fixed = _pooled("fixed", y, v, 0.0, level, knapp_hartung=False)
    random = {
        m: _pooled(f"random ({_NAMES[m]})", y, v, _tau2(y, v, m), level, knapp_hartung)
        for m in methods
    }
    return MetaAnalysis(
        k=k,
        level=level,
        q=q,
        q_df=k - 1,
        q_p_value=float(stats.chi2.sf(q, k - 1)),
        i2=100.0 * max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
        h2=q / (k - 1),
        fixed=fixed,
        random=random,
    )
