"""ADH synthetic control benchmark: evalkit against pysyncon on the Basque data.

The Abadie & Gardeazabal (2003) specification of the Synth R package example
(PROVENANCE.md): 13 predictors, V chosen to fit gdpcap over 1960-1969, 16 donor regions.
The V problem is not convex, so the packages reach different optima: the table reports
the pre-period fit reached (MSPE of gdpcap over 1960-1969, lower is better; the
published Synth weights give 0.0088646) beside the time, and the average gap over
1970-1997 (which moves with the weights, so it is not checked for agreement).

Contenders: evalkit's default (equal, Synth regression and 10 random starts with
L-BFGS-B on analytic gradients plus a Nelder-Mead refinement), evalkit with Synth's two
starts only, and pysyncon 1.7 with Nelder-Mead from its equal and its regression
("ols") start (its documented Basque example uses Nelder-Mead).

Usage (from the repository root; pysyncon lives in the peers environment)::

    PYTHONPATH=src /work/peers/bin/python benchmarks/adh_bench.py
    PYTHONPATH=src /work/peers/bin/python benchmarks/adh_bench.py --markdown \\
        benchmarks/results/adh.md

Exit code 0 when every contender ran, 2 when one failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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

TREATED = "Basque Country (Pais Vasco)"
SCHOOL = ["school.illit", "school.prim", "school.med", "school.high", "school.post.high"]
SECTORS = [
    "sec.agriculture",
    "sec.energy",
    "sec.industry",
    "sec.construction",
    "sec.services.venta",
    "sec.services.nonventa",
]
PUBLISHED_MSPE = 0.0088645699069493  # Cataluna 0.851, Madrid 0.149 (tests/reference/data)
DIFFERENT = math.inf  # the ATT follows the weights: not compared across optimisers

CONTENDERS = [
    Contender(
        "evalkit",
        "fit_evalkit",
        imports=("evalkit.synth", "scipy.optimize"),
        package="evalkit",
        label='SyntheticControl(predictors=..., v_periods=(1960, 1969)).fit(df, inference="none")',
    ),
    Contender(
        "evalkit-synth-starts",
        "fit_evalkit_synth_starts",
        imports=("evalkit.synth", "scipy.optimize"),
        package="evalkit",
        label="the same with random_starts=0 (Synth's equal and regression starts only)",
        rtol=DIFFERENT,
    ),
    Contender(
        "pysyncon-nm",
        "fit_pysyncon_equal",
        imports=("scipy.optimize",),
        package="pysyncon",
        label='Synth().fit(dataprep, optim_method="Nelder-Mead", optim_initial="equal")',
        rtol=DIFFERENT,
    ),
    Contender(
        "pysyncon-nm-ols",
        "fit_pysyncon_ols",
        imports=("scipy.optimize",),
        package="pysyncon",
        label='Synth().fit(dataprep, optim_method="Nelder-Mead", optim_initial="ols")',
        rtol=DIFFERENT,
    ),
]


def _mspe_att(df: pd.DataFrame, weights: pd.Series) -> tuple[float, float]:
    wide = df.pivot(index="year", columns="regionname", values="gdpcap")
    synthetic = wide[weights.index].to_numpy() @ weights.to_numpy()
    gap = wide[TREATED].to_numpy() - synthetic
    years = wide.index.to_numpy()
    pre = (years >= 1960) & (years <= 1969)
    return float(np.mean(gap[pre] ** 2)), float(gap[years >= 1970].mean())


def _out(df: pd.DataFrame, weights: pd.Series) -> dict[str, Any]:
    mspe, att = _mspe_att(df, weights)
    top = {f"w[{k}]": float(v) for k, v in weights.items() if v > 1e-3}
    return {"coef": att, "se": float("nan"), "vector": {"mspe_1960_1969": mspe, **top}}


def _evalkit(df: pd.DataFrame, **kw: Any) -> dict[str, Any]:
    from evalkit.synth import SyntheticControl

    predictors = [
        *[(v, (1964, 1969), "mean") for v in [*SCHOOL, "invest"]],
        ("gdpcap", (1960, 1969), "mean"),
        *[(v, [1961, 1963, 1965, 1967, 1969], "mean") for v in SECTORS],
        ("popdens", 1969, "mean"),
    ]
    est = SyntheticControl(
        outcome="gdpcap",
        unit="regionname",
        time="year",
        treatment="terror",
        predictors=predictors,
        v_periods=(1960, 1969),
        **kw,
    )
    return _out(df, est.fit(df, inference="none").weights)


def fit_evalkit(df: pd.DataFrame) -> dict[str, Any]:
    return _evalkit(df)


def fit_evalkit_synth_starts(df: pd.DataFrame) -> dict[str, Any]:
    return _evalkit(df, random_starts=0)


def _pysyncon():
    """pysyncon imports pyplot to draw; the peers' matplotlib is built for NumPy 1 and
    fails to import under NumPy 2, so a stub stands in for it (nothing is drawn)."""
    try:
        import matplotlib.pyplot  # noqa: F401
    except (ImportError, AttributeError):
        for name in [m for m in sys.modules if m.startswith("matplotlib")]:
            del sys.modules[name]
        for name in ("matplotlib", "matplotlib.pyplot"):
            sys.modules[name] = types.ModuleType(name)
    import pysyncon

    return pysyncon


def _pysyncon_fit(df: pd.DataFrame, start: str) -> dict[str, Any]:
    pysyncon = _pysyncon()
    donors = sorted(set(df["regionname"]) - {TREATED})
    prep = pysyncon.Dataprep(
        foo=df,
        predictors=[*SCHOOL, "invest"],
        predictors_op="mean",
        time_predictors_prior=range(1964, 1970),
        special_predictors=[
            ("gdpcap", range(1960, 1970), "mean"),
            *[(s, range(1961, 1970, 2), "mean") for s in SECTORS],
            ("popdens", [1969], "mean"),
        ],
        dependent="gdpcap",
        unit_variable="regionname",
        time_variable="year",
        treatment_identifier=TREATED,
        controls_identifier=donors,
        time_optimize_ssr=range(1960, 1970),
    )
    synth = pysyncon.Synth()
    synth.fit(dataprep=prep, optim_method="Nelder-Mead", optim_initial=start)
    return _out(df, pd.Series(np.asarray(synth.W), index=list(synth.W_names)))


def fit_pysyncon_equal(df: pd.DataFrame) -> dict[str, Any]:
    return _pysyncon_fit(df, "equal")


def fit_pysyncon_ols(df: pd.DataFrame) -> dict[str, Any]:
    return _pysyncon_fit(df, "ols")


def fit_table(results: list[ContenderResult]) -> str:
    """The pre-period fit reached and the largest weights, per contender."""
    lines = [
        "| contender | MSPE 1960-1969 (lower is better) | vs published 0.0088646 | ATT 1970-1997 "
        "| fit s (best) | donor weights > 0.001 |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if not r.ok or r.vector is None:
            continue
        v = dict(r.vector)
        mspe = v.pop("mspe_1960_1969")
        weights = ", ".join(f"{k[2:-1]} {w:.3f}" for k, w in sorted(v.items(), key=lambda x: -x[1]))
        lines.append(
            f"| {r.name} | {mspe:.7f} | {mspe / PUBLISHED_MSPE:.3f} | {r.coef:.4f} "
            f"| {r.best_fit_s:.2f} | {weights} |"
        )
    return "\n".join(lines)


def _markdown(results, table: str, fits: str, args: argparse.Namespace) -> str:
    machine = machine_info()
    versions = ", ".join(
        f"{p} {package_version(p)}" for p in ("evalkit", "pysyncon", "numpy", "scipy")
    )
    return (
        f"# ADH synthetic control: evalkit vs pysyncon (Basque)\n\n"
        f"Run {dt.date.today().isoformat()} with `PYTHONPATH=src /work/peers/bin/python "
        f"benchmarks/adh_bench.py --repeat {args.repeat}`; {versions}; "
        f"{machine.get('cpu', '')}, {machine.get('cores', '')} cores (shared with other "
        "jobs: absolute times are noisy, ratios less so).\n\n"
        "## Pre-period fit reached\n\n"
        f"{fits}\n\n"
        "## Time and memory (ratios to evalkit)\n\n"
        f"{table}\n\n"
        "The ATT column differs across contenders because the weights differ (the V "
        "problem has many local optima); it is not an agreement check.\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: write the Basque data, run the contenders, print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="fits per contender (best of N)")
    p.add_argument("--only", default="", help="comma-separated contenders")
    p.add_argument("--timeout", type=float, default=None, help="seconds per contender")
    p.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = p.parse_args(argv)
    contenders = select_contenders(CONTENDERS, args.only, p.error)
    import evalkit

    df = evalkit.datasets.load("basque")
    df = df[df["regionname"] != "Spain (Espana)"].copy()
    df["terror"] = ((df["regionname"] == TREATED) & (df["year"] >= 1970)).astype(int)
    with tempfile.TemporaryDirectory(prefix="adh_bench_") as tmp:
        data = Path(tmp) / "basque.parquet"
        df.to_parquet(data)
        results, code = run(
            __file__,
            contenders,
            data,
            repeat=args.repeat,
            reference="evalkit",
            timeout=args.timeout,
        )
    table = format_table(results, reference="evalkit")
    fits = fit_table(results)
    print(fits)
    print()
    print(table)
    for r in results:
        if not r.ok:
            print(f"\n{r.name} failed: {r.error}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(_markdown(results, table, fits, args))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine_info(), "results": results_json(results)}, indent=2)
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
