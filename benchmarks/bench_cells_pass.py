"""The Bergen study's cells: one DuckDB pass for every analysis against one pass per condition.

Simulates the study's data (``--persons``) into Parquet, opens them as the runner does,
and collapses every table of cells the study's analyses use (20 tables: four groups,
with and without the COVID-19 months, the two placebo keys, the three triple-difference
splits and the household key) in two ways, timed in this process (CPU seconds include
DuckDB's threads; the machine is shared, so read the CPU column):

- ``separate``: :func:`evalkit.data.collapse.collapse` once per table (main f27ce7a's path);
- ``one pass``: :func:`evalkit.data.collapse.collapse_many`, one pass for all of them.

It also times the shared person-level passes (``_SharedRows``: person x period averages
of the cohort), and checks that the two ways give the same cells (counts exactly, means
to the largest relative difference printed).

Usage (from the repository root)::

    python benchmarks/bench_cells_pass.py --persons 300000
    python benchmarks/bench_cells_pass.py --persons 1500000 --markdown FILE.md
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from evalkit.data.collapse import CellRequest, collapse, collapse_many  # noqa: E402
from evalkit.study.config import load_study  # noqa: E402
from evalkit.study.runner import _Cells, _SharedRows  # noqa: E402
from evalkit.study.source import open_source  # noqa: E402


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Largest relative difference of the float columns; counts and keys must be equal."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    worst = 0.0
    for c in a.columns:
        if a[c].dtype.kind == "f":
            x, y = a[c].to_numpy(dtype=float), b[c].to_numpy(dtype=float)
            assert np.array_equal(np.isnan(x), np.isnan(y))
            ok = ~np.isnan(y)
            rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-300)
            worst = max(worst, float(rel.max(initial=0.0)))
        else:
            pd.testing.assert_series_equal(a[c], b[c], check_exact=True)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=300_000)
    parser.add_argument("--jobs", type=int, default=2, help="simulation processes")
    parser.add_argument("--markdown", type=Path, default=None, help="append the table here")
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    study = load_study(
        ROOT / "studies" / "bergen_rates", overrides={"data.options.n_persons": args.persons}
    )
    source, sim_wall, sim_cpu = _timed(lambda: open_source(study, jobs=args.jobs))
    try:
        cells = _Cells(study, source)
        spec = study.collapse
        assert spec is not None
        measures = {m.name: m for m in spec.measures}
        keys = list(cells.planned)

        def separate() -> list[pd.DataFrame]:
            return [
                collapse(
                    source.split(cells.planned[k]),
                    list(k[1]),
                    measures,
                    min_cell_size=study.min_cell_size,
                    count=spec.count,
                    where=k[0],
                )
                for k in keys
            ]

        def one_pass() -> list[pd.DataFrame]:
            return collapse_many(
                source.with_splits(cells.planned.values()),
                [CellRequest(k[1], k[0]) for k in keys],
                measures,
                min_cell_size=study.min_cell_size,
                count=spec.count,
            )

        many, many_wall, many_cpu = _timed(one_pass)
        each, each_wall, each_cpu = _timed(separate)
        gap = max(_gap(a, b) for a, b in zip(many, each, strict=True))
        shared = _SharedRows(study, source)
        rows_specs = [s for s in study.analyses if s.fit_on == "rows"]
        _, rows_wall, rows_cpu = _timed(lambda: [shared.ref(s) for s in rows_specs])
        n_passes = len(shared.files)
        shared.close()
    finally:
        source.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows = [
        ("simulate (open the data)", sim_wall, sim_cpu, ""),
        (f"cells, one collapse per table ({len(keys)} passes)", each_wall, each_cpu, ""),
        ("cells, one pass (collapse_many)", many_wall, many_cpu, f"{each_cpu / many_cpu:.1f}x"),
        (f"shared person-level passes ({n_passes})", rows_wall, rows_cpu, ""),
    ]
    text = (
        f"\n`bench_cells_pass.py --persons {args.persons}` ({args.persons * 72:,} person-months; "
        f"load {load} before, {' '.join(f'{x:.1f}' for x in os.getloadavg())} after; "
        f"this process' peak RSS {peak:.2f} GiB; largest relative difference between the "
        f"two ways' cell values {gap:.1e}, counts identical)\n\n"
        "| step | wall s | CPU s | CPU ratio |\n|---|---:|---:|---:|\n"
        + "".join(f"| {n} | {w:.1f} | {c:.1f} | {r} |\n" for n, w, c, r in rows)
    )
    print(text)
    if args.markdown is not None:
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
