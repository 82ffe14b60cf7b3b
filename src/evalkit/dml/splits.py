"""Cross-fitting sample splits drawn from a numpy Generator (no global random state).

DoubleML draws its folds with scikit-learn's ``KFold`` on the global NumPy state; evalkit
draws them here from ``numpy.random.default_rng(seed)`` and passes them to DoubleML with
``set_sample_splitting``, so a fit is reproducible from its seed alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["fold_splits", "set_splits"]

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
    # each dimension's sorted labels and every row's position among them, found once
    coded = [np.unique(np.asarray(c), return_inverse=True) for c in clusters]
    for _ in range(n_rep):
        per_var = []
        fold_of = []  # the test fold of every row, per dimension
        for uniq, codes in coded:
            parts = _partition(len(uniq), n_folds, rng)
            tests = [uniq[p] for p in parts]
            per_var.append([(np.setdiff1d(uniq, t, assume_unique=True), t) for t in tests])
            fold = np.empty(len(uniq), dtype=np.intp)
            for k, p in enumerate(parts):
                fold[p] = k
            fold_of.append(fold[codes])
        grids = np.array(np.meshgrid(*[np.arange(n_folds)] * len(coded))).T.reshape(-1, len(coded))
        smpls, smpls_cluster = [], []
        for combo in grids:
            train = np.ones(n, dtype=bool)
            test = np.ones(n, dtype=bool)
            tr_c, te_c = [], []
            for v, fold in enumerate(combo):
                tr, te = per_var[v][fold]
                tr_c.append(tr)
                te_c.append(te)
                train &= fold_of[v] != fold
                test &= fold_of[v] == fold
            smpls.append((index[train], index[test]))
            smpls_cluster.append((tr_c, te_c))
        all_smpls.append(smpls)
        all_cluster.append(smpls_cluster)
    return all_smpls, all_cluster


def _sorted_index(idx: object, n: int) -> bool:
    """Whether ``idx`` is a strictly increasing integer array within ``[0, n)``."""
    return (
        isinstance(idx, np.ndarray)
        and idx.ndim == 1
        and idx.dtype.kind in "iu"
        and (idx.size == 0 or (int(idx[0]) >= 0 and int(idx[-1]) < n))
        and bool(np.all(idx[1:] > idx[:-1]))
    )


def _valid(all_smpls: object, n: int) -> bool:
    """Whether ``all_smpls`` passes DoubleML's checks of a nested list of splits.

    Lists (repetitions) of the same number (>= 2) of ``(train, test)`` tuples of sorted
    unique indices in ``[0, n)``, whose test folds partition ``range(n)`` and whose
    training sets do not meet their test folds.
    """
    if not isinstance(all_smpls, list) or not all_smpls:
        return False
    if not all(isinstance(rep, list) for rep in all_smpls):
        return False
    if len({len(rep) for rep in all_smpls}) != 1 or len(all_smpls[0]) < 2:
        return False
    for rep in all_smpls:
        seen = np.zeros(n, dtype=np.intp)
        for pair in rep:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                return False
            train, test = pair
            if not (_sorted_index(train, n) and _sorted_index(test, n)):
                return False
            seen[test] += 1
            member = np.zeros(n, dtype=bool)
            member[train] = True
            if member[test].any():
                return False
        if not bool(np.all(seen == 1)):
            return False
    return True


def set_splits(model: Any, all_smpls: Any, all_smpls_cluster: Any = None) -> None:
    """Give a DoubleML model its cross-fitting splits, as ``set_sample_splitting`` does.

    DoubleML checks the splits with Python sets of indices: about 4 s of CPU for two
    folds of 1.1 million rows, more than the learners of a DID fit with linear
    nuisances. The splits of :func:`fold_splits` are sorted index arrays by
    construction; they are checked here with vectorised tests of the same conditions
    (see :func:`_valid`) and stored as DoubleML stores checked splits (a list per
    repetition of ``(train, test)`` tuples), so the fit is the same. Models whose data
    are cluster data for DoubleML, with double sample splitting, or with their own
    ``set_sample_splitting``, and splits that fail a check, go through DoubleML's
    method (which raises its own error for invalid splits).

    Examples
    --------
    >>> import doubleml
    >>> from doubleml.plm.datasets import make_plr_CCDDHNR2018
    >>> from sklearn.linear_model import LinearRegression
    >>> data = make_plr_CCDDHNR2018(n_obs=50, dim_x=3)
    >>> model = doubleml.DoubleMLPLR(data, LinearRegression(), LinearRegression(),
    ...                              draw_sample_splitting=False)
    >>> smpls, _ = fold_splits(50, 2, 1, seed=1)
    >>> set_splits(model, smpls)
    >>> model.n_folds, model.n_rep
    (2, 1)
    """
    from doubleml.double_ml import DoubleML
    from doubleml.double_ml_sampling_mixins import SampleSplittingMixin

    standard = (
        isinstance(model, DoubleML)
        and type(model).set_sample_splitting is SampleSplittingMixin.set_sample_splitting
        and type(model)._initialize_dml_model is DoubleML._initialize_dml_model
        and not getattr(model, "_double_sample_splitting", True)
        and not getattr(model, "_is_cluster_data", True)
        and all_smpls_cluster is None
    )
    n = getattr(model, "_n_obs_sample_splitting", None)
    if not (standard and isinstance(n, int) and _valid(all_smpls, n)):
        if all_smpls_cluster is None:
            model.set_sample_splitting(all_smpls)
        else:
            model.set_sample_splitting(all_smpls, all_smpls_cluster)
        return
    model._smpls = [[(train, test) for train, test in rep] for rep in all_smpls]
    model._smpls_cluster = None
    model._n_rep = len(all_smpls)
    model._n_folds = len(all_smpls[0])
    model._initialize_dml_model()
