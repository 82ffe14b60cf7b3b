"""Analytic sandwich covariance estimators for linear models with absorbed effects.

All functions work on the *transformed* problem: the regressors with the fixed effects
projected out and every row multiplied by the square root of its weight, so that the
weighted model is an ordinary least-squares problem. ``bread`` is ``(X'X)^{-1}`` of
that problem.

Conventions (chosen to match Stata and fixest, the references the tests compare with):

- ``iid``: ``s^2 (X'X)^{-1}`` with ``s^2 = e'e / (N - K)``, where K counts the
  regressors and every free fixed-effect parameter; t reference with N - K df.
- ``hetero``: HC1, ``N / (N - K)`` times the White sandwich; t with N - K df.
- ``cluster`` (CR1): ``G/(G-1) (N-1)/(N-K)`` times the cluster sandwich, where K leaves
  out fixed effects nested within the clusters; t with G - 1 df.
- ``cr2``: Bell and McCaffrey (2002) bias-reduced linearization with the
  Satterthwaite degrees of freedom of Pustejovsky and Tipton (2018), computed exactly
  for the full dummy-variable regression (see :func:`cr2_nested`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from evalkit.numerics.within import group_sums

__all__ = ["Sandwich", "cluster_scores", "cr1", "cr2_nested", "hc1", "iid"]


@dataclass(frozen=True)
class Sandwich:
    """A covariance matrix with the degrees of freedom of its reference t distribution.

    ``df`` is an array with one value per coefficient (``inf`` for a normal reference).
    """

    vcov: np.ndarray
    df: np.ndarray


def _sym(a: np.ndarray) -> np.ndarray:
    return (a + a.T) / 2.0


def iid(bread: np.ndarray, resid: np.ndarray, n: int, k_total: int) -> Sandwich:
    """Classical covariance ``s^2 (X'X)^{-1}``.

    Examples
    --------
    >>> iid(np.eye(1), np.array([1.0, -1.0, 1.0, -1.0]), 4, 2).vcov
    array([[2.]])
    """
    dof = n - k_total
    s2 = float(resid @ resid) / dof
    k = bread.shape[0]
    return Sandwich(_sym(s2 * bread), np.full(k, float(dof)))


def hc1(bread: np.ndarray, x: np.ndarray, resid: np.ndarray, n: int, k_total: int) -> Sandwich:
    """Heteroskedasticity-robust HC1 covariance.

    Examples
    --------
    >>> x = np.array([[1.0], [2.0]]); e = np.array([1.0, -1.0])
    >>> hc1(np.linalg.inv(x.T @ x), x, e, 2, 1).vcov.round(4)
    array([[0.4]])
    """
    xe = x * resid[:, None]
    meat = xe.T @ xe
    dof = n - k_total
    return Sandwich(_sym(n / dof * bread @ meat @ bread), np.full(bread.shape[0], float(dof)))


def cluster_scores(
    x: np.ndarray, resid: np.ndarray, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """Per-cluster sums of the scores ``x_i e_i`` as a (G, k) array."""
    return group_sums(codes, x * resid[:, None], n_groups)


def cr1(
    bread: np.ndarray,
    x: np.ndarray,
    resid: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    n: int,
    k_small: int,
) -> Sandwich:
    """CR1 cluster-robust covariance with the Stata/fixest small-sample factor.

    ``k_small`` is the parameter count in ``(N - 1)/(N - K)``: the regressors plus the
    fixed effects that are not nested within the clusters.
    """
    scores = cluster_scores(x, resid, codes, n_groups)
    meat = scores.T @ scores
    factor = n_groups / (n_groups - 1) * (n - 1) / (n - k_small)
    return Sandwich(
        _sym(factor * bread @ meat @ bread), np.full(bread.shape[0], float(n_groups - 1))
    )


def _chunks(
    order: np.ndarray, starts: np.ndarray, sizes: np.ndarray, budget: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield runs of whole clusters of equal size, limited to ``budget`` rows each."""
    i = 0
    g = len(sizes)
    while i < g:
        size = sizes[i]
        j = i
        rows = 0
        while j < g and sizes[j] == size and (rows + size <= budget or j == i):
            rows += size
            j += 1
        idx = np.concatenate([order[starts[c] : starts[c] + sizes[c]] for c in range(i, j)])
        yield size, j - i, idx
        i = j


def cr2_nested(
    bread: np.ndarray,
    x: np.ndarray,
    resid: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    design_rows: Callable[[np.ndarray], np.ndarray],
    budget: int = 250_000,
) -> Sandwich:
    """Bell-McCaffrey CR2 covariance and Satterthwaite df for an absorbed regression.

    The full regression has regressors ``X``, fixed effects ``F`` that are nested within
    the clusters (e.g. unit effects, clustered by unit or by a coarser group) and other
    fixed effects ``D`` (e.g. period effects, kept as dummies). Write ``U`` for
    ``[X, D]`` with ``F`` projected out. The full model's cluster block of
    ``I - H`` is then ``Q_g - U_g (U'U)^{-1} U_g'`` with ``Q_g`` the projector off ``F``
    within the cluster, so its (Moore-Penrose) inverse square root is
    ``A_g = Q_g + V_g diag((1 - s^2)^{-1/2} - 1) V_g'`` where ``V_g diag(s) W'`` is the
    thin SVD of ``U_g (U'U)^{-1/2}``. This reproduces CR2 for the full dummy-variable
    regression exactly, without forming it.

    Parameters
    ----------
    bread
        ``(X~'X~)^{-1}`` with ``X~`` the regressors with all fixed effects projected out.
    x, resid
        ``X~`` and the residuals (rows scaled by the square root of the weights).
    codes, n_groups
        Cluster codes.
    design_rows
        ``design_rows(idx)`` returns the rows ``idx`` of ``U`` (whole clusters).
    budget
        Rows per block of clusters processed at once (bounds the memory).
    """
    order = np.argsort(codes, kind="stable")
    sizes_by_code = np.bincount(codes, minlength=n_groups)
    starts_by_code = np.concatenate(([0], np.cumsum(sizes_by_code)[:-1]))
    by_size = np.argsort(sizes_by_code, kind="stable")
    sizes = sizes_by_code[by_size]
    starts = starts_by_code[by_size]
    keep = sizes > 0
    sizes, starts = sizes[keep], starts[keep]

    # pass 1: U'U from blocks of whole clusters
    utu = None
    for _size, _count, idx in _chunks(order, starts, sizes, budget):
        u = design_rows(idx)
        utu = u.T @ u if utu is None else utu + u.T @ u
    assert utu is not None  # at least one cluster
    vals, vecs = np.linalg.eigh(_sym(utu))
    tiny = vals.max() * 1e-12
    inv = np.where(vals > tiny, 1.0 / np.where(vals > tiny, vals, 1.0), 0.0)
    m_half = (vecs * np.sqrt(inv)) @ vecs.T
    m_full = (vecs * inv) @ vecs.T

    k = bread.shape[0]
    p = utu.shape[0]
    n_clusters = len(sizes)
    scores = np.empty((n_clusters, k))
    d = np.empty((n_clusters, k))
    r = np.empty((n_clusters, k, p))
    pos = 0
    for size, count, idx in _chunks(order, starts, sizes, budget):
        u = design_rows(idx).reshape(count, size, p)
        xg = x[idx].reshape(count, size, k)
        eg = resid[idx].reshape(count, size)
        w = u @ m_half
        # left singular vectors of W_g from the eigen-decomposition of its small Gram
        # matrix: s^2 are the eigenvalues, V_g = W_g E / s (directions with s = 0 do not
        # enter A_g, whose correction f(s) vanishes there)
        s2, evec = np.linalg.eigh(w.transpose(0, 2, 1) @ w)
        s2 = np.clip(s2, 0.0, None)
        live = s2 > 1e-12
        scale = np.where(live, 1.0 / np.sqrt(np.where(live, s2, 1.0)), 0.0)
        vg = w @ (evec * scale[:, None, :])
        f = np.where(s2 < 1.0 - 1e-10, 1.0 / np.sqrt(np.clip(1.0 - s2, 1e-300, None)) - 1.0, -1.0)
        f = np.where(live, f, 0.0)

        def apply_a(v: np.ndarray, vg: np.ndarray = vg, f: np.ndarray = f) -> np.ndarray:
            # v: (count, size, m) already in the range of Q_g
            return v + vg @ (f[:, :, None] * (vg.transpose(0, 2, 1) @ v))

        ae = apply_a(eg[:, :, None])[:, :, 0]
        scores[pos : pos + count] = np.einsum("gik,gi->gk", xg, ae)
        pg = apply_a(xg @ bread)  # (count, size, k): A_g X_g (X'X)^{-1} e_j for each j
        d[pos : pos + count] = np.einsum("gik,gik->gk", pg, pg)
        r[pos : pos + count] = np.einsum("gip,gik->gkp", u, pg)
        pos += count

    meat = scores.T @ scores
    vcov = _sym(bread @ meat @ bread)
    df = np.empty(k)
    for j in range(k):
        dj = d[:, j]
        rj = r[:, j, :]
        rm = rj @ m_full
        rmr = np.einsum("gp,gp->g", rm, rj)
        trace = dj.sum() - rmr.sum()
        mrr = m_full @ (rj.T @ rj)
        frob = float(dj @ dj) - 2.0 * float(dj @ rmr) + float(np.trace(mrr @ mrr))
        df[j] = trace**2 / frob if frob > 0 else np.nan
    return Sandwich(vcov, df)
