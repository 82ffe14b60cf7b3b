"""Building a job exposure matrix: occupation means, shrinkage, split-half reliability."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.errors import DataError

__all__ = ["ExposureMatrix", "build_matrix", "redraw_shrunk", "split_half_reliability"]


@dataclass(frozen=True)
class ExposureMatrix:
    """Exposure by occupation from survey answers.

    Attributes
    ----------
    table
        One row per occupation (index): ``respondents``, ``mean`` (raw), ``weight``
        (the reliability of the raw mean, ``tau2 / (tau2 + s2 / n)``) and ``shrunk``
        (``weight * mean + (1 - weight) * grand_mean``).
    grand_mean, tau2, s2
        Overall mean, between-occupation variance of the true means and pooled
        within-occupation variance.
    """

    table: pd.DataFrame
    grand_mean: float
    tau2: float
    s2: float


def build_matrix(occupation: np.ndarray, value: np.ndarray) -> ExposureMatrix:
    """Occupation means shrunk towards the overall mean (empirical Bayes).

    The between-occupation variance ``tau2`` is estimated by the method of moments (the
    variance of the occupation means less their average sampling variance, floored at
    zero); an occupation with ``n`` respondents keeps the share ``tau2 / (tau2 + s2/n)``
    of its own mean. The shrunk mean is the best linear predictor of the occupation's
    true mean given its respondents, so a regression on it is not attenuated by the
    survey's sampling error (regression calibration).

    Examples
    --------
    >>> occ = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 2)
    >>> val = np.r_[np.full(20, 2.0), np.full(20, 6.0), [9.0, 11.0]] + np.tile([-1, 1], 21)
    >>> m = build_matrix(occ, val)
    >>> m.table["shrunk"].round(2).tolist()  # 'c' has two respondents: pulled the most
    [2.01, 5.99, 9.79]
    """
    frame = pd.DataFrame({"occupation": occupation, "value": value})
    grouped = frame.groupby("occupation", sort=True)["value"]
    n = grouped.size().astype(float)
    mean = grouped.mean()
    if len(n) < 3:
        raise DataError(
            f"a job exposure matrix needs survey answers in at least 3 occupations, got {len(n)}",
            column="occupation",
        )
    dev = frame["value"] - frame["occupation"].map(mean)
    df_within = float(len(frame) - len(n))
    if df_within < 1:
        raise DataError(
            "every occupation has a single respondent: the within-occupation variance "
            "(and so the shrinkage) cannot be estimated",
            column="occupation",
        )
    s2 = float((dev**2).sum() / df_within)
    grand = float(np.average(mean, weights=n))
    tau2 = max(float(np.var(mean, ddof=1) - np.mean(s2 / n)), 0.0)
    weight = tau2 / (tau2 + s2 / n) if tau2 > 0 else n * 0.0
    shrunk = weight * mean + (1 - weight) * grand
    table = pd.DataFrame({"respondents": n.astype(int), "mean": mean, "weight": weight})
    table["shrunk"] = shrunk
    return ExposureMatrix(table, grand, tau2, s2)


def split_half_reliability(
    occupation: np.ndarray, value: np.ndarray, rng: np.random.Generator, reps: int = 20
) -> tuple[float, float]:
    """Split-half reliability of the occupation means, and its Spearman-Brown full length.

    Each occupation's respondents are split at random into two halves (occupations with
    fewer than 2 are left out); the correlation across occupations of the two halves'
    means is averaged over ``reps`` splits. Spearman-Brown ``2 r / (1 + r)`` gives the
    reliability of means from all respondents.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> occ = np.repeat(np.arange(30), 10)
    >>> val = np.repeat(rng.normal(size=30) * 3, 10) + rng.normal(size=300)
    >>> r, full = split_half_reliability(occ, val, np.random.default_rng(1))
    >>> 0.9 < r < full < 1
    True
    """
    codes, occ = np.unique(occupation, return_inverse=True)
    occ = occ.reshape(-1)
    k = len(codes)
    sizes = np.bincount(occ, minlength=k)
    keep = sizes >= 2
    if keep.sum() < 3:
        raise DataError(
            "split-half reliability needs at least 3 occupations with 2 or more respondents",
            column="occupation",
        )
    rs = []
    for _ in range(reps):
        half = np.zeros(len(occ), dtype=bool)
        order = rng.permutation(len(occ))
        # the first half (rounded down) of each occupation's respondents, in random order
        rank = np.empty(len(occ), dtype=np.int64)
        seen = np.zeros(k, dtype=np.int64)
        for i in order:
            rank[i] = seen[occ[i]]
            seen[occ[i]] += 1
        half = rank < sizes[occ] // 2
        a = np.bincount(occ[half], weights=value[half], minlength=k)
        na = np.bincount(occ[half], minlength=k)
        b = np.bincount(occ[~half], weights=value[~half], minlength=k)
        nb = np.bincount(occ[~half], minlength=k)
        ma, mb = a[keep] / na[keep], b[keep] / nb[keep]
        rs.append(float(np.corrcoef(ma, mb)[0, 1]))
    r = float(np.mean(rs))
    return r, 2 * r / (1 + r)


def redraw_shrunk(matrix: ExposureMatrix, rng: np.random.Generator, reps: int) -> np.ndarray:
    """Redraw the shrunk matrix from the survey's sampling error (parametric bootstrap).

    Each occupation's raw mean is redrawn as ``mean + sqrt(s2 / n) z`` and the
    shrinkage recomputed (``tau2``, weights and overall mean from the redrawn means), so
    the draws carry the matrix's own uncertainty, small occupations included. Returns a
    ``(reps, occupations)`` array in the order of ``matrix.table``.

    Examples
    --------
    >>> occ = np.repeat(["a", "b", "c", "d"], [3, 10, 30, 5])
    >>> val = np.r_[np.full(3, 1.0), np.full(10, 3.0), np.full(30, 5.0), np.full(5, 2.0)]
    >>> m = build_matrix(occ, val + np.random.default_rng(0).normal(size=48))
    >>> int(redraw_shrunk(m, np.random.default_rng(1), 200).std(axis=0).argmax())  # 'a': n = 3
    0
    """
    table = matrix.table
    n = table["respondents"].to_numpy(dtype=float)
    mean = table["mean"].to_numpy(dtype=float)
    se2 = matrix.s2 / n
    draws = mean[None, :] + rng.standard_normal((reps, len(n))) * np.sqrt(se2)[None, :]
    grand = (draws * n).sum(axis=1, keepdims=True) / n.sum()
    tau2 = np.clip(draws.var(axis=1, ddof=1, keepdims=True) - se2.mean(), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(tau2 > 0, tau2 / (tau2 + se2[None, :]), 0.0)
    return weight * draws + (1 - weight) * grand
