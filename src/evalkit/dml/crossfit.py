"""Cross-fitting spread over processes one learner fit at a time, scored by DoubleML.

DoubleML fits every nuisance learner once per fold and repetition (PLR with 5 folds and
4 repetitions: 40 fits). To run those fits on :mod:`evalkit.parallel` without rewriting
any of DoubleML's scores, a fit goes through three steps:

1. **record**: DoubleML fits the model with stand-in learners, which record what each
   fit receives (the training rows and targets, fit parameters, the rows to predict and
   the prediction method) and predict a constant;
2. **fit**: each recorded fit is one item of :func:`evalkit.parallel.map`: a clone of
   the real learner is fitted on exactly those arrays and predicts the recorded rows;
3. **replay**: DoubleML fits the model again with stand-ins that return those
   predictions when a fit receives the arrays that were recorded (compared element by
   element). A fit whose arrays differ - a target that depends on an earlier
   nuisance's predictions, as in PLR's ``"IV-type"`` score - is fitted on the spot in
   this process.

Every prediction DoubleML sees is therefore the prediction of a clone of the same
learner fitted on the same arrays, as in a direct ``model.fit()``: the estimates,
scores and standard errors are identical, and the items are small enough (one fold of
one nuisance) for two processes to share them evenly, whatever ``n_rep``.

The recorded arrays are kept until the replay: about ``n_folds * n_rep * nuisances``
times the covariate matrix (5 folds, 4 repetitions, 2 nuisances: 40 copies).
"""

from __future__ import annotations

import functools
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["fit_in_parts"]

_BOOKS: dict[str, _Book] = {}
_COUNTER = itertools.count()
_LOCK = threading.Lock()


@dataclass
class _Fit:
    """One learner fit as DoubleML asked for it: inputs and, later, its predictions."""

    key: str
    x: np.ndarray
    y: np.ndarray
    fit_params: dict[str, Any]
    params: dict[str, Any]
    predicts: list[tuple[np.ndarray, str]] = field(default_factory=list)


class _Book:
    """The fits of one model: recorded in the first pass, handed out in the replay."""

    def __init__(self, learners: dict[str, Any]) -> None:
        self.learners = learners
        self.fits: list[_Fit] = []
        self.preds: list[list[np.ndarray]] = []
        self.replay = False
        self.cursor = 0
        self.local = 0  # fits of the replay that did not match a recorded fit

    def fit(self, key: str, x: Any, y: Any, fit_params: dict[str, Any], params: Any) -> Any:
        """Record a fit, or (replay) return the handle of its predictions."""
        entry = _Fit(key, np.asarray(x), np.asarray(y), dict(fit_params), dict(params))
        if not self.replay:
            self.fits.append(entry)
            return entry
        i = self.cursor
        self.cursor += 1
        if i < len(self.fits) and _same_inputs(self.fits[i], entry):
            return _Replayed(i)
        self.local += 1
        return _fit_learner(self.learners[key], entry)

    def predict(self, handle: Any, x: Any, method: str) -> np.ndarray:
        if isinstance(handle, _Fit):  # recording: a constant prediction of the mean target
            handle.predicts.append((np.asarray(x), method))
            level = float(np.mean(handle.y)) if handle.y.size else 0.0
            n = np.asarray(x).shape[0]
            if method == "predict_proba":
                p = min(max(level, 0.01), 0.99)
                return np.column_stack([np.full(n, 1 - p), np.full(n, p)])
            return np.full(n, level)
        if isinstance(handle, _Replayed):
            fit = self.fits[handle.fit]
            used = handle.used
            handle.used += 1
            if used < len(fit.predicts):
                x_rec, m_rec = fit.predicts[used]
                if m_rec == method and _equal(x_rec, np.asarray(x)):
                    return self.preds[handle.fit][used]
            self.local += 1  # a prediction that was not recorded: refit here
            return _fit_learner(self.learners[fit.key], fit).predict(x, method)
        return handle.predict(x, method)


class _Replayed:
    """Handle of a replayed fit: its recorded position and the predictions handed out."""

    def __init__(self, fit: int) -> None:
        self.fit = fit
        self.used = 0


class _Fitted:
    """A learner fitted in this process (replay fits that matched no recorded fit)."""

    def __init__(self, est: Any) -> None:
        self.est = est

    def predict(self, x: Any, method: str) -> np.ndarray:
        return np.asarray(getattr(self.est, method)(x))


def _fit_learner(learner: Any, fit: _Fit) -> _Fitted:
    from sklearn.base import clone

    est = clone(learner)
    if fit.params:
        est.set_params(**fit.params)
    est.fit(fit.x, fit.y, **fit.fit_params)
    return _Fitted(est)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are the same bit for bit (numbers; -0.0 differs from 0.0)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "biufc":
        return a.tobytes() == b.tobytes()
    return bool(np.array_equal(a, b))


def _same_inputs(a: _Fit, b: _Fit) -> bool:
    if a.key != b.key or set(a.fit_params) != set(b.fit_params) or a.params != b.params:
        return False
    if not (_equal(a.x, b.x) and _equal(a.y, b.y)):
        return False
    return all(
        _equal(np.asarray(a.fit_params[k]), np.asarray(b.fit_params[k])) for k in a.fit_params
    )


def _run_fit(item: tuple[Any, _Fit]) -> list[np.ndarray]:
    """Worker side: fit a clone of the learner on the recorded arrays; predict each request."""
    learner, fit = item
    fitted = _fit_learner(learner, fit)
    return [fitted.predict(x, method) for x, method in fit.predicts]


@functools.cache
def _stand_in_class() -> type:
    from sklearn.base import BaseEstimator
    from sklearn.utils import get_tags

    class StandIn(BaseEstimator):  # type: ignore[misc]
        """Takes a learner's place in DoubleML: records its fits or replays their predictions."""

        def __init__(self, book: str = "", key: str = "") -> None:
            self.book = book
            self.key = key

        def __sklearn_tags__(self) -> Any:
            return get_tags(_BOOKS[self.book].learners[self.key])

        def set_params(self, **params: Any) -> StandIn:
            own = {k: params.pop(k) for k in ("book", "key") if k in params}
            super().set_params(**own)
            self.extra_ = {**getattr(self, "extra_", {}), **params}
            return self

        def fit(self, X: Any, y: Any, **fit_params: Any) -> StandIn:
            book = _BOOKS[self.book]
            self.handle_ = book.fit(self.key, X, y, fit_params, getattr(self, "extra_", {}))
            self.classes_ = np.unique(np.asarray(y))
            return self

        def predict(self, X: Any) -> np.ndarray:
            return _BOOKS[self.book].predict(self.handle_, X, "predict")

        def predict_proba(self, X: Any) -> np.ndarray:
            return _BOOKS[self.book].predict(self.handle_, X, "predict_proba")

    return StandIn


def fit_in_parts(model: Any, backend: Any) -> dict[str, int]:
    """Fit a DoubleML ``model`` with its learner fits spread over ``backend`` (see module).

    Parameters
    ----------
    model
        A DoubleML model with its sample splitting set, not yet fitted.
    backend
        An :class:`evalkit.parallel.Backend`.

    Returns
    -------
    dict
        ``{"fits": recorded learner fits, "local": replay fits done in this process}``.
    """
    import warnings

    # the model's learners, and its sub-models' (DoubleMLDIDMulti: one per ATT(g, t))
    owners = [model, *getattr(model, "_modellist", [])]
    originals = [dict(owner._learner) for owner in owners]
    learners = {
        f"{j}/{name}": v
        for j, own in enumerate(originals)
        for name, v in own.items()
        if v is not None
    }
    with _LOCK:
        token = f"fit{next(_COUNTER)}"
    book = _Book(learners)
    _BOOKS[token] = book
    stand_in = _stand_in_class()
    try:
        for j, (owner, own) in enumerate(zip(owners, originals, strict=True)):
            owner._learner = {
                name: None if v is None else stand_in(book=token, key=f"{j}/{name}")
                for name, v in own.items()
            }
        with warnings.catch_warnings():  # scores of constant stand-in predictions
            warnings.simplefilter("ignore")
            model.fit(store_predictions=True)
        items = [(learners[f.key], f) for f in book.fits]
        book.preds = backend.map(_run_fit, items)
        book.replay = True
        model.fit(store_predictions=True)
    finally:
        for owner, own in zip(owners, originals, strict=True):
            owner._learner = own
        del _BOOKS[token]
    return {"fits": len(book.fits), "local": book.local}
