"""Cold import times of evalkit, with numpy and pandas as the floor.

Each statement (``import evalkit``, ``import evalkit.did``, ...) runs in ``--runs`` fresh
Python processes, one after another (interleaved, so a burst of load on a shared machine
touches every statement alike). For each statement the script prints the median and the
fastest wall time of the whole process (interpreter start-up included), its median CPU
time (user + system of the child, less sensitive to other jobs on the machine), the
heavy third-party modules the statement leaves in ``sys.modules``, and the modules that
took longest by ``python -X importtime`` (cumulative, one extra run).

``--src`` points at the source tree to measure (default: this checkout's ``src``), so
two trees can be compared, e.g. main before a change and a branch after it::

    python benchmarks/import_time.py --src /path/to/main/src --label before
    python benchmarks/import_time.py --label after --markdown benchmarks/results/import_time.md

Not a test: timings on a shared machine vary; the test suite checks which modules
``import evalkit`` loads (tests/unit/test_lazy_import.py), never how long it takes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine_info, package_version

STATEMENTS = (
    "pass",
    "import numpy",
    "import pandas",
    "import evalkit",
    "import evalkit.did",
    "import evalkit as ek; ek.did.TWFE",
    "from evalkit.did import CallawaySantAnna",
    "import evalkit.cli",
)
HEAVY = ("scipy", "scipy.stats", "pandas", "matplotlib", "duckdb", "sklearn", "doubleml", "rich")
REPO = Path(__file__).resolve().parents[1]


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src)
    env.pop("PYTHONSTARTUP", None)
    return env


def _one(statement: str, src: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh interpreter running ``statement``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], env=_env(src), check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _works(statement: str, src: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", statement], env=_env(src), capture_output=True)
    return done.returncode == 0


def _loaded(statement: str, src: Path) -> list[str]:
    probe = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_env(src), check=True, capture_output=True, text=True
    )
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    return [m for m in HEAVY if m in mods]


def _slowest(statement: str, src: Path, top: int = 5) -> list[tuple[str, float]]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=_env(src),
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 2:  # top-level imports and their direct children
            rows.append((name.strip(), int(parts[1]) / 1e6))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def measure(src: Path, runs: int, statements: tuple[str, ...] = STATEMENTS) -> list[dict]:
    """Median and fastest wall time and median CPU time of each statement."""
    walls: dict[str, list[float]] = {s: [] for s in statements}
    cpus: dict[str, list[float]] = {s: [] for s in statements}
    failing = {s for s in statements if not _works(s, src)}  # also warms the caches
    for _ in range(runs):
        for s in statements:
            if s in failing:
                continue
            wall, cpu = _one(s, src)
            walls[s].append(wall)
            cpus[s].append(cpu)
    return [
        {"statement": s, "error": "fails (exit status not 0)"}
        if s in failing
        else {
            "statement": s,
            "median_s": statistics.median(walls[s]),
            "min_s": min(walls[s]),
            "cpu_median_s": statistics.median(cpus[s]),
            "loads": _loaded(s, src),
            "slowest": _slowest(s, src),
        }
        for s in statements
    ]


def markdown(rows: list[dict], label: str, src: Path, runs: int) -> str:
    """One Markdown table of ``rows`` as measured by :func:`measure`."""
    lines = [
        f"### {label}",
        "",
        f"Source tree `{src}`, {runs} cold runs per statement, interleaved.",
        "",
        "| statement | median s | fastest s | CPU s (median) | heavy modules loaded |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['statement']}` | {r['error']} | | | |")
            continue
        lines.append(
            f"| `{r['statement']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['cpu_median_s']:.3f} | {', '.join(r['loads']) or '-'} |"
        )
    lines += ["", "Slowest imports (cumulative, `-X importtime`, one run):", ""]
    for r in rows:
        if r["statement"].startswith("import evalkit") and "error" not in r:
            slow = ", ".join(f"{name} {sec:.3f} s" for name, sec in r["slowest"])
            lines.append(f"- `{r['statement']}`: {slow}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, print Markdown, optionally append it to a file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=REPO / "src", help="source tree to import")
    parser.add_argument("--runs", type=int, default=9, help="cold runs per statement")
    parser.add_argument("--label", default="this checkout", help="heading of the table")
    parser.add_argument("--markdown", type=Path, default=None, help="append the table here")
    parser.add_argument("--json", type=Path, default=None, help="write raw numbers here")
    args = parser.parse_args(argv)

    rows = measure(args.src.resolve(), args.runs)
    text = markdown(rows, args.label, args.src, args.runs)
    print(text)
    info = machine_info()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}; "
        f"numpy {package_version('numpy')}, pandas {package_version('pandas')}, "
        f"scipy {package_version('scipy')}"
    )
    if args.markdown:
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
