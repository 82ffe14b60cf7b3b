"""Generate reference values for evalkit's two-way fixed-effects (TWFE) estimator.

Run from the repository root::

    /work/venv/bin/python tests/reference/generate_twfe_reference.py

It writes ``tests/reference/data/twfe_reference.json``. Nothing in evalkit is used: every number
comes from peer tools or from a dense, by-definition computation in this file.

Sources
-------
* Coefficients, iid, hetero (HC1) and CR1 standard errors: pyfixest ``feols`` with its default
  small-sample settings (``pf.ssc()``), cross-checked against a dense least-squares-dummy-variable
  (LSDV) fit in statsmodels (explicit unit and time dummies).
* CR1 small-sample factor: reproduced by hand as ``G/(G-1) * (N-1)/(N-K)``; the K that pyfixest
  uses is recorded per model (unit fixed effects nested in the cluster are not counted, the
  fixest ``ssc(fixef.K="nested")`` convention, spelt ``k_fixef="nonnested"`` in pyfixest 0.60).
* CR2 (Bell & McCaffrey 2002) and its Satterthwaite degrees of freedom (Pustejovsky & Tipton
  2018, JBES 36(4), eqs. for the CR2 adjustment and the Satterthwaite approximation; Imbens &
  Kolesar 2016, REStat 98(4)) with working model Phi = I, computed by definition on the dense
  LSDV design.  For weighted models the design and residuals are multiplied by sqrt(w) first,
  which is the same as R clubSandwich ``vcovCR(type="CR2", target = 1/w, inverse_var = TRUE)``.
  clubSandwich's default for weighted ``lm`` fits is different (``target`` = identity on the
  original scale, ``inverse_var = FALSE``); that variant is recorded as an alternative.
* Second source for CR2: diff-diff's Bell-McCaffrey routine (private function
  ``diff_diff.linalg._compute_cr2_bm_vcov_and_dof``), which follows clubSandwich.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyfixest as pf
import statsmodels.api as sm

# the copies packaged with evalkit (EVALKIT_DATA_DIR may name another folder with the same files)
DATA_DIR = Path(
    os.environ.get(
        "EVALKIT_DATA_DIR", Path(__file__).resolve().parents[2] / "src/evalkit/datasets/data"
    )
)
OUT_PATH = Path(__file__).resolve().parent / "data" / "twfe_reference.json"

# eigenvalues of the CR2 block matrix below this are treated as 0 (Moore-Penrose inverse root)
EIG_TOL = 1e-10
BASQUE_NAME = "Basque Country (Pais Vasco)"


@dataclass
class Spec:
    """One reference model: outcome ~ regressors | unit + time, clustered by ``cluster``."""

    key: str
    description: str
    data: pd.DataFrame
    outcome: str
    regressors: list[str]
    unit: str
    time: str
    cluster: str
    weights: str | None = None
    notes: list[str] = field(default_factory=list)


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
        }
    )
    ft = df["first.treat"].astype(int)
    out["post"] = ((ft > 0) & (out["year"] >= ft)).astype(float)
    out["w"] = np.exp(out["lpop"])
    out["x"] = out["lpop"] * (out["year"] - 2003) / 4.0
    return out


def _prop99() -> pd.DataFrame:
    df = pd.read_csv(DATA_DIR / "california_prop99.csv", sep=";")
    return pd.DataFrame(
        {
            "State": df["State"].astype(str),
            "Year": df["Year"].astype(int),
            "PacksPerCapita": df["PacksPerCapita"].astype(float),
            "treated": df["treated"].astype(float),
        }
    )


def _basque() -> pd.DataFrame:
    df = pd.read_csv(DATA_DIR / "basque.csv")
    names = set(df["regionname"].astype(str))
    if BASQUE_NAME not in names:
        raise SystemExit(f"regionname {BASQUE_NAME!r} not in basque.csv: {sorted(names)}")
    df = df[df["regionno"].astype(int) != 1]
    df = df[df["invest"].notna()]
    out = pd.DataFrame(
        {
            "regionno": df["regionno"].astype(int),
            "year": df["year"].astype(int),
            "gdpcap": df["gdpcap"].astype(float),
            "invest": df["invest"].astype(float),
        }
    )
    out["treat"] = ((df["regionname"] == BASQUE_NAME) & (df["year"] >= 1970)).astype(float)
    return out.reset_index(drop=True)


def _specs() -> list[Spec]:
    m = _mpdta()
    p = _prop99()
    b = _basque()
    return [
        Spec(
            "M1",
            "mpdta: lemp ~ post | countyreal + year, post = 1{first.treat > 0 and year >= "
            "first.treat}; cluster countyreal",
            m,
            "lemp",
            ["post"],
            "countyreal",
            "year",
            "countyreal",
        ),
        Spec(
            "M2",
            "mpdta: as M1, weighted least squares with w = exp(lpop); cluster countyreal",
            m,
            "lemp",
            ["post"],
            "countyreal",
            "year",
            "countyreal",
            weights="w",
            notes=[
                "se.cr2/df.cr2 treat w as inverse-variance weights (CR2 of the sqrt(w)-"
                "transformed regression; clubSandwich target = 1/w, inverse_var = TRUE). R "
                "clubSandwich's default for a weighted lm or fixest fit is target = identity, "
                "inverse_var = FALSE, which gives a different SE and a much smaller df: see "
                "alternatives.cr2_clubsandwich_lm_default_weighted."
            ],
        ),
        Spec(
            "M3",
            "mpdta: lemp ~ post + x | countyreal + year, x = lpop * (year - 2003) / 4; "
            "cluster countyreal",
            m,
            "lemp",
            ["post", "x"],
            "countyreal",
            "year",
            "countyreal",
        ),
        Spec(
            "P1",
            "california_prop99: PacksPerCapita ~ treated | State + Year; cluster State",
            p,
            "PacksPerCapita",
            ["treated"],
            "State",
            "Year",
            "State",
        ),
        Spec(
            "B1",
            f"basque: drop regionno 1 (Spain total) and rows with missing invest; "
            f"gdpcap ~ treat + invest | regionno + year, treat = 1{{regionname == "
            f"'{BASQUE_NAME}' and year >= 1970}}; cluster regionno",
            b,
            "gdpcap",
            ["treat", "invest"],
            "regionno",
            "year",
            "regionno",
        ),
    ]


# ----------------------------------------------------------------------------------------------
# pyfixest
# ----------------------------------------------------------------------------------------------


def _pyfixest(spec: Spec) -> dict[str, Any]:
    fml = f"{spec.outcome} ~ {' + '.join(spec.regressors)} | {spec.unit} + {spec.time}"
    kw: dict[str, Any] = {"weights": spec.weights} if spec.weights else {}
    out: dict[str, Any] = {"formula": fml, "ssc": pf.ssc()}
    vcovs: dict[str, Any] = {
        "iid": "iid",
        "hetero": "hetero",
        "cr1": {"CRV1": spec.cluster},
    }
    for name, vc in vcovs.items():
        fit = pf.feols(fml, data=spec.data, vcov=vc, **kw)
        out[name] = {
            "coef": {k: float(v) for k, v in fit.coef().items()},
            "se": {k: float(v) for k, v in fit.se().items()},
            "df_t": int(fit._df_t),
            "df_k": int(fit._df_k),
            "ssc_factor": float(np.asarray(fit._ssc).ravel()[0]),
            "N": int(fit._N),
        }
        if name == "cr1":
            out[name]["G"] = int(np.asarray(fit._G).ravel()[0])
    # CR1 with every fixed effect counted in K (should equal statsmodels' LSDV cluster SE)
    fit = pf.feols(
        fml, data=spec.data, vcov={"CRV1": spec.cluster}, ssc=pf.ssc(k_fixef="full"), **kw
    )
    out["cr1_full_k"] = {
        "se": {k: float(v) for k, v in fit.se().items()},
        "df_k": int(fit._df_k),
    }
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = pf.feols(fml, data=spec.data, vcov={"CRV3": spec.cluster}, **kw)
        out["crv3"] = {"se": {k: float(v) for k, v in fit.se().items()}}
        msgs = sorted(
            {
                " ".join(str(c.message).split())
                for c in caught
                if not issubclass(c.category, DeprecationWarning | FutureWarning)
            }
        )
        if msgs:
            out["crv3"]["warnings"] = msgs
    except Exception as exc:  # record why, it is optional
        out["crv3"] = {"error": " ".join(f"{type(exc).__name__}: {exc}".split())}
    return out


# ----------------------------------------------------------------------------------------------
# dense LSDV
# ----------------------------------------------------------------------------------------------


def _lsdv_design(spec: Spec) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Regressors, all unit dummies, time dummies without the first level (full column rank)."""
    d = spec.data
    units = np.sort(d[spec.unit].unique())
    times = np.sort(d[spec.time].unique())
    u_dum = (d[spec.unit].to_numpy()[:, None] == units[None, :]).astype(float)
    t_dum = (d[spec.time].to_numpy()[:, None] == times[None, 1:]).astype(float)
    X = np.column_stack([d[spec.regressors].to_numpy(dtype=float), u_dum, t_dum])
    names = list(spec.regressors) + [f"u{u}" for u in units] + [f"t{t}" for t in times[1:]]
    y = d[spec.outcome].to_numpy(dtype=float)
    cl = pd.factorize(d[spec.cluster])[0]
    w = d[spec.weights].to_numpy(dtype=float) if spec.weights else np.ones(len(d))
    if np.linalg.matrix_rank(X) != X.shape[1]:
        raise SystemExit(f"{spec.key}: LSDV design is not of full column rank")
    return X, y, names, cl, w


def _statsmodels_lsdv(spec: Spec, X: np.ndarray, y: np.ndarray, cl: np.ndarray, w: np.ndarray):
    p = len(spec.regressors)
    model = sm.WLS(y, X, weights=w) if spec.weights else sm.OLS(y, X)
    res_iid = model.fit()
    res_hc1 = model.fit(cov_type="HC1")
    res_cl = model.fit(cov_type="cluster", cov_kwds={"groups": cl, "use_correction": True})
    names = spec.regressors
    return {
        "coef": dict(zip(names, map(float, res_iid.params[:p]), strict=True)),
        "se_iid": dict(zip(names, map(float, res_iid.bse[:p]), strict=True)),
        "se_hc1": dict(zip(names, map(float, res_hc1.bse[:p]), strict=True)),
        "se_cluster": dict(zip(names, map(float, res_cl.bse[:p]), strict=True)),
        "df_resid": round(res_iid.df_resid),
        "k": int(X.shape[1]),
        "resid": np.asarray(res_iid.resid),  # raw residuals y - X b
        "params": np.asarray(res_iid.params),
    }


def _cr0_meat(Xs: np.ndarray, es: np.ndarray, cl: np.ndarray) -> np.ndarray:
    k = Xs.shape[1]
    meat = np.zeros((k, k))
    for g in np.unique(cl):
        s = Xs[cl == g].T @ es[cl == g]
        meat += np.outer(s, s)
    return meat


def _inv_sqrt_psd(m: np.ndarray) -> tuple[np.ndarray, int]:
    """Symmetric (Moore-Penrose) inverse square root; returns it and the number of dropped roots."""
    vals, vecs = np.linalg.eigh(0.5 * (m + m.T))
    keep = vals > EIG_TOL
    inv_root = np.zeros_like(vals)
    inv_root[keep] = 1.0 / np.sqrt(vals[keep])
    return (vecs * inv_root) @ vecs.T, int((~keep).sum())


def _cr2_dense(
    X: np.ndarray,
    e: np.ndarray,
    cl: np.ndarray,
    w: np.ndarray | None,
    contrasts: np.ndarray,
) -> dict[str, Any]:
    """CR2 vcov and Satterthwaite dof by definition, working model Phi = I.

    ``w is None``: X and e are used as they are (already sqrt(w)-transformed if weighted).
    Otherwise WLS with weight matrix W = diag(w) and Phi = I on the original scale (clubSandwich's
    default for weighted lm): M = (X'WX)^-1, residual maker R = I - X M X' W,
    Sigma = R R', G_g = Sigma_gg, A_g = G_g^{+1/2}, meat_g = X_g' W_g A_g e_g.
    With W = I, Sigma = R = I - H, the textbook unweighted definition.
    """
    n = X.shape[0]
    wv = np.ones(n) if w is None else w
    XtW = X.T * wv
    M = np.linalg.inv(XtW @ X)
    H = X @ M @ XtW
    R = np.eye(n) - H
    Sigma = R if w is None else R @ R.T
    groups = np.unique(cl)
    idx = [np.flatnonzero(cl == g) for g in groups]
    A = []
    n_singular = 0
    meat = np.zeros((X.shape[1], X.shape[1]))
    for ix in idx:
        a, nz = _inv_sqrt_psd(Sigma[np.ix_(ix, ix)])
        n_singular += nz
        A.append(a)
        s = XtW[:, ix] @ (a @ e[ix])
        meat += np.outer(s, s)
    V = M @ meat @ M
    dofs = []
    dofs_fast = []
    zero_weight = []
    for c in contrasts.T:
        U = np.zeros((n, len(groups)))
        for j, (ix, a) in enumerate(zip(idx, A, strict=True)):
            U[ix, j] = a @ (XtW[:, ix].T @ (M @ c))  # p_g = A_g W_g X_g M c
        norms = np.sqrt(np.sum(U * U, axis=0))
        zero_weight.append(int(np.sum(norms <= 1e-10 * norms.max())))
        Omega = U.T @ Sigma @ U
        dofs.append(float(np.trace(Omega) ** 2 / np.sum(Omega * Omega)))
        if w is None:  # same Omega without the n x n matrix: diag(p_g'p_g) - U'X M X'U
            XU = X.T @ U
            Om2 = np.diag(np.sum(U * U, axis=0)) - XU.T @ M @ XU
            dofs_fast.append(float(np.trace(Om2) ** 2 / np.sum(Om2 * Om2)))
    return {
        "vcov": V,
        "dof": dofs,
        "dof_blockwise_check": dofs_fast,
        "n_zero_eigenvalues": n_singular,
        "clusters_with_zero_weight": zero_weight,
    }


def _diff_diff_cr2(X, e, cl, w, contrasts):
    """Second source: diff-diff's clubSandwich-style CR2 Bell-McCaffrey (private function)."""
    try:
        from diff_diff.linalg import _compute_cr2_bm_vcov_and_dof
    except ImportError as exc:
        return {"error": f"diff_diff not importable: {exc}"}
    bread = (X.T * (np.ones(len(e)) if w is None else w)) @ X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        V, dof = _compute_cr2_bm_vcov_and_dof(X, cl, bread, contrasts, residuals=e, weights=w)
    return {"vcov": V, "dof": [float(d) for d in dof]}


def _rel(a: float, b: float) -> float:
    return float(abs(a - b) / max(abs(b), 1e-300))


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _max_rel(d1: dict[str, float], d2: dict[str, float]) -> float:
    return max(_rel(d1[k], d2[k]) for k in d1)


# ----------------------------------------------------------------------------------------------
# one model
# ----------------------------------------------------------------------------------------------


def _run(spec: Spec) -> dict[str, Any]:
    p = len(spec.regressors)
    names = spec.regressors
    pyf = _pyfixest(spec)
    X, y, _, cl, w = _lsdv_design(spec)
    N, K_full = X.shape
    G = len(np.unique(cl))
    n_units = spec.data[spec.unit].nunique()
    n_times = spec.data[spec.time].nunique()
    smr = _statsmodels_lsdv(spec, X, y, cl, w)

    # --- CR1 by hand, on sqrt(w)-transformed LSDV -------------------------------------------
    sw = np.sqrt(w)
    Xs, es = X * sw[:, None], smr["resid"] * sw
    bread = np.linalg.inv(Xs.T @ Xs)
    V0 = bread @ _cr0_meat(Xs, es, cl) @ bread
    se_cr0 = np.sqrt(np.diag(V0)[:p])
    # pyfixest's K: regressors + all FE levels - (n_fe - 1), minus the levels of FE nested in the
    # cluster, plus one per nested FE.  Unit FE nested in the cluster: K = p + n_times.
    unit_nested = spec.data.groupby(spec.unit)[spec.cluster].nunique().max() == 1
    K_pyf = (
        p + (n_units + n_times - 1) - (n_units if unit_nested else 0) + (1 if unit_nested else 0)
    )
    fac_pyf = G / (G - 1) * (N - 1) / (N - K_pyf)
    fac_full = G / (G - 1) * (N - 1) / (N - K_full)
    se_cr1_hand = dict(zip(names, map(float, se_cr0 * np.sqrt(fac_pyf)), strict=True))
    se_cr1_full_hand = dict(zip(names, map(float, se_cr0 * np.sqrt(fac_full)), strict=True))
    # iid / HC1 by hand on the same design (K = full LSDV rank)
    sigma2 = float(es @ es) / (N - K_full)
    se_iid_hand = dict(zip(names, map(float, np.sqrt(sigma2 * np.diag(bread)[:p])), strict=True))
    meat_hc0 = (Xs * es[:, None] ** 2).T @ Xs
    V_hc1 = bread @ meat_hc0 @ bread * N / (N - K_full)
    se_hc1_hand = dict(zip(names, map(float, np.sqrt(np.diag(V_hc1)[:p])), strict=True))

    # --- CR2 ---------------------------------------------------------------------------------
    C = np.zeros((K_full, p))
    C[np.arange(p), np.arange(p)] = 1.0
    cr2 = _cr2_dense(Xs, es, cl, None, C)
    se_cr2 = dict(zip(names, map(float, np.sqrt(np.diag(cr2["vcov"])[:p])), strict=True))
    df_cr2 = dict(zip(names, cr2["dof"], strict=True))
    dd = _diff_diff_cr2(Xs, es, cl, None, C)
    checks: dict[str, Any] = {
        "cr2_dof_dense_vs_blockwise_max_rel": max(
            _rel(a, b) for a, b in zip(cr2["dof"], cr2["dof_blockwise_check"], strict=True)
        ),
        "cr2_zero_eigenvalues_of_I_minus_Hgg": cr2["n_zero_eigenvalues"],
        "cr2_clusters_with_zero_weight": dict(
            zip(names, cr2["clusters_with_zero_weight"], strict=True)
        ),
    }
    if "error" in dd:
        checks["diff_diff_cr2"] = dd["error"]
    else:
        dd_se = dict(zip(names, map(float, np.sqrt(np.diag(dd["vcov"])[:p])), strict=True))
        checks["diff_diff_cr2_se_max_rel"] = _max_rel(dd_se, se_cr2)
        checks["diff_diff_cr2_df"] = {
            k: _finite_or_none(v) for k, v in zip(names, dd["dof"], strict=True)
        }
        finite = [(a, b) for a, b in zip(dd["dof"], cr2["dof"], strict=True) if np.isfinite(a)]
        if finite:
            checks["diff_diff_cr2_df_max_rel"] = max(_rel(a, b) for a, b in finite)
        if len(finite) < p:
            checks["diff_diff_cr2_df_note"] = (
                "diff-diff reports NaN (None here) for a coefficient whose X_g (X'X)^-1 c has a "
                "component in the null space of I - H_gg (here: the regressor is nonzero in one "
                "cluster only, so it and that unit's dummy both live inside the cluster): its "
                "unweighted Satterthwaite shortcut takes tr(Omega) = ||X (X'X)^-1 c||^2, which "
                "ignores the part the Moore-Penrose A_g removes, gets a dof above G and "
                "suppresses it. Its SE agrees. clubSandwich's Satterthwaite (E = sum diag(P), "
                "V = 2 sum P^2 over the P array built from the adjusted A_g) is the definition "
                "used here."
            )
    alternatives: dict[str, Any] = {}
    if spec.weights:
        cr2w = _cr2_dense(X, smr["resid"], cl, w, C)
        alt = {
            "se": dict(zip(names, map(float, np.sqrt(np.diag(cr2w["vcov"])[:p])), strict=True)),
            "df": dict(zip(names, cr2w["dof"], strict=True)),
            "definition": "WLS CR2 with working model Phi = I on the ORIGINAL scale (R "
            "clubSandwich vcovCR.lm default for weighted fits: target = identity, inverse_var = "
            "FALSE): G_g = [(I - H)(I - H)']_gg with H = X (X'WX)^-1 X'W, A_g = G_g^{+1/2}, "
            "meat_g = X_g' W_g A_g e_g (raw residuals); Satterthwaite Omega = U'(I-H)(I-H)'U.",
        }
        ddw = _diff_diff_cr2(X, smr["resid"], cl, w, C)
        if "error" not in ddw:
            dd_se = dict(zip(names, map(float, np.sqrt(np.diag(ddw["vcov"])[:p])), strict=True))
            alt["diff_diff_se_max_rel"] = _max_rel(dd_se, alt["se"])
            alt["diff_diff_df_max_rel"] = max(
                _rel(a, b) for a, b in zip(ddw["dof"], cr2w["dof"], strict=True)
            )
        alternatives["cr2_clubsandwich_lm_default_weighted"] = alt

    alternatives["cr1_full_k"] = {
        "se": smr["se_cluster"],
        "k": K_full,
        "definition": "CR1 with K = full LSDV rank (every fixed-effect level counted), "
        "G/(G-1)*(N-1)/(N-K): statsmodels cov_type='cluster' on the LSDV design and pyfixest "
        "ssc(k_fixef='full')",
    }
    alternatives["cr0"] = {"se": dict(zip(names, map(float, se_cr0), strict=True))}
    alternatives["pyfixest_crv3"] = pyf["crv3"]
    notes = list(spec.notes)
    for j, name in enumerate(names):
        n_nonzero = len(np.unique(cl[X[:, j] != 0]))
        if n_nonzero != 1:
            continue
        if cr2["clusters_with_zero_weight"][j] > 0:
            how = (
                "Without covariates that cluster's residuals are orthogonal to both its own "
                "dummies, so it adds nothing to the CR0/CR1 meat, and the Moore-Penrose A_g "
                "removes it from CR2 entirely (df.cr2 then comes from the other clusters)."
            )
        else:
            how = (
                "I - H_gg of that cluster is singular along the regressor's own direction; the "
                "Moore-Penrose A_g drops that part of its CR2 contribution."
            )
        notes.append(
            f"{name}: nonzero in one cluster only (a single treated unit). {how} pyfixest "
            "CRV3 (leave one cluster out) is not meaningful for it: without that cluster the "
            "regressor is all zero."
        )

    pi, ph, pc = pyf["iid"], pyf["hetero"], pyf["cr1"]
    checks.update(
        {
            "coef_pyfixest_vs_lsdv_max_rel": _max_rel(pi["coef"], smr["coef"]),
            "iid_se_pyfixest_vs_statsmodels_max_rel": _max_rel(pi["se"], smr["se_iid"]),
            "iid_se_by_hand_vs_statsmodels_max_rel": _max_rel(se_iid_hand, smr["se_iid"]),
            "hetero_se_pyfixest_vs_statsmodels_hc1_max_rel": _max_rel(ph["se"], smr["se_hc1"]),
            "hetero_se_by_hand_vs_statsmodels_hc1_max_rel": _max_rel(se_hc1_hand, smr["se_hc1"]),
            "cr1_se_pyfixest_vs_by_hand_with_pyfixest_K_max_rel": _max_rel(pc["se"], se_cr1_hand),
            "cr1_se_pyfixest_default_vs_statsmodels_full_K_max_rel": _max_rel(
                pc["se"], smr["se_cluster"]
            ),
            "cr1_se_pyfixest_full_K_vs_statsmodels_max_rel": _max_rel(
                pyf["cr1_full_k"]["se"], smr["se_cluster"]
            ),
            "cr1_se_by_hand_full_K_vs_statsmodels_max_rel": _max_rel(
                se_cr1_full_hand, smr["se_cluster"]
            ),
        }
    )
    # stop loudly if a peer disagrees with the by-definition numbers
    tol = 1e-8
    bad = {k: v for k, v in checks.items() if k.endswith("_max_rel") and not v <= tol}
    bad.pop("cr1_se_pyfixest_default_vs_statsmodels_full_K_max_rel", None)  # differs by design
    for k in ("diff_diff_cr2_se_max_rel", "diff_diff_cr2_df_max_rel"):
        if k in bad and bad[k] < 1e-6:
            bad.pop(k)
    if bad:
        print(f"{spec.key}: checks above {tol}: {bad}", file=sys.stderr)
    if pi["df_t"] != N - K_full or ph["df_t"] != N - K_full or pc["df_t"] != G - 1:
        raise SystemExit(f"{spec.key}: unexpected pyfixest df {pi['df_t']}, {pc['df_t']}")
    if pc["df_k"] != K_pyf or pi["df_k"] != K_full or ph["df_k"] != K_full:
        raise SystemExit(f"{spec.key}: pyfixest K {pc['df_k']} != by-hand K {K_pyf}")

    return {
        "description": spec.description,
        "formula": pyf["formula"],
        "weights": spec.weights,
        "n": N,
        "n_clusters": G,
        "n_units": int(n_units),
        "n_periods": int(n_times),
        "coef": pi["coef"],
        "se": {"iid": pi["se"], "hetero": ph["se"], "cr1": pc["se"], "cr2": se_cr2},
        "df": {"iid": pi["df_t"], "hetero": ph["df_t"], "cr1": pc["df_t"], "cr2": df_cr2},
        "k": {
            "iid": K_full,
            "hetero": K_full,
            "cr1": K_pyf,
            "lsdv_rank": K_full,
        },
        "small_sample_factor": {
            "iid": "sigma2 = SSR/(N-K), K = lsdv_rank",
            "hetero": f"N/(N-K) = {N}/({N}-{K_full}) = {N / (N - K_full)!r}",
            "cr1": f"G/(G-1)*(N-1)/(N-K) = {G}/{G - 1}*{N - 1}/{N - K_pyf} = {fac_pyf!r}",
            "cr1_pyfixest_reported": pc["ssc_factor"],
        },
        "source": {
            "coef": f"pyfixest {pf.__version__} feols (equal to statsmodels LSDV)",
            "iid": f"pyfixest {pf.__version__} feols vcov='iid' (equal to statsmodels LSDV "
            "nonrobust)",
            "hetero": f"pyfixest {pf.__version__} feols vcov='hetero' (equal to statsmodels "
            "LSDV HC1)",
            "cr1": f"pyfixest {pf.__version__} feols vcov={{'CRV1': '{spec.cluster}'}}, default "
            f"ssc (reproduced by hand with K={K_pyf})",
            "cr2": "dense LSDV by definition (this script); cross-checked against diff-diff "
            f"{version('diff-diff')} _compute_cr2_bm_vcov_and_dof",
        },
        "alternatives": alternatives,
        "checks": checks,
        "notes": notes,
    }


def main() -> None:
    """Compute every reference model and write the JSON file."""
    models = {}
    for spec in _specs():
        models[spec.key] = _run(spec)
        m = models[spec.key]
        print(spec.key, m["coef"], m["se"], m["df"], sep="\n  ")
    payload = {
        "generated_by": "tests/reference/generate_twfe_reference.py",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {
            "python": sys.version.split()[0],
            "pyfixest": pf.__version__,
            "statsmodels": version("statsmodels"),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "diff-diff": version("diff-diff"),
        },
        "pyfixest_ssc_used": pf.ssc(),
        "conventions": {
            "layout": "coef[name]; se[type][name]; df[type] is an int for iid/hetero/cr1 and "
            "df['cr2'][name] (Satterthwaite, per coefficient); k[type] is the K in the "
            "small-sample factor",
            "iid": "sigma2 = SSR/(N-K), K = regressors + all FE levels - (number of FE - 1) "
            "(the LSDV rank); t df = N - K. pyfixest and statsmodels LSDV agree.",
            "hetero": "HC1: N/(N-K) * HC0 with the same K (LSDV rank); t df = N - K. pyfixest "
            "'hetero' and statsmodels LSDV HC1 agree.",
            "cr1": "G/(G-1) * (N-1)/(N-K) * CR0 with K = regressors + FE levels not nested in "
            "the cluster + 1 for each nested FE (fixest ssc(fixef.K='nested'); pyfixest 0.60 "
            "default k_fixef='nonnested'). With unit FE nested in the unit cluster K = "
            "regressors + number of periods. t df = G - 1. statsmodels' LSDV cluster SE uses "
            "K = LSDV rank instead (alternatives.cr1_full_k).",
            "cr2": "Bell-McCaffrey CR2 on the full LSDV design, weighted models via sqrt(w) "
            "transform (clubSandwich target = 1/w, inverse_var = TRUE); no extra scaling; "
            "A_g = (I - H_gg)^{+1/2} with eigenvalues <= 1e-10 set to 0 (I - H_gg is singular "
            "whenever the unit FE is nested in the cluster). df: Satterthwaite, Pustejovsky & "
            "Tipton (2018) with working model Phi = I.",
        },
        "models": models,
    }
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    print(f"wrote {OUT_PATH}")


if __name__ == "__main__":
    main()
