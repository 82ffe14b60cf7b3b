"""Clustering of sequences from their distances: Ward or PAM, number of types by silhouette."""

from __future__ import annotations

import numpy as np

from evalkit.errors import DesignError

__all__ = ["cluster_sequences", "merge_small", "pam"]


def pam(d: np.ndarray, labels: np.ndarray, max_iter: int = 50) -> np.ndarray:
    """Refine a partition by k-medoids (alternating): medoid of each type, nearest medoid.

    Starts from ``labels`` (e.g. Ward's); each type's medoid is the member with the
    smallest summed distance to the others; persons move to their nearest medoid until
    nothing changes. Returns labels ``0..k-1`` (medoids are never returned).

    Examples
    --------
    >>> d = np.abs(np.subtract.outer([0., 1, 2, 10, 11], [0., 1, 2, 10, 11]))
    >>> pam(d, np.array([0, 0, 1, 1, 1])).tolist()
    [0, 0, 0, 1, 1]
    """
    labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
    k = int(labels.max()) + 1
    for _ in range(max_iter):
        medoids = np.empty(k, dtype=np.int64)
        for j in range(k):
            members = np.flatnonzero(labels == j)
            medoids[j] = members[np.argmin(d[np.ix_(members, members)].sum(axis=1))]
        new = np.argmin(d[:, medoids], axis=1)
        new[medoids] = np.arange(k)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def cluster_sequences(
    d: np.ndarray, method: str, n_types: int | None, max_types: int
) -> tuple[np.ndarray, dict[int, float]]:
    """Partition by Ward (or Ward then PAM) and pick the number of types by silhouette.

    Returns labels ``0..k-1`` and the average silhouette width of every ``k`` tried.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import silhouette_score

    if method not in ("ward", "pam"):
        raise DesignError(
            f"clustering must be 'ward' or 'pam', got {method!r}", column="clustering"
        )
    n = d.shape[0]
    tree = linkage(squareform(d, checks=False), method="ward")
    ks = [n_types] if n_types is not None else list(range(2, max_types + 1))
    scores: dict[int, float] = {}
    best: tuple[float, np.ndarray] | None = None
    for k in ks:
        if k >= n:
            break
        labels = fcluster(tree, k, criterion="maxclust") - 1
        if method == "pam":
            labels = pam(d, labels)
        if len(np.unique(labels)) < 2:
            continue
        s = float(silhouette_score(d, labels, metric="precomputed"))
        scores[k] = s
        if best is None or s > best[0]:
            best = (s, labels)
    if best is None:
        raise DesignError(
            "too few distinct sequences to form two types", column="n_types", hint="check the data"
        )
    return best[1], scores


def merge_small(d: np.ndarray, labels: np.ndarray, min_size: int) -> tuple[np.ndarray, int]:
    """Fold every type smaller than ``min_size`` into its nearest large type.

    Nearest by the average distance from the small type's members to each large type's
    members. Returns the new labels and the number of types folded in.

    Examples
    --------
    >>> d = np.abs(np.subtract.outer([0., 1, 2, 3, 9], [0., 1, 2, 3, 9]))
    >>> merge_small(d, np.array([0, 0, 0, 1, 2]), 2)
    (array([0, 0, 0, 0, 0]), 2)
    """
    labels = labels.copy()
    sizes = np.bincount(labels)
    small = [j for j in range(len(sizes)) if 0 < sizes[j] < min_size]
    large = [j for j in range(len(sizes)) if sizes[j] >= min_size]
    if not large:
        raise DesignError(
            f"every type has fewer than {min_size} persons (min_cell_size)",
            hint="use fewer types or more persons",
            column="min_cell_size",
        )
    for j in small:
        members = labels == j
        avg = [d[np.ix_(members, labels == m)].mean() for m in large]
        labels[members] = large[int(np.argmin(avg))]
    return labels, len(small)
