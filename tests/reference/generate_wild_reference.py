"""Generate reference values for evalkit's wild cluster bootstrap (``evalkit.inference.wild``).

Run from the repository root with the peers environment::

    /work/peers/bin/python tests/reference/generate_wild_reference.py

It writes ``tests/reference/data/wild_reference.json``. Nothing in evalkit is used: every number
comes from ``wildboottest`` 0.3.2 (``WildboottestCL``, which pyfixest 0.60's ``Feols.wildboottest``
calls) on explicit dummy-variable designs (the one-hot design pyfixest passes it).

Data: a simulated panel, 12 clusters x 3 units x 8 periods (288 rows), 5 treated clusters from
period 4, a covariate; the rows are stored in the JSON so the test needs nothing else.

Cases
-----
* ``twfe``: y ~ treat + x | unit + time (unit dummies nested in clusters, time dummies not).
* ``ols``: y ~ 1 + treat + x (no fixed effects).

For each case and for WCR and WCU with Rademacher weights, ``B = 9999 > 2^12`` so wildboottest
enumerates all 4096 sign vectors (in ``itertools.product([-1, 1], repeat=12)`` order); the
bootstrap t statistics are stored in that order, with the p-value. A test of ``beta = r`` is
run by wildboottest on ``y - r * treat`` (it only tests ``beta = 0``), on a grid of ``r``.
Webb weights: p-value with B = 9999 random draws (seed 11), compared within Monte Carlo error.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
from wildboottest.wildboottest import WildboottestCL

OUT_PATH = Path(__file__).resolve().parent / "data" / "wild_reference.json"


def make_data() -> dict[str, list]:
    rng = np.random.default_rng(20261129)
    n_cl, per, n_t = 12, 3, 8
    unit = np.repeat(np.arange(n_cl * per), n_t)
    time = np.tile(np.arange(n_t), n_cl * per)
    cluster = unit // per
    treated = cluster < 5
    treat = (treated & (time >= 4)).astype(float)
    x = rng.normal(size=len(unit)) + 0.3 * cluster
    shock = rng.normal(size=(n_cl, n_t))[cluster, time]
    y = (
        0.4 * treat
        + 0.5 * x
        + rng.normal(size=n_cl * per)[unit]
        + 0.2 * time
        + shock
        + rng.normal(size=len(unit)) * (1 + cluster / 6)
    )
    return {
        "unit": unit.tolist(),
        "time": time.tolist(),
        "cluster": cluster.tolist(),
        "treat": treat.tolist(),
        "x": x.tolist(),
        "y": y.tolist(),
    }


def design(data: dict[str, list], case: str) -> np.ndarray:
    treat, x = np.array(data["treat"]), np.array(data["x"])
    if case == "ols":
        return np.column_stack([treat, x, np.ones(len(treat))])
    unit, time = np.array(data["unit"]), np.array(data["time"])
    ud = (unit[:, None] == np.arange(unit.max() + 1)).astype(float)
    td = (time[:, None] == np.arange(1, time.max() + 1)).astype(float)
    return np.column_stack([treat, x, ud, td])


def run(xmat, y, cluster, *, null, impose_null, weights, seed, reps=9999):
    yy = y - null * xmat[:, 0]
    r_vec = np.zeros(xmat.shape[1])
    r_vec[0] = 1.0
    boot = WildboottestCL(X=xmat, Y=yy, cluster=cluster, R=r_vec, B=reps, seed=seed, parallel=False)
    boot.get_scores(bootstrap_type="11", impose_null=impose_null)
    _, _, full = boot.get_weights(weights_type=weights)
    boot.get_numer()
    boot.get_denom()
    boot.get_tboot()
    boot.get_vcov()
    boot.get_tstat()
    boot.get_pvalue(pval_type="two-tailed")
    return boot, bool(full)


def main() -> None:
    data = make_data()
    y, cluster = np.array(data["y"]), np.array(data["cluster"])
    out: dict = {
        "source": f"wildboottest {version('wildboottest')} WildboottestCL, bootstrap_type='11'",
        "data": data,
        "cases": {},
    }
    for case in ("twfe", "ols"):
        xmat = design(data, case)
        beta = np.linalg.lstsq(xmat, y, rcond=None)[0]
        entry: dict = {"estimate": float(beta[0]), "runs": {}}
        for impose_null, name in ((True, "wcr"), (False, "wcu")):
            boot, full = run(
                xmat, y, cluster, null=0.0, impose_null=impose_null, weights="rademacher", seed=1
            )
            grid = np.round(beta[0] + np.linspace(-2.0, 2.0, 41), 6)
            pgrid = [
                float(
                    run(
                        xmat,
                        y,
                        cluster,
                        null=float(r),
                        impose_null=impose_null,
                        weights="rademacher",
                        seed=1,
                    )[0].pvalue
                )
                for r in grid
            ]
            entry["runs"][name] = {
                "full_enumeration": full,
                "t_stat": float(np.ravel(boot.t_stat)[0]),
                "t_boot": np.ravel(boot.t_boot).tolist(),
                "p_value": float(boot.pvalue),
                "null_grid": grid.tolist(),
                "p_value_grid": pgrid,
            }
            webb, _ = run(
                xmat, y, cluster, null=0.0, impose_null=impose_null, weights="webb", seed=11
            )
            entry["runs"][name]["webb_p_value_B9999"] = float(webb.pvalue)
        out["cases"][case] = entry
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT_PATH}")


if __name__ == "__main__":
    main()
