"""Calibration of the NEET case selection over simulated countries.

For each seed, ``integration_youth`` (the study's defaults: 40,000 persons, 40/30/20
municipalities, 3 planted outliers above and below per country) is simulated and
``selection.ObservedExpected`` (the study's options) is fitted in each country. Per
country-run it records

- the ``prior_cv`` estimate and its profile-likelihood interval (the estimator's)
  against the true coefficient of variation of the country's true ratios;
- each municipality's ``p_above`` / ``p_below`` under five ways of computing them, three
  with the gamma prior: ``likelihood`` (the estimator's default: prior spread drawn
  from its profile likelihood, risk model drawn from its sampling distribution),
  ``likelihood-no-risk`` (the same with the risk model fixed at its estimate),
  ``fixed-prior`` (posterior at the fitted prior, what ``inference="none"`` reports);
  two with the nonparametric prior (``prior="npmle"``): ``npmle`` (exact probabilities
  in each replicate of the risk model, averaged) and ``npmle-no-risk`` (exact, at the
  fitted risk model); and whether it is truly among the three highest / lowest;
- whether the selection (the three highest and lowest shrunk ratios, by the gamma and
  by the NPMLE posterior means) contains the planted outliers.

Writes ``benchmarks/results/selection_calibration.md`` (and the raw records as CSV with
``--csv``). Run from the repository root::

    PYTHONPATH=src python benchmarks/selection_calibration.py --seeds 100 --reps 60
    PYTHONPATH=src python benchmarks/selection_calibration.py --from-csv /tmp/cal.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.selection import ObservedExpected, npmle, shrinkage
from evalkit.selection.observed_expected import (
    _bootstrap,
    _posterior_only,
    _rank_probabilities,
    _with_npmle,
)
from evalkit.simulate import integration_youth
from evalkit.simulate.integration.youth import RISK_FACTORS

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261130
COVARIATES = list(RISK_FACTORS)  # the study's risk model
VARIANTS = {
    "likelihood": {"risk_draws": True, "prior_draws": "likelihood"},
    "likelihood-no-risk": {"risk_draws": False, "prior_draws": "likelihood"},
}
#: Methods with the NPMLE prior; they select by the NPMLE posterior means.
NPMLE = ("npmle", "npmle-no-risk")
K = 3


def replicates(
    rng: np.random.Generator, reps: int, j: int, prep: dict, fit: dict, **kw: object
) -> dict:
    """The estimator's replicates for one country (``kw``: the variant's options)."""
    keys = ("beta", "vcov", "expected", "y_person", "person_unit")
    return _bootstrap(rng, reps, j, K, *(prep[key] for key in keys), fit, **kw)


def one_seed(
    seed: int, reps: int, j: int, outlier_effect: float, rule: str = "random"
) -> tuple[list, list]:
    sim = integration_youth(seed=seed, outlier_effect=outlier_effect, outlier_rule=rule)
    est = ObservedExpected(
        outcome="neet",
        unit="municipality",
        time="year",
        cluster="person_id",
        holdout_from=2021,
        covariates=COVARIATES,
        k=K,
    )
    units, countries = [], []
    for country in ("Norway", "Sweden", "Denmark"):
        group = country.lower()
        prep = est._prepare(sim.data[sim.data["country"] == country])
        fit, labels = prep["fit"], prep["unit_labels"]
        o_eff, e_eff = fit["observed"] / fit["phi"], fit["expected"] / fit["phi"]
        truth_cv = sim.truth_terms[("neet", "prior_cv", group)]
        cv_hat = fit["prior"].sd / fit["prior"].mean
        low, high = shrinkage.cv_interval(o_eff, e_eff, 0.95)
        rng = np.random.default_rng(seed)
        probs = {}
        for name, kw in VARIANTS.items():
            probs[name] = _rank_probabilities(replicates(rng, reps, j, prep, fit, **kw)["theta"], K)
        post = _posterior_only(rng, reps, j, K, fit)
        probs["fixed-prior"] = _rank_probabilities(post["theta"], K)
        fit_n = _with_npmle(fit)
        boot = replicates(rng, reps, j, prep, fit_n)
        probs["npmle"] = boot["p_above"].mean(axis=0), boot["p_below"].mean(axis=0)
        probs["npmle-no-risk"] = npmle.rank_probabilities(fit_n["posterior"], K)
        ratio = fit["mean"] / fit["level"]
        order = np.argsort(-ratio, kind="stable")
        above, below = set(order[:K]), set(order[::-1][:K])
        ratio_n = fit_n["mean"] / fit["level"]
        order_n = np.argsort(-ratio_n, kind="stable")
        above_n, below_n = set(order_n[:K]), set(order_n[::-1][:K])
        planted = sim.parameters["outliers"][country]
        countries.append(
            {
                "seed": seed,
                "country": country,
                "n_units": len(labels),
                "truth_cv": truth_cv,
                "cv_hat": cv_hat,
                "profile_low": low,
                "profile_high": high,
                "planted_above": len(planted["above"]),
                "planted_below": len(planted["below"]),
                "planted_above_found": len(set(planted["above"]) & {labels[i] for i in above}),
                "planted_below_found": len(set(planted["below"]) & {labels[i] for i in below}),
                "npmle_above_found": len(set(planted["above"]) & {labels[i] for i in above_n}),
                "npmle_below_found": len(set(planted["below"]) & {labels[i] for i in below_n}),
                "npmle_points": int((fit_n["npmle"].mass > 0).sum()),
            }
        )
        for i, unit in enumerate(labels):
            row = {
                "seed": seed,
                "country": country,
                "unit": unit,
                "observed": fit["observed"][i],
                "expected": fit["expected"][i],
                "phi": fit["phi"],
                "truth_ratio": sim.truth_terms[("neet", f"ratio:{unit}", group)],
                "ratio": ratio[i],
                "selected": "above" if i in above else ("below" if i in below else ""),
                "ratio_npmle": ratio_n[i],
                "selected_npmle": "above" if i in above_n else ("below" if i in below_n else ""),
                "true_above": sim.truth_terms[("neet", f"p_above:{unit}", group)],
                "true_below": sim.truth_terms[("neet", f"p_below:{unit}", group)],
                "planted": "above"
                if unit in planted["above"]
                else ("below" if unit in planted["below"] else ""),
            }
            for name, (pa, pb) in probs.items():
                row[f"p_above:{name}"] = pa[i]
                row[f"p_below:{name}"] = pb[i]
            units.append(row)
    return units, countries


def report(units: pd.DataFrame, countries: pd.DataFrame, args: argparse.Namespace) -> str:
    seeds = countries["seed"].nunique()
    lines = [
        "# NEET case selection: calibration over simulated countries",
        "",
        f"`benchmarks/selection_calibration.py --seeds {seeds} --reps {args.reps}"
        + ("" if args.outlier_effect == 0.6 else f" --outlier-effect {args.outlier_effect:g}")
        + ("`" if args.outlier_rule == "random" else " --outlier-rule fixed`")
        + " "
        f"(seeds {SEED} + 0..{seeds - 1}; `integration_youth` defaults, outlier effect "
        f"{args.outlier_effect:g}, outliers planted `{args.outlier_rule}`; the study's risk "
        f"model and `k = 3`; {args.reps} replicates x "
        f"{args.draws} posterior draws). {len(countries)} country-runs, "
        f"{len(units)} municipality-runs. Run {time.strftime('%Y-%m-%d')}.",
        "",
        "## Spread of the true ratios (`prior_cv`)",
        "",
        "Truth: the coefficient of variation of the country's true ratios (the simulator's "
        "`prior_cv` truth). Coverage of the nominal 95% intervals and their mean length.",
        "",
        "| country | runs | mean truth | mean estimate | profile-likelihood coverage | "
        "mean length |",
        "|---|---|---|---|---|---|",
    ]
    for country, g in [*countries.groupby("country", sort=False), ("all", countries)]:
        prof = (g.profile_low <= g.truth_cv) & (g.truth_cv <= g.profile_high)
        lines.append(
            f"| {country} | {len(g)} | {g.truth_cv.mean():.3f} | {g.cv_hat.mean():.3f} | "
            f"{prof.mean():.3f} | {(g.profile_high - g.profile_low).mean():.3f} |"
        )
    n = len(countries)
    half = 1.96 * np.sqrt(0.95 * 0.05 / n)
    lines += [
        "",
        f"Binomial band for {n} runs at 95%: [{0.95 - half:.3f}, {0.95 + half:.3f}]. "
        f"Runs with the truth below the profile interval: "
        f"{int((countries.truth_cv < countries.profile_low).sum())}, above: "
        f"{int((countries.truth_cv > countries.profile_high).sum())}.",
        "",
        "## Probabilities of being among the three above / below",
        "",
        "Selected municipalities (the three highest and the three lowest shrunk ratios "
        "in a country): mean reported probability vs the share truly among the three.",
        "",
        "| method | selected above: mean p | truly top 3 | selected below: mean p | "
        "truly bottom 3 | Brier (all, above + below) |",
        "|---|---|---|---|---|---|",
    ]
    names = [*VARIANTS, "fixed-prior", *NPMLE]
    for name in names:
        chosen = units["selected_npmle" if name in NPMLE else "selected"]
        up, down = units[chosen == "above"], units[chosen == "below"]
        brier = np.mean(
            np.r_[
                (units[f"p_above:{name}"] - units.true_above) ** 2,
                (units[f"p_below:{name}"] - units.true_below) ** 2,
            ]
        )
        lines.append(
            f"| {name} | {up[f'p_above:{name}'].mean():.3f} | {up.true_above.mean():.3f} | "
            f"{down[f'p_below:{name}'].mean():.3f} | {down.true_below.mean():.3f} | "
            f"{brier:.4f} |"
        )
    lines += [
        "",
        "Reliability table (all municipalities, `p_above` and `p_below` pooled): in each "
        "bin of the reported probability, the number of cases, mean reported probability "
        "and share truly among the three.",
        "",
        "| bin | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    bins = [0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0001]
    cells: dict[str, list[str]] = {}
    for name in names:
        p = np.r_[units[f"p_above:{name}"], units[f"p_below:{name}"]]
        t = np.r_[units.true_above, units.true_below]
        idx = np.digitize(p, bins) - 1
        for b in range(len(bins) - 1):
            m = idx == b
            cell = f"{m.sum()}: {p[m].mean():.3f} / {t[m].mean():.3f}" if m.any() else "-"
            cells.setdefault(f"[{bins[b]:.2f}, {min(bins[b + 1], 1):.2f})", []).append(cell)
    for label, row in cells.items():
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    band = pd.cut(units.expected, [0, 40, 80, 160, np.inf])
    lines += [
        "",
        "Where the probability goes: by the municipality's expected count (events "
        "predicted in the window), the mean reported `p_above` + `p_below` and the share "
        "truly among the three (above or below), for the default and the NPMLE.",
        "",
        "| expected events | municipalities | likelihood: mean p | npmle: mean p | truly |",
        "|---|---|---|---|---|",
    ]
    for b, g in units.groupby(band, observed=True):
        lines.append(
            f"| {b} | {len(g)} | "
            f"{(g['p_above:likelihood'] + g['p_below:likelihood']).mean():.3f} | "
            f"{(g['p_above:npmle'] + g['p_below:npmle']).mean():.3f} | "
            f"{(g.true_above + g.true_below).mean():.3f} |"
        )
    up_n, down_n = countries.planted_above, countries.planted_below
    found_up = (countries.planted_above_found == up_n).where(up_n.between(1, K))
    found_down = (countries.planted_below_found == down_n).where(down_n.between(1, K))
    lines += [
        "",
        "## Are the planted outliers selected?",
        "",
        f"Planted per country-run: above {up_n.mean():.2f} on average (none in "
        f"{(up_n == 0).mean():.3f} of runs, more than {K} in {(up_n > K).mean():.3f}), below "
        f"{down_n.mean():.2f} (none {(down_n == 0).mean():.3f}, more than {K} "
        f"{(down_n > K).mean():.3f}). Share of the planted outliers selected on their side: "
        f"above {countries.planted_above_found.sum() / up_n.sum():.3f}, below "
        f"{countries.planted_below_found.sum() / down_n.sum():.3f}. Runs with 1 to {K} "
        f"planted on a side in which all of them are selected: above {found_up.mean():.3f}, "
        f"below {found_down.mean():.3f}.",
        "",
        "By country: the share of runs with every planted outlier (up to three a side) "
        "selected, and the share in which the planted outliers are exactly the true three "
        "highest and lowest (so that finding them is finding the truth):",
        "",
        "| country | all planted selected | planted are the true top/bottom 3 |",
        "|---|---|---|",
    ]
    exact = units.assign(
        hit=lambda d: np.where(
            d.planted == "above", d.true_above, np.where(d.planted == "below", d.true_below, 0)
        ),
        true_any=lambda d: d.true_above + d.true_below,
    )
    planted_true = exact.groupby(["seed", "country"]).apply(
        lambda g: bool((g.hit == g.true_any).all() and (g.planted != "").sum() == 2 * K)
    )
    for country, g in countries.groupby("country", sort=False):
        ok = planted_true.xs(country, level="country")
        every = (g.planted_above_found == g.planted_above.clip(upper=K)) & (
            g.planted_below_found == g.planted_below.clip(upper=K)
        )
        lines.append(f"| {country} | {every.mean():.3f} | {ok.mean():.3f} |")
    planted = units[units.planted != ""].assign(
        found=lambda d: d.planted == d.selected,
        band=lambda d: pd.cut(d.expected, [0, 40, 80, 160, np.inf]),
    )
    lines += [
        "",
        "What drives it: each planted outlier by its expected count (events predicted in "
        "the window): how often it is selected on its side, its mean true ratio and its "
        "mean estimate (the shrunk ratio relative to the level).",
        "",
        "| planted | expected events | n | selected | mean true ratio | mean estimate |",
        "|---|---|---|---|---|---|",
    ]
    for (side, band), g in planted.groupby(["planted", "band"], observed=True):
        lines.append(
            f"| {side} | {band} | {len(g)} | {g.found.mean():.3f} | "
            f"{g.truth_ratio.mean():.3f} | {g.ratio.mean():.3f} |"
        )
    lines += [
        "",
        "With the NPMLE prior (selected by the NPMLE posterior means): share of the "
        f"planted selected above {countries.npmle_above_found.sum() / up_n.sum():.3f}, below "
        f"{countries.npmle_below_found.sum() / down_n.sum():.3f}"
        f"; mean support points of the NPMLE {countries.npmle_points.mean():.1f}.",
    ]
    return "\n".join(lines) + "\n"


def model_check(units: pd.DataFrame, seed: int = SEED, replications: int = 2) -> list[str]:
    """The same probabilities when the model holds: counts drawn from the model itself.

    For every country-run, with its effective expected counts ``E / phi``: true ratios
    from a bulk (log-normal, sd 0.1) and outliers at 1.65 and 0.55 (the simulator's
    planted ratios), either exactly three of each (``fixed``, as the simulator plants
    them) or each unit an outlier with probability 3 / M on each side (``iid``, what an
    exchangeable prior assumes); observed counts Poisson. No risk model, no
    overdispersion to estimate: only the prior and the counting noise.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _, g in units.groupby(["seed", "country"], sort=False):
        e = (g["expected"] / g["phi"]).to_numpy(float)
        m = len(e)
        for design in ("fixed", "iid") * replications:
            theta = np.exp(rng.normal(0.0, 0.1, m))
            if design == "fixed":
                pick = rng.permutation(m)[: 2 * K]
                theta[pick[:K]], theta[pick[K:]] = 1.65, 0.55
            else:
                u = rng.random(m)
                theta[u < K / m], theta[u > 1 - K / m] = 1.65, 0.55
            o = rng.poisson(theta * e).astype(float)
            order = np.argsort(theta)
            top, bottom = np.isin(np.arange(m), order[-K:]), np.isin(np.arange(m), order[:K])
            prior = shrinkage.fit_prior(o, e)
            shape, rate = shrinkage.posterior(prior, o, e)
            draws = rng.gamma(shape, 1.0 / rate, size=(4000, m))
            fits = {"gamma": (*_rank_probabilities(draws, K), shape / rate)}
            g_n = npmle.fit_npmle(o, e)
            post = g_n.posterior(o, e)
            fits["npmle"] = (*npmle.rank_probabilities(post, K), post @ g_n.support)
            for method, (pa, pb, mean) in fits.items():
                rank = np.argsort(-mean, kind="stable")
                up, down = rank[:K], rank[::-1][:K]
                rows.append(
                    {
                        "design": design,
                        "method": method,
                        "p_up": pa[up].mean(),
                        "true_up": top[up].mean(),
                        "p_down": pb[down].mean(),
                        "true_down": bottom[down].mean(),
                        "brier": np.mean(np.r_[(pa - top) ** 2, (pb - bottom) ** 2]),
                    }
                )
    table = pd.DataFrame(rows).groupby(["design", "method"], sort=False).mean()
    runs = units.groupby(["seed", "country"]).ngroups
    lines = [
        "",
        "## When the model holds",
        "",
        f"`model_check`: {replications} times for each of the {runs} country-runs, counts "
        "drawn from the model "
        "itself with the country's effective expected counts (true ratios: a log-normal "
        "bulk with sd 0.1 and outliers at 1.65 / 0.55; Poisson counts; no risk model). "
        "`fixed`: exactly three outliers on each side (the simulator's `fixed` rule); "
        "`iid`: each municipality an outlier with probability 3 / M on each side, what an "
        "exchangeable prior assumes (the `random` rule). Selected by the posterior means.",
        "",
        "| design | prior | selected above: mean p | truly top 3 | selected below: mean p | "
        "truly bottom 3 | Brier |",
        "|---|---|---|---|---|---|---|",
    ]
    for (design, method), r in table.iterrows():
        lines.append(
            f"| {design} | {method} | {r.p_up:.3f} | {r.true_up:.3f} | {r.p_down:.3f} | "
            f"{r.true_down:.3f} | {r.brier:.4f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--start", type=int, default=0, help="first seed offset")
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--outlier-effect", type=float, default=0.6)
    parser.add_argument("--outlier-rule", choices=("random", "fixed"), default="random")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--from-csv", type=Path, default=None)
    parser.add_argument("--more-csv", type=Path, nargs="*", default=[])
    parser.add_argument("--no-model-check", action="store_true")
    parser.add_argument(
        "--markdown", type=Path, default=ROOT / "benchmarks/results/selection_calibration.md"
    )
    args = parser.parse_args()
    if args.from_csv is not None:
        paths = [args.from_csv, *args.more_csv]
        units = pd.concat([pd.read_csv(p, keep_default_na=False) for p in paths])
        countries = pd.concat([pd.read_csv(p.with_suffix(".countries.csv")) for p in paths])
    else:
        all_units, all_countries = [], []
        for s in range(args.start, args.start + args.seeds):
            t0 = time.perf_counter()
            u, c = one_seed(SEED + s, args.reps, args.draws, args.outlier_effect, args.outlier_rule)
            all_units += u
            all_countries += c
            print(f"seed {s}: {time.perf_counter() - t0:.1f} s", flush=True)
            units, countries = pd.DataFrame(all_units), pd.DataFrame(all_countries)
            if args.csv is not None:
                units.to_csv(args.csv, index=False)
                countries.to_csv(args.csv.with_suffix(".countries.csv"), index=False)
    text = report(units, countries, args)
    if not args.no_model_check:
        text += "\n".join(model_check(units)) + "\n"
    args.markdown.write_text(text)
    print(args.markdown.read_text())


if __name__ == "__main__":
    main()
