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

__all__ = [
    "Prior",
    "cv_draws",
    "cv_interval",
    "cv_p_value",
    "dispersion",
    "fit_prior",
    "log_marginal",
    "posterior",
    "prior_at_cv",
    "profile_cv",
]

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


def _poisson_limit(observed: np.ndarray, expected: np.ndarray) -> float:
    """Log likelihood of the counts with one common ratio (the prior's variance -> 0)."""
    from scipy.special import gammaln

    mean = observed.sum() / expected.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(observed > 0, observed * np.log(mean * expected), 0.0)
    return float((terms - mean * expected - gammaln(observed + 1.0)).sum())


def _best_rate(a: float, observed: np.ndarray, expected: np.ndarray) -> float:
    """Return the rate ``b`` maximising the marginal likelihood at shape ``a``.

    The score in ``b``, ``M a / b - sum (a + O) / (b + E)``, falls from ``+inf`` to
    below 0, so its root is found by bracketing on ``log b``.
    """
    from scipy.optimize import brentq

    m = len(observed)

    def score(log_b: float) -> float:
        b = np.exp(log_b)
        return float(m * a / b - np.sum((a + observed) / (b + expected)))

    start = np.log(a * expected.sum() / max(observed.sum(), 1e-12))
    lo, hi = start - 1.0, start + 1.0
    while score(lo) < 0:
        lo -= 2.0
    while score(hi) > 0:
        hi += 2.0
    return float(np.exp(brentq(score, lo, hi, xtol=1e-13, rtol=1e-14)))


def profile_cv(cv: float, observed: np.ndarray, expected: np.ndarray) -> float:
    r"""Return the profile log marginal likelihood of the prior's coefficient of variation.

    At :math:`c = \tau / \mu` the shape is :math:`a = 1 / c^2`, and the likelihood is
    maximised over the rate :math:`b` (equivalently over the mean :math:`\mu = a / b`);
    ``cv = 0`` is the Poisson limit, one common ratio.

    Examples
    --------
    >>> o, e = np.array([3.0, 9.0, 20.0]), np.array([5.0, 8.0, 15.0])
    >>> # with a common ratio sum(O) / sum(E), the Poisson likelihood
    >>> from scipy import stats
    >>> poisson = stats.poisson.logpmf(o, o.sum() / e.sum() * e).sum()
    >>> bool(abs(profile_cv(0.0, o, e) - poisson) < 1e-12)
    True
    >>> bool(profile_cv(1e-3, o, e) - poisson < 1e-4)  # continuous at 0
    True
    """
    o = np.asarray(observed, float)
    e = np.asarray(expected, float)
    if cv <= 0:
        return _poisson_limit(o, e)
    a = 1.0 / cv**2
    return log_marginal(Prior(a, _best_rate(a, o, e)), o, e)


def cv_interval(
    observed: np.ndarray, expected: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    r"""Return the profile-likelihood interval of the prior's coefficient of variation.

    The values :math:`c` with :math:`2\{\ell(\hat a, \hat b) - \ell_p(c)\} \le
    \chi^2_{1}(\text{level})`, with :math:`\ell_p` from :func:`profile_cv`; the lower
    end is 0 when the Poisson limit (no variation between units) is inside. The
    likelihood treats the expected counts as known.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> e = rng.uniform(5, 200, 300)
    >>> o = rng.poisson(rng.gamma(25.0, 1 / 25.0, 300) * e).astype(float)  # cv 0.2
    >>> low, high = cv_interval(o, e)
    >>> bool(low < 0.2 < high), round(low, 2), round(high, 2)
    (True, 0.18, 0.22)
    """
    from scipy import stats
    from scipy.optimize import brentq

    o = np.asarray(observed, float)
    e = np.asarray(expected, float)
    best = fit_prior(o, e)
    c_hat = best.sd / best.mean
    top = max(log_marginal(best, o, e), _poisson_limit(o, e))
    if c_hat > 1e-3:
        top = max(top, profile_cv(c_hat, o, e))
    crit = float(stats.chi2.ppf(level, 1))

    def excess(c: float) -> float:
        return 2.0 * (top - profile_cv(c, o, e)) - crit

    small = 1e-3
    if c_hat <= small or excess(0.0) <= 0:
        low = 0.0
    else:
        low = float(brentq(excess, small, c_hat, xtol=1e-10)) if excess(small) > 0 else small
    start = max(c_hat, small)
    high = 2.0 * start
    while excess(high) < 0:
        high *= 2.0
        if high > 1e3:
            return low, float("inf")
    return low, float(brentq(excess, start, high, xtol=1e-10))


def cv_p_value(observed: np.ndarray, expected: np.ndarray) -> float:
    r"""Return the likelihood-ratio p-value of no variation between units (``cv = 0``).

    The null is on the boundary of the parameter space, so the statistic
    :math:`2\{\ell(\hat a, \hat b) - \ell_p(0)\}` is referred to an equal mixture of
    :math:`\chi^2_0` and :math:`\chi^2_1` (Self & Liang 1987): half the
    :math:`\chi^2_1` tail, and 1 when the fit is at the Poisson limit.

    Examples
    --------
    >>> o, e = np.array([10.0, 10.0, 10.0]), np.array([10.0, 10.0, 10.0])
    >>> cv_p_value(o, e)  # no variation at all
    1.0
    """
    from scipy import stats

    o = np.asarray(observed, float)
    e = np.asarray(expected, float)
    best = fit_prior(o, e)
    lr = 2.0 * (log_marginal(best, o, e) - _poisson_limit(o, e))
    return 1.0 if lr <= 1e-9 else float(0.5 * stats.chi2.sf(lr, 1))


def prior_at_cv(cv: float, observed: np.ndarray, expected: np.ndarray) -> Prior:
    """Return the prior with coefficient of variation ``cv`` and the likelihood's best mean.

    ``cv`` below ``1e-4`` is taken as ``1e-4`` (practically the Poisson limit).

    Examples
    --------
    >>> p = prior_at_cv(0.25, np.array([3.0, 9.0, 20.0]), np.array([5.0, 8.0, 15.0]))
    >>> round(p.sd / p.mean, 12)
    0.25
    """
    o = np.asarray(observed, float)
    e = np.asarray(expected, float)
    a = 1.0 / max(float(cv), 1e-4) ** 2
    return Prior(a, _best_rate(a, o, e))


def cv_draws(
    rng: np.random.Generator,
    size: int,
    observed: np.ndarray,
    expected: np.ndarray,
    grid: int = 160,
) -> np.ndarray:
    r"""Draw the prior's coefficient of variation from its normalised profile likelihood.

    The density is proportional to :math:`\exp \ell_p(c)` (:func:`profile_cv`) on
    :math:`[0, c_{\max}]`, a flat prior on :math:`c` whose mean is profiled out;
    :math:`c_{\max}` is the upper end of the 99.999% interval of :func:`cv_interval`
    (at most 10). It is evaluated at the midpoints of ``grid`` cells; a draw picks a
    cell by its probability and a uniform point within it. Integrating the
    posteriors of the ratios over these draws carries the uncertainty of the prior's
    spread into the probability that a unit is among the highest or lowest.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> e = rng.uniform(5, 200, 300)
    >>> o = rng.poisson(rng.gamma(25.0, 1 / 25.0, 300) * e).astype(float)  # cv 0.2
    >>> c = cv_draws(np.random.default_rng(2), 2000, o, e)
    >>> round(float(np.mean(c)), 2), bool(0.15 < np.quantile(c, 0.01) < 0.2)
    (0.2, True)
    """
    o = np.asarray(observed, float)
    e = np.asarray(expected, float)
    top = min(cv_interval(o, e, 0.99999)[1], 10.0)
    edges = np.linspace(0.0, top, grid + 1)
    mids = 0.5 * (edges[:-1] + edges[1:])
    loglik = np.array([profile_cv(c, o, e) for c in mids])
    weight = np.exp(loglik - loglik.max())
    cell = rng.choice(grid, size=size, p=weight / weight.sum())
    return edges[cell] + rng.random(size) * (edges[1] - edges[0])


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
