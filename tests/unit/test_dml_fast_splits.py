"""The fast paths of DML sample splitting give exactly what the slow ones gave.

- ``fold_splits`` with cluster labels: every row's fold found from its label's code,
  against the reference by ``np.isin`` of the labels in each fold's clusters (the
  implementation before, kept here as the slow, obviously correct path);
- ``set_splits``: checked splits stored without DoubleML's Python-set checks, against
  ``set_sample_splitting`` (same stored splits, same estimate and standard error bit
  for bit); splits that fail a check go to DoubleML, which raises its own error.
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.dml.splits import _partition, fold_splits, set_splits


def _fold_splits_isin(n, n_folds, n_rep, seed, clusters):
    """The reference: folds of the clusters, rows in a fold found by ``np.isin``."""
    rng = np.random.default_rng(int(seed))
    index = np.arange(n)
    labels = [np.asarray(c) for c in clusters]
    all_smpls, all_cluster = [], []
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


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize(
    ("n_folds", "n_rep", "ways", "labels"),
    [(2, 1, 1, "int"), (5, 3, 1, "str"), (3, 2, 2, "int"), (2, 1, 1, "singleton")],
)
def test_cluster_folds_equal_isin_reference(n_folds, n_rep, ways, labels) -> None:
    rng = np.random.default_rng(11)
    n = 600
    if labels == "singleton":
        clusters = [rng.permutation(n) * 7 + 3]
    else:
        clusters = [rng.integers(0, 40 + 13 * w, n) for w in range(ways)]
        if labels == "str":
            clusters = [np.array([f"c{v}" for v in c], dtype=object) for c in clusters]
    fast = fold_splits(n, n_folds, n_rep, 5, clusters)
    slow = _fold_splits_isin(n, n_folds, n_rep, 5, clusters)
    assert _same(fast, slow)


def _plr(n: int = 300):
    import doubleml
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 3))
    d = x[:, 0] + rng.normal(size=n)
    y = 0.5 * d + x @ np.array([1.0, -1.0, 0.5]) + rng.normal(size=n)
    data = doubleml.DoubleMLData.from_arrays(x, y, d)
    return doubleml.DoubleMLPLR(
        data, LinearRegression(), LinearRegression(), n_folds=2, draw_sample_splitting=False
    )


@pytest.mark.parametrize(("n_folds", "n_rep"), [(2, 1), (4, 3)])
def test_set_splits_equals_set_sample_splitting(n_folds, n_rep) -> None:
    smpls, _ = fold_splits(300, n_folds, n_rep, seed=8)
    fast, slow = _plr(), _plr()
    set_splits(fast, smpls)
    slow.set_sample_splitting(smpls)
    assert (fast.n_folds, fast.n_rep) == (slow.n_folds, slow.n_rep) == (n_folds, n_rep)
    assert _same(fast.smpls, slow.smpls)
    fast.fit()
    slow.fit()
    assert fast.coef[0] == slow.coef[0]
    assert fast.se[0] == slow.se[0]
    np.testing.assert_array_equal(fast.psi, slow.psi)


@pytest.mark.parametrize(
    "broken",
    ["overlap", "unsorted", "out_of_range", "missing_row", "float"],
)
def test_set_splits_leaves_invalid_splits_to_doubleml(broken) -> None:
    smpls, _ = fold_splits(300, 2, 1, seed=8)
    (tr0, te0), (tr1, te1) = smpls[0]
    if broken == "overlap":
        tr0 = np.union1d(tr0, te0[:3])
    elif broken == "unsorted":
        te0 = te0[::-1].copy()
    elif broken == "out_of_range":
        te0 = np.append(te0, 300)
    elif broken == "missing_row":
        te0 = te0[1:]
    else:
        te0 = te0.astype(float)
    bad = [[(tr0, te0), (tr1, te1)]]
    model = _plr()
    if broken == "unsorted":  # DoubleML sorts the indices itself: valid after its check
        set_splits(model, bad)
        assert np.array_equal(model.smpls[0][0][1], np.sort(te0))
        return
    with pytest.raises((ValueError, TypeError)):
        set_splits(model, bad)
