"""Where theory says the staggered-adoption estimators must agree, they do.

With parallel trends, no anticipation and effects that depend on event time only (the
same in every cohort), Callaway-Sant'Anna, Sun-Abraham, the imputation estimator and the
dynamic TWFE event study all identify the same ATT(e). Without noise they recover it
exactly; with noise they stay close, and they part ways once effects differ by cohort,
where the event-study TWFE is contaminated (Sun and Abraham 2021).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from evalkit.did import CallawaySantAnna, EventStudy, ImputationDiD, SunAbraham

ROLES = dict(outcome="y", unit="unit", time="time", cohort="cohort")


def _panel(noise: float, cohort_specific: bool = False, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_units, n_periods = 90, 8
    unit = np.repeat(np.arange(n_units), n_periods)
    time = np.tile(np.arange(2001, 2001 + n_periods), n_units)
    cohort = np.array([0, 2004, 2006])[np.arange(n_units) % 3][unit]
    e = time - cohort
    tau = np.where((cohort > 0) & (e >= 0), 0.5 + 0.1 * e, 0.0)
    if cohort_specific:
        tau = tau * np.where(cohort == 2004, 2.0, 0.5)
    y = rng.normal(size=n_units)[unit] + rng.normal(size=n_periods)[time - 2001] + tau
    y = y + noise * rng.normal(size=len(unit))
    return pd.DataFrame({"unit": unit, "time": time, "cohort": cohort, "y": y})


def _post_effects(df: pd.DataFrame) -> dict[str, pd.Series]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {
            "cs": CallawaySantAnna(**ROLES).fit(df).aggregate("event_time").tidy(),
            "sa": SunAbraham(**ROLES).fit(df).tidy(),
            "imputation": ImputationDiD(**ROLES).fit(df).tidy(),
            "event_study": EventStudy(**ROLES).fit(df).tidy(),
        }
    out = {}
    for name, tidy in fits.items():
        rows = tidy[tidy["term"] == "ATT(e)"]
        rows = rows[rows["event_time"].astype(float) >= 0]
        out[name] = pd.Series(
            rows["estimate"].to_numpy(), index=rows["event_time"].astype(int).to_numpy()
        )
    return out


def test_homogeneous_effects_without_noise_are_recovered_exactly_by_all():
    effects = _post_effects(_panel(noise=0.0))
    truth = pd.Series(0.5 + 0.1 * np.arange(5), index=np.arange(5))
    for name, est in effects.items():
        pd.testing.assert_series_equal(
            est.sort_index(), truth, check_names=False, atol=1e-10, obj=name
        )


def test_homogeneous_effects_with_noise_agree_closely():
    effects = _post_effects(_panel(noise=0.3, seed=1))
    base = effects["cs"].sort_index()
    for name in ("sa", "imputation", "event_study"):
        gap = (effects[name].sort_index() - base).abs().max()
        assert gap < 0.1, (name, gap)


def test_cohort_specific_effects_separate_the_event_study_from_the_robust_estimators():
    effects = _post_effects(_panel(noise=0.0, cohort_specific=True))
    cs, sa, imp, es = (effects[k].sort_index() for k in ("cs", "sa", "imputation", "event_study"))
    # the heterogeneity-robust estimators still agree exactly at every event time
    pd.testing.assert_series_equal(cs, sa, check_names=False, atol=1e-10)
    pd.testing.assert_series_equal(cs, imp, check_names=False, atol=1e-10)
    # the dynamic TWFE does not
    assert (es - cs).abs().max() > 1e-3
