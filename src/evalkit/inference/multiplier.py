"""Inference from influence functions: analytic cluster sums and the multiplier bootstrap.

An asymptotically linear estimator ``theta_hat`` has an influence function ``psi`` with
``theta_hat - theta = (1/n) sum_i psi_i + o_p(n^-1/2)``, one row per sampling unit. With
clusters ``c`` (groups of units whose rows may be correlated) the sums
``S_c = sum_{i in c} psi_i`` are independent, which gives

* analytic standard errors ``sqrt(sum_c S_c**2) / n`` (no small-sample factor; with one
  unit per cluster this is the usual influence-function standard error), and
* the multiplier bootstrap (Kline & Santos 2012; Callaway & Sant'Anna 2021, section 4):
  draw independent weights ``v_bc`` with mean 0 and variance 1 and form
  ``delta_b = (1/n) sum_c v_bc S_c``; the spread of ``delta_b`` estimates that of
  ``theta_hat - theta``. Nothing is re-estimated, so thousands of draws are cheap.

Standard errors from the bootstrap are the interquartile range of the draws divided by
``qnorm(0.75) - qnorm(0.25)`` (as in the R package did). Simultaneous (uniform)
confidence bands use the sup-t critical value: the ``level`` quantile of
``max_j |delta_bj| / se_j`` over the draws (Montiel Olea & Plagborg-Moller 2019).

Draws are generated in blocks from a numpy Generator seeded with ``seed``; the same
seed and the same number of clusters give the same weights, so bootstraps of
different statistics of one fit (group-time effects and their aggregations) share
their draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.errors import DesignError
from evalkit.numerics.levels import check_level
from evalkit.numerics.within import group_sums

__all__ = [
    "BOOTSTRAP_WEIGHTS",
    "MultiplierBootstrap",
    "analytic_vcov",
    "bootstrap_draws",
    "cluster_sums",
    "multiplier_bootstrap",
    "summarise_draws",
    "sup_t_critical_value",
]

BOOTSTRAP_WEIGHTS: tuple[str, ...] = ("rademacher", "mammen")
_BLOCK_ELEMENTS = 1 << 22  # multiplier weights generated per block (32 MB of float64)
# row b: the 8 Rademacher weights 1 - 2 * bit of byte b, most significant bit first
_RADEMACHER_TABLE = 1.0 - 2.0 * np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)


def _as_matrix(influence: np.ndarray) -> np.ndarray:
    psi = np.asarray(influence, dtype=float)
    if psi.ndim == 1:
        psi = psi[:, None]
    if psi.ndim != 2 or psi.shape[0] == 0:
        raise DesignError("influence must be a non-empty (n,) or (n, k) array", column="influence")
    return psi


def cluster_sums(influence: np.ndarray, cluster: np.ndarray | None = None) -> np.ndarray:
    """Sum influence-function rows within clusters.

    Parameters
    ----------
    influence
        ``(n,)`` or ``(n, k)`` influence function values, one row per sampling unit.
    cluster
        Integer cluster codes ``0..G-1`` for the rows; None when each row is its own
        cluster.

    Returns
    -------
    numpy.ndarray
        ``(G, k)`` cluster sums.

    Examples
    --------
    >>> cluster_sums(np.array([1.0, 2.0, 3.0]), np.array([0, 1, 0])).ravel().tolist()
    [4.0, 2.0]
    """
    psi = _as_matrix(influence)
    if cluster is None:
        return psi
    codes = np.asarray(cluster)
    if codes.shape != (psi.shape[0],) or codes.dtype.kind not in "iu" or codes.min() < 0:
        raise DesignError(
            "cluster must hold non-negative integer codes, one per influence row",
            column="cluster",
        )
    return group_sums(codes, psi, int(codes.max()) + 1)


def analytic_vcov(influence: np.ndarray, cluster: np.ndarray | None = None) -> np.ndarray:
    """Covariance ``S'S / n**2`` of estimates with influence functions ``influence``.

    ``S`` holds the cluster sums (:func:`cluster_sums`) and ``n`` the number of rows.

    Examples
    --------
    >>> psi = np.array([[1.0], [-1.0], [2.0], [-2.0]])
    >>> float(analytic_vcov(psi)[0, 0])  # (1 + 1 + 4 + 4) / 16
    0.625
    """
    psi = _as_matrix(influence)
    s = cluster_sums(psi, cluster)
    return (s.T @ s) / psi.shape[0] ** 2


def _draw(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    rows, cols = shape
    if kind == "rademacher":
        # one random bit per weight: +1 or -1 with probability 1/2 each; each random byte
        # becomes its 8 weights (most significant bit first) in one table lookup
        packed = rng.integers(0, 256, size=(rows, (cols + 7) // 8), dtype=np.uint8)
        v = _RADEMACHER_TABLE[packed].reshape(rows, -1)
        return v[:, :cols] if v.shape[1] != cols else v
    # Mammen's two-point distribution: mean 0, variance 1, third moment 1
    root5 = math.sqrt(5.0)
    p = (root5 + 1.0) / (2.0 * root5)
    u = rng.random(shape)
    return np.where(u < p, (1.0 - root5) / 2.0, (1.0 + root5) / 2.0)


@dataclass(frozen=True)
class MultiplierBootstrap:
    """Draws of a multiplier bootstrap and what follows from them.

    Attributes
    ----------
    draws
        ``(reps, k)`` bootstrap draws of ``theta_hat - theta``.
    std_error
        ``(k,)`` standard errors (normalised interquartile range of the draws); exactly
        0 for statistics whose influence function is identically zero.
    sup_t
        ``(reps,)`` the largest absolute t-statistic of each draw over the statistics
        with a positive standard error (for simultaneous bands).
    reps, weights, n_clusters, seed
        The settings used.
    """

    draws: np.ndarray
    std_error: np.ndarray
    sup_t: np.ndarray
    reps: int
    weights: str
    n_clusters: int
    seed: int

    @property
    def vcov(self) -> np.ndarray:
        """Covariance matrix of the draws (``k x k``)."""
        return np.atleast_2d(np.cov(self.draws, rowvar=False))

    def critical_value(self, level: float = 0.95, uniform: bool = True) -> float:
        """Critical value for intervals ``estimate +/- c * std_error``.

        With ``uniform=True`` the sup-t value giving simultaneous coverage ``level`` for
        all statistics together; otherwise the pointwise normal quantile.
        """
        level = check_level(level)
        if not uniform:
            from scipy import stats  # imported on first use: SciPy is slow to import

            return float(stats.norm.ppf(0.5 + level / 2.0))
        return sup_t_critical_value(self.sup_t, level)


def sup_t_critical_value(sup_t: np.ndarray, level: float) -> float:
    """Return the ``level`` quantile of sup-t draws (R's type-1 quantile), NaN if none.

    Examples
    --------
    >>> sup_t_critical_value(np.arange(1.0, 101.0), 0.95)
    95.0
    """
    finite = sup_t[np.isfinite(sup_t)]
    if finite.size == 0:
        return float("nan")
    return float(np.quantile(finite, level, method="inverted_cdf"))


def multiplier_bootstrap(
    influence: np.ndarray,
    *,
    cluster: np.ndarray | None = None,
    reps: int = 999,
    weights: str = "rademacher",
    seed: int = 0,
) -> MultiplierBootstrap:
    """Run the multiplier bootstrap on influence functions.

    Parameters
    ----------
    influence
        ``(n,)`` or ``(n, k)`` influence functions of ``k`` statistics (one row per
        sampling unit), normalised so that ``theta_hat - theta ~ mean(psi)``.
    cluster
        Integer cluster codes of the rows; one multiplier is drawn per cluster. None
        draws one per row.
    reps
        Number of bootstrap draws.
    weights
        ``"rademacher"`` (+1/-1 with equal probability; the did default) or
        ``"mammen"`` (Mammen's two-point weights).
    seed
        Seed of the numpy Generator that draws the multipliers.

    Returns
    -------
    MultiplierBootstrap

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> psi = rng.normal(size=(400, 2))
    >>> boot = multiplier_bootstrap(psi, reps=2000, seed=1)
    >>> bool(abs(boot.std_error[0] / (np.sqrt((psi[:, 0] ** 2).sum()) / 400) - 1) < 0.1)
    True
    """
    if weights not in BOOTSTRAP_WEIGHTS:
        raise DesignError(
            f"bootstrap weights must be one of {', '.join(map(repr, BOOTSTRAP_WEIGHTS))}, "
            f"got {weights!r}",
            hint="'rademacher' is the default of the did package",
            column="weights",
        )
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 2:
        raise DesignError(f"reps must be a whole number >= 2, got {reps!r}", column="reps")
    psi = _as_matrix(influence)
    sums = cluster_sums(psi, cluster)
    draws = bootstrap_draws(sums, psi.shape[0], reps=int(reps), weights=weights, seed=seed)
    return summarise_draws(draws, sums, weights=weights, seed=seed)


def bootstrap_draws(sums: np.ndarray, n: int, *, reps: int, weights: str, seed: int) -> np.ndarray:
    """Return ``(reps, k)`` multiplier draws ``V @ sums / n`` of cluster sums ``sums``.

    One multiplier per cluster (row of ``sums``), drawn in blocks from a Generator seeded
    with ``seed``: the same seed gives the same multipliers whatever the columns, so draws
    of linear combinations of the columns are the same combinations of these draws.
    """
    n_clusters = sums.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, min(int(reps), _BLOCK_ELEMENTS // max(n_clusters, 1)))
    draws = np.empty((int(reps), sums.shape[1]))
    for start in range(0, int(reps), block):
        stop = min(start + block, int(reps))
        if weights == "rademacher":
            draws[start:stop] = _rademacher_product(rng, stop - start, sums) / n
        else:
            v = _draw(rng, (stop - start, n_clusters), weights)
            draws[start:stop] = (v @ sums) / n
    return draws


_CHUNK_BYTES = 2048  # random bytes (8 clusters each) expanded to weights at a time


def _rademacher_product(rng: np.random.Generator, rows: int, sums: np.ndarray) -> np.ndarray:
    """Return ``V @ sums`` for Rademacher weights ``V`` (rows x clusters), chunk by chunk.

    The random bytes are drawn exactly as :func:`_draw` draws them; they are expanded to
    weights a cache-sized chunk of clusters at a time instead of all at once.
    """
    n_clusters = sums.shape[0]
    packed = rng.integers(0, 256, size=(rows, (n_clusters + 7) // 8), dtype=np.uint8)
    out = np.zeros((rows, sums.shape[1]))
    for first in range(0, packed.shape[1], _CHUNK_BYTES):
        part = packed[:, first : first + _CHUNK_BYTES]
        lo = 8 * first
        hi = min(n_clusters, lo + 8 * part.shape[1])
        v = _RADEMACHER_TABLE[part].reshape(rows, -1)[:, : hi - lo]
        out += v @ sums[lo:hi]
    return out


def summarise_draws(
    draws: np.ndarray, sums: np.ndarray, *, weights: str, seed: int
) -> MultiplierBootstrap:
    """Summarise multiplier draws: standard errors and sup-t statistics (cluster sums ``sums``)."""
    se = _iqr_se(draws, zero=~np.any(sums != 0.0, axis=0))
    positive = se > 0
    if positive.any():
        sup_t = np.max(np.abs(draws[:, positive]) / se[positive], axis=1)
    else:
        sup_t = np.full(draws.shape[0], np.nan)
    return MultiplierBootstrap(
        draws=draws,
        std_error=se,
        sup_t=sup_t,
        reps=int(draws.shape[0]),
        weights=weights,
        n_clusters=int(sums.shape[0]),
        seed=int(seed),
    )


def _iqr_se(draws: np.ndarray, zero: np.ndarray) -> np.ndarray:
    from scipy import stats

    q75, q25 = np.quantile(draws, [0.75, 0.25], axis=0, method="inverted_cdf")
    se = (q75 - q25) / float(stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
    # a tiny interquartile range with non-degenerate draws (e.g. one dominant cluster):
    # fall back to the standard deviation rather than report a zero standard error
    flat = (se <= 0) & ~zero
    if flat.any():
        se[flat] = draws[:, flat].std(axis=0, ddof=1)
    se[zero] = 0.0
    return se
