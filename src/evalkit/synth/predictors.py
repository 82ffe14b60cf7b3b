"""Predictors of the synthetic control method: ``(variable, periods, op)`` specifications.

A predictor summarises one variable over some pre-treatment periods for every unit: the
mean, the median or the last observed value, missing values skipped (as the R package
``Synth`` does with ``na.rm = TRUE``). ``periods`` is a list of periods, one period, or a
tuple ``(first, last)`` meaning every period of the data in that inclusive range.
Predictors are standardised by their standard deviation across the units of the fit
before the weights are chosen, as ``Synth`` does.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.errors import DataError, DesignError

__all__ = ["OPS", "Predictor", "parse_periods", "parse_predictors", "predictor_row", "standardise"]

OPS: tuple[str, ...] = ("mean", "median", "last")


@dataclass(frozen=True)
class Predictor:
    """One predictor: a variable summarised over periods.

    Attributes
    ----------
    variable
        Column of the data.
    periods
        The periods as given (a tuple of periods, or ``(first, last)`` when ``is_range``).
    op
        ``"mean"``, ``"median"`` or ``"last"`` (the latest period with a value).
    is_range
        True when ``periods`` is an inclusive range ``(first, last)``.
    """

    variable: str
    periods: tuple[Any, ...]
    op: str = "mean"
    is_range: bool = False

    @property
    def label(self) -> str:
        """A readable name, e.g. ``"gdpcap (mean 1960-1969)"``."""
        if self.is_range:
            when = f"{self.periods[0]}-{self.periods[1]}"
        elif len(self.periods) == 1:
            when = str(self.periods[0])
        else:
            when = ",".join(str(p) for p in self.periods)
        if len(self.periods) == 1 and not self.is_range:
            return f"{self.variable} ({when})"
        return f"{self.variable} ({self.op} {when})"

    def resolve(self, times: np.ndarray, n_pre: int) -> np.ndarray:
        """Return the column indices of the predictor's periods among ``times``.

        Raises
        ------
        DesignError
            If a period is not in the data or is a treated period.
        """
        times = np.asarray(times)
        if self.is_range:
            first, last = self.periods
            try:
                cols = np.flatnonzero((times >= first) & (times <= last))
            except TypeError:
                raise DesignError(
                    f"predictor {self.label}: the range {self.periods!r} cannot be compared "
                    f"with the periods of the data ({times[0]!r}...)",
                    column="predictors",
                ) from None
            if cols.size == 0:
                raise DesignError(
                    f"predictor {self.label}: no period of the data lies in {first}-{last}",
                    hint=f"the data cover {times[0]}-{times[-1]}",
                    column="predictors",
                )
        else:
            lookup = {t.item() if isinstance(t, np.generic) else t: i for i, t in enumerate(times)}
            missing = [p for p in self.periods if p not in lookup]
            if missing:
                raise DesignError(
                    f"predictor {self.label}: period(s) {missing[:3]} are not in the data",
                    hint=f"the data cover {times[0]}-{times[-1]}",
                    column="predictors",
                )
            cols = np.array(sorted(lookup[p] for p in self.periods), dtype=int)
        if cols.max() >= n_pre:
            raise DesignError(
                f"predictor {self.label} uses period {times[cols.max()]}, after treatment "
                f"starts in {times[n_pre]}",
                hint="predictors must describe the units before treatment",
                column="predictors",
            )
        return cols


def parse_periods(value: Any, where: str) -> tuple[tuple[Any, ...], bool]:
    """Return ``(periods, is_range)`` from a list, one period or a ``(first, last)`` tuple."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise DesignError(
                f"{where}: a tuple of periods means an inclusive range (first, last), "
                f"got {len(value)} values",
                hint="use a list for individual periods, e.g. [1961, 1963, 1965]",
                column="predictors",
            )
        if value[0] > value[1]:
            raise DesignError(
                f"{where}: the range {value!r} is empty (first after last)", column="predictors"
            )
        return tuple(value), True
    if isinstance(value, range):
        value = list(value)
    if isinstance(value, (list, np.ndarray)):
        items = [v.item() if isinstance(v, np.generic) else v for v in value]
        if not items:
            raise DesignError(f"{where}: the list of periods is empty", column="predictors")
        return tuple(items), False
    if isinstance(value, (str, bytes)) or value is None:
        raise DesignError(
            f"{where}: periods must be a list, a (first, last) range or one period, got {value!r}",
            column="predictors",
        )
    return (value.item() if isinstance(value, np.generic) else value,), False


def parse_predictors(
    value: Iterable[Any] | None, option: str = "predictors"
) -> tuple[Predictor, ...]:
    """Validate a ``predictors`` option into :class:`Predictor` objects.

    Each item is ``(variable, periods)`` or ``(variable, periods, op)``.

    Examples
    --------
    >>> [p.label for p in parse_predictors([("gdp", (1960, 1969)), ("pop", 1969, "last")])]
    ['gdp (mean 1960-1969)', 'pop (1969)']
    """
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise DesignError(
            f"{option} must be a list of (variable, periods, op) triples, got {value!r}",
            hint=f"e.g. {option}=[('gdpcap', (1960, 1969), 'mean')]",
            column=option,
        )
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Predictor):
            out.append(item)
            continue
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise DesignError(
                f"{option}[{i}] must be (variable, periods) or (variable, periods, op), "
                f"got {item!r}",
                hint="e.g. ('invest', (1964, 1969), 'mean')",
                column=option,
            )
        variable, periods = item[0], item[1]
        op = item[2] if len(item) == 3 else "mean"
        if not isinstance(variable, str):
            raise DesignError(
                f"{option}[{i}]: the variable must be a column name, got {variable!r}",
                column=option,
            )
        if op not in OPS:
            close = difflib.get_close_matches(str(op), OPS, n=1)
            raise DesignError(
                f"{option}[{i}] ({variable}): unknown op {op!r}",
                hint=(f"did you mean {close[0]!r}? " if close else "") + f"ops: {', '.join(OPS)}",
                column=option,
            )
        resolved, is_range = parse_periods(periods, f"{option}[{i}] ({variable})")
        out.append(Predictor(variable, resolved, op, is_range))
    labels = [p.label for p in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise DesignError(f"{option} lists {dupes[0]} twice", column=option)
    return tuple(out)


def predictor_row(
    predictor: Predictor,
    matrix: np.ndarray,
    cols: np.ndarray,
    units: Sequence[Any] | np.ndarray,
    unit: str,
) -> np.ndarray:
    """Summarise ``matrix`` (units x periods) over ``cols`` by the predictor's op.

    Missing values are skipped; a unit with no value in any of the periods raises a
    :class:`~evalkit.errors.DataError` naming it.
    """
    block = matrix[:, cols]
    empty = np.isnan(block).all(axis=1)
    if empty.any():
        bad = units[int(np.flatnonzero(empty)[0])]
        raise DataError(
            f"predictor {predictor.label}: {predictor.variable!r} is missing in every period "
            f"for {int(empty.sum())} unit(s), e.g. {unit}={bad!r}",
            hint="choose periods in which the variable is observed, or drop the predictor",
            column=predictor.variable,
        )
    if predictor.op == "mean":
        return np.nanmean(block, axis=1)
    if predictor.op == "median":
        return np.nanmedian(block, axis=1)
    # last: the latest period with a value
    last = block.shape[1] - 1 - np.argmax(~np.isnan(block[:, ::-1]), axis=1)
    return block[np.arange(block.shape[0]), last]


def standardise(x: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Divide each predictor (row of ``x``, units in columns) by its standard deviation.

    The standard deviation is taken across all units of the fit (treated and donors,
    ``n - 1`` in the denominator), as in ``Synth``.

    Raises
    ------
    DesignError
        If a predictor takes the same value for every unit.
    """
    sd = x.std(axis=1, ddof=1)
    flat = ~(sd > 0)
    if flat.any():
        raise DesignError(
            f"predictor {labels[int(np.flatnonzero(flat)[0])]} takes the same value for every "
            "unit, so it cannot distinguish donors",
            hint="drop it from predictors",
            column="predictors",
        )
    return x / sd[:, None]
