"""What the trial estimators share: cleaning the rows, and bounds under spillover."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from evalkit.data.checks import check_binary, numeric_column
from evalkit.errors import DataError, DesignError, RowsDroppedWarning

__all__ = ["TrialRows", "check_spillover_share", "spillover_note", "trial_rows"]


class TrialRows:
    """The usable rows of a trial as arrays (no pandas beyond this point)."""

    def __init__(self, columns: dict[str, np.ndarray], cluster: np.ndarray | None) -> None:
        self.columns = columns
        self.cluster = cluster

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def n(self) -> int:
        """The number of usable rows."""
        return len(next(iter(self.columns.values())))


def trial_rows(
    data: pd.DataFrame,
    *,
    numeric: Sequence[str],
    binary: Sequence[tuple[str, str]],
    cluster: str | None,
    stacklevel: int = 5,
) -> TrialRows:
    """Return the rows with every used column present, counting the others in a warning.

    ``numeric`` are the numeric columns used; ``binary`` are ``(column, role)`` pairs that
    must be 0/1 and vary; ``cluster`` (any type) must have no missing value either.
    """
    used = list(dict.fromkeys([*numeric, *(c for c, _ in binary)]))
    wanted = [*used, *([cluster] if cluster and cluster not in used else [])]
    for col in wanted:
        if col not in data.columns:
            close = difflib.get_close_matches(col, [str(c) for c in data.columns], n=2)
            raise DataError(
                f"column {col!r} is not in the data",
                hint=f"did you mean {' or '.join(map(repr, close))}?" if close else None,
                code="P002",
                column=col,
            )
    values = {c: numeric_column(data, c, "covariate") for c in used}
    bad = np.zeros(len(data), dtype=bool)
    counts: dict[str, int] = {}
    for c, v in values.items():
        miss = np.isnan(v)
        if miss.any():
            counts[c] = int(miss.sum())
        bad |= miss
    if cluster:
        miss = data[cluster].isna().to_numpy()
        if miss.any():
            counts[cluster] = int(miss.sum())
        bad |= miss
    if bad.any():
        text = ", ".join(f"{c} ({k})" for c, k in counts.items())
        warnings.warn(
            f"dropped {int(bad.sum())} of {len(data)} rows with missing values in: {text}",
            RowsDroppedWarning,
            stacklevel=stacklevel,
        )
    keep = ~bad
    cols = {c: v[keep] for c, v in values.items()}
    if keep.sum() < 4:
        raise DataError(
            f"{int(keep.sum())} usable rows are too few for a trial analysis",
            column=numeric[0] if numeric else None,
        )
    for col, role in binary:
        check_binary(cols[col], col, role)
        if np.ptp(cols[col]) == 0:
            raise DataError(
                f"{role} column {col!r} is constant ({cols[col][0]:g}): the trial has no "
                "comparison",
                hint="both arms must be in the data",
                column=col,
            )
    codes = None
    if cluster:
        codes = pd.factorize(data.loc[keep, cluster], sort=True)[0].astype(np.int64)
    return TrialRows(cols, codes)


def check_spillover_share(value: object) -> float | None:
    """Validate ``spillover_share``: None, or a number in [0, 1).

    Examples
    --------
    >>> check_spillover_share(0.3)
    0.3
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise DesignError(
            f"spillover_share must be a number in [0, 1), got {value!r}",
            hint="the largest share of the spillover-free effect that reaches the controls, "
            "e.g. spillover_share=0.5",
            column="spillover_share",
        )
    return float(value)


def spillover_note(term: str, share: float) -> str:
    """Say what the bound row means and what it assumes."""
    return (
        f"bounds under spillover: the controls gain a share s in [0, {share:g}] of the "
        "spillover-free effect (spillover in the same direction as the effect, at most "
        f"that share); the spillover-free effect then lies between {term!r} and "
        f"{term + ':no_spillover_bound'!r} (= {term} / (1 - {share:g})), and the union of "
        "their intervals covers it at the stated level"
    )
