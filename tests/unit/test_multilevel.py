"""multilevel.MixedModel: equivalence with statsmodels and with a dense computation, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import (
    DataError,
    DesignError,
    EvalkitWarning,
    NotEstimableError,
    RowsDroppedWarning,
)
from evalkit.multilevel import MixedModel


def _data(n_groups: int = 40, size: int = 12, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    office = rng.choice(["integrated", "proactive", "separate"], n_groups)[g]
    age = rng.normal(22, 3, g.size)
    effect = pd.Series(office).map({"separate": 0.0, "integrated": 0.3, "proactive": 0.5})
    slope = rng.normal(0, 0.3, n_groups)[g]
    y = (
        1.0
        + effect.to_numpy()
        + (0.1 + slope) * (age - 22)
        + rng.normal(0, 0.6, n_groups)[g]
        + rng.normal(0, 1, g.size) * (1 + 0.5 * (office == "proactive"))
    )
    return pd.DataFrame({"y": y, "office": office, "age": age, "kommune": [f"k{i:02d}" for i in g]})


def test_equals_statsmodels_mixedlm_directly() -> None:
    import statsmodels.formula.api as smf

    df = _data()
    res = MixedModel(outcome="y", treatment="office", covariates=("age",), cluster="kommune").fit(
        df, inference="iid"
    )
    direct = smf.mixedlm("y ~ C(office) + age", df, groups=df["kommune"]).fit(reml=True)
    np.testing.assert_allclose(res.tidy()["estimate"], direct.fe_params.to_numpy(), rtol=1e-6)
    assert res.terms == ["Intercept", "office[proactive]", "office[separate]", "age"]
    assert res.info["reference_levels"] == {"office": "integrated"}
    comp = res.info["variance_components"]
    assert comp["var(kommune: Intercept)"] == pytest.approx(
        float(direct.cov_re.iloc[0, 0]), rel=1e-6
    )
    assert comp["var(residual)"] == pytest.approx(direct.scale, rel=1e-6)
    assert res.info["log_likelihood"] == pytest.approx(direct.llf, rel=1e-9)


def _dense_sandwich(
    df: pd.DataFrame, res, slopes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(X'V^-1X)^-1 and the CR1-scaled sandwich from the full block-diagonal V (by definition)."""
    x = np.column_stack(
        [np.ones(len(df)), (df["office"] == "proactive"), (df["office"] == "separate"), df["age"]]
    ).astype(float)
    z = np.column_stack([np.ones(len(df))] + [df[c].to_numpy() for c in slopes])
    comp = res.info["variance_components"]
    names = ["Intercept", *slopes]
    q = len(names)
    g_cov = np.zeros((q, q))
    for i in range(q):
        g_cov[i, i] = comp[f"var(kommune: {names[i]})"]
        for j in range(i):
            g_cov[i, j] = g_cov[j, i] = comp[f"cov(kommune: {names[j]}, {names[i]})"]
    s2 = comp["var(residual)"]
    groups = df["kommune"].to_numpy()
    same = groups[:, None] == groups[None, :]
    v = s2 * np.eye(len(df)) + (z @ g_cov @ z.T) * same
    vinv = np.linalg.inv(v)
    bread = np.linalg.inv(x.T @ vinv @ x)
    e = df["y"].to_numpy() - x @ res.tidy()["estimate"].to_numpy()
    labels = np.unique(groups)
    meat = np.zeros((x.shape[1], x.shape[1]))
    for lab in labels:
        r = groups == lab
        u = x[r].T @ vinv[np.ix_(r, r)] @ e[r]
        meat += np.outer(u, u)
    n_g = len(labels)
    return bread, n_g / (n_g - 1) * bread @ meat @ bread


@pytest.mark.parametrize("slopes", [(), ("age",)])
def test_standard_errors_equal_the_dense_definition(slopes: tuple[str, ...]) -> None:
    df = _data(n_groups=30, size=8)
    model = MixedModel(
        outcome="y",
        treatment="office",
        covariates=("age",),
        cluster="kommune",
        random_slopes=slopes,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iid = model.fit(df, inference="iid")
        cl = model.fit(df, inference="cluster")
    bread, sandwich = _dense_sandwich(df, iid, slopes)
    np.testing.assert_allclose(iid.vcov.to_numpy(), bread, rtol=1e-8)
    np.testing.assert_allclose(cl.vcov.to_numpy(), sandwich, rtol=1e-8)
    assert "29" in cl.inference.description


@pytest.mark.filterwarnings("ignore::evalkit.errors.ConvergenceWarning")
def test_default_inference_follows_the_number_of_groups() -> None:
    many = MixedModel(outcome="y", treatment="office", cluster="kommune").fit(_data(n_groups=40))
    assert many.inference.method == "cluster"
    few = MixedModel(outcome="y", treatment="office", cluster="kommune").fit(_data(n_groups=12))
    assert few.inference.method == "iid"
    assert "fewer than 30" in few.inference.reason


def test_data_unchanged_deterministic_and_rows_dropped_counted() -> None:
    df = _data()
    df.loc[[3, 7], "age"] = np.nan
    before = df.copy()
    model = MixedModel(outcome="y", treatment="office", covariates=("age",), cluster="kommune")
    with pytest.warns(RowsDroppedWarning, match="dropped 2 of 480 rows"):
        a = model.fit(df, seed=3)
    with pytest.warns(RowsDroppedWarning):
        b = model.fit(df, seed=3)
    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    assert a.info["n_obs"] == 478


def test_bad_input_names_the_column() -> None:
    df = _data()
    with pytest.raises(DataError, match="'agee'"):
        MixedModel(outcome="y", covariates=("agee",), cluster="kommune").fit(df)
    with pytest.raises(DesignError, match="reml"):
        MixedModel(outcome="y", cluster="kommune", reml="yes")  # type: ignore[arg-type]
    one = df.assign(office="separate")
    with pytest.raises(NotEstimableError, match="'office' has one level"):
        MixedModel(outcome="y", treatment="office", cluster="kommune").fit(one)
    # a covariate constant in these data (country on one country's extract) is dropped
    with pytest.warns(EvalkitWarning, match=r"dropped covariate\(s\) \['office'\]"):
        res = MixedModel(
            outcome="y", treatment="age", covariates=["office"], cluster="kommune"
        ).fit(one)
    assert res.terms == ["Intercept", "age"] and res.info["dropped_covariates"] == ["office"]
    dup = df.assign(age2=df["age"] * 2)
    with pytest.raises(NotEstimableError, match="collinear"):
        MixedModel(outcome="y", covariates=("age", "age2"), cluster="kommune").fit(dup)
    with pytest.raises(DesignError, match="clusters by its groups"):
        MixedModel(outcome="y", treatment="office", cluster="kommune").fit(
            df, inference=__import__("evalkit").inference.Cluster(cluster="office")
        )
    with pytest.raises(DataError, match="non-numeric"):
        MixedModel(outcome="office", cluster="kommune", covariates=("age",)).fit(df)


def test_numeric_columns_coded_as_levels_when_asked() -> None:
    df = _data()
    df["year"] = np.tile([2019, 2020, 2021], len(df) // 3)
    res = MixedModel(
        outcome="y", covariates=("age", "year"), categorical=("year",), cluster="kommune"
    ).fit(df)
    assert res.terms == ["Intercept", "age", "year[2020]", "year[2021]"]
    assert res.info["reference_levels"] == {"year": "2019"}
    with pytest.raises(DesignError, match="categorical"):
        MixedModel(outcome="y", covariates=("age",), categorical=("year",), cluster="kommune")
    # a pandas Categorical keeps its own order: its first category is the reference
    df["office"] = pd.Categorical(df["office"], ["separate", "integrated", "proactive"])
    res = MixedModel(outcome="y", treatment="office", cluster="kommune").fit(df)
    assert res.terms == ["Intercept", "office[integrated]", "office[proactive]"]


def test_by_subgroups_and_json() -> None:
    df = _data(n_groups=40)
    df["need"] = np.where(df["age"] > 22, "high", "low")
    res = MixedModel(outcome="y", treatment="office", cluster="kommune").fit(df, by="need")
    tidy = res.tidy()
    assert set(tidy["subgroup"].dropna()) >= {"high", "low"}
    assert res.to_dict()["estimator"] == "multilevel.MixedModel"


def _reml_by_profile(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> tuple[float, np.ndarray]:
    """REML of a random-intercept model by brute force: the variance ratio gamma = var(u) /
    var(e) maximises the profiled restricted log-likelihood (searched on [0, 1]), the fixed
    effects are GLS at it. Each group's V = I + gamma * 11' is built densely."""
    from scipy.optimize import minimize_scalar

    blocks = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    n, p = x.shape

    def parts(gamma: float) -> tuple[float, np.ndarray, float]:
        xvx, xvy, logdet = np.zeros((p, p)), np.zeros(p), 0.0
        for b in blocks:
            v = np.eye(b.size) + gamma * np.ones((b.size, b.size))
            vi = np.linalg.inv(v)
            xvx += x[b].T @ vi @ x[b]
            xvy += x[b].T @ vi @ y[b]
            logdet += np.linalg.slogdet(v)[1]
        beta = np.linalg.solve(xvx, xvy)
        rss = 0.0
        for b in blocks:
            r = y[b] - x[b] @ beta
            rss += r @ np.linalg.solve(np.eye(b.size) + gamma * np.ones((b.size, b.size)), r)
        ll = -0.5 * ((n - p) * np.log(rss / (n - p)) + logdet + np.linalg.slogdet(xvx)[1])
        return ll, beta, rss

    best = minimize_scalar(
        lambda g: -parts(g)[0], bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-12}
    )
    return float(best.x), parts(float(best.x))[1]


def test_a_variance_near_zero_is_fitted_not_stepped_over() -> None:
    """statsmodels' default optimisers (bfgs, lbfgs) step onto a random-intercept variance of
    exactly zero on these data, where its restricted log-likelihood evaluates to +inf and the
    fixed effects are wrong (the intercept off by ~0.29, the outcome's mean). The fit must
    find the true optimum (a small positive variance), equal a brute-force REML, and not
    depend on the order of the rows."""
    rng = np.random.default_rng(0)
    n, n_groups = 3000, 60
    groups = rng.integers(0, n_groups, n)
    z = rng.normal(size=n)
    d = (rng.random(n) < 0.3).astype(float)
    y = (rng.random(n) < 0.3 + 0.05 * d).astype(float)  # no group effect planted
    df = pd.DataFrame({"y": y, "z": z, "d": d, "kommune": groups})
    est = MixedModel(outcome="y", treatment="d", covariates=("z",), cluster="kommune")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.fit(df, inference="iid")
        shuffled = est.fit(df.sample(frac=1.0, random_state=3), inference="iid")
    assert np.isfinite(res.info["log_likelihood"])
    x = np.column_stack([np.ones(n), d, z])  # the model's column order: Intercept, d, z
    gamma, beta = _reml_by_profile(y, x, groups)
    assert gamma > 0  # the optimum is inside, not at zero
    np.testing.assert_allclose(res.tidy()["estimate"], beta, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        shuffled.tidy()["estimate"], res.tidy()["estimate"], rtol=1e-5, atol=1e-7
    )
