"""did.TripleDiff: difference of two DiDs, dense dummy-variable checks, options and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.did._absorbed import absorbed_rank
from evalkit.did.triple_diff import TripleDiff
from evalkit.did.twfe import TWFE
from evalkit.errors import DesignError, FewClustersWarning, NotEstimableError, RowsDroppedWarning

GROUPS = np.array(["couple", "kids", "migrant", "single"])


def cells(seed=0, n_city=8, n_month=10, n_group=3, treated=(0,), start=5, drop=0.0):
    rng = np.random.default_rng(seed)
    c, m, g = (
        a.ravel()
        for a in np.meshgrid(
            np.arange(n_city), np.arange(n_month), np.arange(n_group), indexing="ij"
        )
    )
    post = (np.isin(c, treated) & (m >= start)).astype(int)
    n = rng.integers(5, 60, size=c.size).astype(float)
    x = rng.normal(size=c.size)
    y = (
        rng.normal(size=(n_city, n_group))[c, g]
        + rng.normal(size=(n_month, n_group))[m, g]
        + rng.normal(size=(n_city, n_month))[c, m]
        + 0.5 * post * (g == 1)
        + 0.2 * x
        + rng.normal(size=c.size) / np.sqrt(n)
    )
    df = pd.DataFrame(
        {
            "city": c,
            "month": m,
            "hh": GROUPS[g],
            "post": post,
            "n": n,
            "x": x,
            "y": y,
            "region": c // 2,
            "cohort": np.where(np.isin(c, treated), start, 0),
        }
    )
    if drop:
        df = df.sample(frac=1 - drop, random_state=seed).sort_index()
    return df


def fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(df, **kw)


def dense(df, regs, cluster, weights=None):
    """Dummy-variable regression: coefficients, iid / HC1 / CR1 / CR2 SEs and CR2 df."""
    key = df["city"].astype(str)
    fe = [
        pd.get_dummies(key + "_" + df["hh"]).to_numpy(float),
        pd.get_dummies(df["month"].astype(str) + "_" + df["hh"]).to_numpy(float),
        pd.get_dummies(key + "_" + df["month"].astype(str)).to_numpy(float),
    ]
    x = np.column_stack([df[regs].to_numpy(float), *fe])
    sw = np.sqrt(df[weights].to_numpy(float)) if weights else np.ones(len(df))
    xs, ys = x * sw[:, None], df["y"].to_numpy(float) * sw
    rank = np.linalg.matrix_rank(xs)
    bread = np.linalg.pinv(xs.T @ xs)
    beta = bread @ xs.T @ ys
    e = ys - xs @ beta
    n, k = len(ys), len(regs)
    iid = np.sqrt(np.diag(bread)[:k] * (e @ e) / (n - rank))
    xe = xs * e[:, None]
    hc1 = np.sqrt(np.diag(bread @ xe.T @ xe @ bread)[:k] * n / (n - rank))
    ih = np.eye(n) - xs @ bread @ xs.T
    codes = pd.factorize(df[cluster])[0]
    blocks, meat = [], np.zeros((x.shape[1],) * 2)
    for g in np.unique(codes):
        idx = np.flatnonzero(codes == g)
        vals, vecs = np.linalg.eigh(ih[np.ix_(idx, idx)])
        a = (vecs * np.where(vals > 1e-10, 1 / np.sqrt(np.clip(vals, 1e-10, None)), 0)) @ vecs.T
        blocks.append((idx, a))
        s = xs[idx].T @ a @ e[idx]
        meat += np.outer(s, s)
    cr2 = np.sqrt(np.diag(bread @ meat @ bread)[:k])
    dfs = []
    for j in range(k):
        u = np.zeros((n, len(blocks)))
        for r, (idx, a) in enumerate(blocks):
            u[idx, r] = a @ xs[idx] @ bread[:, j]
        om = u.T @ ih @ u
        dfs.append(np.trace(om) ** 2 / (om**2).sum())
    return {
        "beta": beta[:k],
        "iid": iid,
        "hetero": hc1,
        "cr2": cr2,
        "df": np.array(dfs),
        "rank": rank - k,
    }


# ---------------------------------------------------------------------------- equivalences
def test_equals_the_difference_of_two_dids_on_a_balanced_design():
    df = cells(1, n_group=2, treated=(0, 1, 2))
    df["d"] = df["post"]
    est = TripleDiff(
        outcome="y", unit="city", time="month", group="hh", target="kids", treatment="post"
    )
    ddd = fit(est, df, inference="iid")
    did = {
        g: fit(
            TWFE(outcome="y", treatment="d", unit="city", time="month"), df[df["hh"] == g]
        ).estimate("d")
        for g in ("couple", "kids")
    }
    assert ddd.estimate("DDD") == pytest.approx(did["kids"] - did["couple"], rel=1e-10)
    # and the DiD of the within-unit difference, with the same classical standard error
    wide = df.pivot_table(index=["city", "month"], columns="hh", values="y").reset_index()
    wide["y"] = wide["kids"] - wide["couple"]
    wide = wide.merge(df[df["hh"] == "kids"][["city", "month", "d"]], on=["city", "month"])
    diff = fit(TWFE(outcome="y", treatment="d", unit="city", time="month"), wide, inference="iid")
    assert ddd.estimate("DDD") == pytest.approx(diff.estimate("d"), rel=1e-10)
    assert ddd.std_error("DDD") == pytest.approx(diff.std_error("d"), rel=1e-10)


@pytest.mark.parametrize(
    ("weights", "cluster", "drop"), [(None, "city", 0.0), ("n", "city", 0.1), ("n", "region", 0.1)]
)
def test_equals_the_dense_dummy_variable_regression(weights, cluster, drop):
    df = cells(2, treated=(0, 3), drop=drop)
    est = TripleDiff(
        outcome="y",
        unit="city",
        time="month",
        group="hh",
        target="kids",
        treatment="post",
        covariates=["x"],
        weights=weights,
        cluster=cluster,
        drop_singletons=False,
    )
    df["ddd"] = df["post"] * (df["hh"] == "kids")
    want = dense(df, ["ddd", "x"], cluster, weights)
    for method in ("iid", "hetero", "cr2"):
        res = fit(est, df, inference=method)
        np.testing.assert_allclose(res.tidy()["estimate"], want["beta"], rtol=1e-9)
        np.testing.assert_allclose(res.tidy()["std_error"], want[method], rtol=1e-8)
        if method == "cr2":
            np.testing.assert_allclose(res._table["df"], want["df"], rtol=1e-7)
        assert res.info["n_fixed_effect_parameters"] == want["rank"]


def test_exact_rank_of_three_fixed_effects_on_an_incomplete_grid():
    df = cells(3, drop=0.3)
    c = df["city"].to_numpy()
    m = df["month"].to_numpy()
    g = pd.factorize(df["hh"])[0]
    factors = [c * 3 + g, m * 3 + g, c * 10 + m]
    rank, exact = absorbed_rank(factors)
    dummies = np.column_stack([pd.get_dummies(f).to_numpy(float) for f in factors])
    assert exact
    assert rank == np.linalg.matrix_rank(dummies)


def test_cohort_and_treatment_columns_give_the_same_fit():
    df = cells(4)
    a = fit(
        TripleDiff(
            outcome="y", unit="city", time="month", group="hh", target="kids", treatment="post"
        ),
        df,
    )
    b = fit(
        TripleDiff(
            outcome="y", unit="city", time="month", group="hh", target="kids", cohort="cohort"
        ),
        df,
    )
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    # a treatment already coded as the triple indicator is the same regressor
    df["triple"] = df["post"] * (df["hh"] == "kids")
    c = fit(
        TripleDiff(
            outcome="y", unit="city", time="month", group="hh", target="kids", treatment="triple"
        ),
        df,
    )
    pd.testing.assert_frame_equal(a.tidy(), c.tidy())


SEPARATE = dict(
    outcome="y",
    unit="city",
    time="month",
    group="hh",
    target=["kids", "migrant"],
    treatment="post",
    separate=True,
)


def test_separate_targets_give_one_row_per_group():
    df = cells(5, n_group=4)
    est = TripleDiff(**SEPARATE)
    res = fit(est, df)
    assert res.tidy()["group"].tolist() == ["kids", "migrant"]
    assert res.estimate("DDD", group="kids") == pytest.approx(0.5, abs=0.3)
    pooled = fit(est.set_params(separate=False), df)
    assert pooled.tidy()["group"].tolist() == ["kids, migrant"]


def test_one_treated_city_uses_hc1_automatically_and_warns_for_cluster_methods():
    est = TripleDiff(
        outcome="y", unit="city", time="month", group="hh", target="kids", treatment="post"
    )
    res = est.fit(cells(6))
    assert res.inference.method == "hetero"
    assert "1 treated and" in res.inference.reason
    for method in ("cr2", "cluster"):
        with pytest.warns(FewClustersWarning, match="1 treated"):
            est.fit(cells(6), inference=method)
    many = fit(est, cells(6, n_city=12, treated=(0, 1, 2, 3, 4)))
    assert many.inference.method == "cr2"


# ---------------------------------------------------------------------------- errors
def test_target_must_occur_and_leave_a_comparison_group():
    df = cells(7)
    base = dict(outcome="y", unit="city", time="month", group="hh", treatment="post")
    with pytest.raises(DesignError, match="do not occur") as info:
        fit(TripleDiff(**base, target="pensioners"), df)
    assert info.value.column == "target"
    with pytest.raises(DesignError, match="non-targeted"):
        fit(TripleDiff(**base, target=["couple", "kids", "migrant"]), df)
    with pytest.raises(DesignError):
        TripleDiff(**base, target=None)
    with pytest.raises(DesignError, match="exactly one"):
        TripleDiff(outcome="y", unit="city", time="month", group="hh", target="kids")
    with pytest.raises(Exception, match="hh2"):
        fit(TripleDiff(**{**base, "group": "hh2"}, target="kids"), df)


def test_rows_with_missing_group_are_dropped_and_counted():
    df = cells(8)
    df.loc[df.index[:4], "hh"] = None
    est = TripleDiff(
        outcome="y", unit="city", time="month", group="hh", target="kids", treatment="post"
    )
    with pytest.warns(RowsDroppedWarning, match="missing group"):
        res = est.fit(df)
    assert res.info["dropped"]["missing group (hh)"] == 4


def test_covariate_constant_within_unit_and_time_is_not_estimable():
    df = cells(9)
    df["city_month"] = df["city"] * 0.1 + df["month"]
    est = TripleDiff(
        outcome="y",
        unit="city",
        time="month",
        group="hh",
        target="kids",
        treatment="post",
        covariates=["city_month"],
    )
    with pytest.raises(NotEstimableError, match="city_month"):
        fit(est, df)


def test_caller_frame_untouched_and_no_internal_column_leaks():
    df = cells(10)
    before = df.copy()
    res = fit(
        TripleDiff(
            outcome="y", unit="city", time="month", group="hh", target="kids", treatment="post"
        ),
        df,
    )
    pd.testing.assert_frame_equal(df, before)
    assert "__evalkit" not in str(res.to_dict())


def test_warnings_point_at_the_callers_line():
    df = cells(11)
    df.loc[df.index[:1], "hh"] = None
    df = pd.concat([df, df.iloc[[5]].assign(city=99)])  # singleton fixed-effect levels
    est = TripleDiff(
        outcome="y", unit="city", time="month", group="hh", target="kids", treatment="post"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(df, inference="cluster")
    assert len(caught) == 3
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]


def test_subgroup_comparison_with_by():
    df = cells(12, n_group=3)
    df["half"] = np.where(df["month"] % 2 == 0, "even", "odd")  # both halves share cities
    est = TripleDiff(
        outcome="y", unit="city", time="month", group="hh", target="kids", treatment="post"
    )
    both = fit(est, df, by="half", inference="cluster")
    one = fit(est, df[df["half"] == "even"], inference="cluster")
    assert both.std_error("DDD", subgroup="even") == pytest.approx(one.std_error("DDD"), rel=1e-12)
    assert [t["term"] for t in both.info["equality_tests"]] == ["DDD"]
    assert np.isfinite(both.std_error("DDD", subgroup="even - odd"))


def test_automatic_hc1_over_many_periods_warns_about_serial_correlation():
    import importlib.util
    import sys
    from pathlib import Path

    from evalkit.did import TripleDiff

    # the contract suite's cells, loaded by path so the test also runs on its own
    path = Path(__file__).resolve().parents[1] / "contract" / "cases.py"
    spec = importlib.util.spec_from_file_location("_contract_cases", path)
    assert spec is not None and spec.loader is not None
    cases = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(cases)
    triple_cells = cases.triple_cells
    from evalkit.errors import FewClustersWarning

    cells = triple_cells()
    cells["city"] = cells["city"] % 12
    cells["post"] = ((cells["city"] == 0) & (cells["month"] >= 4)).astype(int)
    est = TripleDiff(
        outcome="y",
        unit="city",
        time="month",
        group="group",
        target=2,
        treatment="post",
        weights="n",
    )
    with pytest.warns(FewClustersWarning, match="independent over time"):
        res = est.fit(cells)
    assert res.inference.method == "hetero"
    two = cells.assign(month=(cells["month"] >= 4).astype(int))
    two = two.groupby(["city", "month", "group"], as_index=False).agg(
        y=("y", "mean"), n=("n", "sum"), post=("post", "max")
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        est.fit(two)


def test_separate_targets_by_subgroup_keep_their_target_labels():
    # issue 8 item 6: rows were a, a, b, b without target labels, so one pairwise
    # difference and one equality test were silently lost
    df = cells(7, n_group=4)
    df["half"] = np.where(df["month"] % 2 == 0, "even", "odd")
    est = TripleDiff(**SEPARATE)
    both = fit(est, df, by="half", inference="cluster")
    tidy = both.tidy()
    assert {"subgroup", "group"} <= set(tidy.columns)
    rows = list(zip(tidy["subgroup"], tidy["group"], strict=True))
    assert rows == [
        ("even", "kids"),
        ("even", "migrant"),
        ("odd", "kids"),
        ("odd", "migrant"),
        ("even - odd", "kids"),
        ("even - odd", "migrant"),
    ]
    tests = both.info["equality_tests"]
    assert [(t["term"], t["group"]) for t in tests] == [("DDD", "kids"), ("DDD", "migrant")]
    for target in ("kids", "migrant"):
        one = fit(est, df[df["half"] == "even"], inference="cluster")
        assert both.estimate("DDD", subgroup="even", group=target) == pytest.approx(
            one.estimate("DDD", group=target), rel=1e-12
        )
        a = both.estimate("DDD", subgroup="even", group=target)
        b = both.estimate("DDD", subgroup="odd", group=target)
        assert both.estimate("DDD", subgroup="even - odd", group=target) == pytest.approx(a - b)
