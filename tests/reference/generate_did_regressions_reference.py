"""Generate reference values for evalkit's EventStudy, SunAbraham, ImputationDiD and TripleDiff.

Run from the repository root::

    /work/venv/bin/python tests/reference/generate_did_regressions_reference.py

It writes ``tests/reference/data/did_regressions_reference.json``. Nothing in evalkit is used:
every number comes from a peer package (pyfixest 0.60, diff-diff 3.13, statsmodels) or from a
dense, by-definition computation in this file, and each model's ``source`` entry says which.

Sources
-------
* Event study (ES*): pyfixest ``feols("lemp ~ i(rel, ref=-1) | countyreal + year")`` with
  never-treated counties in the reference category, vcov iid / hetero / CRV1 (default ssc).
  Pre-trend test: pyfixest ``wald_test`` statistic (W) of the lead coefficients, reported as
  ``F = W / q`` with the ``F(q, G - 1)`` p-value (pyfixest's own convention for clustered fits;
  its wald_test switches to chi2 when R is not the identity, so the F p-value is computed here
  from its W). CR2 and Satterthwaite df: dense dummy-variable regression by definition
  (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018, working model I).
* Sun & Abraham (SA*): pyfixest on the full set of cohort x relative-period indicators (never-
  treated, or last-treated, control cohort), aggregated as fixest's ``aggregate()`` does
  (shares = column sums of the indicators, variance ``s' V s`` with shares treated as known:
  fixest source, ``aggregate.fixest``); second source diff-diff ``SunAbraham`` (same estimates
  and CR1 SEs). CR2 of the aggregates by definition on the dense design with the aggregate's
  contrast vector.
* Imputation (IM*): diff-diff ``ImputationDiD`` (Borusyak, Jaravel & Spiess 2024 Theorem 3
  conservative variance, auxiliary model by cohort x horizon; diff-diff reports parity with R
  ``didimputation``), ``leave_one_out=True`` for the leave-out variant, ``pretrend_test`` for
  Test 1. Point estimates cross-checked by hand: pyfixest ``feols`` on the untreated rows
  (``fixef_rm="none"``) and ``predict`` on the treated rows. pyfixest's ``did2s`` (same point
  estimates by construction) fails on mpdta: its first stage drops the 2004 cohort's singleton
  untreated rows and its GMM variance then mis-aligns rows (shape error), so it is not used.
* Triple differences (TD*): data simulated here (stored in the JSON so that the tests use the
  same numbers); pyfixest ``feols("y ~ ddd (+ x) | city^hh + month^hh + city^month")`` with
  ``fixef_tol=1e-13`` for coefficients and CRV1; statsmodels dense dummy-variable WLS for iid and
  HC1 (pyfixest counts ``UG + TG + UT - 2`` fixed-effect parameters, not the rank, for iid/hetero:
  recorded as an alternative); CR2 by definition. diff-diff ``TripleDifference(estimation_method=
  "reg")`` on simulated individual-level 2x2x2 data for the saturated case.
"""

from __future__ import annotations

import json
import os
import warnings
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyfixest as pf
import scipy.linalg
import statsmodels.api as sm
from scipy import stats

# the copies packaged with evalkit (EVALKIT_DATA_DIR may name another folder with the same files)
DATA_DIR = Path(
    os.environ.get(
        "EVALKIT_DATA_DIR", Path(__file__).resolve().parents[2] / "src/evalkit/datasets/data"
    )
)
OUT_PATH = Path(__file__).resolve().parent / "data" / "did_regressions_reference.json"
EIG_TOL = 1e-10
FIXEF_TOL = 1e-13


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def _mpdta() -> pd.DataFrame:
    df = pd.read_csv(DATA_DIR / "mpdta.csv")
    out = pd.DataFrame(
        {
            "countyreal": df["countyreal"].astype(int),
            "year": df["year"].astype(int),
            "lemp": df["lemp"].astype(float),
            "lpop": df["lpop"].astype(float),
            "ft": df["first.treat"].astype(int),
        }
    )
    out["w"] = np.exp(out["lpop"])
    out["x"] = out["lpop"] * (out["year"] - 2003) / 4.0
    out["rel"] = np.where(out["ft"] > 0, out["year"] - out["ft"], -1).astype(int)
    out["D"] = ((out["ft"] > 0) & (out["year"] >= out["ft"])).astype(int)
    return out


def _triple_cells(seed: int = 20240611) -> pd.DataFrame:
    """Bergen-like cells: 10 cities x 12 months x 4 household groups, city 0 treated from 6."""
    rng = np.random.default_rng(seed)
    n_city, n_month, n_group = 10, 12, 4
    c, m, g = (
        a.ravel()
        for a in np.meshgrid(
            np.arange(n_city), np.arange(n_month), np.arange(n_group), indexing="ij"
        )
    )
    n = rng.integers(5, 80, size=c.size).astype(float)
    post = ((c == 0) & (m >= 6)).astype(int)
    x = rng.normal(size=c.size)
    y = (
        rng.normal(size=(n_city, n_group))[c, g]
        + rng.normal(size=(n_month, n_group))[m, g]
        + rng.normal(size=(n_city, n_month))[c, m]
        + 0.4 * post * (g == 2)
        + 0.7 * post * (g == 3)
        + 0.25 * x
        + rng.normal(size=c.size) / np.sqrt(n)
    )
    return pd.DataFrame(
        {
            "city": c,
            "month": m,
            "hh": g,
            "post": post,
            "n": n,
            "x": np.round(x, 10),
            "y": np.round(y, 10),
        }
    )


def _ddd_individuals(seed: int = 7) -> pd.DataFrame:
    """Individuals in 2 states x 2 periods x 2 groups (eligible or not), state 1 treated."""
    rng = np.random.default_rng(seed)
    n = 400
    state = rng.integers(0, 2, size=n)
    period = rng.integers(0, 2, size=n)
    elig = rng.integers(0, 2, size=n)
    y = (
        0.5 * state
        + 0.3 * period
        + 0.2 * elig
        + 0.4 * state * period
        - 0.1 * state * elig
        + 0.25 * period * elig
        + 1.5 * state * period * elig
        + rng.normal(size=n)
    )
    return pd.DataFrame({"state": state, "period": period, "elig": elig, "y": np.round(y, 10)})


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _feols(fml: str, data: pd.DataFrame, vcov: Any, **kw: Any) -> pf.estimation.models.feols_.Feols:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.feols(fml, data=data, vcov=vcov, fixef_tol=FIXEF_TOL, **kw)


def _fit_summary(fit: Any, names: list[str] | None = None) -> dict[str, Any]:
    coef = fit.coef()
    se = fit.se()
    keys = list(coef.index) if names is None else names
    return {
        "coef": [float(coef[k]) for k in keys],
        "se": [float(se[k]) for k in keys],
        "df_t": int(fit._df_t),
        "df_k": int(fit._df_k),
        "N": int(fit._N),
    }


def _wald_f(fit: Any, idx: list[int], g: int) -> dict[str, float]:
    k = len(fit.coef())
    r = np.zeros((len(idx), k))
    r[np.arange(len(idx)), idx] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.wald_test(R=r, distribution="chi2")
    w = float(fit._wald_statistic)
    f = w / len(idx)
    return {
        "wald": w,
        "F": f,
        "df1": len(idx),
        "df2": g - 1,
        "p": float(stats.f.sf(f, len(idx), g - 1)),
    }


def _dummies(values: pd.Series, drop_first: bool = False) -> np.ndarray:
    levels = np.sort(values.unique())
    if drop_first:
        levels = levels[1:]
    return (values.to_numpy()[:, None] == levels[None, :]).astype(float)


def _dense_design(d: pd.DataFrame, regs: list[str], fes: list[pd.Series]) -> np.ndarray:
    """Regressors, then the first fixed effect's dummies in full and the others minus one level;
    columns that are linearly dependent on earlier ones are dropped (pivoted QR)."""
    parts = [d[regs].to_numpy(dtype=float)]
    for j, fe in enumerate(fes):
        parts.append(_dummies(fe, drop_first=j > 0))
    x = np.column_stack(parts)
    _, r, piv = scipy.linalg.qr(x, pivoting=True, mode="economic")
    diag = np.abs(np.diag(r))
    rank = int((diag > 1e-9 * diag[0]).sum())
    keep = np.sort(piv[:rank])
    if not set(range(len(regs))) <= set(keep):
        raise SystemExit("a regressor is collinear with the fixed effects")
    return x[:, keep]


def _inv_sqrt_psd(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(0.5 * (m + m.T))
    keep = vals > EIG_TOL
    root = np.zeros_like(vals)
    root[keep] = 1.0 / np.sqrt(vals[keep])
    return (vecs * root) @ vecs.T


def _cr2_by_definition(
    x: np.ndarray, y: np.ndarray, cl: np.ndarray, w: np.ndarray | None, contrasts: np.ndarray
) -> dict[str, Any]:
    """CR2 (Bell-McCaffrey) and Satterthwaite df of contrasts, on the sqrt(w)-scaled problem."""
    sw = np.ones(len(y)) if w is None else np.sqrt(w)
    xs, ys = x * sw[:, None], y * sw
    bread = np.linalg.inv(xs.T @ xs)
    beta = bread @ xs.T @ ys
    e = ys - xs @ beta
    h = xs @ bread @ xs.T
    ih = np.eye(len(y)) - h
    groups = np.unique(cl)
    idx = [np.flatnonzero(cl == g) for g in groups]
    a_blocks = [_inv_sqrt_psd(ih[np.ix_(ix, ix)]) for ix in idx]
    meat = np.zeros((x.shape[1], x.shape[1]))
    for ix, a in zip(idx, a_blocks, strict=True):
        s = xs[ix].T @ (a @ e[ix])
        meat += np.outer(s, s)
    v = bread @ meat @ bread
    out_v, out_df = [], []
    for c in contrasts:
        u = np.zeros((len(y), len(groups)))
        for j, (ix, a) in enumerate(zip(idx, a_blocks, strict=True)):
            u[ix, j] = a @ (xs[ix] @ (bread @ c))
        omega = u.T @ ih @ u
        out_df.append(float(np.trace(omega) ** 2 / np.sum(omega * omega)))
        out_v.append(float(c @ v @ c))
    return {"beta": beta, "var": out_v, "df": out_df}


def _statsmodels_lsdv(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, p: int) -> dict:
    model = sm.WLS(y, x, weights=w) if w is not None else sm.OLS(y, x)
    iid = model.fit()
    hc1 = model.fit(cov_type="HC1")
    return {
        "coef": [float(v) for v in iid.params[:p]],
        "se_iid": [float(v) for v in iid.bse[:p]],
        "se_hc1": [float(v) for v in hc1.bse[:p]],
        "df_resid": round(iid.df_resid),
        "rank": int(np.linalg.matrix_rank(x)),
    }


# ----------------------------------------------------------------------------------------------
# event study
# ----------------------------------------------------------------------------------------------


def _event_study(m: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fml = "lemp ~ i(rel, ref=-1) | countyreal + year"
    names = [f"rel::{e}" for e in (-4, -3, -2, 0, 1, 2, 3)]
    res: dict[str, Any] = {}
    for key, vc in (("iid", "iid"), ("hetero", "hetero"), ("cr1", {"CRV1": "countyreal"})):
        res[key] = _fit_summary(_feols(fml, m, vc), names)
    fit = _feols(fml, m, {"CRV1": "countyreal"})
    pretrend = _wald_f(fit, [0, 1, 2], 500)
    # CR2 by definition on the dense dummy-variable design
    regs = [f"e{e}" for e in (-4, -3, -2, 0, 1, 2, 3)]
    d = m.copy()
    for r, e in zip(regs, (-4, -3, -2, 0, 1, 2, 3), strict=True):
        d[r] = ((d["ft"] > 0) & (d["rel"] == e)).astype(float)
    x = _dense_design(d, regs, [d["countyreal"], d["year"]])
    cr2 = _cr2_by_definition(
        x, d["lemp"].to_numpy(float), d["countyreal"].to_numpy(), None, np.eye(x.shape[1])[:7]
    )
    out["ES1"] = {
        "description": "mpdta: lemp on event-time indicators -4..3 (ref -1; never-treated in "
        "the reference), countyreal + year effects, cluster countyreal",
        "options": {
            "outcome": "lemp",
            "unit": "countyreal",
            "time": "year",
            "cohort": "first.treat",
        },
        "event_time": [-4, -3, -2, 0, 1, 2, 3],
        "coef": res["cr1"]["coef"],
        "se": {
            "iid": res["iid"]["se"],
            "hetero": res["hetero"]["se"],
            "cluster": res["cr1"]["se"],
            "cr2": list(np.sqrt(cr2["var"])),
        },
        "df": {
            "iid": res["iid"]["df_t"],
            "hetero": res["hetero"]["df_t"],
            "cluster": res["cr1"]["df_t"],
            "cr2": cr2["df"],
        },
        "pretrend_cluster": pretrend,
        "n": res["cr1"]["N"],
        "source": {
            "coef": "pyfixest 0.60.0 feols i(rel, ref=-1)",
            "iid/hetero/cluster": "pyfixest 0.60.0 feols vcov iid / hetero / CRV1, default ssc",
            "cr2": "dense dummy-variable regression by definition (this script)",
            "pretrend_cluster": "pyfixest 0.60.0 wald_test W of leads -4,-3,-2; F = W/3, "
            "p from F(3, 499)",
        },
    }
    fit = _feols(fml, m, {"CRV1": "countyreal"}, weights="w")
    out["ES2"] = {
        "description": "ES1 weighted by w = exp(lpop)",
        "options": {
            "outcome": "lemp",
            "unit": "countyreal",
            "time": "year",
            "cohort": "first.treat",
            "weights": "w",
        },
        "event_time": [-4, -3, -2, 0, 1, 2, 3],
        "coef": _fit_summary(fit, names)["coef"],
        "se": {"cluster": _fit_summary(fit, names)["se"]},
        "pretrend_cluster": _wald_f(fit, [0, 1, 2], 500),
        "n": int(fit._N),
        "source": {"all": "pyfixest 0.60.0 feols weights='w', CRV1"},
    }
    # binned end points, window (-2, 2): rel < -2 -> -2, rel > 2 -> 2 (treated units only)
    b = m.copy()
    b["relb"] = np.where(b["ft"] > 0, b["rel"].clip(-2, 2), -1)
    fit = _feols("lemp ~ i(relb, ref=-1) | countyreal + year", b, {"CRV1": "countyreal"})
    nb = [f"relb::{e}" for e in (-2, 0, 1, 2)]
    out["ES3"] = {
        "description": "mpdta: window (-2, 2) with binned end points (event times below -2 "
        "pooled into -2, above 2 into 2)",
        "options": {
            "outcome": "lemp",
            "unit": "countyreal",
            "time": "year",
            "cohort": "first.treat",
            "window": [-2, 2],
            "bin_endpoints": True,
        },
        "event_time": [-2, 0, 1, 2],
        "coef": _fit_summary(fit, nb)["coef"],
        "se": {"cluster": _fit_summary(fit, nb)["se"]},
        "pretrend_cluster": _wald_f(fit, [0], 500),
        "n": int(fit._N),
        "source": {"all": "pyfixest 0.60.0 feols on a binned relative-time factor, CRV1"},
    }
    # not-yet-treated leads as controls: rel < -2 in the reference; rel > 2 rows dropped
    c = m[~((m["ft"] > 0) & (m["rel"] > 2))].copy()
    c["relc"] = np.where((c["ft"] > 0) & (c["rel"] >= -2), c["rel"], -1)
    fit = _feols("lemp ~ i(relc, ref=-1) | countyreal + year", c, {"CRV1": "countyreal"})
    nc = [f"relc::{e}" for e in (-2, 0, 1, 2)]
    out["ES4"] = {
        "description": "mpdta: window (-2, 2), control_group='not_yet_treated' (treated units' "
        "rows more than 2 periods before treatment are comparisons; rows after +2 dropped)",
        "options": {
            "outcome": "lemp",
            "unit": "countyreal",
            "time": "year",
            "cohort": "first.treat",
            "window": [-2, 2],
            "control_group": "not_yet_treated",
        },
        "event_time": [-2, 0, 1, 2],
        "coef": _fit_summary(fit, nc)["coef"],
        "se": {"cluster": _fit_summary(fit, nc)["se"]},
        "n": int(fit._N),
        "source": {"all": "pyfixest 0.60.0 feols, CRV1"},
    }
    return out


# ----------------------------------------------------------------------------------------------
# Sun & Abraham
# ----------------------------------------------------------------------------------------------


def _sunab(d: pd.DataFrame, controls: list[int], weights: str | None = None) -> dict[str, Any]:
    """Cohort x relative-period regression and fixest-style aggregation."""
    d = d.copy()
    treated = (d["ft"] > 0) & ~d["ft"].isin(controls)
    rel = d["year"] - d["ft"]
    cells = sorted(
        {
            (int(g), int(e))
            for g, e in zip(d.loc[treated, "ft"], rel[treated], strict=True)
            if e != -1
        },
        key=lambda c: (c[1], c[0]),
    )
    names = []
    for g, e in cells:
        name = f"c{g}_{'m' if e < 0 else 'p'}{abs(e)}"
        d[name] = (treated & (d["ft"] == g) & (rel == e)).astype(float)
        names.append(name)
    fml = f"lemp ~ {' + '.join(names)} | countyreal + year"
    kw = {"weights": weights} if weights else {}
    fits = {
        k: _feols(fml, d, vc, **kw)
        for k, vc in (("iid", "iid"), ("hetero", "hetero"), ("cluster", {"CRV1": "countyreal"}))
    }
    wv = d[weights].to_numpy(float) if weights else np.ones(len(d))
    counts = np.array([(d[n].to_numpy() * wv).sum() for n in names])  # fixest colSums(w*sign(mm))

    def agg(groups: list[list[int]]) -> dict[str, Any]:
        rows = np.zeros((len(groups), len(cells)))
        for i, idx in enumerate(groups):
            rows[i, idx] = counts[idx] / counts[idx].sum()
        out: dict[str, Any] = {"contrasts": rows}
        for k, fit in fits.items():
            b = fit.coef()[names].to_numpy()
            v = pd.DataFrame(fit._vcov, index=fit.coef().index, columns=fit.coef().index)
            v = v.loc[names, names].to_numpy()
            out[k] = {"coef": list(rows @ b), "se": list(np.sqrt(np.diag(rows @ v @ rows.T)))}
        return out

    events = sorted({e for _, e in cells})
    by_event = agg([[j for j, c in enumerate(cells) if c[1] == e] for e in events])
    overall = agg([[j for j, c in enumerate(cells) if c[1] >= 0]])
    cohorts = sorted({g for g, e in cells if e >= 0})
    by_cohort = agg([[j for j, c in enumerate(cells) if c[0] == g and c[1] >= 0] for g in cohorts])
    # CR2 of the event-time aggregates, by definition with the contrast vectors
    x = _dense_design(d, names, [d["countyreal"], d["year"]])
    contrasts = np.zeros((len(events), x.shape[1]))
    contrasts[:, : len(names)] = by_event["contrasts"]
    cr2 = _cr2_by_definition(
        x, d["lemp"].to_numpy(float), d["countyreal"].to_numpy(), wv if weights else None, contrasts
    )
    return {
        "cells": [{"cohort": g, "event_time": e} for g, e in cells],
        "cell_coef": list(fits["cluster"].coef()[names].to_numpy()),
        "cell_se": list(fits["cluster"].se()[names].to_numpy()),
        "event_time": events,
        "event": {k: by_event[k] for k in ("iid", "hetero", "cluster")},
        "event_cr2": {"se": list(np.sqrt(cr2["var"])), "df": cr2["df"]},
        "overall": overall["cluster"],
        "cohorts": cohorts,
        "cohort": by_cohort["cluster"],
        "n": int(fits["cluster"]._N),
        "df": {k: int(f._df_t) for k, f in fits.items()},
        "shares": by_event["contrasts"].tolist(),
    }


def _sun_abraham(m: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sa = _sunab(m, controls=[])
    from diff_diff import SunAbraham as DDSunAbraham

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dd = DDSunAbraham(cluster="countyreal").fit(
            m, outcome="lemp", unit="countyreal", time="year", first_treat="ft"
        )
    sa["diff_diff"] = {
        "event_time": sorted(dd.event_study_effects),
        "coef": [
            float(dd.event_study_effects[e]["effect"]) for e in sorted(dd.event_study_effects)
        ],
        "se": [float(dd.event_study_effects[e]["se"]) for e in sorted(dd.event_study_effects)],
        "overall": float(dd.overall_att),
        "overall_se": float(dd.overall_se),
    }
    sa.update(
        description="mpdta: Sun-Abraham, never-treated control cohort, ref -1, cluster countyreal",
        options={"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"},
        source={
            "cells": "pyfixest 0.60.0 feols on cohort x relative-period indicators, CRV1",
            "event/overall/cohort": "fixest aggregate() formulas applied to the pyfixest fit "
            "(shares = indicator column sums; s'Vs)",
            "event_cr2": "dense dummy-variable regression by definition, contrast = shares",
            "diff_diff": "diff-diff 3.13.0 SunAbraham(cluster='countyreal') (second source)",
        },
    )
    out["SA1"] = sa
    sw = _sunab(m, controls=[], weights="w")
    sw.update(
        description="SA1 weighted by w = exp(lpop) (weighted shares, as fixest with weights)",
        options={
            "outcome": "lemp",
            "unit": "countyreal",
            "time": "year",
            "cohort": "first.treat",
            "weights": "w",
        },
        source={
            "all": "pyfixest 0.60.0 feols weights='w' + fixest aggregate() formulas; CR2 by "
            "definition on the sqrt(w)-scaled design"
        },
    )
    out["SA2"] = sw
    last = m[(m["ft"] > 0) & (m["year"] < 2007)].copy()
    sl = _sunab(last, controls=[2007])
    sl.update(
        description="mpdta without never-treated counties; the last cohort (2007) is the "
        "control; years from 2007 on dropped",
        options={
            "outcome": "lemp",
            "unit": "countyreal",
            "time": "year",
            "cohort": "first.treat",
            "control_cohort": "last_treated",
        },
        data_filter="first.treat > 0",
        source={"all": "pyfixest 0.60.0 feols + fixest aggregate() formulas; CR2 by definition"},
    )
    out["SA3"] = sl
    return out


# ----------------------------------------------------------------------------------------------
# imputation
# ----------------------------------------------------------------------------------------------


def _imputation(m: pd.DataFrame) -> dict[str, Any]:
    from diff_diff import ImputationDiD as DDImputation

    out: dict[str, Any] = {}
    for key, covs in (("IM1", None), ("IM2", ["x"])):
        entry: dict[str, Any] = {}
        for lo in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = DDImputation(leave_one_out=lo, cluster="countyreal")
                res = est.fit(
                    m,
                    outcome="lemp",
                    unit="countyreal",
                    time="year",
                    first_treat="ft",
                    covariates=covs,
                )
                es = res.aggregate("event_study")
                grp = res.aggregate("group")
            keep = ~np.asarray(es.is_reference, dtype=bool)
            tag = "leave_out" if lo else "default"
            entry[tag] = {
                "overall": float(res.overall_att),
                "overall_se": float(res.overall_se),
                "event_time": [int(e) for e in np.asarray(es.event_time)[keep]],
                "coef": [float(v) for v in np.asarray(es.att)[keep]],
                "se": [float(v) for v in np.asarray(es.se)[keep]],
                "cohorts": [int(g) for g in grp.label],
                "cohort_coef": [float(v) for v in grp.att],
                "cohort_se": [float(v) for v in grp.se],
            }
            if not lo:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pt = (
                        DDImputation(cluster="countyreal", pretrends=True)
                        .fit(
                            m,
                            outcome="lemp",
                            unit="countyreal",
                            time="year",
                            first_treat="ft",
                            covariates=covs,
                        )
                        .pretrend_test(n_leads=3)
                    )
                entry["pretrend"] = {
                    "F": float(pt["f_stat"]),
                    "p": float(pt["p_value"]),
                    "df1": int(pt["df"]),
                }
        # by hand: untreated model in pyfixest, imputed effects averaged by event time
        untreated = m[m["D"] == 0]
        fml = "lemp ~ " + ("x" if covs else "1") + " | countyreal + year"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = pf.feols(fml, data=untreated, fixef_rm="none", fixef_tol=FIXEF_TOL)
            treated = m[m["D"] == 1].copy()
            treated["tau"] = treated["lemp"].to_numpy() - fit.predict(newdata=treated)
        by_e = treated.groupby(treated["year"] - treated["ft"])["tau"].mean()
        entry["by_hand"] = {
            "event_time": [int(e) for e in by_e.index],
            "coef": [float(v) for v in by_e],
            "overall": float(treated["tau"].mean()),
        }
        entry.update(
            description="mpdta: imputation estimator, all untreated observations, cluster "
            "countyreal" + (", covariate x = lpop * (year - 2003) / 4" if covs else ""),
            options={
                "outcome": "lemp",
                "unit": "countyreal",
                "time": "year",
                "cohort": "first.treat",
                **({"covariates": covs} if covs else {}),
            },
            source={
                "default": "diff-diff 3.13.0 ImputationDiD(cluster='countyreal') overall / "
                "event_study / group (BJS Theorem 3, = R didimputation)",
                "leave_out": "diff-diff 3.13.0 ImputationDiD(leave_one_out=True)",
                "pretrend": "diff-diff 3.13.0 pretrend_test(n_leads=3): leads -4..-2 with -1 "
                "omitted; the span equals leads -1..-3 with -4 omitted on mpdta (4 pre-periods), "
                "so the F test is the same",
                "by_hand": "pyfixest 0.60.0 feols on untreated rows (fixef_rm='none'), predict",
            },
        )
        out[key] = entry
    return out


# ----------------------------------------------------------------------------------------------
# triple differences
# ----------------------------------------------------------------------------------------------


def _triple(cells: pd.DataFrame, ind: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    d = cells.copy()
    d["ddd"] = d["post"] * d["hh"].isin([2, 3])
    d["ddd2"] = d["post"] * (d["hh"] == 2)
    d["ddd3"] = d["post"] * (d["hh"] == 3)
    fes = [
        d["city"].astype(str) + "_" + d["hh"].astype(str),
        d["month"].astype(str) + "_" + d["hh"].astype(str),
        d["city"].astype(str) + "_" + d["month"].astype(str),
    ]
    specs = {
        "TD1": (
            ["ddd", "x"],
            "n",
            {"target": [2, 3], "covariates": ["x"], "weights": "n"},
            "pooled target groups 2 and 3, covariate x, weights n (cell counts)",
        ),
        "TD2": (
            ["ddd2", "ddd3"],
            "n",
            {"target": [2, 3], "separate": True, "weights": "n"},
            "separate effects for target groups 2 and 3, weights n",
        ),
        "TD3": (["ddd"], None, {"target": [2, 3]}, "pooled, unweighted"),
    }
    for key, (regs, w, options, text) in specs.items():
        fml = f"y ~ {' + '.join(regs)} | city^hh + month^hh + city^month"
        kw = {"weights": w} if w else {}
        cr1 = _feols(fml, d, {"CRV1": "city"}, **kw)
        pyf_iid = _feols(fml, d, "iid", **kw)
        pyf_het = _feols(fml, d, "hetero", **kw)
        x = _dense_design(d, regs, fes)
        wv = d[w].to_numpy(float) if w else None
        lsdv = _statsmodels_lsdv(x, d["y"].to_numpy(float), wv, len(regs))
        cr2 = _cr2_by_definition(
            x, d["y"].to_numpy(float), d["city"].to_numpy(), wv, np.eye(x.shape[1])[: len(regs)]
        )
        out[key] = {
            "description": f"simulated cells (data.triple_cells): {text}; cluster city",
            "options": {
                "outcome": "y",
                "unit": "city",
                "time": "month",
                "group": "hh",
                "treatment": "post",
                **options,
            },
            "terms": regs,
            "coef": _fit_summary(cr1, regs)["coef"],
            "se": {
                "cluster": _fit_summary(cr1, regs)["se"],
                "iid": lsdv["se_iid"],
                "hetero": lsdv["se_hc1"],
                "cr2": list(np.sqrt(cr2["var"])),
            },
            "df": {"cluster": int(cr1._df_t), "iid": lsdv["df_resid"], "cr2": cr2["df"]},
            "lsdv_coef": lsdv["coef"],
            "fixed_effect_rank": lsdv["rank"] - len(regs),
            "n": int(cr1._N),
            "alternatives": {
                "pyfixest_iid_se": _fit_summary(pyf_iid, regs)["se"],
                "pyfixest_hetero_se": _fit_summary(pyf_het, regs)["se"],
                "pyfixest_df_k": int(pyf_iid._df_k),
                "why": "pyfixest counts UG + TG + UT - 2 fixed-effect parameters (one redundancy "
                "per extra fixed effect); the dummy-variable rank is UG + TG + UT - U - G - T + 1",
            },
            "source": {
                "coef/cluster": f"pyfixest 0.60.0 feols, CRV1 by city, fixef_tol={FIXEF_TOL}",
                "iid/hetero": "statsmodels dense dummy-variable (W)LS, nonrobust / HC1",
                "cr2": "dense dummy-variable regression by definition (this script)",
            },
        }
    # diff-diff 2x2x2 (saturated): equal to the triple interaction of cell means
    from diff_diff import TripleDifference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dd = TripleDifference(estimation_method="reg").fit(
            ind, outcome="y", group="state", partition="elig", post="period"
        )
    means = ind.groupby(["state", "period", "elig"])["y"].mean()
    by_hand = (means[1, 1, 1] - means[1, 0, 1] - means[1, 1, 0] + means[1, 0, 0]) - (
        means[0, 1, 1] - means[0, 0, 1] - means[0, 1, 0] + means[0, 0, 0]
    )
    ind2 = ind.assign(treat=(ind["state"] * ind["period"]))
    d2 = ind2.assign(ddd=ind2["treat"] * ind2["elig"])
    fit = _feols("y ~ ddd | state^elig + period^elig + state^period", d2, "hetero")
    out["TD4"] = {
        "description": "simulated individuals (data.ddd_individuals), 2 states x 2 periods x 2 "
        "groups: saturated triple differences",
        "options": {
            "outcome": "y",
            "unit": "state",
            "time": "period",
            "group": "elig",
            "target": 1,
            "treatment": "treat",
        },
        "coef": [float(dd.att)],
        "diff_diff_se": float(dd.se),
        "by_hand_means": float(by_hand),
        "pyfixest_coef": float(fit.coef()["ddd"]),
        "pyfixest_hetero_se": float(fit.se()["ddd"]),
        "n": len(ind),
        "source": {
            "coef": "diff-diff 3.13.0 TripleDifference(estimation_method='reg')",
            "by_hand_means": "difference of the two within-state DiDs of cell means (this script)",
            "pyfixest": "pyfixest 0.60.0 feols hetero (HC1) on the same rows",
        },
    }
    return out


def main() -> None:
    m = _mpdta()
    cells = _triple_cells()
    ind = _ddd_individuals()
    models: dict[str, Any] = {}
    models.update(_event_study(m))
    models.update(_sun_abraham(m))
    models.update(_imputation(m))
    models.update(_triple(cells, ind))
    payload = {
        "generated_by": "tests/reference/generate_did_regressions_reference.py",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            p: version(p) for p in ("pyfixest", "diff-diff", "statsmodels", "numpy", "pandas")
        },
        "models": models,
        "data": {
            "triple_cells": {c: cells[c].tolist() for c in cells.columns},
            "ddd_individuals": {c: ind[c].tolist() for c in ind.columns},
        },
    }
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps(_plain(payload), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT_PATH}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value


if __name__ == "__main__":
    main()
