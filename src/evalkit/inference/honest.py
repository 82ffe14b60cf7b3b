"""HonestDiD sensitivity analysis: robust intervals when parallel trends may fail.

Rambachan & Roth (2023, "A more credible approach to parallel trends") bound how far
the post-treatment violation of parallel trends may be from what the pre-trends
show, and give confidence sets for a post-treatment effect that are valid under the
bound:

``"relative_magnitude"`` (Delta^RM(Mbar))
    Each post-period change in the trend difference is at most ``Mbar`` times the
    largest pre-period change. Interval: the conditional-least-favourable hybrid
    (``method="C-LF"``, default) or conditional (``"conditional"``) test of Andrews,
    Roth & Pakes, inverted over a grid of values.
``"smoothness"`` (Delta^SD(M))
    The slope of the trend difference changes by at most ``M`` per period (``M = 0``:
    a linear trend, extrapolated). Interval: the optimal fixed-length interval
    (``method="FLCI"``).

:func:`honest_did` reads the event-time estimates and their covariance from a result
(an :class:`~evalkit.did.EventStudy` fit or a Callaway-Sant'Anna
``aggregate("event_time")`` with ``base_period="universal"``) and returns a
:class:`HonestResult`: the robust interval for every bound on a grid, the original
interval, the breakdown value and a plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.errors import DesignError, NotEstimableError
from evalkit.numerics.levels import check_level

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["EventTimeEstimates", "HonestResult", "honest_did"]

RESTRICTIONS = ("relative_magnitude", "smoothness")
_METHODS = {"relative_magnitude": ("C-LF", "conditional"), "smoothness": ("FLCI",)}


@dataclass(frozen=True, eq=False)
class EventTimeEstimates:
    """Event-time coefficients relative to one normalised reference period.

    Attributes
    ----------
    beta
        ``(K + T,)`` the ``K`` pre-period then ``T`` post-period estimates, in event
        time order, the reference period left out.
    sigma
        ``(K + T, K + T)`` their covariance.
    event_times
        The event time of each coefficient.
    reference
        The reference event time (normalised to zero).
    """

    beta: np.ndarray
    sigma: np.ndarray
    event_times: tuple[Any, ...]
    reference: Any = -1

    @property
    def n_pre(self) -> int:
        """Number of pre-periods (event times before the reference)."""
        return sum(1 for e in self.event_times if e < self.reference)

    @property
    def n_post(self) -> int:
        """Number of post-periods (event times after the reference)."""
        return len(self.event_times) - self.n_pre

    @classmethod
    def from_arrays(
        cls, beta: Any, sigma: Any, *, n_pre: int, reference: int = -1
    ) -> EventTimeEstimates:
        """Build from arrays ordered as ``reference - n_pre, ..., reference + T``.

        Examples
        --------
        >>> est = EventTimeEstimates.from_arrays([0.1, 0.0, 0.5], np.eye(3) * 0.01, n_pre=1)
        >>> est.event_times, est.n_post
        ((-2, 0, 1), 2)
        """
        beta = np.asarray(beta, dtype=float).ravel()
        n_post = len(beta) - n_pre
        times = tuple(range(reference - n_pre, reference)) + tuple(
            range(reference + 1, reference + 1 + n_post)
        )
        return _checked(beta, np.asarray(sigma, dtype=float), times, reference)

    @classmethod
    def from_result(cls, result: Any) -> EventTimeEstimates:
        """Read the event-time rows of a result's ``tidy()`` and their covariance."""
        return _from_result(result)


def _checked(
    beta: np.ndarray, sigma: np.ndarray, times: tuple[Any, ...], reference: Any
) -> EventTimeEstimates:
    k = len(beta)
    if sigma.shape != (k, k):
        raise DesignError(
            f"the covariance is {sigma.shape}, but there are {k} event-time estimates",
            hint="pass the covariance of exactly the event-time estimates, in their order",
            column="sigma",
        )
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(sigma))):
        raise DesignError(
            "the event-time estimates or their covariance contain NaN or infinite values",
            hint="refit with an inference method that gives a covariance, e.g. inference='cluster'",
            column="vcov",
        )
    sym = (sigma + sigma.T) / 2
    if np.max(np.abs(sigma - sym)) > 1e-8 * max(np.max(np.abs(sigma)), 1e-300):
        raise DesignError(
            "the covariance of the event-time estimates is not symmetric",
            hint="pass a covariance matrix (symmetric, positive semi-definite)",
            column="vcov",
        )
    eig = np.linalg.eigvalsh(sym)
    if eig.min() < -1e-8 * max(abs(eig.max()), 1e-300):
        raise DesignError(
            f"the covariance of the event-time estimates is not positive semi-definite "
            f"(smallest eigenvalue {eig.min():.3g})",
            hint="use the estimator's own vcov; a covariance pieced together from "
            "separate fits or rounded can lose definiteness",
            column="vcov",
        )
    n_pre = sum(1 for e in times if e < reference)
    n_post = len(times) - n_pre
    if n_pre == 0:
        raise DesignError(
            f"there are no pre-periods before the reference event time {reference}",
            hint="HonestDiD learns the size of violations from pre-trends: estimate "
            "leads, e.g. EventStudy without a window, or a window starting before -1",
            column="event_time",
        )
    if n_post == 0:
        raise DesignError(
            f"there are no post-periods after the reference event time {reference}",
            hint="estimate at least one event time at or after treatment",
            column="event_time",
        )
    expected = list(range(int(reference) - n_pre, int(reference))) + list(
        range(int(reference) + 1, int(reference) + 1 + n_post)
    )
    if [float(e) for e in times] != [float(e) for e in expected]:
        raise DesignError(
            f"event times {list(times)} are not consecutive around the reference {reference}",
            hint="HonestDiD restrictions compare consecutive periods: estimate every "
            "event time in the window (no gaps) with one reference period",
            column="event_time",
        )
    return EventTimeEstimates(beta, sym, tuple(times), reference)


def _result_vcov(result: Any) -> np.ndarray | None:
    """Return the result's covariance as an array in table order (None when it has none)."""
    try:
        vcov = result.vcov
    except TypeError:
        # Result.vcov builds labels from the key columns and fails under pandas 3
        # when a row has no event time (the "average" row of a CS aggregation);
        # the matrix itself is there, in table order.
        raw = getattr(result, "_vcov", None)
        return None if raw is None else np.asarray(raw, dtype=float)
    return None if vcov is None else np.asarray(vcov, dtype=float)


def _from_result(result: Any) -> EventTimeEstimates:
    tidy = result.tidy()
    if "event_time" not in tidy:
        raise DesignError(
            f"this {getattr(result, 'estimator', 'result')} result has no event_time rows",
            hint="pass an EventStudy fit, or CallawaySantAnna(...).fit(df).aggregate('event_time')",
            column="event_time",
        )
    vcov = _result_vcov(result)
    if vcov is None:
        raise DesignError(
            "this result has no covariance matrix (vcov) of its estimates",
            hint="refit with analytic inference, e.g. inference='cluster' (not 'none')",
            column="vcov",
        )
    info = getattr(result, "info", {}) or {}
    if info.get("base_period") == "varying":
        raise DesignError(
            "the reference period is not normalised: with base_period='varying' each "
            "pre-period estimate compares consecutive periods, not one reference period",
            hint="refit CallawaySantAnna with base_period='universal' (event time -1 is "
            "then the reference)",
            column="base_period",
        )
    keep = tidy["event_time"].notna().to_numpy()
    times = tidy.loc[keep, "event_time"].to_list()
    beta = tidy.loc[keep, "estimate"].to_numpy(dtype=float)
    sigma = vcov[np.ix_(keep, keep)]
    if len(set(times)) < len(times):
        raise DesignError(
            f"this result has several estimates per event time ({len(times)} rows for "
            f"{len(set(times))} event times)",
            hint="pass a result with one estimate per event time, e.g. an EventStudy fit "
            "or a Callaway-Sant'Anna aggregate('event_time')",
            column="event_time",
        )
    if all(float(t) >= 0 for t in times) and not info.get("reference"):
        raise DesignError(
            f"there are no pre-periods: this {getattr(result, 'estimator', 'result')} "
            "result has event times " + ", ".join(str(t) for t in times) + " only",
            hint="HonestDiD needs leads relative to one reference period: use "
            "EventStudy, SunAbraham, or CallawaySantAnna(base_period='universal')"
            ".aggregate('event_time')",
            column="event_time",
        )
    refs = list(getattr(result, "reference", ()) or info.get("reference") or [])
    fixed = (beta == 0.0) & (np.diag(sigma) == 0.0)
    refs += [t for t, z in zip(times, fixed, strict=True) if z and t not in refs]
    if len(refs) != 1:
        raise DesignError(
            "the reference period is not normalised: "
            + (
                "no event time is fixed at zero"
                if not refs
                else f"there are {len(refs)} reference event times {refs}"
            ),
            hint="HonestDiD needs exactly one reference period: EventStudy(reference=-1) "
            "or CallawaySantAnna(base_period='universal')",
            column="reference",
        )
    ref = refs[0]
    drop = np.array([t == ref for t in times])
    order = np.argsort([float(t) for t in np.array(times, dtype=object)[~drop]])
    times_kept = [t for t, d in zip(times, drop, strict=True) if not d]
    beta, sigma = beta[~drop][order], sigma[np.ix_(~drop, ~drop)][np.ix_(order, order)]
    return _checked(beta, sigma, tuple(times_kept[i] for i in order), ref)


@dataclass(frozen=True, eq=False)
class HonestResult:
    """Robust confidence sets over a grid of bounds (from :func:`honest_did`).

    Attributes
    ----------
    restriction
        ``"relative_magnitude"`` or ``"smoothness"``, with ``+positive``,
        ``+increasing``... appended when a sign or monotonicity restriction was added.
    method
        ``"C-LF"``, ``"conditional"`` or ``"FLCI"``.
    target
        Description of the target ``theta = l'tau``.
    l_vec
        Weights of the post periods in the target.
    level
        Confidence level.
    original
        The original (non-robust) interval for the target: estimate, std_error,
        conf_low, conf_high.
    """

    restriction: str
    method: str
    target: str
    l_vec: np.ndarray
    level: float
    original: dict[str, float]
    _table: pd.DataFrame = field(repr=False)
    _estimates: EventTimeEstimates | None = field(default=None, repr=False)
    _options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def bound_name(self) -> str:
        """``"Mbar"`` (relative magnitudes) or ``"M"`` (smoothness)."""
        return "Mbar" if self.restriction.startswith("relative_magnitude") else "M"

    def tidy(self) -> pd.DataFrame:
        """One row per bound: ``bound, conf_low, conf_high, excludes_zero`` (a copy)."""
        return self._table.copy()

    @property
    def breakdown(self) -> float | None:
        """Largest bound on the grid up to which every robust set excludes zero.

        None when even the smallest bound's set contains zero. It is read off the
        grid: :meth:`refine_breakdown` locates it between grid points.
        """
        best = None
        for row in self._table.itertuples():
            if not row.excludes_zero:
                break
            best = float(row.bound)
        return best

    def refine_breakdown(self, tol: float | None = None) -> float | None:
        """Locate the breakdown value between grid points by bisection.

        Searches between the last bound whose set excludes zero (from the start of the
        grid) and the next bound, to within ``tol`` (default a thousandth of the grid
        step). Assumes, as the restrictions imply for the identified set, that the
        robust sets grow with the bound.

        Returns
        -------
        float or None
            The largest bound found whose set excludes zero; None when even the
            smallest bound's set contains zero.

        Raises
        ------
        DesignError
            If every set on the grid excludes zero (the breakdown lies beyond it).
        """
        t = self._table
        if self._estimates is None:  # pragma: no cover - built by honest_did only
            raise NotEstimableError("this result holds no estimates to refine with")
        best = self.breakdown
        if best is None:
            return None
        above = t.index[t["bound"] > best]
        if len(above) == 0:
            raise DesignError(
                f"every robust set on the grid excludes zero (up to {best:g}): the "
                "breakdown value lies beyond the grid",
                hint="rerun honest_did with larger bounds",
                column="bounds",
            )
        lo, hi = best, float(t.loc[above[0], "bound"])
        tol = (hi - lo) / 1000 if tol is None else float(tol)
        while hi - lo > tol:
            mid = (lo + hi) / 2
            if _excludes_zero(*_robust_set(self._estimates, mid, self._options)):
                lo = mid
            else:
                hi = mid
        return lo

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary."""
        return {
            "restriction": self.restriction,
            "method": self.method,
            "target": self.target,
            "l_vec": [_number(v) for v in self.l_vec],
            "level": self.level,
            "original": {k: _number(v) for k, v in self.original.items()},
            "breakdown": self.breakdown,
            "intervals": [
                {
                    "bound": _number(r.bound),
                    "conf_low": _number(r.conf_low),
                    "conf_high": _number(r.conf_high),
                    "excludes_zero": bool(r.excludes_zero),
                }
                for r in self._table.itertuples()
            ],
        }

    def plot(self, ax: Axes | None = None) -> Axes:
        """Robust intervals against the bound, the original interval first (Axes)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        t = self._table
        step = float(np.diff(t["bound"]).min()) if len(t) > 1 else 1.0
        x0 = float(t["bound"].min()) - step
        ax.errorbar(
            [x0],
            [(self.original["conf_low"] + self.original["conf_high"]) / 2],
            yerr=[[(self.original["conf_high"] - self.original["conf_low"]) / 2]],
            fmt="none",
            color="0.4",
            capsize=3,
            label="original",
        )
        mid = (t["conf_low"] + t["conf_high"]) / 2
        ax.errorbar(
            t["bound"],
            mid,
            yerr=[mid - t["conf_low"], t["conf_high"] - mid],
            fmt="none",
            color="C0",
            capsize=3,
            label=f"robust ({self.method})",
        )
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.set_xlabel(r"$\bar{M}$" if self.bound_name == "Mbar" else "M")
        ax.set_ylabel(f"{self.target}, {round(100 * self.level)}% set")
        ax.legend(frameon=False)
        return ax


def _l_vector(est: EventTimeEstimates, target: Any, l_vec: Any) -> tuple[np.ndarray, str]:
    post_times = list(est.event_times[est.n_pre :])
    if l_vec is not None:
        if target is not None:
            raise DesignError(
                "give target= or l_vec=, not both", column="l_vec", hint="drop one of them"
            )
        vec = np.asarray(l_vec, dtype=float).ravel()
        if vec.shape != (est.n_post,) or not np.all(np.isfinite(vec)) or not vec.any():
            raise DesignError(
                f"l_vec must hold {est.n_post} finite weights (one per post period "
                f"{post_times}), not all zero; got {l_vec!r}",
                hint=f"e.g. l_vec=[1/{est.n_post}] * {est.n_post} for the average effect",
                column="l_vec",
            )
        return vec, f"l'tau with l={np.round(vec, 4).tolist()}"
    chosen = post_times[0] if target is None else target
    matches = [i for i, t in enumerate(post_times) if float(t) == float(chosen)]
    if not matches:
        raise DesignError(
            f"target event time {chosen!r} is not a post period",
            hint=f"choose one of {post_times}",
            column="target",
        )
    vec = np.zeros(est.n_post)
    vec[matches[0]] = 1.0
    return vec, f"effect at event time {chosen}"


def _check_shape(restriction: str, bias_sign: str | None, monotonicity: str | None) -> None:
    for name, value, allowed in (
        ("bias_sign", bias_sign, ("positive", "negative")),
        ("monotonicity", monotonicity, ("increasing", "decreasing")),
    ):
        if value is not None and value not in allowed:
            raise DesignError(
                f"{name} must be one of {', '.join(allowed)} or None, got {value!r}",
                column=name,
            )
    if bias_sign is not None and monotonicity is not None:
        raise DesignError(
            "give bias_sign= or monotonicity=, not both",
            hint="R HonestDiD allows one sign or shape restriction at a time too",
            column="monotonicity",
        )
    if (bias_sign or monotonicity) and restriction != "relative_magnitude":
        raise DesignError(
            "sign and monotonicity restrictions are implemented for "
            "restriction='relative_magnitude' only",
            hint="use restriction='relative_magnitude', or drop bias_sign/monotonicity",
            column="bias_sign" if bias_sign else "monotonicity",
        )


def _default_grid(restriction: str, est: EventTimeEstimates) -> np.ndarray:
    if restriction == "relative_magnitude":
        return np.linspace(0.0, 2.0, 5)
    # smoothness: up to the largest pre-period second difference plus two standard
    # errors (evalkit's default; R HonestDiD uses an upper confidence bound on it)
    pre = np.concatenate([est.beta[: est.n_pre], [0.0]])
    sd = np.sqrt(np.diag(est.sigma)[: est.n_pre])
    if est.n_pre == 1:
        top = float(sd[0])
    else:
        sec = np.abs(np.diff(pre, n=2))
        top = float(sec.max() + 2 * sd.max())
    return np.linspace(0.0, top, 5)


def honest_did(
    result: Any,
    *,
    restriction: str = "relative_magnitude",
    bounds: Sequence[float] | None = None,
    target: Any = None,
    l_vec: Sequence[float] | None = None,
    method: str | None = None,
    level: float = 0.95,
    grid_points: int = 1000,
    grid_bounds: tuple[float, float] | str | None = None,
    seed: int = 0,
    bias_sign: str | None = None,
    monotonicity: str | None = None,
) -> HonestResult:
    """Sensitivity of an event-study effect to violations of parallel trends.

    Parameters
    ----------
    result
        A result whose ``tidy()`` has ``event_time`` rows and a ``vcov``: an
        :class:`~evalkit.did.EventStudy` fit, a Callaway-Sant'Anna
        ``aggregate("event_time")`` fitted with ``base_period="universal"``, or an
        :class:`EventTimeEstimates`.
    restriction
        ``"relative_magnitude"`` (Delta^RM, bounds are ``Mbar``) or ``"smoothness"``
        (Delta^SD, bounds are ``M`` in units of the outcome per period squared).
    bounds
        The grid of ``Mbar`` or ``M`` values; default ``0, 0.5, ..., 2`` for
        ``Mbar``, and five values from 0 to the largest pre-period second difference
        plus two standard errors for ``M``.
    target
        The post event time whose effect is studied; default the first post period.
    l_vec
        Instead of ``target``: weights of the post periods (e.g. equal weights for the
        average effect).
    method
        ``"C-LF"`` (default) or ``"conditional"`` for relative magnitudes; ``"FLCI"``
        for smoothness (R HonestDiD's defaults).
    level
        Confidence level.
    grid_points
        Relative magnitudes: number of ``theta`` values tested between +-20 standard
        errors of the target (R's default 1000); the set is reported as its smallest
        and largest accepted values.
    grid_bounds
        Relative magnitudes: ``(low, high)`` of the grid of ``theta``; default +-20
        standard errors around zero (R's range), widened to cover the identified set
        at the estimate +-20 standard errors and doubled while the set reaches an end;
        ``"R"`` keeps R's range exactly.
    seed
        Seed of the simulated least-favourable critical value (``"C-LF"``).
    bias_sign
        Relative magnitudes only: also assume the post-period trend difference is
        ``"positive"`` or ``"negative"`` (Delta^RMB).
    monotonicity
        Relative magnitudes only: also assume the trend difference is ``"increasing"``
        or ``"decreasing"`` over all periods (Delta^RMM). Give at most one of
        ``bias_sign`` and ``monotonicity``.

    Returns
    -------
    HonestResult

    Examples
    --------
    >>> est = EventTimeEstimates.from_arrays(
    ...     [0.01, -0.01, 0.0, 0.1, 0.12], np.diag([4e-4] * 5), n_pre=3)
    >>> hr = honest_did(est, restriction="smoothness", bounds=[0.0, 0.01])
    >>> hr.tidy()[["bound", "excludes_zero"]].to_dict("list")
    {'bound': [0.0, 0.01], 'excludes_zero': [True, True]}
    """
    level = check_level(level)
    alpha = 1.0 - level
    if restriction not in RESTRICTIONS:
        import difflib

        close = difflib.get_close_matches(str(restriction), RESTRICTIONS, n=1)
        raise DesignError(
            f"unknown restriction {restriction!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"choose one of {', '.join(RESTRICTIONS)}",
            column="restriction",
        )
    allowed = _METHODS[restriction]
    if method is None:
        method = allowed[0]
    matched = [m for m in allowed if m.lower() == str(method).lower()]
    if not matched:
        raise DesignError(
            f"method {method!r} is not available for restriction={restriction!r}",
            hint=f"choose one of {', '.join(allowed)}",
            column="method",
        )
    method = matched[0]
    _check_shape(restriction, bias_sign, monotonicity)
    est = result if isinstance(result, EventTimeEstimates) else _from_result(result)
    vec, label = _l_vector(est, target, l_vec)
    grid = _default_grid(restriction, est) if bounds is None else np.asarray(bounds, float)
    if grid.ndim != 1 or grid.size == 0 or np.any(~np.isfinite(grid)) or np.any(grid < 0):
        raise DesignError(
            f"bounds must be non-negative numbers, got {bounds!r}",
            hint="e.g. bounds=[0, 0.5, 1, 1.5, 2]",
            column="bounds",
        )
    grid = np.sort(grid)
    if int(grid_points) < 10:
        raise DesignError(
            f"grid_points must be at least 10, got {grid_points!r}", column="grid_points"
        )
    k = est.n_pre
    post = slice(k, k + est.n_post)
    theta = float(vec @ est.beta[post])
    se = math.sqrt(max(float(vec @ est.sigma[post, post] @ vec), 0.0))
    z = stats.norm.ppf(1 - alpha / 2)
    original = {"estimate": theta, "std_error": se, "conf_low": theta - z * se,
                "conf_high": theta + z * se}  # fmt: skip
    if restriction != "smoothness" and se == 0.0:
        raise NotEstimableError(
            "the target has zero variance; the test-inversion grid is empty",
            hint="check that the post-period estimates have standard errors",
            column="vcov",
        )
    options = {
        "smoothness": restriction == "smoothness",
        "l_vec": vec,
        "alpha": alpha,
        "hybrid": "LF" if method == "C-LF" else "ARP",
        "grid_points": int(grid_points),
        "grid_bounds": grid_bounds,
        "seed": seed,
        "bias": bias_sign,
        "monotone": monotonicity,
    }
    rows = []
    for bound in grid:
        lo, hi = _robust_set(est, float(bound), options)
        rows.append(
            {
                "bound": float(bound),
                "conf_low": lo,
                "conf_high": hi,
                "excludes_zero": _excludes_zero(lo, hi),
            }
        )
    table = pd.DataFrame(rows)
    extra = bias_sign or monotonicity
    return HonestResult(
        restriction=restriction if extra is None else f"{restriction}+{extra}",
        method=method,
        target=label,
        l_vec=vec,
        level=level,
        original=original,
        _table=table,
        _estimates=est,
        _options=options,
    )


def _number(value: Any) -> float | None:
    """Return a plain float for JSON (None for NaN or infinity)."""
    out = float(value)
    return out if math.isfinite(out) else None


def _excludes_zero(lo: float, hi: float) -> bool:
    return bool(np.isfinite(lo) and (lo > 0 or hi < 0))


def _robust_set(
    est: EventTimeEstimates, bound: float, options: dict[str, Any]
) -> tuple[float, float]:
    """Return the robust set for one bound (``options`` as built by :func:`honest_did`)."""
    if options["smoothness"]:
        from evalkit.inference._smoothness import flci

        return flci(
            est.beta, est.sigma, est.n_pre, options["l_vec"], bound, alpha=options["alpha"]
        ).interval
    from evalkit.inference._relative_magnitudes import rm_confidence_set

    return rm_confidence_set(
        est.beta, est.sigma, est.n_pre, options["l_vec"], bound,
        alpha=options["alpha"], hybrid=options["hybrid"], grid_points=options["grid_points"],
        grid_bounds=options["grid_bounds"], seed=options["seed"], bias=options["bias"],
        monotone=options["monotone"],
    )  # fmt: skip
