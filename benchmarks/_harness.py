"""A small harness for side-by-side benchmarks of evalkit against peer packages.

Every contender runs in its own fresh Python subprocess, so that its peak memory is
its own and not the leftovers of another package. The data are written once (by the
benchmark script) to a Parquet file that every child reads; the child reports

- ``import``: the time to import the contender's libraries,
- ``read``: the time to read the Parquet file into a pandas DataFrame, and the
  resident set size (RSS) right after the read, the *baseline*,
- ``fit``: for each of ``repeat`` calls of the contender's fit function, the wall and
  CPU time and the peak RSS during the call. The first call is reported separately
  ("cold": lazy imports, JIT compilation, caches) and the best of all calls is the
  headline number.

Peak memory is read from ``VmHWM`` in ``/proc/self/status``. Before every fit the
child resets the high-water mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0),
so the *fit peak* is the memory a fit needs on top of the data already in memory
(peak during the fit minus the after-read baseline), and the *total peak* is the
largest RSS the child ever had (imports, read and fits). Where the mark cannot be
reset (other systems) the fit peak falls back to the process maximum and is marked
as an upper bound.

A benchmark script defines its contenders as module-level functions
``fit_<name>(df) -> {"coef": float, "se": float}`` and calls :func:`run`.
The child process imports the script by file path, so the script must guard its own
command line with ``if __name__ == "__main__":``.

A fit function may also return ``"vector": {label: float, ...}``, a set of estimates
(e.g. every ATT(g,t)) that is compared label by label with the reference contender's
(:func:`vector_diff`); a contender's ``vector_atol`` makes that comparison part of the
check. A contender's ``rtol`` overrides the run's relative tolerance for its headline
coefficient (for a peer known to differ in the last digits, with the reason in the
benchmark's notes).

Exit codes of :func:`run`: 0 when every contender ran and every coefficient (and
checked vector) agrees with the reference contender's to its tolerance; 1 when one
disagrees; 2 when a contender failed (import error, exception, killed).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Contender",
    "ContenderResult",
    "format_table",
    "machine_info",
    "package_version",
    "run",
    "vector_diff",
]

_MARKER = "@@HARNESS-RESULT@@ "
_MIB = 1024.0 * 1024.0


# --------------------------------------------------------------------------- contenders
@dataclasses.dataclass(frozen=True)
class Contender:
    """One package (or one way of calling it) in a benchmark.

    Parameters
    ----------
    name
        Short name used on the command line (``--only``) and in the table.
    function
        Name of the module-level function in the benchmark script that fits the
        model: ``function(df) -> {"coef": float, "se": float}``.
    imports
        Modules the child imports before reading the data, so that import time and
        memory are not charged to the fit.
    package
        Distribution whose version is reported (``importlib.metadata``).
    label
        What exactly is run, for the table's footnotes.
    rtol
        Relative tolerance for this contender's headline coefficient against the
        reference's; None uses the run's ``rtol``.
    vector_atol
        Largest allowed absolute difference between this contender's ``"vector"``
        and the reference's (same labels required); None shows the difference
        without checking it.

    Examples
    --------
    >>> c = Contender("numpy", "fit_numpy", imports=("numpy",), package="numpy")
    >>> c.name, c.package, c.rtol
    ('numpy', 'numpy', None)
    """

    name: str
    function: str
    imports: tuple[str, ...] = ()
    package: str | None = None
    label: str = ""
    rtol: float | None = None
    vector_atol: float | None = None


@dataclasses.dataclass
class ContenderResult:
    """What one child reported (or why it failed). Times in seconds, memory in bytes.

    Examples
    --------
    >>> r = ContenderResult("x", ok=False, error="boom")
    >>> r.best_fit_s is None
    True
    """

    name: str
    ok: bool
    error: str = ""
    version: str = ""
    import_s: float | None = None
    read_s: float | None = None
    rss_start: int | None = None
    rss_after_import: int | None = None
    rss_after_read: int | None = None
    fit_s: list[float] = dataclasses.field(default_factory=list)
    fit_cpu_s: list[float] = dataclasses.field(default_factory=list)
    fit_peak: list[int] = dataclasses.field(default_factory=list)
    total_peak: int | None = None
    peak_exact: bool = True
    coef: float | None = None
    se: float | None = None
    coefs: list[float] = dataclasses.field(default_factory=list)
    vector: dict[str, float] | None = None
    rtol: float | None = None
    vector_atol: float | None = None

    @property
    def best_fit_s(self) -> float | None:
        """Best (smallest) wall time over the repeated fits."""
        return min(self.fit_s) if self.fit_s else None

    @property
    def first_fit_s(self) -> float | None:
        """Wall time of the first (cold) fit."""
        return self.fit_s[0] if self.fit_s else None

    @property
    def best_fit_cpu_s(self) -> float | None:
        """CPU time (all threads) of the fastest fit."""
        if not self.fit_s:
            return None
        return self.fit_cpu_s[self.fit_s.index(min(self.fit_s))]

    @property
    def max_fit_peak(self) -> int | None:
        """Largest fit peak over the repeated fits (conservative)."""
        return max(self.fit_peak) if self.fit_peak else None


def select_contenders(
    contenders: Sequence[Contender], only: str, error: Callable[[str], Any]
) -> list[Contender]:
    """Return the contenders named in ``only`` (comma-separated; all when empty).

    ``error`` reports unknown names (e.g. ``argparse.ArgumentParser.error``).

    Examples
    --------
    >>> cs = [Contender("a", "fit_a"), Contender("b", "fit_b")]
    >>> [c.name for c in select_contenders(cs, "b", print)]
    ['b']
    """
    names = [c.name for c in contenders]
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        error(f"unknown contender(s) {unknown}; choose from {names}")
    return [c for c in contenders if not wanted or c.name in wanted]


def package_version(dist: str | None) -> str:
    """Return the installed version of a distribution, or ``""``.

    Examples
    --------
    >>> package_version("this-package-does-not-exist")
    ''
    >>> package_version("numpy") != ""
    True
    """
    if not dist:
        return ""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def machine_info() -> dict[str, str]:
    """Describe the machine a benchmark ran on (CPU, cores, memory, OS, Python).

    Examples
    --------
    >>> sorted(machine_info())[:3]
    ['cores', 'cpu', 'memory']
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else ""),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- child side
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def _hwm() -> int:
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _load_script(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("_benchmark_script", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmark script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_benchmark_script"] = module
    spec.loader.exec_module(module)
    return module


def _child(script: str, function: str, imports: Sequence[str], data: str, repeat: int) -> None:
    out: dict[str, Any] = {"rss_start": _rss()}
    t0 = time.perf_counter()
    for name in imports:
        importlib.import_module(name)
    import pandas as pd

    module = _load_script(script)
    fit = getattr(module, function)
    out["import_s"] = time.perf_counter() - t0
    out["rss_after_import"] = _rss()

    total_peak = _hwm()
    exact = _reset_hwm()
    t0 = time.perf_counter()
    df = pd.read_parquet(data)
    out["read_s"] = time.perf_counter() - t0
    gc.collect()
    baseline = _rss() or 0
    out["rss_after_read"] = baseline
    total_peak = max(total_peak, _hwm())

    fit_s, fit_cpu_s, fit_peak, coefs, ses = [], [], [], [], []
    for _ in range(repeat):
        gc.collect()
        exact = _reset_hwm() and exact
        w0, c0 = time.perf_counter(), time.process_time()
        got = fit(df)
        w1, c1 = time.perf_counter(), time.process_time()
        peak = _hwm()
        total_peak = max(total_peak, peak)
        fit_s.append(w1 - w0)
        fit_cpu_s.append(c1 - c0)
        fit_peak.append(peak - baseline)
        coefs.append(float(got["coef"]))
        ses.append(float(got["se"]))
        if "vector" in got and "vector" not in out:
            out["vector"] = {str(k): float(v) for k, v in got["vector"].items()}
        del got
    out.update(
        fit_s=fit_s,
        fit_cpu_s=fit_cpu_s,
        fit_peak=fit_peak,
        total_peak=total_peak,
        peak_exact=exact,
        coef=coefs[0] if coefs else None,
        se=ses[0] if ses else None,
        coefs=coefs,
    )
    sys.stdout.write(_MARKER + json.dumps(out) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- parent side
def _run_one(
    script: str, contender: Contender, data: str, repeat: int, timeout: float | None
) -> ContenderResult:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--script",
        script,
        "--function",
        contender.function,
        "--imports",
        ",".join(contender.imports),
        "--data",
        data,
        "--repeat",
        str(repeat),
    ]
    version = package_version(contender.package)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return ContenderResult(contender.name, ok=False, version=version, error="timed out")
    line = next(
        (ln for ln in proc.stdout.splitlines()[::-1] if ln.startswith(_MARKER)),
        None,
    )
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        if proc.returncode < 0:
            tail = f"killed by signal {-proc.returncode} ({tail})"
        return ContenderResult(contender.name, ok=False, version=version, error=tail)
    got = json.loads(line[len(_MARKER) :])
    return ContenderResult(
        contender.name,
        ok=True,
        version=version,
        rtol=contender.rtol,
        vector_atol=contender.vector_atol,
        **got,
    )


def run(
    script: str | os.PathLike[str],
    contenders: Sequence[Contender],
    data: str | os.PathLike[str],
    *,
    repeat: int = 3,
    reference: str = "evalkit",
    rtol: float = 1e-8,
    timeout: float | None = None,
    progress: bool = True,
) -> tuple[list[ContenderResult], int]:
    """Run every contender in a fresh subprocess on the same data file.

    Parameters
    ----------
    script
        Path of the benchmark script that defines the contenders' fit functions.
    contenders
        The contenders, run one after the other in this order.
    data
        Parquet file every child reads with :func:`pandas.read_parquet`.
    repeat
        Number of fits per contender; the best time is the headline number.
    reference
        Name of the contender the others are compared with (ratios, coefficient
        check). If it is absent or failed, the first successful contender is used.
    rtol
        Largest allowed ``|coef - coef_ref| / |coef_ref|``.
    timeout
        Seconds before a child is killed and reported as failed.
    progress
        Print one line per contender to stderr while running.

    Returns
    -------
    results, exit_code
        One :class:`ContenderResult` per contender and 0 (all agree), 1 (a
        coefficient disagrees) or 2 (a contender failed).

    Examples
    --------
    >>> import tempfile, pathlib, textwrap
    >>> import pandas as pd
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "b.py").write_text(textwrap.dedent('''
    ...     def fit_mean(df):
    ...         return {"coef": float(df["y"].mean()), "se": 0.0}
    ... '''))
    >>> pd.DataFrame({"y": [1.0, 2.0, 3.0]}).to_parquet(tmp / "d.parquet")
    >>> res, code = run(tmp / "b.py", [Contender("mean", "fit_mean")], tmp / "d.parquet",
    ...                 repeat=1, reference="mean", progress=False)
    >>> code, res[0].coef
    (0, 2.0)
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    results = []
    for c in contenders:
        if progress:
            print(f"  running {c.name} ...", file=sys.stderr, flush=True)
        r = _run_one(str(script), c, str(data), repeat, timeout)
        if progress:
            what = f"{r.best_fit_s:.2f} s" if r.ok else f"FAILED: {r.error}"
            print(f"  {c.name}: {what}", file=sys.stderr, flush=True)
        results.append(r)
    ref = _reference(results, reference)
    code = 0
    if any(not r.ok for r in results):
        code = 2
    if ref is not None and any(r.ok and not _agrees(r, ref, rtol) for r in results):
        code = 1
    return results, code


def _reference(results: Sequence[ContenderResult], name: str) -> ContenderResult | None:
    ok = [r for r in results if r.ok]
    return next((r for r in ok if r.name == name), ok[0] if ok else None)


def _coef_agrees(a: float | None, b: float | None, rtol: float) -> bool:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= rtol * max(abs(b), sys.float_info.min)


def vector_diff(a: dict[str, float] | None, b: dict[str, float] | None) -> float | None:
    """Largest absolute difference of two labelled estimate vectors.

    Returns None when either is missing and ``inf`` when their labels differ or a
    value is not finite.

    Examples
    --------
    >>> vector_diff({"a": 1.0, "b": 2.0}, {"a": 1.5, "b": 2.0})
    0.5
    >>> vector_diff({"a": 1.0}, {"b": 1.0})
    inf
    >>> vector_diff({"a": 1.0}, None) is None
    True
    """
    if a is None or b is None:
        return None
    if set(a) != set(b) or not a:
        return math.inf
    diffs = [abs(a[k] - b[k]) for k in a]
    return max(diffs) if all(math.isfinite(d) for d in diffs) else math.inf


def _agrees(r: ContenderResult, ref: ContenderResult, rtol: float) -> bool:
    tol = rtol if r.rtol is None else r.rtol
    if not all(_coef_agrees(c, ref.coef, tol) for c in (r.coefs or [r.coef])):
        return False
    if r.vector_atol is not None and r is not ref:
        diff = vector_diff(r.vector, ref.vector)
        if diff is None or not diff <= r.vector_atol:
            return False
    return True


# --------------------------------------------------------------------------- output
def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:.2f}"


def format_table(
    results: Sequence[ContenderResult], reference: str = "evalkit", rtol: float = 1e-8
) -> str:
    """Render the results as a Markdown table with ratios to the reference contender.

    Ratios are ``contender / reference``: a time ratio of 2.5 means the reference is
    2.5 times faster. Memory is in MiB; "fit peak" is the peak RSS during a fit minus
    the RSS right after reading the data (the baseline), the largest over the repeats.
    When any contender returned a ``"vector"``, a column "max abs diff vector" shows
    its largest difference from the reference's (:func:`vector_diff`).

    Examples
    --------
    >>> r = ContenderResult("a", ok=True, read_s=0.1, rss_after_read=100 * 2**20,
    ...                     fit_s=[1.0, 0.5], fit_cpu_s=[1.0, 0.5],
    ...                     fit_peak=[10 * 2**20, 12 * 2**20], total_peak=120 * 2**20,
    ...                     coef=1.0, se=0.1)
    >>> row = format_table([r], reference="a").splitlines()[2].split(" | ")
    >>> row[2:5], row[8:10], row[-1]
    (['0.10', '0.50', '1.00'], ['12', '1.00'], 'ok |')
    """
    ref = _reference(results, reference)
    vectors = any(r.ok and r.vector is not None for r in results)
    head = (
        "| contender | version | read s | fit s (best) | fit s (first) | fit CPU s "
        "| time ÷ ref | RSS after read MiB | fit peak MiB | fit peak ÷ ref "
        "| total peak MiB | total peak ÷ ref | coef | SE | SE ÷ ref | max abs diff coef "
        + ("| max abs diff vector " if vectors else "")
        + "| check |"
    )
    lines = [head, _rule(head)]
    for r in results:
        if not r.ok:
            lines.append(f"| {r.name} | {r.version} | failed: {r.error} |" + " |" * (14 + vectors))
            continue
        diff = None
        if ref is not None and r.coefs and ref.coef is not None:
            diff = max(abs(c - ref.coef) for c in r.coefs)
        agrees = ref is None or _agrees(r, ref, rtol)
        vdiff = [f"{_fmt(vector_diff(r.vector, ref.vector if ref else None), '.3g')} |"]
        peak_note = "" if r.peak_exact else " (upper bound)"
        lines.append(
            " ".join(
                [
                    f"| {r.name} | {r.version} |",
                    f"{_fmt(r.read_s, '.2f')} |",
                    f"{_fmt(r.best_fit_s, '.2f')} |",
                    f"{_fmt(r.first_fit_s, '.2f')} |",
                    f"{_fmt(r.best_fit_cpu_s, '.2f')} |",
                    f"{_ratio(r.best_fit_s, ref.best_fit_s if ref else None)} |",
                    f"{_fmt(_mib(r.rss_after_read), '.0f')} |",
                    f"{_fmt(_mib(r.max_fit_peak), '.0f')}{peak_note} |",
                    f"{_ratio(r.max_fit_peak, ref.max_fit_peak if ref else None)} |",
                    f"{_fmt(_mib(r.total_peak), '.0f')} |",
                    f"{_ratio(r.total_peak, ref.total_peak if ref else None)} |",
                    f"{_fmt(r.coef, '.10f')} |",
                    f"{_fmt(r.se, '.8f')} |",
                    f"{_ratio5(r.se, ref.se if ref else None)} |",
                    f"{_fmt(diff, '.3g')} |",
                    *(vdiff if vectors else []),
                    f"{'ok' if agrees else 'DISAGREES'} |",
                ]
            )
        )
    return "\n".join(lines)


def _rule(head: str) -> str:
    return "|" + "---|" * (head.count("|") - 1)


def _ratio5(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:.5f}"


def _mib(x: int | None) -> float | None:
    return None if x is None else x / _MIB


def results_json(results: Sequence[ContenderResult]) -> list[dict[str, Any]]:
    """Return the raw results as JSON-safe dictionaries.

    Examples
    --------
    >>> results_json([ContenderResult("a", ok=False, error="x")])[0]["error"]
    'x'
    """
    return [dataclasses.asdict(r) for r in results]


# --------------------------------------------------------------------------- child CLI
def _child_main(argv: Sequence[str]) -> None:
    p = argparse.ArgumentParser(description="benchmark child process (internal)")
    p.add_argument("--child", action="store_true")
    p.add_argument("--script", required=True)
    p.add_argument("--function", required=True)
    p.add_argument("--imports", default="")
    p.add_argument("--data", required=True)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    imports = [m for m in a.imports.split(",") if m]
    _child(a.script, a.function, imports, a.data, a.repeat)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
