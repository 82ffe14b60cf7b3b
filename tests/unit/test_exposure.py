"""exposure: the matrix (shrinkage, split-half reliability) and JobExposure's effect."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.dml import PLR
from evalkit.errors import DataError, DesignError, RowsDroppedWarning
from evalkit.exposure import JobExposure
from evalkit.exposure.matrix import build_matrix, split_half_reliability
from evalkit.simulate import get

COVS = ["age", "female", "low_education"]


def test_shrinkage_by_the_textbook_formula():
    rng = np.random.default_rng(0)
    occ = np.repeat(list("abcdefgh"), [2, 3, 5, 8, 13, 21, 34, 55])
    val = rng.normal(size=len(occ)) + np.repeat(
        rng.normal(size=8) * 2, [2, 3, 5, 8, 13, 21, 34, 55]
    )
    m = build_matrix(occ, val)
    frame = pd.DataFrame({"o": occ, "v": val})
    n = frame.groupby("o")["v"].size()
    mean = frame.groupby("o")["v"].mean()
    s2 = frame.groupby("o")["v"].var(ddof=1).mul(n - 1).sum() / (len(frame) - 8)
    tau2 = mean.var(ddof=1) - (s2 / n).mean()
    grand = frame["v"].mean()
    w = tau2 / (tau2 + s2 / n)
    np.testing.assert_allclose(m.table["shrunk"], w * mean + (1 - w) * grand, rtol=1e-12)
    assert m.tau2 == pytest.approx(tau2) and m.s2 == pytest.approx(s2)
    # small occupations are pulled towards the mean more than large ones
    assert m.table["weight"].is_monotonic_increasing


def test_no_between_variance_shrinks_everything_to_the_mean():
    rng = np.random.default_rng(1)
    occ = np.repeat(np.arange(10), 5)
    val = rng.normal(size=50) * 0.01 + np.tile([0.0, 1.0, 2.0, 3.0, 4.0], 10)
    m = build_matrix(occ, val)
    assert m.tau2 == 0.0
    np.testing.assert_allclose(m.table["shrunk"], val.mean())


def test_split_half_reliability_limits():
    rng = np.random.default_rng(2)
    occ = np.repeat(np.arange(40), 8)
    exact = np.repeat(rng.normal(size=40), 8)  # no within-occupation variation
    r, full = split_half_reliability(occ, exact, np.random.default_rng(0))
    assert r == pytest.approx(1.0) and full == pytest.approx(1.0)
    noise = rng.normal(size=320)  # occupations do not differ at all
    r0, _ = split_half_reliability(occ, noise, np.random.default_rng(0), reps=50)
    assert abs(r0) < 0.15


@pytest.fixture(scope="module")
def jem():
    return get("integration_jem")(seed=3, n_survey=800, n_register=1000)


def test_effect_equals_plr_on_the_linked_register(jem):
    df = jem.data
    est = JobExposure(
        outcome="sickness_days",
        exposure="physical_strain",
        occupation="occupation",
        sample="source",
        covariates=COVS,
        learner="logit",
        n_folds=3,
    )
    res = est.fit(df, seed=5)
    survey = df[df["source"] == "survey"]
    matrix = build_matrix(survey["occupation"].to_numpy(), survey["physical_strain"].to_numpy())
    reg = df[df["source"] == "register"].copy()
    reg["physical_strain"] = reg["occupation"].map(matrix.table["shrunk"])
    reg = reg.dropna(subset=["physical_strain"])
    direct = PLR(
        outcome="sickness_days",
        treatment="physical_strain",
        covariates=COVS,
        cluster="occupation",
        learner="logit",
        n_folds=3,
    ).fit(reg[["sickness_days", "physical_strain", "occupation", *COVS]], seed=5)
    assert res.estimate("physical_strain") == pytest.approx(direct.estimate(), rel=1e-10)
    # the standard error adds the matrix's own sampling error to PLR's
    extra = res.info["matrix_std_error"]
    assert extra > 0
    assert res.std_error("physical_strain") == pytest.approx(
        np.hypot(direct.std_error(), extra), rel=1e-10
    )
    known = est.set_params(matrix_reps=0).fit(df, seed=5)
    assert known.std_error() == pytest.approx(direct.std_error(), rel=1e-10)
    assert known.info["matrix_std_error"] is None
    assert res.inference.method == "cluster"
    assert "Berkson" in res.info["berkson"]
    assert 0 < res.info["split_half_reliability"] < res.info["spearman_brown"] < 1
    # the matrix shown leaves out occupations with fewer than min_cell_size respondents
    shown = res.extras["matrix"]
    sizes = survey["occupation"].value_counts()
    assert set(shown.index) == set(sizes[sizes >= 5].index)
    assert "respondents" not in shown.columns


def test_register_occupations_missing_from_the_survey_are_dropped_and_counted(jem):
    df = jem.data.copy()
    df.loc[df.index[:7], "occupation"] = "9999"  # register rows come first
    surveyed = set(df.loc[df["source"] == "survey", "occupation"])
    reg = df[df["source"] == "register"]
    missing = int((~reg["occupation"].isin(surveyed)).sum())
    assert missing >= 7
    with pytest.warns(RowsDroppedWarning, match=f"dropped {missing} of 1000 register rows"):
        res = JobExposure(
            outcome="waa_entry",
            exposure="physical_strain",
            occupation="occupation",
            sample="source",
            covariates=COVS,
            learner="logit",
            n_folds=2,
        ).fit(df, seed=1)
    assert res.info["share_register_linked"] == pytest.approx(1 - missing / 1000)


def test_bad_input(jem):
    opts = dict(
        outcome="waa_entry",
        exposure="physical_strain",
        occupation="occupation",
        sample="source",
        covariates=COVS,
    )
    with pytest.raises(DataError, match="survey rows"):
        JobExposure(**opts, survey="questionnaire").fit(jem.data)
    with pytest.raises(DataError, match="did you mean 'occupation'"):
        JobExposure(**{**opts, "occupation": "occupations"}).fit(jem.data)
    with pytest.raises(DesignError, match="covariates"):
        JobExposure(**{**opts, "covariates": []})
    with pytest.raises(DesignError, match="shrink"):
        JobExposure(**opts, shrink="yes")
    before = jem.data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        JobExposure(**opts, learner="logit", n_folds=2).fit(jem.data, seed=1)
    pd.testing.assert_frame_equal(jem.data, before)
