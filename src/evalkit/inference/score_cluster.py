"""Few-cluster inference for an estimator defined by a linear score (double ML).

A DML estimate solves a score equation that is linear in the effect,
``sum_i w_i (psi_a_i theta + psi_b_i) = 0`` (PLR partialling out: ``psi_a = -V^2``,
``psi_b = V Y~`` with the cross-fitted residuals ``V = D - m(X)``, ``Y~ = Y - l(X)``;
IRM: ``psi_a = -1``), where ``w_i`` are row weights (DoubleML weights each fold of
clusters by one over its number of clusters). Summed within clusters ``g`` this is
``sum_g (A_g theta + B_g) = 0`` with ``theta_hat = -sum B_g / sum A_g``: the normal
equation of a weighted least-squares regression of one regressor whose per-cluster
``X_g'X_g`` is ``-A_g`` and ``X_g'y_g`` is ``B_g`` (for the PLR exactly the regression
of ``Y~`` on ``V`` with the nuisance residuals held fixed, the final stage of DML).
Everything below works on those cluster sums, so it costs ``O(G)`` after one pass.

DoubleML's cluster-robust variance (Chiang, Kato, Ma & Sasaki 2022, one-way case) is
``sum_g S_g^2 / (sum A_g)^2`` with the cluster scores ``S_g = A_g theta_hat + B_g``,
judged against the normal: valid as the number of clusters grows, too small with 20-40
clusters of unequal size (MacKinnon, Nielsen & Webb 2023, "Cluster-robust inference: a
guide to empirical practice", recommend CV2/CV3-type variances with ``t(G-1)`` or
Satterthwaite critical values, or the restricted wild cluster bootstrap). Here:

* :func:`cr2_score`: the Bell-McCaffrey (2002) CR2 variance of that final-stage
  regression, ``sum_g S_g^2 / (1 - h_g) / (sum A_g)^2`` with the cluster's leverage
  ``h_g = A_g / sum A`` (one regressor, so ``(I - H_gg)^(-1/2)`` acts on ``X_g`` as
  ``1 / sqrt(1 - h_g)``), and Satterthwaite degrees of freedom under the working model
  of independent homoskedastic errors (Bell & McCaffrey 2002; Imbens & Kolesar 2016;
  Pustejovsky & Tipton 2018): ``df = (tr M)^2 / tr(M^2)`` with
  ``M = D^(-1/2) (diag(h) - h h') D^(-1/2)``, ``D = diag(1 - h)``; ``G - 1`` when the
  clusters have equal leverage, fewer when a few clusters dominate.
* :func:`score_wild_bootstrap`: the restricted wild cluster bootstrap (WCR) of the same
  regression, p-value and interval by test inversion, reusing
  :class:`~evalkit.inference.wild.WildBootstrap` on the cluster sums (Roodman et al.
  2019). For a linear score this is the wild score bootstrap of Kline & Santos (2012)
  with the null imposed: the bootstrap scores are ``v_g S_g(r)``, ``S_g(r) = A_g r + B_g``,
  and the bootstrap t statistic is re-studentised with the re-estimated scores.

Both treat the cross-fitted nuisance predictions as fixed, as DoubleML's variance does;
the nuisance estimation error is first-order negligible by Neyman orthogonality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.errors import DesignError, NotEstimableError
from evalkit.inference.wild import ClusterStats, WildBootstrap, WildResult

__all__ = [
    "ScoreCR2",
    "ScoreSums",
    "bm_df",
    "cr2_score",
    "cv3_score",
    "score_sums",
    "score_wild_bootstrap",
]


@dataclass(frozen=True)
class ScoreSums:
    """Cluster sums ``A_g`` (of ``w psi_a``) and ``B_g`` (of ``w psi_b``) of a linear score.

    Examples
    --------
    >>> s = score_sums(np.array([-1.0, -1.0, -2.0]), np.array([1.0, 2.0, 3.0]), np.array([0, 0, 1]))
    >>> s.a.tolist(), s.b.tolist(), s.theta
    ([-2.0, -2.0], [3.0, 3.0], 1.5)
    """

    a: np.ndarray
    b: np.ndarray

    @property
    def n_clusters(self) -> int:
        """Number of clusters ``G``."""
        return int(self.a.shape[0])

    @property
    def theta(self) -> float:
        """The estimate ``-sum B / sum A``."""
        return float(-self.b.sum() / self.a.sum())

    def scores(self, r: float | None = None) -> np.ndarray:
        """Cluster scores ``A_g r + B_g`` at ``r`` (default: the estimate)."""
        return self.a * (self.theta if r is None else r) + self.b

    @property
    def leverage(self) -> np.ndarray:
        """Each cluster's share ``h_g = A_g / sum A`` of the score's derivative."""
        return self.a / self.a.sum()


def score_sums(
    psi_a: np.ndarray,
    psi_b: np.ndarray,
    codes: np.ndarray,
    weights: np.ndarray | None = None,
) -> ScoreSums:
    """Sum the weighted score elements within clusters.

    Parameters
    ----------
    psi_a, psi_b
        ``(n,)`` score elements, ``psi_i(theta) = psi_a_i theta + psi_b_i``.
    codes
        ``(n,)`` integer cluster codes ``0..G-1``.
    weights
        ``(n,)`` row weights of the score equation (None: 1).
    """
    a = np.asarray(psi_a, dtype=float)
    b = np.asarray(psi_b, dtype=float)
    codes = np.asarray(codes)
    if a.shape != b.shape or a.ndim != 1 or codes.shape != a.shape:
        raise DesignError("psi_a, psi_b and codes must be (n,) arrays of one length")
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=float)
    g = int(codes.max()) + 1
    if g < 2:
        raise NotEstimableError(
            "cluster-robust inference needs at least two clusters",
            hint="cluster by a finer column",
            column="cluster",
        )
    sums = ScoreSums(
        np.bincount(codes, weights=w * a, minlength=g),
        np.bincount(codes, weights=w * b, minlength=g),
    )
    if sums.a.sum() == 0:
        raise NotEstimableError("the score's derivative sums to zero: the effect is not identified")
    return sums


def bm_df(leverage: np.ndarray) -> float:
    """Bell-McCaffrey (Satterthwaite) degrees of freedom of CR2 for one regressor.

    ``(tr M)^2 / tr(M^2)`` with ``M = D^(-1/2) (diag(h) - h h') D^(-1/2)``,
    ``D = diag(1 - h)``, under the working model of independent homoskedastic errors.

    Examples
    --------
    >>> round(bm_df(np.full(20, 1 / 20)), 9)  # equal clusters: G - 1
    19.0
    >>> round(bm_df(np.array([0.5] + [0.5 / 19] * 19)), 2)  # one cluster holds half
    3.61
    """
    h = np.asarray(leverage, dtype=float)
    s = 1.0 / np.sqrt(1.0 - h)
    m = -np.outer(h * s, h * s)
    m[np.diag_indices_from(m)] += h * s * s
    return float(np.trace(m) ** 2 / np.sum(m * m))


def _leverage(sums: ScoreSums, what: str) -> np.ndarray:
    """Return the clusters' leverages; raise NotEstimableError when one is not below 1."""
    h = sums.leverage
    if not np.all(h < 1):
        raise NotEstimableError(
            f"{what} needs every cluster's share of the score's derivative below 1; "
            f"the largest is {float(np.max(h)):.3f}",
            hint="use inference='wild' (wild cluster bootstrap) or 'cluster'",
            column="inference",
        )
    return h


@dataclass(frozen=True)
class ScoreCR2:
    """CR2 standard error of a linear-score estimate, its degrees of freedom and leverage."""

    estimate: float
    std_error: float
    df: float
    n_clusters: int
    max_leverage: float


def cr2_score(sums: ScoreSums) -> ScoreCR2:
    """Bell-McCaffrey CR2 standard error and Satterthwaite df (see the module docstring).

    For scores whose derivative changes sign between clusters (IV-type scores: PLIV,
    IIVM, whose ``-A_g`` is the cluster's ``Z_g'D_g``) the leverage is that of the
    just-identified IV projection ``X (Z'X)^-1 Z'``, which can be negative; ``Z_g'`` is a
    left eigenvector of its cluster block, so the CR2 adjustment is again
    ``1 / (1 - h_g)``. The degrees of freedom use the same formula (derived for the
    regression case).

    Raises
    ------
    NotEstimableError
        When a cluster's leverage is not below 1 (it carries all of the score's
        derivative): CR2 is then not defined.

    Examples
    --------
    >>> s = ScoreSums(np.array([-1.0, -1.0, -2.0]), np.array([1.2, 0.8, 3.0]))
    >>> r = cr2_score(s)
    >>> round(r.estimate, 3), round(r.std_error, 4), round(r.df, 3)
    (1.25, 0.2198, 1.8)
    """
    h = _leverage(sums, "CR2")
    s = sums.scores()
    var = float(np.sum(s**2 / (1.0 - h)) / sums.a.sum() ** 2)
    return ScoreCR2(sums.theta, float(np.sqrt(var)), bm_df(h), sums.n_clusters, float(h.max()))


def cv3_score(sums: ScoreSums) -> ScoreCR2:
    """Leave-one-cluster-out jackknife (CV3) standard error, ``t(G-1)`` degrees of freedom.

    Dropping cluster ``g`` from the score equation gives
    ``theta_(g) = -(sum B - B_g) / (sum A - A_g)``, so
    ``theta_hat - theta_(g) = -S_g / (sum A (1 - h_g))`` and
    ``CV3 = (G-1)/G sum_g (theta_(g) - theta_hat)^2``, centred at the estimate
    (MacKinnon, Nielsen & Webb 2023, "Fast and reliable jackknife and bootstrap
    methods for cluster-robust inference"). It corrects each cluster's score by
    ``1/(1 - h_g)`` where CR2 uses ``1/sqrt(1 - h_g)``: more conservative.

    Examples
    --------
    >>> s = ScoreSums(np.array([-1.0, -1.0, -2.0]), np.array([1.2, 0.8, 3.0]))
    >>> loo = [-(s.b.sum() - s.b[g]) / (s.a.sum() - s.a[g]) for g in range(3)]
    >>> direct = np.sqrt(2 / 3 * np.sum((np.array(loo) - s.theta) ** 2))
    >>> bool(np.isclose(cv3_score(s).std_error, direct)), cv3_score(s).df
    (True, 2.0)
    """
    h = _leverage(sums, "the jackknife")
    g = sums.n_clusters
    shift = sums.scores() / (sums.a.sum() * (1.0 - h))
    var = float((g - 1) / g * np.sum(shift**2))
    return ScoreCR2(sums.theta, float(np.sqrt(var)), float(g - 1), g, float(h.max()))


def score_wild_bootstrap(
    sums: ScoreSums,
    *,
    weights: str = "rademacher",
    reps: int = 9999,
    rng: np.random.Generator,
    level: float = 0.95,
    null: float = 0.0,
) -> tuple[WildResult, WildBootstrap]:
    """Restricted wild cluster bootstrap (WCR) of a linear-score estimate.

    The cluster sums are the sufficient statistics of the final-stage regression
    (``X_g'X_g = -A_g``, ``X_g'y_g = B_g``), so this is
    :class:`~evalkit.inference.wild.WildBootstrap` on that regression, with the CR1
    factor ``G/(G-1)`` (it cancels from p-values and intervals). Rademacher weights are
    enumerated when ``2^G <= reps``. Returns the test and the problem (whose
    :meth:`~evalkit.inference.wild.WildBootstrap.interval` gives other levels).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = -rng.uniform(0.5, 1.5, 12); b = -a * (0.3 + rng.normal(0, 0.2, 12))
    >>> res, _ = score_wild_bootstrap(ScoreSums(a, b), rng=np.random.default_rng(1))
    >>> res.enumerated, res.reps, res.conf_low < res.estimate < res.conf_high
    (True, 4096, True)
    """
    g = sums.n_clusters
    xtx = -sums.a
    stats = ClusterStats(
        x=np.zeros((0, 1)),
        y=np.zeros(0),
        codes=np.arange(g),
        n_clusters=g,
        xtx_g=xtx[:, None, None],
        xty_g=sums.b[:, None],
        inv=np.array([[1.0 / xtx.sum()]]),
        beta=np.array([sums.theta]),
    )
    problem = WildBootstrap(None, None, None, stats=stats, ssc=g / (g - 1))  # type: ignore[arg-type]
    result = problem.test(null=null, weights=weights, reps=reps, rng=rng, level=level)
    return result, problem
