"""HonestDiD for few treated units: robust intervals with a covariance from the controls."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.uncertainty import TestInversion
from evalkit.did.event_study import EventStudy, few_treated_event_study
from evalkit.errors import DesignError, RowsDroppedWarning
from evalkit.inference.honest import EventTimeEstimates, honest_did

__all__ = ["HonestEventStudy"]

Target = Literal["average", "first"]


def _term(bound_name: str, bound: float) -> str:
    """Stable term name of a robust interval, e.g. ``honest:M=0.5``."""
    return f"honest:{bound_name}={bound:g}"


@register("did.HonestEventStudy")
@dataclasses.dataclass(frozen=True, kw_only=True)
class HonestEventStudy(Estimator):
    """HonestDiD (Rambachan & Roth 2023) on an event study with one (or few) treated units.

    Fits :class:`~evalkit.did.EventStudy` on a short window (event time ``-1`` the
    reference, no binning), takes the covariance of its coefficients from the
    never-treated units' errors (:mod:`evalkit.inference.few_treated_cov`: Conley &
    Taber 2011, errors stationary over time and distributed as the comparison units'),
    and runs :func:`~evalkit.inference.honest.honest_did` for a grid of bounds on how
    far the post-period violation of parallel trends may go.

    A cluster-robust covariance cannot serve here: with one treated city it estimates
    the treated city's error variance from that city's residuals alone, and its Wald
    test of the leads rejects true nulls far too often. The covariance from the
    controls holds its level (see the methods page).

    Parameters
    ----------
    outcome, unit, time, treatment, cohort, weights, covariates
        Roles, as :class:`~evalkit.did.EventStudy`. Units are the clusters (e.g. city
        x month cells).
    window
        ``(first, last)`` event times, default ``(-4, 4)``. The treated units' rows
        outside it are left out (counted in ``info["dropped"]``, no warning: the window
        defines the estimand); keep the comparison units' other periods, from which
        their errors' autocovariance is learned (with only the window's periods it is
        too noisy: 91% coverage of a 95% interval with 9 months, 95% with 72).
        Relative magnitudes take about a second with up to 3 leads and 5 post periods
        and grow steeply beyond.
    restriction
        ``"smoothness"`` (Delta^SD(M): the slope of the trend difference changes by at
        most ``M`` per period, in outcome units per period squared; default) or
        ``"relative_magnitude"`` (Delta^RM(Mbar): post-period changes at most ``Mbar``
        times the largest pre-period change).
    bounds
        The grid of ``M`` or ``Mbar``; default ``(0, 0.5, 1, 1.5, 2)`` for Mbar and
        five values from 0 to the largest pre-period second difference plus two
        standard errors for M.
    target
        ``"average"`` (default): the average effect over the window's post periods;
        ``"first"``: the effect at event time 0.
    max_lag
        Largest lag of the errors' autocovariance (default: every lag).
    method
        The robust set's construction, as :func:`~evalkit.inference.honest.honest_did`:
        ``"C-LF"`` (default) or ``"conditional"`` for relative magnitudes, ``"FLCI"``
        for smoothness.
    size_correction
        With ``weights``: read them as cell sizes (persons behind each cell mean) and
        model the errors' autocovariance as ``a + b / size`` (Ferman & Pinto 2019),
        learned from the comparison units and taken at each unit's own size, so a
        treated city larger than the comparison cities is not given their noisier
        errors (default True). Assumes the cell means' errors are a unit-level part
        plus an average over persons whose variance does not depend on the city;
        False assumes every unit's errors are distributed alike (Conley-Taber).

    Notes
    -----
    Rows: ``original`` (the target's estimate with its normal interval from the
    few-treated covariance) and one row per bound, term ``honest:M=<bound>`` (or
    ``honest:Mbar=<bound>``), all with the target's estimate and the robust interval.
    A robust set has no exact p-value: its rows carry the coarse but valid p-value of the
    test that rejects when the set excludes zero (``1 - level`` if it does, else 1).
    ``info["breakdown"]``: the largest bound on the grid up to which every set excludes
    zero (None if none does). ``info["betahat"]`` and ``info["sigma"]`` are the
    event-time estimates and their covariance given to HonestDiD (leads first, the
    reference -1 left out), e.g. to rerun them in R's ``HonestDiD``.

    Examples
    --------
    >>> import numpy as np
    >>> from evalkit.simulate.designs import cities
    >>> df = cities(np.random.default_rng(3), n_months=36, reform=20, effect=3.0)
    >>> df = df[df["month"].between(16, 24)]
    >>> res = HonestEventStudy(outcome="y", unit="city", time="month", treatment="d",
    ...                        bounds=(0.0, 0.1)).fit(df)
    >>> res.tidy()["term"].tolist()
    ['original', 'honest:M=0', 'honest:M=0.1']
    >>> round(res.estimate("original"), 3)
    3.311
    """

    outcome: str
    unit: str
    time: str
    cohort: str | None = None
    treatment: str | None = None
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    window: tuple[int, int] = (-4, 4)
    restriction: Literal["smoothness", "relative_magnitude"] = "smoothness"
    bounds: tuple[float, ...] | None = None
    target: Target = "average"
    max_lag: int | None = None
    method: str | None = None
    size_correction: bool = True

    supported_inference: ClassVar[tuple[str, ...]] = ("conley_taber",)
    supports_by: ClassVar[bool] = False
    effect_average: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"original": "event_window", "honest:*": "event_window"}
    )

    def __post_init__(self) -> None:
        if self.target not in ("average", "first"):
            raise DesignError(
                f"target must be 'average' or 'first', got {self.target!r}",
                column="target",
            )
        if self.restriction not in ("smoothness", "relative_magnitude"):
            raise DesignError(
                f"restriction must be 'smoothness' or 'relative_magnitude', got "
                f"{self.restriction!r}",
                column="restriction",
            )
        if not isinstance(self.size_correction, bool):
            raise DesignError(
                f"size_correction must be True or False, got {self.size_correction!r}",
                column="size_correction",
            )
        if self.bounds is not None:
            object.__setattr__(self, "bounds", tuple(float(b) for b in self.bounds))
        # checks the roles and the window (raises DesignError naming the option)
        self._event_study()

    def _event_study(self) -> EventStudy:
        return EventStudy(
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            cohort=self.cohort,
            treatment=self.treatment,
            covariates=self.covariates,
            weights=self.weights,
            cluster=self.cluster,
            reference=-1,
            window=self.window,
        )

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        with warnings.catch_warnings():
            # treated rows outside the window are left out by design (counted in info)
            warnings.filterwarnings(
                "ignore", message=".*outside the event window", category=RowsDroppedWarning
            )
            fit = few_treated_event_study(
                self._event_study(),
                data,
                max_lag=self.max_lag,
                size_correction=self.size_correction,
                _depth=2,
            )
        n_pre = sum(1 for e in fit.event_times if e < -1)
        est = EventTimeEstimates.from_arrays(fit.beta, fit.vcov, n_pre=n_pre)
        if [float(e) for e in est.event_times] != [float(e) for e in fit.event_times]:
            raise DesignError(
                f"the event times observed, {list(fit.event_times)}, are not every event "
                f"time of the window {self.window} around the reference -1",
                hint="choose a window whose event times are all observed",
                column="window",
            )
        if self.target == "average":
            l_vec = np.full(est.n_post, 1.0 / est.n_post)
            label = f"average effect over event times 0 to {fit.event_times[-1]}"
        else:
            l_vec = np.eye(est.n_post)[0]
            label = "effect at event time 0"
        honest = honest_did(
            est,
            restriction=self.restriction,
            method=self.method,
            bounds=self.bounds,
            l_vec=l_vec.tolist(),
            level=ctx.level,
            seed=ctx.seed,
        )
        grid = honest.tidy()
        orig = honest.original
        theta, se = orig["estimate"], orig["std_error"]
        terms = ["original", *(_term(honest.bound_name, b) for b in grid["bound"])]
        k = len(terms)
        p0 = 2 * stats.norm.sf(abs(theta) / se) if se > 0 else math.nan
        table = make_table(terms, [theta] * k, [math.nan] * k)
        sized = "treated_variance_ratio" in fit.about
        note = (
            f"HonestDiD ({honest.restriction}, {honest.method}) on the {label}; "
            "covariance of the event-time estimates learned from the "
            f"{fit.about['n_controls']} never-treated units' errors (Conley-Taber, "
            + ("stationary, variance a + b / cell size as Ferman-Pinto" if sized else "stationary")
            + "); 'original' is the normal interval with that covariance; a robust "
            "set's p-value is coarse: 1 - level when the set excludes zero, else 1"
        )

        def invert(new_level: float) -> tuple[np.ndarray, np.ndarray]:
            again = honest_did(
                est, restriction=self.restriction, method=self.method,
                bounds=list(grid["bound"]), l_vec=l_vec.tolist(), level=new_level, seed=ctx.seed,
            )  # fmt: skip
            t, o = again.tidy(), again.original
            return (
                np.r_[o["conf_low"], t["conf_low"].to_numpy(float)],
                np.r_[o["conf_high"], t["conf_high"].to_numpy(float)],
            )

        unc = TestInversion(
            # a robust set has no exact p-value; the test "reject when the set excludes
            # zero" gives a valid, coarse one: 1 - level if it does, else 1
            p_value=np.r_[p0, np.where(grid["excludes_zero"], 1.0 - ctx.level, 1.0)],
            conf_low=np.r_[orig["conf_low"], grid["conf_low"].to_numpy(float)],
            conf_high=np.r_[orig["conf_high"], grid["conf_high"].to_numpy(float)],
            level=ctx.level,
            method="conley_taber",
            granularity=None,
            invert=invert,
            note=note,
        )
        info = {
            "restriction": honest.restriction,
            "method": honest.method,
            "target": label,
            "bound_name": honest.bound_name,
            "bounds": [float(b) for b in grid["bound"]],
            "breakdown": honest.breakdown,
            "std_error_original": se,
            "event_times": list(fit.event_times),
            # HonestDiD's inputs (R/Python HonestDiD's betahat and sigma)
            "betahat": [float(v) for v in fit.beta],
            "sigma": [[float(v) for v in row] for row in fit.vcov],
            "window": list(self.window),
            "pretrend_test": fit.pretrend_test,
            "covariance": fit.about,
            "dropped": fit.dropped,
            "seed": ctx.seed,
        }
        return Result(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(
                "conley_taber",
                note,
                distribution="normal",
                cluster=self.unit,
                reason="HonestDiD needs a covariance of the event-time estimates that is "
                "right with one treated unit",
            ),
            info=info,
            level=ctx.level,
            uncertainty=unc,
        )
