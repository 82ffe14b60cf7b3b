r"""Wrong signs of studies/bergen_rates: chance or bias? Errors of the per-month effects over seeds.

Issue 12 asks that every estimate whose truth is clearly non-zero (``|truth|`` above the
interval's half-width, the rule of ``/work/brief/coverage.py``) have the right sign.
This script measures whether the few misses are what unbiased estimators give by
chance or a bias, in three steps (run by hand, not a test):

``run``
    Runs a copy of the study that keeps only some of its analyses (``--families``, by
    default the per-month ones: ``sc``, ``event``, plus ``honest`` and ``sdid``) at the
    study's size for each simulator seed (``study.seed``, which is the data's seed), and
    keeps every row with a truth as ``CACHE/<families>[_<overrides>]_<seed>.csv``
    (resumable: a seed already in the cache is skipped). ``--set`` takes design
    overrides as ``evalkit run --set`` does. Figures are off. Measured at load 5-9:
    15 s of CPU a seed for ``sc sdid``, 45-65 s for ``event honest``, 4 s for the event
    study with ``iid`` inference.
``expected``
    For a results.json or expected.json (default: the study's ``expected.json``, its
    seed 20200301): the clear truths, the wrong signs, and the number of wrong signs
    expected if every estimator were unbiased and normal with standard deviation
    half-width / 1.96: the sum over clear truths of ``Phi(-1.96 |truth| / half-width)``.
``summary``
    From the cache: per family, coverage, clear truths, wrong signs per seed (against
    the same expectation, and against one with the errors' own spread), and the mean
    error (estimate - truth) by outcome x group x month with its standard error across
    seeds; errors are also given in half-widths of their intervals
    (``z = (estimate - truth) / half-width``) so that outcomes can be pooled, and pooled
    by month and by window of months (the mean over outcomes and groups of one seed,
    then mean and SE across seeds), which shows a bias at the reform / COVID-19 onset
    (March-June 2020) or at the second step (March 2021).
``bias``
    The event study's mean error by outcome x group x window of event time, for runs
    with and without COVID-19 (point estimates: any inference).

::

    PYTHONPATH=src python benchmarks/bergen_signs.py run --families sc sdid --seeds 1-30
    PYTHONPATH=src python benchmarks/bergen_signs.py run --families event honest --seeds 1-20
    PYTHONPATH=src python benchmarks/bergen_signs.py run --families sc --seeds 1-12 \
        --set data.options.covid=2030-01 "analysis.sc.options.covariates=[]"
    PYTHONPATH=src python benchmarks/bergen_signs.py run --families event --seeds 1-12 \
        --set 'analysis.event.inference="iid"' [data.options.covid=2030-01]
    PYTHONPATH=src python benchmarks/bergen_signs.py expected
    PYTHONPATH=src python benchmarks/bergen_signs.py summary --tags sc_sdid event_honest
    PYTHONPATH=src python benchmarks/bergen_signs.py bias \
        --tags event_inference-iid event_inference-iid_covid-2030-01

Results: ``benchmarks/results/bergen_signs.md``.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

STUDY = Path(__file__).resolve().parents[1] / "studies" / "bergen_rates"
CACHE = Path(tempfile.gettempdir()) / "bergen_signs"
#: sc's ``time`` is the month number (1 = 2017-01): 39 = March 2020, 51 = March 2021.
REFORM_PERIOD, SECOND_PERIOD = 39, 51
ONSET = {39: "2020-03", 40: "2020-04", 41: "2020-05", 42: "2020-06", 51: "2021-03"}


def seeds(text: list[str]) -> list[int]:
    """Expand ``1-30`` and plain integers."""
    out: list[int] = []
    for t in text:
        lo, _, hi = t.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    return out


def rows_of(results: dict) -> pd.DataFrame:
    """Every row with a truth and a finite interval, one line each."""
    out = []
    for a in results["analyses"]:
        family, outcome, group = [*a["id"].split("."), "", ""][:3]
        for row in a.get("tidy", []):
            t, lo, hi, e = (row.get(k) for k in ("truth", "conf_low", "conf_high", "estimate"))
            if None in (t, lo, hi, e) or not (math.isfinite(lo) and math.isfinite(hi)):
                continue
            when = row.get("time", row.get("event_time"))
            out.append(
                {
                    "family": family,
                    "outcome": outcome,
                    "group": group,
                    "term": row["term"],
                    "when": -999 if when is None else int(when),
                    "estimate": e,
                    "truth": t,
                    "conf_low": lo,
                    "conf_high": hi,
                }
            )
    return pd.DataFrame(out)


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Add half-width, error, clear truth, wrong sign, covered and chance of a wrong sign."""
    from scipy.stats import norm

    f = frame.copy()
    f["half"] = (f["conf_high"] - f["conf_low"]) / 2
    f["error"] = f["estimate"] - f["truth"]
    f["z"] = f["error"] / f["half"]
    f["covered"] = (f["conf_low"] <= f["truth"]) & (f["truth"] <= f["conf_high"])
    f["clear"] = f["truth"].abs() > f["half"]
    f["wrong"] = f["clear"] & ((f["estimate"] > 0) != (f["truth"] > 0))
    # unbiased and normal with SD = half-width / 1.96: P(estimate has the other sign)
    f["p_wrong"] = np.where(f["clear"], norm.cdf(-1.96 * f["truth"].abs() / f["half"]), 0.0)
    return f


def cmd_run(args: argparse.Namespace) -> None:
    from evalkit.study import run_study
    from evalkit.study.design import Design

    design = Design.from_toml(STUDY / "study.toml")
    keep = set(args.families)
    design = design.model_copy(update={"analyses": [a for a in design.analyses if a.id in keep]})
    from evalkit.study.config import parse_override

    extra = dict(parse_override(kv) for kv in args.set)
    tag = "_".join([*sorted(keep), *(f"{k.split('.')[-1]}-{v}" for k, v in extra.items())])
    args.cache.mkdir(parents=True, exist_ok=True)
    for seed in seeds(args.seeds):
        path = args.cache / f"{tag}_{seed}.csv"
        if path.exists():
            continue
        start, cpu = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory() as tmp:
            run = run_study(
                design,
                Path(tmp) / "out",
                root=STUDY,
                progress=False,
                jobs=args.jobs,
                overrides={"study.seed": seed, "report.figures": False, **extra},
            )
            frame = rows_of(run.results)
        frame.insert(0, "seed", seed)
        frame.to_csv(path, index=False)
        print(
            f"seed {seed}: {len(frame)} rows, {time.perf_counter() - start:.0f} s wall, "
            f"{time.process_time() - cpu:.0f} s CPU (this process), "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


def cmd_expected(args: argparse.Namespace) -> None:
    f = derive(rows_of(json.loads(Path(args.file).read_text())))
    clear = f[f["clear"]]
    print(f"{args.file}: {len(f)} intervals with a truth, {f['covered'].sum()} cover it")
    print(
        f"clear truths {len(clear)}, wrong signs {int(clear['wrong'].sum())}, expected if "
        f"unbiased and normal (sum of Phi(-1.96 |truth| / half-width)) "
        f"{clear['p_wrong'].sum():.2f}"
    )
    from scipy.stats import poisson

    lam = clear["p_wrong"].sum()
    print(f"P(0 wrong) = {math.exp(-lam):.3f}, P(>= 2) = {poisson.sf(1, lam):.3f} (Poisson)")
    by = clear.groupby("family").agg(clear=("clear", "size"), wrong=("wrong", "sum"))
    by["expected"] = clear.groupby("family")["p_wrong"].sum()
    print(by.round(3).to_string())
    near = clear.sort_values("p_wrong", ascending=False).head(args.top)
    cols = ["family", "outcome", "group", "when", "estimate", "truth", "half", "p_wrong", "wrong"]
    print(near[cols].round(3).to_string(index=False))


def load_cache(cache: Path, tag: str) -> pd.DataFrame:
    # the tag then the seed only (a tag can be the prefix of another run's tag)
    pattern = re.compile(re.escape(tag) + r"_\d+\.csv")
    files = sorted(p for p in cache.glob(f"{glob.escape(tag)}_*.csv") if pattern.fullmatch(p.name))
    if not files:
        raise SystemExit(f"no {tag}_*.csv in {cache}: run `run` first")
    return derive(pd.concat([pd.read_csv(p) for p in files], ignore_index=True))


def summary_family(f: pd.DataFrame, family: str, term: str, months: dict[int, str]) -> None:
    g = f[(f["family"] == family) & (f["term"] == term)]
    if g.empty:
        return
    n_seeds = g["seed"].nunique()
    print(f"\n## {family} ({term}), {n_seeds} seeds, {len(g)} intervals")
    per_seed = g.groupby("seed").agg(
        n=("covered", "size"),
        covered=("covered", "sum"),
        clear=("clear", "sum"),
        wrong=("wrong", "sum"),
        expected=("p_wrong", "sum"),
    )
    print(
        f"coverage {per_seed['covered'].sum()}/{per_seed['n'].sum()} "
        f"({per_seed['covered'].sum() / per_seed['n'].sum():.3f}); clear truths "
        f"{per_seed['clear'].sum()} ({per_seed['clear'].mean():.1f} a seed); wrong signs "
        f"{per_seed['wrong'].sum()} against {per_seed['expected'].sum():.2f} expected if "
        "unbiased and normal"
    )
    counts = per_seed["wrong"].value_counts().sort_index()
    print("wrong signs per seed (count: seeds):", dict(counts.items()))
    print("wrong signs by seed:", dict(per_seed["wrong"].items()))
    # the same expectation with the errors' own spread: SD = RMS of z (per outcome x
    # group, over seeds and months) times the half-width, instead of 1 / 1.96
    from scipy.stats import norm

    rms = g.groupby(["outcome", "group"])["z"].agg(lambda z: float(np.sqrt((z**2).mean())))
    spread = g.join(rms.rename("rms"), on=["outcome", "group"])
    own = np.where(
        spread["clear"], norm.cdf(-spread["truth"].abs() / (spread["half"] * spread["rms"])), 0.0
    ).sum()
    boot = np.random.default_rng(0).choice(per_seed["wrong"].to_numpy(), (2000, n_seeds))
    low, high = np.percentile(boot.sum(axis=1), [2.5, 97.5])
    print(
        f"RMS of z {float(np.sqrt((g['z'] ** 2).mean())):.3f} (1/1.96 = 0.510); expected "
        f"wrong signs with that spread {own:.2f}; observed total {per_seed['wrong'].sum()}, "
        f"seed-bootstrap 95% range {low:.0f}-{high:.0f}; seed-level mean z: SD across "
        f"seeds {g.groupby('seed')['z'].mean().std():.3f}"
    )
    strict = g["truth"].abs() > 2 * g["half"]
    print(
        f"truth beyond twice the half-width: {int(strict.sum())}, wrong signs "
        f"{int((strict & g['wrong']).sum())}"
    )
    # z pooled by month: mean over outcomes x groups within a seed, then across seeds
    by_month = g.groupby(["seed", "when"])["z"].mean().unstack("when")
    m, se = by_month.mean(), by_month.std(ddof=1) / math.sqrt(n_seeds)
    print("mean error in half-widths by month (pooled over outcomes and groups):")
    for w in by_month.columns:
        flag = " <-" if abs(m[w]) > 3 * se[w] else ""
        print(f"  {months.get(w, w)}: {m[w]:+.3f} (SE {se[w]:.3f}, t {m[w] / se[w]:+.1f}){flag}")
    # cell by cell: outcome x group x month, mean error and its SE across seeds
    cell = g.groupby(["outcome", "group", "when"]).agg(
        mean_error=("error", "mean"),
        sd=("error", "std"),
        mean_z=("z", "mean"),
        truth=("truth", "mean"),
        covered=("covered", "mean"),
        wrong=("wrong", "sum"),
    )
    cell["se"] = cell["sd"] / math.sqrt(n_seeds)
    cell["t"] = cell["mean_error"] / cell["se"]
    finite = cell["t"].replace([np.inf, -np.inf], np.nan).dropna()
    from scipy.stats import t as student

    tail = 2 * student.sf(3, n_seeds - 1)
    print(
        f"cells (outcome x group x month): {len(finite)} with a spread; |t| > 3 in "
        f"{int((finite.abs() > 3).sum())} (expected by chance {tail * len(finite):.1f}, "
        f"t with {n_seeds - 1} df)"
    )
    flagged = cell[cell["t"].abs() > 3]
    if len(flagged):
        print(flagged.round(3).to_string())
    onset = cell[cell.index.get_level_values("when").isin(list(months))]
    onset = onset[onset.index.get_level_values("when").isin([39, 40, 41, 42, 51, 0, 1, 2, 3, 12])]
    print("onset months (March-June 2020, March 2021), every outcome x group:")
    shown = ["truth", "mean_error", "se", "t", "mean_z", "covered", "wrong"]
    print(onset[shown].round(3).to_string())


def windows(g: pd.DataFrame) -> None:
    """Mean error in half-widths of sc's per-month effects by window of months.

    Within a seed the errors are averaged over the window (and the groups or
    outcomes), then mean and SE across seeds: a bias at the onset of COVID-19 and the
    reform (March 2020, April-June 2020) or of the second step (March 2021) shows here.
    """
    g = g.copy()
    g["window"] = np.select(
        [
            g["when"] == REFORM_PERIOD,
            g["when"].between(REFORM_PERIOD + 1, REFORM_PERIOD + 3),
            g["when"].between(REFORM_PERIOD + 4, SECOND_PERIOD - 1),
            g["when"] == SECOND_PERIOD,
        ],
        ["1 2020-03", "2 2020-04..06", "3 2020-07..2021-02", "4 2021-03"],
        "5 2021-04..2022-12",
    )
    n = g["seed"].nunique()
    for by in ("outcome", "group"):
        per_seed = g.groupby(["seed", by, "window"])["z"].mean().unstack("seed")
        mean, se = per_seed.mean(axis=1), per_seed.std(axis=1, ddof=1) / math.sqrt(n)
        text = mean.map("{:+.3f}".format) + " (" + (mean / se).map("{:+.1f}".format) + ")"
        print(f"\nmean z (t) by {by} x window, {n} seeds:")
        print(text.unstack("window").to_string())
    clear = g[g["clear"]]
    table = clear.groupby("window").agg(
        clear=("clear", "size"), wrong=("wrong", "sum"), expected=("p_wrong", "sum")
    )
    print("\nclear truths, wrong signs and the normal expectation by window:")
    print(table.round(2).to_string())


def cmd_bias(args: argparse.Namespace) -> None:
    """Mean error (estimate - truth) of the event study by outcome x group x window, per tag.

    Point estimates only (any inference): run the event study with a cheap inference,
    with and without COVID-19 (``--set data.options.covid=2030-01``), to see whether a
    bias in the months after March 2020 is COVID-19's.
    """
    edges = {"e0 2020-03": (0, 0), "e1..3 2020-04..06": (1, 3), "e4..11": (4, 11)}
    edges["e12 2021-03 on"] = (12, 12)
    for tag in args.tags:
        f = load_cache(args.cache, tag)
        g = f[(f["family"] == "event") & (f["when"] >= 0)].copy()
        g["window"] = ""
        for name, (lo, hi) in edges.items():
            g.loc[g["when"].between(lo, hi), "window"] = name
        n = g["seed"].nunique()
        per_seed = g.groupby(["seed", "outcome", "group", "window"]).agg(
            error=("error", "mean"), truth=("truth", "mean")
        )
        cell = per_seed.groupby(["outcome", "group", "window"]).agg(
            truth=("truth", "mean"), mean=("error", "mean"), sd=("error", "std")
        )
        cell["t"] = cell["mean"] / (cell["sd"] / math.sqrt(n))
        text = cell.apply(lambda r: f"{r['mean']:+.4g} ({r['t']:+.1f}) / {r['truth']:+.4g}", axis=1)
        print(f"\n## {tag}, {n} seeds: mean error (t) / truth")
        print(text.unstack("window")[list(edges)].to_string())


def cmd_summary(args: argparse.Namespace) -> None:
    for tag in args.tags:
        f = load_cache(args.cache, tag)
        sc_months = {p: str(pd.Period("2017-01", "M") + (p - 1)) for p in range(39, 73)}
        event_months = {
            e: (f"event {e}" + (" (2020-03)" if e == 0 else " (2021-03 on)" if e == 12 else ""))
            for e in range(-12, 13)
        }
        for family in sorted(f["family"].unique()):
            terms = f.loc[f["family"] == family, "term"].unique()
            if family == "sc":
                summary_family(f, family, "effect", sc_months)
                windows(f[(f["family"] == family) & (f["term"] == "effect")])
                summary_family(f, family, "att", {})
            elif family == "event":
                summary_family(f, family, "ATT(e)", event_months)
            else:
                for term in terms:
                    summary_family(f, family, term, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--families", nargs="+", default=["sc", "event", "honest", "sdid"])
    run.add_argument("--seeds", nargs="+", default=["1-20"])
    run.add_argument("--jobs", type=int, default=1)
    run.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="design overrides as in `evalkit run --set`, e.g. data.options.covid=2030-01",
    )
    run.add_argument("--cache", type=Path, default=CACHE)
    exp = sub.add_parser("expected")
    exp.add_argument("file", nargs="?", default=str(STUDY / "expected.json"))
    exp.add_argument("--top", type=int, default=12)
    summ = sub.add_parser("summary")
    summ.add_argument("--tags", nargs="+", default=["sc_sdid", "event_honest"])
    summ.add_argument("--cache", type=Path, default=CACHE)
    bias = sub.add_parser("bias")
    bias.add_argument("--tags", nargs="+", default=["event_inference-iid"])
    bias.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    commands = {"run": cmd_run, "expected": cmd_expected, "summary": cmd_summary, "bias": cmd_bias}
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
