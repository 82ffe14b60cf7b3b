"""The effect of an occupational exposure from a job exposure matrix, by double ML."""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import Result
from evalkit.data.checks import check_name, check_names, numeric_column
from evalkit.data.disclosure import check_min_cell_size
from evalkit.errors import DataError, DesignError, RowsDroppedWarning
from evalkit.exposure.matrix import build_matrix, split_half_reliability

__all__ = ["JobExposure"]

BERKSON_NOTE = (
    "Berkson error: every person is given the mean exposure of their occupation, not "
    "their own. When a person's own exposure is the occupation mean plus a deviation "
    "unrelated to it, and the outcome is linear in exposure, this does not bias the "
    "effect (it widens the interval); with a non-linear effect, or deviations related to "
    "covariates, it can. The survey's occupation means carry classical sampling error "
    "as well, which would attenuate the effect: shrinking them towards the overall mean "
    "(empirical Bayes) corrects that (regression calibration). The interval treats the "
    "matrix as known; clustering by occupation absorbs the error it shares within each "
    "occupation."
)


@register("exposure.JobExposure")
@dataclasses.dataclass(frozen=True, kw_only=True)
class JobExposure(Estimator):
    """Effect of an occupational exposure measured by a survey-based job exposure matrix.

    The data hold two samples told apart by ``sample``: survey respondents (rows
    ``sample == survey``) with their ``occupation`` and reported ``exposure``, and
    register persons (the other rows) with their ``occupation``, ``outcome`` and
    ``covariates``. The matrix is the survey's mean exposure by occupation, shrunk
    towards the overall mean by how few respondents an occupation has (``shrink``);
    its split-half reliability validates it. Register persons get their occupation's
    value, and the effect of one unit of exposure on the outcome is estimated by
    :class:`~evalkit.dml.PLR` (partially linear double ML on the covariates) with
    standard errors and folds clustered by occupation.

    Parameters
    ----------
    outcome, exposure, occupation, sample
        Columns: the register outcome, the survey's exposure answer, the occupation
        code (shared by both samples) and the column saying which sample a row is in.
    covariates
        Register covariates (confounders of occupation and outcome).
    survey
        The value of ``sample`` that marks survey rows.
    shrink
        Shrink the occupation means (True) or use the raw means (False).
    learner, n_folds
        Passed to :class:`~evalkit.dml.PLR`.
    min_cell_size
        Occupations with fewer survey respondents are left out of the matrix shown in
        ``extras["matrix"]`` (they still get a shrunk value for the analysis).
    reliability_splits
        Random splits averaged for the split-half reliability.

    Notes
    -----
    Inference as :class:`~evalkit.dml.PLR` with ``cluster=occupation``: ``"cluster"``
    (the default), ``"bootstrap"`` (one multiplier weight per occupation) and ``"none"``.
    ``info`` gives the split-half reliability, its Spearman-Brown full-length value, the
    between-occupation variance and the share of register persons linked, and
    ``info["berkson"]`` the note on Berkson error.

    Examples
    --------
    >>> from evalkit.simulate import get
    >>> from evalkit.exposure import JobExposure
    >>> df = get("integration_jem")(seed=1, n_survey=600, n_register=1500).data
    >>> res = JobExposure(outcome="sickness_days", exposure="physical_strain",
    ...                   occupation="occupation", sample="source",
    ...                   covariates=["age", "female", "low_education"], n_folds=2).fit(df, seed=1)
    >>> res.terms, res.info["split_half_reliability"] > 0.5
    (['physical_strain'], True)
    """

    outcome: str
    exposure: str
    occupation: str
    sample: str
    covariates: tuple[str, ...] = ()
    survey: Any = "survey"
    shrink: bool = True
    learner: Any = "lasso"
    n_folds: int = 5
    min_cell_size: int = 5
    reliability_splits: int = 20

    supported_inference: ClassVar[tuple[str, ...]] = ("cluster", "bootstrap", "none")
    supports_by: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for role in ("outcome", "exposure", "occupation", "sample"):
            check_name(getattr(self, role), role)
        object.__setattr__(self, "covariates", check_names(self.covariates, "covariates"))
        if not self.covariates:
            raise DesignError(
                "covariates must name at least one column (the DML learners adjust for them)",
                hint="e.g. covariates=['age', 'female', 'low_education']",
                column="covariates",
            )
        if not isinstance(self.shrink, bool):
            raise DesignError(f"shrink must be True or False, got {self.shrink!r}", column="shrink")
        value = self.reliability_splits
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DesignError(
                f"reliability_splits must be a whole number >= 1, got {value!r}",
                column="reliability_splits",
            )
        object.__setattr__(self, "min_cell_size", check_min_cell_size(self.min_cell_size))

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        from evalkit.dml import PLR

        needed = [self.outcome, self.exposure, self.occupation, self.sample, *self.covariates]
        for col in dict.fromkeys(needed):
            if col not in data.columns:
                close = difflib.get_close_matches(col, [str(c) for c in data.columns], n=2)
                raise DataError(
                    f"column {col!r} is not in the data",
                    hint=f"did you mean {' or '.join(map(repr, close))}?" if close else None,
                    code="P002",
                    column=col,
                )
        is_survey = (data[self.sample] == self.survey).to_numpy()
        if not is_survey.any() or is_survey.all():
            raise DataError(
                f"column {self.sample!r} must mark both survey rows (== {self.survey!r}) and "
                "register rows",
                hint="stack the survey and the register extract in one table",
                column=self.sample,
            )
        survey = data.loc[is_survey]
        answer = numeric_column(survey, self.exposure, "exposure")
        usable = ~np.isnan(answer) & survey[self.occupation].notna().to_numpy()
        if not usable.all():
            warnings.warn(
                f"dropped {int((~usable).sum())} of {len(survey)} survey rows with a missing "
                f"{self.exposure!r} or {self.occupation!r}",
                RowsDroppedWarning,
                stacklevel=4,
            )
        occ_s = survey[self.occupation].to_numpy()[usable].astype(str)
        ans = answer[usable]
        matrix = build_matrix(occ_s, ans)
        split_rng = np.random.default_rng([ctx.seed, 1])
        r_half, r_full = split_half_reliability(occ_s, ans, split_rng, self.reliability_splits)

        reg = data.loc[~is_survey, [self.outcome, self.occupation, *self.covariates]].copy()
        occ_r = reg[self.occupation].astype(str)
        column = "shrunk" if self.shrink else "mean"
        reg[self.exposure] = occ_r.map(matrix.table[column]).to_numpy()
        unlinked = reg[self.exposure].isna().to_numpy() & reg[self.occupation].notna().to_numpy()
        if unlinked.any():
            warnings.warn(
                f"dropped {int(unlinked.sum())} of {len(reg)} register rows whose "
                f"{self.occupation!r} has no survey answers (not in the matrix)",
                RowsDroppedWarning,
                stacklevel=4,
            )
            reg = reg.loc[~unlinked]
        reg[self.occupation] = reg[self.occupation].astype(str)
        plr = PLR(
            outcome=self.outcome,
            treatment=self.exposure,
            covariates=list(self.covariates),
            cluster=self.occupation,
            learner=self.learner,
            n_folds=self.n_folds,
        )
        inner = plr.fit(reg, inference=ctx.inference, seed=ctx.seed, level=ctx.level)
        shown = matrix.table[matrix.table["respondents"] >= self.min_cell_size]
        info: Mapping[str, Any] = {
            **dict(inner.info),
            "n_survey": int(usable.sum()),
            "n_occupations": len(matrix.table),
            "occupations_below_min_cell_size": int(
                (matrix.table["respondents"] < self.min_cell_size).sum()
            ),
            "split_half_reliability": r_half,
            "spearman_brown": r_full,
            "between_occupation_variance": matrix.tau2,
            "within_occupation_variance": matrix.s2,
            "mean_shrinkage_weight": float(matrix.table["weight"].mean()),
            "share_register_linked": float(1 - unlinked.mean()) if len(unlinked) else 1.0,
            "matrix": "shrunk (empirical Bayes)" if self.shrink else "raw occupation means",
            "berkson": BERKSON_NOTE,
            "seed": ctx.seed,
        }
        extras = {
            **dict(inner.extras),
            "matrix": shown[["mean", "weight", "shrunk"]].rename_axis(self.occupation),
        }
        return Result(
            estimator=self.registry_name,
            _table=inner._table,
            inference=inner.inference,
            info=info,
            level=ctx.level,
            uncertainty=inner.uncertainty,
            extras=extras,
        )
