"""Run a study: data, cells, every analysis, then results, report and manifest.

Everything the runner writes is built from one payload that has passed the disclosure
gate (:func:`_gate`, which applies :func:`evalkit.data.disclosure.protect` and refuses
output that fails :func:`evalkit.data.disclosure.audit`); the report is rendered from
that payload, and its figures show only estimates and cell means of unsuppressed cells.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit import parallel
from evalkit.core import registry
from evalkit.core.result import Result, jsonable
from evalkit.data.collapse import CellRequest, collapse, collapse_many
from evalkit.data.disclosure import DisclosurePolicy, audit, protect
from evalkit.errors import EvalkitError, StudyError
from evalkit.study.config import AnalysisSpec, SplitSpec, Study, load_study
from evalkit.study.design import Design
from evalkit.study.figures_ahead import FiguresAhead
from evalkit.study.progress import RunProgress
from evalkit.study.source import (
    DataSource,
    check_columns,
    open_source,
    read_averaged,
    validate_data,
)
from evalkit.study.truth import truth_lookup

__all__ = ["RESULTS_FORMAT", "Fitted", "RunOutcome", "run_study"]

RESULTS_FORMAT = 1
#: Fit jobs in flight per worker: the parent runs ahead this far (every job is small).
_WINDOW = 8
PACKAGES = (
    "evalkit",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "duckdb",
    "pyarrow",
    "matplotlib",
    "linearmodels",
    "scikit-learn",
    "doubleml",
    "rich",
)


@dataclass(frozen=True)
class RunOutcome:
    """What a run produced.

    Attributes
    ----------
    out_dir
        The output folder.
    results
        The content of results.json (after disclosure control).
    files
        Every file written.
    manifest
        The content of manifest.json.
    errors
        ``"<analysis id>: <message>"`` for each analysis that failed (its ``tidy`` is
        empty and its ``error`` set in results.json).
    seconds
        Wall-clock time of the run.
    """

    out_dir: Path
    results: dict[str, Any]
    files: tuple[Path, ...]
    manifest: dict[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every analysis ran."""
        return not self.errors


@dataclass
class Fitted:
    """One analysis after fitting (internal to the runner and the report)."""

    spec: AnalysisSpec
    result: Result | None
    data: dict[str, Any]
    warnings: list[str]
    error: str | None = None


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# --------------------------------------------------------------------------- data
_Key = tuple[str | None, tuple[str, ...]]


class _Cells:
    """Collapsed cells per row condition (and split), computed once each.

    The cells of every analysis on cells come from one DuckDB pass over the rows
    (:func:`~evalkit.data.collapse.collapse_many`), made when the first of them is
    asked for; each table is handed out (and recorded, in the order asked) by
    :meth:`get`. Should that pass fail (e.g. a condition that fails on some rows), every
    table is collapsed on its own, so the error goes to the analyses it concerns.
    """

    def __init__(self, study: Study, source: DataSource) -> None:
        self.study = study
        self.source = source
        self.tables: dict[_Key, pd.DataFrame] = {}
        self.groups: dict[_Key, str] = {}
        self.custom: dict[_Key, bool] = {}
        self.splits: dict[_Key, SplitSpec | None] = {}
        self.seconds = 0.0  # wall time of the collapses
        self.planned: dict[_Key, SplitSpec | None] = {}
        if study.collapse is not None:
            for spec in study.analyses:
                if spec.fit_on == "cells" and spec.table is None:
                    self.planned.setdefault((spec.where, study.cell_keys(spec)), spec.split)
        self.ready: dict[_Key, pd.DataFrame] | None = None  # the pass' tables not yet asked for

    def _collapse_planned(self) -> dict[_Key, pd.DataFrame]:
        """Collapse every planned table in one pass ({} when the pass fails)."""
        spec = self.study.collapse
        assert spec is not None
        keys = list(self.planned)
        relation = self.source.with_splits(self.planned.values())
        try:
            tables = collapse_many(
                relation,
                [CellRequest(k[1], k[0]) for k in keys],
                {m.name: m for m in spec.measures},
                min_cell_size=self.study.min_cell_size,
                count=spec.count,
            )
        except EvalkitError:
            return {}
        return dict(zip(keys, tables, strict=True))

    def by_group(self) -> dict[str, pd.DataFrame]:
        """Cells of each subgroup by group name ([groups] conditions and cell keys only)."""
        default = self.study.collapse.by if self.study.collapse is not None else ()
        return {
            self.groups[k]: t
            for k, t in self.tables.items()
            if not self.custom[k] and self.splits[k] is None and k[1] == tuple(default)
        }

    def get(
        self,
        where: str | None,
        group: str,
        custom: bool = False,
        split: SplitSpec | None = None,
        keys: tuple[str, ...] = (),
    ) -> pd.DataFrame:
        key = (where, keys)
        if key not in self.tables:
            spec = self.study.collapse
            assert spec is not None
            start = time.perf_counter()
            if self.ready is None and key in self.planned:
                self.ready = self._collapse_planned()
            ready = self.ready.pop(key, None) if self.ready is not None else None
            self.tables[key] = (
                ready
                if ready is not None
                else collapse(
                    self.source.split(split),
                    by=list(keys),
                    measures={m.name: m for m in spec.measures},
                    min_cell_size=self.study.min_cell_size,
                    count=spec.count,
                    where=where,
                )
            )
            self.seconds += time.perf_counter() - start
            self.groups[key] = f"{group} (own condition)" if custom else group
            self.custom[key] = custom
            self.splits[key] = split
        return self.tables[key]


def _analysis_frame(
    study: Study, source: DataSource, spec: AnalysisSpec, cells: _Cells
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return the rows an analysis is fitted on, and aggregate facts about them."""
    if spec.fit_on == "rows":
        return _rows_frame(source.table(spec.table), spec)
    table = cells.get(spec.where, spec.group, spec.custom_where, spec.split, study.cell_keys(spec))
    outcome = spec.outcome
    hidden = table["suppressed"].to_numpy(dtype=bool).copy()
    flag = f"suppressed_{outcome}"
    if outcome and flag in table:
        hidden |= table[flag].to_numpy(dtype=bool)
    usable = ~hidden
    if outcome and outcome in table:
        usable &= table[outcome].notna().to_numpy()
    frame = table.loc[usable].reset_index(drop=True)
    count = study.collapse.count
    info = {
        "mode": "cells",
        "n_cells": int(usable.sum()),
        "n_suppressed_cells": int(hidden.sum()),
        "n_microdata_rows": int(frame[count].sum()) if len(frame) else 0,
    }
    return frame, info


def _rows_frame(source: DataSource, spec: AnalysisSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read an analysis' rows in DuckDB: only the columns it uses.

    Averaged within ``collapse_by`` when given; the rows never reach an output, only
    their counts (``n_rows``, ``n_units``), which the disclosure gate checks.
    """
    wanted, keys = _rows_plan(source, spec)
    info: dict[str, Any] = {"mode": "rows"}
    if spec.table is not None:
        info["table"] = spec.table
    if keys is not None:
        frame, n_rows = source.averaged(spec.where, wanted, keys, spec.split)
        info.update(n_rows=n_rows, n_averaged_rows=len(frame), collapse_by=keys)
    else:
        frame = source.rows(spec.where, wanted, spec.split)
        info["n_rows"] = len(frame)
    unit = spec.kwargs.get("unit")
    if isinstance(unit, str) and unit in frame:
        info["n_units"] = int(frame[unit].nunique())
    return frame, info


def _rows_plan(source: DataSource, spec: AnalysisSpec) -> tuple[list[str], list[str] | None]:
    """Return the columns a row analysis reads and its averaging keys (None: no averaging)."""
    available = source.columns
    if spec.split is not None and spec.split.column not in available:
        available = [*available, spec.split.column]
    wanted = _columns_used(spec, available)
    if not spec.collapse_by:
        return wanted, None
    keys = list(spec.collapse_by)
    if spec.split is not None and spec.split.column not in keys:
        keys.append(spec.split.column)
    if spec.by is not None and spec.by not in keys:
        keys.append(spec.by)
    return wanted, keys


@dataclass(frozen=True)
class _RowsRef:
    """Where a fit job finds its averaged rows: condition ``index`` of a shared file."""

    path: str
    index: int
    keys: tuple[tuple[str, str], ...]  # (key, DuckDB type)
    columns: tuple[str, ...]
    picked: tuple[str, ...]
    unit: str | None

    def load(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Read the rows (on the worker) and the facts :func:`_rows_frame` records."""
        frame, n_rows = read_averaged(
            self.path, self.index, dict(self.keys), list(self.columns), list(self.picked)
        )
        info: dict[str, Any] = {
            "n_rows": n_rows,
            "n_averaged_rows": len(frame),
            "collapse_by": [k for k, _ in self.keys],
        }
        if self.unit is not None and self.unit in frame:
            info["n_units"] = int(frame[self.unit].nunique())
        return frame, info


_GroupKey = tuple[str | None, tuple[str, ...], tuple[str, str, str | None] | None]
_Written = tuple[str, list[str | None], list[str], dict[str, str]]  # file, wheres, columns, types


class _SharedRows:
    """Rows averaged within ``collapse_by``: one DuckDB pass per (table, keys, split).

    The analyses that average the same table within the same keys (e.g. a person-level
    DiD and a DML DiD for every outcome and group) share one pass over the rows, which
    writes per-key sums and counts for every row condition among them to a Parquet file
    in a temporary folder of the run (never in the output folder; removed at the end).
    Each analysis' fit job carries the file and reads its condition's rows, averaged as
    :meth:`DataSource.averaged` would, on the worker. The pass runs when the first of
    its analyses is materialised. Analyses whose keys are a subset of another's (with
    the same table and split) share that one's pass: a worker sums the finer rows over
    its own keys (the DML DiD by household and the person-level DiD: one pass).
    """

    def __init__(self, study: Study, source: DataSource) -> None:
        self.source = source
        self.members: dict[_GroupKey, list[AnalysisSpec]] = {}
        for spec in study.analyses:
            if spec.fit_on == "rows" and spec.collapse_by:
                self.members.setdefault(self._key(spec), []).append(spec)
        # the pass that serves each key: the first key, by most keys, that contains it
        finest = sorted(self.members, key=lambda k: -len(k[1]))
        self.home: dict[_GroupKey, _GroupKey] = {
            k: next(f for f in finest if f[0] == k[0] and f[2] == k[2] and set(k[1]) <= set(f[1]))
            for k in self.members
        }
        self.checked: dict[str, str | None] = {}
        self.files: dict[_GroupKey, _Written | None] = {}
        self.folder: Path | None = None
        self.seconds = 0.0  # wall time of the shared passes

    def _key(self, spec: AnalysisSpec) -> _GroupKey:
        _, keys = _rows_plan(self.source.table(spec.table), spec)
        split = spec.split
        return (
            spec.table,
            tuple(keys or ()),
            None if split is None else (split.by, split.column, split.condition),
        )

    def _check(self, spec: AnalysisSpec) -> str | None:
        """Return the error :meth:`DataSource.averaged` would raise on the columns (or None)."""
        if spec.id not in self.checked:
            src = self.source.table(spec.table)
            wanted, keys = _rows_plan(src, spec)
            try:
                src.check_averaged(wanted, keys or [], spec.split)
                self.checked[spec.id] = None
            except EvalkitError as err:
                self.checked[spec.id] = str(err)
        return self.checked[spec.id]

    def ref(self, spec: AnalysisSpec) -> _RowsRef | None:
        """Return where the analysis' rows are (None: read them the usual way)."""
        if spec.fit_on != "rows" or not spec.collapse_by:
            return None
        if self._check(spec) is not None:
            return None  # the usual read raises the same error for this analysis
        key = self.home[self._key(spec)]
        if key not in self.files:
            self.files[key] = self._write(key)
        written = self.files[key]
        if written is None:
            return None
        path, wheres, columns, types = written
        src = self.source.table(spec.table)
        wanted, keys = _rows_plan(src, spec)
        keys = keys or []
        unit = spec.kwargs.get("unit")
        return _RowsRef(
            path,
            wheres.index(spec.where),
            tuple((k, types[k]) for k in keys),
            tuple(columns),
            tuple(c for c in dict.fromkeys(wanted) if c not in keys),
            unit if isinstance(unit, str) else None,
        )

    def _write(self, key: _GroupKey) -> _Written | None:
        specs = [
            s
            for k, home in self.home.items()
            if home == key
            for s in self.members[k]
            if self._check(s) is None
        ]
        src = self.source.table(key[0])
        wheres = list(dict.fromkeys(s.where for s in specs))
        columns: list[str] = []
        for s in specs:
            wanted, keys = _rows_plan(src, s)
            columns.extend(c for c in wanted if c not in (keys or []) and c not in columns)
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="evalkit-rows-"))
        path = self.folder / f"rows-{len(self.files)}.parquet"
        start = time.perf_counter()
        try:
            types = src.averaged_parts(wheres, columns, list(key[1]), specs[0].split, path)
        except EvalkitError:
            return None  # e.g. a condition that fails: each analysis reads on its own
        finally:
            self.seconds += time.perf_counter() - start
        return str(path), wheres, columns, types

    def close(self) -> None:
        """Remove the shared files."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _columns_used(spec: AnalysisSpec, available: list[str]) -> list[str]:
    cols: list[str] = []
    for value in spec.kwargs.values():
        for v in (
            [value] if isinstance(value, str) else value if isinstance(value, tuple | list) else []
        ):
            if isinstance(v, str) and v in available and v not in cols:
                cols.append(v)
    if spec.inference is not None and spec.inference.cluster in available:
        cols.append(spec.inference.cluster)
    if spec.by is not None and spec.by in available and spec.by not in cols:
        cols.append(spec.by)
    return cols or list(available)


# --------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class _FitJob:
    """One analysis' fit: pure and picklable (the estimator name, options and rows)."""

    estimator: str
    kwargs: dict[str, Any]
    frame: pd.DataFrame | None
    inference: Any
    seed: int
    level: float
    error: str | None = None
    rows: _RowsRef | None = None
    by: str | None = None  # fit(..., by=): subgroups compared with equality tests
    name: str = ""  # the analysis' id (for :data:`TRACE_ENV` lines)


def _materialise(
    study: Study,
    source: DataSource,
    spec: AnalysisSpec,
    cells: _Cells,
    shared: _SharedRows | None = None,
) -> tuple[_FitJob, dict[str, Any], list[str]]:
    """Read (or collapse) an analysis' rows in DuckDB and return its fit job.

    Rows averaged within ``collapse_by`` are not read here: the job names the file of
    the shared pass (:class:`_SharedRows`) and the worker reads them.
    """
    data: dict[str, Any] = {}
    frame = None
    error = None
    rows = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rows = shared.ref(spec) if shared is not None else None
            if rows is None:
                frame, data = _analysis_frame(study, source, spec, cells)
            else:
                data = {"mode": "rows", **({"table": spec.table} if spec.table else {})}
        except EvalkitError as err:
            error = str(err)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    job = _FitJob(
        spec.estimator,
        dict(spec.kwargs),
        frame,
        spec.inference,
        spec.seed,
        spec.level,
        error,
        rows,
        by=spec.by,
        name=spec.id,
    )
    return job, data, messages


def _fit_modules(study: Study) -> list[str]:
    """Return the modules a worker imports to fit the study's analyses."""
    targets = (registry.BUILTIN.get(a.estimator) for a in study.analyses)
    modules = [__name__, *dict.fromkeys(t.split(":")[0] for t in targets if t)]
    if study.figures:  # the workers draw the report's figures too (FiguresAhead)
        modules += ["evalkit.report.study_figures", "matplotlib.backends.backend_agg"]
    return modules


def _run_fit(
    job: _FitJob,
) -> tuple[Result | None, list[str], str | None, dict[str, Any], float]:
    """Fit one analysis (runs in this process or on a worker).

    Returns the result, the warnings, the error, the facts about rows read here and the
    CPU seconds of this process for the job (reading rows included).
    """
    if job.error is not None:
        return None, [], job.error, {}, 0.0
    _trace("start", job)
    cpu = time.process_time()
    caught: list[warnings.WarningMessage] = []
    info: dict[str, Any] = {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = job.frame
            if job.rows is not None:
                frame, info = job.rows.load()
            estimator = registry.get(job.estimator)(**job.kwargs)
            # only a by= analysis passes by (families' fit methods without it stay callable)
            by: dict[str, Any] = {} if job.by is None else {"by": job.by}
            result = estimator.fit(
                frame, inference=job.inference, seed=job.seed, level=job.level, **by
            )
            del frame
            result = _for_report(result)
        error = None
    except EvalkitError as err:
        result, error = None, str(err)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    if job.rows is not None or _heavy_estimator(job.estimator):
        _release_memory()
    _trace("end", job)
    return result, messages, error, info, time.process_time() - cpu


def _heavy_estimator(name: str) -> bool:
    try:
        return bool(registry.get(name).memory_heavy)
    except EvalkitError:
        return False


def _release_memory() -> None:
    """Give the memory a person-level (or memory-heavy) job freed back to the system.

    A worker lives for the whole run: without this, the heap a fit on a million rows
    freed stays in the process (glibc's arenas, pyarrow's mimalloc pool), so the worker
    holds ~0.5 GiB more through every later job, e.g. beside another worker's DML fit
    (1.5 million persons: 0.86 against 0.33 GiB after six person-level jobs in a row).
    Costs a few milliseconds (no ``gc.collect()``: 0.2 s with the fit modules
    imported, and it freed nothing more when measured).
    """
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_TRIM: list[Any] = []


def _malloc_trim() -> Any:
    """Return glibc's ``malloc_trim`` (None elsewhere: other C libraries return memory)."""
    if not _TRIM:
        import ctypes
        import ctypes.util

        found = None
        if sys.platform.startswith("linux"):
            try:
                found = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            except (OSError, AttributeError):
                found = None
        _TRIM.append(found)
    return _TRIM[0]


#: A file to which each fit job appends a JSON line when it starts and ends (process
#: id, time, analysis id, resident memory): set by benchmarks to see which job each
#: process runs when the memory of a run peaks.
TRACE_ENV = "EVALKIT_TRACE_FITS"


def _trace(event: str, job: _FitJob) -> None:
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = -1
    line = {"pid": os.getpid(), "t": time.time(), "event": event, "job": job.name, "rss": rss}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def _for_report(result: Result) -> Result:
    """Return the result without what only further computations on it use.

    A study writes tables and figures from each result, and holds every result until
    the report is written; per-observation scores and a fitted model (a DoubleML object
    with its data and predictions, 300 MB for a million persons) would travel back from
    each worker and stay. Those are the private fields without a value by default
    (``_scores``, and the hidden ones of subclasses, e.g. ``_model``); estimates,
    uncertainty, info and extras stay.
    """
    import dataclasses

    if not isinstance(result, Result) or not dataclasses.is_dataclass(result):
        return result
    drop = {
        f.name: None
        for f in dataclasses.fields(result)
        if f.init
        and f.name.startswith("_")
        and f.default is None
        and (f.name == "_scores" or not f.repr)
        and getattr(result, f.name) is not None
    }
    return dataclasses.replace(result, **drop) if drop else result


def _memory_heavy(job: _FitJob) -> bool:
    """Whether a job fits person-level rows with an estimator that copies them."""
    return job.rows is not None and _heavy_estimator(job.estimator)


def _fit_all(
    study: Study,
    source: DataSource,
    cells: _Cells,
    shared: _SharedRows,
    runner: parallel.Backend,
    shown: RunProgress,
    timings: dict[str, Any],
    ahead: FiguresAhead,
    policy: DisclosurePolicy,
) -> tuple[list[Fitted], list[dict[str, Any]]]:
    """Materialise and fit every analysis, streaming the jobs to the backend.

    Jobs are built one by one as the backend takes them (at most a few per worker in
    flight), so this process never holds every analysis' data at once; person-level
    rows travel as a file reference and are read by the worker that fits them. Each
    analysis' entry of results.json (with its truths) is made and protected
    (:func:`_protected`) as its fit comes back, while later fits run, and handed to
    ``ahead``, which starts the report's figures whose analyses are all fitted. Returns
    the fitted analyses and their protected entries. Adds the CPU seconds of the fits
    by family of analyses, and the seconds spent on entries, to ``timings``.
    """
    cpu: dict[str, float] = {}
    made: list[tuple[dict[str, Any], list[str]]] = []
    cell_policy = policy.for_cells()

    def jobs() -> Iterator[_FitJob]:
        for spec in study.analyses:
            job, data, before = _materialise(study, source, spec, cells, shared)
            made.append((data, before))
            yield job
        ahead.materialised(cells.by_group(), source.simulated is not None)

    fitted: list[Fitted] = []
    entries: list[dict[str, Any]] = []
    entry_seconds = 0.0
    results = runner.imap(_run_fit, jobs(), window=_WINDOW * runner.jobs, heavy=_memory_heavy)
    with shown.analyses() as step:
        for i, spec in enumerate(study.analyses):
            with step(spec.id):
                result, after, error, info, seconds = next(results)
            cpu[spec.family] = cpu.get(spec.family, 0.0) + seconds
            data, before = made[i]
            made[i] = ({}, [])
            notes = list(dict.fromkeys(before + after))
            fitted.append(Fitted(spec, result, {**data, **info}, notes, error))
            start = time.perf_counter()
            pol = cell_policy if spec.fit_on == "cells" else policy
            entries.append(_protected(_entry(study, source, fitted[-1]), pol))
            ahead.fitted(fitted[-1], entries[-1])
            entry_seconds += time.perf_counter() - start
    # let the stream end on its own: one dropped before its end is closed, which
    # cancels everything queued on the workers (the report's figures) and drops them
    # (that also runs jobs() to its end, which tells ``ahead`` the cells are final)
    for _ in results:  # pragma: no cover - one result per analysis, all taken above
        pass
    timings["fit_cpu_seconds_by_family"] = {k: round(v, 2) for k, v in cpu.items()}
    timings["entries_seconds"] = round(entry_seconds, 2)
    return fitted, entries


def _entry(study: Study, source: DataSource, f: Fitted) -> dict[str, Any]:
    spec = f.spec
    rows: list[dict[str, Any]] = []
    if f.result is not None:
        rows = [jsonable(r) for r in f.result.tidy().to_dict(orient="records")]
        lookup = truth_lookup(study, source.table(spec.table).simulated, spec)
        if lookup is not None:
            for r, value in zip(rows, lookup(rows), strict=True):
                r["truth"] = jsonable(value)
    return {
        "id": spec.id,
        "family": spec.family,
        "title": spec.title,
        "estimator": spec.estimator,
        "labels": jsonable(dict(spec.labels)),
        "outcome": spec.outcome,
        "group": spec.group,
        "where": spec.where,
        "split": _split_entry(spec.split),
        "by": spec.by,
        "options": jsonable(dict(spec.kwargs)),
        "inference": f.result.inference.to_dict() if f.result is not None else None,
        "level": spec.level,
        "seed": spec.seed,
        "tidy": rows,
        "info": jsonable(dict(f.result.info)) if f.result is not None else {},
        "data": f.data,
        "warnings": f.warnings,
        "error": f.error,
    }


def _split_entry(split: SplitSpec | None) -> dict[str, Any] | None:
    if split is None:
        return None
    return {"by": split.by, "column": split.column, "condition": split.condition}


# --------------------------------------------------------------------------- the gate
def _gate(
    envelope: Mapping[str, Any],
    sections: Iterable[tuple[str, Any, DisclosurePolicy | list[DisclosurePolicy]]],
    policy: DisclosurePolicy,
) -> dict[str, Any]:
    """Make outputs safe in one place: protect, audit, and assemble.

    ``sections`` are ``(key, value, policy)``: parts of the payload with their own policy
    (an analysis on cells exempts counts of cells and units). A list value is protected
    element by element with that policy, or with the policy at the same position when
    ``policy`` is a list (analyses on cells and on rows side by side).
    """
    safe, _ = protect(dict(envelope), policy)
    if audit(safe, policy):  # pragma: no cover - protect guarantees this
        raise RuntimeError("disclosure audit failed on the results envelope")
    for key, value, pol in sections:
        items = value if isinstance(value, list) else [value]
        policies = pol if isinstance(pol, list) else [pol] * len(items)
        done = [_protected(i, p) for i, p in zip(items, policies, strict=True)]
        safe[key] = done if isinstance(value, list) else done[0]
    return safe


def _protected(item: Any, policy: DisclosurePolicy) -> Any:
    """Return one part of the output protected and audited (see :func:`_gate`)."""
    safe, _ = protect(item, policy)
    problems = audit(safe, policy)
    if problems:  # pragma: no cover - protect guarantees this
        raise RuntimeError(f"disclosure audit failed: {problems}")
    return safe


def _cells_summary(study: Study, cells: _Cells) -> list[dict[str, Any]]:
    if study.collapse is None:
        return []
    out = []
    count = study.collapse.count
    for key, table in cells.tables.items():
        if table.empty:
            continue
        kept = ~table["suppressed"].to_numpy(dtype=bool)
        split = cells.splits[key]
        out.append(
            {
                "group": cells.groups[key],
                "where": key[0],
                "split_by": split.by if split is not None else None,
                "cell_keys": list(key[1]),
                "n_cells": int(kept.sum()),
                "n_suppressed_cells": int((~kept).sum()),
                "n_microdata_rows": int(table.loc[kept, count].sum()),
            }
        )
    return out


# --------------------------------------------------------------------------- run
def run_study(
    path: str | Path | Design,
    out: str | Path | None = None,
    *,
    root: str | Path | None = None,
    progress: bool = True,
    data_override: Any = None,
    force: bool = False,
    jobs: int | None = None,
    scheduler: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """Run every analysis of a study and write results, report and manifest.

    Parameters
    ----------
    path
        The study folder (or its study.toml), or a
        :class:`~evalkit.study.design.Design` built in Python.
    out
        Output folder; ``<study>/out`` when None. Created if needed.
    root
        For a design: the folder its file paths are relative to (and where ``out/``
        goes by default); the working directory when None.
    progress
        Show progress on standard error: a bar over the analyses in a terminal, one
        line per step otherwise (see :class:`~evalkit.study.progress.RunProgress`).
    data_override
        Run on these data instead of the study's [data]: a DataFrame, a
        :class:`~evalkit.simulate.SimulatedData` or the path of a CSV/Parquet file
        with the same columns.
    force
        Replace an earlier run in ``out``; without it a folder that holds files is
        refused. The run is written to a temporary folder beside ``out`` and moved into
        place only when complete, so a failed run leaves the earlier one intact.
    jobs, scheduler
        Fit the analyses on ``jobs`` local processes or a Dask cluster (see
        :mod:`evalkit.parallel`); the data are read and collapsed first, in this process.
        Results are identical for any backend: each analysis has its own seed.
    overrides
        Design values to override, by dotted key (``{"data.options.n_persons": 1500000}``,
        ``{"analysis.twfe.inference": "cluster"}``); recorded in the manifest.

    Returns
    -------
    RunOutcome
        The output folder, the results (as written to results.json), the files
        written, the manifest and any analysis errors.

    Notes
    -----
    Files written: ``results.json`` (``{"analyses": [{"id", "estimator", "tidy", ...}],
    ...}``), ``report.md`` and ``report.html`` (with ``figures/*.png``; the HTML embeds
    them), and ``manifest.json`` (package versions, data and design SHA-256, seeds, and
    the SHA-256 of every output). No count below the study's ``min_cell_size`` is
    written anywhere.

    Examples
    --------
    >>> import tempfile, pathlib, textwrap
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "study.toml").write_text(textwrap.dedent('''
    ...     [study]
    ...     name = "tiny"
    ...     seed = 7
    ...     [data]
    ...     simulator = "bergen_rates"
    ...     options = {n_persons = 3000, start = "2019-01", end = "2020-12"}
    ...     [roles]
    ...     unit = "city"
    ...     time = "month"
    ...     treatment = "treated"
    ...     cluster = "city"
    ...     [collapse]
    ...     by = ["city", "month", "treated"]
    ...     measures = {recipient = "mean"}
    ...     [[analysis]]
    ...     id = "twfe"
    ...     estimator = "did.TWFE"
    ...     options = {outcome = "recipient"}
    ...     inference = "cr2"
    ...     '''))
    >>> run = run_study(folder, progress=False)
    >>> run.results["analyses"][0]["tidy"][0]["term"]
    'treated'
    >>> sorted(p.name for p in run.files if p.suffix != ".png")
    ['manifest.json', 'report.html', 'report.md', 'results.json']
    """
    start = time.perf_counter()
    study = load_study(path, check_data=data_override is None, overrides=overrides, root=root)
    load_seconds = round(time.perf_counter() - start, 2)
    if data_override is not None:
        check_columns(study, study.source, data_override)
    final_dir = Path(out).expanduser() if out is not None else study.root / "out"
    final_dir = final_dir.resolve()
    _check_out_dir(final_dir, force)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", dir=final_dir.parent))
    policy = DisclosurePolicy(study.min_cell_size)
    cell_policy = policy.for_cells()
    runner = parallel.backend(jobs=jobs, scheduler=scheduler)
    runner.warm(_fit_modules(study), for_imap=True)  # workers start while the data are read
    ahead = FiguresAhead(study, runner, out_dir / "figures")

    try:
        shown = RunProgress(study.name, total=len(study.analyses), enabled=progress)
        timings: dict[str, Any] = {"load_study_seconds": load_seconds}
        step_start = time.perf_counter()
        with shown.stage("opening the data"):
            source = open_source(study, data_override, jobs=runner.jobs)
        timings["open_data_seconds"] = round(time.perf_counter() - step_start, 2)
        peaks = timings.setdefault("parent_peak_rss_mib", {})
        peaks["open_data"] = _peak_rss_mib()
        try:
            step_start = time.perf_counter()
            with shown.stage("checking the data"):
                missing = validate_data(study, source)
            timings["check_data_seconds"] = round(time.perf_counter() - step_start, 2)
            peaks["check_data"] = _peak_rss_mib()
            source.details["missing_values"] = _masked(missing, study.min_cell_size)
            for table in source.details.get("tables", {}).values():
                table["missing_values"] = _masked(table["missing_values"], study.min_cell_size)
            cells = _Cells(study, source)
            shared = _SharedRows(study, source)
            fit_start = time.perf_counter()
            try:
                fitted, entries = _fit_all(
                    study, source, cells, shared, runner, shown, timings, ahead, policy
                )
            finally:
                shared.close()
            timings["analyses_seconds"] = round(time.perf_counter() - fit_start, 2)
            timings["collapse_seconds"] = round(cells.seconds, 2)
            timings["shared_rows_seconds"] = round(shared.seconds, 2)
            peaks["analyses"] = _peak_rss_mib()
            summary = _cells_summary(study, cells)
            by_group = cells.by_group()
        finally:
            step_start = time.perf_counter()
            source.close()
            timings["close_data_seconds"] = round(time.perf_counter() - step_start, 2)
        outcome = _write_outputs(
            study,
            source,
            fitted,
            entries,
            summary,
            by_group,
            out_dir,
            final_dir,
            policy,
            cell_policy,
            shown,
            start,
            runner,
            overrides,
            timings,
            ahead,
        )
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    _replace(out_dir, final_dir)
    return outcome


def _peak_rss_mib() -> float | None:
    """Peak resident memory of this process so far, in MiB (None where unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _masked(counts: Mapping[str, int], min_cell_size: int) -> dict[str, int | str]:
    """Missing-value counts by column, with counts below the minimum cell size masked."""
    return {c: (n if n >= min_cell_size else f"<{min_cell_size}") for c, n in counts.items()}


def _check_out_dir(final_dir: Path, force: bool) -> None:
    """Refuse to overwrite an earlier run's folder unless ``force``."""
    if final_dir.exists() and not final_dir.is_dir():
        raise StudyError(
            f"the output folder {str(final_dir)!r} is a file",
            hint="choose another --out",
            column="out",
        )
    if final_dir.is_dir() and any(final_dir.iterdir()) and not force:
        raise StudyError(
            f"the output folder {str(final_dir)!r} already holds an earlier run",
            hint="pass --force (force=True) to replace it, or --out another folder",
            column="out",
        )


def _replace(new: Path, final_dir: Path) -> None:
    """Move the finished run into place: the old folder goes only once the new one is whole."""
    old = None
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old-{os.getpid()}")
        final_dir.rename(old)
    new.rename(final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_outputs(
    study: Study,
    source: DataSource,
    fitted: list[Fitted],
    entries: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    by_group: dict[str, pd.DataFrame],
    out_dir: Path,
    final_dir: Path,
    policy: DisclosurePolicy,
    cell_policy: DisclosurePolicy,
    shown: RunProgress,
    start: float,
    runner: parallel.Backend,
    overrides: Mapping[str, Any] | None,
    timings: Mapping[str, Any] | None = None,
    ahead: FiguresAhead | None = None,
) -> RunOutcome:

    sim = source.simulated
    envelope = {
        "evalkit_results": RESULTS_FORMAT,
        "evalkit_version": _versions()["evalkit"],
        "study": {"name": study.name, "title": study.title, "description": study.description},
        "design_sha256": study.design_sha256,
        "data": {
            "kind": source.kind,
            "simulated": sim is not None,
            "description": sim.description if sim is not None else None,
            "sha256": source.sha256,
            **jsonable(source.details),
        },
        "seed": study.seed,
        "min_cell_size": study.min_cell_size,
    }
    # the entries were protected one by one as their fits came back (_fit_all)
    results = _gate(envelope, [("cells", summary, cell_policy)], policy)
    results["analyses"] = entries

    files: list[Path] = []
    results_path = out_dir / "results.json"
    _write_json(results_path, results)
    files.append(results_path)

    from evalkit.study.report import write_report

    report_start = time.perf_counter()
    with shown.stage("writing the report"):
        drawn = ahead.finish() if ahead is not None and study.figures else None
        files.extend(write_report(study, results, fitted, by_group, out_dir, drawn))
    report_seconds = round(time.perf_counter() - report_start, 2)
    figure_cpu = round(ahead.cpu_seconds, 2) if ahead is not None else None
    peaks = {**(timings or {}).get("parent_peak_rss_mib", {}), "report": _peak_rss_mib()}

    manifest = {
        "evalkit_manifest": 1,
        "study": study.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": Path(sys.executable).name,
        "packages": _versions(),
        "design": {"file": study.file.name, "sha256": study.design_sha256},
        "data": {
            "kind": source.kind,
            "sha256": source.sha256,
            "hash_method": source.hash_method,
            **jsonable(source.details),
        },
        "seeds": {
            "study": study.seed,
            "data": sim.seed if sim is not None else None,
            "analyses": {s.id: s.seed for s in study.analyses},
        },
        "outputs": {_rel(p, out_dir): _sha256(p) for p in files},
        "elapsed_seconds": round(time.perf_counter() - start, 3),
    }
    manifest["backend"] = runner.describe()
    manifest["overrides"] = jsonable(dict(overrides or {}))
    # where the time went (wall seconds in this process; the fits' CPU seconds wherever
    # they ran): opening (simulating) the data, collapsing cells, the shared passes over
    # person-level rows, the analyses (materialising and fitting), the report; and this
    # process' peak memory after each step
    manifest["timings"] = jsonable(
        {
            **(timings or {}),
            "report_seconds": report_seconds,
            "figures_cpu_seconds": figure_cpu,
            "parent_peak_rss_mib": peaks,
        }
    )
    manifest = _gate(manifest, [], policy)
    manifest_path = out_dir / "manifest.json"
    _write_json(manifest_path, manifest)
    files.append(manifest_path)
    errors = tuple(f"{f.spec.id}: {f.error}" for f in fitted if f.error)
    shown.finish()
    return RunOutcome(
        out_dir=final_dir,
        results=results,
        files=tuple(final_dir / p.relative_to(out_dir) for p in files),
        manifest=manifest,
        errors=errors,
        seconds=time.perf_counter() - start,
    )


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
