"""did.SunAbraham: equivalence with the event study, aggregation, CR2 contrasts, options."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.did.event_study import EventStudy
from evalkit.did.sun_abraham import SunAbraham
from evalkit.errors import DesignError, NotEstimableError, RowsDroppedWarning


def panel(seed=0, n_units=48, cohorts=(0, 2004, 2006), noise=1.0, effects=None):
    """Balanced panel 2001-2008; effects[g](e) is cohort g's effect at event time e >= 0."""
    rng = np.random.default_rng(seed)
    years = np.arange(2001, 2009)
    unit = np.repeat(np.arange(n_units), len(years))
    year = np.tile(years, n_units)
    g = np.asarray(cohorts)[np.arange(n_units) % len(cohorts)][unit]
    e = year - g
    effects = effects or {c: (lambda k: 0.5 + 0.1 * k) for c in cohorts if c}
    eff = np.zeros(len(unit))
    for c, f in effects.items():
        on = (g == c) & (e >= 0)
        eff[on] = f(e[on])
    y = rng.normal(size=n_units)[unit] + 0.1 * (year - 2000) + eff
    y = y + noise * rng.normal(size=len(unit))
    return pd.DataFrame(
        {
            "id": unit,
            "year": year,
            "g": g,
            "y": y,
            "x": rng.normal(size=len(unit)),
            "w": rng.uniform(0.5, 2, size=len(unit)),
            "region": unit // 4,
        }
    )


def fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(df, **kw)


def cr2_dense(df, regs, cluster, contrasts, weights=None):
    """CR2 variance and Satterthwaite df of contrasts on the dummy-variable regression."""
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
    e = ys - xs @ (bread @ xs.T @ ys)
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
    out_v, out_df = [], []
    for c in contrasts:
        cf = np.zeros(x.shape[1])
        cf[: len(c)] = c
        u = np.zeros((len(ys), len(blocks)))
        for r, (idx, a) in enumerate(blocks):
            u[idx, r] = a @ xs[idx] @ bread @ cf
        om = u.T @ ih @ u
        out_df.append(np.trace(om) ** 2 / (om**2).sum())
        out_v.append(cf @ v @ cf)
    return np.array(out_v), np.array(out_df)


@pytest.mark.parametrize("method", ["iid", "hetero", "cluster", "cr2"])
def test_single_cohort_equals_the_event_study(method):
    df = panel(1, cohorts=(0, 2005))
    sa = fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g"), df, inference=method)
    es = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df, inference=method)
    cols = ["estimate", "std_error", "event_time"]
    pd.testing.assert_frame_equal(sa.tidy()[cols], es.tidy()[cols], rtol=1e-9)
    np.testing.assert_allclose(sa._table["df"], es._table["df"], rtol=1e-8)
    assert sa.info["pretrend_test"]["statistic"] == pytest.approx(
        es.info["pretrend_test"]["statistic"], rel=1e-9
    )


def test_heterogeneous_cohorts_are_recovered_where_the_event_study_is_biased():
    effects = {2004: lambda e: 1.0 + 0.0 * e, 2006: lambda e: 3.0 + 0.0 * e}
    df = panel(2, noise=0.0, effects=effects)
    sa = fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g"), df)
    cells = sa.aggregate("cells").tidy()
    for c, f in effects.items():
        got = cells[(cells["cohort"] == c) & (cells["event_time"] >= 0)]["estimate"]
        np.testing.assert_allclose(got, f(0), atol=1e-9)
        pre = cells[(cells["cohort"] == c) & (cells["event_time"] < 0)]["estimate"]
        np.testing.assert_allclose(pre, 0.0, atol=1e-9)
    # equal cohort sizes: ATT(0) is the plain mean of the two cohorts' effects
    assert sa.estimate(event_time=0) == pytest.approx(2.0, abs=1e-9)
    assert sa.estimate(event_time=3) == pytest.approx(1.0, abs=1e-9)  # only cohort 2004
    es = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df)
    assert abs(es.estimate(event_time=3) - 1.0) > 0.05  # contaminated by the other cohort


def test_event_times_are_share_weighted_averages_of_the_cells():
    df = panel(3, cohorts=(0, 2004, 2004, 2006), noise=1.0)
    res = fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g", weights="w"), df)
    cells = res.aggregate("cells").tidy()
    for e, shares in res.info["shares"].items():
        sub = cells[cells["event_time"] == int(e)]
        w = np.array([shares[str(c)] for c in sub["cohort"]])
        assert w.sum() == pytest.approx(1.0)
        assert res.estimate(event_time=int(e)) == pytest.approx(w @ sub["estimate"], rel=1e-12)
        mass = {
            c: df.loc[(df["g"] == c) & (df["year"] - c == int(e)), "w"].sum() for c in sub["cohort"]
        }
        total = sum(mass.values())
        assert [shares[str(c)] for c in sub["cohort"]] == pytest.approx(
            [mass[c] / total for c in sub["cohort"]]
        )
    overall = res.aggregate("overall").estimate()
    post = cells[cells["event_time"] >= 0]
    counts = np.array(
        [
            df.loc[(df["g"] == c) & (df["year"] - c == e), "w"].sum()
            for c, e in zip(post["cohort"], post["event_time"], strict=True)
        ]
    )
    assert overall == pytest.approx(counts @ post["estimate"] / counts.sum(), rel=1e-12)


@pytest.mark.parametrize(("cluster", "weights"), [("id", None), ("region", "w")])
def test_cr2_of_aggregates_equals_the_definition_for_their_contrasts(cluster, weights):
    df = panel(4, n_units=24)
    est = SunAbraham(
        outcome="y",
        unit="id",
        time="year",
        cohort="g",
        cluster=cluster,
        weights=weights,
        drop_singletons=False,
    )
    res = fit(est, df, inference="cr2")
    cells = res.aggregate("cells").tidy()
    e = df["year"] - df["g"]
    regs = []
    for c, k in zip(cells["cohort"], cells["event_time"], strict=True):
        df[f"c{c}_{k}"] = ((df["g"] == c) & (e == k)).astype(float)
        regs.append(f"c{c}_{k}")
    events = res.tidy()["event_time"].tolist()
    contrasts = []
    for k in events:
        shares = res.info["shares"][str(k)]
        contrasts.append(
            [
                shares.get(str(c), 0.0) if ek == k else 0.0
                for c, ek in zip(cells["cohort"], cells["event_time"], strict=True)
            ]
        )
    var, dfs = cr2_dense(df, regs, cluster, np.array(contrasts), weights)
    np.testing.assert_allclose(res.tidy()["std_error"], np.sqrt(var), rtol=1e-8)
    np.testing.assert_allclose(res._table["df"], dfs, rtol=1e-7)
    # a single-cell aggregate has the cell's own df
    cell_df = res.aggregate("cells")._table["df"]
    last = res.tidy().iloc[-1]
    only = cells.index[cells["event_time"] == last["event_time"]]
    assert len(only) == 1
    assert res._table["df"].iloc[-1] == pytest.approx(cell_df.iloc[only[0]], rel=1e-9)


def test_last_treated_control_cohort_cuts_the_sample():
    df = panel(5, cohorts=(2004, 2006, 2007))
    with pytest.raises(NotEstimableError, match="last_treated"):
        fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g"), df)
    est = SunAbraham(outcome="y", unit="id", time="year", cohort="g", control_cohort="last_treated")
    with pytest.warns(RowsDroppedWarning, match="2007"):
        res = est.fit(df)
    assert res.info["n_obs"] == int((df["year"] < 2007).sum())
    assert res.info["control_cohort_period"] == 2007
    # the same as treating cohort 2007 as never treated on the cut sample
    cut = df[df["year"] < 2007].assign(g=lambda d: d["g"].replace(2007, 0))
    ref = fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g"), cut)
    pd.testing.assert_frame_equal(res.tidy(), ref.tidy())


def test_covariates_and_treatment_column():
    df = panel(6)
    df["d"] = ((df["g"] > 0) & (df["year"] >= df["g"])).astype(int)
    a = fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g", covariates="x"), df)
    b = fit(SunAbraham(outcome="y", unit="id", time="year", treatment="d", covariates=["x"]), df)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    assert set(a.info["covariates"]) == {"x"}


def test_aggregations_and_errors():
    res = fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g"), panel(7))
    assert res.aggregations == ["event_time", "overall", "cohort", "cells"]
    assert res.aggregate("cohort").tidy()["cohort"].tolist() == [2004, 2006]
    assert res.aggregate("overall").terms == ["ATT"]
    with pytest.raises(DesignError, match="available"):
        res.aggregate("calendar")
    with pytest.raises(DesignError):
        SunAbraham(outcome="y", unit="id", time="year", cohort="g", control_cohort="nobody")
    with pytest.raises(DesignError, match="reference"):
        fit(SunAbraham(outcome="y", unit="id", time="year", cohort="g", reference=-8), panel(7))


def test_warnings_point_at_the_callers_line():
    df = panel(9, cohorts=(2004, 2006, 2007))
    # blocks of one cohort each: few untreated clusters (every region holds all three
    # cohorts, so clustering by region is not a few-treated design)
    df["block"] = df["id"] % 6
    est = SunAbraham(
        outcome="y",
        unit="id",
        time="year",
        cohort="g",
        control_cohort="last_treated",
        cluster="block",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(df, inference="cluster")
    assert len(caught) == 2
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]


def test_by_compares_overall_atts_of_disjoint_subgroups():
    df = panel(10, n_units=60)
    df["half"] = np.where(df["id"] % 2 == 0, "a", "b")  # no shared unit or cluster
    est = SunAbraham(outcome="y", unit="id", time="year", cohort="g")
    both = fit(est, df, by="half", inference="cluster")
    se = [fit(est, df[df["half"] == h], inference="cluster").headline().std_error() for h in "ab"]
    assert both.std_error("ATT", subgroup="a") == pytest.approx(se[0], rel=1e-12)
    assert both.std_error("ATT", subgroup="a - b") == pytest.approx(np.hypot(*se), rel=1e-10)
    es = fit(EventStudy(outcome="y", unit="id", time="year", cohort="g"), df, by="half")
    assert set(es.tidy()["subgroup"]) >= {"a", "b", "a - b"}
