"""Least squares with fixed effects absorbed, for the regression-based DiD estimators.

Dropping rows that carry no information (:func:`prune`: zero weights and, repeatedly,
singleton levels of any fixed effect; :func:`warn_dropped`), the absorbed fit
(:func:`absorbed_ols`, :class:`AbsorbedFit`) with its rank check (:func:`check_rank`),
and the exact number of free fixed-effect parameters (:func:`absorbed_rank`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from evalkit.errors import NotEstimableError, RowsDroppedWarning
from evalkit.numerics.within import WithinTransform

if TYPE_CHECKING:  # pragma: no cover
    from scipy import sparse

__all__ = [
    "AbsorbedFit",
    "absorbed_ols",
    "absorbed_rank",
    "check_rank",
    "prune",
    "warn_dropped",
]


def prune(
    factors: Sequence[tuple[np.ndarray, int]],
    w: np.ndarray | None,
    singletons: bool,
    label: str = "singleton units or periods",
    complete: bool = False,
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows to keep: positive weight and (optionally) no singleton level of any factor.

    Singletons are removed repeatedly until none is left (as reghdfe and pyfixest do):
    a level observed once is fitted exactly by its own effect and says nothing about
    the coefficients.

    Parameters
    ----------
    factors
        ``(codes, n_levels)`` of every absorbed factor.
    w
        Observation weights or None.
    singletons
        Whether to drop singletons.
    label
        How the singletons are described in the returned reasons.
    complete
        The caller knows the rows form a complete grid of at least two levels per factor
        (no singletons, nothing to check).

    Returns
    -------
    keep : numpy.ndarray
        Boolean mask of rows to keep.
    reasons : dict
        Number of rows dropped, by reason (empty when nothing is dropped).

    Examples
    --------
    >>> u = np.array([0, 0, 1]); t = np.array([0, 1, 0])
    >>> keep, why = prune([(u, 2), (t, 2)], None, True)
    >>> keep.tolist(), why
    ([False, False, False], {'singleton units or periods': 3})
    """
    n = len(factors[0][0])
    keep = np.ones(n, dtype=bool) if w is None else w > 0
    reasons: dict[str, int] = {}
    if complete and w is None:
        return keep, reasons  # a complete grid has no singletons
    if w is not None and not keep.all():
        reasons["with zero weight"] = int((~keep).sum())
    if singletons:
        before = int(keep.sum())
        while True:
            changed = False
            for codes, size in factors:
                counts = np.bincount(codes[keep], minlength=size)
                single = keep & (counts[codes] == 1)
                if single.any():
                    keep &= ~single
                    changed = True
            if not changed:
                break
        if int(keep.sum()) < before:
            reasons[label] = before - int(keep.sum())
    return keep, reasons


def warn_dropped(reasons: Mapping[str, int], n_rows: int, stacklevel: int = 4) -> None:
    """Issue one RowsDroppedWarning listing the rows dropped by reason."""
    total = int(sum(reasons.values()))
    warnings.warn(
        f"dropped {total} of {n_rows} rows that carry no information about the "
        f"coefficients ({'; '.join(f'{n} {r}' for r, n in reasons.items())})",
        RowsDroppedWarning,
        stacklevel=stacklevel,
    )


# ---------------------------------------------------------------------------- fitting
@dataclasses.dataclass(frozen=True)
class AbsorbedFit:
    """Least squares with fixed effects absorbed (rows scaled by sqrt of the weights).

    Attributes
    ----------
    names : list of str
        Regressor names.
    beta : numpy.ndarray
        Coefficients.
    bread : numpy.ndarray
        ``(X~'X~)^{-1}`` of the transformed regressors.
    xt, yt, resid : numpy.ndarray
        Transformed regressors and outcome, and residuals.
    """

    names: list[str]
    beta: np.ndarray
    bread: np.ndarray
    xt: np.ndarray
    yt: np.ndarray
    resid: np.ndarray

    @property
    def n(self) -> int:
        """Number of observations."""
        return len(self.yt)

    @property
    def k(self) -> int:
        """Number of regressors."""
        return len(self.beta)

    def r2_within(self) -> float:
        """Return the within R-squared."""
        ss_tot = float(self.yt @ self.yt)
        return 1.0 - float(self.resid @ self.resid) / ss_tot if ss_tot > 0 else math.nan


def absorbed_ols(
    y: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    within: WithinTransform,
    w: np.ndarray | None,
    absorbed_by: str,
    hint: str | None = None,
) -> AbsorbedFit:
    """Fit ``y`` on ``x`` with the fixed effects of ``within`` absorbed.

    Raises :class:`~evalkit.errors.NotEstimableError` naming the first regressor that
    is collinear with the fixed effects or the other regressors.

    Examples
    --------
    >>> u = np.array([0, 0, 1, 1]); t = np.array([0, 1, 0, 1])
    >>> d = np.array([[0.0], [0.0], [0.0], [1.0]])
    >>> fit = absorbed_ols(np.array([1.0, 2.0, 3.0, 6.0]), d, ["d"],
    ...                    WithinTransform((u, t)), None, "unit and time")
    >>> float(fit.beta[0])
    2.0
    """
    names = list(names)
    yt = within.demean(y)
    xt = within.demean(x)
    if w is not None:
        sw = np.sqrt(w)
        yt = yt * sw
        xt = xt * sw[:, None]
    check_rank(xt, x, names, absorbed_by, w, hint=hint)
    bread = np.linalg.inv(xt.T @ xt)
    beta = bread @ (xt.T @ yt)
    resid = yt - xt @ beta
    return AbsorbedFit(names=names, beta=beta, bread=bread, xt=xt, yt=yt, resid=resid)


def check_rank(
    xt: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    absorbed_by: str,
    w: np.ndarray | None,
    hint: str | None = None,
) -> None:
    """Raise NotEstimableError naming the first regressor absorbed by the fixed effects.

    ``absorbed_by`` names the fixed effects in the message (e.g. ``"unit and year"``).
    """
    raw = x - np.average(x, axis=0, weights=w)
    if w is not None:
        raw = raw * np.sqrt(w)[:, None]
    raw_norm = np.sqrt((raw**2).sum(axis=0))
    if xt.shape[1] == 0:
        return
    try:
        # the diagonal of the Cholesky factor of X'X is that of R in X = QR (fast), but
        # squaring X loses half the digits: an exactly collinear column leaves a pivot of
        # about sqrt(eps) instead of eps, so doubtful cases are decided by QR of X itself
        diag = np.abs(np.diag(np.linalg.cholesky(xt.T @ xt)))
        if not np.all(diag > 1e-6 * raw_norm):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        diag = np.abs(np.diag(np.linalg.qr(xt, mode="r")))
    for j, name in enumerate(names):
        if raw_norm[j] == 0 or not diag[j] > 1e-9 * raw_norm[j]:
            raise NotEstimableError(
                f"{name!r} cannot be estimated: it is collinear with the {absorbed_by} fixed "
                "effects or with the other regressors",
                hint=hint
                or f"drop {name!r}; time-invariant covariates are absorbed by the unit effects",
                column=name,
            )


def absorbed_rank(
    factors: Sequence[np.ndarray], within: WithinTransform | None = None, max_dense: int = 6000
) -> tuple[int, bool]:
    """Return the number of free fixed-effect parameters and whether it is exact.

    One factor: its number of levels. Two factors: levels minus connected components
    (exact). Three or more: the rank of the dummy matrix, computed on the distinct
    cells as the levels of the largest factor plus the rank of the others' Gram matrix
    with that factor projected out (exact while the others have at most ``max_dense``
    levels in total; otherwise the lower bound of :meth:`WithinTransform.n_absorbed` is
    returned with ``False``).

    Examples
    --------
    >>> u, g, t = np.meshgrid(np.arange(3), np.arange(2), np.arange(4), indexing="ij")
    >>> u, g, t = u.ravel(), g.ravel(), t.ravel()
    >>> absorbed_rank([u * 2 + g, t * 2 + g, u * 4 + t])  # UG+TG+UT-U-G-T+1
    (18, True)
    """
    codes = [np.unique(np.asarray(f), return_inverse=True)[1].astype(np.int64) for f in factors]
    if len(codes) <= 2:
        wt = within if within is not None else WithinTransform(tuple(codes))
        return wt.n_absorbed(), True
    levels = [int(c.max()) + 1 for c in codes]
    base = int(np.argmax(levels))
    others = [i for i in range(len(codes)) if i != base]
    if sum(levels[i] for i in others) > max_dense:
        wt = within if within is not None else WithinTransform(tuple(codes))
        return wt.n_absorbed(), False
    from scipy import sparse  # imported on first use: SciPy is slow to import

    cells = np.unique(np.column_stack(codes), axis=0)
    n_cells = len(cells)
    rows = np.arange(n_cells)

    def onehot(col: np.ndarray, size: int) -> sparse.csr_matrix:
        return sparse.csr_matrix((np.ones(n_cells), (rows, col)), shape=(n_cells, size))

    m = onehot(cells[:, base], levels[base])
    r = sparse.hstack([onehot(cells[:, i], levels[i]) for i in others], format="csr")
    counts = np.asarray(m.sum(axis=0)).ravel()
    mr = (m.T @ r).tocsr()  # sparse: each level of the base factor meets few others
    gram = (r.T @ r).toarray() - (mr.T @ sparse.diags(1.0 / counts) @ mr).toarray()
    vals = np.linalg.eigvalsh((gram + gram.T) / 2.0)
    tol = max(vals.max(initial=0.0), 1.0) * 1e-9
    return levels[base] + int((vals > tol).sum()), True
