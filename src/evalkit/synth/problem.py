"""The synthetic control problem built once from the data, and one fit of it.

:class:`SCProblem` holds the wide outcome matrix (from :func:`~evalkit.data.wide.wide_panel`),
the raw predictor values of every unit, and the columns of the V-choosing periods. Its
:meth:`~SCProblem.fit_unit` fits one unit against a donor pool: the estimate, every
placebo run (each donor as if treated), leave-one-out re-estimation and backdating are
all calls of it with other rows or other dates, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from evalkit.data.wide import WideOutcomes, wide_panel
from evalkit.errors import DataError, DesignError
from evalkit.synth.adh import solve_adh
from evalkit.synth.covariates import project_out
from evalkit.synth.predictors import Predictor, parse_periods, predictor_row, standardise

__all__ = ["SCProblem", "UnitFit", "build_problem"]


@dataclass(frozen=True, eq=False)
class UnitFit:
    """One synthetic control fit: a unit against a donor pool.

    Attributes
    ----------
    row
        Row of the fitted unit in the wide matrix.
    donors
        Rows of its donors.
    weights
        Donor weights (in the order of ``donors``).
    synthetic
        The synthetic outcome path over every period.
    gap
        Outcome minus synthetic, every period.
    n_pre
        Number of pre-treatment periods used for this fit.
    solution
        What the weighting method reports besides the weights (for ADH the
        :class:`~evalkit.synth.adh.ADHSolution` with V and the fit reached).
    """

    row: int
    donors: np.ndarray
    weights: np.ndarray
    synthetic: np.ndarray
    gap: np.ndarray
    n_pre: int
    solution: Any = None

    @property
    def pre_rmspe(self) -> float:
        """Root mean squared gap over the pre-treatment periods."""
        return float(np.sqrt(np.mean(self.gap[: self.n_pre] ** 2)))

    @property
    def post_rmspe(self) -> float:
        """Root mean squared gap over the treated periods."""
        return float(np.sqrt(np.mean(self.gap[self.n_pre :] ** 2)))

    @property
    def ratio(self) -> float:
        """Post/pre RMSPE ratio (infinite for a perfect pre-period fit)."""
        pre = self.pre_rmspe
        return self.post_rmspe / pre if pre > 0 else np.inf

    @property
    def att(self) -> float:
        """Average gap over the treated periods."""
        return float(self.gap[self.n_pre :].mean())


@dataclass(frozen=True, eq=False)
class SCProblem:
    """Outcomes, predictors and V-choosing periods of a synthetic control design.

    Attributes
    ----------
    wide
        The wide outcome matrix; the single treated unit is the last row.
    predictors
        The predictor specifications (lagged outcomes included).
    x
        Raw predictor values, predictors x units (rows of ``wide``).
    pred_cols
        Column indices (periods) of each predictor.
    v_cols
        Column indices of the periods whose outcome fit chooses V.
    n_pre
        Number of pre-treatment periods.
    coefficients
        Coefficients of the covariates partialled out of the outcome (empty without
        ``covariates``); ``wide.y`` is then the residualised outcome.
    offset
        ``X'beta`` of every unit and period (the part of the observed outcome removed
        from ``wide.y``; zeros without covariates).
    """

    wide: WideOutcomes
    predictors: tuple[Predictor, ...]
    x: np.ndarray
    pred_cols: tuple[np.ndarray, ...]
    v_cols: np.ndarray
    n_pre: int
    coefficients: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    offset: np.ndarray | None = None

    @property
    def labels(self) -> list[str]:
        """Predictor labels."""
        return [p.label for p in self.predictors]

    @property
    def treated_row(self) -> int:
        """Row of the treated unit."""
        return self.wide.n_units - 1

    @property
    def donor_rows(self) -> np.ndarray:
        """Rows of the donors."""
        return np.arange(self.wide.n_donors)

    def fit_unit(
        self,
        row: int,
        donors: Sequence[int] | np.ndarray,
        *,
        custom_v: np.ndarray | None,
        random_starts: int,
        rng: np.random.Generator,
        shift: int = 0,
    ) -> UnitFit:
        """Fit unit ``row`` against ``donors``.

        ``shift`` moves the treatment date, the predictor periods and the V-choosing
        periods ``shift`` periods earlier (placebo in time); it must leave every period
        inside the data.
        """
        donors = np.asarray(donors, dtype=int)
        units = np.r_[donors, row]
        if shift:
            x = self._shifted_x(units, shift)
            v_cols = self.v_cols - shift
        else:
            x = self.x[:, units]
            v_cols = self.v_cols
        xs = standardise(x, self.labels)
        y = self.wide.y
        z = y[:, v_cols]
        sol = solve_adh(
            xs[:, -1],
            xs[:, :-1],
            z[row],
            z[donors].T,
            custom_v=custom_v,
            random_starts=random_starts,
            rng=rng,
        )
        synthetic = sol.weights @ y[donors]
        return UnitFit(
            row, donors, sol.weights, synthetic, y[row] - synthetic, self.n_pre - shift, sol
        )

    def _shifted_x(self, units: np.ndarray, shift: int) -> np.ndarray:
        rows = []
        for p, cols in zip(self.predictors, self.pred_cols, strict=True):
            moved = cols - shift
            if moved.min() < 0:
                raise DesignError(
                    f"backdating by {shift} periods moves predictor {p.label} before the "
                    f"first period of the data",
                    hint="backdate by fewer periods or use later predictor periods",
                    column="predictors",
                )
            rows.append(
                predictor_row(p, self._matrix(p)[units], moved, self.wide.units[units], "unit")
            )
        return np.array(rows)

    def _matrix(self, p: Predictor) -> np.ndarray:
        if p.variable == self.wide.outcome:
            return self.wide.y
        return self.wide.covariates[p.variable]


def build_problem(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    predictors: tuple[Predictor, ...],
    lagged_outcomes: tuple[Any, ...],
    v_periods: Any,
    donors: Sequence[Any] | None,
    covariates: Sequence[str] = (),
) -> SCProblem:
    """Build the problem from long data; bad input raises an EvalkitError naming it.

    With ``covariates`` the outcome is residualised on them first (the ``projected``
    method of :mod:`evalkit.synth.covariates`: coefficients from the donors only), and
    the predictors that use the outcome are taken from the residualised outcome.
    """
    if outcome in covariates:
        raise DesignError(
            f"the outcome {outcome!r} cannot be one of the covariates",
            hint="covariates are other time-varying columns, e.g. an unemployment rate",
            column="covariates",
        )
    variables = list(
        dict.fromkeys([*(p.variable for p in predictors if p.variable != outcome), *covariates])
    )
    missing = [v for v in variables if v not in data.columns]
    if missing:
        import difflib

        close = difflib.get_close_matches(missing[0], [str(c) for c in data.columns], n=2)
        what = "covariate" if missing[0] in covariates else "predictor variable"
        raise DesignError(
            f"{what} {missing[0]!r} is not a column of the data",
            hint=(f"did you mean {' or '.join(map(repr, close))}? " if close else "")
            + (
                "covariates are time-varying columns"
                if what == "covariate"
                else "predictors are (column, periods, op) triples"
            ),
            column=missing[0],
        )
    wide = wide_panel(
        data,
        outcome=outcome,
        unit=unit,
        time=time,
        treatment=treatment,
        covariates=variables,
        donors=donors,
        complete_covariates=False,
    )
    if wide.n_treated != 1:
        raise DesignError(
            f"SyntheticControl fits one treated unit; {treatment!r} marks {wide.n_treated} "
            f"units ({', '.join(map(str, wide.treated_units[:4].tolist()))}...)",
            hint="fit each treated unit on its own (with the others left out), or use "
            "synth.SyntheticDiD for several treated units",
            column=treatment,
        )
    coefficients: dict[str, float] = {}
    offset = None
    if covariates:
        wide, coefficients, offset = _residualise(wide, covariates)
    n_pre = wide.n_pre
    times = wide.times
    lags = [Predictor(outcome, (t,), "mean", False) for t in lagged_outcomes]
    preds = tuple(predictors) + tuple(lags)
    if not preds:
        # no predictors: every pre-treatment outcome is one
        preds = tuple(
            Predictor(outcome, (t.item() if isinstance(t, np.generic) else t,), "mean")
            for t in times[:n_pre]
        )
    labels = [p.label for p in preds]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise DesignError(
            f"predictor {dupes[0]} is given twice (in predictors and lagged_outcomes?)",
            column="lagged_outcomes",
        )
    cols = tuple(p.resolve(times, n_pre) for p in preds)
    x = np.array(
        [
            predictor_row(
                p,
                wide.y if p.variable == outcome else wide.covariates[p.variable],
                c,
                wide.units,
                unit,
            )
            for p, c in zip(preds, cols, strict=True)
        ]
    )
    if v_periods is None:
        v_cols = np.arange(n_pre)
    else:
        v_pred = Predictor(outcome, *_as_periods(v_periods))
        try:
            v_cols = v_pred.resolve(times, n_pre)
        except DesignError as err:
            raise DesignError(
                err.message.replace(f"predictor {v_pred.label}", "v_periods"),
                hint=err.hint,
                column="v_periods",
            ) from None
    if not np.isfinite(wide.y).all():  # pragma: no cover - wide_panel drops missing outcomes
        raise DataError(f"outcome {outcome!r} has missing values", column=outcome)
    return SCProblem(wide, preds, x, cols, v_cols, n_pre, MappingProxyType(coefficients), offset)


def _residualise(
    wide: WideOutcomes, covariates: Sequence[str]
) -> tuple[WideOutcomes, dict[str, float], np.ndarray]:
    """Partial the covariates out of the outcome matrix (coefficients from the donors)."""
    for name in covariates:
        bad = ~np.isfinite(wide.covariates[name])
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"covariate {name!r} is missing for {bad.sum()} unit-period(s), e.g. unit "
                f"{wide.units[row]!r} in period {wide.times[col]!r}; it is partialled out of "
                "the outcome in every period",
                hint=f"fill {name!r} in every unit and period, or leave it out of covariates",
                column=name,
            )
    adjusted, beta = project_out(wide.y, {k: wide.covariates[k] for k in covariates}, wide.n_donors)
    offset = wide.y - adjusted
    return dataclasses.replace(wide, y=adjusted), beta, offset


def _as_periods(value: Any) -> tuple[tuple[Any, ...], str, bool]:
    periods, is_range = parse_periods(value, "v_periods")
    return periods, "mean", is_range
