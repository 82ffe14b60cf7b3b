"""The canonical, validated panel that every estimator works on.

A :class:`Panel` is built once at the boundary from a user's DataFrame and the names of
the columns that play each role. Building it runs the check catalogue
(:mod:`evalkit.data.checks`), drops rows with missing analysis values (counted in a
warning), and stores the columns as read-only numpy arrays with integer codes for units,
periods and clusters. The user's frame is never modified.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from evalkit.data import checks
from evalkit.data.periods import PeriodCoding, encode_periods
from evalkit.errors import DataError, RowsDroppedWarning

__all__ = ["ROLES", "Panel", "nested_within", "sorted_codes"]

ROLES: tuple[str, ...] = (
    "outcome",
    "unit",
    "time",
    "treatment",
    "cohort",
    "covariates",
    "cluster",
    "weights",
    "instrument",  # for IV designs (dml.IIVM, dml.PLIV)
)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _has_duplicates(key: np.ndarray, n_cells: int) -> bool:
    """Return True when a non-negative integer key repeats (one counting pass if it fits)."""
    if n_cells <= 200_000_000:
        return bool(np.bincount(key, minlength=n_cells).max(initial=0) > 1)
    ordered = np.sort(key)
    return bool((ordered[1:] == ordered[:-1]).any())


def sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return integer codes ``0..k-1`` in sorted order of the values, and the values.

    Small-range integer columns (the usual ids and periods) are coded with one lookup
    table instead of a hash table or a sort.

    Examples
    --------
    >>> sorted_codes(pd.Series([2005, 2003, 2005]))
    (array([1, 0, 1]), array([2003, 2005]))
    """
    if pd.api.types.is_integer_dtype(values.dtype) and len(values):
        arr = values.to_numpy()
        low, high = int(arr.min()), int(arr.max())
        span = high - low + 1
        if span <= 4 * len(arr) + 1024:
            shifted = arr - low
            present = np.zeros(span, dtype=bool)
            present[shifted] = True
            lookup = np.cumsum(present) - 1
            return lookup[shifted].astype(np.int64), np.flatnonzero(present) + low
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


def nested_within(inner: np.ndarray, outer: np.ndarray, n_inner: int) -> np.ndarray:
    """Boolean per ``inner`` code: True when all its rows share one ``outer`` code.

    Examples
    --------
    >>> nested_within(np.array([0, 0, 1, 1]), np.array([5, 5, 6, 7]), 2)
    array([ True, False])
    """
    first = np.full(n_inner, -1, dtype=np.int64)
    first[inner[::-1]] = outer[::-1]  # the first outer code seen for each inner code
    differs = first[inner] != outer
    if not differs.any():
        return np.ones(n_inner, dtype=bool)
    nested: np.ndarray = np.bincount(inner, weights=differs, minlength=n_inner) == 0
    return nested


class Panel:
    """A validated panel (or repeated cross-section) with named roles.

    Parameters
    ----------
    data
        The user's data, one row per unit and period (or per individual in a repeated
        cross-section). Never modified.
    outcome, unit, time, treatment, cohort, cluster, weights
        Column names for each role; None when the role is not used. ``treatment`` is a
        0/1 column (treated unit in a treated period); ``cohort`` is the first treated
        period with never-treated units coded 0 or missing.
    covariates
        Column names of covariates.
    panel
        True when rows are units observed over time (unit x time must be unique);
        False for repeated cross-sections, where ``unit`` names a group (e.g. a city)
        and many rows may share a group and period.
    absorbing
        Require treatment to stay on once it starts (check P008).
    balanced
        Require every unit to be observed in every period (check P015).
    cluster_nests_unit
        Require the cluster to be constant within each unit (check P009).
    require_variation
        Require both treated and untreated observations (check P011).

    Attributes
    ----------
    roles : dict
        Role name to column name(s), for the roles given.
    n_obs, n_units, n_periods : int
        Sizes after dropping rows with missing values.
    times : numpy.ndarray
        The sorted distinct periods; ``time_codes`` index into it. For a date or
        pandas Period time column these are consecutive period codes (1 for the first
        period) and :meth:`label` turns one back into a :class:`pandas.Period`.
    periods : PeriodCoding or None
        How period codes map to periods, for a date or Period time column (the cohort
        column is coded on the same scale, 0 for never treated); None for numbers.
    dropped : dict
        Count of dropped rows by reason.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [1, 1, 2, 2], "t": [0, 1, 0, 1],
    ...                    "y": [1.0, 2.0, 1.5, None], "d": [0, 1, 0, 0]})
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     p = Panel(df, outcome="y", unit="id", time="t", treatment="d")
    >>> p.n_obs, p.dropped
    (3, {'missing outcome (y)': 1})
    """

    def __init__(
        self,
        data: pd.DataFrame,
        *,
        outcome: str | None = None,
        unit: str | None = None,
        time: str | None = None,
        treatment: str | None = None,
        cohort: str | None = None,
        covariates: Sequence[str] | str | None = None,
        cluster: str | None = None,
        weights: str | None = None,
        panel: bool = True,
        absorbing: bool = False,
        balanced: bool = False,
        cluster_nests_unit: bool = False,
        require_variation: bool = True,
        stacklevel: int = 2,
    ) -> None:
        if isinstance(data, Panel):
            data = data.to_frame()
        if not isinstance(data, pd.DataFrame):
            raise DataError(
                f"data must be a pandas DataFrame, got {type(data).__name__}",
                hint="read your file with evalkit.data.read_csv / read_parquet / read_sql",
            )
        covs = [covariates] if isinstance(covariates, str) else list(covariates or [])
        roles: dict[str, Any] = {
            "outcome": outcome,
            "unit": unit,
            "time": time,
            "treatment": treatment,
            "cohort": cohort,
            "covariates": covs,
            "cluster": cluster,
            "weights": weights,
        }
        self.roles: dict[str, Any] = {k: v for k, v in roles.items() if v not in (None, [])}
        self.panel = bool(panel)
        checks.check_not_empty(data)
        checks.check_columns(data, self.roles)

        used = list(dict.fromkeys(c for v in self.roles.values() for c in checks._as_list(v)))
        frame = data.loc[:, used]  # a new frame; the caller's is untouched

        for role in ("unit", "time", "cluster"):
            if role in self.roles:
                checks.check_identifier(frame, self.roles[role], role)
        self.periods: PeriodCoding | None = None
        if time is not None:
            checks.check_time_values(frame[time], time)
            coded = encode_periods(
                frame[time], time, None if cohort is None else frame[cohort], cohort
            )
            if coded is not None:  # dates or periods: consecutive period codes from 1
                t_codes, g_codes, self.periods = coded
                frame = frame.assign(**{time: t_codes})
                if cohort is not None:
                    frame = frame.assign(**{cohort: g_codes})

        values: dict[str, np.ndarray] = {}
        keep = np.ones(len(frame), dtype=bool)
        dropped: dict[str, int] = {}
        numeric_roles = [("outcome", outcome), ("treatment", treatment), ("weights", weights)]
        numeric_roles += [("covariates", c) for c in covs]
        for role, col in numeric_roles:
            if col is None:
                continue
            v = checks.numeric_column(frame, col, role)
            values[col] = v
            missing = np.isnan(v) & keep
            if missing.any():
                dropped[f"missing {role if role != 'covariates' else 'covariate'} ({col})"] = int(
                    missing.sum()
                )
                keep &= ~np.isnan(v)
        if cohort is not None:
            v = checks.numeric_column(frame, cohort, "cohort")
            values[cohort] = np.where(np.isnan(v), 0.0, v)  # missing cohort = never treated
        if weights is not None:
            w = values[weights][keep]
            if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
                checks.fail(
                    "P012",
                    f"weights column {weights!r} has negative values or a zero sum",
                    column=weights,
                )
        if treatment is not None:
            checks.check_binary(values[treatment], treatment)

        if not keep.all():
            frame = frame.loc[keep]
            values = {k: v[keep] for k, v in values.items()}
            total = int((~keep).sum())
            reasons = "; ".join(f"{n} for {r}" for r, n in dropped.items())
            warnings.warn(
                f"dropped {total} of {len(keep)} rows with missing values ({reasons})",
                RowsDroppedWarning,
                stacklevel=stacklevel + 1,
            )
        self.dropped: dict[str, int] = dropped
        checks.check_not_empty(frame)
        frame = frame.reset_index(drop=True)

        self._values = {k: _readonly(np.ascontiguousarray(v)) for k, v in values.items()}
        self._frame = frame
        self.n_obs = len(frame)

        self.unit_codes: np.ndarray | None = None
        self.units: np.ndarray | None = None
        self.time_codes: np.ndarray | None = None
        self.times: np.ndarray | None = None
        if unit is not None:
            codes, uniques = sorted_codes(frame[unit])
            self.unit_codes = _readonly(codes.astype(np.int64, copy=False))
            self.units = _readonly(np.asarray(uniques))
        if time is not None:
            codes, uniques = sorted_codes(frame[time])
            self.time_codes = _readonly(codes.astype(np.int64, copy=False))
            self.times = _readonly(np.asarray(uniques))
        self.n_units = 0 if self.units is None else len(self.units)
        self.n_periods = 0 if self.times is None else len(self.times)

        self.cluster_codes: np.ndarray | None = None
        self.clusters: np.ndarray | None = None
        if cluster is not None:
            codes, uniques = sorted_codes(frame[cluster])
            self.cluster_codes = _readonly(codes.astype(np.int64, copy=False))
            self.clusters = _readonly(np.asarray(uniques))
            self.n_clusters = len(uniques)
        else:
            self.n_clusters = 0

        self._validate_structure(
            absorbing=absorbing,
            balanced=balanced,
            cluster_nests_unit=cluster_nests_unit,
            require_variation=require_variation,
        )

    # ------------------------------------------------------------------ checks
    def _validate_structure(
        self, *, absorbing: bool, balanced: bool, cluster_nests_unit: bool, require_variation: bool
    ) -> None:
        unit, time = self.roles.get("unit"), self.roles.get("time")
        # the code arrays are set exactly when their role is (narrowed here for the type checker)
        unit_codes, time_codes = self.unit_codes, self.time_codes
        units, cluster_codes = self.units, self.cluster_codes
        if self.panel and unit_codes is not None and time_codes is not None:
            key = unit_codes * np.int64(self.n_periods) + time_codes
            if _has_duplicates(key, self.n_units * self.n_periods):
                dup = pd.Series(key).duplicated(keep=False).to_numpy()
                first = self._frame.loc[dup, [unit, time]].iloc[0]
                period = self.label(first[time])
                checks.fail(
                    "P003",
                    f"{int(dup.sum())} rows share a ({unit}, {time}) pair with another row, "
                    f"e.g. {unit}={first[unit]!r}, {time}={period!r}",
                    column=unit,
                )
        if time is not None and self.n_periods < 2:
            checks.fail("P010", f"time column {time!r} has a single period", column=time)
        treat = self.roles.get("treatment")
        if treat is not None and require_variation:
            d = self._values[treat]
            if d.min() == d.max():
                which = "all" if d.max() == 1 else "no"
                checks.fail(
                    "P011", f"{which} observations are treated in column {treat!r}", column=treat
                )
        if balanced and self.panel and unit is not None and time is not None:
            if self.n_obs != self.n_units * self.n_periods:
                checks.fail(
                    "P015",
                    f"the panel is unbalanced: {self.n_obs} rows for {self.n_units} units x "
                    f"{self.n_periods} periods",
                    column=unit,
                )
        if (
            absorbing
            and treat is not None
            and unit_codes is not None
            and time_codes is not None
            and units is not None
        ):
            order = np.lexsort((time_codes, unit_codes))
            d = self._values[treat][order]
            u = unit_codes[order]
            same = u[1:] == u[:-1]
            off = same & (d[1:] < d[:-1])
            if off.any():
                bad_unit = units[u[1:][off][0]]
                checks.fail(
                    "P008",
                    f"treatment {treat!r} switches from 1 to 0 within {int(off.sum())} unit(s), "
                    f"e.g. {unit}={bad_unit!r}",
                    column=treat,
                )
        cluster = self.roles.get("cluster")
        if (
            cluster_nests_unit
            and cluster != unit
            and unit_codes is not None
            and cluster_codes is not None
            and units is not None
        ):
            ok = nested_within(unit_codes, cluster_codes, self.n_units)
            if not ok.all():
                bad = units[int(np.flatnonzero(~ok)[0])]
                checks.fail(
                    "P009",
                    f"cluster {cluster!r} takes more than one value within {int((~ok).sum())} "
                    f"unit(s), e.g. {unit}={bad!r}",
                    column=cluster,
                )
        cohort = self.roles.get("cohort")
        if cohort is not None and unit is not None and self.panel:
            per_unit = pd.Series(self._values[cohort]).groupby(self.unit_codes).nunique()
            if (per_unit > 1).any():
                checks.fail(
                    "P014",
                    f"cohort {cohort!r} is not constant within {int((per_unit > 1).sum())} unit(s)",
                    column=cohort,
                )

    # ------------------------------------------------------------------ access
    def values(self, column: str) -> np.ndarray:
        """Return a numeric analysis column (outcome, treatment, covariate, weights, cohort)."""
        try:
            return self._values[column]
        except KeyError:
            raise DataError(f"{column!r} is not a numeric analysis column of this panel") from None

    def label(self, period: Any) -> Any:
        """Return a period code as a :class:`pandas.Period` (dates/periods), else unchanged."""
        return period if self.periods is None else self.periods.label(period)

    def role(self, role: str) -> Any:
        """Return the column name(s) playing ``role``, or None."""
        return self.roles.get(role)

    def matrix(self, columns: Sequence[str]) -> np.ndarray:
        """Stack numeric columns into an (n_obs, k) float array."""
        if not columns:
            return np.empty((self.n_obs, 0))
        return np.column_stack([self._values[c] for c in columns])

    def column(self, column: str) -> pd.Series:
        """Return any used column as a pandas Series (a copy).

        A time or cohort column of dates or periods comes back as period codes (see
        :meth:`label`).
        """
        return self._frame[column].copy()

    def to_frame(self) -> pd.DataFrame:
        """Return the validated rows and used columns as a new DataFrame.

        Dates or periods in the time and cohort columns are period codes here, so a fit on
        this frame (or on the Panel) reports periods as codes, not as their labels.
        """
        return self._frame.copy()

    @property
    def is_balanced(self) -> bool:
        """True when every unit is observed in every period exactly once."""
        return self.panel and self.n_obs == self.n_units * self.n_periods

    def describe(self) -> Mapping[str, Any]:
        """Return the sizes and roles of the panel (aggregates only, no microdata)."""
        out: dict[str, Any] = {
            "n_obs": self.n_obs,
            "n_units": self.n_units,
            "n_periods": self.n_periods,
            "balanced": self.is_balanced,
            "roles": dict(self.roles),
            "dropped": dict(self.dropped),
        }
        if self.n_clusters:
            out["n_clusters"] = self.n_clusters
        if self.periods is not None and self.times is not None:
            out["time_unit"] = self.periods.unit
            out["first_period"] = str(self.label(self.times[0]))
            out["last_period"] = str(self.label(self.times[-1]))
        return out

    def __repr__(self) -> str:
        return (
            f"<Panel {self.n_obs} rows, {self.n_units} units x {self.n_periods} periods, "
            f"roles={self.roles}>"
        )
