"""Where the time of DML repetitions on two evalkit.parallel workers goes (issue #11).

PLR of 401(k) eligibility on net financial assets (sipp1991), random forests, ``n_rep``
repetitions: each repetition's cross-fitting is one item of :func:`evalkit.parallel.map`,
exactly as ``dml.PLR(n_rep=..., jobs=2)`` sends them. The script runs the repetitions

1. serially in this process (modules already imported), then
2. on two workers twice: a *cold* map (the workers start and import scikit-learn and
   DoubleML) and a *warm* map (the persistent pool's workers are reused).

Every worker reports its process CPU time before and after each item, so the start-up
cost (process start, imports, unpickling the item) is separated from the fitting. CPU
times hold on a loaded machine; wall times need a quiet one (the load average is
printed). The *CPU bound* of a map is its busiest worker's CPU (start-up included): on
two free cores the wall time approaches it.

Usage (from the repository root)::

    PYTHONPATH=src /work/venv/bin/python benchmarks/dml_workers.py [--trees 100] [--reps 4]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Any

X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]
SEED = 42


def _timed(item: Any) -> dict[str, Any]:
    """Worker side: one repetition, with the worker's CPU time before and after."""
    before = time.process_time()
    from evalkit.dml._base import _fit_repetition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _fit_repetition(item)
    return {"pid": os.getpid(), "before": before, "after": time.process_time()}


def _items(trees: int, reps: int) -> list[Any]:
    from evalkit import datasets
    from evalkit.dml import PLR, fold_splits, seeded
    from evalkit.dml.learners import make_preset

    def learner(kind: str) -> Any:
        est = make_preset("rf", kind)
        est.set_params(n_estimators=trees)
        return seeded(est, SEED)

    frame = datasets.load("sipp1991")[["net_tfa", "e401", *X]]
    learners = {"ml_l": learner("regressor"), "ml_m": learner("classifier")}
    est = PLR(outcome="net_tfa", treatment="e401", covariates=X, learners=learners, n_rep=reps)
    smpls, _ = fold_splits(len(frame), 5, reps, SEED)
    return [(est, frame, (), learners, smpls[r], None) for r in range(reps)]


def _summary(name: str, wall: float, rows: list[dict[str, Any]], warm: bool) -> dict[str, Any]:
    by_worker: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_worker.setdefault(r["pid"], []).append(r)
    fit = sum(r["after"] - r["before"] for r in rows)
    # cold: a worker's CPU from its start (its first item's "before" is its start-up);
    # warm: only the CPU spent on this map's items
    busiest = max(
        max(r["after"] for r in rs) - (min(r["before"] for r in rs) if warm else 0.0)
        for rs in by_worker.values()
    )
    startup = 0.0 if warm else sum(min(r["before"] for r in rs) for rs in by_worker.values())
    return {
        "run": name,
        "workers": len(by_worker),
        "wall": wall,
        "fit_cpu": fit,
        "startup_cpu": startup,
        "bound": busiest,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: serial, cold and warm maps; print one table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--reps", type=int, default=4)
    args = p.parse_args(argv)
    from evalkit import parallel

    items = _items(args.trees, args.reps)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    serial = [_timed(it) for it in items]
    wall = time.perf_counter() - started
    results = [_summary("serial (this process)", wall, serial, warm=True)]
    for name, warm in (("2 workers, cold", False), ("2 workers, warm (reused)", True)):
        started = time.perf_counter()
        rows = parallel.map(_timed, items, jobs=2)
        wall = time.perf_counter() - started
        results.append(_summary(name, wall, rows, warm=warm))
    parallel.shutdown()
    ref = results[0]
    print(
        f"PLR rf, {args.trees} trees, n_rep={args.reps}; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores\n"
    )
    print(
        "| run | workers | wall s | fit CPU s | start-up CPU s | CPU bound s "
        "| speed-up (wall) | speed-up (CPU bound) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['run']} | {r['workers']} | {r['wall']:.2f} | {r['fit_cpu']:.2f} | "
            f"{r['startup_cpu']:.2f} | {r['bound']:.2f} | {ref['wall'] / r['wall']:.2f} | "
            f"{ref['bound'] / r['bound']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
