"""Wild cluster bootstrap benchmark: evalkit against wildboottest (what pyfixest wraps).

9,999 wild-bootstrap draws (WCR, Rademacher; with 10 clusters both packages enumerate all
2^10 = 1,024 sign vectors instead) for ``y ~ d | unit + time`` on the balanced
200,000 x 24 panel of ``twfe_bench.py`` (4.8M rows) clustered by its 10 cities, side by
side with evalkit's plain CR1 fit, each contender in its own fresh process.

pyfixest 0.60's ``Feols.wildboottest`` passes wildboottest the one-hot design with every
fixed effect as a dummy column (``_model_matrix_one_hot``): 4.8M rows x 200,024 columns,
about 7.7 TB dense, so it cannot run on this panel. The ``wildboottest`` contender
therefore gets the data with the unit and period effects already partialled out (one
column), the most favourable input it can take; evalkit additionally refits the period
effects on the bootstrap errors (exact dummy-variable bootstrap, see
evalkit.inference.wild), which wildboottest on partialled data does not. pyfixest itself
does not import in /work/peers (its matplotlib 3.7.1 was built for NumPy 1.x), so
wildboottest 0.3.2 is called directly.

Run with the peers environment (it holds wildboottest) and the worktree's evalkit::

    PYTHONPATH=src /work/peers/bin/python benchmarks/wild_bench.py --quick
    PYTHONPATH=src /work/peers/bin/python benchmarks/wild_bench.py --markdown \
        benchmarks/results/wild.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Contender, format_table, machine_info, package_version, run
from twfe_bench import write_panel

REPS = 9999

P_VALUE_NOTE = (
    "The p-values differ by design: wildboottest here bootstraps the partialled data, while "
    "evalkit refits the period effects (not nested in the city clusters) on every draw's "
    "errors, the exact dummy-variable wild bootstrap. On the explicit dummy design the two "
    "agree draw by draw to 1e-10 (tests/reference/test_wild_reference.py)."
)

CONTENDERS = [
    Contender(
        "evalkit",
        "fit_plain",
        imports=("evalkit.did",),
        package="evalkit",
        label='TWFE(..., cluster="city").fit(df, inference="cluster")',
    ),
    Contender(
        "evalkit-wild",
        "fit_wild",
        imports=("evalkit.did",),
        package="evalkit",
        label='TWFE(..., cluster="city").fit(df, inference="wild", seed=1): WCR Rademacher, '
        "9,999 draws (enumerated: 1,024), p-value and 95% interval by test inversion",
    ),
    Contender(
        "wildboottest",
        "fit_wildboottest",
        imports=("wildboottest.wildboottest",),
        package="wildboottest",
        label="WildboottestCL(X=d~, Y=y~, cluster=city, B=9999), bootstrap_type='11', "
        "impose_null=True, Rademacher; p-value only (no interval)",
    ),
]


def fit_plain(df: Any) -> dict[str, float]:
    """evalkit's plain CR1 fit."""
    import warnings

    from evalkit.did import TWFE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = TWFE(outcome="y", treatment="d", unit="unit", time="time", cluster="city").fit(
            df, inference="cluster"
        )
    return {"coef": res.estimate("d"), "se": res.std_error("d")}


def fit_wild(df: Any) -> dict[str, Any]:
    """evalkit's wild cluster bootstrap through the estimator (the whole fit included)."""
    from evalkit.did import TWFE

    res = TWFE(outcome="y", treatment="d", unit="unit", time="time", cluster="city").fit(
        df, inference="wild", seed=1
    )
    row = res.tidy().iloc[0]
    return {
        "coef": float(row["estimate"]),
        "se": float("nan"),  # no standard error: p-value and interval by test inversion
        "vector": {
            "p_value": float(row["p_value"]),
            "conf_low": float(row["conf_low"]),
            "conf_high": float(row["conf_high"]),
        },
    }


def fit_wildboottest(df: Any) -> dict[str, Any]:
    """wildboottest on the two-way demeaned data (balanced panel: closed form)."""
    import numpy as np
    from wildboottest.wildboottest import WildboottestCL

    def demean(col: str) -> np.ndarray:
        v = df[col].to_numpy(float)
        um = df.groupby("unit")[col].transform("mean").to_numpy()
        tm = df.groupby("time")[col].transform("mean").to_numpy()
        return v - um - tm + v.mean()

    x = demean("d")[:, None]
    y = demean("y")
    boot = WildboottestCL(
        X=x, Y=y, cluster=df["city"].to_numpy(), R=np.array([1.0]), B=REPS, seed=1
    )
    boot.get_scores(bootstrap_type="11", impose_null=True)
    boot.get_weights(weights_type="rademacher")
    boot.get_numer()
    boot.get_denom()
    boot.get_tboot()
    boot.get_vcov()
    boot.get_tstat()
    boot.get_pvalue(pval_type="two-tailed")
    coef = float(boot.beta_hat[0])
    se = float(np.sqrt(boot.vcov[0, 0]))  # without wildboottest's ssc (k = 1 here)
    return {"coef": coef, "se": se, "vector": {"p_value": float(boot.pvalue)}}


def main(argv: list[str] | None = None) -> int:
    """Simulate the panel, run the contenders, print (and optionally write) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=200_000)
    p.add_argument("--periods", type=int, default=24)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="20,000 units")
    p.add_argument("--seed", type=int, default=20200301)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.units = 20_000
    with tempfile.TemporaryDirectory(prefix="wild_bench_") as tmp:
        data = Path(tmp) / "panel.parquet"
        design = write_panel(data, args.units, args.periods, args.seed)
        results, code = run(__file__, CONTENDERS, data, repeat=args.repeat, rtol=1e-6)
    table = format_table(results, reference="evalkit")
    by = {r.name: r for r in results}
    lines = [table, ""]
    plain, wild, wb = by.get("evalkit"), by.get("evalkit-wild"), by.get("wildboottest")
    if plain and wild and plain.ok and wild.ok:
        lines.append(
            f"evalkit wild / evalkit plain fit: {wild.best_fit_s / plain.best_fit_s:.2f}x "
            "(target: under 3x)"
        )
    if wild and wb and wild.ok and wb.ok:
        lines.append(
            f"wildboottest / evalkit wild: {wb.best_fit_s / wild.best_fit_s:.2f}x "
            "(above 1: evalkit faster)"
        )
        lines.append(f"p-values: evalkit {wild.vector}, wildboottest {wb.vector}")
    for r in results:
        if not r.ok:
            lines.append(f"{r.name} failed: {r.error}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        m = machine_info()
        versions = ", ".join(
            f"{pkg} {package_version(pkg)}" for pkg in ("evalkit", "wildboottest", "numpy")
        )
        args.markdown.write_text(
            f"# Wild cluster bootstrap benchmark\n\nRun on "
            f"{dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} with "
            f"`python benchmarks/wild_bench.py {' '.join(sys.argv[1:])}` on {m['cpu']}, "
            f"{m['cores']} cores (shared), {versions}.\n\n"
            f"Data: {design['units']:,} units x {design['periods']} periods = {design['n']:,} "
            f"rows in {design['cities']} cities, one treated from period {design['start']}. "
            f"Each contender: {args.repeat} runs in a fresh process, best time.\n\n"
            + table
            + "\n\n"
            + "\n\n".join(lines[2:])
            + "\n\n"
            + P_VALUE_NOTE
            + "\n\n"
            + "\n".join(f"- **{c.name}**: {c.label}" for c in CONTENDERS)
            + "\n\n"
            + (__doc__ or "").split("\n\n")[1]
            + "\n"
        )
    return code


if __name__ == "__main__":
    t0 = time.perf_counter()
    raise SystemExit(main())
