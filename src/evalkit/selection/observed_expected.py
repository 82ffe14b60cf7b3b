"""Case selection by observed versus expected counts: ``selection.ObservedExpected``.

Which municipalities have clearly more, and clearly fewer, young people not in
employment, education or training (NEET) than their structural conditions predict? The
NEET collaboration paper and O4O choose three of each (following a Swedish study) and
then study how their services work. This estimator makes that selection reproducible
and says how sure it is:

1. **Risk model.** A logistic regression (statsmodels ``Logit``) of the 0/1 ``outcome``
   on the ``covariates`` (individual and structural risk factors; text or categorical
   columns become indicators), pooled over persons, municipalities and years. With
   ``holdout_from`` it is fitted on the years before and predicts the years from then
   on (out of sample); otherwise it is fitted and evaluated on all rows.
2. **Observed and expected.** In the evaluation years, ``O_m`` is the number of events
   (NEET person-years) in municipality ``m`` and ``E_m`` the sum of the predicted
   probabilities.
3. **Shrinkage.** The ratios ``O_m / E_m`` of small municipalities are noisy; they are
   shrunk by the gamma-Poisson empirical-Bayes model of :mod:`evalkit.selection.shrinkage`
   after dividing both counts by the overdispersion factor ``phi`` (persons contribute
   several dependent years). The estimate of each ratio is its posterior mean
   ``(a + O_m/phi) / (b + E_m/phi)``. With ``prior="npmle"`` the prior is instead the
   nonparametric maximum likelihood estimate of the ratios' distribution
   (:mod:`evalkit.selection.npmle`), a few points of mass that can hold a bulk of
   ordinary municipalities and a few outliers apart; the probabilities of step 5 are then
   exact given each replicate's posteriors (no posterior draws).
4. **Selection.** The ``k`` municipalities with the highest and the ``k`` with the lowest
   shrunk ratio.
5. **How sure.** In each of ``reps`` replicates the risk model's coefficients are drawn
   from their estimated sampling distribution (giving the expected counts) and the
   prior's coefficient of variation from its profile likelihood
   (:func:`~evalkit.selection.shrinkage.cv_draws`: the uncertainty of the prior's
   spread, integrated over); ``posterior_draws`` ratios are then drawn from every
   municipality's gamma posterior given the observed counts. The share of all draws in
   which a municipality is among the ``k`` highest (lowest) is ``p_above``
   (``p_below``), its probability of *truly* being among the ``k`` above (below); the
   intervals of the ratios are percentiles of the draws. ``prior_cv`` gets the
   profile-likelihood interval of the prior's coefficient of variation
   (:func:`~evalkit.selection.shrinkage.cv_interval`) and the likelihood-ratio test of
   no variation. Persons are also resampled within municipalities, for the interval of
   ``level`` and the share of replicates in which the selection rule, applied to the
   resampled data, picks a municipality (the selection's stability, in
   ``extras["municipalities"]``). An earlier version refitted the prior to the
   resampled persons: resampling adds noise to every ratio, which widened that prior,
   shifted the bootstrap distribution of ``prior_cv`` up (its basic interval missed the
   truth in most simulated countries) and flattened the probabilities.

   *Calibration* (``benchmarks/results/selection_calibration.md``, simulated countries):
   the intervals of ``prior_cv`` are conservative. The probabilities are those of an
   *exchangeable* model, in which every municipality, small or large, may be an outlier
   and the number of outliers is itself uncertain. Where that holds (the simulator's
   default ``outlier_rule="random"``) the mean ``p_above`` of the selected is within
   the binomial band of the share truly among the ``k`` with either prior; where it
   does not (exactly ``k`` outliers a side, only in mid-size and large municipalities:
   ``outlier_rule="fixed"``) the selected get too little (0.63 reported against 0.77
   true above), the probability that small municipalities keep.

Ratios are reported relative to the level of the evaluation window, ``sum(O) / sum(E)``
(row ``level``), so that a drift of the whole country between the years the risk model
is fitted on and the years it predicts does not put every municipality above (or
below) its prediction; a ratio of 1.2 is 20% more events than predicted *given the
window's level*. Rows of the result: ``level``, ``prior_cv`` (the prior's coefficient
of variation ``sd / mean``: how much the true ratios vary between municipalities),
then for each municipality ``ratio:<unit>``,
``p_above:<unit>`` and ``p_below:<unit>``. With ``anonymise=True`` only the selected
municipalities are reported, named by their place in the selection (``above-1`` has the
highest ratio, ``below-1`` the lowest), with no counts: the interviewees of the case
studies were promised anonymity, and sizes or codes would identify a municipality.
Counts below ``min_cell_size`` are never shown.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result
from evalkit.core.uncertainty import Draws, NoInference
from evalkit.data.checks import check_name, check_names
from evalkit.data.disclosure import check_min_cell_size
from evalkit.errors import ConvergenceError, DataError, DesignError, RowsDroppedWarning
from evalkit.selection import npmle, shrinkage
from evalkit.selection.result import SelectionResult

__all__ = ["ObservedExpected"]


@dataclasses.dataclass(frozen=True, eq=False)
class _CvProfile:
    """The effective counts that give ``prior_cv`` its profile-likelihood interval."""

    observed: np.ndarray
    expected: np.ndarray

    def interval(self, level: float) -> tuple[float, float]:
        return shrinkage.cv_interval(self.observed, self.expected, level)

    def p_value(self) -> float:
        return shrinkage.cv_p_value(self.observed, self.expected)


@dataclasses.dataclass(frozen=True, eq=False)
class _SelectionDraws(Draws):
    """Bootstrap-posterior draws with percentile intervals and tests against ``null``.

    ``null`` holds each row's reference value: 1 for ``level`` and the ratios (as
    predicted), 0 for ``prior_cv`` (no variation between municipalities) and ``k / M``
    for ``p_above`` / ``p_below`` (no better than a draw by lot). The statistic is
    ``(estimate - null) / std_error`` against the normal; intervals are percentiles of
    the draws, widened where needed to contain the estimate (a probability whose draws
    are nearly all 0 has a percentile interval [0, 0] but an estimate above 0). Rows in
    ``basic`` (``level``: recomputed on resampled persons) get the basic bootstrap
    interval ``2 * estimate - percentiles`` instead. The row in ``profile``
    (``prior_cv``) gets the profile-likelihood interval of ``cv`` at any level and the
    likelihood-ratio test of no variation (half the chi-square(1) tail: the null is on
    the boundary).
    """

    null: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    basic: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    profile: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    cv: _CvProfile | None = None

    def columns(self, estimate: np.ndarray, level: float) -> dict[str, np.ndarray]:
        """Return the draws' standard errors, percentile intervals and tests of ``null``."""
        from scipy import stats

        cols = super().columns(estimate, level)
        se = cols["std_error"]
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = np.where(se > 0, (estimate - self.null) / se, np.nan)
        cols["statistic"] = stat
        cols["p_value"] = 2.0 * stats.norm.sf(np.abs(stat))
        lo, hi = cols["conf_low"].copy(), cols["conf_high"].copy()
        b = self.basic
        lo[b], hi[b] = np.maximum(2 * estimate[b] - hi[b], 0.0), 2 * estimate[b] - lo[b]
        if self.cv is not None and self.profile.any():
            lo[self.profile], hi[self.profile] = self.cv.interval(level)
            cols["statistic"][self.profile] = np.nan
            cols["p_value"][self.profile] = self.cv.p_value()
        cols["conf_low"] = np.minimum(lo, estimate)
        cols["conf_high"] = np.maximum(hi, estimate)
        return cols

    def to_dict(self) -> dict[str, Any]:
        """Return the draws' settings and what the p-values test."""
        return {
            **super().to_dict(),
            "null": "ratio = 1, level = 1, prior_cv = 0, p_above / p_below = k / M",
            "prior_cv": "profile-likelihood interval; likelihood-ratio test of prior_cv = 0",
        }


@register("selection.ObservedExpected")
@dataclasses.dataclass(frozen=True, kw_only=True)
class ObservedExpected(Estimator):
    """Select municipalities whose event rate is clearly above or below its prediction.

    Parameters
    ----------
    outcome
        The 0/1 event column (e.g. ``"neet"``).
    unit
        The municipality column.
    covariates
        Risk factors of the risk model: numeric columns enter as they are, text or
        categorical ones as indicators (first level left out). Structural factors are
        columns constant within a municipality.
    time
        The period column; needed with ``holdout_from``.
    cluster
        The person column: persons are resampled by the bootstrap and their years count
        together in the overdispersion factor. None: every row is its own person.
    holdout_from
        First period of the evaluation window: the risk model is fitted on earlier rows
        and predicts these (out of sample). None: fitted and evaluated on all rows.
    k
        How many municipalities to select above and below (3 in the NEET study).
    anonymise
        Report only the selected municipalities, named ``above-1`` ... ``below-k`` by
        their rank, and no counts.
    min_cell_size
        Counts (events, persons) below this are never shown in the result.
    posterior_draws
        Draws from each municipality's posterior per bootstrap replicate.
    prior
        The prior of the true ratios: ``"gamma"`` (the default), the parametric gamma
        prior (:mod:`evalkit.selection.shrinkage`), or ``"npmle"``, the nonparametric
        maximum likelihood estimate of their distribution on a grid
        (:mod:`evalkit.selection.npmle`; ``p_above`` / ``p_below`` exact given the
        posteriors). The NPMLE is discrete, so its posterior of a ratio sits on a few
        points and the ratios' intervals are far too short (on the study's simulator
        they covered 30% of the true ratios in one country, against 90%+ with the gamma
        prior); use it for the probabilities, not the intervals. Its probabilities are
        no better calibrated on the study's simulator
        (``benchmarks/results/selection_calibration.md``).

    Notes
    -----
    ``inference="bootstrap"`` (the default, ``reps=500``) gives the intervals and
    probabilities described in the module docstring; ``"none"`` uses the posterior at
    the fitted prior only (``reps`` x ``posterior_draws`` draws), ignoring the
    uncertainty of the prior's spread and of the risk model. The overdispersion factor
    ``phi`` is held at its estimate in both: it is estimated from thousands of persons
    (its spread over simulated countries of the study's size is about 0.03 around 1.5).

    Examples
    --------
    >>> from evalkit.simulate import integration_youth
    >>> from evalkit.selection import ObservedExpected
    >>> sim = integration_youth(seed=4, n_persons=4000)
    >>> norway = sim.data[sim.data["country"] == "Norway"]
    >>> est = ObservedExpected(outcome="neet", unit="municipality", time="year",
    ...     cluster="person_id", holdout_from=2021,
    ...     covariates=["age_group", "female", "immigrant", "parents_low_education",
    ...                 "dropout", "health_problems", "unemployment", "low_education",
    ...                 "centrality"])
    >>> res = est.fit(norway, seed=1, reps=40)
    >>> res.tidy()["term"].iloc[:4].tolist()
    ['level', 'prior_cv', 'ratio:NO01', 'p_above:NO01']
    >>> round(float(res.tidy().query("term.str.startswith('p_above')")["estimate"].sum()), 6)
    3.0
    >>> anon = est.set_params(anonymise=True).fit(norway, seed=1, reps=40)
    >>> anon.tidy()["term"].tolist()[2:6]
    ['ratio:above-1', 'p_above:above-1', 'ratio:above-2', 'p_above:above-2']
    """

    outcome: str
    unit: str
    covariates: tuple[str, ...] | Sequence[str] = ()
    time: str | None = None
    cluster: str | None = None
    holdout_from: int | float | str | None = None
    k: int = 3
    anonymise: bool = False
    min_cell_size: int = 5
    posterior_draws: int = 20
    prior: str = "gamma"

    supported_inference: ClassVar[tuple[str, ...]] = ("bootstrap", "none")
    supports_by: ClassVar[bool] = False
    #: Replicates of the bootstrap when ``reps`` is not given.
    default_reps: ClassVar[int] = 500

    def __post_init__(self) -> None:
        check_name(self.outcome, "outcome")
        check_name(self.unit, "unit")
        check_name(self.time, "time", required=False)
        check_name(self.cluster, "cluster", required=False)
        covariates = check_names(self.covariates, "covariates")
        if not covariates:
            raise DesignError(
                "ObservedExpected needs covariates: the risk factors that predict the outcome",
                hint="e.g. covariates=['age_group', 'female', 'unemployment']",
                column="covariates",
            )
        object.__setattr__(self, "covariates", covariates)
        if self.holdout_from is not None and self.time is None:
            raise DesignError(
                "holdout_from needs time=: the column whose values it is compared with",
                hint="e.g. time='year', holdout_from=2021",
                column="time",
            )
        for name, low in (("k", 1), ("posterior_draws", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DesignError(
                    f"{name} must be a whole number >= {low}, got {value!r}",
                    hint=f"e.g. {name}={3 if name == 'k' else 20}",
                    column=name,
                )
        if self.prior not in ("npmle", "gamma"):
            raise DesignError(
                f"prior must be 'npmle' or 'gamma', got {self.prior!r}",
                hint="prior='gamma' (the default) or prior='npmle' (nonparametric)",
                column="prior",
            )
        if not isinstance(self.anonymise, bool):
            raise DesignError(
                f"anonymise must be true or false, got {self.anonymise!r}", column="anonymise"
            )
        object.__setattr__(self, "min_cell_size", check_min_cell_size(self.min_cell_size))

    # ------------------------------------------------------------------ data
    def _frame(self, data: pd.DataFrame) -> pd.DataFrame:
        roles = [self.outcome, self.unit, *self.covariates]
        roles += [c for c in (self.time, self.cluster) if c is not None]
        missing = [c for c in dict.fromkeys(roles) if c not in data.columns]
        if missing:
            raise DataError(
                f"column(s) {', '.join(map(repr, missing))} not in the data",
                hint=f"available: {', '.join(map(str, data.columns[:20]))}",
                column=missing[0],
            )
        frame = data[list(dict.fromkeys(roles))]
        bad = frame.isna().any(axis=1).to_numpy()
        if bad.any():
            warnings.warn(
                f"dropped {int(bad.sum())} of {len(frame)} rows with missing values in "
                f"{', '.join(c for c in frame.columns if frame[c].isna().any())}",
                RowsDroppedWarning,
                stacklevel=5,
            )
            frame = frame.loc[~bad]
        y = pd.to_numeric(frame[self.outcome], errors="coerce")
        if y.isna().any() or not y.isin([0, 1]).all():
            raise DataError(
                f"outcome {self.outcome!r} must be 0/1 (an event indicator)",
                hint="e.g. neet = 1 for a person-year not in employment, education or training",
                column="outcome",
            )
        return frame.reset_index(drop=True)

    def _design(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        parts = [pd.Series(1.0, index=frame.index, name="const")]
        for c in self.covariates:
            col = frame[c]
            if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
                parts.append(col.astype(float).rename(c))
            else:
                levels = sorted(pd.unique(col.astype(str)))
                for level in levels[1:]:
                    parts.append((col.astype(str) == level).astype(float).rename(f"{c}[{level}]"))
        x = pd.concat(parts, axis=1)
        return x.to_numpy(dtype=float), list(x.columns)

    def _split(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if self.holdout_from is None:
            every = np.ones(len(frame), bool)
            return every, every
        t = frame[self.time]
        try:
            train = (t < self.holdout_from).to_numpy()
        except TypeError:
            raise DesignError(
                f"holdout_from = {self.holdout_from!r} cannot be compared with column "
                f"{self.time!r} ({t.dtype})",
                hint="give a value of the same type as the time column, e.g. 2021",
                column="holdout_from",
            ) from None
        if not train.any() or train.all():
            raise DataError(
                f"holdout_from = {self.holdout_from!r} leaves "
                f"{'no rows to fit' if not train.any() else 'no rows to evaluate'} the risk "
                f"model {'on' if not train.any() else ''}".rstrip(),
                hint=f"choose a value inside the range of {self.time!r} ({t.min()} to {t.max()})",
                column="holdout_from",
            )
        return train, ~train

    # ------------------------------------------------------------------ fit
    def _prepare(self, data: pd.DataFrame) -> dict[str, Any]:
        """Fit the risk model and return the persons' counts, the fit and what they need."""
        frame = self._frame(data)
        x, names = self._design(frame)
        y = frame[self.outcome].to_numpy(dtype=float)
        train, window = self._split(frame)
        groups = pd.factorize(frame[self.unit].astype(str))[0]
        beta, vcov = _risk_model(x[train], y[train], names, groups[train])

        units = frame[self.unit].to_numpy()[window]
        unit_labels, unit_codes = np.unique(units.astype(str), return_inverse=True)
        n_units = len(unit_labels)
        if n_units < 2 * self.k + 1:
            raise DataError(
                f"{n_units} municipalities are too few to select {self.k} above and {self.k} below",
                hint="use a smaller k, or more municipalities",
                column="k",
            )
        person = (
            frame[self.cluster].to_numpy()[window]
            if self.cluster is not None
            else np.arange(int(window.sum()))
        )
        # persons within municipalities (a person who moves is one person in each)
        pair = pd.MultiIndex.from_arrays([unit_codes, person])
        person_codes, pairs = pd.factorize(pair, sort=True)
        person_unit = np.asarray(pairs.get_level_values(0), dtype=np.int64)
        n_persons = len(person_unit)
        x_w, y_w = x[window], y[window]
        y_person = np.bincount(person_codes, weights=y_w, minlength=n_persons)

        def expected(b: np.ndarray) -> np.ndarray:
            return np.bincount(person_codes, weights=_expit(x_w @ b), minlength=n_persons)

        e_person = expected(beta)
        fit = _shrink(y_person, e_person, person_unit, n_units, None)
        if self.prior == "npmle":
            fit = _with_npmle(fit)
        return {
            "frame": frame,
            "names": names,
            "train": train,
            "window": window,
            "beta": beta,
            "vcov": vcov,
            "expected": expected,
            "y_person": y_person,
            "person_unit": person_unit,
            "n_persons": n_persons,
            "unit_labels": unit_labels,
            "fit": fit,
        }

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        prep = self._prepare(data)
        frame, names, train, window = prep["frame"], prep["names"], prep["train"], prep["window"]
        beta, vcov, expected = prep["beta"], prep["vcov"], prep["expected"]
        y_person, person_unit, fit = prep["y_person"], prep["person_unit"], prep["fit"]
        unit_labels, n_persons = prep["unit_labels"], prep["n_persons"]
        n_units = len(unit_labels)
        observed = np.bincount(person_unit, weights=y_person, minlength=n_units)
        persons = np.bincount(person_unit, minlength=n_units)
        ratio_hat = fit["mean"] / fit["level"]

        method = ctx.inference.method if ctx.inference is not None else "bootstrap"
        reps = ctx.reps or (ctx.inference.reps if ctx.inference is not None else None)
        reps = int(reps or self.default_reps)
        rng = ctx.rng
        j = self.posterior_draws
        if method == "bootstrap":
            boot = _bootstrap(
                rng, reps, j, self.k, beta, vcov, expected, y_person, person_unit, fit
            )
        else:
            boot = _posterior_only(rng, reps, j, self.k, fit)
        if "npmle" in fit:  # exact in each replicate: their average
            p_above, p_below = boot["p_above"].mean(axis=0), boot["p_below"].mean(axis=0)
        else:
            p_above, p_below = _rank_probabilities(boot["theta"], self.k)
        stable_above, stable_below = _rank_shares(boot.get("selected_means"), self.k)

        order = np.argsort(-ratio_hat, kind="stable")
        above_idx, below_idx = order[: self.k], order[::-1][: self.k]
        table, draw_cols = self._rows(
            unit_labels, ratio_hat, fit, boot, p_above, p_below, above_idx, below_idx, j
        )
        municipalities = self._municipalities(
            unit_labels,
            persons,
            observed,
            fit,
            p_above,
            p_below,
            stable_above,
            stable_below,
            above_idx,
            below_idx,
        )
        if "npmle" in fit:
            description = (
                f"posteriors at the nonparametric prior (NPMLE) integrated over the risk "
                f"model's coefficients ({reps} replicates; p_above / p_below exact in each, "
                f"ratios {j} draws each): percentile intervals; prior_cv: gamma profile "
                f"likelihood; level: bootstrap of persons within municipalities"
                if method == "bootstrap"
                else "posterior at the nonparametric prior (NPMLE) only; p_above / p_below exact"
            )
        else:
            description = (
                f"posterior draws integrated over the risk model's coefficients and the prior's "
                f"spread ({reps} replicates x {j} draws): percentile intervals; prior_cv: "
                f"profile likelihood; level: bootstrap of persons within municipalities"
                if method == "bootstrap"
                else f"posterior at the fitted prior only ({reps * j} draws)"
            )
        if method == "bootstrap":
            terms = table["term"].str.partition(":")[0].to_numpy()
            chance = self.k / n_units
            null = np.select(
                [terms == "prior_cv", np.isin(terms, ["p_above", "p_below"])], [0.0, chance], 1.0
            )
            uncertainty: Any = _SelectionDraws(
                draw_cols - table["estimate"].to_numpy()[None, :],
                np.std(draw_cols, axis=0, ddof=1),
                interval="percentile",
                method="bootstrap",
                reps=len(draw_cols),
                seed=ctx.seed,
                null=null,
                basic=terms == "level",
                profile=terms == "prior_cv",
                cv=_CvProfile(fit["observed"] / fit["phi"], fit["expected"] / fit["phi"]),
            )
        else:
            uncertainty = NoInference(
                "inference='none': p_above / p_below come from the posterior at the fitted "
                "prior, without its uncertainty"
            )
        info = {
            "n_obs": len(frame),
            "n_fit_rows": int(train.sum()),
            "n_evaluation_rows": int(window.sum()),
            "n_units": n_units,
            "n_persons": n_persons,
            "k": self.k,
            "holdout_from": self.holdout_from,
            "dispersion": fit["phi"],
            "level": fit["level"],
            "prior_mean": fit["prior"].mean,
            "prior_sd": fit["prior"].sd,
            "prior": self.prior,
            **(
                {
                    "npmle_mean": fit["npmle"].mean,
                    "npmle_sd": fit["npmle"].sd,
                    "npmle_support_points": int((fit["npmle"].mass > 0).sum()),
                }
                if "npmle" in fit
                else {}
            ),
            "risk_model": dict(zip(names, map(float, beta), strict=True)),
            "anonymised": self.anonymise,
            "selected_above": [] if self.anonymise else list(unit_labels[above_idx]),
            "selected_below": [] if self.anonymise else list(unit_labels[below_idx]),
            "roles": {
                "outcome": self.outcome,
                "unit": self.unit,
                "time": self.time,
                "cluster": self.cluster,
                "covariates": list(self.covariates),
            },
            "seed": ctx.seed,
        }
        return SelectionResult(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(
                method,
                description,
                reason="requested" if ctx.inference is not None else "the estimator's default",
                reps=reps,
            ),
            info=info,
            level=ctx.level,
            uncertainty=uncertainty,
            extras={"municipalities": municipalities},
            _funnel=pd.DataFrame(
                {
                    "unit": unit_labels.astype(str),
                    "expected": fit["expected"],
                    "raw_ratio": observed / fit["expected"] / fit["level"],
                    "selected": municipalities_selected(n_units, above_idx, below_idx),
                    "suppressed": (observed < self.min_cell_size) | (persons < self.min_cell_size),
                }
            ),
        )

    def _rows(
        self,
        labels: np.ndarray,
        ratio_hat: np.ndarray,
        fit: dict[str, Any],
        boot: dict[str, np.ndarray],
        p_above: np.ndarray,
        p_below: np.ndarray,
        above_idx: np.ndarray,
        below_idx: np.ndarray,
        j: int,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Return the result rows and their draws (one column per row)."""
        prior = fit["prior"]
        terms = ["level", "prior_cv"]
        estimates = [fit["level"], prior.sd / prior.mean]
        draws = [np.repeat(boot["level"], j), np.repeat(boot["prior_cv"], j)]
        pa_rep = np.repeat(boot["p_above"], j, axis=0)
        pb_rep = np.repeat(boot["p_below"], j, axis=0)

        def add(name: str, i: int, kinds: tuple[str, ...]) -> None:
            for kind in kinds:
                terms.append(f"{kind}:{name}")
                if kind == "ratio":
                    estimates.append(ratio_hat[i])
                    draws.append(boot["theta"][:, i])
                elif kind == "p_above":
                    estimates.append(p_above[i])
                    draws.append(pa_rep[:, i])
                else:
                    estimates.append(p_below[i])
                    draws.append(pb_rep[:, i])

        if self.anonymise:
            for r, i in enumerate(above_idx, start=1):
                add(f"above-{r}", i, ("ratio", "p_above"))
            for r, i in enumerate(below_idx, start=1):
                add(f"below-{r}", i, ("ratio", "p_below"))
        else:
            for i, name in enumerate(labels):
                add(str(name), i, ("ratio", "p_above", "p_below"))
        table = pd.DataFrame(
            {"term": terms, "estimate": np.asarray(estimates, float), "std_error": np.nan}
        )
        return table, np.column_stack(draws)

    def _municipalities(
        self,
        labels: np.ndarray,
        persons: np.ndarray,
        observed: np.ndarray,
        fit: dict[str, Any],
        p_above: np.ndarray,
        p_below: np.ndarray,
        stable_above: np.ndarray | None,
        stable_below: np.ndarray | None,
        above_idx: np.ndarray,
        below_idx: np.ndarray,
    ) -> pd.DataFrame:
        """Per-municipality facts for users and the funnel plot; small counts suppressed."""
        selected = municipalities_selected(len(labels), above_idx, below_idx)
        expected = fit["expected"]
        out = pd.DataFrame(
            {
                "unit": labels.astype(str),
                "n_persons": persons.astype(float),
                "observed": observed,
                "expected": expected,
                "raw_ratio": observed / expected / fit["level"],
                "ratio": fit["mean"] / fit["level"],
                "p_above": p_above,
                "p_below": p_below,
                "selected_share_above": np.nan if stable_above is None else stable_above,
                "selected_share_below": np.nan if stable_below is None else stable_below,
                "selected": selected,
            }
        )
        small = (observed < self.min_cell_size) | (persons < self.min_cell_size)
        out["suppressed"] = small
        out.loc[small, ["n_persons", "observed", "raw_ratio"]] = np.nan
        if self.anonymise:
            rank = {int(i): f"above-{r}" for r, i in enumerate(above_idx, start=1)}
            rank |= {int(i): f"below-{r}" for r, i in enumerate(below_idx, start=1)}
            keep = sorted(rank)
            out = out.iloc[keep].assign(unit=[rank[i] for i in keep])
            out = out.drop(columns=["n_persons", "observed", "expected", "raw_ratio"])
            out = out.sort_values("unit").reset_index(drop=True)
        return out


# --------------------------------------------------------------------------- numerics
def municipalities_selected(n: int, above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Return ``"above"``, ``"below"`` or ``""`` for each of ``n`` units."""
    out = np.full(n, "", dtype=object)
    out[above] = "above"
    out[below] = "below"
    return out


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _risk_model(
    x: np.ndarray, y: np.ndarray, names: list[str], groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the logit risk model with statsmodels; return coefficients and covariance.

    The covariance is cluster-robust by municipality: the structural factors vary only
    between municipalities, and what no factor explains (each municipality's own
    deviation, the very thing selected on) makes rows of a municipality dependent, so
    the model-based covariance would understate how uncertain their coefficients are.
    """
    from statsmodels.discrete.discrete_model import Logit
    from statsmodels.tools.sm_exceptions import PerfectSeparationError

    constant = [n for n, sd in zip(names[1:], x[:, 1:].std(axis=0), strict=True) if sd == 0]
    if constant:
        raise DataError(
            f"covariate(s) {', '.join(constant)} do not vary in the rows the risk model is "
            "fitted on",
            hint="drop them from covariates (e.g. a structural factor of one municipality)",
            column="covariates",
        )
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise DataError(
            "the covariates are collinear (one is a combination of others)",
            hint=f"drop one of: {', '.join(names[1:])}",
            column="covariates",
        )
    if y.min() == y.max():
        raise DataError(
            "the outcome does not vary in the rows the risk model is fitted on",
            hint="check the outcome column and holdout_from",
            column="outcome",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = Logit(y, x).fit(
                method="newton",
                disp=0,
                maxiter=100,
                cov_type="cluster",
                cov_kwds={"groups": groups},
            )
    except (PerfectSeparationError, np.linalg.LinAlgError) as err:
        raise ConvergenceError(
            f"the logit risk model cannot be fitted: {err}",
            hint="a covariate predicts the outcome perfectly; merge its rare levels",
            column="covariates",
        ) from None
    if not res.mle_retvals.get("converged", True):
        raise ConvergenceError(
            "the logit risk model did not converge in 100 Newton steps",
            hint="check for covariates that (almost) predict the outcome perfectly",
            column="covariates",
        )
    return np.asarray(res.params, float), np.asarray(res.cov_params(), float)


def _shrink(
    y_person: np.ndarray,
    e_person: np.ndarray,
    person_unit: np.ndarray,
    n_units: int,
    weights: np.ndarray | None,
) -> dict[str, Any]:
    """Return counts, overdispersion, fitted prior and posterior of every municipality."""
    w = 1.0 if weights is None else weights
    observed = np.bincount(person_unit, weights=w * y_person, minlength=n_units)
    expected = np.bincount(person_unit, weights=w * e_person, minlength=n_units)
    phi = shrinkage.dispersion(y_person, e_person, person_unit, n_units, weights)
    phi = max(phi, 1e-6)
    prior = shrinkage.fit_prior(observed / phi, expected / phi)
    shape, rate = shrinkage.posterior(prior, observed / phi, expected / phi)
    return {
        "observed": observed,
        "expected": expected,
        "phi": phi,
        "prior": prior,
        "shape": shape,
        "rate": rate,
        "mean": shape / rate,
        "level": float(observed.sum() / expected.sum()),
    }


def _with_npmle(fit: dict[str, Any]) -> dict[str, Any]:
    """Return ``fit`` with the NPMLE prior and its posterior means (``mean``) added.

    The gamma prior stays in ``fit["prior"]``: ``prior_cv`` and its profile-likelihood
    interval are those of the gamma model.
    """
    phi = fit["phi"]
    o, e = fit["observed"] / phi, fit["expected"] / phi
    prior = npmle.fit_npmle(o, e)
    post = prior.posterior(o, e)
    return {**fit, "npmle": prior, "posterior": post, "mean": post @ prior.support}


def _bootstrap(
    rng: np.random.Generator,
    reps: int,
    j: int,
    k: int,
    beta: np.ndarray,
    vcov: np.ndarray,
    expected: Any,
    y_person: np.ndarray,
    person_unit: np.ndarray,
    fit: dict[str, Any],
    *,
    risk_draws: bool = True,
    prior_draws: str = "likelihood",
) -> dict[str, np.ndarray]:
    """Replicates of the risk model and the prior; posterior draws given the data.

    In each replicate the risk model's coefficients are drawn from their sampling
    distribution (``risk_draws``), which gives the expected counts, and the prior's
    coefficient of variation from its marginal likelihood (:func:`shrinkage.cv_draws`;
    the prior's mean is then the one that maximises the likelihood); ratios are drawn
    from every municipality's gamma posterior given the observed counts. Persons are
    resampled within municipalities for the ``level`` and for the stability of the
    selection rule (``selected_means``). ``prior_draws="resample"`` (the earlier
    method, kept for the calibration benchmark) takes the prior refitted to the
    resampled persons instead: resampling adds noise to each municipality's ratio,
    which widens the refitted prior, so its posteriors are too flat. With the NPMLE
    prior (``"npmle" in fit``) each replicate is :func:`_npmle_replicate`.
    """
    observed, phi = fit["observed"], fit["phi"]
    n_units = len(observed)
    order = np.argsort(person_unit, kind="stable")
    sizes = np.bincount(person_unit, minlength=n_units)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    unit_of_draw = np.repeat(np.arange(n_units), sizes)
    chol = np.linalg.cholesky(vcov + 1e-12 * np.eye(len(beta)))
    cv = shrinkage.cv_draws(rng, reps, observed / phi, fit["expected"] / phi)
    theta = np.empty((reps * j, n_units))
    level, prior_cv = np.empty(reps), np.empty(reps)
    p_above = np.empty((reps, n_units))
    p_below = np.empty((reps, n_units))
    means = np.empty((reps, n_units))
    n = len(person_unit)
    for r in range(reps):
        b = beta + chol @ rng.standard_normal(len(beta)) if risk_draws else beta
        e_person = expected(b)
        pick = order[starts[unit_of_draw] + (rng.random(n) * sizes[unit_of_draw]).astype(int)]
        weights = np.bincount(pick, minlength=n).astype(float)
        if "npmle" in fit:
            level[r], prior_cv[r], means[r], theta[r * j : (r + 1) * j], p_above[r], p_below[r] = (
                _npmle_replicate(rng, j, k, fit, e_person, y_person, person_unit, weights, cv[r])
            )
            continue
        e_units = np.bincount(person_unit, weights=e_person, minlength=n_units)
        resampled = _shrink(y_person, e_person, person_unit, n_units, weights)
        means[r] = resampled["mean"]
        if prior_draws == "resample":
            prior, phi_r = resampled["prior"], resampled["phi"]
        else:
            prior, phi_r = shrinkage.prior_at_cv(cv[r], observed / phi, e_units / phi), phi
        # the posterior given the observed counts, at this replicate's prior and E
        shape, rate = shrinkage.posterior(prior, observed / phi_r, e_units / phi_r)
        draws = rng.gamma(shape, 1.0 / rate, size=(j, n_units))
        theta[r * j : (r + 1) * j] = draws * (e_units.sum() / observed.sum())
        level[r], prior_cv[r] = resampled["level"], prior.sd / prior.mean
        p_above[r], p_below[r] = _rank_probabilities(draws, k)
    return {
        "theta": theta,
        "level": level,
        "prior_cv": prior_cv,
        "p_above": p_above,
        "p_below": p_below,
        "selected_means": means,
    }


def _npmle_replicate(
    rng: np.random.Generator,
    j: int,
    k: int,
    fit: dict[str, Any],
    e_person: np.ndarray,
    y_person: np.ndarray,
    person_unit: np.ndarray,
    weights: np.ndarray,
    cv: float,
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One replicate with the NPMLE prior: posteriors at this replicate's expected counts.

    The expected counts of the drawn risk model are rescaled to the total of the fitted
    ones (a shift of the whole country is the level's, not a municipality's), the prior
    is held at the NPMLE, and the posteriors given the observed counts give exact
    probabilities of being among the ``k`` highest / lowest and ``j`` ratio draws. The
    selection rule is applied to the persons resampled within municipalities (posterior
    means at the same prior) for its stability; ``cv`` is the gamma model's spread drawn
    from its profile likelihood (the ``prior_cv`` row).
    """
    phi, prior, observed = fit["phi"], fit["npmle"], fit["observed"]
    n_units = len(observed)
    e_units = np.bincount(person_unit, weights=e_person, minlength=n_units)
    e_rep = e_units * (fit["expected"].sum() / e_units.sum())
    post = prior.posterior(observed / phi, e_rep / phi)
    above, below = npmle.rank_probabilities(post, k)
    draws = npmle.sample_posterior(rng, post, prior.support, j) / fit["level"]
    o_w = np.bincount(person_unit, weights=weights * y_person, minlength=n_units)
    e_w = np.bincount(person_unit, weights=weights * e_person, minlength=n_units)
    mean_w = prior.posterior(o_w / phi, np.maximum(e_w, 1e-12) / phi) @ prior.support
    return float(o_w.sum() / e_w.sum()), float(cv), mean_w, draws, above, below


def _posterior_only(
    rng: np.random.Generator, reps: int, j: int, k: int, fit: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Draws from the posterior at the fitted prior (no bootstrap)."""
    if "npmle" in fit:
        prior, post = fit["npmle"], fit["posterior"]
        above, below = npmle.rank_probabilities(post, k)
        return {
            "theta": npmle.sample_posterior(rng, post, prior.support, reps * j) / fit["level"],
            "level": np.full(reps, fit["level"]),
            "prior_cv": np.full(reps, fit["prior"].sd / fit["prior"].mean),
            "p_above": np.tile(above, (reps, 1)),
            "p_below": np.tile(below, (reps, 1)),
        }
    theta = rng.gamma(fit["shape"], 1.0 / fit["rate"], size=(reps * j, len(fit["shape"])))
    theta /= fit["level"]
    p_above, p_below = _rank_probabilities(theta, k)
    return {
        "theta": theta,
        "level": np.full(reps, fit["level"]),
        "prior_cv": np.full(reps, fit["prior"].sd / fit["prior"].mean),
        "p_above": np.tile(p_above, (reps, 1)),
        "p_below": np.tile(p_below, (reps, 1)),
    }


def _rank_probabilities(theta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Share of the rows of ``theta`` (draws x units) in which each unit is in the top/bottom k."""
    ranks = np.argsort(np.argsort(theta, axis=1, kind="stable"), axis=1, kind="stable")
    n_units = theta.shape[1]
    return (ranks >= n_units - k).mean(axis=0), (ranks < k).mean(axis=0)


def _rank_shares(means: np.ndarray | None, k: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Share of bootstrap replicates in which the selection rule picks each unit."""
    if means is None:
        return None, None
    return _rank_probabilities(means, k)
