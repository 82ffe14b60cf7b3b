"""The compiled Frank-Wolfe loop behind :func:`evalkit.synth.frank_wolfe.frank_wolfe`.

Kept in its own module so that numba is imported (and the loop compiled, or loaded from
numba's cache) only when a synthetic-control weight problem is first solved.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["fw_many"]


@numba.njit(cache=True)
def fw_many(
    geta: np.ndarray,
    atb: np.ndarray,
    btb: np.ndarray,
    x: np.ndarray,
    tol: np.ndarray,
    max_iter: int,
    refresh: int,
) -> np.ndarray:  # pragma: no cover - compiled; covered through frank_wolfe
    """Run Frank-Wolfe on each problem of a batch (``x`` is updated in place).

    With ``G = A'A + eta I`` (``geta``), ``h = G x``, ``r = x'h`` and ``c = x'A'b``: the
    half gradient is ``h - A'b``; ``rows`` times the objective is ``r - 2c + b'b`` (and
    ``tol`` is ``rows * min_decrease**2``); for the vertex ``i`` of the smallest half
    gradient ``g_i`` the exact line search is ``(r - c - g_i) / (G_ii - 2 h_i + r)``,
    clipped to [0, 1]. Returns the iterations each problem took.
    """
    n_batch, n = x.shape
    out = np.zeros(n_batch, dtype=np.int64)
    h = np.empty(n)
    for k in range(n_batch):
        g = geta[k]
        xk = x[k]
        ab = atb[k]
        prev = np.inf
        r = 0.0
        c = 0.0
        t = 0
        while t < max_iter:
            if t % refresh == 0:
                for i in range(n):
                    acc = 0.0
                    for j in range(n):
                        acc += g[i, j] * xk[j]
                    h[i] = acc
                r = 0.0
                c = 0.0
                for i in range(n):
                    r += xk[i] * h[i]
                    c += xk[i] * ab[i]
            t += 1
            best = 0
            low = h[0] - ab[0]
            for i in range(1, n):
                v = h[i] - ab[i]
                if v < low:
                    low = v
                    best = i
            num = r - c - low
            den = g[best, best] - 2.0 * h[best] + r
            step = 0.0
            if den > 0.0:
                step = min(1.0, max(0.0, num / den))
            s1 = 1.0 - step
            row = g[best]
            r = 0.0
            c = 0.0
            for i in range(n):
                xi = s1 * xk[i]
                if i == best:
                    xi += step
                xk[i] = xi
                hi = s1 * h[i] + step * row[i]
                h[i] = hi
                r += xi * hi
                c += xi * ab[i]
            vals = max(r - 2.0 * c + btb[k], 0.0)
            if t >= 2 and not prev - vals > tol[k]:
                break
            prev = vals
        out[k] = t
    return out
