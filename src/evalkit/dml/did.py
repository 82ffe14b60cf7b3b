"""Doubly robust DML difference-in-differences with two periods (Chang 2020).

Panel data (the same units in both periods) use DoubleML's ``DoubleMLDID`` on each
unit's change in the outcome; repeated cross-sections (different people in each
period) use ``DoubleMLDIDCS``. Both estimate the average treatment effect on the
treated group under conditional parallel trends given pre-treatment covariates.

References
----------
Chang, N.-C. (2020). Double/debiased machine learning for difference-in-differences
models. *The Econometrics Journal* 23(2), 177-191.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.registry import register
from evalkit.data.checks import check_name
from evalkit.dml._base import DMLEstimator, binary
from evalkit.errors import DataError, DesignError

__all__ = ["DID"]


@register("dml.DID")
@dataclasses.dataclass(frozen=True, kw_only=True)
class DID(DMLEstimator):
    """Two-period difference-in-differences with ML nuisances (ATT of the treated group).

    Parameters
    ----------
    outcome, time, covariates
        Columns; ``time`` takes exactly two values (before and after). Covariates are
        taken from the earlier period in a panel.
    treatment
        0/1 membership of the treated group (in a panel, a unit's maximum over the two
        periods, so a treated-in-period indicator works too; in repeated cross-sections
        it must mark the group in both periods).
    unit
        Unit column of a panel (required when ``panel=True``).
    panel
        True for panel data, False for repeated cross-sections.
    trimming
        Clipping threshold of the propensity score (DoubleML's ``clipping_threshold``).

    Notes
    -----
    Nuisances: ``ml_g`` (outcome regressions of the controls) and ``ml_m`` (the
    propensity score of the treated group, a classifier). Inference as for the other
    DML models (:mod:`evalkit.dml.models`); clustering by ``cluster=`` (in a panel the
    unit is the observation, so clusters must be constant within units).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from evalkit.dml import DID
    >>> rng = np.random.default_rng(0)
    >>> n = 400
    >>> x = rng.normal(size=n)
    >>> g = (rng.random(n) < 0.5).astype(int)
    >>> y0 = x + rng.normal(size=n)
    >>> y1 = y0 + 0.5 * x + 2.0 * g + rng.normal(size=n)
    >>> df = pd.DataFrame({"id": np.repeat(np.arange(n), 2), "t": np.tile([0, 1], n),
    ...                    "y": np.column_stack([y0, y1]).ravel(), "g": np.repeat(g, 2),
    ...                    "x": np.repeat(x, 2)})
    >>> res = DID(outcome="y", treatment="g", unit="id", time="t", covariates=["x"],
    ...           learner="logit", n_folds=2).fit(df, seed=3)
    >>> bool(abs(res.estimate() - 2.0) < 0.5)
    True
    """

    time: str
    unit: str | None = None
    panel: bool = True
    trimming: float = 0.01
    binary_roles: ClassVar[tuple[str, ...]] = ("treatment",)
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({"{treatment}": "treated_cells"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name(self.time, "time")
        if not isinstance(self.panel, bool):
            raise DesignError(f"panel must be True or False, got {self.panel!r}", column="panel")
        if self.panel:
            check_name(self.unit, "unit")

    def _roles(self) -> list[str]:
        extra = [self.unit] if self.panel and self.unit else []
        return [self.outcome, self.treatment, self.time, *extra]

    def _check(self, frame: pd.DataFrame) -> None:
        periods = np.unique(frame[self.time])
        if len(periods) != 2:
            raise DataError(
                f"time column {self.time!r} must take exactly two values (before, after) for "
                f"dml.DID, got {len(periods)}",
                hint="keep one period before and one after treatment, or use "
                "did.CallawaySantAnna for more periods",
                column=self.time,
            )

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        periods = np.unique(frame[self.time])
        post = (frame[self.time] == periods[1]).astype(float)
        if not self.panel:
            out = frame.copy()
            out["_t"] = post.to_numpy()
            return out
        unit = frame[self.unit]
        if unit.duplicated().any() and frame.duplicated([self.unit, self.time]).any():
            raise DataError(
                f"units of {self.unit!r} appear more than once in a period",
                hint="a panel has one row per unit and period; for repeated cross-sections "
                "pass panel=False",
                column=self.unit,
            )
        # one row per unit: the earlier period's row with the change of the outcome; the
        # later rows are found by position (no copies of the frame's halves)
        is_post = post.to_numpy() == 1
        pre_rows = np.flatnonzero(~is_post)
        post_rows = np.flatnonzero(is_post)
        units = unit.to_numpy()
        later = pd.Index(units[post_rows]).get_indexer(units[pre_rows])
        kept = later >= 0
        pre_rows, post_rows = pre_rows[kept], post_rows[later[kept]]
        n_lost = int(unit.nunique() - len(pre_rows))
        if n_lost:
            import warnings

            from evalkit.errors import RowsDroppedWarning

            warnings.warn(
                f"dropped {n_lost} unit(s) of {self.unit!r} not observed in both periods",
                RowsDroppedWarning,
                stacklevel=6,
            )
        wide = frame.iloc[pre_rows]
        y = frame[self.outcome].to_numpy()
        d = frame[self.treatment].to_numpy()
        wide = wide.assign(_dy=y[post_rows] - y[pre_rows])
        group = np.maximum(d[pre_rows], d[post_rows])
        wide[self.treatment] = group
        if not binary(group):
            raise DataError(
                f"treatment column {self.treatment!r} gives a single group in the panel: "
                "DiD needs treated and comparison units",
                column=self.treatment,
            )
        return wide

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:
        return {"ml_g": "regressor", "ml_m": "classifier"}

    def _fitting(self) -> contextlib.AbstractContextManager[None]:
        if not self.panel:
            return contextlib.nullcontext()
        import doubleml.did.did

        from evalkit.dml.cond_splits import fast_cond_splits

        # the training rows of each group by a mask, not set intersections (same splits)
        return fast_cond_splits(doubleml.did.did)

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:
        import doubleml

        data = frame.reset_index(drop=True)
        common = {
            "d_cols": self.treatment,
            "x_cols": list(self.covariates),
            "cluster_cols": list(clusters) or None,
        }
        if self.panel:
            obj = doubleml.DoubleMLDIDData(data, y_col="_dy", **common)
            cls = doubleml.DoubleMLDID
        else:
            obj = doubleml.DoubleMLDIDData(data, y_col=self.outcome, t_col="_t", **common)
            cls = doubleml.DoubleMLDIDCS
        return cls(
            obj,
            n_folds=self.n_folds,
            n_rep=self.n_rep,
            clipping_threshold=float(self.trimming),
            draw_sample_splitting=False,
            **learners,
        )
