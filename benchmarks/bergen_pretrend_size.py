"""Size of the few-treated pre-trend test on the Bergen simulator itself, over many seeds.

For each seed, ``bergen_rates(seed, n_persons=50_000)`` (the study's size) is collapsed to
city x month cells per group as the study does (means of the person-months, benefit and
duration among recipients; weights: the persons, or recipients, behind each value), and
the two event-study shapes of ``studies/bergen_rates`` are fitted with the few-treated
covariance (:func:`evalkit.did.event_study.few_treated_event_study`, the covariance the
study's ``event`` pre-trend test and ``honest`` use):

- ``honest``: window -4..4, no binning, reference -1 (February 2020), 3 leads; the five
  outcomes x four groups of the study's ``honest`` analyses;
- ``event``: window -12..12 with binned end points, 11 leads; seven outcomes x four groups.

The simulator plants no effect before March 2020 (no anticipation, COVID-19 from March
2020), so every lead's truth is zero and every rejection of the joint test is a false
one. Written per seed to a CSV (resumable: seeds already in it are skipped): each
analysis' p-value (sized covariance, and ``size_correction=False``), each lead's
estimate and standard error. ``--summarise CSV`` prints the tables of
``benchmarks/results/bergen_pretrend_size.md``::

    PYTHONPATH=src python benchmarks/bergen_pretrend_size.py --seeds 0 200 --csv /tmp/p.csv
    PYTHONPATH=src python benchmarks/bergen_pretrend_size.py --summarise /tmp/p.csv

``--covariates city_unemployment`` fits both shapes with the study's covariate (its
``event`` and ``honest`` analyses partial city unemployment out since issue 12).

About 10 s of CPU a seed (2.7 s of it the simulation). Not a test.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

N_PERSONS = 50_000
GROUPS = {
    "all": None,
    "families_with_children": ("family_with_children",),
    "non_western": ("non_western",),
    "non_western_families_with_children": ("non_western", "family_with_children"),
}
# outcome -> (column, among recipients only)
MEASURES = {
    "benefit": ("benefit", True),
    "work": ("work", False),
    "recipient": ("recipient", False),
    "duration": ("months_on_assistance", True),
    "activity": ("activity", False),
    "earnings": ("earnings", False),
    "income": ("income", False),
}
SHAPES = {
    "honest": {
        "window": (-4, 4),
        "bin_endpoints": False,
        "outcomes": ("benefit", "work", "recipient", "activity", "earnings"),
    },
    "event": {"window": (-12, 12), "bin_endpoints": True, "outcomes": tuple(MEASURES)},
}
FIELDS = ["seed", "shape", "outcome", "group", "p_sized", "p_unsized", "ratio", "leads",
          "beta", "se"]  # fmt: skip


def cells(df: pd.DataFrame, group: tuple[str, ...] | None) -> pd.DataFrame:
    """City x month cells of one group: each measure's mean and the count behind it."""
    city = df["city"].cat.codes.to_numpy().astype(np.int64)
    period = df["period"].to_numpy().astype(np.int64) - 1
    n_t = int(period.max()) + 1
    keep = np.ones(len(df), bool)
    for col in group or ():
        keep &= df[col].to_numpy() == 1
    key = (city * n_t + period)[keep]
    size = 10 * n_t
    rec = df["recipient"].to_numpy()[keep] == 1
    n_all = np.bincount(key, minlength=size)
    n_rec = np.bincount(key[rec], minlength=size)
    out = {
        "city": np.repeat(np.arange(10), n_t),
        "month": np.tile(np.arange(1, n_t + 1), 10),
        "n": n_all,
        "n_rec": n_rec,
    }
    for name, (column, among_recipients) in MEASURES.items():
        y = df[column].to_numpy()[keep].astype(float)
        if among_recipients:
            out[name] = np.bincount(key[rec], weights=y[rec], minlength=size) / n_rec
        else:
            out[name] = np.bincount(key, weights=y, minlength=size) / n_all
    # the study's measure ``city_unemployment = "mean"``: the mean over the group's
    # person-months of a city-month constant, so the city-month's value
    u = df["city_unemployment"].to_numpy()[keep].astype(float)
    out["city_unemployment"] = np.bincount(key, weights=u, minlength=size) / n_all
    frame = pd.DataFrame(out)
    reform = int(df.loc[df["cohort"] > 0, "cohort"].iloc[0])
    frame["d"] = ((frame["city"] == 0) & (frame["month"] >= reform)).astype(int)
    return frame


def one_seed(
    seed: int,
    n_persons: int = N_PERSONS,
    groups: tuple[str, ...] = tuple(GROUPS),
    covariates: tuple[str, ...] = (),
) -> list[dict]:
    """Every analysis' pre-trend test and leads on one draw of the simulator (``groups``).

    ``covariates``: the event studies' time-varying covariates (the study's design since
    issue 12's ``sign12``: ``("city_unemployment",)``).
    """
    from evalkit.did.event_study import EventStudy, few_treated_event_study
    from evalkit.simulate import bergen_rates

    df = bergen_rates(seed=seed, n_persons=n_persons).data
    rows = []
    for group in groups:
        frame = cells(df, GROUPS[group])
        for shape, spec in SHAPES.items():
            for outcome in spec["outcomes"]:
                weight = "n_rec" if MEASURES[outcome][1] else "n"
                est = EventStudy(outcome=outcome, unit="city", time="month", treatment="d",
                                 weights=weight, window=spec["window"],
                                 bin_endpoints=spec["bin_endpoints"],
                                 covariates=covariates)  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sized = few_treated_event_study(est, frame)
                    unsized = few_treated_event_study(est, frame, size_correction=False)
                lead = [j for j, e in enumerate(sized.event_times) if e < 0]
                se = np.sqrt(np.diag(sized.vcov)[lead])
                rows.append({
                    "seed": seed, "shape": shape, "outcome": outcome, "group": group,
                    "p_sized": sized.pretrend_test["p_value"],
                    "p_unsized": unsized.pretrend_test["p_value"],
                    "ratio": sized.about.get("treated_variance_ratio", [math.nan])[0],
                    "leads": " ".join(str(sized.event_times[j]) for j in lead),
                    "beta": " ".join(f"{v:.6g}" for v in sized.beta[lead]),
                    "se": " ".join(f"{v:.6g}" for v in se),
                })  # fmt: skip
    return rows


WILD_FIELDS = ["seed", "outcome", "group", "inference", "leads", "conf_low", "conf_high"]
WILD_GROUPS = ("all", "non_western_families_with_children")


def wild_seed(
    seed: int, n_persons: int = N_PERSONS, groups: tuple[str, ...] = WILD_GROUPS
) -> list[dict]:
    """The study's ``event`` analyses as it fits them (evalkit's default inference for one
    treated city: the restricted wild cluster bootstrap, intervals by test inversion):
    each lead's interval."""
    from evalkit.did.event_study import EventStudy
    from evalkit.simulate import bergen_rates

    df = bergen_rates(seed=seed, n_persons=n_persons).data
    rows = []
    for group in groups:
        frame = cells(df, GROUPS[group])
        for outcome in SHAPES["event"]["outcomes"]:
            weight = "n_rec" if MEASURES[outcome][1] else "n"
            est = EventStudy(outcome=outcome, unit="city", time="month", treatment="d",
                             weights=weight, window=(-12, 12), bin_endpoints=True)  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = est.fit(frame, seed=seed)
            tidy = res.tidy()
            lead = tidy[tidy["event_time"] < 0]
            rows.append({
                "seed": seed, "outcome": outcome, "group": group,
                "inference": res.inference.method,
                "leads": " ".join(str(e) for e in lead["event_time"]),
                "conf_low": " ".join(f"{v:.6g}" for v in lead["conf_low"]),
                "conf_high": " ".join(f"{v:.6g}" for v in lead["conf_high"]),
            })  # fmt: skip
    return rows


def run(
    seeds: range,
    path: Path,
    n_persons: int = N_PERSONS,
    fn=one_seed,
    fields: list[str] = FIELDS,
) -> None:
    done = set()
    if path.exists():
        with path.open() as fh:
            done = {int(r["seed"]) for r in csv.DictReader(fh)}
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        if new:
            writer.writeheader()
        for seed in seeds:
            if seed in done:
                continue
            start = time.process_time()
            writer.writerows(fn(seed, n_persons))
            fh.flush()
            print(f"seed {seed}: {time.process_time() - start:.1f} s CPU, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip


def _band(k: int, n: int) -> str:
    """Share with its binomial standard error."""
    p = k / n if n else math.nan
    return f"{p:.3f} ({math.sqrt(p * (1 - p) / n):.3f})" if n else ""


def _clustered(hits: pd.Series) -> str:
    """Share of ``hits`` (indexed by seed) with its standard error clustered by seed."""
    per_seed = hits.groupby(level=0).agg(["sum", "count"])
    p = per_seed["sum"].sum() / per_seed["count"].sum()
    resid = per_seed["sum"] - p * per_seed["count"]
    g = len(per_seed)
    se = math.sqrt(g / (g - 1) * (resid**2).sum()) / per_seed["count"].sum()
    return f"{p:.3f} ({se:.3f})"


def summarise(path: Path) -> str:
    """The tables of results/bergen_pretrend_size.md from the per-seed CSV."""
    frame = pd.read_csv(path)
    n_seeds = frame["seed"].nunique()
    lines = [f"{n_seeds} seeds ({frame['seed'].min()}-{frame['seed'].max()}).", ""]
    for shape, sub in frame.groupby("shape", sort=False):
        lines += [f"### `{shape}` ({sub['leads'].iloc[0].count(' ') + 1} leads)", ""]
        lines += ["| outcome | group | rejected at 5%, sized | unsized | lead intervals "
                  "covering 0 (95%) |", "|---|---|---|---|---|"]  # fmt: skip
        total = defaultdict(int)
        for (outcome, group), s in sub.groupby(["outcome", "group"], sort=False):
            k1, k0, n = int((s["p_sized"] < 0.05).sum()), int((s["p_unsized"] < 0.05).sum()), len(s)
            z = np.concatenate([np.array(b.split(), float) / np.array(e.split(), float)
                                for b, e in zip(s["beta"], s["se"], strict=True)])  # fmt: skip
            cov = int((np.abs(z) <= 1.959964).sum())
            total["k1"] += k1
            total["k0"] += k0
            total["n"] += n
            total["cov"] += cov
            total["leads"] += len(z)
            lines.append(f"| {outcome} | {group} | {_band(k1, n)} | {_band(k0, n)} | "
                         f"{_band(cov, len(z))} |")  # fmt: skip
        by_seed = sub.set_index("seed")
        lines.append(f"| **every analysis** (s.e. clustered by seed) | | "
                     f"{_clustered(by_seed['p_sized'] < 0.05)} | "
                     f"{_clustered(by_seed['p_unsized'] < 0.05)} | "
                     f"{_band(total['cov'], total['leads'])} |")  # fmt: skip
        per_seed = sub.groupby("seed")["p_sized"].apply(lambda p: int((p < 0.05).sum()))
        counts = per_seed.value_counts().sort_index()
        lines += ["", f"Rejections per seed (of {len(sub) // n_seeds}): "
                  + ", ".join(f"{k}: {v}" for k, v in counts.items()) + " seeds", ""]  # fmt: skip
        wide = sub.pivot_table(index="seed", columns=["outcome", "group"], values="p_sized")
        corr = (wide < 0.05).astype(float).corr().to_numpy()
        off = corr[~np.eye(len(corr), dtype=bool)]
        same = np.equal.outer(wide.columns.get_level_values(0), wide.columns.get_level_values(0))
        same &= ~np.eye(len(corr), dtype=bool)
        lines += [f"Correlation of the rejection indicators within a seed: "
                  f"{np.nanmean(off):.2f} on average over pairs of analyses, "
                  f"{np.nanmean(corr[same]):.2f} between the groups of one outcome.",
                  ""]  # fmt: skip
        lines += _z_table(sub)
        lines += [_by_lead(sub), ""]
    return "\n".join(lines)


def _by_lead(sub: pd.DataFrame) -> str:
    """Each lead's normal 95% interval's coverage of zero, pooled over analyses and seeds."""
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for leads, b, e in zip(sub["leads"], sub["beta"], sub["se"], strict=True):
        z = np.array(b.split(), float) / np.array(e.split(), float)
        for lead, inside in zip(leads.split(), np.abs(z) <= 1.959964, strict=True):
            hits[lead][0] += int(inside)
            hits[lead][1] += 1
    return "Lead intervals covering 0, by lead: " + ", ".join(
        f"{lead}: {k / n:.3f}" for lead, (k, n) in hits.items()
    )


def _z_table(sub: pd.DataFrame) -> list[str]:
    """Per outcome: the leads' z = estimate / s.e. pooled over groups, leads and seeds.

    Mean z near 0: no systematic pre-trend; RMS z near 1: the s.e. is right on average
    (below 1: too large). ``t``: the seed-level mean z over its standard error.
    """
    lines = ["| outcome | mean z | RMS z | t of the mean (across seeds) |", "|---|---|---|---|"]
    for outcome, s in sub.groupby("outcome", sort=False):
        z = [np.array(b.split(), float) / np.array(e.split(), float)
             for b, e in zip(s["beta"], s["se"], strict=True)]  # fmt: skip
        flat = np.concatenate(z)
        per_seed = pd.Series([v.mean() for v in z], index=s["seed"]).groupby(level=0).mean()
        t = per_seed.mean() / per_seed.std() * math.sqrt(len(per_seed))
        lines.append(f"| {outcome} | {flat.mean():+.3f} | {np.sqrt((flat**2).mean()):.3f} | "
                     f"{t:+.1f} |")  # fmt: skip
    return [*lines, ""]


def summarise_wild(path: Path, main: Path | None = None) -> str:
    """Coverage of zero by the event analyses' wild-bootstrap lead intervals.

    With ``main`` (the CSV of the default run, same seeds): the median ratio of their
    width to the few-treated covariance's normal 95% interval (``2 x 1.96 x se``).
    """
    frame = pd.read_csv(path)
    lines = [f"{frame['seed'].nunique()} seeds ({frame['seed'].min()}-{frame['seed'].max()}), "
             f"inference: {', '.join(sorted(frame['inference'].unique()))}.", "",
             "| outcome | group | lead intervals covering 0 |", "|---|---|---|"]  # fmt: skip
    by_lead: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    hits = total = 0
    for (outcome, group), sub in frame.groupby(["outcome", "group"], sort=False):
        k = n = 0
        for leads, lo, hi in zip(sub["leads"], sub["conf_low"], sub["conf_high"], strict=True):
            for e, a, b in zip(leads.split(), lo.split(), hi.split(), strict=True):
                inside = float(a) <= 0.0 <= float(b)
                k, n = k + inside, n + 1
                by_lead[e][0] += inside
                by_lead[e][1] += 1
        hits, total = hits + k, total + n
        lines.append(f"| {outcome} | {group} | {_band(k, n)} |")
    lines.append(f"| **every analysis** | | {_band(hits, total)} |")
    lines += ["", "By lead: " + ", ".join(f"{e}: {k / n:.3f}" for e, (k, n) in by_lead.items()), ""]
    if main is not None:
        few = pd.read_csv(main)
        few = few[few["shape"] == "event"].set_index(["seed", "outcome", "group"])["se"]
        ratios = [
            (np.array(hi.split(), float) - np.array(lo.split(), float))
            / (2 * 1.959964 * np.array(few[tuple(key)].split(), float))
            for *key, lo, hi in frame[
                ["seed", "outcome", "group", "conf_low", "conf_high"]
            ].itertuples(index=False)
            if tuple(key) in few.index
        ]
        if ratios:
            median = np.median(np.concatenate(ratios))
            lines += [f"Median width over the few-treated normal interval's: {median:.2f} "
                      f"({len(ratios)} analyses).", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 100], metavar=("FIRST", "STOP"))
    parser.add_argument("--csv", type=Path, default=Path("bergen_pretrend_size.csv"))
    parser.add_argument("--n-persons", type=int, default=N_PERSONS)
    parser.add_argument(
        "--summarise",
        type=Path,
        help="print the tables (with --wild: of a --wild CSV, widths against --csv)",
    )
    parser.add_argument("--wild", action="store_true", help="the wild-bootstrap lead intervals")
    parser.add_argument(
        "--covariates",
        nargs="*",
        default=[],
        metavar="COLUMN",
        help="the event studies' covariates (the study's: city_unemployment)",
    )
    args = parser.parse_args()
    if args.summarise:
        print(summarise_wild(args.summarise, args.csv) if args.wild else summarise(args.summarise))
        return
    if args.wild:
        run(range(*args.seeds), args.csv, args.n_persons, wild_seed, WILD_FIELDS)
    else:
        fn = functools.partial(one_seed, covariates=tuple(args.covariates))
        run(range(*args.seeds), args.csv, args.n_persons, fn)


if __name__ == "__main__":
    main()
