"""Goodman-Bacon decomposition benchmark: evalkit against diff-diff (issue #7).

Decomposes the static TWFE estimate of a simulated balanced staggered-adoption panel
(default 100,000 units x 10 periods = 1,000,000 rows; never-treated units and four
cohorts first treated in periods 3, 5, 7 and 9, with dynamic effects) into its 2x2
comparisons. Every package runs in its own fresh subprocess on the same Parquet file
(see ``_harness.py``).

Checks (exit code 1 when one fails): the TWFE coefficient agrees to 1e-8 (relative), and
every 2x2 estimate and weight of diff-diff (``weights="exact"``) equals evalkit's within
1e-10.

Usage (from the repository root; diff-diff lives in the peers' environment)::

    PYTHONPATH=src /work/peers/bin/python benchmarks/bacon_bench.py --quick
    PYTHONPATH=src /work/peers/bin/python benchmarks/bacon_bench.py \\
        --markdown benchmarks/results/bacon.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
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
    run,
    select_contenders,
    vector_diff,
)

VECTOR_ATOL = 1e-10
COHORTS = (0, 3, 5, 7, 9)  # 0: never treated

CONTENDERS = [
    Contender(
        "evalkit",
        "fit_evalkit",
        imports=("evalkit.did",),
        package="evalkit",
        label='BaconDecomposition(outcome="y", unit="unit", time="time", treatment="d").fit(df)',
    ),
    Contender(
        "diff-diff",
        "fit_diffdiff",
        imports=("diff_diff",),
        package="diff-diff",
        label='BaconDecomposition(weights="exact").fit(df, outcome="y", unit="unit", '
        'time="time", first_treat="first")',
        vector_atol=VECTOR_ATOL,
    ),
]


def _key(kind: str, treated: Any, control: Any) -> str:
    control = "never" if control in ("never", "never_treated") else int(control)
    return f"{kind}/{int(treated)}/{control}"


def fit_evalkit(df: Any) -> dict[str, Any]:
    """Decompose with evalkit (run in the child process)."""
    from evalkit.did import BaconDecomposition

    res = BaconDecomposition(outcome="y", unit="unit", time="time", treatment="d").fit(df)
    vector: dict[str, float] = {}
    for r in res.tidy().itertuples():
        key = _key(r.comparison, r.treated, r.control)
        vector[f"estimate {key}"] = float(r.estimate)
        vector[f"weight {key}"] = float(r.weight)
    return {"coef": res.twfe_estimate, "se": float("nan"), "vector": vector}


def fit_diffdiff(df: Any) -> dict[str, Any]:
    """Decompose with diff-diff's exact weights."""
    from diff_diff import BaconDecomposition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = BaconDecomposition(weights="exact").fit(
            df, outcome="y", unit="unit", time="time", first_treat="first"
        )
    vector: dict[str, float] = {}
    for c in res.comparisons:
        key = _key(c.comparison_type, c.treated_group, c.control_group)
        vector[f"estimate {key}"] = float(c.estimate)
        vector[f"weight {key}"] = float(c.weight)
    return {"coef": float(res.twfe_estimate), "se": float("nan"), "vector": vector}


def write_panel(path: Path, units: int, periods: int, seed: int) -> dict[str, int]:
    """Write the simulated panel; returns its sizes."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    first = np.asarray(COHORTS)[rng.integers(0, len(COHORTS), units)]
    unit = np.repeat(np.arange(units), periods)
    time_ = np.tile(np.arange(1, periods + 1), units)
    g = first[unit]
    d = ((g > 0) & (time_ >= g)).astype(np.int8)
    y = (
        rng.normal(size=units)[unit]
        + rng.normal(size=periods)[time_ - 1]
        + d * (0.5 + 0.2 * (time_ - g))
        + rng.normal(size=unit.size)
    )
    pd.DataFrame({"unit": unit, "time": time_, "first": g, "d": d, "y": y}).to_parquet(path)
    return {"rows": unit.size, "units": units, "periods": periods}


def main(argv: list[str] | None = None) -> int:
    """Command line: simulate, run the contenders, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=100_000)
    p.add_argument("--periods", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3, help="fits per contender (best of N)")
    p.add_argument("--only", default="", help="comma-separated contenders")
    p.add_argument("--quick", action="store_true", help="10,000 units")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=None, help="seconds per contender")
    p.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    args = p.parse_args(argv)
    if args.quick:
        args.units = 10_000
    contenders = select_contenders(CONTENDERS, args.only, p.error)
    with tempfile.TemporaryDirectory(prefix="bacon_bench_") as tmp:
        data = Path(tmp) / "panel.parquet"
        design = write_panel(data, args.units, args.periods, args.seed)
        print(f"Bacon benchmark: {design['rows']:,} rows", file=sys.stderr)
        started = time.perf_counter()
        results, code = run(__file__, contenders, data, repeat=args.repeat, timeout=args.timeout)
        wall = time.perf_counter() - started
    table = format_table(results, reference="evalkit")
    got = {r.name: r for r in results if r.ok}
    checked = []
    if "evalkit" in got and "diff-diff" in got:
        diff = vector_diff(got["diff-diff"].vector, got["evalkit"].vector)
        ok = diff is not None and diff <= VECTOR_ATOL
        checked.append(
            f"{'PASS' if ok else 'FAIL'}: every 2x2 estimate and weight of diff-diff equal "
            f"evalkit's within {VECTOR_ATOL:g} (max abs diff {diff:.3g} over "
            f"{len(got['evalkit'].vector or {})} numbers)"
        )
        code = max(code, 0 if ok else 1)
    print(table)
    print("\n".join(["", *checked]))
    if args.markdown:
        m = machine_info()
        versions = ", ".join(
            f"{pkg} {package_version(pkg)}" for pkg in ("evalkit", "diff-diff", "numpy", "pandas")
        )
        notes = "\n".join(f"- **{c.name}**: `{c.label}`" for c in CONTENDERS)
        args.markdown.write_text(
            f"""# Goodman-Bacon decomposition benchmark

Run on {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")} with
`python benchmarks/bacon_bench.py {" ".join(sys.argv[1:])}` ({wall:.0f} s in all).

- Machine: {m["cpu"]}, {m["cores"]} cores (shared with other jobs), {m["memory"]} RAM,
  {m["os"]}, Python {m["python"]}.
- Packages: {versions}.
- Data: balanced panel, {design["units"]:,} units x {design["periods"]} periods =
  {design["rows"]:,} rows; cohorts {", ".join(map(str, COHORTS[1:]))} and never treated,
  drawn uniformly (seed {args.seed}); dynamic effects.
- Ratios are contender ÷ evalkit (above 1: evalkit is faster or smaller). "coef" is the
  TWFE coefficient; there is no SE (the decomposition has none). "vector" holds every
  2x2 estimate and weight.

{table}

Checks:

{chr(10).join("- " + c for c in checked)}

What each contender runs:

{notes}
""",
            encoding="utf-8",
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
