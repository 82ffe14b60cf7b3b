r"""Nonparametric empirical Bayes for Poisson ratios: the Kiefer-Wolfowitz NPMLE.

Municipality :math:`m` has effective counts :math:`O_m` observed and :math:`E_m`
expected (both divided by the overdispersion factor, as in
:mod:`evalkit.selection.shrinkage`), and

.. math::

    \theta_m \sim G, \qquad O_m \mid \theta_m \sim \mathrm{Poisson}(\theta_m E_m),

with the mixing distribution :math:`G` left unrestricted. Its maximum likelihood
estimate (Kiefer & Wolfowitz 1956) is found on a fine grid :math:`t_1 < \dots < t_J`
(equally spaced over the range of the raw ratios :math:`O_m / E_m`, where the
support of the NPMLE lies): with :math:`L_{mj} = f(O_m \mid t_j E_m)` and masses
:math:`w_j \ge 0`,

.. math::

    \hat w = \arg\max_{w \ge 0,\ \sum_j w_j = 1}\ \sum_m v_m \log \sum_j L_{mj} w_j,

a convex problem (Koenker & Mizera 2014, "Convex optimization, shape constraints,
compound decisions, and empirical Bayes rules", JASA 109). The weights :math:`v_m`
sum to 1 (equal by default). Dropping the equality and adding :math:`\sum_j w_j` to
the objective gives the same solution (at the optimum the masses sum to 1), so
:func:`fit_npmle` solves

.. math::

    \min_{w \ge 0}\ -\sum_m v_m \log (L w)_m + \sum_j w_j

by a primal-dual interior-point method (Newton steps on the perturbed optimality
conditions, the :math:`J \times J` system reduced to an :math:`M \times M` one through
the Woodbury identity because :math:`L` has only :math:`M` rows). The solution is
characterised by the directional derivative (the Kiefer-Wolfowitz / Lindsay
condition)

.. math::

    D(t_j) = \sum_m v_m \frac{L_{mj}}{(L \hat w)_m} - 1 \le 0 \quad \text{for every } j,

with equality where :math:`\hat w_j > 0` (:func:`directional_derivative`). The
posterior of :math:`\theta_m` is discrete on the grid,
:math:`P(\theta_m = t_j \mid O_m) = L_{mj} \hat w_j / (L \hat w)_m`.

The probability that a unit is among the ``k`` highest (lowest) true ratios, with the
units' posteriors independent, is computed exactly by :func:`rank_probabilities` (ties
at a shared grid point are broken uniformly at random). Gu & Koenker (2023,
"Invidious comparisons: ranking and selection as compound decisions",
Econometrica 91) treat this selection problem with the NPMLE. A unimodal parametric
prior (the gamma of :mod:`~evalkit.selection.shrinkage`) fitted to a bulk of ordinary
units and a few clear outliers is pulled wide by the outliers and shrinks them into
the bulk; the NPMLE can put separate mass on the outliers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MixingPrior",
    "directional_derivative",
    "fit_npmle",
    "grid_for",
    "likelihood_matrix",
    "log_likelihood",
    "rank_probabilities",
    "sample_posterior",
]


@dataclass(frozen=True, eq=False)
class MixingPrior:
    """A discrete prior of the ratios: masses ``mass`` at the points ``support``.

    Examples
    --------
    >>> g = MixingPrior(np.array([0.5, 1.0, 2.0]), np.array([0.25, 0.5, 0.25]))
    >>> g.mean, round(g.sd, 4)
    (1.125, 0.5449)
    """

    support: np.ndarray
    mass: np.ndarray
    #: Solver record: iterations, the largest directional derivative, duality gap.
    info: dict[str, float] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        """Prior mean of the ratios."""
        return float(self.mass @ self.support)

    @property
    def sd(self) -> float:
        """Prior standard deviation of the ratios."""
        return float(np.sqrt(max(self.mass @ self.support**2 - self.mean**2, 0.0)))

    def posterior(self, observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Return each unit's posterior masses on ``support`` (units x points).

        Examples
        --------
        >>> g = MixingPrior(np.array([1.0, 2.0]), np.array([0.5, 0.5]))
        >>> post = g.posterior(np.array([4.0]), np.array([2.0]))
        >>> # Poisson(4 | 2) : Poisson(4 | 4) = 2^4 e^-2 : 4^4 e^-4
        >>> bool(abs(post[0, 1] / post[0, 0] - 16 * np.exp(-2)) < 1e-12)
        True
        >>> g.posterior(np.array([5000.0]), np.array([1000.0])).round(12).tolist()  # far away
        [[0.0, 1.0]]
        """
        on = self.mass > 0
        logl = _log_likelihood_matrix(observed, expected, self.support[on])
        # each row scaled by its largest entry on the support: no underflow to 0 / 0 for a
        # unit far from every point of mass
        lik = np.exp(logl - logl.max(axis=1, keepdims=True)) * self.mass[on]
        post = np.zeros((lik.shape[0], len(self.mass)))
        post[:, on] = lik / lik.sum(axis=1, keepdims=True)
        return post

    def scaled(self, factor: float) -> MixingPrior:
        """Return the prior of ``factor`` times the ratios."""
        return MixingPrior(self.support * factor, self.mass, self.info)


def grid_for(observed: np.ndarray, expected: np.ndarray, size: int = 300) -> np.ndarray:
    """Return ``size`` equally spaced points over the range of the raw ratios.

    The NPMLE of a Poisson mixture puts its mass inside ``[min O/E, max O/E]`` (each
    unit's likelihood falls away from its own raw ratio), so that range loses nothing.

    Examples
    --------
    >>> grid_for(np.array([2.0, 9.0]), np.array([4.0, 6.0]), size=3)
    array([0.5, 1. , 1.5])
    """
    ratio = np.asarray(observed, float) / np.asarray(expected, float)
    low, high = float(ratio.min()), float(ratio.max())
    if high - low < 1e-9:
        high = low + 1e-6
    return np.linspace(low, high, size)


def likelihood_matrix(
    observed: np.ndarray, expected: np.ndarray, support: np.ndarray
) -> np.ndarray:
    r"""Return :math:`f(O_m \mid t_j E_m)` for units x points (Poisson, any real ``O >= 0``).

    Examples
    --------
    >>> from scipy import stats
    >>> lik = likelihood_matrix(np.array([3.0]), np.array([2.0]), np.array([0.0, 1.5]))
    >>> float(lik[0, 0]), bool(abs(lik[0, 1] - stats.poisson.pmf(3, 3.0)) < 1e-14)
    (0.0, True)
    """
    return np.exp(_log_likelihood_matrix(observed, expected, support))


def _log_likelihood_matrix(
    observed: np.ndarray, expected: np.ndarray, support: np.ndarray
) -> np.ndarray:
    from scipy.special import gammaln, xlogy

    o = np.asarray(observed, float)[:, None]
    mu = np.asarray(expected, float)[:, None] * np.asarray(support, float)[None, :]
    return xlogy(o, mu) - mu - gammaln(o + 1.0)


def log_likelihood(
    prior: MixingPrior,
    observed: np.ndarray,
    expected: np.ndarray,
    weights: np.ndarray | None = None,
) -> float:
    """Return the (weighted) marginal log likelihood ``sum_m v_m log sum_j L_mj w_j``.

    With ``weights`` None every unit has weight 1 (the ordinary log likelihood).

    Examples
    --------
    >>> from scipy import stats
    >>> g = MixingPrior(np.array([1.0]), np.array([1.0]))
    >>> value = log_likelihood(g, np.array([2.0, 0.0]), np.array([3.0, 1.0]))
    >>> bool(abs(value - stats.poisson.logpmf([2, 0], [3.0, 1.0]).sum()) < 1e-12)
    True
    """
    logl = _log_likelihood_matrix(observed, expected, prior.support)
    top = logl.max(axis=1, keepdims=True)
    mix = np.log(np.exp(logl - top) @ prior.mass) + top[:, 0]
    v = np.ones(len(mix)) if weights is None else np.asarray(weights, float)
    return float(v @ mix)


def directional_derivative(
    prior: MixingPrior,
    observed: np.ndarray,
    expected: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return :math:`D(t_j) = \sum_m v_m L_{mj} / (L w)_m - 1` at every support point.

    ``weights`` are normalised to sum to 1. At the NPMLE on this grid :math:`D \le 0`
    everywhere and :math:`D = 0` where the prior has mass.

    Examples
    --------
    >>> o, e = np.array([1.0, 5.0, 9.0, 20.0]), np.array([4.0, 5.0, 6.0, 10.0])
    >>> g = fit_npmle(o, e, size=60)
    >>> d = directional_derivative(g, o, e)
    >>> bool(d.max() < 1e-6), bool(np.abs(d[g.mass > 1e-6]).max() < 1e-6)
    (True, True)
    """
    logl = _log_likelihood_matrix(observed, expected, prior.support)
    lik = np.exp(logl - logl.max(axis=1, keepdims=True))  # a row's scale cancels in D
    s = lik @ prior.mass
    v = _unit_weights(weights, len(s))
    return (v / s) @ lik - 1.0


def _unit_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    v = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, float)
    return v / v.sum()


def fit_npmle(
    observed: np.ndarray,
    expected: np.ndarray,
    *,
    support: np.ndarray | None = None,
    size: int = 300,
    weights: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> MixingPrior:
    """Fit the Kiefer-Wolfowitz NPMLE of the mixing distribution on a grid.

    Parameters
    ----------
    observed, expected
        Effective observed and expected counts per unit (``expected > 0``).
    support
        The grid; by default :func:`grid_for` with ``size`` points.
    weights
        Weights of the units (normalised to sum to 1; a Bayesian bootstrap passes
        Dirichlet weights); None: equal.
    tol
        Stop when the duality gap (mean complementarity) is below ``tol`` and the
        largest violation of the optimality conditions below ``max(tol, 1e-8)``.

    Returns
    -------
    MixingPrior
        Masses summing to 1 (masses below ``1e-6``, what the interior point leaves off
        the support, set to 0). ``info`` records the iterations, the duality gap and
        the largest directional derivative after that.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = rng.uniform(50, 400, 200)
    >>> theta = np.where(rng.random(200) < 0.8, 1.0, 2.0)  # two groups
    >>> g = fit_npmle(rng.poisson(theta * e).astype(float), e)
    >>> near_two = g.mass[np.abs(g.support - 2.0) < 0.15].sum()
    >>> round(float(g.mass.sum()), 9), bool(abs(near_two - 0.2) < 0.06)
    (1.0, True)
    """
    o = np.asarray(observed, float)
    e = np.asarray(expected, float)
    t = grid_for(o, e, size) if support is None else np.asarray(support, float)
    logl = _log_likelihood_matrix(o, e, t)
    # each row scaled by its largest entry: the optimum is unchanged, the numbers tame
    lik = np.exp(logl - logl.max(axis=1, keepdims=True))
    v = _unit_weights(weights, len(o))
    w, info = _interior_point(lik, v, tol, max_iter)
    w[w < 1e-6] = 0.0  # what the interior point leaves off the support
    w /= w.sum()
    prior = MixingPrior(t, w, info)
    d = directional_derivative(prior, o, e, v)
    info["max_derivative"] = float(d.max())
    return prior


def _interior_point(
    lik: np.ndarray, v: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, dict[str, float]]:
    """Primal-dual interior point for ``min_{w>=0} -v' log(L w) + 1'w``.

    Optimality: gradient ``g = 1 - L'(v / Lw)`` equals the multipliers ``z >= 0`` with
    ``w * z = 0``. Each step solves ``(H + Z/W) dw = -g + sigma mu / w`` with
    ``H = L' diag(v / s^2) L`` (``s = Lw``) by Woodbury on the ``M x M`` system, and
    moves ``w`` and ``z`` a fraction 0.99 of the way to the boundary.
    """
    n, m = lik.shape
    w = np.full(m, 1.0 / m)
    z = np.ones(m)
    it = 0
    gap = residual = np.inf
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        s = lik @ w
        g = 1.0 - lik.T @ (v / s)
        gap = float(w @ z / m)
        residual = float(np.abs(g - z).max())
        # the residual (the violation of D <= 0, D = 0 on the support) stalls near 1e-10
        # in floating point while the gap keeps falling: stop at 1e-8 or a gap of 1e-15
        if gap < tol and (residual < max(tol, 1e-8) or gap < 1e-15):
            break
        mu = 0.1 * gap
        d = z / w
        rhs = -g + mu / w
        a = lik * (np.sqrt(v) / s)[:, None]  # H = a' a
        ad = a / d
        inner = np.eye(n) + ad @ a.T
        try:
            dw = rhs / d - ad.T @ np.linalg.solve(inner, ad @ rhs)
        except np.linalg.LinAlgError:  # pragma: no cover - only at the precision limit
            break
        dz = (mu - w * z) / w - d * dw
        step = 1.0
        for x, dx in ((w, dw), (z, dz)):
            neg = dx < 0
            if neg.any():
                step = min(step, 0.99 * float(np.min(-x[neg] / dx[neg])))
        w = w + step * dw
        z = z + step * dz
    return w, {"iterations": float(it), "gap": gap, "residual": residual}


def rank_probabilities(posterior: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Return each unit's probability of being among the ``k`` highest and lowest.

    ``posterior`` holds independent discrete posteriors on a common increasing grid
    (units x points). For unit :math:`i` at grid point :math:`t`, let :math:`A` be the
    number of other units above :math:`t` and :math:`B` the number at :math:`t`; with
    ties broken uniformly at random, unit :math:`i` is among the ``k`` highest with
    probability :math:`\min\{(k - A)^+, B + 1\} / (B + 1)`. The joint law of
    :math:`(A, B)` (a trinomial Poisson-binomial) is built unit by unit, so the result
    is exact: no Monte Carlo. The probabilities of all units sum to ``k``.

    Examples
    --------
    >>> post = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])
    >>> above, below = rank_probabilities(post, 1)
    >>> above.tolist(), below.tolist()
    ([0.0, 0.5, 0.5], [1.0, 0.0, 0.0])
    """
    p = np.asarray(posterior, float)
    above = _top_probabilities(p, k)
    below = _top_probabilities(p[:, ::-1], k)
    return above, below


def _top_probabilities(p: np.ndarray, k: int) -> np.ndarray:
    n, _ = p.shape
    live = np.flatnonzero(p.max(axis=0) > 0)  # points some unit can take
    q = p[:, live]
    higher = np.cumsum(q[:, ::-1], axis=1)[:, ::-1] - q  # P(theta_j > t)
    higher = np.clip(higher, 0.0, 1.0)
    equal = q
    lower = np.clip(1.0 - higher - equal, 0.0, 1.0)
    n_t = len(live)
    # state[i, t, a, b]: unit i's count of others above (a < k; a >= k dropped) and tied
    state = np.zeros((n, n_t, k, n))
    state[:, :, 0, 0] = 1.0
    for j in range(n):
        hj, ej, lj = higher[j], equal[j], lower[j]
        new = state * lj[None, :, None, None]
        new[:, :, 1:, :] += state[:, :, :-1, :] * hj[None, :, None, None]
        new[:, :, :, 1:] += state[:, :, :, :-1] * ej[None, :, None, None]
        new[j] = state[j]  # unit j does not compete with itself
        state = new
    a = np.arange(k)[:, None]
    b = np.arange(n)[None, :]
    win = np.minimum(k - a, b + 1) / (b + 1)  # (k, n)
    given_t = np.einsum("itab,ab->it", state, win)
    return np.einsum("it,it->i", q, given_t)


def sample_posterior(
    rng: np.random.Generator, posterior: np.ndarray, support: np.ndarray, size: int
) -> np.ndarray:
    """Draw ``size`` values of every unit from its discrete posterior (draws x units).

    Examples
    --------
    >>> post = np.array([[1.0, 0.0], [0.25, 0.75]])
    >>> draws = sample_posterior(np.random.default_rng(0), post, np.array([1.0, 2.0]), 4000)
    >>> draws.shape, float(draws[:, 0].mean()), round(float(draws[:, 1].mean()), 1)
    ((4000, 2), 1.0, 1.8)
    """
    p = np.asarray(posterior, float)
    live = np.flatnonzero(p.max(axis=0) > 0)
    cum = np.cumsum(p[:, live], axis=1)
    cum[:, -1] = np.inf  # rounding never lets a draw fall off the end
    u = rng.random((size, p.shape[0]))
    idx = (u[:, :, None] >= cum[None, :, :]).sum(axis=2)
    return np.asarray(support, float)[live][idx]
