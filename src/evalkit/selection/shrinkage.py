r"""Empirical-Bayes shrinkage of observed/expected ratios: the gamma-Poisson model.

Municipality :math:`m` has :math:`O_m` observed events (NEET person-years) and
:math:`E_m` expected from a risk model. Persons contribute several dependent years, so
the counts are overdispersed relative to Poisson by a factor :math:`\phi` (estimated by
:func:`dispersion`); the model is written for the *effective* counts
:math:`O^*_m = O_m / \phi`, :math:`E^*_m = E_m / \phi` (a quasi-Poisson rescaling):

.. math::

    \theta_m \sim \mathrm{Gamma}(a, b), \qquad
    O^*_m \mid \theta_m \sim \mathrm{Poisson}(\theta_m E^*_m).

The prior has mean :math:`\mu = a/b` and variance :math:`\tau^2 = a/b^2`. Integrating
:math:`\theta_m` out gives the negative binomial marginal likelihood

.. math::

    \ell(a, b) = \sum_m \log\Gamma(a + O^*_m) - \log\Gamma(a) - \log\Gamma(O^*_m + 1)
    + a \log b + O^*_m \log E^*_m - (a + O^*_m)\log(b + E^*_m),

maximised over :math:`(\log\mu, \log\tau^2)` (:func:`fit_prior`). The posterior is
:math:`\theta_m \mid O_m \sim \mathrm{Gamma}(a + O^*_m,\ b + E^*_m)`, with mean

.. math::

    \hat\theta_m = \frac{a + O^*_m}{b + E^*_m}
    = w_m \frac{O_m}{E_m} + (1 - w_m)\,\mu, \qquad w_m = \frac{E^*_m}{b + E^*_m},

so a small municipality (small :math:`E^*_m`) is pulled towards the prior mean and a
large one keeps close to its raw ratio (Clayton & Kaldor 1987; Marshall 1991).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prior", "dispersion", "fit_prior", "log_marginal", "posterior"]

# Bounds of log tau^2: from no variation between municipalities (the Poisson limit) to a
# prior sd of about 12 times its mean.
_LOG_VAR_BOUNDS = (-14.0, 5.0)


@dataclass(frozen=True)
class Prior:
    """A fitted gamma prior of the ratios: shape ``a``, rate ``b``.

    Examples
    --------
    >>> p = Prior(a=4.0, b=4.0)
    >>> p.mean, p.sd
    (1.0, 0.5)
    """

    a: float
    b: float

    @property
    def mean(self) -> float:
        """Prior mean ``a / b``."""
        return float(self.a / self.b)

    @property
    def sd(self) -> float:
        """Prior standard deviation ``sqrt(a) / b``."""
        return float(np.sqrt(self.a) / self.b)

    @classmethod
    def from_moments(cls, mean: float, var: float) -> Prior:
        """Return the prior with this mean and variance."""
        return cls(a=mean**2 / var, b=mean / var)


def log_marginal(prior: Prior, observed: np.ndarray, expected: np.ndarray) -> float:
    """Return the negative binomial log marginal likelihood of effective counts.

    Examples
    --------
    >>> # negative binomial: P(3) = 4!/(1! 3!) 0.5^2 0.5^3 = 0.125, P(0) = (2/3)^2
    >>> value = log_marginal(Prior(2.0, 2.0), np.array([3.0, 0.0]), np.array([2.0, 1.0]))
    >>> bool(abs(value - (np.log(0.125) + 2 * np.log(2 / 3))) < 1e-12)
    True
    """
    from scipy.special import gammaln

    a, b = prior.a, prior.b
    o, e = np.asarray(observed, float), np.asarray(expected, float)
    terms = (
        gammaln(a + o)
        - gammaln(a)
        - gammaln(o + 1.0)
        + a * np.log(b)
        + o * np.log(e)
        - (a + o) * np.log(b + e)
    )
    return float(terms.sum())


def _moments(observed: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """Moment estimates of the prior mean and variance (a start for the likelihood)."""
    mean = observed.sum() / expected.sum()
    ratio = observed / expected
    w = expected / expected.sum()
    var = float(np.sum(w * (ratio - mean) ** 2) - mean * np.mean(1.0 / expected))
    return float(mean), max(var, np.exp(_LOG_VAR_BOUNDS[0] + 1.0))


def fit_prior(observed: np.ndarray, expected: np.ndarray) -> Prior:
    """Fit the gamma prior to effective counts by maximum marginal likelihood.

    Newton-Raphson on ``(log a, log b)`` with the analytic gradient and Hessian of
    :func:`log_marginal`, halving steps that do not increase it, from the moment
    estimates (Clayton & Kaldor 1987).

    Parameters
    ----------
    observed, expected
        Effective observed and expected counts per municipality (``expected > 0``).

    Returns
    -------
    Prior
        With the variance at its lower bound (``exp(-14)``, the Poisson limit: no
        detectable variation between municipalities) when the likelihood increases
        towards it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = rng.uniform(5, 200, 400)
    >>> theta = rng.gamma(25.0, 1 / 25.0, 400)  # prior mean 1, sd 0.2
    >>> p = fit_prior(rng.poisson(theta * e).astype(float), e)
    >>> round(p.mean, 1), round(p.sd, 1)
    (1.0, 0.2)
    """
    from scipy.special import digamma, polygamma

    o = np.asarray(observed, float)
    e = np.asarray(expected, float)
    mean0, var0 = _moments(o, e)
    floor = np.exp(_LOG_VAR_BOUNDS[0])
    limit = Prior.from_moments(max(mean0, 1e-12), floor)
    start = Prior.from_moments(max(mean0, 1e-12), min(max(var0, 1e-4), np.exp(_LOG_VAR_BOUNDS[1])))
    x = np.log([start.a, start.b])
    value = log_marginal(start, o, e)
    for _ in range(200):
        a, b = np.exp(x)
        ga = float(np.sum(digamma(a + o) - digamma(a) + np.log(b) - np.log(b + e)))
        gb = float(np.sum(a / b - (a + o) / (b + e)))
        haa = float(np.sum(polygamma(1, a + o) - polygamma(1, a)))
        hab = float(np.sum(1.0 / b - 1.0 / (b + e)))
        hbb = float(np.sum(-a / b**2 + (a + o) / (b + e) ** 2))
        grad = np.array([a * ga, b * gb])
        hess = np.array([[a * a * haa + a * ga, a * b * hab], [a * b * hab, b * b * hbb + b * gb]])
        try:
            step = -np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = grad / max(1.0, float(np.abs(grad).max()))
        if step @ grad <= 0:  # not an ascent direction: follow the gradient
            step = grad / max(1.0, float(np.abs(grad).max()))
        step = np.clip(step, -5.0, 5.0)
        t = 1.0
        while t > 1e-8:
            trial = x + t * step
            cand = Prior(*map(float, np.exp(trial)))
            new = log_marginal(cand, o, e) if np.isfinite(trial).all() else -np.inf
            if new >= value:
                break
            t /= 2.0
        else:
            break
        x, old = trial, value
        value = new
        if cand.sd**2 < floor:
            return limit if log_marginal(limit, o, e) >= value else cand
        if abs(value - old) < 1e-12 and np.abs(t * step).max() < 1e-9:
            break
    best = Prior(*map(float, np.exp(x)))
    return limit if log_marginal(limit, o, e) > log_marginal(best, o, e) else best


def posterior(
    prior: Prior, observed: np.ndarray, expected: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the posterior gamma shape and rate of each ratio given effective counts.

    Examples
    --------
    >>> shape, rate = posterior(Prior(4.0, 4.0), np.array([10.0]), np.array([5.0]))
    >>> float(shape[0] / rate[0])  # between the raw ratio 2 and the prior mean 1
    1.5555555555555556
    """
    return prior.a + np.asarray(observed, float), prior.b + np.asarray(expected, float)


def dispersion(
    person_observed: np.ndarray,
    person_expected: np.ndarray,
    unit: np.ndarray,
    n_units: int,
    weights: np.ndarray | None = None,
) -> float:
    r"""Return the overdispersion factor of person totals relative to Poisson.

    With person totals :math:`Y_i` (events over the window), their expected values
    :math:`E_i`, the unit's raw ratio :math:`r_m = O_m / E_m` and :math:`N` persons in
    :math:`M` units,

    .. math::

        \hat\phi = \frac{N}{N - M}
        \frac{\sum_i (Y_i - r_{m(i)} E_i)^2}{\sum_i r_{m(i)} E_i},

    the Pearson estimate of a quasi-Poisson model with one ratio per unit. ``weights``
    (bootstrap counts of each person) multiply each person's terms.

    Examples
    --------
    >>> y = np.array([0.0, 2.0, 1.0, 0.0]); e = np.array([0.5, 0.5, 0.6, 0.4])
    >>> round(dispersion(y, e, np.array([0, 0, 1, 1]), 2), 4)  # (2 + 0.32) / 3 * 4 / 2
    1.5467
    """
    w = np.ones_like(person_observed, float) if weights is None else np.asarray(weights, float)
    o_m = np.bincount(unit, weights=w * person_observed, minlength=n_units)
    e_m = np.bincount(unit, weights=w * person_expected, minlength=n_units)
    r = np.divide(o_m, e_m, out=np.zeros(n_units), where=e_m > 0)[unit]
    fitted = r * person_expected
    n = w.sum()
    denom = float((w * fitted).sum())
    if denom <= 0 or n <= n_units:
        return 1.0
    return float((w * (person_observed - fitted) ** 2).sum() / denom * n / (n - n_units))
