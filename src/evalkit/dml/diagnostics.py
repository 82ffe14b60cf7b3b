"""Nuisance diagnostics of a DML fit: out-of-fold fit, constant learners, overlap.

The DoubleML object stores each nuisance's out-of-fold predictions and targets; from
them come the RMSE (regressions) or log-loss (classifications), a warning when a
learner predicts (nearly) the same value for everyone (a learner that learned nothing,
e.g. a lasso that kept no covariate), and the count of propensity scores at the
trimming bounds, which are clipped there (limited overlap).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import EvalkitWarning, WeakOverlapWarning

__all__ = ["ConstantLearnerWarning", "diagnose", "learner_name", "nuisance_fit"]


class ConstantLearnerWarning(EvalkitWarning):
    """A nuisance learner predicted (nearly) the same value for every observation."""


def diagnose(
    model: Any, frame: pd.DataFrame, est: Any, stacklevel: int = 6
) -> tuple[pd.DataFrame, int]:
    """Return the diagnostics table and the number of trimmed propensity scores.

    Warns (:class:`ConstantLearnerWarning`) for constant predictions and
    (:class:`~evalkit.errors.WeakOverlapWarning`) for propensity scores clipped at the
    trimming bounds.
    """
    from sklearn.base import is_classifier

    rows = []
    trimmed = 0
    threshold = getattr(est, "trimming", None)
    for name, pred_all in model.predictions.items():
        pred = np.asarray(pred_all, dtype=float)[:, :, 0]
        target = np.asarray(model.nuisance_targets[name], dtype=float)[:, :, 0]
        learner = model.learner.get(name, model.learner.get(name[:-1], None))
        is_clf = learner is not None and is_classifier(learner)
        kind = "classifier" if is_clf else "regressor"
        values = [nuisance_fit(name, kind, target[:, r], pred[:, r]) for r in range(pred.shape[1])]
        scale = float(np.nanstd(target)) if np.isfinite(target).any() else 1.0
        constant = _constant_within_folds(pred[:, 0], model.smpls[0], 1e-8 * max(scale, 1e-12))
        row: dict[str, Any] = {
            "nuisance": name,
            "learner": learner_name(learner),
            "metric": "log_loss" if is_clf else "rmse",
            "value": float(np.mean(values)),
            "constant": bool(constant),
        }
        if constant:
            warnings.warn(
                f"the learner for {name} ({row['learner']}) predicts the same value for every "
                "observation: it found no signal in the covariates, and the effect is then "
                "identified only by the other nuisance",
                ConstantLearnerWarning,
                stacklevel=stacklevel,
            )
        if is_clf:
            row["min"] = float(np.nanmin(pred))
            row["max"] = float(np.nanmax(pred))
            if threshold is not None and name == "ml_m":
                at = (pred <= threshold + 1e-12) | (pred >= 1 - threshold - 1e-12)
                trimmed = int(at[:, 0].sum())
        rows.append(row)
    if trimmed and threshold is not None:
        warnings.warn(
            f"{trimmed} of {len(frame)} propensity scores were clipped to "
            f"[{threshold:g}, {1 - threshold:g}] (limited overlap of treated and untreated "
            "covariates); the estimate leans on few comparable units",
            WeakOverlapWarning,
            stacklevel=stacklevel,
        )
    return pd.DataFrame(rows), trimmed


def nuisance_fit(name: str, kind: str, target: np.ndarray, pred: np.ndarray) -> float:
    """Out-of-fold RMSE (regressions) or log-loss (classifications) of one nuisance."""
    ok = np.isfinite(target) & np.isfinite(pred)
    t, p = target[ok], pred[ok]
    if kind == "classifier":
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
    return float(np.sqrt(np.mean((t - p) ** 2)))


def _constant_within_folds(pred: np.ndarray, smpls: list[Any], tol: float) -> bool:
    """Whether the predictions are constant within every test fold.

    A learner that learned nothing predicts its training fold's mean.
    """
    for _, test in smpls:
        values = pred[np.asarray(test)]
        values = values[np.isfinite(values)]
        if values.size and float(np.ptp(values)) > tol:
            return False
    return True


def learner_name(learner: Any) -> str:
    """Class name of a learner; a pipeline is named by its last step."""
    if learner is None:
        return "external"
    steps = getattr(learner, "steps", None)
    if steps:
        return f"{type(steps[-1][1]).__name__} (pipeline)"
    return type(learner).__name__
