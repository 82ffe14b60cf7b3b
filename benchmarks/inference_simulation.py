"""Size, power, coverage and interval length of every inference method on every design.

Writes ``benchmarks/results/inference_simulation.json`` and the docs page
``docs/guide/inference-evidence.md``. Reproducible: every cell uses
``simulate_inference(..., seed=SEED + 100 * design index + 2 * method index)``.

Run from the repository root::

    PYTHONPATH=src python benchmarks/inference_simulation.py [--reps 200] [--workers 1]
    PYTHONPATH=src python benchmarks/inference_simulation.py --from-json   # page only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from evalkit.simulate.designs import DESIGNS
from evalkit.simulate.harness import METHODS, simulate_inference

SEED = 20261129
EFFECT = 3.0
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--designs", nargs="*", default=list(DESIGNS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--from-json", action="store_true", help="only rewrite the page")
    parser.add_argument("--merge", action="store_true", help="merge into the saved cells")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / "inference_simulation.json"
    if args.from_json:
        saved = json.loads(out.read_text())
        write_page(saved["rows"], max(r["reps"] for r in saved["rows"]))
        return
    rows = []
    for name in args.designs:
        for method in args.methods:
            start = time.perf_counter()
            # seeds by position in the full tables, so any subset reproduces its cells
            i, j = list(DESIGNS).index(name), list(METHODS).index(method)
            cell_seed = SEED + 100 * i + 2 * j
            null = simulate_inference(
                name, method, effect=0.0, reps=args.reps, seed=cell_seed, workers=args.workers
            )
            alt = simulate_inference(
                name, method, effect=EFFECT, reps=args.reps, seed=cell_seed + 1,
                workers=args.workers,
            )  # fmt: skip
            rows.append(
                {
                    "design": name,
                    "method": method,
                    "size": null.rejection_rate,
                    "power": alt.rejection_rate,
                    "coverage": null.coverage,
                    "median_length": null.median_length,
                    "share_unbounded": null.share_unbounded,
                    "failures": null.failures + alt.failures,
                    "reps": args.reps,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.exists():  # keep the other cells of an earlier run
        done = {(r["design"], r["method"]) for r in rows}
        old = [
            r for r in json.loads(out.read_text())["rows"] if (r["design"], r["method"]) not in done
        ]
        order = {(d, m): k for k, (d, m) in enumerate((d, m) for d in DESIGNS for m in METHODS)}
        rows = sorted(old + rows, key=lambda r: order[(r["design"], r["method"])])
    out.write_text(json.dumps({"seed": SEED, "effect": EFFECT, "rows": rows}, indent=1) + "\n")
    write_page(rows, args.reps)


def write_page(rows: list[dict], reps: int) -> None:
    """Write docs/guide/inference-evidence.md from the simulation rows."""
    designs = list(dict.fromkeys(r["design"] for r in rows))
    lines = [
        "# Inference with few clusters: the evidence",
        "",
        "Why `evalkit` chooses the inference it does (see [Inference](inference.md)). Each "
        "design is drawn with `evalkit.simulate.designs` and every method is run through "
        "`evalkit.simulate.harness.simulate_inference` (resampling methods with 999 random "
        "draws, so with 10 clusters the Rademacher wild bootstrap samples sign vectors where "
        "the estimators' default of 9,999 enumerates all 1,024; Monte Carlo p-values "
        "(1 + #)/(B + 1)).",
        "",
        "**What the default is, and why.** With one treated cluster (one_of_ten) "
        "cluster-robust intervals (CR1, CR2, WCU) reject a true null 44-50% of the time; "
        "WCR never rejects (size 0, power 0.34 at an effect of 3); randomization over ten "
        "cities cannot go below p = 1/10, nor Conley-Taber and Ferman-Pinto below 2/10 with "
        "nine controls; conformal inference over time holds its level with high power, so it is "
        "the default there (the wild bootstrap where conformal cannot run). With 2-4 treated "
        "clusters WCR holds its level (three_of_ten, three_of_thirty, where CR1 rejects "
        "18.5%) and is the default. With 5 or more treated clusters (eight_of_twenty) CR1 "
        "and CR2 are close to their level and the policy keeps CR2 below 30 clusters. "
        "With unequal cluster sizes (unequal_sizes: the two treated cities are the smallest) "
        "Conley-Taber over-rejects and Ferman-Pinto's correction, a regression of the "
        "controls' squared errors on 1/size fitted on ten controls, is too noisy to repair it "
        "(it over-rejects more); WCR stays valid there but is conservative with two treated "
        "clusters (rejects no true null, power 0.56), conformal over-rejects somewhat "
        "(0.09) and randomization over cities did best (0.06, power 1.00), a candidate "
        "default for 2 treated clusters that more designs should confirm. CR2 on this "
        "design is slow and has 50 draws. Interval length is in the "
        "outcome's units; `inf` marks intervals unbounded on a side.",
        "",
        f"Rejection rate of a true null at 5% (size), rejection rate of no effect when the "
        f"effect is {EFFECT:g} (power), coverage of the 95% interval and its median length; "
        f"up to {reps} draws per cell, per effect (Monte Carlo standard error of a 5% rate: "
        f"{(0.05 * 0.95 / reps) ** 0.5:.3f}). Generated by "
        "`benchmarks/inference_simulation.py` (seed {SEED}).".replace("{SEED}", str(SEED)),
        "",
    ]
    for name in designs:
        lines += [
            f"**{name}**: {DESIGNS[name].description}",
            "",
            "| method | size | power | coverage | median length | unbounded | draws |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r["design"] == name:
                lines.append(
                    f"| {r['method']} ({METHODS[r['method']]}) | {r['size']:.3f} | "
                    f"{r['power']:.3f} | {r['coverage']:.3f} | {r['median_length']:.2f} | "
                    f"{r['share_unbounded']:.2f} | {r['reps']} |"
                )
        lines.append("")
    (ROOT / "docs" / "guide" / "inference-evidence.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
