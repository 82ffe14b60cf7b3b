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

Problems come in batches (a leading axis), so that the placebo replications, which all
solve problems of one shape, go to the compiled loop (numba) in one call, each problem
stopping on its own rule.
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
        x = np.empty((n_batch, n))  # a fresh C-contiguous array, updated in place
        x[:] = np.asarray(x0, dtype=float)
    zeta2 = np.array(np.broadcast_to(np.asarray(zeta, dtype=float) ** 2, (n_batch,)))
    tol = np.array(np.broadcast_to(np.asarray(min_decrease, dtype=float) ** 2, (n_batch,)))
    chunk = max(1, int(_GRAM_BYTES // (8 * n * n)))
    if n_batch > chunk:  # bound the memory of the Gram matrices
        parts = [
            frank_wolfe(
                a[j : j + chunk],
                b[j : j + chunk],
                np.sqrt(zeta2[j : j + chunk]),
                intercept=False,
                x0=x[j : j + chunk],
                min_decrease=np.sqrt(tol[j : j + chunk]),
                max_iter=max_iter,
            )
            for j in range(0, n_batch, chunk)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    # The iteration only needs A'A, A'b and b'b: with them every step costs O(n).
    geta = np.matmul(np.swapaxes(a, 1, 2), a)  # A'A, then + eta I in place
    diagonal = np.arange(n)
    geta[:, diagonal, diagonal] += (rows * zeta2)[:, None]
    atb = np.ascontiguousarray(np.matmul(b[:, None, :], a)[:, 0, :])
    btb = (b * b).sum(axis=1)
    from evalkit.synth._fw_kernel import fw_many  # compiled on first use (numba)

    n_iter = fw_many(geta, atb, btb, x, tol * rows, max_iter, _REFRESH)
    return (x[0], n_iter[:1]) if single else (x, n_iter)


_GRAM_BYTES = 64 * 2**20  # largest memory for the Gram matrices of one batch
_REFRESH = 1024  # recompute G x exactly every this many iterations (bounds rounding drift)


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
