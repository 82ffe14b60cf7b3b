"""Multilevel model benchmark: evalkit's MixedModel against statsmodels MixedLM directly.

A random-intercept linear probability model of a 0/1 outcome on a municipality-level
configuration (0/1), an individual covariate and a categorical year (8 levels), with
random intercepts by municipality: ``--rows`` person-years (default 200,000) in
``--groups`` municipalities (default 300). evalkit wraps MixedLM, so the comparison
measures evalkit's overhead (input checks, design matrix, the group-by-group sandwich
for the cluster-robust standard errors) on top of the same optimiser. Every contender
runs in its own fresh subprocess on the same Parquet file (see ``_harness.py``).

Check (exit code 1 when it fails): the configuration's coefficient equal within 1e-8
(relative). The standard errors differ by design: statsmodels reports the inverse
Hessian of the likelihood, evalkit the cluster-robust sandwich (and, with
``inference="iid"``, lme4's ``(X'V^-1X)^-1``).

Usage (from the repository root)::

    /work/venv/bin/python benchmarks/multilevel_bench.py --quick
    /work/venv/bin/python benchmarks/multilevel_bench.py --markdown benchmarks/results/multilevel.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Contender, format_table, machine_info, run, select_contenders

CONTENDERS = [
    Contender(
        "evalkit",
        "fit_evalkit",
        imports=("evalkit.multilevel", "statsmodels.api"),
        package="evalkit",
        label='MixedModel(outcome="y", treatment="config", covariates=["x", "year"], '
        'categorical=["year"], cluster="municipality").fit(df, inference="cluster")',
    ),
    Contender(
        "statsmodels",
        "fit_statsmodels",
        imports=("statsmodels.formula.api",),
        package="statsmodels",
        label='smf.mixedlm("y ~ config + x + C(year)", df, groups=df["municipality"])'
        ".fit(reml=True)",
    ),
]


def fit_evalkit(df: Any) -> dict[str, Any]:
    """Fit with evalkit (run in the child process)."""
    from evalkit.multilevel import MixedModel

    est = MixedModel(
        outcome="y",
        treatment="config",
        covariates=["x", "year"],
        categorical=["year"],
        cluster="municipality",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.fit(df, inference="cluster")
    return {"coef": res.estimate("config"), "se": res.std_error("config")}


def fit_statsmodels(df: Any) -> dict[str, Any]:
    """Fit statsmodels MixedLM directly with the same model."""
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("y ~ config + x + C(year)", df, groups=df["municipality"]).fit(reml=True)
    return {"coef": float(fit.fe_params["config"]), "se": float(fit.bse_fe["config"])}


def write_data(path: Path, rows: int, groups: int, seed: int) -> None:
    """Write the simulated person-years to ``path`` (Parquet)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, rows)
    config = rng.integers(0, 2, groups)[g]
    x = rng.normal(size=rows)
    year = rng.integers(2016, 2024, rows)
    p = 0.2 + 0.05 * config + 0.03 * x + 0.01 * (year - 2016) + rng.normal(0, 0.05, groups)[g]
    y = (rng.random(rows) < np.clip(p, 0.01, 0.99)).astype(float)
    pd.DataFrame({"y": y, "config": config, "x": x, "year": year, "municipality": g}).to_parquet(
        path
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: write the data, run the contenders, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000, help="person-years")
    p.add_argument("--groups", type=int, default=300, help="municipalities")
    p.add_argument("--repeat", type=int, default=3, help="fits per contender (best of N)")
    p.add_argument("--only", default="", help="comma-separated contenders")
    p.add_argument("--quick", action="store_true", help="20,000 rows in 100 groups")
    p.add_argument("--seed", type=int, default=20240613)
    p.add_argument("--timeout", type=float, default=None, help="seconds per contender")
    p.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.groups = 20_000, 100
    contenders = select_contenders(CONTENDERS, args.only, p.error)
    with tempfile.TemporaryDirectory(prefix="multilevel_bench_") as tmp:
        data = Path(tmp) / "persons.parquet"
        write_data(data, args.rows, args.groups, args.seed)
        results, code = run(
            __file__,
            contenders,
            data,
            repeat=args.repeat,
            reference="evalkit",
            timeout=args.timeout,
        )
    table = format_table(results, reference="evalkit")
    print(table)
    if args.markdown is not None:
        info = machine_info()
        text = (
            f"# Multilevel model benchmark\n\n{args.rows:,} person-years in {args.groups} "
            f"municipalities, best of {args.repeat} fits.\n\n{table}\n\nMachine: "
            + ", ".join(f"{k} {v}" for k, v in info.items())
            + "\n"
        )
        args.markdown.write_text(text, encoding="utf-8")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
