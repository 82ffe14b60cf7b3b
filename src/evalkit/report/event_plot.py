"""Overlaid event-study plots: several estimators' event-time estimates in one figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from evalkit.errors import DesignError
from evalkit.report._labels import model_labels

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["EventResult", "error_spans", "event_study_plot", "offsets"]


@runtime_checkable
class EventResult(Protocol):
    """What :func:`event_study_plot` reads of a result.

    A fitted :class:`~evalkit.core.result.Result` has it, and so does anything else
    with an estimator name, a confidence level and tidy rows (e.g. an analysis read
    back from a study's results.json). An optional ``reference`` attribute lists the
    event times normalised to zero.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did import EventStudy
    >>> df = evalkit.datasets.load("mpdta")
    >>> fit = EventStudy(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> isinstance(fit.fit(df), EventResult)
    True
    """

    @property
    def estimator(self) -> str:
        """Return the estimator's name, e.g. ``"did.EventStudy"`` (default legend label)."""
        ...

    @property
    def level(self) -> float:
        """Return the confidence level of the intervals in :meth:`tidy`."""
        ...

    def tidy(self, level: float | None = None) -> pd.DataFrame:
        """Return one row per estimate with ``event_time``, ``estimate`` and the interval."""
        ...


_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def offsets(n: int, dodge: float | None = None) -> np.ndarray:
    """Horizontal offsets of ``n`` series around each event time, centred on zero.

    The default spacing ``min(0.2, 0.8 / n)`` keeps every group of points within
    ``+-0.4`` of its event time, so neighbouring event times never overlap.

    Examples
    --------
    >>> offsets(4).round(2).tolist()
    [-0.3, -0.1, 0.1, 0.3]
    """
    step = min(0.2, 0.8 / n) if dodge is None else float(dodge)
    return (np.arange(n) - (n - 1) / 2.0) * step


def error_spans(
    est: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return error-bar lengths (2 x n, never negative) and which intervals miss the estimate.

    An interval by test inversion need not contain the point estimate; matplotlib's
    error bars cannot draw such an interval, so its bar is left empty and the caller
    draws the interval itself (a line from ``low`` to ``high``). A missing bound draws
    no bar.

    Examples
    --------
    >>> err, miss = error_spans(np.array([1.0, 1.0]), np.array([0.5, 1.2]), np.array([2.0, 3.0]))
    >>> err.tolist(), miss.tolist()
    ([[0.5, 0.0], [1.0, 0.0]], [False, True])
    """
    err = np.vstack([est - low, high - est])
    miss = np.isfinite(err).all(axis=0) & (err < 0).any(axis=0)
    err = np.nan_to_num(err, nan=0.0)
    err[:, miss] = 0.0
    return err, miss


def _event_rows(result: Any, label: str, level: float | None) -> pd.DataFrame:
    tidy = result.tidy() if level is None else result.tidy(level)
    if "event_time" not in tidy:
        raise DesignError(
            f"result {label!r} has no event_time key, so it cannot go in an event-study plot",
            hint="pass event-time results: EventStudy, SunAbraham or ImputationDiD fits, or "
            "CallawaySantAnna(...).fit(df).aggregate('event_time')",
            column="results",
        )
    e = pd.to_numeric(tidy["event_time"], errors="coerce")
    rows = tidy.assign(event_time=e)[np.isfinite(e.to_numpy(dtype=float))]
    if rows.empty:
        raise DesignError(
            f"result {label!r} has no estimate with a numeric event time", column="results"
        )
    return rows


def event_study_plot(
    results: Sequence[EventResult],
    *,
    labels: Sequence[str] | None = None,
    level: float | None = None,
    dodge: float | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Draw the event-time estimates of several estimators in one figure.

    Each result's estimates and intervals are drawn against event time, shifted
    horizontally by its own offset (see :func:`offsets`) so that the intervals do not
    overlap. Reference periods that a result normalises to zero (its ``reference``
    attribute, e.g. ``-1`` for :class:`~evalkit.did.EventStudy` and
    :class:`~evalkit.did.SunAbraham`) are drawn as hollow points at zero. A horizontal
    line marks zero effect and a dashed vertical line the start of treatment (between
    event times -1 and 0). Rows without a numeric event time (summary rows such as
    ``average``) are left out.

    Parameters
    ----------
    results
        Results whose ``tidy()`` has an ``event_time`` key: EventStudy, SunAbraham,
        ImputationDiD, ``CallawaySantAnna(...).fit(df).aggregate("event_time")``, and any
        later estimator that reports event-time estimates; or any other object with the
        members of :class:`EventResult`.
    labels
        Legend labels, one per result; default ``(1) EventStudy``, ``(2) ...``.
    level
        Confidence level of the intervals; default each result's own.
    dodge
        Horizontal distance between neighbouring series (default ``min(0.2, 0.8/n)``).
    ax
        Axes to draw on; a new figure when None.
    title
        Axes title.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.errorbar` for every series.

    Returns
    -------
    matplotlib.axes.Axes
        Never calls ``show()``.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did import EventStudy, SunAbraham
    >>> df = evalkit.datasets.load("mpdta")
    >>> roles = dict(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> fits = [EventStudy(**roles).fit(df), SunAbraham(**roles).fit(df)]
    >>> ax = event_study_plot(fits, labels=["TWFE event study", "Sun-Abraham"])
    >>> len(ax.containers)
    2
    """
    import matplotlib.pyplot as plt

    results = list(results)
    if not results:
        raise DesignError("event_study_plot needs at least one result", column="results")
    labels = model_labels(results, labels, "labels")
    shifts = offsets(len(results), dodge)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 4.4))
    for i, (res, label, shift) in enumerate(zip(results, labels, shifts, strict=True)):
        rows = _event_rows(res, label, level)
        e = rows["event_time"].to_numpy(dtype=float)
        est = rows["estimate"].to_numpy(dtype=float)
        low = rows["conf_low"].to_numpy(dtype=float)
        high = rows["conf_high"].to_numpy(dtype=float)
        yerr, miss = error_spans(est, low, high)  # no interval: point only
        color, marker = f"C{i}", _MARKERS[i % len(_MARKERS)]
        if miss.any():  # an inverted interval that leaves out the estimate
            ax.vlines(e[miss] + shift, low[miss], high[miss], color=color, lw=1.5)
        ax.errorbar(
            e + shift,
            est,
            yerr=yerr,
            fmt=marker,
            color=color,
            capsize=2.5,
            markersize=5,
            label=label,
            **kwargs,
        )
        reference = [float(r) for r in getattr(res, "reference", ()) or ()]
        if reference:
            ax.plot(
                np.asarray(reference) + shift,
                np.zeros(len(reference)),
                marker,
                mfc="white",
                color=color,
                markersize=5,
                linestyle="none",
            )
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.axvline(-0.5, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("Event time (periods since treatment)")
    ax.set_ylabel("Estimate")
    pct = {round(100 * (level or r.level)) for r in results}
    note = (
        "hollow: reference period, fixed at 0"
        if any(getattr(r, "reference", ()) for r in results)
        else None
    )
    ax.legend(fontsize="small", title=note, title_fontsize="x-small")
    ax.set_title(title or f"Event-time estimates ({'/'.join(f'{p}%' for p in sorted(pct))} CI)")
    return ax
