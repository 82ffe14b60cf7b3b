"""Distances between state sequences: optimal matching and Hamming, with their costs.

Sequences are ``(n, T)`` arrays of integer state codes (one row per person, one column
per month). Substitution costs are ``"constant"`` (2 for any change, as in TraMineR's
default) or ``"trate"``: ``2 - p(b | a) - p(a | b)`` from the observed month-to-month
transition rates, so that states people often move between are close. The indel cost
of optimal matching defaults to half the largest substitution cost (1 with constant
costs), so that substituting is never dearer than deleting and inserting.

Distances are computed on the distinct sequences only and expanded to every row.
"""

from __future__ import annotations

import numpy as np

from evalkit.errors import DesignError

__all__ = ["hamming", "optimal_matching", "substitution_costs", "transition_rates"]


def transition_rates(seqs: np.ndarray, n_states: int) -> np.ndarray:
    """Return ``(S, S)`` month-to-month transition rates ``p(to | from)`` (rows sum to 1).

    Rows of states never left (absorbing or unseen) are zero.

    Examples
    --------
    >>> transition_rates(np.array([[0, 0, 1], [1, 1, 1]]), 2).round(2).tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    counts = transition_counts(seqs, n_states)
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def transition_counts(seqs: np.ndarray, n_states: int) -> np.ndarray:
    """Return ``(S, S)`` counts of month-to-month moves from state ``a`` to ``b``."""
    seqs = np.asarray(seqs, dtype=np.int64)
    pairs = seqs[:, :-1] * n_states + seqs[:, 1:]
    return (
        np.bincount(pairs.ravel(), minlength=n_states * n_states)
        .reshape(n_states, n_states)
        .astype(float)
    )


def substitution_costs(seqs: np.ndarray, n_states: int, method: str = "constant") -> np.ndarray:
    """Return the ``(S, S)`` substitution cost matrix (zero diagonal).

    Examples
    --------
    >>> substitution_costs(np.array([[0, 1, 1]]), 2).tolist()
    [[0.0, 2.0], [2.0, 0.0]]
    >>> substitution_costs(np.array([[0, 0, 1], [1, 1, 1]]), 2, "trate").tolist()
    [[0.0, 1.5], [1.5, 0.0]]
    """
    if method == "constant":
        sub = np.full((n_states, n_states), 2.0)
    elif method == "trate":
        p = transition_rates(seqs, n_states)
        sub = 2.0 - p - p.T
    else:
        raise DesignError(
            f"substitution must be 'constant' or 'trate', got {method!r}",
            column="substitution",
        )
    np.fill_diagonal(sub, 0.0)
    return sub


def _expand(seqs: np.ndarray, kernel, *args) -> np.ndarray:  # type: ignore[no-untyped-def]
    seqs = np.ascontiguousarray(seqs, dtype=np.int64)
    uniq, inverse = np.unique(seqs, axis=0, return_inverse=True)
    d = kernel(np.ascontiguousarray(uniq), *args)
    inverse = inverse.reshape(-1)
    return d[np.ix_(inverse, inverse)]


def optimal_matching(seqs: np.ndarray, sub: np.ndarray, indel: float | None = None) -> np.ndarray:
    """Return the ``(n, n)`` optimal matching distances between the rows of ``seqs``.

    Examples
    --------
    >>> s = np.array([[0, 1, 2], [1, 2, 0]])
    >>> optimal_matching(s, substitution_costs(s, 3)).tolist()  # delete 0, insert 0
    [[0.0, 2.0], [2.0, 0.0]]
    """
    from evalkit.sequence._kernels import om_pairs

    sub = np.ascontiguousarray(sub, dtype=float)
    if indel is None:
        indel = float(sub.max()) / 2.0
    if not np.isfinite(indel) or indel <= 0:
        raise DesignError(f"indel must be a positive number, got {indel!r}", column="indel")
    return _expand(seqs, om_pairs, sub, float(indel))


def hamming(seqs: np.ndarray, sub: np.ndarray | None = None) -> np.ndarray:
    """Return the ``(n, n)`` (generalised) Hamming distances: position-wise substitution costs.

    Examples
    --------
    >>> s = np.array([[0, 1, 2], [1, 2, 0]])
    >>> hamming(s).tolist()  # three positions differ; a change costs 1 by default
    [[0.0, 3.0], [3.0, 0.0]]
    """
    from evalkit.sequence._kernels import hamming_pairs

    n_states = int(np.max(seqs)) + 1
    if sub is None:
        sub = np.ones((n_states, n_states))
        np.fill_diagonal(sub, 0.0)
    return _expand(seqs, hamming_pairs, np.ascontiguousarray(sub, dtype=float))
