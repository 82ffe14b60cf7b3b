"""trial.ITT and the trial simulator: equivalences, randomization inference, bounds, errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import DataError, DesignError, EvalkitError, RowsDroppedWarning
from evalkit.simulate import get
from evalkit.trial import ITT, IV2SLS

COVS = ["age", "female", "health_problem", "prior_months"]


@pytest.fixture(scope="module")
def trial():
    return get("integration_trial")(seed=4)


def test_without_covariates_itt_is_the_difference_in_means(trial):
    df = trial.data
    res = ITT(outcome="work_12m", treatment="assigned").fit(df, inference="hetero")
    y, z = df["work_12m"], df["assigned"]
    assert res.estimate("assigned") == pytest.approx(y[z == 1].mean() - y[z == 0].mean(), 1e-12)


@pytest.mark.parametrize("method", ["hetero", "cluster"])
def test_standard_errors_equal_statsmodels(trial, method):
    import statsmodels.api as sm

    df = trial.data
    res = ITT(outcome="work_12m", treatment="assigned", covariates=COVS, cluster="office").fit(
        df, inference=method
    )
    x = sm.add_constant(df[["assigned", *COVS]].astype(float))
    if method == "cluster":
        ols = sm.OLS(df["work_12m"].astype(float), x).fit(
            cov_type="cluster", cov_kwds={"groups": df["office"]}
        )
    else:
        ols = sm.OLS(df["work_12m"].astype(float), x).fit(cov_type="HC1")
    assert res.estimate("assigned") == pytest.approx(ols.params["assigned"], rel=1e-10)
    assert res.std_error("assigned") == pytest.approx(ols.bse["assigned"], rel=1e-10)
    assert res.info["covariates"]["age"] == pytest.approx(ols.params["age"], rel=1e-10)


def _tiny() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    office = np.repeat(np.arange(6), 5)
    z = np.isin(office, [0, 2, 3]).astype(int)
    x = rng.normal(size=30)
    y = 0.5 * z + 0.3 * x + rng.normal(size=30)
    return pd.DataFrame({"y": y, "z": z, "x": x, "office": office})


def test_randomization_p_value_equals_brute_force_over_all_20_assignments():
    df = _tiny()
    res = ITT(outcome="y", treatment="z", covariates=["x"], cluster="office").fit(
        df, inference="permutation", seed=1
    )
    # brute force: every choice of 3 treated offices of 6, covariate-adjusted OLS coefficient
    x = np.column_stack([np.ones(30), df["x"]])

    def coef(z):
        design = np.column_stack([z, x])
        return np.linalg.lstsq(design, df["y"], rcond=None)[0][0]

    actual = coef(df["z"].to_numpy())
    stats = [
        coef(np.isin(df["office"], chosen).astype(float))
        for chosen in itertools.combinations(range(6), 3)
    ]
    p = np.mean(np.abs(stats) >= abs(actual) - 1e-12)
    tidy = res.tidy()
    assert res.inference.reps == 20
    assert tidy.loc[0, "p_value"] == pytest.approx(p)
    assert res.estimate("z") == pytest.approx(actual, rel=1e-10)
    assert tidy.loc[0, "conf_low"] <= actual <= tidy.loc[0, "conf_high"]


def test_randomization_needs_whole_clusters_assigned():
    df = _tiny()
    df.loc[0, "z"] = 1 - df.loc[0, "z"]
    with pytest.raises(DesignError, match="unit of randomisation"):
        ITT(outcome="y", treatment="z", cluster="office").fit(df, inference="permutation")


def test_person_randomised_permutation_runs_without_cluster():
    sim = get("integration_trial")(seed=5, n_offices=10, persons_per_office=30, design="person")
    res = ITT(outcome="work_12m", treatment="assigned", covariates=COVS).fit(
        sim.data, inference="permutation", reps=199, seed=3
    )
    assert res.inference.reps == 200
    assert 0 < res.tidy().loc[0, "p_value"] <= 1


def test_spillover_bound_row_and_its_interval(trial):
    est = ITT(
        outcome="work_12m",
        treatment="assigned",
        covariates=COVS,
        cluster="office",
        spillover_share=0.4,
    )
    tidy = est.fit(trial.data).tidy().set_index("term")
    low, high = tidy.loc["assigned"], tidy.loc["assigned:no_spillover_bound"]
    assert high["estimate"] == pytest.approx(low["estimate"] / 0.6)
    assert high["conf_high"] == pytest.approx(low["conf_high"] / 0.6)
    assert high["std_error"] == pytest.approx(low["std_error"] / 0.6)
    # same sign, same p-value: the bound is a rescaling of the ITT
    assert high["p_value"] == pytest.approx(low["p_value"])


def test_truths_of_the_simulator_are_consistent(trial):
    t = trial.truth_terms
    fs = trial.parameters["first_stage"]
    assert t[("work_12m", "received", "all")] == pytest.approx(
        t[("work_12m", "assigned", "all")] / fs
    )
    # spillover raises the controls' outcomes, so it biases both effects towards zero
    assert t[("work_12m", "assigned", "all")] < t[("work_12m", "assigned:no_spillover", "all")]
    free = get("integration_trial")(seed=4, spillover=0.0).truth_terms
    assert free[("work_12m", "assigned", "all")] == pytest.approx(
        free[("work_12m", "assigned:no_spillover", "all")]
    )
    assert trial.truth_for("assigned", "work_12m") == t[("work_12m", "assigned", "all")]


def test_same_seed_same_data_and_caller_frame_untouched(trial):
    again = get("integration_trial")(seed=4)
    pd.testing.assert_frame_equal(trial.data, again.data)
    df = trial.data.copy()
    before = df.copy()
    ITT(outcome="work_12m", treatment="assigned", cluster="office").fit(df, inference="permutation")
    pd.testing.assert_frame_equal(df, before)


def test_rows_with_missing_values_are_dropped_and_counted():
    df = _tiny()
    df.loc[[1, 7], "x"] = np.nan
    with pytest.warns(RowsDroppedWarning, match="dropped 2 of 30"):
        res = ITT(outcome="y", treatment="z", covariates=["x"], cluster="office").fit(df)
    assert res.info["n_obs"] == 28


@pytest.mark.parametrize(
    ("options", "fit", "match"),
    [
        ({"spillover_share": 1.0}, {}, "spillover_share"),
        ({"covariates": ["y"]}, {}, "covariate 'y'"),
        ({"cluster": None}, {"inference": "cluster"}, "unit of randomisation"),
        ({"outcome": "yy"}, {}, "did you mean 'y'"),
    ],
)
def test_bad_input_raises_evalkit_errors(options, fit, match):
    with pytest.raises(EvalkitError, match=match):
        ITT(**{"outcome": "y", "treatment": "z", "cluster": "office", **options}).fit(
            _tiny(), **fit
        )


def test_constant_assignment_is_refused():
    df = _tiny().assign(z=1)
    with pytest.raises(DataError, match="constant"):
        ITT(outcome="y", treatment="z").fit(df)


def test_weak_first_stage_warns():
    rng = np.random.default_rng(3)
    z = rng.integers(0, 2, 200)
    d = (rng.uniform(size=200) < 0.3 + 0.02 * z).astype(int)
    df = pd.DataFrame({"y": rng.normal(size=200), "d": d, "z": z})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        IV2SLS(outcome="y", treatment="d", instrument="z").fit(df)
    assert any("weak first stage" in str(w.message) for w in caught)


def test_iv_spillover_bound(trial):
    res = IV2SLS(
        outcome="work_12m",
        treatment="received",
        instrument="assigned",
        covariates=COVS,
        cluster="office",
        spillover_share=0.5,
    ).fit(trial.data)
    tidy = res.tidy().set_index("term")
    assert tidy.loc["received:no_spillover_bound", "estimate"] == pytest.approx(
        2 * tidy.loc["received", "estimate"]
    )
    assert res.vcov is not None and res.vcov.shape == (len(tidy), len(tidy))
