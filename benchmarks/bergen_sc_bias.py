"""Per-month synthetic-control coverage of studies/bergen_rates, with and without the covariate.

Writes a copy of the study with only two families of analyses, the study's ``sc``
(conformal inference, city unemployment partialled out) and the same without
``covariates`` (``sc_plain``: the study before issue 12's fix), runs it for each seed at
the study's size and counts, per family and group, how many per-month intervals cover
the simulator's truth, on which side the misses fall, and how many estimates have the
wrong sign against a truth larger than the interval's half-width (the rule of
``/work/brief/coverage.py``). Not a test: run by hand (about 2 minutes of CPU a seed)::

    PYTHONPATH=src python benchmarks/bergen_sc_bias.py --seeds 20200301 1 2 3 4 5

Results: ``benchmarks/results/bergen_sc_bias.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path

STUDY = Path(__file__).resolve().parents[1] / "studies" / "bergen_rates" / "study.toml"


def sc_only_study(folder: Path) -> Path:
    """Copy the study's header and its ``sc`` analysis, plus ``sc_plain`` without covariates."""
    text = STUDY.read_text()
    header = text.split("[[analysis]]")[0]
    blocks = re.split(r"\n(?=\[\[analysis\]\])", text)
    sc = next(b for b in blocks if b.startswith('[[analysis]]\nid = "sc"\n'))
    sc = sc.split("\n\n# ")[0].split("\n[verify]")[0].rstrip() + "\n"
    plain = (
        sc.replace('id = "sc"', 'id = "sc_plain"')
        .replace(', covariates = ["city_unemployment"]', "")
        .replace(", city unemployment partialled out", " without covariates")
    )
    assert plain != sc and "covariates" not in plain.split("options")[1].split("\n")[0]
    # drop the header's trailing comment lines that introduce the first analysis
    header = header.split("\n# Inference is left to evalkit")[0] + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.toml").write_text(header + "\n" + sc + "\n" + plain)
    return folder


def count(results: dict, table: dict) -> None:
    """Add each analysis' per-month coverage, misses and sign errors to ``table``."""
    for a in results["analyses"]:
        family, group = a["id"].split(".")[0], a["id"].split(".")[-1]
        for row in a.get("tidy", []):
            t, lo, hi, e = (row.get(k) for k in ("truth", "conf_low", "conf_high", "estimate"))
            if row.get("term") != "effect" or None in (t, lo, hi, e):
                continue
            if not (math.isfinite(lo) and math.isfinite(hi)):
                continue
            for key in ((family, group), (family, "every group")):
                s = table[key]
                s["n"] += 1
                s["covered"] += lo <= t <= hi
                s["below"] += t < lo
                s["above"] += t > hi
                if abs(t) > (hi - lo) / 2:
                    s["clear"] += 1
                    s["wrong"] += (e > 0) != (t > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[20200301, 1, 2, 3, 4, 5])
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    from evalkit.study import run_study

    table: dict = defaultdict(lambda: defaultdict(int))
    with tempfile.TemporaryDirectory() as tmp:
        folder = sc_only_study(Path(tmp) / "sc_only")
        for seed in args.seeds:
            out = Path(tmp) / f"out_{seed}"
            run_study(
                folder,
                out,
                progress=False,
                jobs=args.jobs,
                overrides={"study.seed": seed},
            )
            count(json.loads((out / "results.json").read_text()), table)
            print(f"seed {seed} done", flush=True)
    print(f"seeds {args.seeds}; load average {os.getloadavg()[0]:.1f}")
    print("| family | group | covered | rate | truth below | truth above | clear | wrong sign |")
    print("|---|---|---|---|---|---|---|---|")
    for (family, group), s in sorted(table.items()):
        print(
            f"| {family} | {group} | {s['covered']}/{s['n']} | {s['covered'] / s['n']:.3f} "
            f"| {s['below']} | {s['above']} | {s['clear']} | {s['wrong']} |"
        )


if __name__ == "__main__":
    main()
