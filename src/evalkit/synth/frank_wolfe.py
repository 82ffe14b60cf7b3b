r"""Frank-Wolfe on the simplex for the regularised synthetic-control weight problems.

The synthetic DiD weights (Arkhangelsky et al. 2021) solve, for a matrix ``A``
(``rows x n``) and a target ``b`` (``rows``),

.. math::

    \min_{x \in \Delta^n} \; \zeta^2 \lVert x \rVert^2 + \frac{1}{rows}
        \lVert A x - b \rVert^2 ,

with, when an intercept is asked for, the columns of ``[A, b]`` centred first (the
intercept is then free). The algorithm is the one the R synthdid package defines: start
from ``x0`` (uniform by default), take the Frank-Wolfe vertex of the smallest gradient
coordinate with an exact line search, and stop when one iteration lowers the objective
by no more than ``min_decrease**2`` (after at least two iterations) or after ``max_iter``
iterations. :func:`solve_weights` adds the package's two rounds: ``max_iter_pre``
iterations, then sparsification (weights at or below a quarter of the largest are set
to zero) and a second run from there.

Everything is vectorised over a leading batch axis, so the placebo replications, which
all solve problems of one shape, run as one loop with each problem stopping on its own
rule.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frank_wolfe", "solve_weights", "sparsify"]


def sparsify(x: np.ndarray) -> np.ndarray:
    """Set weights at or below a quarter of the largest to zero and renormalise (per row).

    Examples
    --------
    >>> sparsify(np.array([0.5, 0.4, 0.1])).round(4).tolist()
    [0.5556, 0.4444, 0.0]
    """
    x = np.array(x, dtype=float, copy=True)
    cut = x.max(axis=-1, keepdims=True) / 4.0
    x[x <= cut] = 0.0
    return x / x.sum(axis=-1, keepdims=True)


def frank_wolfe(
    a: np.ndarray,
    b: np.ndarray,
    zeta: float | np.ndarray,
    *,
    intercept: bool = True,
    x0: np.ndarray | None = None,
    min_decrease: float | np.ndarray = 1e-3,
    max_iter: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve the regularised simplex least-squares problem(s) by Frank-Wolfe.

    Parameters
    ----------
    a
        ``(rows, n)`` or a batch ``(B, rows, n)``.
    b
        ``(rows,)`` or ``(B, rows)``.
    zeta
        Ridge penalty scale (scalar or one per problem).
    intercept
        Centre the columns of ``[a, b]`` (over rows) first.
    x0
        Starting weights (default uniform), ``(n,)`` or ``(B, n)``.
    min_decrease
        Stop once an iteration lowers the objective by at most ``min_decrease**2``.
    max_iter
        Maximum number of iterations.

    Returns
    -------
    x, n_iter
        The weights (shape of ``x0``) and the iterations each problem took.

    Examples
    --------
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> x, it = frank_wolfe(a, np.array([0.3, 0.7, 1.0]), 1e-6, intercept=False,
    ...                     min_decrease=1e-8, max_iter=10_000)
    >>> x.round(3).tolist()
    [0.3, 0.7]
    """
    single = np.ndim(a) == 2
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if single:
        a, b = a[None], b[None]
    n_batch, rows, n = a.shape
    if intercept:
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
    if x0 is None:
        x = np.full((n_batch, n), 1.0 / n)
    else:
        x = np.array(np.broadcast_to(np.asarray(x0, dtype=float), (n_batch, n)), copy=True)
    zeta2 = np.array(np.broadcast_to(np.asarray(zeta, dtype=float) ** 2, (n_batch,)))
    tol = np.array(np.broadcast_to(np.asarray(min_decrease, dtype=float) ** 2, (n_batch,)))
    # The iteration only needs A'A, A'b and b'b: with them every step costs O(n) and the
    # scalars of the line search and objective are updated in closed form.
    gram = np.matmul(np.swapaxes(a, 1, 2), a)
    atb = np.matmul(b[:, None, :], a)[:, 0, :]
    btb = (b * b).sum(axis=1)
    eta = rows * zeta2
    if n_batch == 1:
        x1, it = _fw_single(
            gram[0],
            atb[0],
            float(btb[0]),
            x[0],
            float(zeta2[0]),
            float(eta[0]),
            float(tol[0]),
            rows,
            max_iter,
        )
        return (x1, np.array([it])) if single else (x1[None], np.array([it]))
    result, n_iter = _fw_batch(gram, atb, btb, x, zeta2, eta, tol, rows, max_iter)
    return (result[0], n_iter[:1]) if single else (result, n_iter)


_REFRESH = 128  # recompute the running scalars exactly every this many iterations


def _fw_single(
    gram: np.ndarray,
    atb: np.ndarray,
    btb: float,
    x: np.ndarray,
    zeta2: float,
    eta: float,
    tol: float,
    rows: int,
    max_iter: int,
) -> tuple[np.ndarray, int]:
    """Solve one problem: per iteration two vector updates and an argmin.

    With ``G = A'A + eta I``, ``h = G x``, ``r = x'G x`` and ``c = x'A'b``: the half
    gradient is ``h - A'b``, the objective ``(r - 2c + b'b) / rows``, and for the
    vertex ``i`` the exact line search is ``(r - c - (h_i - (A'b)_i)) /
    (G_ii - 2 h_i + r)``, clipped to [0, 1].
    """
    x = x.copy()
    geta = gram + eta * np.eye(len(x))
    gdiag = np.diagonal(geta).copy()
    prev = np.inf
    t = 0
    while t < max_iter:
        if t % _REFRESH == 0:
            h = geta @ x
            r, c = float(x @ h), float(atb @ x)
        t += 1
        i = int(np.argmin(h - atb))
        hi, ci, gi = float(h[i]), float(atb[i]), float(gdiag[i])
        num = r - c - (hi - ci)
        den = gi - 2.0 * hi + r
        step = min(1.0, max(0.0, num / den)) if den > 0 else 0.0
        s1 = 1.0 - step
        r = s1 * s1 * r + 2.0 * step * s1 * hi + step * step * gi
        c = s1 * c + step * ci
        x *= s1
        x[i] += step
        h *= s1
        h += step * geta[i]
        vals = max(r - 2.0 * c + btb, 0.0) / rows
        if t >= 2 and not prev - vals > tol:
            break
        prev = vals
    return x, t


def _fw_batch(
    gram: np.ndarray,
    atb: np.ndarray,
    btb: np.ndarray,
    x: np.ndarray,
    zeta2: np.ndarray,
    eta: np.ndarray,
    tol: np.ndarray,
    rows: int,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve a batch of problems of one shape, each stopping on its own rule."""
    n_batch, n = x.shape
    geta = gram + eta[:, None, None] * np.eye(n)
    result = x.copy()
    n_iter = np.zeros(n_batch, dtype=np.int64)
    idx = np.arange(n_batch)
    prev = np.full(n_batch, np.inf)

    def pack(keep: np.ndarray | slice) -> tuple[np.ndarray, ...]:
        g = geta[keep]
        return (
            g.reshape(-1, n),
            np.diagonal(g, axis1=1, axis2=2).ravel(),
            atb[keep],
            atb[keep].ravel(),
            btb[keep],
            tol[keep],
            np.arange(len(g)) * n,
        )

    rows_g, gdiag, atb_k, atb_flat, btb_k, tol_k, base = pack(slice(None))
    t = 0
    while t < max_iter and len(idx):
        if t % _REFRESH == 0:
            h = np.matmul(rows_g.reshape(len(idx), n, n), x[:, :, None])[:, :, 0]
            r, c = (x * h).sum(axis=1), (x * atb_k).sum(axis=1)
        t += 1
        flat = (h - atb_k).argmin(axis=1) + base
        hi = h.ravel()[flat]
        ci = atb_flat[flat]
        gi = gdiag[flat]
        num = r - c - (hi - ci)
        den = gi - 2.0 * hi + r
        step = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        np.clip(step, 0.0, 1.0, out=step)
        s1 = 1.0 - step
        r = s1 * (s1 * r + 2.0 * step * hi) + step * step * gi
        c = s1 * c + step * ci
        x *= s1[:, None]
        x.ravel()[flat] += step
        h *= s1[:, None]
        h += step[:, None] * rows_g[flat]
        vals = np.maximum(r - 2.0 * c + btb_k, 0.0) / rows
        if t >= 2:
            keep = prev - vals > tol_k
            if not keep.all():
                n_iter[idx[~keep]] = t
                result[idx[~keep]] = x[~keep]
                idx, vals, x, h, r, c = idx[keep], vals[keep], x[keep], h[keep], r[keep], c[keep]
                geta, atb, btb, tol = geta[keep], atb[keep], btb[keep], tol[keep]
                rows_g, gdiag, atb_k, atb_flat, btb_k, tol_k, base = pack(slice(None))
        prev = vals
    result[idx] = x
    n_iter[idx] = t
    return result, n_iter


def solve_weights(
    a: np.ndarray,
    b: np.ndarray,
    zeta: float | np.ndarray,
    *,
    intercept: bool = True,
    x0: np.ndarray | None = None,
    min_decrease: float | np.ndarray,
    max_iter: int = 10_000,
    max_iter_pre: int = 100,
    sparse: bool = True,
) -> np.ndarray:
    """Two-round Frank-Wolfe of the R synthdid package: short run, sparsify, full run.

    With ``sparse=False`` a single run of ``max_iter`` iterations.
    """
    if not sparse:
        return frank_wolfe(
            a, b, zeta, intercept=intercept, x0=x0, min_decrease=min_decrease, max_iter=max_iter
        )[0]
    first, _ = frank_wolfe(
        a, b, zeta, intercept=intercept, x0=x0, min_decrease=min_decrease, max_iter=max_iter_pre
    )
    x, _ = frank_wolfe(
        a,
        b,
        zeta,
        intercept=intercept,
        x0=sparsify(first),
        min_decrease=min_decrease,
        max_iter=max_iter,
    )
    return x
