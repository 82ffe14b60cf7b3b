r"""Synthetic DiD on one block (a set of treated units adopting in the same period).

Definitions follow the R synthdid package (Arkhangelsky, Athey, Hirshberg, Imbens and
Wager 2021). ``y`` is ``N x T`` with the ``N0`` controls first and the ``T0``
pre-periods first.

* noise level :math:`\hat\sigma`: the standard deviation (denominator ``n - 1``) of
  the first differences over the pre-periods of every control unit;
* ``variant="sdid"``: unit weights with intercept and
  :math:`\zeta_\omega = (N_{tr} T_{post})^{1/4} \hat\sigma`; time weights with
  intercept and :math:`\zeta_\lambda = 10^{-6} \hat\sigma`;
* ``variant="sc"``: unit weights without intercept and
  :math:`\zeta_\omega = 10^{-6} \hat\sigma`; no time weights (the estimate compares
  post-period means only);
* ``variant="did"``: uniform unit and time weights;
* both weight problems are solved on the collapsed form (treated units averaged,
  post-periods averaged) by :func:`~evalkit.synth.frank_wolfe.solve_weights` with
  ``min_decrease = 1e-5 \hat\sigma``, 100 iterations before sparsification and 10,000
  after;
* the estimate is :math:`(-\omega, 1/N_{tr})^\top Y (-\lambda, 1/T_{post})`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from evalkit.synth.frank_wolfe import solve_weights

__all__ = ["BlockFit", "BlockSettings", "block_estimate", "fit_block", "noise_level"]

Variant = Literal["sdid", "sc", "did"]


def noise_level(y: np.ndarray, n0: int, t0: int) -> float:
    """Return the standard deviation of the controls' first differences over the pre-periods."""
    diffs = np.diff(y[:n0, :t0], axis=1)
    if diffs.size < 2:
        return 0.0
    return float(np.std(diffs, ddof=1))


@dataclass(frozen=True)
class BlockSettings:
    """Tuning of one block's weight problems (kept fixed across placebo/bootstrap draws)."""

    variant: Variant
    zeta_omega: float
    zeta_lambda: float
    min_decrease: float
    max_iter: int = 10_000
    max_iter_pre: int = 100
    sparsify: bool = True

    @classmethod
    def default(
        cls,
        y: np.ndarray,
        n0: int,
        t0: int,
        variant: Variant,
        *,
        max_iter: int = 10_000,
        sparsify: bool = True,
    ) -> BlockSettings:
        """Return the R synthdid defaults for this block."""
        n1, t1 = y.shape[0] - n0, y.shape[1] - t0
        sigma = noise_level(y, n0, t0)
        eta_omega = (n1 * t1) ** 0.25 if variant == "sdid" else 1e-6
        return cls(
            variant=variant,
            zeta_omega=eta_omega * sigma,
            zeta_lambda=1e-6 * sigma,
            min_decrease=max(1e-5 * sigma, 1e-12),
            max_iter=max_iter,
            sparsify=sparsify,
        )


@dataclass(frozen=True)
class BlockFit:
    """Weights and estimate of one block."""

    omega: np.ndarray
    lam: np.ndarray
    estimate: float
    settings: BlockSettings


def collapsed(y: np.ndarray, n0: int, t0: int) -> np.ndarray:
    """Return the ``(N0+1) x (T0+1)`` collapsed form (treated rows, post columns averaged)."""
    top = np.column_stack([y[:n0, :t0], y[:n0, t0:].mean(axis=1)])
    bottom = np.r_[y[n0:, :t0].mean(axis=0), y[n0:, t0:].mean()]
    return np.vstack([top, bottom])


def unit_problem(yc: np.ndarray, n0: int, t0: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(A, b)`` of the unit-weight problem (controls' pre-periods vs treated)."""
    return yc[:n0, :t0].T, yc[n0, :t0]


def time_problem(yc: np.ndarray, n0: int, t0: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(A, b)`` of the time-weight problem (pre-periods vs post mean, controls)."""
    return yc[:n0, :t0], yc[:n0, t0]


def block_estimate(y: np.ndarray, n0: int, t0: int, omega: np.ndarray, lam: np.ndarray) -> float:
    """Return the weighted double difference for given unit and time weights."""
    n1, t1 = y.shape[0] - n0, y.shape[1] - t0
    u = np.r_[-omega, np.full(n1, 1.0 / n1)]
    v = np.r_[-lam, np.full(t1, 1.0 / t1)]
    return float(u @ y @ v)


def fit_block(
    y: np.ndarray,
    n0: int,
    t0: int,
    settings: BlockSettings,
    *,
    omega0: np.ndarray | None = None,
    lambda0: np.ndarray | None = None,
) -> BlockFit:
    """Solve the unit and time weights of one block and return them with the estimate.

    ``omega0`` and ``lambda0`` only initialise the solver (as in the R package's
    placebo and bootstrap replications).
    """
    omega, lam = block_weights(y[None], n0, t0, settings, omega0=omega0, lambda0=lambda0)
    return BlockFit(omega[0], lam[0], block_estimate(y, n0, t0, omega[0], lam[0]), settings)


def block_weights(
    ys: np.ndarray,
    n0: int,
    t0: int,
    settings: BlockSettings,
    *,
    omega0: np.ndarray | None = None,
    lambda0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights of a batch of blocks of one shape, ``ys`` of shape ``(B, N, T)``."""
    n_batch = ys.shape[0]
    if settings.variant == "did":
        return np.full((n_batch, n0), 1.0 / n0), np.full((n_batch, t0), 1.0 / t0)
    top = ys[:, :n0, :t0]
    post_mean = ys[:, :n0, t0:].mean(axis=2)
    treated_pre = ys[:, n0:, :t0].mean(axis=1)
    common = dict(
        min_decrease=settings.min_decrease,
        max_iter=settings.max_iter,
        max_iter_pre=settings.max_iter_pre,
        sparse=settings.sparsify,
    )
    if settings.variant == "sc":
        lam = np.zeros((n_batch, t0))
    else:
        lam = solve_weights(
            top, post_mean, settings.zeta_lambda, intercept=True, x0=lambda0, **common
        )
    omega = solve_weights(
        np.swapaxes(top, 1, 2),
        treated_pre,
        settings.zeta_omega,
        intercept=settings.variant == "sdid",
        x0=omega0,
        **common,
    )
    return omega, lam
