"""Compiled pairwise sequence distances behind :mod:`evalkit.sequence.distance`.

Kept apart so that numba is imported (and the loops compiled or loaded from its cache)
only when distances are first computed.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["hamming_pairs", "om_pairs"]


@numba.njit(cache=True)
def om_pairs(
    seqs: np.ndarray, sub: np.ndarray, indel: float
) -> np.ndarray:  # pragma: no cover - compiled; covered through optimal_matching
    """Optimal matching distance of every pair of rows of ``seqs`` (state codes).

    Edit distance by dynamic programming: ``D[i, j]`` is the cheapest way to turn the
    first ``i`` states of one sequence into the first ``j`` of the other by insertions
    and deletions (``indel`` each) and substitutions (``sub[a, b]``); two rows of the
    table are kept.
    """
    n, t = seqs.shape
    out = np.zeros((n, n))
    prev = np.empty(t + 1)
    cur = np.empty(t + 1)
    for a in range(n):
        sa = seqs[a]
        for b in range(a + 1, n):
            sb = seqs[b]
            for j in range(t + 1):
                prev[j] = j * indel
            for i in range(1, t + 1):
                cur[0] = i * indel
                si = sa[i - 1]
                for j in range(1, t + 1):
                    best = prev[j - 1] + sub[si, sb[j - 1]]
                    alt = prev[j] + indel
                    if alt < best:
                        best = alt
                    alt = cur[j - 1] + indel
                    if alt < best:
                        best = alt
                    cur[j] = best
                for j in range(t + 1):
                    prev[j] = cur[j]
            out[a, b] = prev[t]
            out[b, a] = prev[t]
    return out


@numba.njit(cache=True)
def hamming_pairs(
    seqs: np.ndarray, sub: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled; covered through hamming
    """Sum over positions of ``sub[a_t, b_t]`` for every pair of rows of ``seqs``."""
    n, t = seqs.shape
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(a + 1, n):
            s = 0.0
            for k in range(t):
                s += sub[seqs[a, k], seqs[b, k]]
            out[a, b] = s
            out[b, a] = s
    return out
