"""What the trial estimators share: cleaning the rows, and bounds under spillover."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator
from evalkit.core.result import InferenceInfo, Result
from evalkit.core.uncertainty import NoInference
from evalkit.data.checks import check_binary, check_columns, check_name, check_names, numeric_column
from evalkit.errors import DataError, DesignError, RowsDroppedWarning

__all__ = [
    "TrialEstimator",
    "TrialRows",
    "check_spillover_share",
    "spillover_note",
    "trial_rows",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialEstimator(Estimator):
    """What the trial estimators share: roles, the spillover bound and the method choice."""

    outcome: str
    treatment: str
    covariates: tuple[str, ...] = ()
    cluster: str | None = None
    spillover_share: float | None = None

    #: Role options besides outcome and treatment that name a column.
    extra_roles: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        roles = ("outcome", "treatment", *self.extra_roles)
        for role in roles:
            check_name(getattr(self, role), role)
        check_name(self.cluster, "cluster", required=False)
        object.__setattr__(self, "covariates", check_names(self.covariates, "covariates"))
        columns = [getattr(self, r) for r in roles]
        if len(set(columns)) < len(columns):
            raise DesignError(
                f"{', '.join(roles)} must be different columns, got {columns}",
                column=roles[-1],
            )
        for c in self.covariates:
            if c in columns or c == "const":
                raise DesignError(f"covariate {c!r} is also a role column (or 'const')", column=c)
        object.__setattr__(self, "spillover_share", check_spillover_share(self.spillover_share))

    def _method(self, spec: Any, cluster: str | None) -> tuple[str, str]:
        """Return the inference method and why: cluster-robust by the randomisation unit."""
        if spec is None:
            if cluster:
                return "cluster", f"cluster-robust by the unit of randomisation {cluster!r}"
            return "hetero", "heteroskedasticity-robust: persons randomised (no cluster= given)"
        if spec.method == "cluster" and not cluster:
            raise DesignError(
                "inference='cluster' needs the unit of randomisation",
                hint="pass cluster='office' (the column randomised), or use inference='hetero'",
                column="cluster",
            )
        return spec.method, "requested"

    def _point_only(self, table: Any, info: dict, ctx: Any, reason: str) -> Result:
        """Return the point estimates with no inference (``inference="none"``)."""
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo("none", "point estimates only", reason=reason),
            info=info,
            level=ctx.level,
            uncertainty=NoInference(),
        )

    def _rows(
        self,
        data: Any,
        cluster: str | None,
        numeric: Sequence[str],
        binary: Sequence[tuple[str, str]],
    ) -> TrialRows:
        roles = {r: getattr(self, r) for r in ("outcome", "treatment", *self.extra_roles)}
        check_columns(data, {**roles, "covariates": list(self.covariates)})
        if cluster:
            check_columns(data, {"cluster": cluster})
        return trial_rows(data, numeric=numeric, binary=binary, cluster=cluster, stacklevel=6)


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
