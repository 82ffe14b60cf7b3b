"""Scaling of the Bergen study with the number of simulated persons: wall time and peak memory.

Three measurements, each in a fresh process timed by ``/usr/bin/time -v`` (wall clock and
maximum resident set size of the process and its children):

- ``study``: ``evalkit run studies/bergen_rates --set data.options.n_persons=N`` (simulate
  into Parquet chunks, read them with DuckDB, collapse to cells, fit every analysis,
  write the outputs);
- ``simulate``: only the chunked simulation into a Parquet folder (``bergen_rates(...,
  store=DIR)``), to see what the simulator costs on its own;
- ``dask``: the chunked simulation as tasks on a local Dask cluster (``--dask``: workers
  started by this script on 127.0.0.1, each writing its own Parquet files), followed by
  one DuckDB pass over all rows (the share receiving assistance by city and month), for
  sizes up to 10^9 person-months.

For study runs the table also gives the CPU seconds of the whole process tree (the
fork server's workers included, sampled every 0.2 s), and below it where the time went,
from the run's manifest (``timings``: opening/simulating the data, checking it, the
analyses with the collapses to cells and the shared person-level passes done in the
parent meanwhile, the report; the fits' CPU seconds by family of analyses). ``--set
KEY=VALUE`` passes design overrides to the study runs. Each process at the tree's
peak is listed with its RSS and the fit job it ran then (the run's jobs log their start
and end to a file: ``EVALKIT_TRACE_FITS``).

Usage (from the repository root)::

    python benchmarks/bench_study_scale.py --persons 50000,400000,1500000
    python benchmarks/bench_study_scale.py --persons 1500000 --set report.figures=false
    python benchmarks/bench_study_scale.py --simulate 1500000,5000000 --jobs 2
    python benchmarks/bench_study_scale.py --dask 13900000 --workers 2
    python benchmarks/bench_study_scale.py ... --markdown benchmarks/results/study_scale.md

The machine is shared: the script records the load average before and after each run;
read the table with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MONTHS = 72  # 2017-01 to 2022-12


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _tree_rss(
    proc: psutil.Process,
    cpu: dict[int, float] | None = None,
    each: dict[int, int] | None = None,
) -> int:
    """Resident memory of a process and all its descendants, in bytes.

    With ``cpu``, also records the CPU seconds (user + system) of each process by pid
    (the last value seen), so that processes the timer does not wait for (a fork
    server's workers) are counted too. With ``each``, the RSS of each process by pid at
    this moment (the caller keeps the one at the tree's peak).
    """
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            rss = p.memory_info().rss
            total += rss
            if each is not None:
                each[p.pid] = rss
            if cpu is not None:
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return total


def _roles(proc: psutil.Process, pids: list[int]) -> dict[int, str]:
    """Name the processes of a study run: the parent, the fork server, its workers."""
    out: dict[int, str] = {}
    for pid in pids:
        try:
            p = psutil.Process(pid)
            line = " ".join(p.cmdline())
            ppid = p.ppid()
        except psutil.Error:
            out[pid] = "gone"
            continue
        if pid == proc.pid:
            out[pid] = "time"
        elif ppid == proc.pid:
            out[pid] = "parent"
        elif "resource_tracker" in line:
            out[pid] = "resource tracker"
        elif "forkserver" in line and _parent_is(ppid, proc.pid, 1):
            out[pid] = "fork server"
        else:
            out[pid] = "worker"
    return out


def _parent_is(pid: int, ancestor: int, depth: int) -> bool:
    """True when ``ancestor`` is ``depth`` levels above ``pid`` (1: its parent)."""
    try:
        for _ in range(depth):
            pid = psutil.Process(pid).ppid()
    except psutil.Error:
        return False
    return pid == ancestor


def _timed(
    cmd: list[str],
    env: dict[str, str] | None = None,
    keep_stdout: bool = False,
    trace: Path | None = None,
) -> dict[str, Any]:
    """Run ``cmd`` under /usr/bin/time -v, sampling the memory of its whole process tree.

    Returns the wall seconds, the CPU seconds of the process and the children it waited
    for (worker pools started through a fork server are not among them), the peak RSS
    of the largest single process (``time -v``) and the peak of the summed RSS of the
    process tree (sampled every 0.2 s), and the load average before and after. With
    ``trace`` (the file the run's fit jobs log to, ``EVALKIT_TRACE_FITS``), each
    process at the tree's peak is named with the fit job it was running then (or the
    last one it ran).
    """
    load_before = _load()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", *cmd],
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
        )
        watched = psutil.Process(proc.pid)
        tree_peak = 0
        peak_time = 0.0
        cpu: dict[int, float] = {}
        at_peak: dict[int, int] = {}
        peak_each: dict[int, int] = {}  # each process' own peak
        roles: dict[int, str] = {}
        while proc.poll() is None:
            now: dict[int, int] = {}
            total = _tree_rss(watched, cpu, now)
            for pid, rss in now.items():
                peak_each[pid] = max(peak_each.get(pid, 0), rss)
                if pid not in roles:
                    roles.update(_roles(watched, [pid]))
            if total > tree_peak:
                tree_peak, at_peak, peak_time = total, now, time.time()
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    user = re.search(r"User time \(seconds\): (\S+)", stderr)
    system = re.search(r"System time \(seconds\): (\S+)", stderr)
    seconds = None
    if wall:
        parts = [float(p) for p in wall.group(1).split(":")]
        seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return {
        "ok": proc.returncode == 0,
        "seconds": seconds,
        "cpu_seconds": float(user.group(1)) + float(system.group(1)) if user and system else None,
        "peak_gib": int(rss.group(1)) / 2**20 if rss else None,
        "tree_peak_gib": tree_peak / 2**30,
        # every process of the tree, sampled every 0.2 s (a short-lived process's last
        # 0.2 s can be missed); the time process itself is not among them
        "tree_cpu_seconds": sum(v for k, v in cpu.items() if k != proc.pid),
        # the processes' RSS (GiB) when the tree peaked, and each one's own peak
        "at_tree_peak": _by_role(at_peak, roles, _jobs_at(trace, peak_time)),
        "process_peaks": _by_role(peak_each, roles),
        "load": f"{load_before} -> {_load()}",
        "tail": "" if proc.returncode == 0 else (stdout + stderr)[-2000:],
        **({"stdout": stdout.strip()[-2000:]} if keep_stdout else {}),
    }


def _by_role(
    rss: dict[int, int], roles: dict[int, str], jobs: dict[int, str] | None = None
) -> list[str]:
    """``"<role> <GiB>"`` for each process above 20 MiB, largest first (with its job)."""
    items = sorted(
        ((v, roles.get(k, "?"), (jobs or {}).get(k)) for k, v in rss.items() if v > 20 * 2**20),
        reverse=True,
    )
    return [
        f"{role} {v / 2**30:.2f}" + (f" ({job})" if job else "")
        for v, role, job in items
        if role != "time"
    ]


def _jobs_at(trace: Path | None, when: float) -> dict[int, str]:
    """The fit job each process was running at ``when`` (or ``after <job>``), from a trace."""
    if trace is None or not trace.exists():
        return {}
    out: dict[int, str] = {}
    for line in trace.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["t"] <= when:
            job = event["job"]
            out[event["pid"]] = job if event["event"] == "start" else f"after {job}"
    return out


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run_study(
    n: int, jobs: int, figures: bool = True, sets: tuple[str, ...] = ()
) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "run"
    exe = [sys.executable, "-m", "evalkit.cli"]
    cmd = [
        *exe,
        "run",
        str(ROOT / "studies" / "bergen_rates"),
        "--set",
        f"data.options.n_persons={n}",
        "--out",
        str(out),
        "--jobs",
        str(jobs),
        *([] if figures else ["--set", "report.figures=false"]),
        *(x for s in sets for x in ("--set", s)),
    ]
    trace = out.parent / "fits.jsonl"
    env = {"PYTHONPATH": str(ROOT / "src"), "EVALKIT_TRACE_FITS": str(trace)}
    result = _timed(cmd, env, trace=trace)
    manifest = out / "manifest.json"
    if manifest.exists():
        result["timings"] = json.loads(manifest.read_text(encoding="utf-8")).get("timings")
    shutil.rmtree(out.parent, ignore_errors=True)
    what = "study" if figures else "study, no figures"
    if sets:
        what += " (" + ", ".join(sets) + ")"
    return {"what": what, "persons": n, "jobs": jobs, **result}


def run_simulate(n: int, jobs: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-sim-")) / "rows"
    code = (
        "from evalkit.simulate import bergen_rates\n"
        f"sim = bergen_rates(seed=1, n_persons={n}, store={str(folder)!r}, jobs={jobs})\n"
        "print(sim.content_sha256)\n"
    )
    proc_env = {"PYTHONPATH": str(ROOT / "src")}
    result = _timed(_python(code), proc_env, keep_stdout=True)
    size = sum(p.stat().st_size for p in folder.glob("*.parquet")) if folder.exists() else 0
    shutil.rmtree(folder.parent, ignore_errors=True)
    return {"what": "simulate", "persons": n, "jobs": jobs, "disk_gib": size / 2**30, **result}


DASK_CODE = """
import json, os, sys, time
from pathlib import Path


def main():
    from dask.distributed import LocalCluster

    n, workers, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                           dashboard_address=None, processes=True)
    # evalkit.parallel sends the simulator's chunks to the cluster named here; every
    # worker writes its chunks' Parquet files into the same folder (on a real cluster:
    # storage that every worker and the client can reach)
    os.environ["EVALKIT_SCHEDULER"] = cluster.scheduler_address
    from evalkit.simulate import bergen_rates

    t0 = time.perf_counter()
    sim = bergen_rates(seed=1, n_persons=n, store=folder / "rows", chunk_persons=131072)
    t1 = time.perf_counter()
    cluster.close()
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = %d" % workers)
    cells = con.sql(
        "SELECT city, month, count(*) AS n, avg(recipient) AS recipient "
        f"FROM read_parquet('{folder}/rows/*.parquet') GROUP BY city, month"
    ).df()
    t2 = time.perf_counter()
    print(json.dumps({"rows": int(cells["n"].sum()), "simulate_s": t1 - t0,
                      "collapse_s": t2 - t1, "cells": len(cells),
                      "content_sha256": sim.content_sha256}))


if __name__ == "__main__":
    main()
"""


def run_dask(n: int, workers: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    script = folder / "dask_run.py"
    script.write_text(DASK_CODE, encoding="utf-8")
    env = {"PYTHONPATH": str(ROOT / "src")}
    result = _timed(
        [sys.executable, str(script), str(n), str(workers), str(folder)], env, keep_stdout=True
    )
    size = sum(p.stat().st_size for p in (folder / "rows").rglob("*.parquet"))
    shutil.rmtree(folder, ignore_errors=True)
    return {"what": "dask", "persons": n, "jobs": workers, "disk_gib": size / 2**30, **result}


def _fmt(x: Any, spec: str) -> str:
    return "" if x is None else format(x, spec)


def split_table(rows: list[dict[str, Any]]) -> str:
    """Where the time of each study run went (from its manifest's timings)."""
    out = ""
    for r in rows:
        t = r.get("timings")
        if not t:
            continue
        fams = t.get("fit_cpu_seconds_by_family", {})
        out += (
            f"\n{r['what']}, {r['persons']:,} persons, {r['jobs']} jobs: open (simulate) "
            f"{t.get('open_data_seconds')} s, check {t.get('check_data_seconds')} s, "
            f"analyses {t.get('analyses_seconds')} s (of which collapse to cells "
            f"{t.get('collapse_seconds')} s and shared person-level passes "
            f"{t.get('shared_rows_seconds')} s in the parent, entries with truths "
            f"{t.get('entries_seconds')} s), report after the last fit "
            f"{t.get('report_seconds')} s (figures drawn on the workers: "
            f"{t.get('figures_cpu_seconds')} CPU s); fit CPU s by family: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(fams.items(), key=lambda kv: -kv[1]))
            + f" (total {sum(fams.values()):.1f})\n"
        )
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| run | persons | person-months | jobs | wall s | CPU s (waited) | CPU s (process "
        "tree) | peak RSS GiB (largest process) | peak RSS GiB (process tree) | processes at the "
        "tree's peak (GiB, fit job) | Parquet GiB | load (1/5/15 min) before -> after |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|\n"
    )
    body = ""
    for r in rows:
        status = "" if r["ok"] else " (failed)"
        body += (
            f"| {r['what']}{status} | {r['persons']:,} | {r['persons'] * MONTHS:,} | "
            f"{r['jobs']} | {_fmt(r['seconds'], '.1f')} | {_fmt(r['cpu_seconds'], '.1f')} | "
            f"{_fmt(r.get('tree_cpu_seconds'), '.1f')} | "
            f"{_fmt(r['peak_gib'], '.2f')} | {_fmt(r['tree_peak_gib'], '.2f')} | "
            f"{'; '.join(r.get('at_tree_peak', []))} | "
            f"{_fmt(r.get('disk_gib'), '.2f')} | {r['load']} |\n"
        )
    return head + body + split_table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", default="", help="study runs, e.g. 50000,1500000")
    parser.add_argument("--simulate", default="", help="simulation-only runs")
    parser.add_argument("--dask", default="", help="Dask runs (persons)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-figures", action="store_true", help="--set report.figures=false")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        help="a design override for the study runs (KEY=VALUE, repeatable)",
    )
    parser.add_argument("--markdown", type=Path, default=None, help="append the table here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    def sizes(text: str) -> list[int]:
        return [int(float(x)) for x in text.split(",") if x.strip()]

    rows = []
    for n in sizes(args.persons):
        rows.append(run_study(n, args.jobs, figures=not args.no_figures, sets=tuple(args.sets)))
        print(json.dumps(rows[-1]), flush=True)
    for n in sizes(args.simulate):
        rows.append(run_simulate(n, args.jobs))
        print(json.dumps(rows[-1]), flush=True)
    for n in sizes(args.dask):
        rows.append(run_dask(n, args.workers))
        print(json.dumps(rows[-1]), flush=True)
    text = table(rows)
    print(text)
    if args.markdown is not None:
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
