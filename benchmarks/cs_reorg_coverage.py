"""Coverage of the service-integration study's ``reorg_cs`` group-time effects over seeds.

The study (studies/service_integration, analysis ``reorg_cs``) fits Callaway-Sant'Anna on
the at-risk person-years (``neet_prev = 1``) as repeated cross-sections, not-yet-treated
controls, outcome regression, clustered by municipality. This script draws the
simulator (``integration_youth``) with many seeds, fits the same analysis, and compares
each ATT(g,t) with its exact truth (the study's ``cohort_time`` rule: the mean planted
effect of the reorganisation over the cohort's at-risk person-years in that year, 0
before adoption). It reports coverage per cell and overall with a binomial band, the
mean error per cell with its Monte Carlo standard error (bias), and the same split by
pre-periods and post-periods.

Not a test: run by hand, results in ``benchmarks/results/cs_reorg_coverage.md``::

    PYTHONPATH=src python benchmarks/cs_reorg_coverage.py --seeds 1-30 \\
        --markdown benchmarks/results/cs_reorg_coverage.md

``--effect-scale 0`` plants no effect at all (every truth 0): a check of the
pre-trends and of the size of the tests without any dynamic selection.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
from dml_few_clusters import binomial_band

OPTIONS = {
    "outcome": "exit",
    "unit": "municipality",
    "time": "year",
    "cohort": "reorg_year",
    "cluster": "municipality",
    "panel": False,
    "control_group": "not_yet_treated",
    "method": "reg",
}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def one_draw(
    seed: int, n_persons: int, effect_scale: float, municipalities: tuple[int, int, int]
) -> pd.DataFrame:
    """Fit ``reorg_cs`` on one simulated draw; one row per ATT(g,t) with its truth."""
    from evalkit.did import CallawaySantAnna
    from evalkit.simulate.integration.youth import EFFECTS, integration_youth

    sim = integration_youth(
        seed=seed,
        n_persons=n_persons,
        effect_scale=effect_scale,
        n_municipalities=municipalities,
    )
    rows = sim.data[sim.data["neet_prev"] == 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = CallawaySantAnna(**OPTIONS).fit(rows, seed=seed)
    tidy = fit.tidy()
    low, high = EFFECTS["reorganised"]
    effect = effect_scale * np.where(rows["high_need"].to_numpy() == 1, high, low)
    cohort, year = rows["reorg_year"].to_numpy(), rows["year"].to_numpy()
    truths = []
    for g, t in zip(tidy["cohort"], tidy["time"], strict=True):
        cell = (cohort == g) & (year == t)
        truths.append(float(effect[cell].mean()) if t >= g and cell.any() else 0.0)
    out = tidy[["cohort", "time", "estimate", "std_error", "conf_low", "conf_high"]].copy()
    out["truth"] = truths
    out["seed"] = seed
    out["n_clusters"] = rows["municipality"].nunique()
    return out


def summarise(draws: pd.DataFrame) -> str:
    """Markdown tables: per cell and pooled by pre/post period."""
    d = draws.assign(
        covered=(draws["conf_low"] <= draws["truth"]) & (draws["truth"] <= draws["conf_high"]),
        error=draws["estimate"] - draws["truth"],
        z=(draws["estimate"] - draws["truth"]) / draws["std_error"],
        post=draws["time"] >= draws["cohort"],
    )
    lines = [
        "| cohort | year | post | draws | coverage | mean truth | mean error (MC se) | "
        "sd of estimates / mean se |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (g, t), part in d.groupby(["cohort", "time"]):
        n = len(part)
        err = part["error"]
        lines.append(
            f"| {g} | {t} | {'yes' if t >= g else 'no'} | {n} | {part['covered'].mean():.2f} | "
            f"{part['truth'].mean():.3f} | {err.mean():+.4f} ({err.std(ddof=1) / np.sqrt(n):.4f})"
            f" | {part['estimate'].std(ddof=1) / part['std_error'].mean():.2f} |"
        )
    lines += [
        "",
        "| cells | intervals | coverage | 99% binomial band | sd of z |",
        "|---|---|---|---|---|",
    ]
    for name, part in (("all", d), ("pre", d[~d["post"]]), ("post", d[d["post"]])):
        lo, hi = binomial_band(len(part))
        lines.append(
            f"| {name} | {len(part)} | {part['covered'].mean():.3f} | {lo:.3f}-{hi:.3f} | "
            f"{part['z'].std(ddof=1):.2f} |"
        )
    per_draw = d.groupby("seed")["covered"].agg(["sum", "size"])
    lines += [
        "",
        f"Misses per draw (of {int(per_draw['size'].iloc[0])} cells): "
        + ", ".join(
            f"{int(k)}: {int(v)}"
            for k, v in (per_draw["size"] - per_draw["sum"]).value_counts().sort_index().items()
        )
        + " draws.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-30")
    parser.add_argument("--n-persons", type=int, default=40_000)
    parser.add_argument("--effect-scale", type=float, default=1.0)
    parser.add_argument("--municipalities", default="40,30,20", help="per country")
    parser.add_argument("--markdown")
    parser.add_argument("--csv")
    args = parser.parse_args()
    start = time.perf_counter()
    draws = []
    for seed in _seeds(args.seeds):
        munis = tuple(int(m) for m in args.municipalities.split(","))
        draws.append(one_draw(seed, args.n_persons, args.effect_scale, munis))  # type: ignore[arg-type]
        print(f"seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    all_draws = pd.concat(draws, ignore_index=True)
    if args.csv:
        all_draws.to_csv(args.csv, index=False)
    text = (
        f"reorg_cs over seeds {args.seeds}, n_persons {args.n_persons}, municipalities "
        f"{args.municipalities}, effect_scale {args.effect_scale:g}; "
        f"{time.perf_counter() - start:.0f} s wall, load {os.getloadavg()[0]:.1f}\n\n"
        + summarise(all_draws)
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
