"""The effect of an occupational exposure from a job exposure matrix, by double ML."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import Result
from evalkit.core.uncertainty import Analytic
from evalkit.data.checks import check_columns, check_name, check_names, numeric_column
from evalkit.data.disclosure import check_min_cell_size
from evalkit.errors import DataError, DesignError, RowsDroppedWarning
from evalkit.exposure.matrix import build_matrix, redraw_shrunk, split_half_reliability

__all__ = ["JobExposure"]

BERKSON_NOTE = (
    "Berkson error: every person is given the mean exposure of their occupation, not "
    "their own. When a person's own exposure is the occupation mean plus a deviation "
    "unrelated to it, and the outcome is linear in exposure, this does not bias the "
    "effect (it widens the interval); with a non-linear effect, or deviations related to "
    "covariates, it can. The survey's occupation means carry classical sampling error "
    "as well, which would attenuate the effect: shrinking them towards the overall mean "
    "(empirical Bayes) corrects that (regression calibration)."
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
    matrix_reps
        Redraws of the matrix from the survey's sampling error whose spread of the
        effect is added to the variance (0: treat the matrix as known).

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
    matrix_reps: int = 200

    # The inner PLR's analytic methods (the matrix's sampling variance is added to
    # their standard error); "wild" is left out: its interval is a test inversion,
    # to which no second variance can be added.
    supported_inference: ClassVar[tuple[str, ...]] = (
        "cluster",
        "cr2",
        "jackknife",
        "bootstrap",
        "none",
    )
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
        for option, low in (("reliability_splits", 1), ("matrix_reps", 0)):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DesignError(
                    f"{option} must be a whole number >= {low}, got {value!r}", column=option
                )
        object.__setattr__(self, "min_cell_size", check_min_cell_size(self.min_cell_size))

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        from evalkit.dml import PLR

        check_columns(
            data,
            {
                "outcome": self.outcome,
                "exposure": self.exposure,
                "occupation": self.occupation,
                "sample": self.sample,
                "covariates": list(self.covariates),
            },
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
        unc = inner.uncertainty
        matrix_se = None
        if self.shrink and self.matrix_reps and isinstance(unc, Analytic):
            matrix_se = self._matrix_se(matrix, reg, ctx)
            se = np.sqrt(unc.std_error**2 + matrix_se**2)
            v = None if unc.vcov is None else np.diag(se**2)
            unc = Analytic(se, df=unc.df, vcov=v, note=unc.note)
        shown = matrix.table[matrix.table["respondents"] >= self.min_cell_size]
        info: Mapping[str, Any] = {
            **dict(inner.info),
            "n_survey": int(usable.sum()),
            "n_occupations": len(matrix.table),
            "occupations_with_few_respondents": int(
                (matrix.table["respondents"] < self.min_cell_size).sum()
            ),
            "split_half_reliability": r_half,
            "spearman_brown": r_full,
            "between_occupation_variance": matrix.tau2,
            "within_occupation_variance": matrix.s2,
            "mean_shrinkage_weight": float(matrix.table["weight"].mean()),
            "share_register_linked": float(1 - unlinked.mean()) if len(unlinked) else 1.0,
            "matrix": "shrunk (empirical Bayes)" if self.shrink else "raw occupation means",
            "matrix_std_error": matrix_se,
            "matrix_uncertainty": (
                f"standard error combines the DML variance (clustered by occupation) with the "
                f"spread of the effect over {self.matrix_reps} redraws of the matrix from the "
                "survey's sampling error (exposure partialled out of the covariates linearly)"
                if matrix_se is not None
                else "the matrix is treated as known"
            ),
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
            uncertainty=unc,
            extras=extras,
        )

    def _matrix_se(self, matrix: Any, reg: pd.DataFrame, ctx: FitContext) -> float:
        """Spread of the effect over redraws of the matrix, register rows held fixed.

        The outcome and each redrawn exposure are partialled out of the covariates by
        least squares (a linear stand-in for the learners, enough for a variance
        component) and the slope recomputed.
        """
        frame = reg.dropna(subset=[self.outcome, *self.covariates])
        x = np.column_stack([np.ones(len(frame)), frame[list(self.covariates)].to_numpy(float)])
        q, _ = np.linalg.qr(x)
        y = frame[self.outcome].to_numpy(float)
        y_res = y - q @ (q.T @ y)
        codes = pd.Index(matrix.table.index).get_indexer(frame[self.occupation].astype(str))
        draws = redraw_shrunk(matrix, np.random.default_rng([ctx.seed, 2]), self.matrix_reps)
        e = draws[:, codes].T  # (rows, reps)
        e_res = e - q @ (q.T @ e)
        slopes = (e_res * y_res[:, None]).sum(axis=0) / (e_res**2).sum(axis=0)
        return float(np.std(slopes, ddof=1))
