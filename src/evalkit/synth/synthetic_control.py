"""Abadie-Diamond-Hainmueller synthetic control (``synth.SyntheticControl``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import Result
from evalkit.data.checks import check_name
from evalkit.errors import DesignError
from evalkit.inference.policy import choose_inference
from evalkit.synth.conformal import conformal_uncertainty, sc_counterfactual_cached
from evalkit.synth.placebo import OWN_DEFAULT, PlaceboRuns, placebo_cutoff, placebo_in_space
from evalkit.synth.predictors import parse_periods, parse_predictors
from evalkit.synth.problem import SCProblem, UnitFit, build_problem
from evalkit.synth.result import SyntheticControlResult, build_result
from evalkit.synth.subgroups import placebo_fit_by

__all__ = ["SyntheticControl"]


def check_roles(est: Any, required: Sequence[str]) -> None:
    """Check that the role options are column names (strings)."""
    for option in required:
        check_name(getattr(est, option), option)


@register("synth.SyntheticControl")
@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticControl(Estimator):
    """Synthetic control for one treated unit (Abadie, Diamond & Hainmueller 2010).

    Donor weights ``w`` (non-negative, summing to one) make the synthetic unit's
    predictors close to the treated unit's in the metric ``V``; ``V`` is chosen so that the
    synthetic outcome tracks the treated outcome over ``v_periods`` (the nested
    optimisation of Abadie & Gardeazabal 2003), or given as ``custom_v``.

    Parameters
    ----------
    outcome, unit, time, treatment
        Column names; ``treatment`` is 0/1 and marks exactly one unit, from its first
        treated period on (the panel must be balanced in the outcome).
    predictors
        ``(variable, periods, op)`` triples: ``periods`` a list, one period or an inclusive
        range ``(first, last)``; ``op`` ``"mean"`` (default), ``"median"`` or ``"last"``.
        Missing values are skipped. With no predictors and no ``lagged_outcomes`` every
        pre-treatment outcome is a predictor.
    lagged_outcomes
        Periods whose outcome value is a predictor each (e.g. ``(1975, 1980, 1988)``).
    v_periods
        Periods whose outcome fit chooses V (list or inclusive range); default every
        pre-treatment period.
    custom_v
        A given V diagonal (a sequence in predictor order, or a mapping from predictor
        label to weight); V is then not optimised.
    donors
        Restrict the donor pool to these units (default: every never-treated unit).
    covariates
        Time-varying columns partialled out of the outcome before the weights are chosen
        (the ``projected`` method of ``synth.SyntheticDiD``): their coefficients come from
        a two-way fixed-effects regression of the outcome on them among the donors only,
        and the weights, gaps and inference use the residualised outcome
        ``Y - X'beta``. For a shock that starts with the treatment and
        hits units with an intensity the covariate measures (an unemployment rate), which
        no pre-treatment fit can match. Assumes the treatment does not move the covariates
        and their effect is the same in the treated unit as in the donors.
    random_starts
        Random starting points for V besides the equal and the regression-based start.

    Notes
    -----
    Inference: ``"placebo"`` (the default: placebo in space with post/pre RMSPE-ratio
    p-values and test-inversion intervals, :mod:`evalkit.synth.placebo`; option
    ``cutoff`` in ``evalkit.inference.Placebo(cutoff=5)`` drops placebos whose
    pre-period MSPE exceeds that multiple of the treated unit's), ``"conformal"``
    (Chernozhukov, Wuthrich & Zhu, :mod:`evalkit.synth.conformal`) or ``"none"``.
    :meth:`backdate` and :meth:`leave_one_out` give the usual robustness checks.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.synth import SyntheticControl
    >>> df = evalkit.datasets.load("basque")
    >>> df = df[df["regionno"] != 1]  # Spain as a whole is not a donor
    >>> df["terror"] = ((df["regionno"] == 17) & (df["year"] >= 1970)).astype(int)
    >>> sc = SyntheticControl(outcome="gdpcap", unit="regionname", time="year",
    ...     treatment="terror", predictors=[("gdpcap", (1960, 1969)),
    ...     ("invest", (1964, 1969))], v_periods=(1960, 1969))
    >>> res = sc.fit(df, inference="none")
    >>> res.weights[res.weights > 0.01].round(2).to_dict()
    {'Baleares (Islas)': 0.91, 'Madrid (Comunidad De)': 0.09}
    """

    outcome: str
    unit: str
    time: str
    treatment: str
    predictors: tuple[Any, ...] = ()
    lagged_outcomes: tuple[Any, ...] = ()
    v_periods: Any = None
    custom_v: Any = None
    donors: tuple[Any, ...] | None = None
    covariates: tuple[str, ...] = ()
    random_starts: int = 10

    supported_inference: ClassVar[tuple[str, ...]] = ("placebo", "conformal", "none")
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"att": "treated_periods", "effect": "period"}
    )

    def __post_init__(self) -> None:
        check_roles(self, ("outcome", "unit", "time", "treatment"))
        object.__setattr__(self, "predictors", parse_predictors(self.predictors))
        lags = self.lagged_outcomes
        if isinstance(lags, (str, bytes)) or not isinstance(lags, (list, tuple, range)):
            lags = [lags]
        object.__setattr__(self, "lagged_outcomes", tuple(lags))
        if self.v_periods is not None:
            parse_periods(self.v_periods, "v_periods")
        if self.donors is not None:
            donors = [self.donors] if isinstance(self.donors, str) else list(self.donors)
            object.__setattr__(self, "donors", tuple(donors))
        covs = (self.covariates,) if isinstance(self.covariates, str) else self.covariates
        object.__setattr__(self, "covariates", tuple(covs or ()))
        for name in self.covariates:
            check_name(name, "covariates")
        if isinstance(self.random_starts, bool) or not isinstance(self.random_starts, int):
            raise DesignError(
                f"random_starts must be a whole number >= 0, got {self.random_starts!r}",
                column="random_starts",
            )
        if self.random_starts < 0:
            raise DesignError("random_starts must be >= 0", column="random_starts")

    # ------------------------------------------------------------------ fit
    def problem(self, data: pd.DataFrame) -> SCProblem:
        """Build the synthetic control problem (wide outcomes, predictors) from ``data``."""
        return build_problem(
            data,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            treatment=self.treatment,
            predictors=self.predictors,  # type: ignore[arg-type]
            lagged_outcomes=self.lagged_outcomes,
            v_periods=self.v_periods,
            donors=self.donors,
            covariates=self.covariates,
        )

    def _custom_v(self, problem: SCProblem) -> np.ndarray | None:
        if self.custom_v is None:
            return None
        labels = problem.labels
        if isinstance(self.custom_v, dict):
            unknown = [k for k in self.custom_v if k not in labels]
            if unknown:
                raise DesignError(
                    f"custom_v names {unknown[0]!r}, which is not a predictor",
                    hint=f"predictors are {labels}",
                    column="custom_v",
                )
            v = np.array([float(self.custom_v.get(k, 0.0)) for k in labels])
        else:
            v = np.asarray(self.custom_v, dtype=float).ravel()
            if v.size != len(labels):
                raise DesignError(
                    f"custom_v has {v.size} entries for {len(labels)} predictors",
                    hint=f"give one weight per predictor, in the order {labels}",
                    column="custom_v",
                )
        if not np.isfinite(v).all() or (v < 0).any() or v.sum() <= 0:
            raise DesignError("custom_v must be non-negative and not all zero", column="custom_v")
        return v / v.sum()

    def _fit_one(self, problem: SCProblem, row: int, donors: np.ndarray, shift: int = 0) -> UnitFit:
        # random starts depend on the run only (not the seed or the order of runs): the
        # estimate of this deterministic method does not change with the seed
        rng = np.random.default_rng([row, shift])
        return problem.fit_unit(
            row,
            donors,
            custom_v=self._custom_v(problem),
            random_starts=self.random_starts,
            rng=rng,
            shift=shift,
        )

    def _fit_by(self, data: pd.DataFrame, by: str, ctx: FitContext) -> Result:
        """One fit per subgroup with the same placebo runs (:mod:`evalkit.synth.subgroups`)."""
        return placebo_fit_by(self, data, by, ctx)

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        choice = choose_inference(
            ctx.inference, supported=self.supported_inference, counts=None, own=OWN_DEFAULT
        )
        method, reason = choice.spec.method, choice.reason
        cutoff = placebo_cutoff(choice.spec)
        problem = self.problem(data)
        main = self._fit_one(problem, problem.treated_row, problem.donor_rows)
        runs = None
        conformal = None
        if method == "placebo":
            runs = self.placebo_runs(problem, main, cutoff)
        elif method == "conformal":
            wide = problem.wide
            conformal = conformal_uncertainty(
                wide.y[main.row],
                np.arange(wide.n_periods) >= problem.n_pre,
                sc_counterfactual_cached(wide.y[main.donors]),
                choice.spec,
                ctx.level,
            )
        return self._result(problem, main, runs, ctx, method, reason, conformal)

    def placebo_runs(
        self, problem: SCProblem, main: UnitFit, cutoff: float | None = None
    ) -> PlaceboRuns:
        """Fit every donor as if treated (the treated unit left out of every pool)."""
        return placebo_in_space(
            lambda row, donors: self._fit_one(problem, row, donors).gap,
            main.gap,
            problem.wide,
            problem.treated_row,
            problem.donor_rows,
            problem.n_pre,
            cutoff,
        )

    def _result(
        self,
        problem: SCProblem,
        main: UnitFit,
        runs: PlaceboRuns | None,
        ctx: FitContext,
        method: str,
        reason: str | None,
        conformal: tuple[Any, str] | None = None,
    ) -> SyntheticControlResult:
        sol = main.solution
        v = pd.Series(sol.v, index=pd.Index(problem.labels, name="predictor"), name="v")
        x_d = problem.x[:, main.donors]
        balance = pd.DataFrame(
            {
                "treated": problem.x[:, main.row],
                "synthetic": x_d @ sol.weights,
                "donor_mean": x_d.mean(axis=1),
                "v": sol.v,
            },
            index=v.index,
        )
        info = {
            "v_mspe": sol.mspe,
            "v_mspe_bound": sol.bound,
            "v_start": sol.start,
            "v_starts": dict(sol.starts),
            "v_periods": [_plain(t) for t in problem.wide.times[problem.v_cols]],
            "predictors": problem.labels,
            "inner_solves": sol.evaluations,
            "covariate_coefficients": dict(problem.coefficients),
            "covariate_method": "projected" if problem.coefficients else None,
        }
        return build_result(
            self,
            problem.wide,
            main,
            runs,
            ctx,
            method=method,
            reason=reason,
            v=v,
            balance=balance,
            info=info,
            conformal=conformal,
            offset=problem.offset,
        )

    # ------------------------------------------------------------------ robustness
    def leave_one_out(self, data: pd.DataFrame) -> pd.DataFrame:
        """Re-estimate leaving out, in turn, each donor with a positive weight.

        Returns
        -------
        pandas.DataFrame
            One row per left-out donor (``None`` for the full pool): ``att``,
            ``pre_rmspe``, ``post_rmspe`` and the gap in every period (columns ``gap_<t>``).
        """
        problem = self.problem(data)
        donors = problem.donor_rows
        main = self._fit_one(problem, problem.treated_row, donors)
        rows = [(None, main)]
        for j in donors[main.weights > 0]:
            if donors.size < 2:
                break
            rows.append(
                (
                    _plain(problem.wide.units[j]),
                    self._fit_one(problem, problem.treated_row, donors[donors != j]),
                )
            )
        return _robustness_frame("left_out", rows, problem.wide.times)

    def backdate(self, data: pd.DataFrame, periods: int | Sequence[int] = 5) -> pd.DataFrame:
        """Placebo in time: pretend treatment started ``periods`` earlier.

        Predictor periods and ``v_periods`` move back by the same number of periods, so
        the fit uses only data from before the fake date; a fit that tracks the treated
        unit until the real date supports the design.

        Returns
        -------
        pandas.DataFrame
            One row per shift (0 = the actual fit): the fake start, ``att`` over the
            periods between the fake and the real start, ``pre_rmspe`` and the gaps.
        """
        shifts = [periods] if isinstance(periods, int) else list(periods)
        problem = self.problem(data)
        rows = []
        for s in [0, *shifts]:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0 or s >= problem.n_pre:
                raise DesignError(
                    f"backdating shift {s!r} must be a whole number from 1 to "
                    f"{problem.n_pre - 1} (the pre-treatment periods)",
                    column="periods",
                )
            fit = self._fit_one(problem, problem.treated_row, problem.donor_rows, shift=s)
            rows.append((s, fit))
        frame = _robustness_frame("shift", rows, problem.wide.times)
        frame.insert(1, "start", [_plain(problem.wide.times[problem.n_pre - s]) for s, _ in rows])
        gaps = np.array([f.gap for _, f in rows])
        frame["att_before_start"] = [
            float(gaps[i, problem.n_pre - s : problem.n_pre].mean()) if s else np.nan
            for i, (s, _) in enumerate(rows)
        ]
        return frame


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _robustness_frame(key: str, rows: list[tuple[Any, UnitFit]], times: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            key: [k for k, _ in rows],
            "att": [f.att for _, f in rows],
            "pre_rmspe": [f.pre_rmspe for _, f in rows],
            "post_rmspe": [f.post_rmspe for _, f in rows],
        }
    )
    gaps = pd.DataFrame(
        np.array([f.gap for _, f in rows]), columns=[f"gap_{_plain(t)}" for t in times]
    )
    return pd.concat([out, gaps], axis=1)
