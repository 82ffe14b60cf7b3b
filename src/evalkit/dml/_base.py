"""What every double machine learning estimator shares.

Roles, learners, folds, seeds, clustering, inference from the scores, diagnostics and
the result.

A concrete model (PLR, IRM, ...) declares its nuisances and builds its DoubleML object;
this module validates the data, draws the folds from the seed, fits, and turns the
per-observation scores (``psi = psi_a * theta + psi_b``) into evalkit's uncertainty
(:mod:`evalkit.core.uncertainty`) and subgroup scores (:class:`~evalkit.core.result.Scores`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import sys
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.random import SeedLike
from evalkit.core.result import InferenceInfo, Result, Scores, make_table
from evalkit.core.uncertainty import Analytic, Draws, NoInference
from evalkit.data.checks import check_name, check_names
from evalkit.data.panel import Panel
from evalkit.dml.cluster_folds import check_cluster_folds
from evalkit.dml.learners import learners_for
from evalkit.dml.result import DMLResult, influence
from evalkit.dml.splits import fold_splits, set_splits
from evalkit.errors import (
    DataError,
    DesignError,
    InferenceNotSupportedError,
    RowsDroppedWarning,
)
from evalkit.inference.spec import Inference

__all__ = ["DML_METHODS", "DMLEstimator", "binary", "import_doubleml"]

DML_METHODS: tuple[str, ...] = (
    "hetero",
    "cluster",
    "cr2",
    "jackknife",
    "wild",
    "bootstrap",
    "none",
)


def binary(values: np.ndarray) -> bool:
    """Whether ``values`` hold exactly the two values 0 and 1."""
    uniq = np.unique(values)
    return len(uniq) == 2 and set(uniq.tolist()) == {0, 1}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DMLEstimator(Estimator):
    """Base of the DML estimators (see :class:`~evalkit.dml.PLR` for the shared options)."""

    outcome: str
    treatment: str
    covariates: tuple[str, ...] = ()
    cluster: str | tuple[str, ...] | None = None
    learner: Any = "lasso"
    learners: Mapping[str, Any] | None = None
    n_folds: int = 5
    n_rep: int = 1
    jobs: int | None = None

    supported_inference: ClassVar[tuple[str, ...]] = DML_METHODS
    memory_heavy: ClassVar[bool] = True  # DoubleML copies the data per model and fold
    #: Role options (besides outcome, treatment, covariates) that name a column.
    extra_roles: ClassVar[tuple[str, ...]] = ()
    #: Roles whose values must be 0/1.
    binary_roles: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        check_name(self.outcome, "outcome")
        check_name(self.treatment, "treatment")
        for role in self.extra_roles:
            check_name(getattr(self, role), role)
        object.__setattr__(self, "covariates", check_names(self.covariates, "covariates"))
        if not self.covariates:
            raise DesignError(
                "covariates must name at least one column: the learners predict the outcome "
                "and the treatment from them",
                hint="e.g. covariates=['age', 'inc']",
                column="covariates",
            )
        clusters = check_names(self.cluster, "cluster")
        if len(clusters) > 2:
            raise DesignError(
                f"cluster takes one or two columns (one- or two-way clustering), got {clusters}",
                column="cluster",
            )
        for option, low in (("n_folds", 2), ("n_rep", 1)):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DesignError(
                    f"{option} must be a whole number >= {low}, got {value!r}", column=option
                )

    # ------------------------------------------------------------------ hooks
    def _roles(self) -> list[str]:
        return [self.outcome, self.treatment, *(getattr(self, r) for r in self.extra_roles)]

    def _nuisances(self, frame: pd.DataFrame) -> dict[str, str]:  # pragma: no cover
        raise NotImplementedError

    def _model(
        self, frame: pd.DataFrame, clusters: tuple[str, ...], learners: dict[str, Any]
    ) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _check(self, frame: pd.DataFrame) -> None:
        """Model-specific checks of the cleaned data (binary roles, instruments)."""

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Reshape the cleaned rows into the model's rows (DID panels: one row per unit)."""
        return frame

    def _fitting(self) -> contextlib.AbstractContextManager[None]:
        """Context of the DoubleML fit (e.g. a faster, equivalent DoubleML helper)."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ fit
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
        """Estimate on ``data`` and return a new result (see :meth:`Estimator.fit`).

        With ``by="column"`` the model is fitted once on all rows and the group effects
        (GATEs) come from the per-observation scores of that one fit: each group's effect
        solves the score equation on its rows, and the groups' joint covariance (their
        pairwise differences and the Wald test that they are equal) comes from the
        scores summed by cluster (by observation without clusters). With clusters the
        automatic choice is then ``"cluster"`` at any number of clusters (the few-cluster
        methods do not cover the group comparison; fit each group separately with
        ``inference="cr2"`` instead).
        """
        if by is None:
            return super().fit(
                data, inference=inference, seed=seed, reps=reps, level=level, by=None
            )
        from evalkit.core.heterogeneity import split_by
        from evalkit.dml.heterogeneity import group_effects

        if isinstance(data, Panel):
            data = data.to_frame()
        split_by(data, by)  # validates the column (missing values, a single group)
        if inference is None and self.cluster:
            # the group comparison uses the scores' cluster covariance (no CR2 for it):
            # the automatic choice stays DoubleML's cluster-robust variance
            inference = "cluster"
        full = super().fit(data, inference=inference, seed=seed, reps=reps, level=level)
        assert isinstance(full, DMLResult)
        return group_effects(full, data.loc[full._index, by], by)

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        import_doubleml()
        spec = ctx.inference
        clusters = check_names(
            spec.cluster if spec is not None and spec.cluster else self.cluster, "cluster"
        )
        method = self._method(spec, clusters)
        frame = self._clean(data, clusters)
        self._check(frame)
        n_dropped = len(data) - len(frame)
        frame = self._prepare(frame)
        if spec is None and len(clusters) == 1 and "cr2" in self.supported_inference:
            from evalkit.dml.few_clusters import default_method

            method = default_method(frame[clusters[0]].nunique(), clusters[0]) or method
        nuisances = self._nuisances(frame)
        learners = learners_for(nuisances, self.learner, self.learners, ctx.seed)
        from evalkit import parallel

        backend = parallel.backend(jobs=self.jobs)
        # fresh workers import the learners' modules while this process builds the model
        backend.warm(["evalkit.dml.crossfit", *{type(v).__module__ for v in learners.values()}])
        fit_clusters = () if _singleton_clusters(frame, clusters) else clusters
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            model = self._model(frame, fit_clusters, learners)
        dml_data = model._dml_data
        labels: list[np.ndarray] = []
        if dml_data.is_cluster_data:
            cv = np.asarray(dml_data.cluster_vars)
            labels = [cv[:, j] for j in range(cv.shape[1])]
        elif clusters:  # one row per cluster: the same folds, scores and labels
            labels = [frame[clusters[0]].to_numpy()]
        smpls, smpls_cluster = fold_splits(
            int(dml_data.n_obs), self.n_folds, self.n_rep, ctx.seed, labels or None
        )
        binaries = {r: frame[getattr(self, r)].to_numpy() for r in self.binary_roles}
        check_cluster_folds(binaries, clusters, labels, smpls)
        if clusters and not fit_clusters:  # one row per cluster: DoubleML sees no clusters
            smpls_cluster = None
        set_splits(model, smpls, smpls_cluster)
        with warnings.catch_warnings(), self._fitting():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            if backend.jobs > 1 or backend.scheduler:
                # every learner fit (fold, nuisance, repetition) is one item of the map;
                # DoubleML scores the predictions exactly as in one serial fit
                from evalkit.dml.crossfit import fit_in_parts

                fit_in_parts(model, backend)
            else:
                model.fit(store_predictions=True)
        return self._result(frame, model, method, clusters, labels, ctx, n_dropped)

    def _method(self, spec: Inference | None, clusters: tuple[str, ...]) -> tuple[str, str]:
        if spec is None:
            if clusters:
                return "cluster", f"cluster-robust scores by {', '.join(clusters)} (cluster= given)"
            return "hetero", "heteroskedasticity-robust variance of the scores (no cluster= given)"
        method = spec.method
        if method == "cluster" and not clusters:
            raise DesignError(
                "inference='cluster' needs a cluster column",
                hint="pass cluster='column' to the estimator or Cluster(cluster='column')",
                column="cluster",
            )
        if method == "hetero" and clusters:
            raise DesignError(
                f"inference='hetero' ignores the clustering by {', '.join(clusters)}, which "
                "also shapes the folds",
                hint="use inference='cluster', or drop cluster=",
                column="inference",
            )
        if method in ("cr2", "jackknife", "wild"):
            if not clusters:
                raise DesignError(
                    f"inference={method!r} is few-cluster inference and needs a cluster column",
                    hint="pass cluster='column' to the estimator, or use inference='hetero'",
                    column="cluster",
                )
            if len(clusters) > 1:
                raise InferenceNotSupportedError(
                    f"inference={method!r} is one-way; two-way clustering has DoubleML's "
                    "analytic cluster-robust standard errors only",
                    hint="use inference='cluster', or cluster by one column",
                    column="inference",
                )
        if method == "bootstrap" and len(clusters) > 1:
            raise InferenceNotSupportedError(
                "the cluster multiplier bootstrap is one-way; two-way clustering has "
                "analytic cluster-robust standard errors only",
                hint="use inference='cluster'",
                column="inference",
            )
        return method, "requested"

    def _clean(self, data: pd.DataFrame, clusters: tuple[str, ...]) -> pd.DataFrame:
        cols = list(dict.fromkeys([*self._roles(), *self.covariates, *clusters]))
        missing = [c for c in cols if c not in data.columns]
        if missing:
            close = difflib.get_close_matches(missing[0], [str(c) for c in data.columns], n=2)
            raise DataError(
                f"column {missing[0]!r} is not in the data",
                hint=f"did you mean {' or '.join(map(repr, close))}?" if close else None,
                code="P002",
                column=missing[0],
            )
        numeric = [c for c in cols if c not in clusters]
        for c in numeric:
            if not pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(
                data[c]
            ):
                raise DataError(
                    f"column {c!r} must be numeric, got {data[c].dtype}",
                    hint="encode categories as 0/1 dummies before fitting",
                    column=c,
                )
        # built column by column (numeric ones as float), the rows to drop counted per
        # column: no temporary copies of the whole frame. With copy-on-write (pandas 3)
        # the columns share the caller's memory until either side writes to them (the
        # caller's data stay unchanged either way); otherwise they are copies.
        shared = _copy_on_write()
        frame = pd.DataFrame(
            {c: data[c].astype(float) if c in numeric else data[c] for c in cols},
            index=data.index,
            columns=cols,
            copy=not shared,
        )
        drop = np.zeros(len(frame), dtype=bool)
        counts: dict[str, int] = {}
        for c in cols:
            bad = frame[c].isna().to_numpy()
            if c in numeric:
                bad = bad | np.isinf(frame[c].to_numpy())
            if bad.any():
                counts[c] = int(bad.sum())
                drop |= bad
        if drop.any():
            text = ", ".join(f"{c} ({k})" for c, k in counts.items())
            warnings.warn(
                f"dropped {int(drop.sum())} of {len(frame)} rows with missing or infinite "
                f"values in: {text}",
                RowsDroppedWarning,
                stacklevel=6,
            )
            frame = frame.loc[~drop]
        if len(frame) < 2 * self.n_folds:
            raise DataError(
                f"{len(frame)} usable rows are too few for {self.n_folds}-fold cross-fitting",
                column=self.outcome,
            )
        d = frame[self.treatment].to_numpy()
        if np.ptp(d) == 0:
            raise DataError(
                f"treatment column {self.treatment!r} is constant ({d[0]:g}): there is no "
                "variation to estimate an effect from",
                column=self.treatment,
            )
        for role in self.binary_roles:
            col = getattr(self, role)
            if not binary(frame[col].to_numpy()):
                raise DataError(
                    f"{role} column {col!r} must be binary (0/1) for {type(self).__name__}, "
                    f"got values {np.unique(frame[col])[:5].tolist()}",
                    hint="code it 0/1, or use dml.PLR for a continuous treatment",
                    column=col,
                )
        for c in self.covariates:
            if c in (self.outcome, self.treatment):
                role = "outcome" if c == self.outcome else "treatment"
                raise DesignError(
                    f"covariate {c!r} is also the {role}",
                    column=c,
                )
        return frame

    # ------------------------------------------------------------------ result
    def _result(
        self,
        frame: pd.DataFrame,
        model: Any,
        method: tuple[str, str],
        clusters: tuple[str, ...],
        labels: list[np.ndarray],
        ctx: FitContext,
        n_dropped: int,
    ) -> Result:
        name, reason = method
        theta = float(model.coef[0])
        se = float(model.se[0])
        inf = influence(model)  # (n, n_rep)
        n = inf.shape[0]
        phi = inf.mean(axis=1)  # the repetitions' influence functions, averaged
        codes = None
        wild_reps = None
        score_labels: np.ndarray
        if labels:
            score_labels, codes = np.unique(labels[0], return_inverse=True)
            sums = np.bincount(codes, weights=phi, minlength=len(score_labels))
            score_values = (sums / n)[:, None]
        else:
            score_labels = np.asarray(self._score_rows(frame), dtype=object)
            score_values = (phi / n)[:, None]
        n_clusters = [len(np.unique(lab)) for lab in labels[1:]]
        if labels:
            n_clusters.insert(0, len(score_labels))
        cluster_names = list(clusters) or ([self.unit] if labels else [])  # type: ignore[attr-defined]
        if name == "none":
            unc: Any = NoInference("inference='none' was requested")
            description = "none (point estimate only)"
        elif name == "bootstrap":
            from evalkit.inference.multiplier import multiplier_bootstrap

            b_reps = spec_reps(ctx) or 999
            weights = getattr(ctx.inference, "weights", "rademacher")
            boot = multiplier_bootstrap(
                phi, cluster=codes, reps=b_reps, weights=weights, seed=ctx.seed
            )
            unc = Draws(
                boot.draws,
                boot.std_error,
                method="multiplier",
                reps=b_reps,
                weights=weights,
                seed=ctx.seed,
            )
            by_what = (
                f"cluster of {cluster_names[0]} ({n_clusters[0]} clusters)"
                if labels
                else "observation"
            )
            description = (
                f"multiplier bootstrap of the DML scores ({weights} weights, {b_reps} draws, "
                f"one weight per {by_what})"
            )
        elif name in ("cr2", "jackknife", "wild"):
            from evalkit.dml.few_clusters import few_cluster_inference

            assert codes is not None  # _method requires a cluster column
            from evalkit.inference.spec import spec_class

            unc, description, wild_reps = few_cluster_inference(
                model,
                codes,
                ctx.inference if ctx.inference is not None else spec_class(name)(),
                seed=ctx.seed,
                level=ctx.level,
                cluster=cluster_names[0],
                reps=spec_reps(ctx),
            )
        else:
            unc = Analytic(np.array([se]))
            if labels:
                ways = " and ".join(
                    f"{c} ({k})" for c, k in zip(cluster_names, n_clusters, strict=True)
                )
                description = f"DoubleML cluster-robust standard error by {ways}"
            else:
                description = "DoubleML standard error (heteroskedasticity-robust scores)"
        df = None
        if name in ("cr2", "jackknife"):
            se, df = float(unc.std_error[0]), float(unc.df[0])
        table = make_table([self.treatment], [theta], [se], df)
        from evalkit.dml.diagnostics import diagnose, learner_name

        diagnostics, trimmed = diagnose(model, frame, self, stacklevel=6)
        info = {
            "n_obs": int(n),
            "n_folds": self.n_folds,
            "n_rep": self.n_rep,
            "score": str(model.score) if isinstance(model.score, str) else "custom",
            "learners": {k: learner_name(v) for k, v in model.learner.items()},
            "roles": {
                "outcome": self.outcome,
                "treatment": self.treatment,
                "covariates": list(self.covariates),
                **{r: getattr(self, r) for r in self.extra_roles},
                "cluster": list(clusters),
            },
            "n_clusters": n_clusters,
            "n_trimmed": trimmed,
            "all_estimates": [float(v) for v in np.ravel(model.all_coef)],
            "seed": ctx.seed,
            "dropped": int(n_dropped),
            "doubleml": _doubleml_version(),
        }
        where: dict[str, Any] = {
            "distribution": {"cr2": "t", "jackknife": "t", "wild": "randomization"}.get(
                name, "normal"
            ),
            "cluster": cluster_names[0] if cluster_names else None,
            "n_clusters": n_clusters[0] if n_clusters else None,
            "reason": reason,
            "reps": wild_reps if name == "wild" else getattr(unc, "reps", None),
        }
        return DMLResult(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(method=name, description=description, **where),
            info=info,
            level=ctx.level,
            _scores=Scores(score_labels, score_values),
            uncertainty=unc,
            extras={"diagnostics": diagnostics},
            _model=model,
            _index=frame.index,
            _codes=codes,
        )

    def _score_rows(self, frame: pd.DataFrame) -> np.ndarray:
        return np.array([f"obs{i}" for i in frame.index], dtype=object)


def spec_reps(ctx: FitContext) -> int | None:
    """Bootstrap draws from the spec or ``fit(reps=)``."""
    spec = ctx.inference
    return (spec.reps if spec is not None else None) or ctx.reps


def import_doubleml() -> Any:
    """Import DoubleML (on a thread of its own the first time) and return the module.

    DoubleML imports optuna, which keeps the ``ImportError`` of each optional package
    it lacks (e.g. redis) with its traceback, and a traceback's frames link to their
    callers: DoubleML imported from inside a fit would keep that fit's frames, with
    their data, DoubleML model and predictions, for the life of the process (at 1.1
    million persons ~0.5 GiB on every study worker that fitted a DML model). Imported
    on a short-lived thread, the frames kept are that thread's.

    Examples
    --------
    >>> import_doubleml().__name__
    'doubleml'
    """
    return import_on_thread("doubleml")


def import_on_thread(name: str) -> Any:
    """Import module ``name`` on a short-lived thread unless imported; return the module.

    Whatever the import keeps (a traceback, a frame) refers to that thread's frames,
    never to the caller's.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    import importlib
    import threading

    failed: list[BaseException] = []

    def run() -> None:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # re-raised on the calling thread
            failed.append(exc)

    thread = threading.Thread(target=run, name=f"evalkit-import-{name}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return sys.modules[name]


def _doubleml_version() -> str:
    import doubleml

    return str(doubleml.__version__)


def _copy_on_write() -> bool:
    """Whether pandas copies a frame's columns on write (always from pandas 3)."""
    if int(pd.__version__.split(".")[0]) >= 3:
        return True
    return pd.get_option("mode.copy_on_write") is True


def _singleton_clusters(frame: pd.DataFrame, clusters: tuple[str, ...]) -> bool:
    """Say whether one-way clusters hold one row each (e.g. clusters by person, one row per person).

    Clustering by a column that differs on every row is clustering by observation:
    DoubleML's cluster-robust variance then equals its heteroskedasticity-robust one
    (to rounding), and its cluster machinery is skipped (at 231,000 persons it took ten
    times the rest of a DID fit with linear learners: 24.5 s of CPU against 2.2 s). The
    folds are still drawn over the cluster labels, so they are the same as with the
    machinery, and the result reports the clusters as given.
    """
    return len(clusters) == 1 and not frame[clusters[0]].duplicated().any()
