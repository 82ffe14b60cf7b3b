"""trial.IV2SLS against linearmodels' IV2SLS called directly: the wrapper's overhead.

A cluster-randomised trial from ``integration_trial`` (offices x persons; receipt
instrumented by the offer, four covariates, CR1-type clustered covariance by office),
written once to Parquet and fitted by each contender in its own process. The
coefficient must agree to 1e-10 (same linearmodels call underneath); the ratio is the
cost of evalkit's checks, row cleaning and result.

    PYTHONPATH=src python benchmarks/trial_iv_bench.py --quick
    PYTHONPATH=src python benchmarks/trial_iv_bench.py --markdown benchmarks/results/trial_iv.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Contender, format_table, machine_info, run, select_contenders

COVS = ["age", "female", "health_problem", "prior_months"]


def fit_evalkit(df: Any) -> dict[str, float]:
    """evalkit's trial.IV2SLS, clustered by office."""
    from evalkit.trial import IV2SLS

    res = IV2SLS(
        outcome="work_12m", treatment="received", instrument="assigned", covariates=COVS,
        cluster="office",
    ).fit(df)  # fmt: skip
    return {"coef": res.estimate("received"), "se": res.std_error("received")}


def fit_linearmodels(df: Any) -> dict[str, float]:
    """linearmodels.iv.IV2SLS, clustered by office, debiased."""
    from linearmodels.iv import IV2SLS

    exog = df[COVS].astype(float).assign(const=1.0)
    res = IV2SLS(
        df["work_12m"].astype(float), exog, df["received"].astype(float),
        df["assigned"].astype(float),
    ).fit(cov_type="clustered", clusters=df["office"], debiased=True)  # fmt: skip
    return {"coef": float(res.params["received"]), "se": float(res.std_errors["received"])}


CONTENDERS = [
    Contender("evalkit", "fit_evalkit", imports=("evalkit.trial.iv", "linearmodels.iv"),
              package="evalkit", label="evalkit.trial.IV2SLS(cluster='office')"),
    Contender("linearmodels", "fit_linearmodels", imports=("linearmodels.iv",),
              package="linearmodels", label="linearmodels.iv.IV2SLS(...).fit(clustered)"),
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Simulate the trial, run both contenders, print (and optionally write) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--offices", type=int, default=2000)
    p.add_argument("--persons", type=int, default=500, help="persons per office")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", default="")
    p.add_argument("--quick", action="store_true", help="200 offices x 100 persons")
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.offices, args.persons = 200, 100
    contenders = select_contenders(CONTENDERS, args.only, p.error)
    from evalkit.simulate import get

    sim = get("integration_trial")(seed=1, n_offices=args.offices, persons_per_office=args.persons)
    with tempfile.TemporaryDirectory(prefix="trial_iv_bench_") as tmp:
        data = Path(tmp) / "trial.parquet"
        sim.data.to_parquet(data, index=False)
        results, code = run(__file__, contenders, data, repeat=args.repeat, rtol=1e-10)
    table = format_table(results, reference="evalkit")
    print(table)
    if args.markdown:
        machine = machine_info()
        args.markdown.write_text(
            f"# trial.IV2SLS vs linearmodels\n\n{args.offices} offices x {args.persons} "
            f"persons ({args.offices * args.persons:,} rows), clustered by office; "
            f"{args.repeat} fits each. Machine: {machine}.\n\n{table}\n",
            encoding="utf-8",
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
