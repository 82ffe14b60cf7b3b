from __future__ import annotations

import numpy as np
import pytest

from evalkit.core.within import WithinTransform
from evalkit.errors import ConvergenceError


def _dense_residual(factors, x, w=None):
    cols = [np.eye(f.max() + 1)[f] for f in factors]
    d = np.column_stack(cols)
    sw = np.ones(len(x)) if w is None else np.sqrt(w)
    beta = np.linalg.lstsq(d * sw[:, None], x * sw, rcond=None)[0]
    return x - d @ beta


def test_closed_form_used_only_for_complete_unweighted_grid():
    u = np.repeat(np.arange(4), 3)
    t = np.tile(np.arange(3), 4)
    assert WithinTransform((u, t)).closed_form
    assert not WithinTransform((u, t), weights=np.ones(12)).closed_form
    assert not WithinTransform((u[:-1], t[:-1])).closed_form


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("three", [False, True])
def test_alternating_projections_equal_dense_projection(weighted, three):
    rng = np.random.default_rng(0)
    n = 300
    factors = [rng.integers(0, 25, n), rng.integers(0, 8, n)]
    if three:
        factors.append(rng.integers(0, 5, n))
    w = rng.uniform(0.2, 2, n) if weighted else None
    x = rng.normal(size=n)
    got = WithinTransform(tuple(factors), weights=w).demean(x)
    np.testing.assert_allclose(got, _dense_residual(factors, x, w), atol=1e-8)


def test_redundancies_count_connected_components():
    # two disconnected blocks: units 0-1 only in periods 0-1, units 2-3 only in 2-3
    u = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    t = np.array([0, 1, 0, 1, 2, 3, 2, 3])
    wt = WithinTransform((u, t))
    assert wt.redundant() == 2
    assert wt.n_absorbed() == 4 + 4 - 2


def test_demean_does_not_modify_input_and_handles_matrices():
    rng = np.random.default_rng(1)
    u = rng.integers(0, 10, 80)
    t = rng.integers(0, 6, 80)
    x = rng.normal(size=(80, 3))
    before = x.copy()
    out = WithinTransform((u, t)).demean(x)
    np.testing.assert_array_equal(x, before)
    for j in range(3):
        np.testing.assert_allclose(out[:, j], WithinTransform((u, t)).demean(x[:, j]))


def test_non_convergence_raises_convergence_error():
    rng = np.random.default_rng(2)
    u = rng.integers(0, 50, 400)
    t = rng.integers(0, 40, 400)
    with pytest.raises(ConvergenceError, match="max_iter"):
        WithinTransform((u, t), max_iter=1, tol=1e-300).demean(rng.normal(size=400))
