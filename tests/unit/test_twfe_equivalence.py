"""TWFE fast paths against a slow, obviously correct dense dummy-variable regression.

The dense path builds every unit and period dummy, solves by least squares, and computes
each covariance straight from its textbook definition (CR2: Bell & McCaffrey 2002; df:
Pustejovsky & Tipton 2018, eq. for the Satterthwaite approximation with working model I).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.did import TWFE


def _panel(
    seed: int, n_units: int = 14, n_periods: int = 6, drop: float = 0.0, weights: bool = False
):
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_periods)
    time = np.tile(np.arange(n_periods), n_units)
    city = unit // 2
    cohort = np.where(city % 3 == 0, 3, 0)
    d = ((cohort > 0) & (time >= cohort)).astype(int)
    x = rng.normal(size=len(unit))
    y = 0.5 * d + 0.3 * x + rng.normal(size=n_units)[unit] + rng.normal(size=n_periods)[time]
    y = y + rng.normal(size=len(unit)) * (1 + city % 2)
    df = pd.DataFrame({"id": unit, "t": time, "city": city, "d": d, "x": x, "y": y})
    if weights:
        df["w"] = rng.uniform(0.5, 3.0, size=len(df))
    if drop:
        df = df.sample(frac=1 - drop, random_state=seed).sort_index()
    return df


def _dense(df, cluster, weights=None, covariates=("x",)):
    names = ["d", *covariates]
    x = df[names].to_numpy(float)
    du = pd.get_dummies(df["id"]).to_numpy(float)
    dt = pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]
    full = np.column_stack([x, du, dt])
    y = df["y"].to_numpy(float)
    sw = np.sqrt(df[weights].to_numpy(float)) if weights else np.ones(len(df))
    xs, ys = full * sw[:, None], y * sw
    bread = np.linalg.pinv(xs.T @ xs)
    beta = bread @ xs.T @ ys
    e = ys - xs @ beta
    hat = xs @ bread @ xs.T
    codes = pd.factorize(df[cluster])[0]
    k = len(names)
    meat = np.zeros((xs.shape[1], xs.shape[1]))
    a_blocks = {}
    for g in np.unique(codes):
        idx = np.flatnonzero(codes == g)
        m = np.eye(len(idx)) - hat[np.ix_(idx, idx)]
        vals, vecs = np.linalg.eigh(m)
        inv_sqrt = np.where(vals > 1e-10, 1 / np.sqrt(np.clip(vals, 1e-10, None)), 0.0)
        a = (vecs * inv_sqrt) @ vecs.T
        a_blocks[g] = (idx, a)
        s = xs[idx].T @ a @ e[idx]
        meat += np.outer(s, s)
    v = bread @ meat @ bread
    ih = np.eye(len(y)) - hat
    dfs = []
    for j in range(k):
        c = np.zeros(xs.shape[1])
        c[j] = 1.0
        q = np.zeros((len(a_blocks), len(y)))
        for r, (idx, a) in enumerate(a_blocks.values()):
            p = np.zeros(len(y))
            p[idx] = a @ xs[idx] @ bread @ c
            q[r] = ih @ p
        omega = q @ q.T
        dfs.append(np.trace(omega) ** 2 / (omega**2).sum())
    return beta[:k], np.sqrt(np.diag(v)[:k]), np.array(dfs)


CASES = [
    dict(seed=1, drop=0.0, weights=False, cluster="id"),
    dict(seed=2, drop=0.0, weights=False, cluster="city"),
    dict(seed=3, drop=0.15, weights=False, cluster="city"),
    dict(seed=4, drop=0.1, weights=True, cluster="city"),
    dict(seed=5, drop=0.0, weights=True, cluster="id"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c['seed']}-{c['cluster']}")
def test_cr2_equals_dense_lsdv_definition(case):
    df = _panel(case["seed"], drop=case["drop"], weights=case["weights"])
    w = "w" if case["weights"] else None
    est = TWFE(
        outcome="y",
        treatment="d",
        unit="id",
        time="t",
        covariates=["x"],
        weights=w,
        cluster=case["cluster"],
        drop_singletons=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.fit(df, inference="cr2")
    beta, se, dfs = _dense(df, case["cluster"], w)
    tidy = res.tidy()
    np.testing.assert_allclose(tidy["estimate"], beta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tidy["std_error"], se, rtol=1e-8)
    np.testing.assert_allclose(res._table["df"], dfs, rtol=1e-7)


@pytest.mark.parametrize("drop", [0.0, 0.2])
def test_alternating_projections_equal_closed_form_and_dense(drop):
    df = _panel(11, n_units=30, n_periods=7, drop=drop, weights=True)
    for w in (None, "w"):
        est = TWFE(
            outcome="y",
            treatment="d",
            unit="id",
            time="t",
            covariates=["x"],
            weights=w,
            drop_singletons=False,
        )
        res = est.fit(df, inference="iid")
        beta, _, _ = _dense(df, "id", w)
        np.testing.assert_allclose(res.tidy()["estimate"], beta, rtol=1e-9)
