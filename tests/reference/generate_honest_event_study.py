"""Reference values for did.HonestEventStudy from the PyPI port ``honestdid`` 0.1.1.

Run with the peers' Python (honestdid is not an evalkit dependency):

    /work/peers/bin/python tests/reference/generate_honest_event_study.py

1. Draws a fixed city panel (one treated city of ten, 72 months, reform in month 38,
   cell sizes: the treated city 7,800 persons, the controls 1,500-3,600; AR(1) city
   shocks plus a size-scaled AR(1) average of persons' noise; an effect of 0.8 from
   the reform on and a small pre-trend) and writes it to
   tests/reference/data/honest_event_study_cities.csv, so the test needs no random
   numbers.
2. Fits evalkit's ``HonestEventStudy`` on it (window -4..4, weights = cell sizes, the
   default size-scaled few-treated covariance) and stores its HonestDiD inputs
   (``info["betahat"]``, ``info["sigma"]``: 3 leads, 5 post periods).
3. Runs honestdid on those inputs for the average effect over the 5 post periods:
   relative magnitudes by the deterministic conditional (ARP) test, relative
   magnitudes by C-LF for three of the port's seeds (its least-favourable critical
   value is simulated: the seeds show that Monte Carlo spread), smoothness by FLCI,
   and the original interval. Writes tests/reference/data/honest_event_study.json.
"""

from __future__ import annotations

import builtins
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

DATA = HERE / "data"
CSV = DATA / "honest_event_study_cities.csv"
MBAR = [0.0, 0.5, 1.0, 2.0]
MBAR_CLF = [0.5, 1.0]
CLF_SEEDS = [0, 1, 2]
M_SD = [0.0, 0.02, 0.05]


def cities() -> pd.DataFrame:
    """The fixed panel (see the module docstring)."""
    rng = np.random.default_rng(20261130)
    n_months, reform = 72, 38
    sizes = np.r_[7800.0, np.round(np.geomspace(1500, 3600, 9))]
    n = len(sizes)

    def ar1(sd: np.ndarray, rho: float) -> np.ndarray:
        u = np.empty((n, n_months))
        u[:, 0] = rng.normal(size=n)
        for t in range(1, n_months):
            u[:, t] = rho * u[:, t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=n)
        return u * sd[:, None]

    eps = ar1(np.full(n, 0.5), 0.5) + ar1(np.sqrt(2500.0 / sizes), 0.8)
    city = np.repeat(np.arange(n), n_months)
    month = np.tile(np.arange(n_months), n)
    d = ((city == 0) & (month >= reform)).astype(int)
    y = (
        rng.normal(size=n)[city]
        + (rng.normal(size=n_months) * 0.5)[month]
        + eps.ravel()
        + 0.8 * d
        + 0.03 * (city == 0) * (month - reform)
    )
    return pd.DataFrame({"city": city, "month": month, "d": d, "y": y.round(12), "n": sizes[city]})


def evalkit_inputs(df: pd.DataFrame) -> dict:
    from evalkit.did import HonestEventStudy

    res = HonestEventStudy(
        outcome="y", unit="city", time="month", treatment="d", weights="n",
        restriction="smoothness", bounds=(0.0,),
    ).fit(df)  # fmt: skip
    info = res.info
    return {
        "betahat": info["betahat"],
        "sigma": info["sigma"],
        "event_times": info["event_times"],
        "n_pre": sum(1 for e in info["event_times"] if e < -1),
        "n_post": sum(1 for e in info["event_times"] if e >= 0),
        "covariance": info["covariance"]["covariance"],
    }


def _scalar_float(value) -> float:
    """``float`` that also takes a one-element array (numpy >= 2.4 refuses ``float`` of one)."""
    arr = np.asarray(value)
    return builtins.float(arr.reshape(-1)[0] if arr.ndim else arr)


def _patch_port(core) -> None:
    """Let honestdid 0.1.1's conditional test run under numpy 2.4.

    Its ``_lp_conditional_test_fn`` calls ``float()`` on 1 x 1 arrays, an error since
    numpy 2.4: the function is recompiled from its own source with those calls taking
    the single element (no change to the arithmetic).
    """
    import inspect
    import textwrap

    src = textwrap.dedent(inspect.getsource(core._lp_conditional_test_fn))
    src = src.replace("float(", "_scalar_float(")
    namespace = dict(vars(core), _scalar_float=_scalar_float)
    exec(compile(src, core.__file__, "exec"), namespace)
    core._lp_conditional_test_fn = namespace["_lp_conditional_test_fn"]


def peer(beta: np.ndarray, sigma: np.ndarray, n_pre: int, n_post: int) -> dict:
    import honestdid
    import honestdid.core

    _patch_port(honestdid.core)
    warnings.simplefilter("ignore")
    lavg = np.full(n_post, 1.0 / n_post)
    out: dict = {"source": f"honestdid {honestdid.__version__} (PyPI)", "l_vec": lavg.tolist()}
    start = time.time()
    orig = honestdid.constructOriginalCS(beta, sigma, n_pre, n_post, l_vec=lavg)
    out["original"] = [float(orig["lb"].iloc[0]), float(orig["ub"].iloc[0])]
    rm = honestdid.createSensitivityResults_relativeMagnitudes(
        beta, sigma, n_pre, n_post, method="Conditional", Mbarvec=MBAR, l_vec=lavg
    )
    out["rm_conditional"] = {
        "grid_points": 1000,
        "mbar": rm["Mbar"].tolist(),
        "lb": rm["lb"].tolist(),
        "ub": rm["ub"].tolist(),
    }
    clf = {"mbar": MBAR_CLF, "seeds": CLF_SEEDS, "lb": [], "ub": []}
    for seed in CLF_SEEDS:
        res = honestdid.createSensitivityResults_relativeMagnitudes(
            beta, sigma, n_pre, n_post, method="C-LF", Mbarvec=MBAR_CLF, l_vec=lavg, seed=seed
        )
        clf["lb"].append(res["lb"].tolist())
        clf["ub"].append(res["ub"].tolist())
    out["rm_clf"] = clf
    sd = honestdid.createSensitivityResults(
        beta, sigma, n_pre, n_post, method="FLCI", Mvec=M_SD, l_vec=lavg
    )
    out["sd_flci"] = {"m": sd["M"].tolist(), "lb": sd["lb"].tolist(), "ub": sd["ub"].tolist()}
    out["seconds"] = round(time.time() - start, 1)
    return out


def main() -> None:
    df = cities()
    df.to_csv(CSV, index=False)
    df = pd.read_csv(CSV)  # what the test reads
    inputs = evalkit_inputs(df)
    beta, sigma = np.array(inputs["betahat"]), np.array(inputs["sigma"])
    data = {
        "data": CSV.name,
        "evalkit": {"source": "evalkit HonestEventStudy (this commit)", **inputs},
        "peer": peer(beta, sigma, inputs["n_pre"], inputs["n_post"]),
    }
    out = DATA / "honest_event_study.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} and {CSV} ({data['peer']['seconds']} s in honestdid)")


if __name__ == "__main__":
    main()
