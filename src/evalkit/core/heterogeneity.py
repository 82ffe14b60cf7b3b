"""Effects by subgroup (``fit(..., by="column")``) and tests that they are equal.

Each subgroup is fitted on its own rows. The subgroup estimates are correlated when the
subgroups share clusters (families with and without children in the same city), units
or control observations, so their joint covariance is built from the per-cluster
influence contributions of every fit (:class:`~evalkit.core.result.Scores`), lined up
by cluster label: ``V = sum_c psi_c psi_c'`` over the union of clusters. Each fit's
scores are rescaled so that the diagonal equals the variance that fit reports (its own
small-sample factor), and the cross-covariances follow from the shared clusters.

From ``V`` come the Wald test that a term's effect is the same in every subgroup
(chi-squared with one fewer degrees of freedom than there are subgroups) and the
pairwise differences with their standard errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit.core.result import KEY_COLUMNS, InferenceInfo, Result, Scores
from evalkit.errors import DataError, InferenceNotSupportedError, NotEstimableError

__all__ = ["EqualityTest", "combine_groups", "split_by"]


@dataclass(frozen=True)
class EqualityTest:
    """Wald test that one estimate is equal across subgroups."""

    term: str
    keys: Mapping[str, Any]
    statistic: float
    df: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary."""
        from evalkit.core.result import jsonable

        return jsonable(
            {
                "term": self.term,
                **dict(self.keys),
                "statistic": self.statistic,
                "df": self.df,
                "p_value": self.p_value,
            }
        )


def split_by(data: pd.DataFrame, by: str) -> list[tuple[Any, pd.DataFrame]]:
    """Split ``data`` into its subgroups of column ``by`` (sorted; missing values refused).

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["b", "a", "b"], "y": [1, 2, 3]})
    >>> [(k, len(v)) for k, v in split_by(df, "g")]
    [('a', 1), ('b', 2)]
    """
    if not isinstance(by, str) or by not in data.columns:
        import difflib

        close = difflib.get_close_matches(str(by), [str(c) for c in data.columns], n=2)
        raise DataError(
            f"by column {by!r} is not in the data",
            hint=f"did you mean {' or '.join(map(repr, close))}?" if close else None,
            code="P002",
            column=str(by),
        )
    column = data[by]
    if column.isna().any():
        raise DataError(
            f"by column {by!r} has {int(column.isna().sum())} missing value(s)",
            hint="give those rows a subgroup or drop them before fitting",
            code="P006",
            column=by,
        )
    values = sorted(column.unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(values) < 2:
        raise DataError(
            f"by column {by!r} has a single value; there is nothing to compare",
            column=by,
        )
    return [(v, data.loc[(column == v).to_numpy()]) for v in values]


def _scaled_scores(result: Result, group: Any) -> Scores:
    kind = result.inference.kind
    if kind not in ("analytic", "draws"):
        raise InferenceNotSupportedError(
            f"by= compares subgroups through their standard errors, and this fit's "
            f"uncertainty ({kind}) has none: {result.inference.missing}",
            hint="fit the subgroups separately, or use an inference method with standard "
            "errors (e.g. 'cluster')",
            column="by",
        )
    scores = result._scores
    if scores is None:
        raise InferenceNotSupportedError(
            f"{result.estimator} does not provide the influence functions that by= needs",
            hint="fit the subgroups separately, or use an estimator that supports by=",
            column="by",
        )
    values = np.asarray(scores.values, dtype=float)
    se = result._table["std_error"].to_numpy(dtype=float)
    norm = np.sqrt((values**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm > 0, se / norm, 0.0)
    if not np.isfinite(scale).all():
        raise NotEstimableError(
            f"the standard errors in subgroup {group!r} are not available, so subgroups "
            "cannot be compared",
            hint="use an inference method other than 'none'",
            column="by",
        )
    labels = scores.labels
    if labels is None:  # clusters of their own: never shared with another subgroup
        labels = np.array([f"{group!r}#{i}" for i in range(values.shape[0])], dtype=object)
    return Scores(np.asarray(labels, dtype=object), values * scale)


def _key_of(row: Mapping[str, Any], keys: list[str]) -> tuple[Any, ...]:
    return (row["term"], *(row[k] for k in keys))


def combine_groups(by: str, fits: list[tuple[Any, Result]], level: float) -> Result:
    """Combine subgroup fits into one result with differences and equality tests.

    Parameters
    ----------
    by
        The subgroup column.
    fits
        ``(subgroup value, result)`` pairs; each result's :meth:`~Result.headline` is used.
    level
        Confidence level.

    Returns
    -------
    Result
        Rows per subgroup (key ``subgroup``) and per pair of subgroups (``subgroup`` is
        ``"a - b"``), with the joint covariance of the subgroup rows as ``vcov`` and the
        Wald tests in ``info["equality_tests"]``.
    """
    heads = [(g, r.headline()) for g, r in fits]
    tables, blocks = [], []
    for g, head in heads:
        table = head._table.copy()
        # the subgroup is a key of its own: an estimator's keys (TripleDiff's target
        # ``group``, cohorts, periods) are kept, so rows stay distinct
        table.insert(1, "subgroup", str(g))
        tables.append(table)
        blocks.append(_scaled_scores(head, g))
    table = pd.concat(tables, ignore_index=True)
    keys = [k for k in KEY_COLUMNS if k in table and k != "subgroup"]

    # joint covariance over the union of cluster labels
    union = pd.Index(np.concatenate([b.labels for b in blocks])).unique()
    phi = np.zeros((len(union), len(table)))
    col = 0
    for block in blocks:
        rows = union.get_indexer(block.labels)
        k = block.values.shape[1]
        np.add.at(phi, (rows[:, None], np.arange(col, col + k)[None, :]), block.values)
        col += k
    vcov = phi.T @ phi

    est = table["estimate"].to_numpy(dtype=float)
    dfs = table["df"].to_numpy(dtype=float)
    records = table.to_dict("records")
    position = {(str(r["subgroup"]), *_key_of(r, keys)): i for i, r in enumerate(records)}
    groups = [str(g) for g, _ in heads]
    wanted = [
        key
        for key in dict.fromkeys(_key_of(r, keys) for r in records)
        if all((g, *key) in position for g in groups)
    ]
    diff_rows: list[dict[str, Any]] = []
    contrasts: list[np.ndarray] = []
    tests: list[EqualityTest] = []
    from scipy import stats

    for key in wanted:
        idx = [position[(g, *key)] for g in groups]
        for a, b in itertools.combinations(range(len(groups)), 2):
            i, j = idx[a], idx[b]
            c = np.zeros(len(table))
            c[i], c[j] = 1.0, -1.0
            contrasts.append(c)
            pair = [dfs[i], dfs[j]]
            row = {
                "term": key[0],
                "subgroup": f"{groups[a]} - {groups[b]}",
                "estimate": est[i] - est[j],
                "std_error": float(np.sqrt(max(float(c @ vcov @ c), 0.0))),
                # the smaller of the two t degrees of freedom, conservatively
                "df": float(min(pair)) if np.isfinite(pair).all() else np.nan,
            }
            row.update(dict(zip(keys, key[1:], strict=True)))
            diff_rows.append(row)
        contrast = np.zeros((len(idx) - 1, len(table)))
        for r, i in enumerate(idx[1:]):
            contrast[r, idx[0]] = 1.0
            contrast[r, i] = -1.0
        d = contrast @ est
        cov = contrast @ vcov @ contrast.T
        rank = int(np.linalg.matrix_rank(cov))
        stat = float(d @ np.linalg.pinv(cov) @ d) if rank else np.nan
        tests.append(
            EqualityTest(
                term=str(key[0]),
                keys=dict(zip(keys, key[1:], strict=True)),
                statistic=stat,
                df=rank,
                p_value=float(stats.chi2.sf(stat, rank)) if rank else np.nan,
            )
        )
    base = table[["term", "estimate", "std_error", "df", "subgroup", *keys]]
    full, vcov_full = base, vcov
    if diff_rows:
        extra = pd.DataFrame(diff_rows)[base.columns]
        full = pd.concat([base, extra], ignore_index=True)
        lift = np.vstack([np.eye(len(table)), np.array(contrasts)])
        vcov_full = lift @ vcov @ lift.T
    first = heads[0][1]
    info = {
        "by": by,
        "groups": groups,
        "n_obs": {str(g): r.info.get("n_obs") for g, r in fits},
        "equality_tests": [t.to_dict() for t in tests],
        "fits": {str(g): dict(r.info) for g, r in fits},
    }
    inference = InferenceInfo(
        method=first.inference.method,
        description=f"per subgroup of {by} (for {groups[0]}: {first.inference.description}); "
        f"subgroups compared with their joint influence-function covariance over "
        f"{len(union)} clusters",
        distribution=first.inference.distribution,
        cluster=first.inference.cluster,
        n_clusters=len(union),
        reason=first.inference.reason,
        reps=first.inference.reps,
    )
    return Result(
        estimator=first.estimator,
        _table=full,
        inference=inference,
        info=info,
        level=level,
        _vcov=vcov_full,
    )
