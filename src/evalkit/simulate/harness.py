"""Run an estimator with an inference method over seeded simulated draws.

:func:`simulate_inference` draws ``reps`` panels from a :class:`~evalkit.simulate.designs.Design`
with a planted effect, applies one inference method to each, and reports the rejection
rate of ``effect = 0`` (the size when the planted effect is 0, the power otherwise), the
coverage of the intervals (share containing the planted effect) and their length.

Draw ``i`` uses its own generators, spawned from ``numpy.random.SeedSequence(seed)``,
one for the data and one for the method, so results do not depend on the order of the
draws or on the number of worker processes (``workers``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from evalkit.errors import DesignError
from evalkit.simulate.designs import DESIGNS, Design

__all__ = ["METHODS", "SimulationSummary", "apply_method", "simulate_inference"]

#: name -> (description, inference argument for the panel methods or TWFE)
METHODS: dict[str, str] = {
    "cluster": "CR1 cluster-robust t, G-1 df",
    "cr2": "CR2 (Bell-McCaffrey) with Satterthwaite df",
    "wild": "wild cluster bootstrap, WCR, Rademacher",
    "wild_wcu": "wild cluster bootstrap, WCU, Rademacher",
    "wild_webb": "wild cluster bootstrap, WCR, Webb",
    "permutation": "randomization over treated clusters",
    "conley_taber": "Conley-Taber (2011)",
    "ferman_pinto": "Ferman-Pinto (2019)",
    "conformal": "conformal over time (moving blocks, absolute mean post-period residual)",
}


def apply_method(
    df: pd.DataFrame, method: str, rng: np.random.Generator, *, level: float = 0.95, reps: int = 999
) -> tuple[float, float, float, float]:
    """Return ``(estimate, p_value of effect 0, conf_low, conf_high)`` for one panel.

    Examples
    --------
    >>> from evalkit.simulate.designs import cities
    >>> df = cities(np.random.default_rng(1), effect=3.0)
    >>> est, p, lo, hi = apply_method(df, "conformal", np.random.default_rng(2))
    >>> p < 0.05 and lo < 3 < hi
    True
    """
    if method not in METHODS:
        raise DesignError(
            f"unknown method {method!r}", hint=f"use one of {', '.join(METHODS)}", column="method"
        )
    if method in ("cluster", "cr2"):
        from evalkit.did import TWFE

        est = TWFE(outcome="y", treatment="d", unit="unit", time="month", cluster="city")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = est.fit(df, inference=method, level=level).tidy().iloc[0]
        return (
            float(row["estimate"]),
            float(row["p_value"]),
            float(row["conf_low"]),
            float(row["conf_high"]),
        )
    from evalkit.inference.panel import PanelData, panel_test

    codes = {c: pd.factorize(df[c], sort=True)[0] for c in ("unit", "month", "city")}
    data = PanelData(
        df["y"].to_numpy(float),
        df[["d"]].to_numpy(float),
        codes["unit"],
        codes["month"],
        codes["city"],
    )
    kind = {"wild_wcu": "wild", "wild_webb": "wild"}.get(method, method)
    res = panel_test(
        data,
        kind,
        level=level,
        rng=rng,
        reps=reps,
        restricted=method != "wild_wcu",
        weights="webb" if method == "wild_webb" else "rademacher",
    )
    return res.estimate, res.p_value, res.conf_low, res.conf_high


@dataclass(frozen=True)
class SimulationSummary:
    """Rejection rate, coverage and interval length of a method on a design."""

    design: str
    method: str
    effect: float
    reps: int
    level: float
    rejection_rate: float
    coverage: float
    median_length: float
    share_unbounded: float
    mean_estimate: float
    failures: int

    @property
    def mc_se(self) -> float:
        """Monte Carlo standard error of the rejection rate."""
        p = self.rejection_rate
        return float(np.sqrt(max(p * (1 - p), 1e-12) / max(self.reps, 1)))

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain dict (for tables)."""
        return asdict(self)


def _one(args: tuple) -> tuple[float, float, float, float]:
    design, method, effect, child, level, reps = args
    data_seed, method_seed = child.spawn(2)
    df = design.draw(np.random.default_rng(data_seed), effect)
    rng = np.random.default_rng(method_seed)
    try:
        if callable(method):
            return tuple(float(v) for v in method(df, rng, level))  # type: ignore[return-value]
        return apply_method(df, method, rng, level=level, reps=reps)
    except Exception:  # a failed draw is counted, not hidden
        return (np.nan, np.nan, np.nan, np.nan)


def simulate_inference(
    design: Design | str,
    method: str | Callable,
    *,
    effect: float = 0.0,
    reps: int = 200,
    seed: int = 0,
    level: float = 0.95,
    method_reps: int = 999,
    workers: int = 1,
) -> SimulationSummary:
    """Run ``method`` on ``reps`` draws of ``design`` with the planted ``effect``.

    Parameters
    ----------
    design
        A :class:`Design` or the name of one in :data:`~evalkit.simulate.designs.DESIGNS`.
    method
        A name in :data:`METHODS`, or a function ``method(df, rng, level)`` returning
        ``(estimate, p_value, conf_low, conf_high)`` (any estimator and inference; it must
        be picklable for ``workers > 1``).
    method_reps
        Draws of resampling methods (bootstrap, random permutations) per panel.
    workers
        Processes; results are identical for any number.

    Examples
    --------
    >>> s = simulate_inference("one_of_ten", "permutation", reps=20, seed=1)
    >>> s.reps, 0 <= s.rejection_rate <= 1
    (20, True)
    """
    if isinstance(design, str):
        if design not in DESIGNS:
            raise DesignError(f"unknown design {design!r}", hint=f"use one of {', '.join(DESIGNS)}")
        design = DESIGNS[design]
    children = np.random.SeedSequence(seed).spawn(reps)
    jobs = [(design, method, effect, c, level, method_reps) for c in children]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            out = list(pool.map(_one, jobs, chunksize=max(1, reps // (4 * workers))))
    else:
        out = [_one(j) for j in jobs]
    arr = np.array(out, dtype=float)
    ok = ~np.isnan(arr[:, 1])
    est, p, lo, hi = arr[ok].T
    length = hi - lo
    finite = np.isfinite(length)
    return SimulationSummary(
        design=design.name,
        method=method if isinstance(method, str) else getattr(method, "__name__", "custom"),
        effect=effect,
        reps=int(ok.sum()),
        level=level,
        rejection_rate=float(np.mean(p <= 1 - level)) if ok.any() else np.nan,
        coverage=float(np.mean((lo <= effect) & (effect <= hi))) if ok.any() else np.nan,
        median_length=float(np.median(length)) if ok.any() else np.nan,
        share_unbounded=float(np.mean(~finite)) if ok.any() else np.nan,
        mean_estimate=float(np.mean(est)) if ok.any() else np.nan,
        failures=int((~ok).sum()),
    )
