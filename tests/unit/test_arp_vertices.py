"""The dual vertices of the ARP moment-inequality test, all subsets at once vs one by one.

``_dual_vertices`` solves every ``(k + 1)``-subset of moments in one stacked LAPACK call;
the oracle below is the obvious loop (one determinant and one solve per subset). They
must agree exactly: HonestDiD's intervals are built on these vertices.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evalkit.inference._arp import _dual_vertices


def _one_by_one(x: np.ndarray, sd: np.ndarray) -> np.ndarray | None:
    m, k = x.shape
    w = np.column_stack([sd, x])
    rhs = np.zeros(k + 1)
    rhs[0] = 1.0
    out = []
    for rows in itertools.combinations(range(m), k + 1):
        sub = w[list(rows)].T
        if abs(np.linalg.det(sub)) < 1e-12 * max(1.0, np.abs(sub).max() ** (k + 1)):
            continue
        lam = np.linalg.solve(sub, rhs)
        if np.all(lam >= -1e-12):
            full = np.zeros(m)
            full[list(rows)] = np.clip(lam, 0.0, None)
            out.append(full)
    if not out:
        return None
    return np.unique(np.round(np.array(out), 14), axis=0)


@pytest.mark.parametrize(("m", "k", "seed"), [(4, 1, 0), (6, 2, 1), (8, 3, 2), (10, 2, 3)])
def test_stacked_vertices_equal_the_loop_exactly(m, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, k))
    sd = rng.uniform(0.5, 2.0, size=m)
    fast, slow = _dual_vertices(x, sd), _one_by_one(x, sd)
    assert slow is not None
    assert fast is not None
    assert np.array_equal(fast, slow)


def test_singular_subsets_are_skipped_as_in_the_loop():
    # relative-magnitudes loadings: rows that repeat make many subsets singular
    x = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, 1.0]])
    sd = np.ones(6)
    fast, slow = _dual_vertices(x, sd), _one_by_one(x, sd)
    assert slow is not None
    assert len(slow) == 4  # of 20 subsets of three rows, most singular or infeasible
    assert fast is not None
    assert np.array_equal(fast, slow)
