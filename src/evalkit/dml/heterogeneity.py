"""Group effects (GATEs) of a DML fit from its per-observation scores.

The DML scores are linear in the effect: ``psi_i = psi_a_i * theta + psi_b_i``. The
effect in group ``g`` solves the score equation on that group's rows,
``theta_g = -sum_{i in g} psi_b_i / sum_{i in g} psi_a_i``, with the nuisances of the
one full-sample fit; its influence function is
``-(psi_a_i * theta_g + psi_b_i) / mean_{i in g}(psi_a_i)`` on the group's rows. For
the IRM's ATE (``psi_a = -1``) this is the group mean of the orthogonal signal, which
is DoubleML's ``gate``. With ``n_rep > 1`` each repetition's group effect is computed
and they are combined with DoubleML's median rule.

Groups are compared by :func:`evalkit.core.heterogeneity.combine_groups` from the
influence functions summed by cluster (by observation without clusters), so the joint
covariance, the pairwise differences and the equality test are cluster-robust.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evalkit.core.result import InferenceInfo, Result, Scores, make_table
from evalkit.core.uncertainty import Analytic
from evalkit.errors import NotEstimableError

__all__ = ["group_effects", "median_aggregate"]


def median_aggregate(thetas: np.ndarray, ses: np.ndarray) -> tuple[float, float]:
    """Combine repetitions as DoubleML does: median estimate, median upper bound.

    Examples
    --------
    >>> median_aggregate(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0]))
    (2.0, 1.0)
    """
    theta = float(np.median(thetas))
    upper = float(np.median(thetas + 1.96 * ses))
    return theta, (upper - theta) / 1.96


def group_effects(full: Any, groups: pd.Series, by: str) -> Result:
    """Return the group effects of a DML fit ``full`` for the values of ``groups``."""
    from evalkit.core.heterogeneity import combine_groups

    model = full._model
    if type(model).__name__ == "DoubleMLPLPR":
        raise NotEstimableError(
            "by= is not available for the panel model (its scores are on transformed rows)",
            hint="fit the subgroups separately",
            column="by",
        )
    if full.inference.kind not in ("analytic", "draws"):
        raise NotEstimableError(
            f"by= compares group effects through their standard errors; this fit has none "
            f"({full.inference.missing})",
            hint="use inference='hetero', 'cluster' or 'bootstrap'",
            column="by",
        )
    if full.inference.method in ("cr2", "jackknife"):
        raise NotEstimableError(
            "by= compares group effects with the scores' cluster covariance, which has no "
            "few-cluster (CR2, jackknife) correction here",
            hint="fit each group separately with inference='cr2', or use inference='cluster'",
            column="by",
        )
    psi_a = np.asarray(model.psi_elements["psi_a"])[:, 0, :]
    psi_b = np.asarray(model.psi_elements["psi_b"])[:, 0, :]
    values = groups.to_numpy()
    codes = full._codes
    labels = full._scores.labels
    n = psi_a.shape[0]
    fits = []
    for g in sorted(pd.unique(values).tolist(), key=lambda v: (str(type(v)), v)):
        rows = values == g
        n_g = int(rows.sum())
        a, b = psi_a[rows], psi_b[rows]
        theta_r = -b.sum(axis=0) / a.sum(axis=0)
        inf = -(a * theta_r + b) / a.mean(axis=0)  # (n_g, n_rep)
        if codes is None:
            sums = inf
            g_labels = labels[rows]
        else:
            uniq, inv = np.unique(codes[rows], return_inverse=True)
            sums = np.zeros((len(uniq), inf.shape[1]))
            np.add.at(sums, inv, inf)
            g_labels = labels[uniq]
        se_r = np.sqrt((sums**2).sum(axis=0)) / n_g
        theta, se = median_aggregate(theta_r, se_r)
        phi = sums.mean(axis=1) / n_g
        result = Result(
            estimator=full.estimator,
            _table=make_table(full.terms, [theta], [se]),
            inference=InferenceInfo(
                method=full.inference.method,
                description="group effect from the full-sample DML scores",
                cluster=full.inference.cluster,
            ),
            info={"n_obs": n_g},
            level=full.level,
            uncertainty=Analytic(np.array([se])),
            _scores=Scores(np.asarray(g_labels, dtype=object), phi[:, None]),
        )
        fits.append((g, result))
    combined = combine_groups(by, fits, full.level)
    info = {**combined.info, "fit": dict(full.info), "n_obs_total": int(n)}
    where = f"clustered by {full.inference.cluster}" if full.inference.cluster else "by observation"
    description = (
        f"group effects by {by} from one DML fit's scores ({where}); "
        "groups compared with their joint influence-function covariance"
    )
    import dataclasses

    return dataclasses.replace(
        combined,
        info=info,
        inference=dataclasses.replace(combined.inference, description=description),
        extras={"diagnostics": full.extras["diagnostics"]},
    )
