"""What the Bergen study's fits cost, per family of analysis (issues 9 and 12).

Two steps, so that optimisations can be timed and checked without re-reading the data:

``python benchmarks/bergen_fit_cost.py dump DIR``
    Runs ``studies/bergen_rates`` on its default data with one job, times the fit of
    every analysis (CPU seconds of this process) and pickles every fit job (estimator,
    options, cell rows, inference, seed) with its tidy table to ``DIR/jobs.pkl``; writes
    ``DIR/results.json`` (the run's) and prints the per-family table.

``python benchmarks/bergen_fit_cost.py replay DIR [--family ID ...] [--profile]``
    Refits the stored jobs with the evalkit on ``PYTHONPATH``, prints the per-family CPU
    table and compares every estimate, standard error, bound and p-value with the stored
    tidy tables (relative tolerance 1e-9); exits 1 when one differs.

``python benchmarks/bergen_fit_cost.py compare A/results.json B/results.json``
    Compares two runs' results.json (every number of every tidy row, rtol 1e-9).

Results: benchmarks/results/bergen_fit_cost.md.
"""

from __future__ import annotations

import argparse
import copyreg
import cProfile
import json
import math
import pickle
import pstats
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from types import MappingProxyType
from typing import Any

RTOL = 1e-9


def _proxy(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(items)


copyreg.pickle(MappingProxyType, lambda m: (_proxy, (dict(m),)))  # type: ignore[arg-type]
ROOT = Path(__file__).resolve().parents[1]


def jsonable(value: Any) -> Any:
    from evalkit.core.result import jsonable as to_json

    return json.loads(json.dumps(to_json(value), default=str))


def _fit(job: Any) -> Any:
    from evalkit.core import registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = registry.get(job.estimator)(**job.kwargs)
        return estimator.fit(job.frame, inference=job.inference, seed=job.seed, level=job.level)


def _tidy(result: Any) -> list[dict[str, Any]]:
    return [jsonable(r) for r in result.tidy().to_dict(orient="records")]


def _table(cost: dict[str, list[float]]) -> str:
    total = sum(sum(v) for v in cost.values())
    lines = [
        "| family | analyses | CPU s each | CPU s total | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for fam, secs in sorted(cost.items(), key=lambda kv: -sum(kv[1])):
        s = sum(secs)
        lines.append(
            f"| {fam} | {len(secs)} | {s / len(secs):.3f} | {s:.2f} | {100 * s / total:.1f}% |"
        )
    lines.append(f"| **all** | {sum(len(v) for v in cost.values())} | | {total:.2f} | 100% |")
    return "\n".join(lines)


def dump(folder: Path) -> None:
    from evalkit.study import runner
    from evalkit.study.design import Design

    folder.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Any, float, list[dict[str, Any]] | None]] = []
    original = runner._run_fit
    current: dict[str, str] = {}

    def timed(job: Any) -> Any:
        t0 = time.process_time()
        out = original(job)
        secs = time.process_time() - t0
        tidy = _tidy(out[0]) if out[0] is not None else None
        jobs.append((current["id"], job, secs, tidy))
        return out

    original_fit_one = runner._fit_one

    def fit_one(study: Any, source: Any, spec: Any, cells: Any) -> Any:
        current["id"] = spec.id
        return original_fit_one(study, source, spec, cells)

    runner._run_fit = timed
    runner._fit_one = fit_one
    try:
        design = Design.from_toml(ROOT / "studies" / "bergen_rates")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            outcome = runner.run_study(
                design,
                out=Path(tmp) / "out",
                root=ROOT / "studies" / "bergen_rates",
                jobs=1,
                progress=False,
            )
            wall = time.perf_counter() - t0
            (folder / "results.json").write_text(
                json.dumps(outcome.results, indent=1, default=str), encoding="utf-8"
            )
    finally:
        runner._run_fit = original
        runner._fit_one = original_fit_one
    cost: dict[str, list[float]] = defaultdict(list)
    for family, _, secs, _ in jobs:
        cost[_family(family)].append(secs)
    print(f"study wall time (jobs=1): {wall:.1f} s", flush=True)
    print(_table(cost), flush=True)
    with open(folder / "jobs.pkl", "wb") as fh:
        pickle.dump([(i, j, t) for i, j, _, t in jobs], fh)


def _family(analysis_id: str) -> str:
    return analysis_id.split("[")[0].split(".")[0]


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= RTOL * max(abs(a), abs(b)) + 1e-300
    if isinstance(a, int | float) and isinstance(b, int | float):
        return _close(float(a), float(b))
    return a == b


def _diff_rows(label: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    if len(old) != len(new):
        return [f"{label}: {len(old)} rows before, {len(new)} now"]
    bad = []
    for k, (r0, r1) in enumerate(zip(old, new, strict=True)):
        for key in sorted(set(r0) | set(r1)):
            if not _close(r0.get(key), r1.get(key)):
                bad.append(f"{label} row {k} {key}: {r0.get(key)!r} -> {r1.get(key)!r}")
    return bad


def _diff_info(label: str, old: Any, new: Any, path: str = "info") -> list[str]:
    """Differences between two JSON-like values (numbers to ``RTOL``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _diff_info(label, old.get(key), new.get(key), f"{path}.{key}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for k, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _diff_info(label, a, b, f"{path}[{k}]")
        return out
    if isinstance(old, float | int) and isinstance(new, float | int) and _close(old, new):
        return []
    return [] if old == new else [f"{label} {path}: {old!r} -> {new!r}"]


def _ungated(stored: dict[str, Any], fresh: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Leave out what the study's disclosure gate suppressed in the stored info (small counts)."""
    hidden = {"suppressed", "suppressed_fields", *stored.get("suppressed_fields", [])}
    keep = {k: v for k, v in stored.items() if k not in hidden}
    return keep, jsonable({k: v for k, v in fresh.items() if k not in hidden})


def replay(folder: Path, families: list[str] | None, profile: bool) -> int:
    with open(folder / "jobs.pkl", "rb") as fh:
        jobs = pickle.load(fh)
    stored = json.loads((folder / "results.json").read_text(encoding="utf-8"))["analyses"]
    info = {a["id"]: a["info"] for a in stored}
    cost: dict[str, list[float]] = defaultdict(list)
    bad: list[str] = []
    prof = cProfile.Profile() if profile else None
    for analysis_id, job, tidy in jobs:
        fam = _family(analysis_id)
        if families and fam not in families:
            continue
        t0 = time.process_time()
        if prof is not None:
            prof.enable()
        result = _fit(job) if job.error is None else None
        if prof is not None:
            prof.disable()
        cost[fam].append(time.process_time() - t0)
        if tidy is not None and result is not None:
            bad += _diff_rows(analysis_id, tidy, _tidy(result))
            bad += _diff_info(analysis_id, *_ungated(info[analysis_id], dict(result.info)))
    print(_table(cost))
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    for line in bad[:40]:
        print("DIFFERS:", line)
    print(f"{len(bad)} numbers differ beyond rtol {RTOL}")
    return 1 if bad else 0


def compare(a: Path, b: Path) -> int:
    ra = json.loads(a.read_text(encoding="utf-8"))["analyses"]
    rb = json.loads(b.read_text(encoding="utf-8"))["analyses"]
    bad: list[str] = []
    if len(ra) != len(rb):
        bad.append(f"{len(ra)} analyses against {len(rb)}")
    n = 0
    for x, y in zip(ra, rb, strict=False):
        n += sum(len(r) for r in x["tidy"])
        bad += _diff_rows(x["id"], x["tidy"], y["tidy"])
        if x.get("error") != y.get("error"):
            bad.append(f"{x['id']}: error {x.get('error')!r} -> {y.get('error')!r}")
    for line in bad[:40]:
        print("DIFFERS:", line)
    print(f"{len(ra)} analyses, {n} numbers compared; {len(bad)} differ beyond rtol {RTOL}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("dump")
    p.add_argument("folder", type=Path)
    p = sub.add_parser("replay")
    p.add_argument("folder", type=Path)
    p.add_argument("--family", nargs="*")
    p.add_argument("--profile", action="store_true")
    p = sub.add_parser("compare")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        dump(args.folder)
        return 0
    if args.cmd == "replay":
        return replay(args.folder, args.family, args.profile)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
