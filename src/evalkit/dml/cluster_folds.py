"""Check that cross-fitting by cluster leaves both groups of a binary role in every fold.

With ``cluster=`` the folds split the clusters, and each training set holds the clusters
outside its test fold. When every treated unit sits in one cluster (one treated city),
the training set of the fold holding that cluster has no treated unit, and the
classifier of the propensity score cannot be fitted (scikit-learn raises a ValueError).
:func:`check_cluster_folds` finds this before fitting and says why and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from evalkit.errors import DesignError

__all__ = ["check_cluster_folds"]


def check_cluster_folds(
    values: Mapping[str, np.ndarray],
    clusters: Sequence[str],
    labels: Sequence[np.ndarray],
    smpls: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]],
) -> None:
    """Raise if a training set of the cluster folds lacks a group of a binary role.

    Parameters
    ----------
    values
        Role name -> the role's 0/1 values on the model's rows (e.g. ``treatment``).
    clusters, labels
        The cluster columns and their labels on the model's rows.
    smpls
        Cross-fitting splits, one list of ``(train, test)`` per repetition.

    Examples
    --------
    >>> d = np.array([1, 1, 0, 0, 0, 0]); city = np.array([0, 0, 1, 1, 2, 2])
    >>> folds = [[(np.arange(2, 6), np.arange(2)), (np.arange(2), np.arange(2, 6))]]
    >>> try:
    ...     check_cluster_folds({"treatment": d}, ["city"], [city], folds)
    ... except DesignError as err:
    ...     print(err.column, "|", err.message[:58])
    cluster | cross-fitting by cluster 'city' needs treated units (treat
    """
    if not clusters:
        return
    names = ", ".join(repr(c) for c in clusters)
    for role, col in values.items():
        col = np.asarray(col)
        for group in (1, 0):
            has = col == group
            for rep in smpls:
                if all(has[train].any() for train, _ in rep):
                    continue
                n_clusters = min(len(np.unique(lab[has])) for lab in labels)
                which = "treated units" if group == 1 else "comparison units"
                if role != "treatment":
                    which = f"rows with {role} = {group}"
                why = (
                    f"all of them are in {n_clusters} cluster"
                    if n_clusters == 1
                    else f"the folds drawn put all {n_clusters} of their clusters in one fold"
                )
                raise DesignError(
                    f"cross-fitting by cluster {names} needs {which} ({role} = {group}) in "
                    f"more than one fold, but {why}: the model for the fold that holds them "
                    "is trained without any, so the nuisance models cannot be fitted",
                    hint=(
                        "cluster by a finer column (e.g. the unit) and treat the shared "
                        "shocks of the cluster by design (with one treated cluster: "
                        "synth.SyntheticControl or did.TWFE with conformal inference over "
                        "time)"
                        if n_clusters == 1
                        else "use another seed or fewer folds (n_folds)"
                    ),
                    column="cluster",
                )
