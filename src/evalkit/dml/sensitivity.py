"""Sensitivity of a DML estimate to unobserved confounding (Chernozhukov et al. 2022).

Omitted confounders that explain a share ``cf_y`` of the outcome's residual variation
and raise the Riesz representer's variation by ``cf_d`` move the estimate by at most
``|rho| * sqrt(cf_y * cf_d / (1 - cf_d)) * max_bias`` (DoubleML's sensitivity elements).
This module reads DoubleML's framework without changing the fitted model: the bounds
and robustness values come from its calculation routines, the benchmarks from refits
of a copy without the benchmarking covariates, and the contour plot is drawn here with
matplotlib (DoubleML draws with plotly).

References
----------
Chernozhukov, V., Cinelli, C., Newey, W., Sharma, A. and Syrgkanis, V. (2022). Long story
short: omitted variable bias in causal machine learning. NBER Working Paper 30302.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.errors import DesignError, NotEstimableError
from evalkit.numerics.levels import check_level

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["Sensitivity", "sensitivity"]


@dataclass(frozen=True, eq=False)
class Sensitivity:
    """Bounds on the effect under a confounding scenario, with benchmarks.

    Attributes
    ----------
    table
        One row: ``estimate``, ``theta_lower``, ``theta_upper`` (bounds on the effect),
        ``ci_lower``, ``ci_upper`` (bounds with sampling uncertainty at ``level``),
        ``rv`` and ``rva`` (robustness values: the confounding strength
        ``cf_y = cf_d`` that moves the bound, or its confidence bound, to ``null``).
    benchmarks
        One row per benchmarking set: the ``cf_y``, ``cf_d`` and ``rho`` its omission
        implies and the change in the estimate (``delta_theta``).
    scenario
        ``cf_y``, ``cf_d``, ``rho``, ``null`` and ``level``.
    """

    table: pd.DataFrame
    benchmarks: pd.DataFrame
    scenario: dict[str, float]
    _max_bias: np.ndarray
    _theta: np.ndarray

    def bounds(self, cf_y: np.ndarray, cf_d: np.ndarray, rho: float | None = None) -> np.ndarray:
        """Return the bound on the effect nearer ``null`` at confounding ``(cf_y, cf_d)``."""
        rho = self.scenario["rho"] if rho is None else rho
        strength = abs(rho) * np.sqrt(cf_y * cf_d / (1.0 - cf_d))
        sign = 1.0 if self.scenario["null"] > float(np.median(self._theta)) else -1.0
        all_bounds = self._theta + sign * np.multiply.outer(strength, self._max_bias)
        return np.median(all_bounds, axis=-1)

    def plot(
        self,
        ax: Axes | None = None,
        *,
        grid_bounds: tuple[float, float] = (0.15, 0.15),
        grid_size: int = 60,
    ) -> Axes:
        """Contour plot of the bound over ``cf_d`` (x) and ``cf_y`` (y); returns the Axes.

        The scenario is marked with a cross and each benchmark with a dot.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 4.5))
        d = np.linspace(0.0, grid_bounds[0], grid_size)
        y = np.linspace(0.0, grid_bounds[1], grid_size)
        dd, yy = np.meshgrid(d, y)
        values = self.bounds(yy.ravel(), dd.ravel()).reshape(dd.shape)
        cs = ax.contour(dd, yy, values, levels=10, colors="0.3", linewidths=0.8)
        ax.clabel(cs, fontsize=7, fmt="%.4g")
        null = self.scenario["null"]
        if values.min() <= null <= values.max():
            ax.contour(dd, yy, values, levels=[null], colors="C3", linewidths=1.6)
        ax.plot(self.scenario["cf_d"], self.scenario["cf_y"], "x", color="C3", label="scenario")
        for _, row in self.benchmarks.iterrows():
            ax.plot(row["cf_d"], row["cf_y"], "o", color="C0")
            ax.annotate(str(row["benchmark"]), (row["cf_d"], row["cf_y"]), fontsize=7)
        ax.set_xlabel("cf_d (confounding of the treatment)")
        ax.set_ylabel("cf_y (confounding of the outcome)")
        ax.set_title("bound on the effect under confounding")
        return ax

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary (aggregates only)."""
        from evalkit.core.result import jsonable

        return jsonable(
            {"table": self.table, "benchmarks": self.benchmarks, "scenario": self.scenario}
        )


def sensitivity(
    result: Any,
    *,
    cf_y: float,
    cf_d: float,
    rho: float,
    null: float,
    level: float,
    benchmarks: Sequence[str | Sequence[str]],
) -> Sensitivity:
    """Run the sensitivity analysis of a DML result (see :meth:`DMLResult.sensitivity`)."""
    model = result._model
    framework = model.framework
    if framework is None or framework.sensitivity_elements is None:
        raise NotEstimableError(
            f"DoubleML has no sensitivity analysis for {type(model).__name__}",
            column="sensitivity",
        )
    for name, value, hi in (("cf_y", cf_y, 1.0), ("cf_d", cf_d, 1.0), ("rho", abs(rho), 1.0001)):
        if not isinstance(value, (int, float)) or not 0.0 <= float(value) < hi:
            raise DesignError(f"{name} must be a number in [0, 1), got {value!r}", column=name)
    level = check_level(level)
    res = framework._calc_sensitivity_analysis(
        cf_y=float(cf_y), cf_d=float(cf_d), rho=float(rho), level=level
    )
    rv, rva = framework._calc_robustness_value(
        null_hypothesis=float(null), level=level, rho=float(rho), idx_treatment=0
    )
    table = pd.DataFrame(
        {
            "term": [result.terms[0]],
            "estimate": [float(model.coef[0])],
            "theta_lower": [float(res["theta"]["lower"][0])],
            "theta_upper": [float(res["theta"]["upper"][0])],
            "ci_lower": [float(res["ci"]["lower"][0])],
            "ci_upper": [float(res["ci"]["upper"][0])],
            "rv": [float(rv)],
            "rva": [float(rva)],
        }
    )
    rows = []
    known = list(model._dml_data.x_cols)
    for bench in benchmarks:
        names = [bench] if isinstance(bench, str) else list(bench)
        unknown = [c for c in names if c not in known]
        if unknown:
            raise DesignError(
                f"benchmark covariate {unknown[0]!r} is not a covariate of this fit",
                hint=f"choose from {known}",
                column=unknown[0],
            )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            frame = copy.deepcopy(model).sensitivity_benchmark(benchmarking_set=names)
        row = frame.iloc[0]
        rows.append(
            {
                "benchmark": "+".join(names),
                "cf_y": float(row["cf_y"]),
                "cf_d": float(row["cf_d"]),
                "rho": float(row["rho"]),
                "delta_theta": float(row["delta_theta"]),
            }
        )
    bench_table = pd.DataFrame(rows, columns=["benchmark", "cf_y", "cf_d", "rho", "delta_theta"])
    max_bias = np.asarray(framework.sensitivity_elements["max_bias"])[0, 0, :]
    return Sensitivity(
        table=table,
        benchmarks=bench_table,
        scenario={
            "cf_y": float(cf_y),
            "cf_d": float(cf_d),
            "rho": float(rho),
            "null": float(null),
            "level": level,
        },
        _max_bias=max_bias,
        _theta=np.asarray(framework.all_thetas)[0, :],
    )
