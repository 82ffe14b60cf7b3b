"""Absorbing fixed effects: the within transformation.

Regressing on many dummy variables is replaced by removing their span from every
column ("demeaning"). With one factor, or two factors on a complete (balanced) grid
without weights, this is a closed form computed in one pass over the data; otherwise
the method of alternating projections (Gaure 2013) is used, with Irons-Tuck
extrapolation every second sweep, which converges to the same projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from evalkit.errors import ConvergenceError

__all__ = ["WithinTransform", "group_sums"]


def group_sums(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum ``values`` (1-D or 2-D by column) within integer-coded groups.

    Examples
    --------
    >>> group_sums(np.array([0, 1, 0]), np.array([1.0, 2.0, 3.0]), 2)
    array([4., 2.])
    """
    if values.ndim == 1:
        return np.bincount(codes, weights=values, minlength=n_groups)
    out = np.empty((n_groups, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(codes, weights=values[:, j], minlength=n_groups)
    return out


@dataclass(frozen=True, eq=False)
class WithinTransform:
    """Projection off the span of one or more sets of group dummies.

    Parameters
    ----------
    factors
        Integer codes ``0..n-1`` per factor (e.g. unit and time codes), one array each.
    weights
        Optional non-negative observation weights (weighted projection).
    tol
        Convergence tolerance of alternating projections: the largest change of any
        demeaned value in a sweep, relative to the column's scale.
    max_iter
        Maximum number of sweeps before a :class:`~evalkit.errors.ConvergenceError`.

    Examples
    --------
    >>> unit = np.array([0, 0, 1, 1]); time = np.array([0, 1, 0, 1])
    >>> wt = WithinTransform((unit, time))
    >>> wt.demean(np.array([1.0, 2.0, 3.0, 6.0]))
    array([ 0.5, -0.5, -0.5,  0.5])
    """

    factors: tuple[np.ndarray, ...]
    weights: np.ndarray | None = None
    tol: float = 1e-10
    max_iter: int = 10_000
    n_levels: tuple[int, ...] = field(init=False)
    closed_form: bool = field(init=False)
    grid_order: bool = field(init=False)

    def __post_init__(self) -> None:
        factors = tuple(np.asarray(f, dtype=np.int64) for f in self.factors)
        object.__setattr__(self, "factors", factors)
        levels = tuple(int(f.max()) + 1 if len(f) else 0 for f in factors)
        object.__setattr__(self, "n_levels", levels)
        closed = len(factors) == 1
        grid = False
        if len(factors) == 2 and self.weights is None:
            n = len(factors[0])
            if n == levels[0] * levels[1]:
                cell = factors[0] * levels[1] + factors[1]
                # rows in unit-major order on the full grid: reshape instead of gathering
                grid = bool(np.array_equal(cell, np.arange(n)))
                closed = grid or bool(np.bincount(cell, minlength=n).max() == 1)
        object.__setattr__(self, "closed_form", closed)
        object.__setattr__(self, "grid_order", grid)

    @cached_property
    def _counts(self) -> list[np.ndarray]:
        """(Weighted) number of observations per level of each factor."""
        return [
            group_sums(f, self.weights, k)
            if self.weights is not None
            else np.bincount(f, minlength=k).astype(float)
            for f, k in zip(self.factors, self.n_levels, strict=True)
        ]

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return len(self.factors[0])

    def redundant(self) -> int:
        """Return the number of linearly dependent dummies across the factors.

        One per connected component for two factors (exact); ``n_factors - 1`` beyond
        that is a lower bound used for three or more factors.
        """
        if len(self.factors) == 1:
            return 0
        if self.closed_form:
            return 1  # a complete grid is one connected component
        a, b = self.factors[0], self.factors[1]
        na, nb = self.n_levels[0], self.n_levels[1]
        from scipy import sparse  # imported on first use: SciPy is slow to import
        from scipy.sparse import csgraph

        graph = sparse.coo_matrix((np.ones(len(a)), (a, b + na)), shape=(na + nb, na + nb)).tocsr()
        n_comp, _ = csgraph.connected_components(graph, directed=False)
        return int(n_comp) + max(0, len(self.factors) - 2)

    def n_absorbed(self) -> int:
        """Return the number of free fixed-effect parameters (levels minus redundancies)."""
        return int(sum(self.n_levels)) - self.redundant()

    def _means(self, f: int, x: np.ndarray) -> np.ndarray:
        codes = self.factors[f]
        wx = x if self.weights is None else x * self.weights
        sums = np.bincount(codes, weights=wx, minlength=self.n_levels[f])
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(self._counts[f] > 0, sums / self._counts[f], 0.0)
        return means[codes]

    def demean(self, x: np.ndarray) -> np.ndarray:
        """Return ``x`` (1-D, or 2-D by column) with the fixed effects projected out.

        The input is not modified.
        """
        arr = np.asarray(x, dtype=float)
        if arr.ndim == 1:
            return self._demean_column(arr)
        out = np.empty_like(arr)
        for j in range(arr.shape[1]):
            out[:, j] = self._demean_column(arr[:, j])
        return out

    def _demean_column(self, x: np.ndarray) -> np.ndarray:
        if len(self.factors) == 1:
            return x - self._means(0, x)
        if self.grid_order:
            table = x.reshape(self.n_levels)
            rows = table.mean(axis=1, keepdims=True)
            cols = table.mean(axis=0, keepdims=True)
            return (table - rows - cols + table.mean()).ravel()
        if self.closed_form:
            grand = x.mean()
            return x - self._means(0, x) - self._means(1, x) + grand
        return self._alternating(x)

    def _sweep(self, x: np.ndarray) -> np.ndarray:
        for f in range(len(self.factors)):
            x = x - self._means(f, x)
        return x

    def _alternating(self, x: np.ndarray) -> np.ndarray:
        scale = max(1.0, float(np.max(np.abs(x))) if len(x) else 1.0)
        cur = self._sweep(x)
        for _ in range(self.max_iter):
            one = self._sweep(cur)
            two = self._sweep(one)
            change = float(np.max(np.abs(two - one))) if len(x) else 0.0
            if change <= self.tol * scale:
                return two
            # Irons-Tuck extrapolation of the linear fixed-point iteration
            d1 = two - one
            d2 = two - 2.0 * one + cur
            denom = float(d2 @ d2)
            cur = two - (float(d1 @ d2) / denom) * d1 if denom > 0 else two
        raise ConvergenceError(
            f"alternating projections did not converge in {self.max_iter} sweeps",
            hint="the fixed effects may be weakly connected; check the panel with "
            "evalkit.data.Panel(...).describe() or raise max_iter",
            code="C001",
        )

    def with_factors(self, factors: Sequence[np.ndarray]) -> WithinTransform:
        """Return a transform over other factors with the same weights and tolerances."""
        return WithinTransform(tuple(factors), self.weights, self.tol, self.max_iter)
