"""did.ImputationDiD against a slow, by-definition implementation; equivalences; options."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.did.imputation import ImputationDiD
from evalkit.did.sun_abraham import SunAbraham
from evalkit.did.twfe import TWFE
from evalkit.errors import (
    DesignError,
    InferenceNotSupportedError,
    NotEstimableError,
    RowsDroppedWarning,
)


def panel(seed=0, n_units=40, cohorts=(0, 2004, 2006), noise=1.0, drop=0.0, dynamic=None):
    rng = np.random.default_rng(seed)
    years = np.arange(2001, 2009)
    unit = np.repeat(np.arange(n_units), len(years))
    year = np.tile(years, n_units)
    g = np.asarray(cohorts)[np.arange(n_units) % len(cohorts)][unit]
    e = year - g
    dynamic = dynamic or (lambda k, c: 0.5 + 0.1 * k + 0.2 * (c == 2006))
    eff = np.where((g > 0) & (e >= 0), dynamic(e, g), 0.0)
    x = rng.normal(size=len(unit)) + 0.1 * (year - 2000)
    y = rng.normal(size=n_units)[unit] + 0.1 * (year - 2000) + 0.4 * x + eff
    y = y + noise * rng.normal(size=len(unit))
    df = pd.DataFrame(
        {
            "id": unit,
            "year": year,
            "g": g,
            "y": y,
            "x": x,
            "w": rng.uniform(0.5, 2.0, size=len(unit)),
            "region": unit // 5,
        }
    )
    if drop:
        df = df.sample(frac=1 - drop, random_state=seed).sort_index()
    return df


def fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(df, **kw)


def theorem3(df, covariates, weights, cluster, target, leave_out):
    """Estimate and SE of a target by the definitions in BJS (2024), with dense algebra."""
    treated = ((df["g"] > 0) & (df["year"] >= df["g"])).to_numpy()
    w = df[weights].to_numpy(float) if weights else np.ones(len(df))
    a = np.column_stack(
        [
            pd.get_dummies(df["id"]).to_numpy(float),
            pd.get_dummies(df["year"]).to_numpy(float)[:, 1:],
            df[list(covariates)].to_numpy(float),
        ]
    )
    y = df["y"].to_numpy(float)
    a0, a1, y0, w0 = a[~treated], a[treated], y[~treated], w[~treated]
    gram = np.linalg.pinv(a0.T @ (a0 * w0[:, None]))
    theta = gram @ a0.T @ (w0 * y0)
    tau = y[treated] - a1 @ theta
    v1 = np.where(target[treated], w[treated], 0.0)
    v1 = v1 / v1.sum()
    v0 = -w0 * (a0 @ (gram @ (a1.T @ v1)))
    estimate = v1 @ tau
    assert estimate == pytest.approx(v1 @ y[treated] + v0 @ y0, rel=1e-9, abs=1e-12)
    e0 = y0 - a0 @ theta
    grp = pd.Series(list(zip(df["g"][treated], (df["year"] - df["g"])[treated], strict=True)))
    codes = pd.factorize(grp)[0]
    e1 = np.empty(len(tau))
    for c in np.unique(codes):
        m = codes == c
        den = (v1[m] ** 2).sum()
        tilde = (v1[m] ** 2 @ tau[m]) / den if den > 0 else 0.0
        e1[m] = tau[m] - tilde
        if leave_out and den > 0:
            share = v1[m] ** 2 / den
            ok = share < 1 - 1e-12
            e1[np.flatnonzero(m)[ok]] /= 1 - share[ok]
    scores = np.zeros(len(df))
    scores[treated] = v1 * e1
    scores[~treated] = v0 * e0
    cl = df[cluster].to_numpy()
    psi = np.array([scores[cl == c].sum() for c in np.unique(cl)])
    return estimate, np.sqrt((psi**2).sum())


@pytest.mark.parametrize(
    ("covariates", "weights", "cluster", "drop", "leave_out"),
    [
        ((), None, "id", 0.0, False),
        (("x",), "w", "region", 0.1, False),
        (("x",), None, "id", 0.1, True),
        ((), "w", "region", 0.0, True),
    ],
)
def test_estimates_and_se_equal_the_theorem_3_definitions(
    covariates, weights, cluster, drop, leave_out
):
    df = panel(1, drop=drop)
    est = ImputationDiD(
        outcome="y",
        unit="id",
        time="year",
        cohort="g",
        covariates=covariates,
        weights=weights,
        cluster=cluster,
        leave_out=leave_out,
    )
    res = fit(est, df)
    treated = (df["g"] > 0) & (df["year"] >= df["g"])
    e = df["year"] - df["g"]
    for k, b, s in res.tidy()[["event_time", "estimate", "std_error"]].itertuples(index=False):
        want = theorem3(
            df, covariates, weights, cluster, (treated & (e == k)).to_numpy(), leave_out
        )
        assert (b, s) == pytest.approx(want, rel=1e-8)
    want = theorem3(df, covariates, weights, cluster, treated.to_numpy(), leave_out)
    overall = res.aggregate("overall")
    assert (overall.estimate(), overall.std_error()) == pytest.approx(want, rel=1e-8)
    for c, b, s in (
        res.aggregate("cohort").tidy()[["cohort", "estimate", "std_error"]].itertuples(index=False)
    ):
        want = theorem3(
            df, covariates, weights, cluster, (treated & (df["g"] == c)).to_numpy(), leave_out
        )
        assert (b, s) == pytest.approx(want, rel=1e-8)


def test_two_by_two_equals_the_did():
    df = panel(2, cohorts=(0, 2008), n_units=30)
    df = df[df["year"] >= 2007]
    df = df.assign(d=((df["g"] > 0) & (df["year"] >= df["g"])).astype(int))
    imp = fit(ImputationDiD(outcome="y", unit="id", time="year", cohort="g"), df)
    did = fit(TWFE(outcome="y", treatment="d", unit="id", time="year"), df)
    assert imp.estimate(event_time=0) == pytest.approx(did.estimate("d"), rel=1e-12)
    assert imp.aggregate("overall").estimate() == pytest.approx(did.estimate("d"), rel=1e-12)
    means = df.groupby([df["g"] > 0, "year"])["y"].mean()
    by_hand = (means[True, 2008] - means[True, 2007]) - (means[False, 2008] - means[False, 2007])
    assert imp.estimate(event_time=0) == pytest.approx(by_hand, rel=1e-12)


def test_homogeneous_dynamic_effects_agree_with_sun_abraham_and_the_truth():
    df = panel(3, noise=0.0, dynamic=lambda k, c: 1.0 + 0.25 * k)
    imp = fit(ImputationDiD(outcome="y", unit="id", time="year", cohort="g", covariates="x"), df)
    sa = fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g", covariates="x"), df)
    for k, b in imp.tidy()[["event_time", "estimate"]].itertuples(index=False):
        assert b == pytest.approx(1.0 + 0.25 * k, abs=1e-9)
        assert sa.estimate(event_time=k) == pytest.approx(b, abs=1e-9)


def test_unimputable_treated_rows_are_dropped_and_counted():
    df = panel(4, cohorts=(2004, 2006))
    with pytest.warns(RowsDroppedWarning, match="cannot be imputed"):
        res = ImputationDiD(outcome="y", unit="id", time="year", cohort="g").fit(df)
    assert res.info["dropped"]["treated rows that cannot be imputed"] == 40 * 3  # 2006-2008
    assert max(res.tidy()["event_time"]) == 1


def test_horizons_restrict_the_table_not_the_overall_average():
    df = panel(5)
    full = fit(ImputationDiD(outcome="y", unit="id", time="year", cohort="g"), df)
    some = fit(ImputationDiD(outcome="y", unit="id", time="year", cohort="g", horizons=(1, 2)), df)
    assert some.tidy()["event_time"].tolist() == [1, 2]
    pd.testing.assert_frame_equal(
        some.tidy(), full.tidy()[full.tidy()["event_time"].isin([1, 2])].reset_index(drop=True)
    )
    assert some.aggregate("overall").estimate() == full.aggregate("overall").estimate()
    vcov = full.vcov.to_numpy()
    assert np.allclose(np.sqrt(np.diag(vcov)), full.tidy()["std_error"])


def test_pretrend_test_and_its_coefficients():
    df = panel(6)
    est = ImputationDiD(outcome="y", unit="id", time="year", cohort="g", pretrend_leads=2)
    res = fit(est, df)
    test = res.info["pretrend_test"]
    pre = res.aggregate("pretrend").tidy()
    assert pre["event_time"].tolist() == [-2, -1] == test["event_times"]
    b = pre["estimate"].to_numpy()
    v = res.aggregate("pretrend").vcov.to_numpy()
    assert test["statistic"] == pytest.approx(b @ np.linalg.solve(v, b) / 2, rel=1e-10)
    assert test["df2"] == res.info["n_clusters"] - 1
    ax = res.plot()
    assert len(ax.get_lines()) > 0
    too_many = ImputationDiD(outcome="y", unit="id", time="year", cohort="g", pretrend_leads=5)
    with pytest.raises(NotEstimableError, match="pretrend_leads"):
        fit(too_many, df)


@pytest.mark.parametrize(
    ("options", "column"),
    [
        (dict(horizons=(-1, 2)), "horizons"),
        (dict(horizons=(3, 1)), "horizons"),
        (dict(pretrend_leads=0), "pretrend_leads"),
        (dict(pretrend_leads=True), "pretrend_leads"),
        (dict(leave_out="yes"), "leave_out"),
    ],
)
def test_bad_options(options, column):
    with pytest.raises(DesignError) as info:
        ImputationDiD(outcome="y", unit="id", time="year", cohort="g", **options)
    assert info.value.column == column


def test_inference_options():
    df = panel(7)
    est = ImputationDiD(outcome="y", unit="id", time="year", cohort="g")
    with pytest.raises(InferenceNotSupportedError, match="cluster"):
        est.fit(df, inference="cr2")
    none = fit(est, df, inference="none")
    assert none.tidy()["std_error"].isna().all()
    assert none.vcov is None
    auto = fit(est, df)
    assert auto.inference.method == "cluster"
    assert "Theorem 3" in auto.inference.reason
    assert auto.inference.distribution == "normal"


def test_warnings_point_at_the_callers_line():
    df = panel(8, cohorts=(2001, 2004, 2006), n_units=12)
    est = ImputationDiD(outcome="y", unit="id", time="year", cohort="g", leave_out=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(df[df["id"] != 4])
    assert len(caught) >= 3
    assert all(w.filename == __file__ for w in caught), [
        (w.filename, str(w.message)) for w in caught
    ]


def test_subgroups_share_clusters_through_labelled_scores():
    df = panel(9, n_units=60)
    df["half"] = np.where(df["id"] % 2 == 0, "a", "b")  # both halves in every region
    est = ImputationDiD(outcome="y", unit="id", time="year", cohort="g", cluster="region")
    both = fit(est, df, by="half")
    parts = {h: fit(est, df[df["half"] == h]).headline() for h in ("a", "b")}
    psi = {h: pd.Series(r._scores.values[:, 0], index=r._scores.labels) for h, r in parts.items()}
    diff = psi["a"].sub(psi["b"], fill_value=0.0)
    want = np.sqrt((diff**2).sum())
    assert both.std_error("ATT", subgroup="a - b") == pytest.approx(want, rel=1e-10)
    assert both.std_error("ATT", subgroup="a") == pytest.approx(parts["a"].std_error(), rel=1e-12)
    assert want != pytest.approx(np.hypot(parts["a"].std_error(), parts["b"].std_error()))


def test_treatment_column_gives_the_same_fit_as_cohort():
    df = panel(10)
    df["d"] = ((df["g"] > 0) & (df["year"] >= df["g"])).astype(int)
    a = fit(ImputationDiD(outcome="y", unit="id", time="year", cohort="g"), df)
    b = fit(ImputationDiD(outcome="y", unit="id", time="year", treatment="d"), df)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
