"""Wide outcome matrices (units x periods) shared by the synthetic-control estimators.

Every synth estimator (synthetic control, synthetic DiD, augmented SC) works on the same
object: a balanced units x periods outcome matrix with the never-treated donors in the
first rows and the treated units last (ordered by adoption period, then unit), the
adoption period of each unit, and optional covariate matrices of the same shape. It is
built once from a long DataFrame (or a :class:`~evalkit.data.Panel`) and the roles by
:func:`wide_panel`, which raises an :class:`~evalkit.errors.DataError` naming the problem
and its fix for the designs these estimators cannot handle: an unbalanced panel (W001),
treatment that switches off (P008), no treated unit (P011), every unit treated (W002), no
donors left (W003), a cohort treated from the first period (no pre-periods, W004).

Staggered adoption is described by :attr:`WideOutcomes.cohorts`; :meth:`WideOutcomes.block`
returns the donors plus one cohort, the block design that per-cohort estimators use.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from evalkit.data import checks
from evalkit.data.panel import Panel
from evalkit.errors import DataError, DesignError, RowsDroppedWarning

__all__ = ["NEVER", "Cohort", "WideOutcomes", "wide_panel"]

NEVER = -1
"""Adoption index of never-treated units (in :attr:`WideOutcomes.adoption`)."""

_HINTS = {
    "W001": (
        "synthetic-control estimators need every unit observed in every period: drop the "
        "units or periods with gaps (or fill them) before fitting"
    ),
    "W002": (
        "every unit is treated by the end of the sample, so none can serve as a donor: "
        "keep some never-treated units, or end the sample before the last cohort adopts"
    ),
    "W003": "pass at least one never-treated unit as a donor",
    "W004": (
        "a synthetic control is fitted on pre-treatment periods: start the sample earlier "
        "or drop the units treated from the first period"
    ),
    "W005": (
        "covariates of synthetic-control estimators must be observed in every unit-period; "
        "fill or drop them"
    ),
}


def _fail(code: str, message: str, *, column: str | None = None, hint: str | None = None) -> None:
    raise DataError(message, code=code, column=column, hint=hint or _HINTS[code])


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Cohort:
    """Units that adopt treatment in the same period.

    Attributes
    ----------
    label
        The adoption period as it appears in the data (e.g. ``1989``).
    start
        Column index of the first treated period in :attr:`WideOutcomes.times`, which is
        also the number of pre-treatment periods.
    rows
        Row indices of the cohort's units in :attr:`WideOutcomes.y`.
    """

    label: Any
    start: int
    rows: tuple[int, ...]

    @property
    def n_units(self) -> int:
        """Number of units in the cohort."""
        return len(self.rows)


@dataclass(frozen=True, eq=False)
class WideOutcomes:
    """A balanced units x periods outcome matrix, donors first and treated units last.

    Build it with :func:`wide_panel`. All arrays are read-only.

    Attributes
    ----------
    y
        Outcomes, shape ``(n_units, n_periods)``; rows ``0..n_donors-1`` are the
        never-treated donors (sorted by unit), the rest the treated units sorted by
        adoption period, then unit.
    units, times
        Row and column labels.
    adoption
        Per row, the column index of the first treated period, or :data:`NEVER`.
    covariates
        Covariate name -> matrix of the shape of ``y`` (NaN where not observed, if the
        builder allowed it).
    outcome, unit, time
        The column names the matrix was built from.
    """

    y: np.ndarray
    units: np.ndarray
    times: np.ndarray
    adoption: np.ndarray
    covariates: Mapping[str, np.ndarray] = field(default_factory=dict)
    outcome: str = "y"
    unit: str = "unit"
    time: str = "time"

    def __post_init__(self) -> None:
        for name in ("y", "units", "times", "adoption"):
            object.__setattr__(self, name, _readonly(np.asarray(getattr(self, name))))
        covs = {k: _readonly(np.asarray(v, dtype=float)) for k, v in self.covariates.items()}
        object.__setattr__(self, "covariates", MappingProxyType(covs))

    # ------------------------------------------------------------------ sizes
    @property
    def n_units(self) -> int:
        """Number of units (rows)."""
        return int(self.y.shape[0])

    @property
    def n_periods(self) -> int:
        """Number of periods (columns)."""
        return int(self.y.shape[1])

    @property
    def treated(self) -> np.ndarray:
        """Boolean mask of treated rows (ever treated in the sample)."""
        return np.asarray(self.adoption != NEVER)

    @property
    def n_donors(self) -> int:
        """Number of never-treated donor units (the first rows)."""
        return int((self.adoption == NEVER).sum())

    @property
    def n_treated(self) -> int:
        """Number of treated units (the last rows)."""
        return self.n_units - self.n_donors

    @property
    def donors(self) -> np.ndarray:
        """Labels of the donor units."""
        return self.units[: self.n_donors]

    @property
    def treated_units(self) -> np.ndarray:
        """Labels of the treated units."""
        return self.units[self.n_donors :]

    @property
    def treated_mask(self) -> np.ndarray:
        """Boolean matrix of the shape of ``y``: True for treated unit-periods."""
        cols = np.arange(self.n_periods)
        start = np.where(self.adoption == NEVER, self.n_periods, self.adoption)
        return cols[None, :] >= start[:, None]

    @property
    def cohorts(self) -> tuple[Cohort, ...]:
        """Treated units grouped by adoption period, earliest first."""
        out = []
        treated_rows = np.arange(self.n_donors, self.n_units)
        for start in np.unique(self.adoption[treated_rows]):
            rows = tuple(int(r) for r in treated_rows[self.adoption[treated_rows] == start])
            out.append(Cohort(label=_scalar(self.times[start]), start=int(start), rows=rows))
        return tuple(out)

    @property
    def is_staggered(self) -> bool:
        """True when treated units adopt in more than one period."""
        return len(self.cohorts) > 1

    @property
    def n_pre(self) -> int:
        """Number of pre-treatment periods (a single-cohort design only)."""
        return self._single().start

    @property
    def n_post(self) -> int:
        """Number of treated periods (a single-cohort design only)."""
        return self.n_periods - self._single().start

    def _single(self) -> Cohort:
        cohorts = self.cohorts
        if len(cohorts) != 1:
            raise DesignError(
                f"the treated units adopt in {len(cohorts)} different periods "
                f"({', '.join(str(c.label) for c in cohorts)}); pre/post periods are per cohort",
                hint="use .cohorts or .block(cohort) for staggered adoption",
                column=self.time,
            )
        return cohorts[0]

    # ------------------------------------------------------------------ views
    def block(self, cohort: Cohort | Any) -> WideOutcomes:
        """Return the donors and one cohort's units: a block (single adoption) design.

        Parameters
        ----------
        cohort
            A :class:`Cohort` from :attr:`cohorts` or its label (adoption period).
        """
        if not isinstance(cohort, Cohort):
            matches = [c for c in self.cohorts if c.label == cohort]
            if not matches:
                raise DesignError(
                    f"no cohort adopts treatment in {cohort!r}",
                    hint=f"cohorts are {[c.label for c in self.cohorts]}",
                    column=self.time,
                )
            cohort = matches[0]
        rows = np.r_[np.arange(self.n_donors), np.asarray(cohort.rows, dtype=np.int64)]
        return self.subset(rows)

    def subset(self, rows: Sequence[int] | np.ndarray) -> WideOutcomes:
        """Return the matrix restricted to ``rows`` (kept in the given order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return WideOutcomes(
            y=self.y[rows],
            units=self.units[rows],
            times=self.times,
            adoption=self.adoption[rows],
            covariates={k: v[rows] for k, v in self.covariates.items()},
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
        )

    def with_outcome(self, y: np.ndarray) -> WideOutcomes:
        """Return a copy with the outcome matrix replaced (e.g. residualised outcomes)."""
        y = np.asarray(y, dtype=float)
        if y.shape != self.y.shape:
            raise ValueError(f"outcome matrix must have shape {self.y.shape}, got {y.shape}")
        return WideOutcomes(
            y=y,
            units=self.units,
            times=self.times,
            adoption=self.adoption,
            covariates=dict(self.covariates),
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
        )

    def frame(self, covariate: str | None = None) -> pd.DataFrame:
        """Return the outcome (or a covariate) matrix as a labelled DataFrame."""
        values = self.y if covariate is None else self.covariates[covariate]
        return pd.DataFrame(
            values.copy(),
            index=pd.Index(self.units, name=self.unit),
            columns=pd.Index(self.times, name=self.time),
        )

    def __repr__(self) -> str:
        cohorts = ", ".join(f"{c.label} ({c.n_units})" for c in self.cohorts)
        return (
            f"<WideOutcomes {self.n_units} units x {self.n_periods} periods: "
            f"{self.n_donors} donors, treated cohorts {cohorts}>"
        )


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _grid(panel: Panel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the unit codes, time codes, unit labels and period labels (all present)."""
    ucodes, tcodes = panel.unit_codes, panel.time_codes
    units, times = panel.units, panel.times
    if ucodes is None or tcodes is None or units is None or times is None:
        raise DesignError("a wide panel needs unit and time roles", column="unit")
    return ucodes, tcodes, units, times


def wide_panel(
    data: pd.DataFrame | Panel,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str | None = None,
    cohort: str | None = None,
    covariates: Sequence[str] | str = (),
    donors: Sequence[Any] | None = None,
    complete_covariates: bool = True,
) -> WideOutcomes:
    """Build the wide outcome matrix of a synthetic-control design from long data.

    Parameters
    ----------
    data
        One row per unit and period; never modified.
    outcome, unit, time
        Column names.
    treatment
        A 0/1 column, 1 for treated unit-periods; treatment must be absorbing.
    cohort
        Alternatively, the first treated period of each unit (never-treated coded 0 or
        missing; a cohort after the last period counts as never treated in the sample).
        Give ``treatment``, ``cohort`` or both (then they must agree).
    covariates
        Columns returned as matrices of the shape of the outcome matrix.
    donors
        Restrict the donor pool to these units (labels); default every never-treated unit.
    complete_covariates
        Require covariates in every unit-period (the default; W005). With False, missing
        covariate values are kept as NaN (e.g. predictors measured in a few years only).

    Returns
    -------
    WideOutcomes

    Raises
    ------
    DataError
        Unbalanced panel (W001), treatment switching off (P008), no treated units (P011),
        all units treated (W002), no donors (W003), a cohort without pre-periods (W004),
        incomplete covariates (W005), plus the usual panel checks (P0xx).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2, 3, 3, 3], "t": [1, 2, 3] * 3,
    ...                    "y": [1.0, 2, 3, 2, 3, 4, 3, 4, 9], "d": [0, 0, 0, 0, 0, 0, 0, 0, 1]})
    >>> w = wide_panel(df, outcome="y", unit="id", time="t", treatment="d")
    >>> w.units.tolist(), w.n_donors, w.n_pre, w.n_post
    ([1, 2, 3], 2, 2, 1)
    >>> w.y[-1].tolist()
    [3.0, 4.0, 9.0]
    """
    for option, value in (("outcome", outcome), ("unit", unit), ("time", time)):
        if not isinstance(value, str):
            raise DesignError(f"{option} must be a column name, got {value!r}", column=option)
    if treatment is None and cohort is None:
        raise DesignError(
            "give the treatment (a 0/1 column) or the cohort (first treated period) column",
            hint="e.g. treatment='treated'",
            column="treatment",
        )
    covs = [covariates] if isinstance(covariates, str) else list(covariates)
    frame = data.to_frame() if isinstance(data, Panel) else data
    panel = Panel(
        frame,
        outcome=outcome,
        unit=unit,
        time=time,
        treatment=treatment,
        cohort=cohort,
        absorbing=treatment is not None,
        require_variation=treatment is not None,
        stacklevel=3,
    )
    ucodes, tcodes, units_, times_ = _grid(panel)
    n, t = panel.n_units, panel.n_periods
    if panel.n_obs != n * t:
        seen = np.zeros((n, t), dtype=bool)
        seen[ucodes, tcodes] = True
        gaps = np.flatnonzero(~seen.all(axis=1))
        example = ", ".join(repr(_scalar(units_[g])) for g in gaps[:3])
        _fail(
            "W001",
            f"the panel is unbalanced: {n * t - panel.n_obs} of {n * t} unit-periods of "
            f"{outcome!r} are missing ({len(gaps)} unit(s) with gaps, e.g. {unit}={example})",
            column=unit,
        )
    rows, cols = ucodes, tcodes
    y = np.empty((n, t))
    y[rows, cols] = panel.values(outcome)

    adoption = _adoption(panel, treatment, cohort, rows, cols)

    never = adoption == NEVER
    if never.all():
        checks.fail("P011", f"no unit is treated in the sample ({treatment or cohort!r})")
    if not never.any():
        _fail(
            "W002",
            f"all {n} units are treated by the last period ({treatment or cohort!r})",
            column=treatment or cohort,
        )
    if donors is not None:
        keep = _donor_mask(units_, never, donors, unit)
        if not keep.any():
            _fail("W003", f"none of the donors given is a never-treated unit of {unit!r}")
        dropped = int((never & ~keep).sum())
        if dropped:
            warnings.warn(
                f"{dropped} never-treated unit(s) left out of the donor pool (donors=)",
                RowsDroppedWarning,
                stacklevel=2,
            )
        include = keep | ~never
    else:
        include = np.ones(n, dtype=bool)
    first = adoption[~never].min()
    if first == 0:
        bad = units_[np.flatnonzero(adoption == 0)[0]]
        _fail(
            "W004",
            f"unit {unit}={_scalar(bad)!r} is treated from the first period "
            f"({_scalar(times_[0])!r}), leaving no pre-treatment period",
            column=treatment or cohort,
        )

    order_key = np.where(never, -1, adoption)
    order = np.lexsort((np.arange(n), order_key))  # units are sorted codes already
    order = order[include[order]]

    cov_mats: dict[str, np.ndarray] = {}
    for col in covs:
        cov_mats[col] = _covariate_matrix(frame, panel, col, complete_covariates, (n, t))[order]

    return WideOutcomes(
        y=y[order],
        units=units_[order],
        times=times_,
        adoption=adoption[order],
        covariates=cov_mats,
        outcome=outcome,
        unit=unit,
        time=time,
    )


def _adoption(
    panel: Panel,
    treatment: str | None,
    cohort: str | None,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """Per unit code, the column index of its first treated period, or NEVER."""
    _, _, units_, times_ = _grid(panel)
    n, t = panel.n_units, panel.n_periods
    from_treatment = None
    if treatment is not None:
        d = np.zeros((n, t))
        d[rows, cols] = panel.values(treatment)
        on = d.any(axis=1)
        from_treatment = np.where(on, d.argmax(axis=1), NEVER)
    if cohort is None:
        assert from_treatment is not None  # the caller gives treatment or cohort
        return from_treatment
    g = np.zeros(n)
    g[rows] = panel.values(cohort)
    times = np.asarray(times_)
    if not np.issubdtype(times.dtype, np.number):
        raise DesignError(
            f"cohort {cohort!r} needs a numeric time column, but {panel.roles['time']!r} is not",
            hint="code time as a number (e.g. year) or give treatment= instead of cohort=",
            column=cohort,
        )
    idx = np.searchsorted(times, g, side="left")  # first period >= cohort
    from_cohort = np.where((g == 0) | (idx >= t), NEVER, idx)
    late = int(((g != 0) & (idx >= t)).sum())
    if late:
        warnings.warn(
            f"{late} unit(s) have a cohort after the last period in {cohort!r}; "
            "they are used as never treated",
            RowsDroppedWarning,
            stacklevel=4,
        )
    if from_treatment is not None and not np.array_equal(from_treatment, from_cohort):
        bad = int(np.flatnonzero(from_treatment != from_cohort)[0])
        raise DataError(
            f"treatment {treatment!r} and cohort {cohort!r} disagree on when unit "
            f"{_scalar(units_[bad])!r} is first treated",
            hint="give only one of them, or fix the cohort to the first period with treatment 1",
            code="P014",
            column=cohort,
        )
    return from_cohort


def _donor_mask(
    units: np.ndarray, never: np.ndarray, donors: Sequence[Any], unit: str
) -> np.ndarray:
    wanted = list(donors) if not isinstance(donors, str) else [donors]
    present = set(units.tolist())
    missing = [d for d in wanted if d not in present]
    if missing:
        raise DesignError(
            f"donor(s) {missing[:3]} are not values of the unit column {unit!r}",
            hint=f"e.g. donors={units[never][:3].tolist()}",
            column="donors",
        )
    treated = [d for d in wanted if not never[np.flatnonzero(units == d)[0]]]
    if treated:
        raise DesignError(
            f"donor(s) {treated[:3]} are treated units and cannot be donors",
            hint="list only never-treated units in donors=",
            column="donors",
        )
    return np.asarray(np.isin(units, wanted) & never)


def _covariate_matrix(
    frame: pd.DataFrame, panel: Panel, col: str, complete: bool, shape: tuple[int, int]
) -> np.ndarray:
    ucodes, tcodes, units_, times_ = _grid(panel)
    if col not in frame.columns:
        checks.fail("P002", f"column {col!r} (role covariates) is not in the data", column=col)
    # align to the panel's kept rows by (unit, time) labels
    time = frame[panel.roles["time"]]
    # dates or periods are period codes in the panel: code the frame's the same way
    times = time.to_numpy() if panel.periods is None else panel.periods.codes(time)
    keys = pd.MultiIndex.from_arrays([frame[panel.roles["unit"]].to_numpy(), times])
    values = pd.Series(checks.numeric_column(frame, col, "covariates"), index=keys)
    values = values[~values.index.duplicated()]
    wanted = pd.MultiIndex.from_arrays([units_[ucodes], times_[tcodes]])
    out = np.full(shape, np.nan)
    out[ucodes, tcodes] = values.reindex(wanted).to_numpy()
    if complete and np.isnan(out).any():
        _fail(
            "W005",
            f"covariate {col!r} is missing in {int(np.isnan(out).sum())} unit-period(s)",
            column=col,
        )
    return out
