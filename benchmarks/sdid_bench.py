"""Synthetic DiD benchmark: evalkit against diff-diff and synthdid (PyPI) (issue #10).

Two designs, each contender in its own fresh subprocess on the same Parquet file (see
``_harness.py``):

- ``prop99``: California's Proposition 99 (39 states x 31 years, one treated state),
  SDID estimate with a 100-draw placebo standard error (seed 1);
- ``sim``: a simulated panel of 1,000 units x 30 periods (``--units``, ``--periods``),
  the last 50 units treated from period 21, two-factor outcomes, the same estimate and
  100-draw placebo standard error.

The estimates must agree to 1e-3 (relative) with evalkit's. diff-diff and evalkit
draw their placebo permutations the same way (``numpy.random.default_rng(seed)
.permutation``), so their standard errors coincide up to where each Frank-Wolfe run
stops. synthdid 0.10.1 is listed so that its failure is reported: it does not run under
pandas 3 (its ``groupby(...).apply`` expects the grouping column in each group).

Run with a Python that has evalkit's dependencies and the peers installed, from the
repository root (the peers venv works: ``PYTHONPATH=src``)::

    PYTHONPATH=src /work/peers/bin/python benchmarks/sdid_bench.py --design prop99
    PYTHONPATH=src /work/peers/bin/python benchmarks/sdid_bench.py --design sim --repeat 1
    PYTHONPATH=src /work/peers/bin/python benchmarks/sdid_bench.py \\
        --markdown benchmarks/results/sdid.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    Contender,
    format_table,
    machine_info,
    package_version,
    results_json,
    run,
    select_contenders,
)

REPS = 100
SEED = 1
RTOL = 1e-3

CONTENDERS = [
    Contender(
        "evalkit",
        "fit_evalkit",
        imports=("evalkit.synth",),
        package="evalkit",
        label='SyntheticDiD(outcome="y", unit="unit", time="time", treatment="d")'
        '.fit(df, inference="placebo", reps=100, seed=1)',
    ),
    Contender(
        "diff-diff",
        "fit_diffdiff",
        imports=("diff_diff",),
        package="diff-diff",
        label='SyntheticDiD(variance_method="placebo", n_bootstrap=100, seed=1).fit(df, '
        'outcome="y", treatment="ever", unit="unit", time="time", post_periods=...)',
        rtol=RTOL,
    ),
    Contender(
        "synthdid",
        "fit_synthdid",
        imports=("synthdid",),
        package="synthdid",
        label='Synthdid(df, unit="unit", time="time", treatment="d", outcome="y").fit()'
        '.vcov(method="placebo", n_reps=100)',
        rtol=RTOL,
    ),
]


# --------------------------------------------------------------------------- contenders
def fit_evalkit(df: Any) -> dict[str, Any]:
    """Fit with evalkit's SyntheticDiD and a 100-draw placebo standard error."""
    from evalkit.synth import SyntheticDiD

    res = SyntheticDiD(outcome="y", unit="unit", time="time", treatment="d").fit(
        df, inference="placebo", reps=REPS, seed=SEED
    )
    return {"coef": res.estimate(), "se": res.std_error()}


def fit_diffdiff(df: Any) -> dict[str, Any]:
    """Fit with diff-diff's SyntheticDiD (treatment = ever treated, post periods given)."""
    from diff_diff import SyntheticDiD

    post = sorted(df.loc[df["d"] == 1, "time"].unique().tolist())
    data = df.assign(ever=df.groupby("unit")["d"].transform("max"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = SyntheticDiD(variance_method="placebo", n_bootstrap=REPS, seed=SEED).fit(
            data, outcome="y", treatment="ever", unit="unit", time="time", post_periods=post
        )
    return {"coef": float(res.att), "se": float(res.se)}


def fit_synthdid(df: Any) -> dict[str, Any]:
    """Fit with synthdid (PyPI); its plotting import is stubbed (matplotlib is not needed)."""
    import types

    for name in ("matplotlib", "matplotlib.pyplot"):
        sys.modules.setdefault(name, types.ModuleType(name))
    from synthdid.synthdid import Synthdid

    model = Synthdid(df, unit="unit", time="time", treatment="d", outcome="y").fit()
    model = model.vcov(method="placebo", n_reps=REPS)
    return {"coef": float(model.att), "se": float(model.se)}


# --------------------------------------------------------------------------- data
def write_prop99(path: Path) -> dict[str, Any]:
    """Write Prop 99 with the benchmark's column names."""
    import evalkit

    df = evalkit.datasets.load("prop99")
    out = df.rename(
        columns={"State": "unit", "Year": "time", "PacksPerCapita": "y", "treated": "d"}
    )
    out.to_parquet(path)
    return {"design": "prop99", "units": 39, "periods": 31, "treated": 1}


def write_sim(path: Path, units: int, periods: int, seed: int = 20261129) -> dict[str, Any]:
    """Write a two-factor panel, the last 5% of units treated over the last third."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_treated = max(1, units // 20)
    t0 = periods - periods // 3
    loadings = rng.normal(size=(units, 2))
    factors = rng.normal(size=(periods, 2)).cumsum(axis=0)
    y = 10 + loadings @ factors.T + rng.normal(size=(units, 1)) + rng.normal(size=(units, periods))
    d = np.zeros((units, periods), dtype=np.int64)
    d[units - n_treated :, t0:] = 1
    y = y + 2.0 * d
    df = pd.DataFrame(
        {
            "unit": np.repeat(np.arange(units), periods),
            "time": np.tile(np.arange(1, periods + 1), units),
            "d": d.ravel(),
            "y": y.ravel(),
        }
    )
    df.to_parquet(path)
    return {"design": "sim", "units": units, "periods": periods, "treated": n_treated}


def report(design: dict[str, Any], results: list[Any], command: str) -> str:
    """Markdown section for one design."""
    info = machine_info()
    versions = ", ".join(
        f"{p} {package_version(p)}" for p in ("evalkit", "diff-diff", "synthdid", "numpy", "pandas")
    )
    lines = [
        f"## {design['design']}: {design['units']} units x {design['periods']} periods, "
        f"{design['treated']} treated",
        "",
        f"Run on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{command}`.",
        "",
        f"- Machine: {info.get('cpu')}, {info.get('cores')} cores (shared with other jobs), "
        f"{info.get('memory')}, Python {info.get('python')}.",
        f"- Packages: {versions}.",
        f"- Model: SDID point estimate with a {REPS}-draw placebo standard error (seed {SEED}).",
        "",
        format_table(results, reference="evalkit", rtol=RTOL),
        "",
    ]
    for r in results:
        if not r.ok:
            lines.append(f"- {r.name} failed: {r.error}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--design", choices=["prop99", "sim", "both"], default="both")
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--periods", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", default="")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    contenders = select_contenders(CONTENDERS, args.only, parser.error)
    designs = ["prop99", "sim"] if args.design == "both" else [args.design]
    sections, raw, code = [], {}, 0
    command = "python benchmarks/sdid_bench.py " + " ".join(argv or sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        for name in designs:
            path = Path(tmp) / f"{name}.parquet"
            design = (
                write_prop99(path)
                if name == "prop99"
                else write_sim(path, args.units, args.periods)
            )
            print(f"{name}: {design}", file=sys.stderr)
            results, rc = run(
                __file__, contenders, path, repeat=args.repeat, rtol=RTOL, timeout=args.timeout
            )
            code = max(code, rc)
            sections.append(report(design, results, command.strip()))
            raw[name] = results_json(results)
            print(sections[-1])
    if args.markdown:
        head = "# Synthetic DiD benchmark\n\n" + "\n\n".join((__doc__ or "").split("\n\n")[1:4])
        head += "\n\n"
        Path(args.markdown).write_text(head + "\n".join(sections))
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
