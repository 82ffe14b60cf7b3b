"""Coverage of DML intervals with 20 and 40 clusters: DoubleML's variance vs CR2 and WCR.

The design of the service-integration study's ``integration_plr`` run on one country's
extract: the simulator ``integration_youth`` (40 Norwegian, 30 Swedish and 20 Danish
municipalities of very unequal size), the at-risk person-years of one country and one
need, and ``dml.PLR`` with the study's options (linear learners, 10 folds of
municipalities, the study's covariates), clustered by municipality. Each simulated draw
gives a country with 40 clusters (Norway) and one with 20 (Denmark), for complex and
standard needs; the truth is the planted slope of the integration index (0.10 / 0.02).

One fit per country and need; its scores give every interval compared:

- ``doubleml``: DoubleML's cluster-robust standard error, normal critical value (what
  ``inference="cluster"`` reports);
- ``cr1_t``: the same variance times ``G/(G-1)`` with ``t(G-1)`` critical values;
- ``cr2``: ``inference="cr2"`` (Bell-McCaffrey CR2, Satterthwaite df);
- ``cv3``: ``inference="jackknife"`` (leave-one-cluster-out jackknife of the score
  equation, ``t(G-1)``);
- ``wild``: ``inference="wild"`` (restricted wild cluster bootstrap, Rademacher, 999
  draws, test inversion).

Not a test (``tests/simulation/test_dml_few_clusters_coverage.py`` runs a subset)::

    PYTHONPATH=src python benchmarks/dml_few_clusters.py --seeds 1-200 \\
        --csv /tmp/dml_few.csv --markdown benchmarks/results/dml_few_clusters.md
    PYTHONPATH=src python benchmarks/dml_few_clusters.py --summarise /tmp/dml_few.csv
"""

from __future__ import annotations

import argparse
import os
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "service_integration" / "study.toml"
COUNTRIES = {"Norway": 40, "Denmark": 20}
METHODS = ("doubleml", "cr1_t", "cr2", "cv3", "wild")


def plr_options() -> dict:
    """The study's ``integration_plr`` options."""
    raw = tomllib.loads(STUDY.read_text())
    (plr,) = [a for a in raw["analysis"] if a["id"] == "integration_plr"]
    return dict(plr["options"])


def country_rows(data: pd.DataFrame) -> pd.DataFrame:
    """At-risk person-years with the study's derived country indicators."""
    rows = data[data["neet_prev"] == 1].copy()
    rows["country_sweden"] = (rows["country"] == "Sweden").astype(int)
    rows["country_denmark"] = (rows["country"] == "Denmark").astype(int)
    return rows


def intervals(fit, level: float = 0.95, wild_reps: int = 999) -> dict[str, tuple[float, float]]:
    """Every method's interval from one clustered DML fit (its scores and folds)."""
    from evalkit.dml.few_clusters import few_cluster_inference
    from evalkit.inference import CR2, Jackknife, Wild

    theta = float(fit.tidy()["estimate"].iloc[0])
    se = float(fit.tidy()["std_error"].iloc[0])
    g = int(fit.info["n_clusters"][0])
    z = stats.norm.ppf(0.5 + level / 2)
    t = stats.t.ppf(0.5 + level / 2, g - 1)
    out = {
        "doubleml": (theta - z * se, theta + z * se),
        "cr1_t": (theta - t * se * np.sqrt(g / (g - 1)), theta + t * se * np.sqrt(g / (g - 1))),
    }
    common = dict(seed=fit.info["seed"], level=level, cluster="municipality")
    for name, spec in (("cr2", CR2()), ("cv3", Jackknife())):
        unc, _, _ = few_cluster_inference(fit._model, fit._codes, spec, reps=None, **common)
        cols = unc.columns(np.array([theta]), level)
        out[name] = (float(cols["conf_low"][0]), float(cols["conf_high"][0]))
    unc, _, _ = few_cluster_inference(fit._model, fit._codes, Wild(), reps=wild_reps, **common)
    out["wild"] = (float(unc.conf_low[0]), float(unc.conf_high[0]))
    return out


def one_draw(
    seed: int,
    n_persons: int = 40_000,
    wild_reps: int = 999,
    countries: tuple[str, ...] = tuple(COUNTRIES),
    needs: tuple[int, ...] = (1, 0),
) -> list[dict]:
    """One simulated draw: rows per country (40 and 20 clusters), need and method."""
    from evalkit.dml import PLR
    from evalkit.simulate.integration.youth import integration_youth

    sim = integration_youth(seed=seed, n_persons=n_persons)
    rows = country_rows(sim.data)
    est = PLR(**plr_options())
    out = []
    for country in countries:
        for high_need in needs:
            group = "at_risk_complex" if high_need else "at_risk_standard"
            truth = sim.truth_terms[("exit", "integration", group)]
            part = rows[(rows["country"] == country) & (rows["high_need"] == high_need)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = est.fit(part, seed=seed, inference="cluster")
            g = int(fit.info["n_clusters"][0])
            theta = float(fit.tidy()["estimate"].iloc[0])
            for method, (lo, hi) in intervals(fit, wild_reps=wild_reps).items():
                out.append(
                    {
                        "seed": seed,
                        "country": country,
                        "clusters": g,
                        "need": group,
                        "truth": truth,
                        "estimate": theta,
                        "method": method,
                        "conf_low": lo,
                        "conf_high": hi,
                    }
                )
    return out


def binomial_band(n: int, level: float = 0.95, alpha: float = 0.01) -> tuple[float, float]:
    """Central 99% band of the coverage of ``n`` independent intervals at ``level``."""
    return (
        float(stats.binom.ppf(alpha / 2, n, level) / n),
        float(stats.binom.ppf(1 - alpha / 2, n, level) / n),
    )


def coverage_table(draws: pd.DataFrame) -> pd.DataFrame:
    """Coverage, its Monte Carlo standard error and mean length by clusters and method."""
    d = draws.assign(
        covered=(draws["conf_low"] <= draws["truth"]) & (draws["truth"] <= draws["conf_high"]),
        length=draws["conf_high"] - draws["conf_low"],
        # the country's municipalities (a need may leave one without at-risk rows)
        design=draws["country"].map(COUNTRIES),
    )
    rows = []
    for (g, method), part in d.groupby(["design", "method"], sort=True):
        n = len(part)
        cov = float(part["covered"].mean())
        lo, hi = binomial_band(n)
        rows.append(
            {
                "clusters": g,
                "method": method,
                "intervals": n,
                "coverage": cov,
                "mc_se": float(np.sqrt(cov * (1 - cov) / n)),
                "band_low": lo,
                "band_high": hi,
                "mean_length": float(part["length"].replace(np.inf, np.nan).mean()),
                "unbounded": int((~np.isfinite(part["length"])).sum()),
            }
        )
    return pd.DataFrame(rows)


def markdown(draws: pd.DataFrame) -> str:
    """The coverage table as Markdown, with the estimates' spread per cluster count."""
    table = coverage_table(draws)
    order = {m: i for i, m in enumerate(METHODS)}
    table = table.sort_values(["clusters", "method"], key=lambda s: s.map(order).fillna(s))
    lines = [
        "| clusters | method | intervals | coverage (MC se) | 99% binomial band | "
        "mean length | unbounded |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.clusters} | {r.method} | {r.intervals} | {r.coverage:.3f} ({r.mc_se:.3f}) | "
            f"{r.band_low:.3f}-{r.band_high:.3f} | {r.mean_length:.4f} | {r.unbounded} |"
        )
    by_need = draws[draws["method"] == "doubleml"].copy()
    by_need["z"] = by_need["estimate"] - by_need["truth"]
    lines += [
        "",
        "| clusters | need | fits | mean error | sd of estimates |",
        "|---|---|---|---|---|",
    ]
    for (g, need), part in by_need.groupby([by_need["country"].map(COUNTRIES), "need"]):
        lines.append(
            f"| {g} | {need} | {len(part)} | {part['z'].mean():+.4f} | "
            f"{part['estimate'].std(ddof=1):.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-200")
    parser.add_argument("--n-persons", type=int, default=40_000)
    parser.add_argument("--wild-reps", type=int, default=999)
    parser.add_argument("--csv", help="append each draw's rows here (resumable)")
    parser.add_argument("--markdown")
    parser.add_argument("--summarise", help="only summarise this CSV")
    args = parser.parse_args()
    if args.summarise:
        print(markdown(pd.read_csv(args.summarise)))
        return
    a, _, b = args.seeds.partition("-")
    seeds = range(int(a), int(b or a) + 1)
    done: set[int] = set()
    if args.csv and os.path.exists(args.csv):
        done = set(pd.read_csv(args.csv)["seed"].unique().tolist())
    start = time.perf_counter()
    for seed in seeds:
        if seed in done:
            continue
        frame = pd.DataFrame(one_draw(seed, args.n_persons, args.wild_reps))
        if args.csv:
            frame.to_csv(args.csv, mode="a", header=not os.path.exists(args.csv), index=False)
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    if args.csv:
        draws = pd.read_csv(args.csv)
        text = (
            f"{draws['seed'].nunique()} simulated draws (seeds {args.seeds}), n_persons "
            f"{args.n_persons}; load {os.getloadavg()[0]:.1f}\n\n" + markdown(draws)
        )
        print(text)
        if args.markdown:
            with open(args.markdown, "a") as fh:
                fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
