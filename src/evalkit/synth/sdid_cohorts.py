"""Synthetic DiD over adoption cohorts and its variance by placebo, jackknife and bootstrap.

Staggered adoption is handled as Clarke, Pailanir, Athey and Imbens (2023) and Stata's
``sdid`` do: one block SDID per cohort (the cohort's units against the never-treated
donors, over all periods, with the periods before adoption as pre-periods), and an
average of the cohort estimates weighted by each cohort's number of treated
unit-periods :math:`N_c T^{post}_c`. With one cohort this is the block estimator.

The variance methods follow the R synthdid package's ``vcov`` (placebo and bootstrap
re-solve the weights from the original ones as a starting point, with the original
regularisation; the jackknife keeps the weights fixed) and extend them cohort by
cohort as Stata's ``sdid`` does. Every draw yields the overall, per-cohort and
event-time estimates, so all of them get standard errors from the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalkit.errors import DesignError
from evalkit.synth.sdid_block import BlockSettings, Variant, block_weights

__all__ = ["CohortFit", "Draws", "StaggeredFit", "fit_cohorts", "variance_draws"]


@dataclass(frozen=True)
class CohortFit:
    """One cohort's block fit: weights, per-period effects and the estimate."""

    start: int
    rows: tuple[int, ...]
    omega: np.ndarray
    lam: np.ndarray
    effects: np.ndarray  # per period: treated mean minus shifted synthetic
    synthetic: np.ndarray  # per period: omega' Y_donors
    treated_mean: np.ndarray
    estimate: float
    settings: BlockSettings


@dataclass(frozen=True)
class StaggeredFit:
    """All cohorts' fits and their weighted average."""

    cohorts: tuple[CohortFit, ...]
    cohort_weights: np.ndarray
    estimate: float
    n_donors: int
    n_periods: int

    def event_effects(self) -> tuple[np.ndarray, np.ndarray]:
        """Return event times and effects averaged over cohorts (weights: cohort sizes)."""
        return aggregate_events(
            [c.start for c in self.cohorts],
            [len(c.rows) for c in self.cohorts],
            np.stack([c.effects for c in self.cohorts])[:, None, :],
            self.n_periods,
        )


def _effects(
    ys: np.ndarray, n0: int, t0: int, omega: np.ndarray, lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched per-period effects: returns (estimate, effects, synthetic, treated mean)."""
    treated = ys[:, n0:, :].mean(axis=1)
    synthetic = np.einsum("bn,bnt->bt", omega, ys[:, :n0, :])
    gap = treated - synthetic
    base = np.einsum("bt,bt->b", lam, gap[:, :t0])
    effects = gap - base[:, None]
    return effects[:, t0:].mean(axis=1), effects, synthetic, treated


def cohort_weights(starts: Sequence[int], sizes: Sequence[int], n_periods: int) -> np.ndarray:
    """Weights of the cohort estimates: treated unit-periods, normalised."""
    w = np.array([n * (n_periods - s) for s, n in zip(starts, sizes, strict=True)], dtype=float)
    return w / w.sum()


def aggregate_events(
    starts: Sequence[int], sizes: Sequence[int], effects: np.ndarray, n_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Average per-period effects by event time over cohorts.

    ``effects`` is ``(n_cohorts, B, T)``; the result is event times ``e`` and a
    ``(B, len(e))`` array, each event time averaged over the cohorts observed at it with
    weights proportional to the cohorts' numbers of units.
    """
    starts = list(starts)
    low, high = -max(starts), n_periods - 1 - min(starts)
    events = np.arange(low, high + 1)
    total = np.zeros((effects.shape[1], len(events)))
    mass = np.zeros(len(events))
    for c, (s, n) in enumerate(zip(starts, sizes, strict=True)):
        pos = np.arange(n_periods) - s - low
        total[:, pos] += n * effects[c]
        mass[pos] += n
    return events, total / mass


def fit_cohorts(
    y: np.ndarray,
    n0: int,
    cohorts: Sequence[tuple[int, Sequence[int]]],
    variant: Variant,
    *,
    max_iter: int = 10_000,
    sparsify: bool = True,
) -> StaggeredFit:
    """Fit every cohort's block and average them.

    Parameters
    ----------
    y
        The wide outcome matrix, donors in rows ``0..n0-1``.
    cohorts
        ``(start, rows)`` per cohort: the first treated column and the cohort's rows.
    """
    fits = []
    for start, rows in cohorts:
        block = np.vstack([y[:n0], y[list(rows)]])
        settings = BlockSettings.default(
            block, n0, start, variant, max_iter=max_iter, sparsify=sparsify
        )
        omega, lam = block_weights(block[None], n0, start, settings)
        est, eff, syn, tr = _effects(block[None], n0, start, omega, lam)
        fits.append(
            CohortFit(
                start=start,
                rows=tuple(rows),
                omega=omega[0],
                lam=lam[0],
                effects=eff[0],
                synthetic=syn[0],
                treated_mean=tr[0],
                estimate=float(est[0]),
                settings=settings,
            )
        )
    weights = cohort_weights([f.start for f in fits], [len(f.rows) for f in fits], y.shape[1])
    estimate = float(weights @ np.array([f.estimate for f in fits]))
    return StaggeredFit(tuple(fits), weights, estimate, n0, y.shape[1])


@dataclass(frozen=True)
class Draws:
    """Replicate estimates: overall ``(B,)``, per cohort ``(C, B)``, event time ``(B, E)``."""

    overall: np.ndarray
    cohorts: np.ndarray
    events: np.ndarray
    event_times: np.ndarray


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rescale non-negative weights to sum to one (uniform if they sum to zero), per row."""
    total = x.sum(axis=-1, keepdims=True)
    uniform = np.full_like(x, 1.0 / x.shape[-1])
    return np.where(total > 0, x / np.where(total > 0, total, 1.0), uniform)


def _collect(
    fit: StaggeredFit, per_cohort: list[tuple[np.ndarray, np.ndarray]], sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Combine per-cohort draws ``(estimates (B,), effects (B, T))`` into aggregates.

    ``sizes`` is ``(C, B)``: each cohort's number of treated units in each draw (zero when
    a bootstrap draw has none of its units; the cohort then drops out of that draw).
    """
    starts = np.array([c.start for c in fit.cohorts])
    n_periods = fit.n_periods
    est = np.stack([p[0] for p in per_cohort])  # (C, B)
    eff = np.stack([p[1] for p in per_cohort])  # (C, B, T)
    mass = sizes * (n_periods - starts)[:, None]
    overall = (mass * np.nan_to_num(est)).sum(axis=0) / mass.sum(axis=0)
    low, high = -starts.max(), n_periods - 1 - starts.min()
    events = np.arange(low, high + 1)
    total = np.zeros((est.shape[1], len(events)))
    weight = np.zeros((est.shape[1], len(events)))
    for c, s in enumerate(starts):
        pos = np.arange(n_periods) - s - low
        total[:, pos] += sizes[c][:, None] * np.nan_to_num(eff[c])
        weight[:, pos] += sizes[c][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ev = total / weight
    return overall, est, ev, events


def placebo_draws(y: np.ndarray, fit: StaggeredFit, reps: int, rng: np.random.Generator) -> Draws:
    """Placebo replications: donors reassigned at random to the treated units' cohorts.

    Each replication permutes the donors, gives the last ``N_tr`` the cohort structure
    of the treated units and re-estimates on donors only, with each cohort's weights
    initialised at the original ones and its regularisation fixed.
    """
    n0 = fit.n_donors
    sizes = [len(c.rows) for c in fit.cohorts]
    n1 = sum(sizes)
    if n0 <= n1:
        raise DesignError(
            f"placebo inference needs more donors than treated units ({n0} donors, {n1} treated)",
            hint="use inference='jackknife' or 'bootstrap' (several treated units), or add donors",
            column="inference",
        )
    perms = np.stack([rng.permutation(n0) for _ in range(reps)])  # (B, n0)
    controls = perms[:, : n0 - n1]
    per_cohort = []
    offset = n0 - n1
    for c, cf in zip(range(len(sizes)), fit.cohorts, strict=True):
        fake = perms[:, offset : offset + sizes[c]]
        offset += sizes[c]
        rows = np.concatenate([controls, fake], axis=1)
        ys = y[rows]  # (B, n0 - n1 + n_c, T)
        omega0 = _normalise(cf.omega[controls])
        omega, lam = block_weights(
            ys, n0 - n1, cf.start, cf.settings, omega0=omega0, lambda0=cf.lam
        )
        est, eff, _, _ = _effects(ys, n0 - n1, cf.start, omega, lam)
        per_cohort.append((est, eff))
    size_arr = np.repeat(np.array(sizes, dtype=float)[:, None], reps, axis=1)
    return Draws(*_collect(fit, per_cohort, size_arr))


def bootstrap_draws(y: np.ndarray, fit: StaggeredFit, reps: int, rng: np.random.Generator) -> Draws:
    """Resample units (bootstrap); draws without donors or without treated are redrawn."""
    n0 = fit.n_donors
    n_units = y.shape[0]
    row_cohort = np.full(n_units, -1)
    for c, cf in enumerate(fit.cohorts):
        row_cohort[list(cf.rows)] = c
    n_treated = int((row_cohort >= 0).sum())
    if n_treated < 2:
        raise DesignError(
            "bootstrap inference needs more than one treated unit "
            f"(this design has {n_treated}): resampling units cannot vary the treated group",
            hint="use inference='placebo', which is valid with one treated unit",
            column="inference",
        )
    n_c = len(fit.cohorts)
    est = np.full((n_c, reps), np.nan)
    eff = np.full((n_c, reps, fit.n_periods), np.nan)
    sizes = np.zeros((n_c, reps))
    b = 0
    while b < reps:
        ind = np.sort(rng.integers(0, n_units, n_units))
        controls = ind[ind < n0]
        if len(controls) == 0 or len(controls) == len(ind):
            continue
        for c, cf in enumerate(fit.cohorts):
            treated = ind[row_cohort[ind] == c]
            if len(treated) == 0:
                continue
            ys = np.vstack([y[controls], y[treated]])[None]
            omega0 = _normalise(cf.omega[controls])
            omega, lam = block_weights(
                ys, len(controls), cf.start, cf.settings, omega0=omega0, lambda0=cf.lam
            )
            e, ef, _, _ = _effects(ys, len(controls), cf.start, omega, lam)
            est[c, b], eff[c, b], sizes[c, b] = e[0], ef[0], len(treated)
        b += 1
    per_cohort = [(est[c], eff[c]) for c in range(n_c)]
    return Draws(*_collect(fit, per_cohort, sizes))


def jackknife_draws(y: np.ndarray, fit: StaggeredFit) -> Draws:
    """Leave-one-unit-out estimates with the weights held fixed (R synthdid's jackknife)."""
    n0 = fit.n_donors
    for cf in fit.cohorts:
        if len(cf.rows) < 2:
            raise DesignError(
                "jackknife inference needs at least two treated units in every adoption "
                f"cohort, and one cohort has {len(cf.rows)}: leaving it out leaves nothing "
                "to compare",
                hint="use inference='placebo', which is valid with one treated unit",
                column="inference",
            )
        if int((cf.omega > 0).sum()) < 2:
            raise DesignError(
                "jackknife inference is undefined when the synthetic control puts all its "
                "weight on one donor",
                hint="use inference='placebo'",
                column="inference",
            )
    all_rows = list(range(n0)) + [r for cf in fit.cohorts for r in cf.rows]
    n = len(all_rows)
    n_c = len(fit.cohorts)
    est = np.zeros((n_c, n))
    eff = np.zeros((n_c, n, fit.n_periods))
    sizes = np.zeros((n_c, n))
    for j, left_out in enumerate(all_rows):
        donors = [r for r in range(n0) if r != left_out]
        for c, cf in enumerate(fit.cohorts):
            treated = [r for r in cf.rows if r != left_out]
            ys = np.vstack([y[donors], y[treated]])[None]
            omega = _normalise(cf.omega[donors])[None]
            e, ef, _, _ = _effects(ys, len(donors), cf.start, omega, cf.lam[None])
            est[c, j], eff[c, j], sizes[c, j] = e[0], ef[0], len(treated)
    return Draws(*_collect(fit, [(est[c], eff[c]) for c in range(n_c)], sizes))


def variance_draws(
    method: str, y: np.ndarray, fit: StaggeredFit, reps: int, rng: np.random.Generator
) -> Draws:
    """Dispatch to the placebo, bootstrap or jackknife replications."""
    if method == "placebo":
        return placebo_draws(y, fit, reps, rng)
    if method == "bootstrap":
        return bootstrap_draws(y, fit, reps, rng)
    if method == "jackknife":
        return jackknife_draws(y, fit)
    raise ValueError(method)  # pragma: no cover - callers validate


def draw_se(method: str, draws: np.ndarray) -> np.ndarray:
    """Return standard errors from replicates along axis 0 (R synthdid's formulas).

    Placebo and bootstrap: ``sqrt((B-1)/B) * sd``; jackknife:
    ``sqrt((n-1)/n * sum((u - mean(u))^2))``.
    """
    n = draws.shape[0]
    centred = draws - np.nanmean(draws, axis=0)
    ss = np.nansum(centred**2, axis=0)
    if method == "jackknife":
        return np.sqrt((n - 1) / n * ss)
    return np.sqrt(ss / n)
