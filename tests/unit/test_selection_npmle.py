"""selection.npmle: the Kiefer-Wolfowitz NPMLE against slow, obviously correct paths.

- the interior-point solution against EM (the fixed-point iteration
  ``w <- w * L'(v / Lw)``, monotone in the likelihood) run to convergence on the same grid:
  equal log likelihood to the solver's tolerance;
- the optimality (Kiefer-Wolfowitz / Lindsay) condition: the directional derivative
  ``D(t) = sum_m v_m L_mt / (L w)_m - 1`` is <= 0 at every grid point and 0 on the support;
- weights: integer weights equal repeating the units;
- exact top/bottom-k probabilities against enumerating every joint configuration (and
  every tie-breaking order) of a small case, and against Monte Carlo on a larger one.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evalkit.selection import npmle


@pytest.fixture(scope="module")
def counts() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    e = rng.uniform(8.0, 120.0, 30)
    theta = np.where(rng.random(30) < 0.8, 1.0, 1.7) * np.exp(rng.normal(0, 0.05, 30))
    return rng.poisson(theta * e).astype(float), e


def _em(lik: np.ndarray, v: np.ndarray, iters: int) -> np.ndarray:
    """EM for the mixing masses, from uniform (slow but obviously increasing)."""
    w = np.full(lik.shape[1], 1.0 / lik.shape[1])
    for _ in range(iters):
        w = w * (lik.T @ (v / (lik @ w)))
    return w


def test_interior_point_equals_em_run_to_convergence(counts):
    o, e = counts[0][:15], counts[1][:15]
    prior = npmle.fit_npmle(o, e, size=40)
    lik = npmle.likelihood_matrix(o, e, prior.support)
    w_em = _em(lik, np.full(len(o), 1.0 / len(o)), 40_000)
    em = npmle.MixingPrior(prior.support, w_em)
    ll_ip = npmle.log_likelihood(prior, o, e)
    ll_em = npmle.log_likelihood(em, o, e)
    # EM only approaches the maximum from below; the interior point is at least as high
    assert ll_ip >= ll_em - 1e-9
    assert ll_ip - ll_em < 1e-5, (ll_ip, ll_em)
    # the same mixture: prior means and the posterior means of the units agree
    assert prior.mean == pytest.approx(em.mean, abs=1e-4)
    post_ip = prior.posterior(o, e) @ prior.support
    post_em = em.posterior(o, e) @ em.support
    np.testing.assert_allclose(post_ip, post_em, atol=2e-3)


def test_optimality_condition_holds_on_the_whole_grid(counts):
    o, e = counts
    prior = npmle.fit_npmle(o, e)
    d = npmle.directional_derivative(prior, o, e)
    # masses below 1e-6 are dropped after the solve, which leaves D slightly above 0 next
    # to the support; by concavity the mean log likelihood is then within max(D) of the
    # grid's maximum, so 1e-4 bounds the loss at 1e-4 per unit
    assert d.max() < 1e-4, d.max()
    assert np.abs(d[prior.mass > 0]).max() < 1e-4
    assert prior.mass.sum() == pytest.approx(1.0, abs=1e-12)
    assert prior.info["max_derivative"] == pytest.approx(d.max(), abs=1e-12)
    # a few points carry the mass (a discrete NPMLE), all inside the range of raw ratios
    ratio = o / e
    assert 1 <= (prior.mass > 0).sum() <= 15
    on = prior.support[prior.mass > 0]
    assert ratio.min() <= on.min() and on.max() <= ratio.max()


def test_em_cannot_improve_on_the_solution(counts):
    o, e = counts
    prior = npmle.fit_npmle(o, e, size=80)
    lik = npmle.likelihood_matrix(o, e, prior.support)
    v = np.full(len(o), 1.0 / len(o))
    w = prior.mass.copy()
    for _ in range(200):  # EM steps from the solution: the likelihood cannot rise
        w = w * (lik.T @ (v / (lik @ w)))
    moved = npmle.log_likelihood(npmle.MixingPrior(prior.support, w), o, e)
    assert moved - npmle.log_likelihood(prior, o, e) < 1e-8


def test_integer_weights_equal_repeated_units(counts):
    o, e = counts
    reps = np.arange(len(o)) % 3 + 1
    grid = npmle.grid_for(o, e, 120)
    weighted = npmle.fit_npmle(o, e, support=grid, weights=reps.astype(float))
    repeated = npmle.fit_npmle(np.repeat(o, reps), np.repeat(e, reps), support=grid)
    np.testing.assert_allclose(weighted.mass, repeated.mass, atol=1e-5)


def test_recovers_a_two_point_mixture():
    rng = np.random.default_rng(3)
    e = rng.uniform(200, 800, 150)
    theta = np.where(rng.random(150) < 0.85, 1.0, 1.6)
    prior = npmle.fit_npmle(rng.poisson(theta * e).astype(float), e)
    near = prior.mass[np.abs(prior.support - 1.6) < 0.1].sum()
    assert near == pytest.approx(np.mean(theta > 1), abs=0.04)
    assert prior.mean == pytest.approx(theta.mean(), abs=0.01)


def _enumerated(post: np.ndarray, support: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every joint configuration and every tie-breaking order, weighted by its probability."""
    n, m = post.shape
    above, below = np.zeros(n), np.zeros(n)
    orders = list(itertools.permutations(range(n)))
    for config in itertools.product(range(m), repeat=n):
        prob = np.prod([post[i, c] for i, c in enumerate(config)])
        if prob == 0:
            continue
        values = support[list(config)]
        for order in orders:  # tie-breaking by a uniformly random order of the units
            tiebreak = np.empty(n)
            tiebreak[list(order)] = np.arange(n)
            rank = np.lexsort((tiebreak, values))  # ascending by value, then order
            above[rank[-k:]] += prob / len(orders)
            below[rank[:k]] += prob / len(orders)
    return above, below


@pytest.mark.parametrize("k", [1, 2])
def test_rank_probabilities_equal_enumeration(k):
    rng = np.random.default_rng(k)
    support = np.array([0.6, 1.0, 1.4])
    post = rng.dirichlet(np.ones(3) * 0.7, size=4)
    post[0] = [0.0, 1.0, 0.0]  # a point mass: ties with others at 1.0
    above, below = npmle.rank_probabilities(post, k)
    want_above, want_below = _enumerated(post, support, k)
    np.testing.assert_allclose(above, want_above, atol=1e-12)
    np.testing.assert_allclose(below, want_below, atol=1e-12)
    assert above.sum() == pytest.approx(k, abs=1e-12)


def test_rank_probabilities_equal_monte_carlo(counts):
    o, e = counts
    prior = npmle.fit_npmle(o, e)
    post = prior.posterior(o, e)
    above, below = npmle.rank_probabilities(post, 3)
    rng = np.random.default_rng(5)
    draws = npmle.sample_posterior(rng, post, prior.support, 40_000)
    # ties broken by a random key
    rank = np.argsort(np.lexsort((rng.random(draws.shape), draws), axis=1), axis=1)
    mc_above = (rank >= draws.shape[1] - 3).mean(axis=0)
    mc_below = (rank < 3).mean(axis=0)
    # Monte Carlo standard error at most 0.0025: 5 standard errors
    np.testing.assert_allclose(above, mc_above, atol=0.0125)
    np.testing.assert_allclose(below, mc_below, atol=0.0125)


def test_posterior_and_draws_agree(counts):
    o, e = counts
    prior = npmle.fit_npmle(o, e)
    post = prior.posterior(o, e)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-12)
    draws = npmle.sample_posterior(np.random.default_rng(2), post, prior.support, 20_000)
    np.testing.assert_allclose(draws.mean(axis=0), post @ prior.support, atol=0.02)
