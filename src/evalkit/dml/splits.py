"""Cross-fitting sample splits drawn from a numpy Generator (no global random state).

DoubleML draws its folds with scikit-learn's ``KFold`` on the global NumPy state; evalkit
draws them here from ``numpy.random.default_rng(seed)`` and passes them to DoubleML with
``set_sample_splitting``, so a fit is reproducible from its seed alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["fold_splits"]

Split = tuple[np.ndarray, np.ndarray]


def _partition(n: int, n_folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    perm = rng.permutation(n)
    return [np.sort(part) for part in np.array_split(perm, n_folds)]


def fold_splits(
    n: int,
    n_folds: int,
    n_rep: int,
    seed: int,
    clusters: Sequence[np.ndarray] | None = None,
) -> tuple[list[list[Split]], list[list[tuple[list[np.ndarray], list[np.ndarray]]]] | None]:
    """Return cross-fitting splits for ``n_rep`` repetitions of ``n_folds`` folds.

    Parameters
    ----------
    n
        Number of observations.
    n_folds, n_rep
        Folds per repetition and repetitions.
    seed
        Seed of the Generator that permutes observations (or clusters).
    clusters
        One array of cluster labels per clustering dimension (one- or two-way). Folds
        then split the clusters of each dimension, and each fold of the cartesian
        product holds the observations whose clusters are all in it; training sets hold
        the observations sharing no cluster with the test fold (DoubleML's multiway
        cross-fitting, Chiang et al. 2022).

    Returns
    -------
    tuple
        ``(all_smpls, all_smpls_cluster)`` in the format of DoubleML's
        ``set_sample_splitting``; ``all_smpls_cluster`` is None without clusters.

    Examples
    --------
    >>> smpls, _ = fold_splits(10, 2, 1, seed=3)
    >>> sorted(np.concatenate([test for _, test in smpls[0]]).tolist()) == list(range(10))
    True
    """
    rng = np.random.default_rng(int(seed))
    index = np.arange(n)
    all_smpls: list[list[Split]] = []
    if not clusters:
        for _ in range(n_rep):
            tests = _partition(n, n_folds, rng)
            all_smpls.append([(np.setdiff1d(index, t, assume_unique=True), t) for t in tests])
        return all_smpls, None
    all_cluster: list[list[tuple[list[np.ndarray], list[np.ndarray]]]] = []
    labels = [np.asarray(c) for c in clusters]
    for _ in range(n_rep):
        per_var = []
        for lab in labels:
            uniq = np.unique(lab)
            tests = [uniq[p] for p in _partition(len(uniq), n_folds, rng)]
            per_var.append([(np.setdiff1d(uniq, t, assume_unique=True), t) for t in tests])
        grids = np.array(np.meshgrid(*[np.arange(n_folds)] * len(labels))).T.reshape(
            -1, len(labels)
        )
        smpls, smpls_cluster = [], []
        for combo in grids:
            train = np.ones(n, dtype=bool)
            test = np.ones(n, dtype=bool)
            tr_c, te_c = [], []
            for v, fold in enumerate(combo):
                tr, te = per_var[v][fold]
                tr_c.append(tr)
                te_c.append(te)
                train &= np.isin(labels[v], tr)
                test &= np.isin(labels[v], te)
            smpls.append((index[train], index[test]))
            smpls_cluster.append((tr_c, te_c))
        all_smpls.append(smpls)
        all_cluster.append(smpls_cluster)
    return all_smpls, all_cluster
