r"""Covariate adjustment of the outcome matrix for synthetic DiD ("projected" method).

Following Kranz (2022) and the ``projected`` option of Stata's ``sdid`` (Clarke et al.
2023), the coefficients of time-varying covariates are estimated by a two-way
fixed-effects regression of the outcome on the covariates on the never-treated units
only (whose outcomes no treatment touches), and the synthetic DiD is run on the
residualised outcome :math:`Y_{it} - X_{it}'\hat\beta` of every unit. On a balanced
panel the two-way within transformation is exact in closed form.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from evalkit.errors import NotEstimableError

__all__ = ["project_out"]


def _within(m: np.ndarray) -> np.ndarray:
    return m - m.mean(axis=1, keepdims=True) - m.mean(axis=0, keepdims=True) + m.mean()


def project_out(
    y: np.ndarray, covariates: Mapping[str, np.ndarray], n_donors: int
) -> tuple[np.ndarray, dict[str, float]]:
    """Return the residualised outcome matrix and the coefficients of the covariates.

    Parameters
    ----------
    y
        Outcome matrix, donors in the first ``n_donors`` rows.
    covariates
        Name -> matrix of the shape of ``y``.
    n_donors
        Number of never-treated rows used to estimate the coefficients.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(6, 5))
    >>> y = 2.0 * x + rng.normal(size=(6, 1)) + rng.normal(size=(1, 5))
    >>> _, beta = project_out(y, {"x": x}, 4)
    >>> round(beta["x"], 6)
    2.0
    """
    names = list(covariates)
    if not names:
        return y, {}
    yd = _within(y[:n_donors]).ravel()
    xd = np.column_stack([_within(covariates[k][:n_donors]).ravel() for k in names])
    scale = np.sqrt((xd**2).sum(axis=0))
    flat = scale <= 1e-12 * max(1.0, float(np.abs(xd).max(initial=0.0)))
    if flat.any():
        bad = names[int(np.flatnonzero(flat)[0])]
        raise NotEstimableError(
            f"covariate {bad!r} has no variation within units and periods among the donors, "
            "so its coefficient is absorbed by the unit and time effects",
            hint="drop it from covariates (time-invariant covariates are absorbed)",
            column=bad,
        )
    rank = np.linalg.matrix_rank(xd / scale)
    if rank < len(names):
        raise NotEstimableError(
            f"the covariates {names} are collinear among the donors after removing unit and "
            "time effects",
            hint="drop one of the collinear covariates",
            column="covariates",
        )
    beta, *_ = np.linalg.lstsq(xd, yd, rcond=None)
    adjusted = y - sum(b * covariates[k] for b, k in zip(beta, names, strict=True))
    return adjusted, {k: float(b) for k, b in zip(names, beta, strict=True)}
