"""The estimator base class: estimators are configuration, ``fit`` returns a new result.

Concrete estimators are frozen, keyword-only dataclasses whose fields are the roles and
options; they hold no data and no fitted state. ``fit`` validates the data into a
:class:`~evalkit.data.Panel`, estimates, and returns a new immutable
:class:`~evalkit.core.result.Result`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import pandas as pd

from evalkit.core.random import SeedLike, make_rng
from evalkit.core.result import Result
from evalkit.data.panel import Panel
from evalkit.data.periods import as_period_columns
from evalkit.errors import DataError, DesignError, InferenceNotSupportedError
from evalkit.inference.spec import METHOD_KINDS, Inference, parse_inference
from evalkit.numerics.levels import check_level

__all__ = ["Estimator", "FitContext"]


@dataclasses.dataclass(frozen=True)
class FitContext:
    """What ``fit`` hands to an estimator's ``_fit``: the resolved run settings."""

    inference: Inference | None
    seed: int
    rng: Any
    reps: int | None
    level: float


class Estimator:
    """Base class of every estimator.

    Subclasses are declared as ``@dataclasses.dataclass(frozen=True, kw_only=True)``
    with their roles and options as fields, list the inference methods they support in
    ``supported_inference``, and implement ``_fit(data, ctx) -> Result``.
    """

    registry_name: ClassVar[str] = ""
    #: The inference methods ``fit`` accepts (names of :data:`evalkit.inference.METHODS`).
    supported_inference: ClassVar[tuple[str, ...]] = ()
    #: Whether ``fit(..., by=...)`` is supported (it needs per-cluster scores).
    supports_by: ClassVar[bool] = True
    #: Methods whose kind of uncertainty differs here from :data:`METHOD_KINDS` (e.g. the
    #: placebo *variance* of synthetic DiD gives standard errors, not a test inversion).
    method_kinds: ClassVar[dict[str, str]] = {}
    #: Whether the estimator compares groups within units (so unit x time shocks cancel);
    #: the study report trusts such comparisons with few treated clusters (cell-level
    #: inference), and a study's ``split_by`` adds their group dimension.
    within_unit: ClassVar[bool] = False
    #: The term of the estimator's effect in its results when it is not named after the
    #: treatment column (e.g. ``"DDD"`` for a triple difference); the study runner reads
    #: the simulator's truth for that term.
    effect_term: ClassVar[str | None] = None
    #: How each reported effect averages the effects of the treated observations, by
    #: term (``"{treatment}"`` stands for the treatment column's name), so the study
    #: runner can compute the truth of the same estimand on simulated data:
    #: ``"treated_cells"`` (mean over the treated observations, weighted like them: over
    #: treated person-months when cells are weighted by their counts), ``"treated_periods"``
    #: (unweighted mean over the treated unit's treated periods of its period effects),
    #: ``"period"`` (one treated period, the row's ``time``, in order), ``"event_time"``
    #: (the treated observations at the row's ``event_time``, end points binned as the
    #: estimator bins them, minus those at the reference), and for staggered adoption
    #: ``"cohort_time"`` (the treated observations of the row's ``cohort`` in its ``time``;
    #: zero before adoption) and ``"cohort_event_time"`` (the treated observations at the
    #: row's ``event_time = time - cohort``, each observation, or each averaged cell of a
    #: study's ``collapse_by``, counting once). Empty: no rule declared.
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: Whether a fit holds several copies of its rows (e.g. DoubleML's data backend and
    #: per-fold learner copies): a study fits at most one such analysis on person-level
    #: rows at a time, so its peak memory holds one of them, not one per worker.
    memory_heavy: ClassVar[bool] = False

    @classmethod
    def kind_of(cls, method: str) -> str:
        """Return the kind of uncertainty ``method`` gives with this estimator.

        Examples
        --------
        >>> from evalkit.did import TWFE
        >>> TWFE.kind_of("cluster")
        'analytic'
        """
        return cls.method_kinds.get(method, METHOD_KINDS[method])

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        """Return the kinds of uncertainty this estimator can produce, plus ``"by"``.

        Derived from :attr:`supported_inference` (:data:`evalkit.inference.METHOD_KINDS`);
        the contract tests check each capability an estimator declares.

        Examples
        --------
        >>> from evalkit.did import TWFE
        >>> sorted(TWFE.capabilities())
        ['analytic', 'by', 'none', 'test_inversion']
        """
        kinds = {cls.kind_of(m) for m in cls.supported_inference}
        return frozenset(kinds | ({"by"} if cls.supports_by else set()))

    def get_params(self) -> dict[str, Any]:
        """Return the estimator's configuration as a dictionary."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def set_params(self, **changes: Any) -> Estimator:
        """Return a new estimator with some options changed (the original is unchanged)."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - names)
        if unknown:
            raise DesignError(
                f"{type(self).__name__} has no option(s) {', '.join(unknown)}",
                hint=f"options are: {', '.join(sorted(names))}",
                column=unknown[0],
            )
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def fit(
        self,
        data: pd.DataFrame | Panel,
        *,
        inference: str | Inference | None = None,
        seed: SeedLike = None,
        reps: int | None = None,
        level: float = 0.95,
        by: str | None = None,
    ) -> Result:
        """Estimate on ``data`` and return a new result.

        Parameters
        ----------
        data
            A pandas DataFrame (or a :class:`~evalkit.data.Panel`); never modified.
        inference
            A method name or :class:`~evalkit.inference.Inference`; None chooses the
            estimator's default for this design and records why.
        seed
            Seed for every random draw (resampling, cross-fitting); recorded in the result.
        reps
            Replications for resampling inference.
        level
            Confidence level of the intervals.
        by
            A column of subgroups: fit each subgroup on its own rows and return the
            subgroup estimates (key ``subgroup``), their pairwise differences, and Wald tests
            that they are equal (``info["equality_tests"]``), with a joint covariance from
            the fits' per-cluster influence contributions, which stays right when the
            subgroups share clusters, units or controls (:mod:`evalkit.core.heterogeneity`).
            One-treated-unit synthetic control estimators instead fit every subgroup with
            the same placebo runs and rank the differences on them
            (:mod:`evalkit.synth.subgroups`).

        Returns
        -------
        Result
        """
        level = check_level(level)
        if by is not None and not self.supports_by:
            raise InferenceNotSupportedError(
                f"{self.registry_name} does not support by=: its results have no per-cluster "
                "scores to compare subgroups with",
                hint="fit each subgroup's rows separately",
                column="by",
            )
        spec = parse_inference(inference, self.supported_inference, self.registry_name)
        if reps is not None:
            if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
                raise DesignError(
                    f"reps must be a positive whole number, got {reps!r}", column="reps"
                )
            if spec is not None and spec.reps is None:
                spec = dataclasses.replace(spec, reps=reps)
        if isinstance(data, Panel):
            data = data.to_frame()
        if not isinstance(data, pd.DataFrame):
            raise DataError(
                f"data must be a pandas DataFrame, got {type(data).__name__}",
                hint="read files with evalkit.data.read_csv, read_parquet or read_sql",
            )
        rng, used = make_rng(seed)
        ctx = FitContext(inference=spec, seed=used, rng=rng, reps=reps, level=level)
        if by is None:
            return self._fit(data, ctx)
        return self._fit_by(data, by, ctx)

    def _fit_by(self, data: pd.DataFrame, by: str, ctx: FitContext) -> Result:
        """Fit every subgroup of ``by`` and compare them by their influence contributions.

        Estimators whose inference is not a standard error (placebo tests) override this
        and combine :meth:`_fit_groups` their own way.
        """
        from evalkit.core.heterogeneity import combine_groups

        return combine_groups(by, self._fit_groups(data, by, ctx), ctx.level)

    def _fit_groups(self, data: pd.DataFrame, by: str, ctx: FitContext) -> list[tuple[Any, Result]]:
        """Return ``(subgroup, fit)`` pairs, each fit on its subgroup's rows, same seed each."""
        from evalkit.core.heterogeneity import split_by

        # dates: the period unit of the whole data, so that every subgroup counts alike
        data = as_period_columns(data, getattr(self, "time", None), getattr(self, "cohort", None))
        fits = []
        for group, rows in split_by(data, by):
            # every subgroup draws from the same seed, so results do not depend on order
            sub_rng, _ = make_rng(ctx.seed)
            sub_ctx = dataclasses.replace(ctx, rng=sub_rng)
            fits.append((group, self._fit(rows, sub_ctx)))
        return fits

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:  # pragma: no cover
        raise NotImplementedError
