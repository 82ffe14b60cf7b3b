"""CPU, memory and numbers of the Bergen study's person-level fits, refitted from saved rows.

The person-level analyses (``person_did``, ``dml_did``, ``dml_did_by_household``) fit on
one row per person and period. Reading those rows takes the whole study's simulation;
this script saves them once and refits them as often as needed:

``python benchmarks/bench_person_fits.py dump DIR [--persons 1500000]``
    Simulates the study's data, reads each person-level analysis' rows as its fit job
    would, and writes ``DIR/<analysis>.parquet`` and ``DIR/<analysis>.job.pkl``.

``python benchmarks/bench_person_fits.py fit DIR OUT.json [--only PREFIX ...]``
    Refits every saved job with the evalkit on ``PYTHONPATH`` (one process, one job),
    and writes each fit's CPU seconds, its process's peak RSS so far and its tidy table.
    Run it with ``PYTHONPATH=<old checkout>/src`` for the numbers before a change.

``python benchmarks/bench_person_fits.py compare BEFORE.json AFTER.json``
    Prints the CPU by family before and after (with the ratio) and the largest relative
    difference of any number of any tidy row; exits 1 when one exceeds 1e-8.

The machine is shared: the load average is printed beside the times. Results:
benchmarks/results/study_scale.md ("Person-level fits").
"""

from __future__ import annotations

import argparse
import copyreg
import json
import math
import os
import pickle
import resource
import sys
import time
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("person_did", "dml_did", "dml_did_by_household")
RTOL = 1e-8


def _proxy(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(items)


copyreg.pickle(MappingProxyType, lambda m: (_proxy, (dict(m),)))  # type: ignore[arg-type]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def dump(folder: Path, persons: int) -> None:
    import dataclasses

    from evalkit.study import runner
    from evalkit.study.config import load_study
    from evalkit.study.source import open_source

    folder.mkdir(parents=True, exist_ok=True)
    root = ROOT / "studies" / "bergen_rates"
    study = load_study(root, overrides={"data.options.n_persons": persons})
    source = open_source(study, None, jobs=2)
    cells = runner._Cells(study, source)
    shared = runner._SharedRows(study, source)
    try:
        for spec in study.analyses:
            if spec.id.split(".")[0] not in FAMILIES:
                continue
            job, _, _ = runner._materialise(study, source, spec, cells, shared)
            if job.rows is None:
                continue
            frame, info = job.rows.load()
            frame.to_parquet(folder / f"{spec.id}.parquet")
            with open(folder / f"{spec.id}.job.pkl", "wb") as fh:
                pickle.dump(dataclasses.replace(job, rows=None, frame=None), fh)
            print(spec.id, frame.shape, info["n_rows"], flush=True)
    finally:
        shared.close()
        source.close()


def fit(folder: Path, out: Path, only: list[str]) -> None:
    import pandas as pd

    from evalkit.core import registry

    results: dict[str, Any] = {}
    for path in sorted(folder.glob("*.job.pkl")):
        name = path.name.removesuffix(".job.pkl")
        if only and not any(name.startswith(p) for p in only):
            continue
        with open(path, "rb") as fh:
            job = pickle.load(fh)
        frame = pd.read_parquet(folder / f"{name}.parquet")
        est = registry.get(job.estimator)(**job.kwargs)
        by = {} if job.by is None else {"by": job.by}
        cpu = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = est.fit(frame, inference=job.inference, seed=job.seed, level=job.level, **by)
        cpu = time.process_time() - cpu
        tidy = json.loads(json.dumps(res.tidy().to_dict(orient="records"), default=str))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results[name] = {"cpu": cpu, "peak_rss_mib": rss, "tidy": tidy}
        print(f"{name}: {cpu:.2f} s CPU, peak RSS {rss:.0f} MiB (load {_load()})", flush=True)
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")


def _family(name: str) -> str:
    return name.split(".")[0]


def compare(before: Path, after: Path) -> int:
    a = json.loads(before.read_text(encoding="utf-8"))
    b = json.loads(after.read_text(encoding="utf-8"))
    common = [k for k in a if k in b]
    print("| family | fits | CPU s before | CPU s after | ratio |")
    print("|---|---:|---:|---:|---:|")
    for fam in FAMILIES:
        names = [k for k in common if _family(k) == fam]
        if names:
            x = sum(a[k]["cpu"] for k in names)
            y = sum(b[k]["cpu"] for k in names)
            print(f"| {fam} | {len(names)} | {x:.2f} | {y:.2f} | {x / y:.2f}x |")
    worst, where, count = 0.0, None, 0
    for k in common:
        for ra, rb in zip(a[k]["tidy"], b[k]["tidy"], strict=True):
            for col, va in ra.items():
                vb = rb.get(col)
                if isinstance(va, float) and isinstance(vb, float):
                    if math.isnan(va) and math.isnan(vb):
                        continue
                    d = abs(va - vb) / max(abs(va), abs(vb), 1e-300)
                    count += 1
                    if d > worst:
                        worst, where = d, (k, ra.get("term"), col, va, vb)
                elif va != vb:
                    print(f"differs: {k} {col}: {va!r} vs {vb!r}")
                    return 1
    print(f"\n{count} numbers compared; largest relative difference {worst:.3g} {where or ''}")
    return 0 if worst <= RTOL else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dump")
    p.add_argument("folder", type=Path)
    p.add_argument("--persons", type=int, default=1_500_000)
    p = sub.add_parser("fit")
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--only", nargs="*", default=[])
    p = sub.add_parser("compare")
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.folder, args.persons)
    elif args.command == "fit":
        fit(args.folder, args.out, args.only)
    else:
        return compare(args.before, args.after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
