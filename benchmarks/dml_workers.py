"""DML on two processes: serial, first fit in a fresh process (cold) and next fit (warm).

PLR of 401(k) eligibility on net financial assets (sipp1991), random forests (100 trees
by default), ``n_rep`` repetitions of 5-fold cross-fitting, fitted by
``dml.PLR(..., jobs=J).fit(df, seed=42)``. With ``jobs=2`` this process and one worker
share the learner fits (one item per fold, nuisance and repetition, handed out one at a
time; see ``evalkit.dml.crossfit`` and ``evalkit.parallel``). Every run is a fresh Python
child that imports evalkit, DoubleML and scikit-learn and reads the data before the
clock starts:

- *serial*: ``jobs=1``, the first fit of the child;
- *cold*: ``jobs=2``, the first fit of the child: the forkserver and the worker start
  during the fit (the worker imports scikit-learn and DoubleML);
- *warm*: ``jobs=2``, the child's second fit (the worker is kept);
- *cold, forkserver preload*: as cold, with ``multiprocessing.set_forkserver_preload``
  naming the modules the worker needs, so the fork server imports them before it forks.

CPU accounting: the caller's process CPU during the fit, and each worker's and the fork
server's total CPU from ``/proc/PID/stat`` (cold: from their start, so start-up is
included; warm: the difference over the fit). The *CPU bound* is the busier side:
max(caller, forkserver + workers); on two free cores the wall time approaches it. Wall
times need a quiet machine (load averages are printed before and after).

Usage (from the repository root)::

    PYTHONPATH=src /work/venv/bin/python benchmarks/dml_workers.py [--trees 100] [--reps 1 4 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]
SEED = 42
PRELOAD = ["evalkit.dml.crossfit", "sklearn.ensemble"]  # what a worker imports


def _cpu(pid: int) -> float:
    """Total user + system CPU seconds of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _helpers() -> dict[str, float]:
    """CPU seconds of this process' pool workers (summed) and of the fork server."""
    from multiprocessing import forkserver

    from evalkit import parallel

    pids = [pid for pool in parallel._POOLS.values() for pid in pool._processes]
    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    return {
        "workers": sum(_cpu(pid) for pid in pids),
        "forkserver": _cpu(server) if server else 0.0,
    }


def child(trees: int, reps: int, jobs: int, preload: bool, n_fits: int = 2) -> dict[str, Any]:
    """One fresh process: imports and data first, then ``n_fits`` timed fits."""
    import multiprocessing
    import warnings

    warnings.simplefilter("ignore")
    if preload:
        multiprocessing.set_forkserver_preload(PRELOAD)
    import doubleml  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    from evalkit import datasets
    from evalkit.dml import PLR
    from evalkit.dml.learners import make_preset

    frame = datasets.load("sipp1991")[["net_tfa", "e401", *X]]
    learners = {  # the "rf" preset with fewer trees; evalkit seeds them from the fit's seed
        "ml_l": make_preset("rf", "regressor").set_params(n_estimators=trees),
        "ml_m": make_preset("rf", "classifier").set_params(n_estimators=trees),
    }
    est = PLR(
        outcome="net_tfa", treatment="e401", covariates=X, learners=learners, n_rep=reps, jobs=jobs
    )
    fits = []
    for _ in range(n_fits):
        helpers_before = _helpers()
        cpu, wall = time.process_time(), time.perf_counter()
        res = est.fit(frame, seed=SEED)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        helpers = {k: c - helpers_before[k] for k, c in _helpers().items()}
        fits.append(
            {
                "wall": wall,
                "caller": cpu,
                "workers": helpers["workers"],
                "forkserver": helpers["forkserver"],
                "coef": res.estimate(),
                "se": res.std_error(),
            }
        )
    return {"fits": fits}


def _run_child(trees: int, reps: int, jobs: int, preload: bool, n_fits: int) -> dict[str, Any]:
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import dml_workers as b; "
        f"print(json.dumps(b.child({trees}, {reps}, {jobs}, {preload}, {n_fits})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Command line: serial, cold, warm and preloaded runs per n_rep; print one table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--reps", type=int, nargs="+", default=[1, 4, 10])
    p.add_argument("--no-preload", action="store_true", help="skip the preloaded cold run")
    p.add_argument("--quick", action="store_true", help="one serial fit (no second)")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    for reps in args.reps:
        serial = _run_child(args.trees, reps, 1, False, 1 if args.quick else 2)
        two = _run_child(args.trees, reps, 2, False, 2)
        runs = [
            ("serial, first fit", serial["fits"][0]),
            *[("serial, second fit", f) for f in serial["fits"][1:]],
            ("2 processes, cold (first fit)", two["fits"][0]),
            ("2 processes, warm (second fit)", two["fits"][1]),
        ]
        if not args.no_preload:
            pre = _run_child(args.trees, reps, 2, True, 1)
            runs.append(("2 processes, cold, forkserver preload", pre["fits"][0]))
        ref = runs[0][1]
        for name, r in runs:
            same = r["coef"] == ref["coef"] and r["se"] == ref["se"]
            bound = max(r["caller"], r["workers"] + r["forkserver"])
            rows.append((reps, name, r, bound, ref, same))
    load_after = os.getloadavg()
    print(
        f"PLR rf ({args.trees} trees), 401(k), 5 folds; load average "
        f"{load_before[0]:.1f}/{load_before[1]:.1f} before, {load_after[0]:.1f}/"
        f"{load_after[1]:.1f} after (1/5 min), {os.cpu_count()} cores\n"
    )
    print(
        "| n_rep | run | wall s | caller CPU s | worker CPU s | forkserver CPU s | CPU bound s "
        "| speed-up (wall) | speed-up (CPU bound) | identical |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for reps, name, r, bound, ref, same in rows:
        ref_bound = max(ref["caller"], ref["workers"] + ref["forkserver"])
        print(
            f"| {reps} | {name} | {r['wall']:.2f} | {r['caller']:.2f} | {r['workers']:.2f} | "
            f"{r['forkserver']:.2f} | "
            f"{bound:.2f} | {ref['wall'] / r['wall']:.2f} | {ref_bound / bound:.2f} | "
            f"{'yes' if same else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
