"""Few-cluster inference of DML fits: CR2 with Satterthwaite df and the wild cluster bootstrap.

Reference: the CR2 variance and its degrees of freedom against a direct computation
(the adjustment matrices ``(I - H_gg)^(-1/2)`` by eigendecomposition, the
Bell-McCaffrey degrees of freedom from the eigenvalues of ``G'G``) on a small
regression; the wild bootstrap of the scores against evalkit's wild cluster bootstrap
of the DML final-stage regression (``Y - l(X)`` on ``D - m(X)``); and the same seed
giving the same draws for any number of worker processes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import DesignError, InferenceNotSupportedError, NotEstimableError
from evalkit.inference.score_cluster import (
    ScoreSums,
    bm_df,
    cr2_score,
    score_sums,
    score_wild_bootstrap,
)
from evalkit.inference.wild import WildBootstrap


def _inv_sqrt(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(m)
    return vecs @ np.diag(vals**-0.5) @ vecs.T


def direct_cr2(x: np.ndarray, y: np.ndarray, codes: np.ndarray) -> tuple[float, float, float]:
    """CR2 and Bell-McCaffrey df of the slope of ``y`` on ``x`` (no intercept), by brute force."""
    n = len(y)
    xtx = float(x @ x)
    beta = float(x @ y) / xtx
    e = y - beta * x
    hat = np.outer(x, x) / xtx
    resid_maker = np.eye(n) - hat
    var = 0.0
    columns = []
    for g in np.unique(codes):
        rows = np.flatnonzero(codes == g)
        a_g = _inv_sqrt(np.eye(len(rows)) - hat[np.ix_(rows, rows)])
        var += float(x[rows] @ a_g @ e[rows]) ** 2
        # g_s = (I - H)[:, s] A_s X_s (X'X)^-1: the CR2 variance is (sum_s (g_s' eps)^2)
        columns.append(resid_maker[:, rows] @ a_g @ x[rows] / xtx)
    gmat = np.column_stack(columns)
    lam = np.linalg.eigvalsh(gmat.T @ gmat)
    return beta, float(np.sqrt(var / xtx**2)), float(lam.sum() ** 2 / (lam**2).sum())


def _small_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = np.array([1, 2, 3, 5, 8, 2, 4])  # unequal clusters, one singleton
    codes = np.repeat(np.arange(len(sizes)), sizes)
    x = rng.normal(size=codes.size) + rng.normal(size=len(sizes))[codes]
    y = 0.4 * x + rng.normal(size=len(sizes))[codes] + rng.normal(size=codes.size)
    return x, y, codes


def test_cr2_equals_the_direct_computation():
    x, y, codes = _small_case()
    beta, se, df = direct_cr2(x, y, codes)
    res = cr2_score(score_sums(-(x**2), x * y, codes))
    assert res.estimate == pytest.approx(beta, rel=1e-12)
    assert res.std_error == pytest.approx(se, rel=1e-10)
    assert res.df == pytest.approx(df, rel=1e-10)
    assert res.n_clusters == 7


def test_cr2_with_row_weights_equals_weighted_least_squares():
    x, y, codes = _small_case(1)
    w = np.where(codes % 2 == 0, 0.5, 0.25)  # constant within clusters, as DoubleML's folds
    beta, se, df = direct_cr2(np.sqrt(w) * x, np.sqrt(w) * y, codes)
    res = cr2_score(score_sums(-(x**2), x * y, codes, weights=w))
    assert (res.estimate, res.std_error, res.df) == pytest.approx((beta, se, df), rel=1e-10)


def test_equal_leverage_gives_g_minus_one_df_and_the_cr1_factor():
    g = 12
    h = np.full(g, 1 / g)
    assert bm_df(h) == pytest.approx(g - 1, rel=1e-12)
    rng = np.random.default_rng(2)
    sums = ScoreSums(np.full(g, -2.0), rng.normal(size=g))
    s = sums.scores()
    cr0 = np.sqrt(np.sum(s**2)) / abs(sums.a.sum())
    # with equal leverage CR2 is CR0 times sqrt(G / (G - 1)), exactly CR1
    assert cr2_score(sums).std_error == pytest.approx(cr0 * np.sqrt(g / (g - 1)), rel=1e-12)


def test_cr2_refuses_a_cluster_that_carries_the_whole_score():
    with pytest.raises(NotEstimableError, match="below 1"):
        cr2_score(ScoreSums(np.array([-1.0, 0.0]), np.array([1.0, 0.5])))


def test_score_wild_bootstrap_equals_the_wild_bootstrap_of_the_regression():
    x, y, codes = _small_case(3)
    ref = WildBootstrap(x, y, codes, ssc=7 / 6).test(reps=999, rng=np.random.default_rng(5))
    res, _ = score_wild_bootstrap(score_sums(-(x**2), x * y, codes), rng=np.random.default_rng(5))
    assert res.enumerated and res.reps == 2**7 == ref.reps
    assert res.p_value == pytest.approx(ref.p_value, abs=1e-12)
    assert res.conf_low == pytest.approx(ref.conf_low, rel=1e-8)
    assert res.conf_high == pytest.approx(ref.conf_high, rel=1e-8)
    assert res.std_error_cr1 == pytest.approx(ref.std_error_cr1, rel=1e-12)


# ---------------------------------------------------------------- DML fits


def _clustered(seed: int = 0, n: int = 500, g: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.lognormal(0.0, 1.0, g)
    cl = rng.choice(g, size=n, p=size / size.sum())
    x = rng.normal(size=n) + 0.3 * rng.normal(size=g)[cl]
    d = 0.5 * x + rng.normal(size=g)[cl] + 0.5 * rng.normal(size=n)
    y = 0.3 * d + x + rng.normal(size=g)[cl] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "x": x, "cl": cl})


def _plr(**kw):
    from evalkit.dml import PLR

    opts = dict(outcome="y", treatment="d", covariates=["x"], cluster="cl", learner="logit")
    return PLR(**{**dict(opts, n_folds=5), **kw})


def _fit(est, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(data, **kw)


def test_plr_cr2_is_the_direct_cr2_of_the_final_stage():
    data = _clustered()
    fit = _fit(_plr(), data, seed=4, inference="cr2")
    model = fit._model
    assert fit.inference.method == "cr2"
    row = fit.tidy().iloc[0]
    assert row["estimate"] == pytest.approx(float(model.coef[0]), rel=1e-12)
    # the final stage: residualised outcome on residualised treatment, with DoubleML's
    # fold weights (one over the clusters in the fold) as regression weights
    from evalkit.dml.few_clusters import fold_weights

    w = fold_weights(model)[:, 0]
    pred = model.predictions
    v = data["d"].to_numpy() - pred["ml_m"][:, 0, 0]
    u = data["y"].to_numpy() - pred["ml_l"][:, 0, 0]
    codes = np.unique(data["cl"].to_numpy(), return_inverse=True)[1]
    beta, se, df = direct_cr2(np.sqrt(w) * v, np.sqrt(w) * u, codes)
    assert row["estimate"] == pytest.approx(beta, rel=1e-10)
    assert row["std_error"] == pytest.approx(se, rel=1e-8)
    assert fit.uncertainty.df[0] == pytest.approx(df, rel=1e-8)
    assert df < 19  # unequal municipalities: fewer than G - 1
    from scipy import stats

    crit = stats.t.ppf(0.975, df)
    assert row["conf_high"] == pytest.approx(beta + crit * se, rel=1e-8)


def test_plr_cr2_without_the_correction_is_doubleml_with_equal_folds():
    data = _clustered(g=20)
    fit = _fit(_plr(n_folds=5), data, seed=2, inference="cluster")
    model = fit._model
    from evalkit.dml.few_clusters import fold_weights

    w = fold_weights(model)[:, 0]
    assert set(np.round(1 / w, 9)) == {4.0}  # 20 clusters in 5 folds of 4
    codes = fit._codes
    sums = score_sums(
        model.psi_elements["psi_a"][:, 0, 0], model.psi_elements["psi_b"][:, 0, 0], codes, w
    )
    cr0 = np.sqrt(np.sum(sums.scores() ** 2)) / abs(sums.a.sum())
    assert cr0 == pytest.approx(float(model.se[0]), rel=1e-10)
    assert sums.theta == pytest.approx(float(model.coef[0]), rel=1e-12)


def test_plr_wild_is_the_wild_bootstrap_of_the_final_stage():
    data = _clustered(g=12)
    fit = _fit(_plr(n_folds=4), data, seed=6, inference="wild", reps=999)
    model = fit._model
    from evalkit.core.random import make_rng
    from evalkit.dml.few_clusters import fold_weights

    w = fold_weights(model)[:, 0]
    pred = model.predictions
    v = data["d"].to_numpy() - pred["ml_m"][:, 0, 0]
    u = data["y"].to_numpy() - pred["ml_l"][:, 0, 0]
    codes = fit._codes
    rng, _ = make_rng(6)
    ref = WildBootstrap(np.sqrt(w) * v, np.sqrt(w) * u, codes, ssc=12 / 11).test(reps=999, rng=rng)
    row = fit.tidy().iloc[0]
    assert ref.enumerated is False  # 2^12 > 999 draws: random Rademacher weights
    assert row["p_value"] == pytest.approx(ref.p_value, abs=1e-12)
    assert row["conf_low"] == pytest.approx(ref.conf_low, rel=1e-7)
    assert row["conf_high"] == pytest.approx(ref.conf_high, rel=1e-7)
    assert np.isnan(row["std_error"])
    assert fit.inference.reps == 999
    # another level from the same draws
    lo90 = fit.tidy(level=0.9).iloc[0]["conf_low"]
    assert row["conf_low"] < lo90 < row["estimate"]


def test_wild_draws_are_the_same_for_any_number_of_jobs():
    data = _clustered(g=14)
    one = _fit(_plr(jobs=1), data, seed=9, inference="wild", reps=499).tidy()
    two = _fit(_plr(jobs=2), data, seed=9, inference="wild", reps=499).tidy()
    pd.testing.assert_frame_equal(one, two)
    again = _fit(_plr(jobs=1), data, seed=9, inference="wild", reps=499).tidy()
    pd.testing.assert_frame_equal(one, again)


def test_cr2_with_repetitions_uses_the_median_rule():
    data = _clustered()
    fit = _fit(_plr(n_rep=3), data, seed=1, inference="cr2")
    model = fit._model
    from evalkit.dml.few_clusters import fold_weights
    from evalkit.dml.heterogeneity import median_aggregate

    w = fold_weights(model)
    fits = [
        cr2_score(
            score_sums(
                model.psi_elements["psi_a"][:, r, 0],
                model.psi_elements["psi_b"][:, r, 0],
                fit._codes,
                w[:, r],
            )
        )
        for r in range(3)
    ]
    _, se = median_aggregate(
        np.array([f.estimate for f in fits]), np.array([f.std_error for f in fits])
    )
    assert fit.tidy().iloc[0]["std_error"] == pytest.approx(se, rel=1e-12)
    assert fit.uncertainty.df[0] == pytest.approx(min(f.df for f in fits))


def test_bad_requests_are_refused_with_a_hint():
    data = _clustered()
    with pytest.raises(DesignError, match="needs a cluster column"):
        _fit(_plr(cluster=None), data, seed=1, inference="cr2")
    with pytest.raises(InferenceNotSupportedError, match="n_rep=1"):
        _fit(_plr(n_rep=2), data, seed=1, inference="wild")
    with pytest.raises(InferenceNotSupportedError, match="one-way"):
        _fit(_plr(cluster=("cl", "x2")), data.assign(x2=data["cl"] % 3), seed=1, inference="cr2")
    with pytest.raises(NotEstimableError, match="CR2"):
        _fit(_plr(), data.assign(half=data["cl"] % 2), seed=1, inference="cr2", by="half")


def test_plr_jackknife_is_the_leave_one_cluster_out_jackknife_of_the_final_stage():
    data = _clustered(g=15)
    fit = _fit(_plr(), data, seed=3, inference="jackknife")
    from evalkit.dml.few_clusters import fold_weights

    model = fit._model
    w = fold_weights(model)[:, 0]
    pred = model.predictions
    v = data["d"].to_numpy() - pred["ml_m"][:, 0, 0]
    u = data["y"].to_numpy() - pred["ml_l"][:, 0, 0]
    codes = fit._codes
    theta = np.sum(w * v * u) / np.sum(w * v * v)
    loo = np.array(
        [np.sum((w * v * u)[codes != g]) / np.sum((w * v * v)[codes != g]) for g in range(15)]
    )
    se = np.sqrt(14 / 15 * np.sum((loo - theta) ** 2))
    row = fit.tidy().iloc[0]
    assert row["estimate"] == pytest.approx(theta, rel=1e-10)
    assert row["std_error"] == pytest.approx(se, rel=1e-9)
    assert fit.uncertainty.df[0] == 14
    assert fit.inference.method == "jackknife"
