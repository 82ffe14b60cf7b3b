"""TWFE benchmark: evalkit against diff-diff, pyfixest and linearmodels (issue #2).

Fits ``y ~ d | unit + time`` on a balanced panel (default 200,000 units x 24 periods,
4.8M rows) with standard errors clustered by city (CR1), every package in its own
fresh subprocess on the same Parquet file, and prints a table of read time, fit time,
peak memory, coefficient and standard error with ratios to evalkit.

The data mimic the Bergen design: units nested in 10 cities, one treated city from
the middle period (period 12 of 24) on, unit effects, period effects, city x period
shocks and noise; everything is drawn from one seeded numpy Generator.

Usage (from the repository root)::

    /work/venv/bin/python benchmarks/twfe_bench.py --quick          # 20,000 units
    /work/venv/bin/python benchmarks/twfe_bench.py                  # 200,000 units
    /work/venv/bin/python benchmarks/twfe_bench.py --only evalkit,pyfixest --repeat 5
    /work/venv/bin/python benchmarks/twfe_bench.py --markdown benchmarks/results/twfe.md

Exit code 0 when all coefficients agree with evalkit's to 1e-8 (relative), 1 when one
disagrees, 2 when a contender failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    Contender,
    ContenderResult,
    format_table,
    machine_info,
    package_version,
    results_json,
    run,
    select_contenders,
)

CITIES = 10
TREATED_CITY = 0
EFFECT = 0.02  # planted effect of d on y

CONTENDERS = [
    Contender(
        "evalkit",
        "fit_evalkit",
        imports=("evalkit.did",),
        package="evalkit",
        label='TWFE(outcome="y", treatment="d", unit="unit", time="time", cluster="city")'
        '.fit(df, inference="cluster")',
    ),
    Contender(
        "diff-diff",
        "fit_diffdiff",
        imports=("diff_diff",),
        package="diff-diff",
        label='TwoWayFixedEffects(cluster="city").fit(df, outcome="y", treatment="treated", '
        'post="post", unit="unit")',
    ),
    Contender(
        "diff-diff-absorb",
        "fit_diffdiff_absorb",
        imports=("diff_diff",),
        package="diff-diff",
        label='DifferenceInDifferences(cluster="city").fit(df, outcome="y", treatment='
        '"treated", post="post", absorb=["unit", "time"])',
    ),
    Contender(
        "pyfixest",
        "fit_pyfixest",
        imports=("pyfixest",),
        package="pyfixest",
        label='feols("y ~ d | unit + time", data=df, vcov={"CRV1": "city"})',
    ),
    Contender(
        "linearmodels",
        "fit_linearmodels",
        imports=("linearmodels",),
        package="linearmodels",
        label='p = df.set_index(["unit", "time"]); PanelOLS(p["y"], p[["d"]], '
        'entity_effects=True, time_effects=True).fit(cov_type="clustered", '
        'clusters=p[["city"]])',
    ),
]

NOTES = {
    "evalkit": "FewClustersWarning silenced (10 clusters, 1 treated)",
    "diff-diff": "absorbs unit effects and the effects of its 0/1 post column (pre/post), "
    "not one per period; with one adoption date on a balanced panel the coefficient is "
    "the same",
    "diff-diff-absorb": "unit and period effects by alternating projections; treated and "
    "post are dropped as collinear with them",
    "pyfixest": "the first fit includes numba compilation",
    "linearmodels": "set_index is inside the timed fit; clustered covariance with its defaults",
}


# --------------------------------------------------------------------------- contenders
def fit_evalkit(df: Any) -> dict[str, float]:
    """Fit with evalkit (run in the child process)."""
    import warnings

    from evalkit.did import TWFE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FewClustersWarning: 10 clusters, 1 treated
        res = TWFE(outcome="y", treatment="d", unit="unit", time="time", cluster="city").fit(
            df, inference="cluster"
        )
    return {"coef": res.estimate("d"), "se": res.std_error("d")}


def fit_diffdiff(df: Any) -> dict[str, float]:
    """Fit with diff-diff's TwoWayFixedEffects class."""
    import warnings

    from diff_diff import TwoWayFixedEffects

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = TwoWayFixedEffects(cluster="city").fit(
            df, outcome="y", treatment="treated", post="post", unit="unit"
        )
    return {"coef": res.att, "se": res.se}


def fit_diffdiff_absorb(df: Any) -> dict[str, float]:
    """Fit with diff-diff's DifferenceInDifferences, absorbing unit and period effects."""
    import warnings

    from diff_diff import DifferenceInDifferences

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # treated and post are collinear with the FE
        res = DifferenceInDifferences(cluster="city").fit(
            df, outcome="y", treatment="treated", post="post", absorb=["unit", "time"]
        )
    return {"coef": res.att, "se": res.se}


def fit_pyfixest(df: Any) -> dict[str, float]:
    """Fit with pyfixest."""
    import pyfixest as pf

    m = pf.feols("y ~ d | unit + time", data=df, vcov={"CRV1": "city"})
    return {"coef": float(m.coef()["d"]), "se": float(m.se()["d"])}


def fit_linearmodels(df: Any) -> dict[str, float]:
    """Fit with linearmodels' PanelOLS (defaults for the clustered covariance)."""
    from linearmodels import PanelOLS

    p = df.set_index(["unit", "time"])
    res = PanelOLS(p["y"], p[["d"]], entity_effects=True, time_effects=True).fit(
        cov_type="clustered", clusters=p[["city"]]
    )
    return {"coef": float(res.params["d"]), "se": float(res.std_errors["d"])}


# --------------------------------------------------------------------------- data
def write_panel(path: Path, units: int, periods: int, seed: int) -> dict[str, int]:
    """Simulate the balanced Bergen-like panel and write it to ``path`` (Parquet).

    Periods are numbered 1..``periods``; the treated city is treated from period
    ``periods // 2`` on. Returns the design's sizes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if units < CITIES or periods < 2:
        raise SystemExit(f"need at least {CITIES} units and 2 periods")
    rng = np.random.default_rng(seed)
    start = max(2, periods // 2)
    city_of_unit = rng.permutation(np.arange(units) % CITIES).astype(np.int16)
    unit = np.repeat(np.arange(units, dtype=np.int32), periods)
    time = np.tile(np.arange(1, periods + 1, dtype=np.int16), units)
    city = np.repeat(city_of_unit, periods)
    treated = (city == TREATED_CITY).astype(np.int8)
    post = (time >= start).astype(np.int8)
    d = treated * post
    y = np.repeat(rng.normal(0.0, 1.0, units), periods)  # unit effects
    y += rng.normal(0.0, 0.5, periods)[time - 1]  # period effects
    y += rng.normal(0.0, 0.1, (CITIES, periods))[city, time - 1]  # city x period shocks
    y += EFFECT * d
    y += rng.normal(0.0, 1.0, units * periods)
    table = pa.table(
        {"unit": unit, "time": time, "city": city, "treated": treated, "post": post, "d": d, "y": y}
    )
    pq.write_table(table, path)
    return {
        "n": units * periods,
        "units": units,
        "periods": periods,
        "cities": CITIES,
        "start": start,
    }


# --------------------------------------------------------------------------- SE check
def se_conventions(design: dict[str, int]) -> list[tuple[str, str, float]]:
    """Small-sample factors on the CR1 variance, relative to evalkit's.

    All packages compute the same sandwich ``(X'X)^-1 (sum_g s_g s_g') (X'X)^-1`` on the
    demeaned data (for diff-diff's TwoWayFixedEffects the pre/post effects replace the
    period effects, which changes the residuals but not the city score sums here,
    because with one adoption date the demeaned ``d`` is constant within the pre and
    post blocks). They differ in the factor in front:

    - evalkit, pyfixest (ssc defaults), diff-diff absorb: ``G/(G-1) (N-1)/(N-K)``,
      K = 1 + T (the unit effects are nested in the city clusters and not counted).
    - diff-diff TwoWayFixedEffects: the same with K = 3 (intercept, d, one post effect).
    - linearmodels 7.1 defaults (``debiased=True``, ``group_debias=False``,
      ``auto_df``/``count_effects`` count the effects for two-way effects): ``N/(N-K)``
      with K = 1 regressor + U unit effects + (T-1) period effects (no constant), all
      unit effects counted although nested in the clusters, and no ``G/(G-1)``.
    """
    n, u, t, g = design["n"], design["units"], design["periods"], design["cities"]

    def cr1(k: int) -> float:
        return g / (g - 1) * (n - 1) / (n - k)

    base = cr1(1 + t)
    linearmodels = n / (n - (1 + u + t - 1))
    return [
        ("evalkit", f"G/(G-1)·(N-1)/(N-K), K={1 + t}", 1.0),
        ("pyfixest", f"G/(G-1)·(N-1)/(N-K), K={1 + t}", 1.0),
        ("diff-diff-absorb", f"G/(G-1)·(N-1)/(N-K), K={1 + t}", 1.0),
        ("diff-diff", "G/(G-1)·(N-1)/(N-K), K=3", float(np.sqrt(cr1(3) / base))),
        (
            "linearmodels",
            f"N/(N-K), K={u + t}, no G/(G-1)",
            float(np.sqrt(linearmodels / base)),
        ),
    ]


def se_table(results: list[ContenderResult], design: dict[str, int]) -> str:
    """Compare observed SE ratios to evalkit with those the conventions predict."""
    ref = next((r for r in results if r.name == "evalkit" and r.ok), None)
    got = {r.name: r for r in results if r.ok}
    lines = [
        "| contender | CR1 small-sample factor | predicted SE ÷ evalkit | observed | rel. gap |",
        "|---|---|---|---|---|",
    ]
    for name, rule, pred in se_conventions(design):
        r = got.get(name)
        if r is None or ref is None or r.se is None or ref.se is None:
            continue
        obs = r.se / ref.se
        lines.append(f"| {name} | {rule} | {pred:.7f} | {obs:.7f} | {obs / pred - 1:.1e} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def _markdown(
    results: list[ContenderResult],
    design: dict[str, int],
    args: argparse.Namespace,
    table: str,
    ses: str,
    data_s: float,
) -> str:
    m = machine_info()
    versions = ", ".join(
        f"{p} {package_version(p)}"
        for p in (
            "evalkit",
            "diff-diff",
            "pyfixest",
            "linearmodels",
            "numpy",
            "pandas",
            "scipy",
            "pyarrow",
        )
    )
    notes = "\n".join(
        f"- **{c.name}**: `{c.label}`" + (f"; {NOTES[c.name]}." if c.name in NOTES else "")
        for c in CONTENDERS
    )
    return f"""# TWFE benchmark

Run on {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")} with
`python benchmarks/twfe_bench.py {" ".join(sys.argv[1:])}`.

- Machine: {m["cpu"]}, {m["cores"]} cores (shared with other jobs), {m["memory"]} RAM,
  {m["os"]}, Python {m["python"]}.
- Packages: {versions}.
- Data: balanced panel, {design["units"]:,} units x {design["periods"]} periods =
  {design["n"]:,} rows, units nested in {design["cities"]} cities, one treated city from
  period {design["start"]} on, seed {args.seed}; simulated and written to Parquet once
  ({data_s:.1f} s), read by every contender in its own fresh process.
- Model: `y ~ d | unit + time`, CR1 standard errors clustered by city.
- Each contender: {args.repeat} fits in one process; "first" is the cold first fit,
  "best" the fastest. Ratios are contender ÷ evalkit (above 1: evalkit is faster or
  smaller). "fit peak" = peak RSS during a fit minus the RSS right after reading the
  data; "total peak" = the process's largest RSS (imports, read and fits).

{table}

Standard errors (CR1 conventions):

{ses}

What each contender runs:

{notes}
"""


def main(argv: list[str] | None = None) -> int:
    """Command line: simulate the panel, run the contenders, print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=200_000)
    p.add_argument("--periods", type=int, default=24)
    p.add_argument("--repeat", type=int, default=3, help="fits per contender (best of N)")
    p.add_argument("--only", default="", help="comma-separated contenders, e.g. evalkit,pyfixest")
    p.add_argument("--quick", action="store_true", help="20,000 units (smoke test)")
    p.add_argument("--seed", type=int, default=20200301)
    p.add_argument("--timeout", type=float, default=None, help="seconds per contender")
    p.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = p.parse_args(argv)
    if args.quick:
        args.units = 20_000
    contenders = select_contenders(CONTENDERS, args.only, p.error)

    with tempfile.TemporaryDirectory(prefix="twfe_bench_") as tmp:
        data = Path(tmp) / "panel.parquet"
        import time

        t0 = time.perf_counter()
        design = write_panel(data, args.units, args.periods, args.seed)
        data_s = time.perf_counter() - t0
        print(
            f"TWFE benchmark: {design['units']:,} units x {design['periods']} periods = "
            f"{design['n']:,} rows, {CITIES} cities, {data.stat().st_size / 2**20:.0f} MiB "
            f"Parquet; repeat={args.repeat}",
            file=sys.stderr,
        )
        results, code = run(
            __file__,
            contenders,
            data,
            repeat=args.repeat,
            reference="evalkit",
            timeout=args.timeout,
        )

    table = format_table(results, reference="evalkit")
    ses = se_table(results, design)
    print(table)
    print()
    print(ses)
    for r in results:
        if not r.ok:
            print(f"\n{r.name} failed: {r.error}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(_markdown(results, design, args, table, ses, data_s))
    if args.json:
        payload = {"design": design, "machine": machine_info(), "results": results_json(results)}
        args.json.write_text(json.dumps(payload, indent=2))
    if code == 1:
        print("\nFAIL: coefficients disagree with evalkit's beyond 1e-8 (relative)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
