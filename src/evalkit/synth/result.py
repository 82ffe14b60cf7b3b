"""The result of a synthetic control fit: the shared Result plus its typed extras."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.uncertainty import NoInference, TestInversion, Uncertainty
from evalkit.data.wide import WideOutcomes
from evalkit.errors import InferenceUnavailableWarning
from evalkit.synth.placebo import PlaceboRuns

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from evalkit.core.estimator import FitContext
    from evalkit.synth.problem import UnitFit

__all__ = ["SyntheticControlResult", "build_result", "placebo_intervals"]


@dataclass(frozen=True, eq=False)
class SyntheticControlResult(Result):
    """Estimates of a synthetic control fit with its weights, paths and placebo runs.

    The table holds ``att`` (the average gap over the treated periods) and one ``effect``
    row per treated period (key ``time``). With placebo inference the p-values and
    intervals come from test inversion (:class:`~evalkit.core.uncertainty.TestInversion`;
    intervals at another level are re-inverted from the stored runs) and there is no
    standard error.

    Attributes
    ----------
    weights : pandas.Series
        Donor weights (index: donor units), summing to one.
    v : pandas.Series
        Predictor importance (diagonal of V, summing to one; empty for augmented SC).
    path : pandas.DataFrame
        Per period: ``treated``, ``synthetic`` and ``gap``, and ``post`` (bool). With
        covariates partialled out, ``treated`` is the observed outcome and ``synthetic``
        the weighted donors' residualised outcomes plus the treated unit's ``X'beta``.
    balance : pandas.DataFrame
        Per predictor: ``treated``, ``synthetic``, ``donor_mean`` and ``v``.
    rmspe : dict
        ``pre``, ``post`` and ``ratio`` (post/pre) of the treated unit.
    placebos : PlaceboRuns or None
        Every placebo-in-space run (None without placebo inference).
    """

    _weights: pd.Series | None = None
    _v: pd.Series | None = None
    _path: pd.DataFrame | None = None
    _balance: pd.DataFrame | None = None
    placebos: PlaceboRuns | None = None

    @property
    def weights(self) -> pd.Series:
        """Donor weights (a copy)."""
        assert self._weights is not None
        return self._weights.copy()

    @property
    def v(self) -> pd.Series:
        """Predictor importance, the diagonal of V (a copy)."""
        assert self._v is not None
        return self._v.copy()

    @property
    def path(self) -> pd.DataFrame:
        """Treated and synthetic outcome and their gap, by period (a copy)."""
        assert self._path is not None
        return self._path.copy()

    @property
    def gaps(self) -> pd.Series:
        """Treated minus synthetic outcome, by period."""
        return self.path["gap"]

    @property
    def synthetic(self) -> pd.Series:
        """The synthetic control's outcome path."""
        return self.path["synthetic"]

    @property
    def balance(self) -> pd.DataFrame:
        """Predictor balance: treated, synthetic, donor mean and V weight (a copy)."""
        assert self._balance is not None
        return self._balance.copy()

    @property
    def rmspe(self) -> dict[str, float]:
        """Pre- and post-treatment RMSPE of the treated unit and their ratio."""
        gap = self.path
        pre = float(np.sqrt(np.mean(gap.loc[~gap["post"], "gap"] ** 2)))
        post = float(np.sqrt(np.mean(gap.loc[gap["post"], "gap"] ** 2)))
        return {"pre": pre, "post": post, "ratio": post / pre if pre > 0 else float("inf")}

    def plot(self, ax: Axes | None = None, kind: str = "trajectory", **kwargs: Any) -> Axes:
        """Plot the fit: ``kind`` is ``"trajectory"``, ``"gap"``, ``"placebo"`` or ``"weights"``.

        Returns the matplotlib Axes.
        """
        from evalkit.synth import plots

        return plots.plot_synthetic(self, ax=ax, kind=kind, **kwargs)


def placebo_intervals(runs: PlaceboRuns, level: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Intervals of the ``att`` row and the per-period rows, with reasons for any left empty."""
    lo_att, hi_att, why_att = runs.interval_att(level)
    lo_t, hi_t, why_t = runs.intervals_by_period(level)
    reasons = [r for r in (why_att, why_t) if r]
    return np.r_[lo_att, lo_t], np.r_[hi_att, hi_t], list(dict.fromkeys(reasons))


def build_result(
    estimator: Any,
    wide: WideOutcomes,
    main: UnitFit,
    runs: PlaceboRuns | None,
    ctx: FitContext,
    *,
    method: str,
    reason: str | None,
    v: pd.Series,
    balance: pd.DataFrame,
    info: dict[str, Any],
    conformal: tuple[TestInversion, str] | None = None,
    offset: np.ndarray | None = None,
) -> SyntheticControlResult:
    """Assemble the result of a one-treated-unit synthetic control fit (any weighting).

    The uncertainty comes from the placebo ``runs``, or ``conformal`` (the uncertainty
    and its description), or neither (point estimates only). ``offset`` (units x periods,
    ``X'beta`` of partialled-out covariates) is added back to the treated unit's path.
    """
    n_pre = main.n_pre
    times = wide.times
    post_times = times[n_pre:]
    estimates = np.r_[main.att, main.gap[n_pre:]]
    terms = ["att"] + ["effect"] * post_times.size
    time_key = np.r_[np.array([None], dtype=object), post_times.astype(object)]
    table = make_table(terms, estimates, np.full(estimates.size, np.nan), time=time_key)
    notes: list[str] = []
    uncertainty: Uncertainty
    if runs is not None:
        low, high, notes = placebo_intervals(runs, ctx.level)
        for note in notes:
            warnings.warn(note, InferenceUnavailableWarning, stacklevel=5)
        cut = "" if runs.cutoff is None else f"; placebos with pre-MSPE > {runs.cutoff:g} x the"
        description = (
            f"placebo in space: {runs.n_placebos} placebo runs, p-values in steps of "
            f"1/{runs.n_placebos + 1}; att by the post/pre RMSPE ratio, periods by "
            "|gap|/pre-RMSPE; intervals by test inversion" + (cut and cut + " treated's left out")
        )
        uncertainty = TestInversion(
            p_value=np.r_[runs.p_value_ratio(), runs.p_values_by_period()],
            conf_low=low,
            conf_high=high,
            level=ctx.level,
            method="placebo",
            granularity=runs.granularity,
            statistic=runs.statistics(),
            invert=lambda lvl: placebo_intervals(runs, lvl)[:2],
            note=description + ("; " + "; ".join(notes) if notes else ""),
        )
    elif conformal is not None:
        uncertainty, description = conformal
    else:
        description = "point estimates only"
        uncertainty = NoInference()
    inference = InferenceInfo(method=method, description=description, reason=reason)
    weights = pd.Series(
        main.weights, index=pd.Index(wide.units[main.donors], name=estimator.unit), name="weight"
    )
    back = 0.0 if offset is None else offset[main.row]
    path = pd.DataFrame(
        {
            "treated": wide.y[main.row] + back,
            "synthetic": main.synthetic + back,
            "gap": main.gap,
            "post": np.arange(times.size) >= n_pre,
        },
        index=pd.Index(times, name=estimator.time),
    )
    full_info = {
        "n_units": wide.n_units,
        "n_donors": int(main.donors.size),
        "n_periods": int(times.size),
        "n_pre": n_pre,
        "treated_unit": wide.units[main.row],
        "treatment_start": times[n_pre],
        "pre_rmspe": main.pre_rmspe,
        "post_rmspe": main.post_rmspe,
        **info,
        "interval_notes": notes,
        "roles": {
            "outcome": estimator.outcome,
            "unit": estimator.unit,
            "time": estimator.time,
            "treatment": estimator.treatment,
            **(
                {"covariates": list(estimator.covariates)}
                if getattr(estimator, "covariates", ())
                else {}
            ),
        },
        "seed": ctx.seed,
    }
    if runs is not None:
        full_info["n_placebos"] = runs.n_placebos
        full_info["p_value_granularity"] = runs.granularity
    return SyntheticControlResult(
        estimator=estimator.registry_name,
        _table=table,
        inference=inference,
        info=full_info,
        level=ctx.level,
        _weights=weights,
        _v=v,
        _path=path,
        _balance=balance,
        placebos=runs,
        uncertainty=uncertainty,
    )
