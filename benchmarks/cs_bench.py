"""Callaway-Sant'Anna benchmark: evalkit against diff-diff and csdid (issue #3).

Estimates the group-time effects ATT(g,t) of Callaway & Sant'Anna (2021) on mpdta
replicated many times (default 400 copies: 200,000 counties x 5 years = 1,000,000
rows): doubly robust 2x2 comparisons with the covariate ``lpop``, never-treated
comparison units, a 999-draw multiplier bootstrap with simultaneous (sup-t) bands, and
the event-time aggregation. Every package runs in its own fresh subprocess on the same
Parquet file (see ``_harness.py``).

The data: every copy of mpdta gets new county ids (``copy * 100000 + countyreal``) and
seeded normal noise (sd ``--noise``, default 0.02) added to ``lemp``; ``lpop``, the
years and the cohorts are those of mpdta.

Checks (exit code 1 when one fails):

- csdid's ATT(g,t) equal evalkit's within 1e-8 (absolute), as does its event-time
  summary (the average of ATT(e) over e >= 0);
- diff-diff's ATT(g,t) within 1e-4: diff-diff stops its propensity-score iterations
  earlier than csdid and evalkit, which moves the estimates by about 1e-5.

``--scaling 100,200,400`` adds evalkit-only runs at those replication counts and a
table of peak memory per row (is memory linear in the rows?).

Usage (from the repository root; mpdta is read through ``evalkit.datasets.load``, which
finds the copy packaged with evalkit)::

    /work/venv/bin/python benchmarks/cs_bench.py --quick           # 40 copies, 100k rows
    /work/venv/bin/python benchmarks/cs_bench.py                   # 400 copies, 1M rows
    /work/venv/bin/python benchmarks/cs_bench.py --only evalkit,csdid --repeat 1
    /work/venv/bin/python benchmarks/cs_bench.py --scaling 100,200,400 \\
        --markdown benchmarks/results/cs.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    Contender,
    ContenderResult,
    format_table,
    machine_info,
    package_version,
    results_json,
    run,
    select_contenders,
    vector_diff,
)

REPS = 999  # bootstrap draws
SEED = 1  # bootstrap seed
CSDID_ATOL = 1e-8
DIFFDIFF_ATOL = 1e-4

CONTENDERS = [
    Contender(
        "evalkit",
        "fit_evalkit",
        imports=("evalkit.did",),
        package="evalkit",
        label='CallawaySantAnna(outcome="lemp", unit="countyreal", time="year", '
        'cohort="first.treat", covariates=["lpop"], method="dr").fit(df, '
        'inference=Inference("bootstrap", options={"uniform": True}), reps=999, seed=1)'
        '.aggregate("event_time")',
    ),
    Contender(
        "diff-diff",
        "fit_diffdiff",
        imports=("diff_diff",),
        package="diff-diff",
        label='CallawaySantAnna(estimation_method="dr", n_bootstrap=999, seed=1).fit(df, '
        'outcome="lemp", unit="countyreal", time="year", first_treat="first.treat", '
        'covariates=["lpop"], aggregate="event_study")',
        rtol=1e-3,
        vector_atol=DIFFDIFF_ATOL,
    ),
    Contender(
        "csdid",
        "fit_csdid",
        imports=("csdid.att_gt",),
        package="csdid",
        label='a = ATTgt(yname="lemp", tname="year", idname="countyreal", '
        'gname="first.treat", data=df, xformla="lemp ~ lpop", biters=999, cband=True); '
        'a.fit(est_method="dr", bstrap=True); a.aggte(typec="dynamic")',
        vector_atol=CSDID_ATOL,
    ),
]

NOTES = {
    "evalkit": "simultaneous sup-t bands for the ATT(g,t) and for the event-time effects, "
    "both from the 999 draws; the headline coefficient is the event-time summary "
    "(average of ATT(e) over e >= 0), its SE from the bootstrap",
    "diff-diff": "sup-t bands by default (cband=True); the bootstrap (ATT(g,t), overall and "
    "event study) runs inside fit(), with the event study asked for there "
    "(fit(aggregate=...) is deprecated in 3.13 but the only way to get the bootstrap SE of "
    "the event-time average); the headline coefficient "
    "is the mean of ATT(e) over e >= 0, its SE diff-diff's bootstrap SE of that average "
    "(overall_att_es_se). Its propensity-score logit stops earlier than csdid's, so its "
    "ATT(g,t) differ by about 1e-5 and are checked within 1e-4",
    "csdid": "the multiplier draws come from numpy's global generator, seeded with "
    "np.random.seed(1) before each fit; the summaries csdid prints are captured "
    "(not timed separately)",
}


# --------------------------------------------------------------------------- contenders
def _labelled(cohorts: Any, times: Any, values: Any) -> dict[str, float]:
    return {f"{int(g)}/{int(t)}": float(v) for g, t, v in zip(cohorts, times, values, strict=True)}


def fit_evalkit(df: Any) -> dict[str, Any]:
    """Fit with evalkit (run in the child process)."""
    from evalkit.did import CallawaySantAnna
    from evalkit.inference import Inference

    est = CallawaySantAnna(
        outcome="lemp",
        unit="countyreal",
        time="year",
        cohort="first.treat",
        covariates=["lpop"],
        method="dr",
    )
    res = est.fit(
        df, inference=Inference("bootstrap", options={"uniform": True}), reps=REPS, seed=SEED
    )
    es = res.aggregate("event_time")
    tidy = res.tidy()
    return {
        "coef": es.estimate("average"),
        "se": es.std_error("average"),
        "vector": _labelled(tidy["cohort"], tidy["time"], tidy["estimate"]),
    }


def fit_diffdiff(df: Any) -> dict[str, Any]:
    """Fit with diff-diff's CallawaySantAnna.

    The event study is asked for in ``fit(aggregate="event_study")`` (deprecated in
    diff-diff 3.13 but still the way to get the bootstrap SE of the event-time average;
    a post-fit ``aggregate("event_study")`` gives the ATT(e) but not that SE).
    """
    from diff_diff import CallawaySantAnna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FutureWarning about fit(aggregate=...)
        res = CallawaySantAnna(estimation_method="dr", n_bootstrap=REPS, seed=SEED).fit(
            df,
            outcome="lemp",
            unit="countyreal",
            time="year",
            first_treat="first.treat",
            covariates=["lpop"],
            aggregate="event_study",
        )
    gt = res.group_time_effects
    keys = sorted(gt)
    post = [v["effect"] for e, v in res.event_study_effects.items() if e >= 0]
    return {
        "coef": float(np.mean(post)),
        "se": float(res.bootstrap_results.overall_att_es_se),
        "vector": _labelled(
            [k[0] for k in keys], [k[1] for k in keys], [gt[k]["effect"] for k in keys]
        ),
    }


def fit_csdid(df: Any) -> dict[str, Any]:
    """Fit with csdid (its bootstrap draws from numpy's global generator)."""
    from csdid.att_gt import ATTgt

    np.random.seed(SEED)  # noqa: NPY002 - csdid draws from numpy's global generator
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        a = ATTgt(
            yname="lemp",
            tname="year",
            idname="countyreal",
            gname="first.treat",
            data=df,
            xformla="lemp ~ lpop",
            biters=REPS,
            cband=True,
        )
        a.fit(est_method="dr", bstrap=True)
        a.aggte(typec="dynamic")
    r, agg = a.results, a.atte
    return {
        "coef": float(np.asarray(agg["overall_att"]).ravel()[0]),
        "se": float(np.asarray(agg["overall_se"]).ravel()[0]),
        "vector": _labelled(r["group"], r["year"], r["att"]),
    }


# --------------------------------------------------------------------------- data
def write_replicated(path: Path, copies: int, noise: float, seed: int) -> dict[str, int]:
    """Write ``copies`` copies of mpdta with new county ids and noise on ``lemp``.

    Returns the sizes of the written panel.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    import evalkit

    if copies < 1:
        raise SystemExit("need at least one copy of mpdta")
    base = evalkit.datasets.load("mpdta").sort_values(["countyreal", "year"])
    n = len(base)
    rng = np.random.default_rng(seed)
    copy = np.repeat(np.arange(copies, dtype=np.int64), n)
    county = np.tile(base["countyreal"].to_numpy(dtype=np.int64), copies)
    lemp = np.tile(base["lemp"].to_numpy(dtype=float), copies)
    lemp += rng.normal(0.0, noise, n * copies)
    table = pa.table(
        {
            "countyreal": copy * 100_000 + county,
            "year": np.tile(base["year"].to_numpy(dtype=np.int64), copies),
            "first.treat": np.tile(base["first.treat"].to_numpy(dtype=np.int64), copies),
            "lpop": np.tile(base["lpop"].to_numpy(dtype=float), copies),
            "lemp": lemp,
        }
    )
    pq.write_table(table, path)
    return {"rows": n * copies, "units": base["countyreal"].nunique() * copies, "copies": copies}


# --------------------------------------------------------------------------- reports
def att_table(results: list[ContenderResult]) -> str:
    """ATT(g,t) of every contender side by side, with the largest differences."""
    ok = [r for r in results if r.ok and r.vector]
    if not ok:
        return ""
    ref = next((r for r in ok if r.name == "evalkit"), ok[0])
    head = "| (g, t) | " + " | ".join(r.name for r in ok) + " |"
    lines = [head, "|" + "---|" * (len(ok) + 1)]
    for key in sorted(ref.vector or {}):
        g, t = key.split("/")
        vals = " | ".join(
            f"{r.vector[key]:.10f}" if r.vector and key in r.vector else "-" for r in ok
        )
        lines.append(f"| ({g}, {t}) | {vals} |")
    diffs = " | ".join(_fmt_diff(vector_diff(r.vector, ref.vector)) for r in ok)
    lines.append(f"| max abs diff from {ref.name} | {diffs} |")
    return "\n".join(lines)


def _fmt_diff(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def checks(results: list[ContenderResult]) -> list[tuple[str, bool, str]]:
    """The benchmark's pass/fail statements: (what, passed, detail)."""
    got = {r.name: r for r in results if r.ok}
    ev = got.get("evalkit")
    out = []
    for name, atol in (("csdid", CSDID_ATOL), ("diff-diff", DIFFDIFF_ATOL)):
        r = got.get(name)
        if ev is None or r is None:
            continue
        d = vector_diff(r.vector, ev.vector)
        out.append(
            (
                f"ATT(g,t) of {name} equal evalkit's within {atol:g}",
                d is not None and d <= atol,
                f"max abs diff {_fmt_diff(d)} over {len(ev.vector or {})} cells",
            )
        )
    if ev is not None and "csdid" in got and got["csdid"].coef is not None:
        d = abs(got["csdid"].coef - (ev.coef or np.nan))
        out.append(
            (
                f"event-time summary of csdid equal evalkit's within {CSDID_ATOL:g}",
                bool(d <= CSDID_ATOL),
                f"abs diff {d:.3g}",
            )
        )
    if ev is not None and "diff-diff" in got:
        ratio = (got["diff-diff"].best_fit_s or np.nan) / (ev.best_fit_s or np.nan)
        out.append(
            (
                "evalkit at least 2x faster than diff-diff (best fit)",
                bool(ratio >= 2.0),
                f"diff-diff ÷ evalkit = {ratio:.2f}",
            )
        )
    return out


def scaling_table(rows: list[tuple[dict[str, int], ContenderResult]]) -> str:
    """Peak memory per row of evalkit at several replication counts.

    The last column is the marginal memory: the growth of the fit peak from the
    previous (smaller) run divided by the growth in rows. Memory linear in rows shows
    as a constant marginal cost; a dense N x N object would make it grow with N.
    """
    lines = [
        "| copies | rows | units | fit s (best) | RSS after read MiB | fit peak MiB "
        "| fit peak bytes/row | total peak MiB | (total peak - import RSS) bytes/row "
        "| marginal fit peak bytes/row |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    previous: tuple[int, int] | None = None
    for design, r in sorted(rows, key=lambda dr: dr[0]["rows"]):
        if not r.ok:
            lines.append(f"| {design['copies']} | {design['rows']:,} | failed: {r.error} ||||||||")
            continue
        n = design["rows"]
        fit_peak = r.max_fit_peak or 0
        total = r.total_peak or 0
        imported = r.rss_after_import or 0
        marginal = "-"
        if previous is not None and n > previous[0]:
            marginal = f"{(fit_peak - previous[1]) / (n - previous[0]):.0f}"
        previous = (n, fit_peak)
        lines.append(
            f"| {design['copies']} | {n:,} | {design['units']:,} | {r.best_fit_s:.2f} "
            f"| {(r.rss_after_read or 0) / 2**20:.0f} | {fit_peak / 2**20:.0f} "
            f"| {fit_peak / n:.0f} | {total / 2**20:.0f} | {(total - imported) / n:.0f} "
            f"| {marginal} |"
        )
    return "\n".join(lines)


def _markdown(
    args: argparse.Namespace,
    design: dict[str, int],
    table: str,
    atts: str,
    checked: list[tuple[str, bool, str]],
    scaling: str,
    data_s: float,
) -> str:
    m = machine_info()
    versions = ", ".join(
        f"{p} {package_version(p)}"
        for p in ("evalkit", "diff-diff", "csdid", "numpy", "pandas", "scipy", "pyarrow")
    )
    notes = "\n".join(
        f"- **{c.name}**: `{c.label}`" + (f"; {NOTES[c.name]}." if c.name in NOTES else "")
        for c in CONTENDERS
    )
    check_lines = "\n".join(
        f"- {'PASS' if ok else 'FAIL'}: {what} ({detail})" for what, ok, detail in checked
    )
    scaling_part = (
        f"\nMemory against rows (evalkit alone, same settings, {args.repeat} fit(s) each):\n\n"
        f"{scaling}\n"
        if scaling
        else ""
    )
    return f"""# Callaway-Sant'Anna benchmark

Run on {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")} with
`python benchmarks/cs_bench.py {" ".join(sys.argv[1:])}`.

- Machine: {m["cpu"]}, {m["cores"]} cores (shared with other jobs), {m["memory"]} RAM,
  {m["os"]}, Python {m["python"]}.
- Packages: {versions}.
- Data: mpdta replicated {design["copies"]} times = {design["units"]:,} counties x 5 years =
  {design["rows"]:,} rows, new county ids per copy, normal noise (sd {args.noise}) on lemp,
  seed {args.seed}; written to Parquet once ({data_s:.1f} s), read by every contender in its
  own fresh process.
- Model: ATT(g,t), doubly robust, covariate lpop, never-treated comparison units,
  varying base period; {REPS}-draw multiplier bootstrap (Rademacher) with sup-t bands;
  event-time aggregation.
- Each contender: {args.repeat} fit(s) in one process; "first" is the cold first fit,
  "best" the fastest. Ratios are contender ÷ evalkit (above 1: evalkit is faster or
  smaller). "fit peak" = peak RSS during a fit minus the RSS right after reading the
  data; "total peak" = the process's largest RSS (imports, read and fits). "coef" is
  the event-time summary (average of ATT(e), e >= 0) and "SE" its bootstrap standard
  error (Monte Carlo noise: the packages draw different multipliers).

{table}

Checks:

{check_lines}

ATT(g,t) (cohort g, year t):

{atts}
{scaling_part}
What each contender runs:

{notes}
"""


def main(argv: list[str] | None = None) -> int:
    """Command line: replicate mpdta, run the contenders, print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, default=400, help="copies of mpdta (400: 1M rows)")
    p.add_argument("--noise", type=float, default=0.02, help="sd of the noise added to lemp")
    p.add_argument("--repeat", type=int, default=3, help="fits per contender (best of N)")
    p.add_argument("--only", default="", help="comma-separated contenders, e.g. evalkit,csdid")
    p.add_argument("--quick", action="store_true", help="40 copies (100,000 rows)")
    p.add_argument(
        "--scaling",
        default="",
        help="comma-separated copy counts for evalkit-only memory runs, e.g. 100,200,400",
    )
    p.add_argument("--seed", type=int, default=20240301, help="seed of the noise")
    p.add_argument("--timeout", type=float, default=None, help="seconds per contender")
    p.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = p.parse_args(argv)
    if args.quick:
        args.copies = 40
    try:
        scaling_copies = [int(s) for s in args.scaling.split(",") if s.strip()]
    except ValueError:
        p.error(f"--scaling takes whole numbers separated by commas, got {args.scaling!r}")
    contenders = select_contenders(CONTENDERS, args.only, p.error)

    scaled: list[tuple[dict[str, int], ContenderResult]] = []
    with tempfile.TemporaryDirectory(prefix="cs_bench_") as tmp:
        data = Path(tmp) / "mpdta_x.parquet"
        t0 = time.perf_counter()
        design = write_replicated(data, args.copies, args.noise, args.seed)
        data_s = time.perf_counter() - t0
        print(
            f"CS benchmark: mpdta x {args.copies} = {design['rows']:,} rows, "
            f"{design['units']:,} units, {data.stat().st_size / 2**20:.0f} MiB Parquet; "
            f"repeat={args.repeat}",
            file=sys.stderr,
        )
        results, code = run(
            __file__,
            contenders,
            data,
            repeat=args.repeat,
            reference="evalkit",
            timeout=args.timeout,
        )
        data.unlink()
        for copies in scaling_copies:
            path = Path(tmp) / f"mpdta_x{copies}.parquet"
            d = write_replicated(path, copies, args.noise, args.seed)
            print(f"scaling: mpdta x {copies} = {d['rows']:,} rows", file=sys.stderr)
            res, c = run(__file__, CONTENDERS[:1], path, repeat=args.repeat, timeout=args.timeout)
            scaled.append((d, res[0]))
            code = max(code, 2 if c == 2 else 0)
            path.unlink()

    table = format_table(results, reference="evalkit")
    atts = att_table(results)
    checked = checks(results)
    scaling = scaling_table(scaled) if scaled else ""
    print(table)
    print()
    print(atts)
    print()
    for what, ok, detail in checked:
        print(f"{'PASS' if ok else 'FAIL'}: {what} ({detail})")
    if scaling:
        print()
        print(scaling)
    for r in results:
        if not r.ok:
            print(f"\n{r.name} failed: {r.error}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(
            _markdown(args, design, table, atts, checked, scaling, data_s), encoding="utf-8"
        )
    if args.json:
        payload = {
            "design": design,
            "machine": machine_info(),
            "results": results_json(results),
            "scaling": [{"design": d, "result": results_json([r])[0]} for d, r in scaled],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    if code == 1:
        print("\nFAIL: an estimate disagrees with evalkit's beyond its tolerance")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
