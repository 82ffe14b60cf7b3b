"""Doubly robust DML difference-in-differences with staggered adoption.

Wraps DoubleML's ``DoubleMLDIDMulti``: one two-period DML DiD (Chang 2020) per
cohort ``g`` and evaluation period ``t`` against a never-treated (or not-yet-treated)
comparison group, as in Callaway & Sant'Anna (2021), with ML nuisances. The result
holds the ATT(g, t) rows and DoubleML's aggregations (the overall group-weighted ATT
and the event-study effects).

DoubleML draws each sub-model's folds from NumPy's global random state; evalkit never
uses that state, so it sets every sub-model's folds explicitly from a Generator seeded
by ``seed`` (and leaves the global state as it found it).

References
----------
Callaway, B. and Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple
time periods. *Journal of Econometrics* 225(2), 200-230.

Chang, N.-C. (2020). Double/debiased machine learning for difference-in-differences
models. *The Econometrics Journal* 23(2), 177-191.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.random import SeedLike
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.uncertainty import Analytic, NoInference
from evalkit.data.checks import check_name
from evalkit.data.panel import Panel
from evalkit.dml._base import DMLEstimator, import_doubleml
from evalkit.dml.learners import learners_for
from evalkit.dml.result import DMLResult
from evalkit.dml.splits import fold_splits
from evalkit.errors import DataError, DesignError, InferenceNotSupportedError
from evalkit.inference.spec import Inference

__all__ = ["DIDMulti"]

_CONTROL = ("never_treated", "not_yet_treated")


@contextmanager
def _global_state_kept() -> Iterator[None]:
    """Restore NumPy's global random state after DoubleML draws (and discards) folds."""
    state = np.random.get_state()  # noqa: NPY002 - only saved and restored
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def model_splits(model: Any, n_folds: int, n_rep: int, seed: int) -> list[int]:
    """Set every sub-model's folds of a ``DoubleMLDIDMulti`` from ``seed``.

    Each ATT(g, t) sub-model cross-fits on its own subset of units (the cohort and its
    comparison group), so each gets its own folds, drawn by :func:`fold_splits` from a
    seed that a Generator seeded by ``seed`` gives it. Returns those seeds.
    """
    rng = np.random.default_rng(int(seed))
    seeds = [int(s) for s in rng.integers(0, 2**32 - 1, size=len(model.modellist))]
    for sub, sub_seed in zip(model.modellist, seeds, strict=True):
        smpls, _ = fold_splits(int(sub.n_obs_subset), n_folds, n_rep, sub_seed)
        sub.set_sample_splitting(smpls)
    return seeds


@register("dml.DIDMulti")
@dataclasses.dataclass(frozen=True, kw_only=True)
class DIDMulti(DMLEstimator):
    """Staggered difference-in-differences with ML nuisances: ATT(g, t) and aggregates.

    Parameters
    ----------
    outcome, unit, time, covariates
        Columns of a panel (one row per unit and period; numeric periods).
    cohort
        First treated period of each unit (constant within units); ``0`` marks the
        never-treated units.
    treatment
        Not used separately: defaults to ``cohort`` (DoubleML's treatment column of a
        staggered design is the cohort).
    control_group
        ``"never_treated"`` (default) or ``"not_yet_treated"``.
    anticipation
        Periods of anticipation (DoubleML's ``anticipation_periods``).
    trimming
        Clipping threshold of the propensity score.

    Notes
    -----
    The table has one row per ATT(g, t) (term ``"ATT(g,pre,t)"`` with ``pre`` the base
    period; tidy keys ``cohort``, ``time``, ``event_time``), the overall ATT of
    DoubleML's group aggregation (term ``"overall"``) and the event-study effects
    (terms ``"event e"``, key ``event_time``). Inference: DoubleML's standard errors of each row
    (``inference="hetero"``) or ``"none"``; clustering and the bootstrap are not
    offered here. Every sub-model gets its own folds from ``seed``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from evalkit.dml import DIDMulti
    >>> rng = np.random.default_rng(0)
    >>> n, periods = 150, np.arange(1, 5)
    >>> g = np.array([0, 3, 4])[np.arange(n) % 3]
    >>> x = rng.normal(size=n)
    >>> df = pd.DataFrame({"id": np.repeat(np.arange(n), 4), "t": np.tile(periods, n),
    ...                    "g": np.repeat(g, 4), "x": np.repeat(x, 4)})
    >>> treated = (df["g"] > 0) & (df["t"] >= df["g"])
    >>> df["y"] = df["x"] + 0.1 * df["t"] + 1.0 * treated + rng.normal(size=len(df))
    >>> res = DIDMulti(outcome="y", cohort="g", unit="id", time="t", covariates=["x"],
    ...                learner="logit", n_folds=2).fit(df, seed=1)
    >>> overall = res.tidy().query("term == 'overall'")["estimate"].item()
    >>> bool(abs(overall - 1.0) < 0.5)
    True
    """

    cohort: str
    unit: str
    time: str
    treatment: str = ""
    control_group: str = "never_treated"
    anticipation: int = 0
    trimming: float = 0.01
    supported_inference: ClassVar[tuple[str, ...]] = ("hetero", "none")
    supports_by: ClassVar[bool] = False

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
        """Estimate on ``data`` and return a new result (``by=`` is not supported)."""
        return Estimator.fit(
            self, data, inference=inference, seed=seed, reps=reps, level=level, by=by
        )

    def __post_init__(self) -> None:
        check_name(self.cohort, "cohort")
        if self.treatment in ("", None):
            object.__setattr__(self, "treatment", self.cohort)
        elif self.treatment != self.cohort:
            raise DesignError(
                f"dml.DIDMulti takes the cohort (first treated period), not a treatment "
                f"indicator: got treatment={self.treatment!r} and cohort={self.cohort!r}",
                hint="drop treatment= and pass cohort='first_treated_period'",
                column="treatment",
            )
        super().__post_init__()
        check_name(self.unit, "unit")
        check_name(self.time, "time")
        if self.control_group not in _CONTROL:
            raise DesignError(
                f"control_group must be one of {_CONTROL}, got {self.control_group!r}",
                column="control_group",
            )
        a = self.anticipation
        if isinstance(a, bool) or not isinstance(a, int) or a < 0:
            raise DesignError(
                f"anticipation must be a whole number >= 0, got {a!r}", column="anticipation"
            )
        if self.cluster is not None:
            raise InferenceNotSupportedError(
                "dml.DIDMulti has no clustered standard errors (DoubleML's multi-period DiD "
                "treats the unit as the observation)",
                hint="drop cluster=",
                column="cluster",
            )

    def _roles(self) -> list[str]:
        return [self.outcome, self.cohort, self.unit, self.time]

    def _check(self, frame: pd.DataFrame) -> None:
        if frame.duplicated([self.unit, self.time]).any():
            raise DataError(
                f"units of {self.unit!r} appear more than once in a period of {self.time!r}",
                hint="a panel has one row per unit and period",
                column=self.unit,
            )
        varies = frame.groupby(self.unit)[self.cohort].nunique() > 1
        if varies.any():
            raise DataError(
                f"cohort column {self.cohort!r} changes within {int(varies.sum())} unit(s)",
                hint="the cohort is the unit's first treated period, the same in every row",
                column=self.cohort,
            )
        g = frame[self.cohort].to_numpy()
        periods = np.unique(frame[self.time])
        if self.control_group == "never_treated" and not (g == 0).any():
            raise DataError(
                f"cohort column {self.cohort!r} has no never-treated units (coded 0)",
                hint="code never-treated units 0, or use control_group='not_yet_treated'",
                column=self.cohort,
            )
        treated = np.unique(g[g != 0])
        if len(treated) == 0:
            raise DataError(
                f"cohort column {self.cohort!r} has no treated cohort", column=self.cohort
            )
        outside = treated[~np.isin(treated, periods)]
        if len(outside):
            raise DataError(
                f"cohort {outside[0]:g} of {self.cohort!r} is not a period of {self.time!r}",
                hint="the cohort is the first treated period (0 for never treated)",
                column=self.cohort,
            )
        if len(periods) < 2:
            raise DataError(
                f"time column {self.time!r} needs two or more periods", column=self.time
            )

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.reset_index(drop=True)
        out[self.cohort] = np.where(out[self.cohort] == 0, np.inf, out[self.cohort])
        return out

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:
        return {"ml_g": "regressor", "ml_m": "classifier"}

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:
        import doubleml
        from doubleml.did import DoubleMLDIDMulti

        data = doubleml.DoubleMLPanelData(
            frame,
            y_col=self.outcome,
            d_cols=self.cohort,
            id_col=self.unit,
            t_col=self.time,
            x_cols=list(self.covariates),
        )
        with _global_state_kept():
            return DoubleMLDIDMulti(
                data,
                control_group=self.control_group,
                anticipation_periods=self.anticipation,
                n_folds=self.n_folds,
                n_rep=self.n_rep,
                trimming_threshold=float(self.trimming),
                draw_sample_splitting=False,
                **learners,
            )

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        import_doubleml()
        spec = ctx.inference
        method = "hetero" if spec is None else spec.method
        frame = self._clean(data, ())
        self._check(frame)
        n_dropped = len(data) - len(frame)
        frame = self._prepare(frame)
        learners = learners_for(self._nuisances(frame), self.learner, self.learners, ctx.seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="doubleml")
            model = self._model(frame, (), learners)
            model_splits(model, self.n_folds, self.n_rep, ctx.seed)
            from evalkit import parallel

            backend = parallel.backend(jobs=self.jobs)
            if backend.jobs > 1 or backend.scheduler:
                # every sub-model's learner fits as items of one map (evalkit.dml.crossfit)
                from evalkit.dml.crossfit import fit_in_parts

                fit_in_parts(model, backend)
            else:
                model.fit(store_predictions=True)
            overall = model.aggregate("group").overall_aggregated_framework
            events = model.aggregate("eventstudy")
        rows = self._rows(model, overall, events)
        if method == "none":
            unc: Any = NoInference("inference='none' was requested")
            description = "none (point estimate only)"
        else:
            unc = Analytic(rows["std_error"].to_numpy())
            description = "DoubleML standard errors of each ATT(g, t) and aggregate"
        from evalkit.dml.diagnostics import learner_name

        info = {
            "n_obs": int(model._dml_data.n_ids),
            "n_folds": self.n_folds,
            "n_rep": self.n_rep,
            "n_gt": int(model.n_gt_atts),
            "control_group": self.control_group,
            "learners": {k: learner_name(v) for k, v in model.modellist[0].learner.items()},
            "seed": ctx.seed,
            "dropped": int(n_dropped),
        }
        return DMLResult(
            estimator=self.registry_name,
            _table=rows,
            inference=InferenceInfo(
                method=method,
                description=description,
                distribution="normal",
                reason="requested" if spec is not None else "default",
            ),
            info=info,
            level=ctx.level,
            uncertainty=unc,
            _model=model,
        )

    def _rows(self, model: Any, overall: Any, events: Any) -> pd.DataFrame:
        gt = np.array(model.gt_combinations, dtype=float)
        n_gt = len(gt)
        ev = events.aggregated_frameworks
        e_times = [float(n) for n in events.aggregation_names]
        terms = [
            *(f"ATT({g:g},{pre:g},{t:g})" for g, pre, t in gt),
            "overall",
            *(f"event {e:g}" for e in e_times),
        ]
        est = np.concatenate([model.coef, overall.thetas, ev.thetas])
        se = np.concatenate([model.se, overall.ses, ev.ses])
        nan = np.full(len(terms) - n_gt, np.nan)
        return make_table(
            terms,
            est,
            se,
            cohort=np.concatenate([gt[:, 0], nan]),
            time=np.concatenate([gt[:, 2], nan]),
            event_time=np.concatenate([gt[:, 2] - gt[:, 0], [np.nan], e_times]),
        )
