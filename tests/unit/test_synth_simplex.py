"""The exact simplex least-squares solver and the nested V optimisation, on matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime, minimize

from evalkit.synth.adh import _Objective, regression_start, solve_adh, weights_given_v
from evalkit.synth.simplex import simplex_lstsq


def _slsqp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The slow reference: scipy's SLSQP on the same problem, projected onto the simplex."""
    n = a.shape[1]
    res = minimize(
        lambda w: np.sum((a @ w - b) ** 2),
        np.full(n, 1.0 / n),
        jac=lambda w: 2 * a.T @ (a @ w - b),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


@pytest.mark.parametrize("seed", range(20))
def test_active_set_matches_slsqp(seed):
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 15)), int(rng.integers(1, 40))
    a = rng.normal(size=(k, n))
    if seed % 3 == 0:  # target inside the hull (up to noise): many donors share weight
        b = a @ rng.dirichlet(np.ones(n)) + 0.01 * rng.normal(size=k)
    else:
        b = rng.normal(size=k) * rng.uniform(0.1, 3.0)
    sol = simplex_lstsq(a, b)
    ref = _slsqp(a, b)
    loss_ref = float(np.sum((a @ ref - b) ** 2))
    assert sol.weights.min() >= 0.0
    assert sol.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # never worse than SLSQP (which stops at a tolerance), and optimal by KKT
    assert sol.loss <= loss_ref * (1 + 1e-9) + 1e-12
    assert sol.kkt_violation < 1e-9
    # with a unique solution the weights agree too
    if np.linalg.matrix_rank(a[:, sol.weights > 0]) == (sol.weights > 0).sum():
        assert np.abs(sol.weights - ref).max() < 1e-4


def test_warm_start_gives_the_same_solution():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(6, 12)), rng.normal(size=6)
    cold = simplex_lstsq(a, b)
    for start in ([0, 1, 2, 3], [11], list(range(12))):
        warm = simplex_lstsq(a, b, start=np.array(start))
        assert warm.loss == pytest.approx(cold.loss, rel=1e-12, abs=1e-14)


def test_exact_interior_point_and_vertex():
    a = np.eye(3)
    # the target is a vertex: all weight on it
    assert simplex_lstsq(a, np.array([0.0, 1.0, 0.0])).weights.tolist() == [0.0, 1.0, 0.0]
    # outside the hull: the projection onto the simplex
    sol = simplex_lstsq(a, np.array([1.0, 1.0, -1.0]))
    np.testing.assert_allclose(sol.weights, [0.5, 0.5, 0.0], atol=1e-14)


def test_v_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    x0, z0 = rng.normal(size=(5, 9)), rng.normal(size=(8, 9))
    x1, z1 = rng.normal(size=5), rng.normal(size=8)
    obj = _Objective(x1, x0, z1, z0)
    for _ in range(5):
        u = rng.normal(size=5)
        _, grad = obj.softmax_param(u)
        numeric = approx_fprime(u, lambda p: obj.softmax_param(p)[0], 1e-7)
        np.testing.assert_allclose(grad, numeric, atol=1e-5 * max(1.0, np.abs(grad).max()))


def test_nested_v_is_no_worse_than_its_starts_and_respects_the_bound():
    rng = np.random.default_rng(11)
    x0, z0 = rng.normal(size=(4, 10)), rng.normal(size=(12, 10))
    x1, z1 = rng.normal(size=4), rng.normal(size=12)
    sol = solve_adh(x1, x0, z1, z0, random_starts=3, rng=np.random.default_rng(0))
    assert sol.mspe >= sol.bound - 1e-12
    assert sol.mspe <= min(sol.starts.values()) + 1e-15
    for v0 in (np.full(4, 0.25), regression_start(x1, x0, z1, z0)):
        w = weights_given_v(x1, x0, v0)
        assert sol.mspe <= np.mean((z1 - z0 @ w) ** 2) + 1e-12
    assert sol.v.sum() == pytest.approx(1.0) and sol.weights.sum() == pytest.approx(1.0)


def test_custom_v_solves_only_the_inner_problem():
    rng = np.random.default_rng(5)
    x0, z0 = rng.normal(size=(3, 6)), rng.normal(size=(4, 6))
    x1, z1 = rng.normal(size=3), rng.normal(size=4)
    v = np.array([2.0, 1.0, 1.0])
    sol = solve_adh(x1, x0, z1, z0, custom_v=v)
    assert sol.start == "custom" and sol.evaluations == 1
    np.testing.assert_allclose(sol.v, v / 4)
    root = np.sqrt(sol.v)
    np.testing.assert_allclose(
        sol.weights, simplex_lstsq(root[:, None] * x0, root * x1).weights, atol=1e-12
    )
