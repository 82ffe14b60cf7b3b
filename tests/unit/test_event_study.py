"""did.EventStudy: equivalences, a dense dummy-variable check, options and errors."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from evalkit.did.event_study import EventStudy
from evalkit.did.twfe import TWFE
from evalkit.errors import DesignError, NotEstimableError, RowsDroppedWarning


def staggered(seed=0, n_units=45, years=range(2001, 2009), cohorts=(0, 2004, 2006), drop=0.0):
    rng = np.random.default_rng(seed)
    years = np.asarray(list(years))
    unit = np.repeat(np.arange(n_units), len(years))
    year = np.tile(years, n_units)
    g = np.asarray(cohorts)[np.arange(n_units) % len(cohorts)][unit]
    e = year - g
    effect = np.where((g > 0) & (e >= 0), 0.5 + 0.2 * e, 0.0)
    x = rng.normal(size=len(unit)) + 0.05 * (year - 2000)
    y = rng.normal(size=n_units)[unit] + 0.1 * (year - 2000) + effect + 0.3 * x
    y = y + rng.normal(size=len(unit))
    df = pd.DataFrame(
        {
            "id": unit,
            "year": year,
            "g": g,
            "d": ((g > 0) & (e >= 0)).astype(int),
            "x": x,
            "y": y,
            "city": unit // 3,
            "w": rng.uniform(0.5, 2.0, size=len(unit)),
        }
    )
    if drop:
        df = df.sample(frac=1 - drop, random_state=seed).sort_index()
    return df


def dense_fit(df, regs, cluster, weights=None):
    """Dummy-variable regression with CR2 and Satterthwaite df by definition."""
    x = np.column_stack(
        [
            df[regs].to_numpy(float),
            pd.get_dummies(df["id"]).to_numpy(float),
            pd.get_dummies(df["year"]).to_numpy(float)[:, 1:],
        ]
    )
    sw = np.sqrt(df[weights].to_numpy(float)) if weights else np.ones(len(df))
    xs, ys = x * sw[:, None], df["y"].to_numpy(float) * sw
    bread = np.linalg.pinv(xs.T @ xs)
    beta = bread @ xs.T @ ys
    e = ys - xs @ beta
    ih = np.eye(len(ys)) - xs @ bread @ xs.T
    codes = pd.factorize(df[cluster])[0]
    blocks = []
    meat = np.zeros((x.shape[1],) * 2)
    for g in np.unique(codes):
        idx = np.flatnonzero(codes == g)
        vals, vecs = np.linalg.eigh(ih[np.ix_(idx, idx)])
        a = (vecs * np.where(vals > 1e-10, 1 / np.sqrt(np.clip(vals, 1e-10, None)), 0)) @ vecs.T
        blocks.append((idx, a))
        s = xs[idx].T @ a @ e[idx]
        meat += np.outer(s, s)
    v = bread @ meat @ bread
    k = len(regs)
    dfs = []
    for j in range(k):
        u = np.zeros((len(ys), len(blocks)))
        for r, (idx, a) in enumerate(blocks):
            u[idx, r] = a @ xs[idx] @ bread[:, j]
        om = u.T @ ih @ u
        dfs.append(np.trace(om) ** 2 / (om**2).sum())
    return beta[:k], np.sqrt(np.diag(v)[:k]), np.array(dfs)


def fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(df, **kw)


# ---------------------------------------------------------------------------- equivalences
@pytest.mark.parametrize("method", ["iid", "hetero", "cluster", "cr2"])
def test_two_period_event_study_equals_twfe(method):
    df = staggered(1, cohorts=(0, 2002), years=(2001, 2002))
    es = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df, inference=method)
    tw = fit(TWFE(outcome="y", treatment="d", unit="id", time="year"), df, inference=method)
    assert es.tidy()["event_time"].tolist() == [0]
    assert es.estimate(event_time=0) == pytest.approx(tw.estimate("d"), rel=1e-12)
    assert es.std_error(event_time=0) == pytest.approx(tw.std_error("d"), rel=1e-10)
    assert es._table["df"].iloc[0] == pytest.approx(tw._table["df"].iloc[0], rel=1e-10)


@pytest.mark.parametrize(
    ("drop", "weights", "cluster"), [(0.0, None, "id"), (0.15, "w", "city"), (0.1, None, "city")]
)
def test_event_study_equals_dense_dummy_regression_with_cr2(drop, weights, cluster):
    df = staggered(2, drop=drop)
    est = EventStudy(
        outcome="y",
        unit="id",
        time="year",
        cohort="g",
        covariates=["x"],
        weights=weights,
        cluster=cluster,
        drop_singletons=False,
    )
    res = fit(est, df, inference="cr2")
    events = res.tidy()["event_time"].tolist()
    e = df["year"] - df["g"]
    regs = []
    for k in events:
        df[f"e{k}"] = ((df["g"] > 0) & (e == k)).astype(float)
        regs.append(f"e{k}")
    beta, se, dfs = dense_fit(df, [*regs, "x"], cluster, weights)
    np.testing.assert_allclose(res.tidy()["estimate"], beta[:-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.tidy()["std_error"], se[:-1], rtol=1e-8)
    np.testing.assert_allclose(res._table["df"], dfs[:-1], rtol=1e-7)
    assert res.info["covariates"]["x"]["estimate"] == pytest.approx(beta[-1], rel=1e-9)


def test_binned_endpoints_pool_event_times_beyond_the_window():
    df = staggered(3)
    est = EventStudy(
        outcome="y", unit="id", time="year", cohort="g", window=(-2, 2), bin_endpoints=True
    )
    res = fit(est, df, inference="iid")
    assert res.tidy()["event_time"].tolist() == [-2, 0, 1, 2]
    e = (df["year"] - df["g"]).where(df["g"] > 0)
    df["eb"] = e.clip(-2, 2).fillna(-1).astype(int)
    regs = []
    for k in (-2, 0, 1, 2):
        df[f"b{k}"] = (df["eb"] == k).astype(float)
        regs.append(f"b{k}")
    beta, _, _ = dense_fit(df, regs, "id")
    np.testing.assert_allclose(res.tidy()["estimate"], beta, rtol=1e-9)


def test_window_without_binning_drops_treated_rows_outside_and_says_so():
    df = staggered(4)
    est = EventStudy(outcome="y", unit="id", time="year", cohort="g", window=(-2, 2))
    with pytest.warns(RowsDroppedWarning, match="outside the event window"):
        res = est.fit(df)
    e = df["year"] - df["g"]
    outside = int(((df["g"] > 0) & ((e < -2) | (e > 2))).sum())
    assert res.info["dropped"]["rows of treated units outside the event window"] == outside
    assert res.info["n_obs"] == len(df) - outside


def test_not_yet_treated_leads_before_the_window_are_comparisons():
    df = staggered(5)
    est = EventStudy(
        outcome="y",
        unit="id",
        time="year",
        cohort="g",
        window=(-2, 2),
        control_group="not_yet_treated",
    )
    res = fit(est, df, inference="iid")
    e = (df["year"] - df["g"]).where(df["g"] > 0)
    kept = df[~(e > 2)].copy()
    ek = e[~(e > 2)]
    regs = []
    for k in (-2, 0, 1, 2):
        kept[f"n{k}"] = (ek == k).astype(float)
        regs.append(f"n{k}")
    beta, _, _ = dense_fit(kept, regs, "id")
    np.testing.assert_allclose(res.tidy()["estimate"], beta, rtol=1e-9)
    assert res.info["n_obs"] == len(kept)


def test_treatment_column_gives_the_same_fit_as_cohort():
    df = staggered(6)
    a = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df)
    b = fit(EventStudy(outcome="y", unit="id", time="year", treatment="d"), df)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())


def test_pretrend_test_is_the_wald_statistic_of_the_leads():
    df = staggered(7)
    res = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df, inference="cluster")
    tidy = res.tidy()
    leads = (tidy["event_time"] < 0).to_numpy()
    b = tidy["estimate"].to_numpy()[leads]
    v = res.vcov.to_numpy()[np.ix_(leads, leads)]
    test = res.info["pretrend_test"]
    assert test["statistic"] == pytest.approx(b @ np.linalg.solve(v, b) / leads.sum(), rel=1e-10)
    assert test["df2"] == res.info["n_clusters"] - 1
    assert test["event_times"] == tidy["event_time"][leads].tolist()
    none = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df, inference="none")
    assert none.info["pretrend_test"] == {"skipped": "inference='none'"}


# ---------------------------------------------------------------------------- identification
def test_without_never_treated_a_fully_dynamic_spec_is_not_estimable_with_a_hint():
    df = staggered(8, cohorts=(2004, 2006))
    with pytest.raises(NotEstimableError, match="collinear") as info:
        fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df)
    assert "two reference periods" in info.value.hint
    assert "keep event times below 2" in info.value.hint


def test_two_reference_periods_leave_both_out():
    df = staggered(15)
    est = EventStudy(outcome="y", unit="id", time="year", cohort="g", reference=(-1, -4))
    res = fit(est, df, inference="iid")
    events = res.tidy()["event_time"].tolist()
    assert -4 not in events and -1 not in events
    assert res.reference == (-4, -1)
    e = df["year"] - df["g"]
    regs = []
    for k in events:
        df[f"e{k}"] = ((df["g"] > 0) & (e == k)).astype(float)
        regs.append(f"e{k}")
    beta, _, _ = dense_fit(df, regs, "id")
    np.testing.assert_allclose(res.tidy()["estimate"], beta, rtol=1e-9)


def test_units_treated_in_the_first_period_are_dropped():
    df = staggered(9, cohorts=(0, 2001, 2005))
    with pytest.warns(RowsDroppedWarning, match="treated from the first period"):
        res = EventStudy(outcome="y", unit="id", time="year", cohort="g").fit(df)
    assert res.info["dropped"]["rows of units treated from the first period on"] == 15 * 8


def test_cohorts_after_the_last_period_count_as_never_treated():
    df = staggered(10)
    df2 = df.assign(g=df["g"].replace(0, 2050))
    a = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df)
    b = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df2)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())


# ---------------------------------------------------------------------------- options, errors
@pytest.mark.parametrize(
    ("options", "column"),
    [
        (dict(), "cohort"),
        (dict(cohort="g", treatment="d"), "cohort"),
        (dict(cohort="g", window=(2, -2)), "window"),
        (dict(cohort="g", window=(0, 3)), "reference"),
        (dict(cohort="g", bin_endpoints=True), "bin_endpoints"),
        (dict(cohort="g", control_group="not_yet_treated"), "control_group"),
        (dict(cohort="g", control_group="everyone", window=(-2, 2)), "control_group"),
        (dict(cohort="g", reference="minus one"), "reference"),
    ],
)
def test_bad_options_name_the_option(options, column):
    with pytest.raises(DesignError) as info:
        EventStudy(outcome="y", unit="id", time="year", **options)
    assert info.value.column == column


def test_unobserved_reference_is_an_error_listing_event_times():
    df = staggered(11)
    with pytest.raises(DesignError, match="observed event times"):
        fit(EventStudy(outcome="y", unit="id", time="year", cohort="g", reference=-9), df)


def test_non_numeric_time_is_an_error():
    df = staggered(12)
    df["year"] = df["year"].astype(str)
    with pytest.raises(Exception, match="numeric"):
        fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df)


def test_plot_marks_the_reference_period():
    res = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), staggered(13))
    ax = res.plot()
    xs = np.concatenate([line.get_xdata() for line in ax.get_lines()])
    assert -1 in xs
    assert ax.get_xlabel().startswith("Event time")
    plt.close(ax.figure)
    assert res.aggregate("event_time") is res
    with pytest.raises(DesignError, match="available"):
        res.aggregate("cohort")


def test_automatic_inference_with_few_clusters_is_cr2():
    df = staggered(14)
    res = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g", cluster="city"), df)
    assert res.inference.method == "cr2"
    assert "clusters" in res.inference.reason


def test_warnings_point_at_the_callers_line():
    df = staggered(16, cohorts=(0, 2001, 2005))
    df = pd.concat([df, df.iloc[[0]].assign(id=999)])  # a singleton unit
    # regions by cohort: few treated clusters (cities hold treated and never-treated
    # units, so clustering by city would not be a few-treated design)
    df["region"] = df["id"] % 6
    est = EventStudy(
        outcome="y", unit="id", time="year", cohort="g", window=(-2, 2), cluster="region"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(df, inference="cluster")
    kinds = {type(w.message).__name__ for w in caught}
    assert kinds == {"RowsDroppedWarning", "FewClustersWarning"}
    assert len(caught) == 4
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]
