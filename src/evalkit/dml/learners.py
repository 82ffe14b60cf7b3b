"""Learners for the nuisance functions of double machine learning, and their seeds.

A learner is named by a preset (so a study.toml can name it) or given as any
scikit-learn estimator. Presets give one regressor (for outcome and continuous
treatment nuisances) and one classifier (for propensity scores) with fixed,
documented hyperparameters:

``"lasso"``
    Standardised covariates, then ``LassoCV(cv=5)`` for regressions and
    ``LogisticRegressionCV(cv=5, l1 penalty, liblinear solver, Cs=10, log-loss)`` for
    classifications.
``"rf"``
    Random forests as in the DoubleML 401(k) example: 500 trees, ``max_depth=7``,
    ``max_features=1/3`` of the covariates, ``min_samples_leaf=3``.
``"lgbm"``
    LightGBM gradient boosting with 500 trees, ``learning_rate=0.01``, quiet
    (``verbose=-1``). Needs the optional extra: ``pip install 'evalkit[lgbm]'``.
``"logit"``
    Standardised covariates, then a linear regression for regressions and a
    logistic regression (``max_iter=1000``, L2 penalty ``C=1``) for classifications.

Seeds: :func:`seeded` clones a learner and sets every ``random_state`` it has (also
inside pipelines) to :func:`learner_seed`, so the same fit seed gives the same learners.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evalkit.errors import DesignError

__all__ = ["PRESETS", "learner_seed", "make_preset", "resolve_learner", "seeded"]

PRESETS: tuple[str, ...] = ("lasso", "rf", "lgbm", "logit")


def make_preset(name: str, kind: str) -> Any:
    """Return a fresh scikit-learn estimator for preset ``name``.

    Parameters
    ----------
    name
        One of :data:`PRESETS`.
    kind
        ``"regressor"`` or ``"classifier"``.

    Examples
    --------
    >>> type(make_preset("rf", "classifier")).__name__
    'RandomForestClassifier'
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = kind == "classifier"
    if name == "lasso":
        if clf:
            from sklearn.linear_model import LogisticRegressionCV

            model = LogisticRegressionCV(
                Cs=10,
                cv=5,
                l1_ratios=(1.0,),
                solver="liblinear",
                max_iter=1000,
                scoring="neg_log_loss",
            )
            if "use_legacy_attributes" in model.get_params():  # scikit-learn >= 1.8
                model.set_params(use_legacy_attributes=False)
        else:
            from sklearn.linear_model import LassoCV

            model = LassoCV(cv=5)
        return make_pipeline(StandardScaler(), model)
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(n_estimators=500, max_depth=7, max_features=1 / 3, min_samples_leaf=3)
    if name == "lgbm":
        try:
            import lightgbm
        except ImportError as exc:
            raise DesignError(
                "learner 'lgbm' needs the lightgbm package, which is not installed",
                hint="pip install 'evalkit[lgbm]' (or pip install lightgbm), or use learner='rf'",
                column="learner",
            ) from exc
        cls = lightgbm.LGBMClassifier if clf else lightgbm.LGBMRegressor
        return cls(n_estimators=500, learning_rate=0.01, verbose=-1)
    if name == "logit":
        from sklearn.linear_model import LinearRegression, LogisticRegression

        model = LogisticRegression(max_iter=1000) if clf else LinearRegression()
        return make_pipeline(StandardScaler(), model)
    raise DesignError(
        f"unknown learner preset {name!r}",
        hint=f"use one of {', '.join(map(repr, PRESETS))} or a scikit-learn estimator",
        column="learner",
    )


def _is_classifier(est: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(est))


def resolve_learner(value: Any, kind: str, nuisance: str) -> Any:
    """Return an unfitted estimator for one nuisance from a preset name or an estimator.

    Raises
    ------
    DesignError
        For an unknown preset, an object without ``fit``/``predict``, or a regressor
        where a classifier is needed (propensity scores need ``predict_proba``).

    Examples
    --------
    >>> type(resolve_learner("logit", "classifier", "ml_m")[-1]).__name__
    'LogisticRegression'
    """
    if isinstance(value, str):
        return make_preset(value.lower(), kind)
    if not (hasattr(value, "fit") and hasattr(value, "predict")):
        raise DesignError(
            f"learner for {nuisance} must be a preset name or a scikit-learn estimator, "
            f"got {type(value).__name__}",
            hint=f"use one of {', '.join(map(repr, PRESETS))}",
            column=nuisance,
        )
    if kind == "classifier" and not _is_classifier(value):
        raise DesignError(
            f"the learner for {nuisance} must be a classifier (it predicts a probability "
            f"of a binary variable), got {type(value).__name__}",
            hint="e.g. RandomForestClassifier or LogisticRegression, or a preset name",
            column=nuisance,
        )
    return value


def learner_seed(seed: int) -> int:
    """Return the ``random_state`` every learner gets for fit seed ``seed``.

    Examples
    --------
    >>> learner_seed(1) == learner_seed(1)
    True
    """
    return int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])


def seeded(learner: Any, seed: int) -> Any:
    """Clone ``learner`` and set each of its ``random_state`` parameters from ``seed``.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> seeded(RandomForestRegressor(), 7).random_state == learner_seed(7)
    True
    """
    from sklearn.base import clone

    est = clone(learner)
    state = learner_seed(seed)
    params = {k: state for k in est.get_params(deep=True) if k.split("__")[-1] == "random_state"}
    if params:
        est.set_params(**params)
    return est


def learners_for(
    nuisances: Mapping[str, str],
    learner: Any,
    learners: Mapping[str, Any] | None,
    seed: int,
) -> dict[str, Any]:
    """Return seeded estimators for every nuisance (``{"ml_l": "regressor", ...}``).

    ``learners`` overrides ``learner`` nuisance by nuisance; an unknown nuisance name
    is an error listing the model's nuisances.
    """
    extra = sorted(set(learners or {}) - set(nuisances))
    if extra:
        raise DesignError(
            f"learners has unknown nuisance(s) {', '.join(map(repr, extra))}",
            hint=f"this model's nuisances are {', '.join(map(repr, nuisances))}",
            column="learners",
        )
    out = {}
    for name, kind in nuisances.items():
        value = (learners or {}).get(name, learner)
        out[name] = seeded(resolve_learner(value, kind, name), seed)
    return out
