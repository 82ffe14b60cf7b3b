"""Verify a study: re-run it and compare every estimate with its committed expected.json."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.core.result import KEY_COLUMNS
from evalkit.errors import DesignError
from evalkit.study.config import Study, Tolerance, load_study
from evalkit.study.design import Design

__all__ = ["EXPECTED_FILE", "Mismatch", "VerifyOutcome", "compare", "expected_from", "verify_study"]

EXPECTED_FILE = "expected.json"


@dataclass(frozen=True)
class Mismatch:
    """One difference between a run and expected.json.

    Attributes
    ----------
    analysis
        Analysis id.
    row
        The tidy row (``term=...`` and keys), or ``""`` for a whole analysis.
    column
        The compared column, or ``""`` for a missing or extra analysis or row.
    expected, actual
        The values (None when absent).
    reason
        What is wrong, in words.
    """

    analysis: str
    row: str
    column: str
    expected: Any
    actual: Any
    reason: str

    def __str__(self) -> str:
        where = " / ".join(x for x in (self.analysis, self.row, self.column) if x)
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class VerifyOutcome:
    """The verdict of :func:`verify_study`.

    Attributes
    ----------
    ok
        True when every analysis, row and compared value matches within tolerance.
    report
        A human-readable account (what was compared, every mismatch).
    mismatches
        The differences.
    run
        The run that was compared (a :class:`~evalkit.study.runner.RunOutcome`).
    """

    ok: bool
    report: str
    mismatches: tuple[Mismatch, ...]
    run: Any = None


def _row_key(row: Mapping[str, Any]) -> str:
    parts = [f"term={row.get('term')}"]
    parts += [f"{k}={row[k]}" for k in KEY_COLUMNS if row.get(k) is not None]
    return ", ".join(parts)


def _fmt(x: Any) -> str:
    return repr(x) if not isinstance(x, float) else f"{x:.12g}"


def compare(
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    tolerances: Mapping[str, Tolerance],
) -> list[Mismatch]:
    """Compare the analyses of two results documents.

    Every analysis and every tidy row (matched by ``term`` and key columns) must be in
    both; every column in ``tolerances`` must agree within its tolerance (missing values
    must be missing in both).

    Examples
    --------
    >>> exp = {"analyses": [{"id": "a", "tidy": [{"term": "d", "estimate": 1.0}]}]}
    >>> act = {"analyses": [{"id": "a", "tidy": [{"term": "d", "estimate": 1.1}]}]}
    >>> [str(m) for m in compare(exp, act, {"estimate": Tolerance(1e-6, 1e-8)})]
    ['a / term=d / estimate: expected 1, got 1.1 (difference 0.1 > tolerance 1.01e-06)']
    """
    out: list[Mismatch] = []
    exp = {a["id"]: a for a in expected.get("analyses", [])}
    act = {a["id"]: a for a in actual.get("analyses", [])}
    for aid in exp.keys() - act.keys():
        out.append(Mismatch(aid, "", "", aid, None, "analysis missing from the new run"))
    for aid in act.keys() - exp.keys():
        out.append(Mismatch(aid, "", "", None, aid, "analysis not in expected.json"))
    for aid in [a for a in exp if a in act]:
        e, a = exp[aid], act[aid]
        if a.get("error"):
            out.append(Mismatch(aid, "", "", None, a["error"], f"analysis failed: {a['error']}"))
            continue
        if e.get("estimator") and a.get("estimator") and e["estimator"] != a["estimator"]:
            out.append(
                Mismatch(
                    aid,
                    "",
                    "estimator",
                    e["estimator"],
                    a["estimator"],
                    f"estimator {a['estimator']} instead of {e['estimator']}",
                )
            )
        erows = {_row_key(r): r for r in e.get("tidy", [])}
        arows = {_row_key(r): r for r in a.get("tidy", [])}
        for k in erows.keys() - arows.keys():
            out.append(Mismatch(aid, k, "", k, None, "row missing from the new run"))
        for k in arows.keys() - erows.keys():
            out.append(Mismatch(aid, k, "", None, k, "row not in expected.json"))
        for k in [k for k in erows if k in arows]:
            for column, tol in tolerances.items():
                x, y = erows[k].get(column), arows[k].get(column)
                problem = _differs(x, y, tol)
                if problem:
                    out.append(Mismatch(aid, k, column, x, y, problem))
    return out


def _differs(x: Any, y: Any, tol: Tolerance) -> str | None:
    if x is None and y is None:
        return None
    if x is None or y is None:
        return f"expected {_fmt(x)}, got {_fmt(y)}"
    try:
        fx, fy = float(x), float(y)
    except (TypeError, ValueError):
        return None if x == y else f"expected {_fmt(x)}, got {_fmt(y)}"
    if not (math.isfinite(fx) and math.isfinite(fy)):
        return None if fx == fy else f"expected {_fmt(x)}, got {_fmt(y)}"
    if tol.close(fx, fy):
        return None
    allowed = tol.atol + tol.rtol * abs(fx)
    return (
        f"expected {_fmt(fx)}, got {_fmt(fy)} (difference {abs(fy - fx):.3g} > tolerance "
        f"{allowed:.3g})"
    )


def expected_from(results: Mapping[str, Any], study: Study) -> dict[str, Any]:
    """Return the expected.json document for a run's results."""
    return {
        "evalkit_expected": 1,
        "study": study.name,
        "generated_with": {"evalkit": results.get("evalkit_version")},
        "design_sha256": results.get("design_sha256"),
        "data_sha256": results.get("data", {}).get("sha256"),
        "seed": results.get("seed"),
        "analyses": [
            {"id": a["id"], "estimator": a["estimator"], "tidy": a["tidy"]}
            for a in results.get("analyses", [])
        ],
    }


def read_expected(study: Study) -> dict[str, Any]:
    """Read a study's expected.json, with a helpful error when it is missing or broken."""
    path = study.root / EXPECTED_FILE
    if not path.is_file():
        raise DesignError(
            f"{study.root} has no {EXPECTED_FILE} to verify against",
            hint=f"generate it with `python -m evalkit.study.expected {study.root}` and commit it",
            column=EXPECTED_FILE,
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DesignError(f"{path}: not valid JSON: {exc}", column=EXPECTED_FILE) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("analyses"), list):
        raise DesignError(
            f"{path}: expected an object with an 'analyses' list", column=EXPECTED_FILE
        )
    return doc


def verify_study(
    path: str | Path | Design,
    *,
    root: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    force: bool = False,
    jobs: int | None = None,
    scheduler: str | None = None,
) -> VerifyOutcome:
    """Re-run a study and compare it with its committed expected.json.

    Parameters
    ----------
    path
        The study folder (or its study.toml), or a
        :class:`~evalkit.study.design.Design` built in Python.
    root
        For a design: the folder that holds its expected.json (and that its file paths
        are relative to); the working directory when None.
    out
        Output folder of the re-run, kept; when None the re-run goes to a temporary
        folder that is removed afterwards (the study's own ``out/`` is never touched).
    progress
        Show the re-run's progress on standard error (as :func:`run_study` does).
    force, jobs, scheduler
        As for :func:`run_study`.

    Returns
    -------
    VerifyOutcome
        ``ok`` is False on any missing or extra analysis or row, any failed analysis, or
        any compared value outside its tolerance (``[verify]`` in study.toml; by default
        ``estimate`` and ``std_error`` with rtol 1e-6 and atol 1e-8).

    Examples
    --------
    >>> import tempfile, pathlib, textwrap
    >>> from evalkit.study.expected import write_expected
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "study.toml").write_text(textwrap.dedent('''
    ...     [study]
    ...     seed = 7
    ...     [data]
    ...     simulator = "bergen_rates"
    ...     options = {n_persons = 3000, start = "2019-01", end = "2020-12"}
    ...     [roles]
    ...     unit = "city"
    ...     time = "month"
    ...     treatment = "treated"
    ...     [collapse]
    ...     by = ["city", "month", "treated"]
    ...     measures = {work = "mean"}
    ...     [[analysis]]
    ...     id = "twfe"
    ...     estimator = "did.TWFE"
    ...     options = {outcome = "work"}
    ...     '''))
    >>> _ = write_expected(folder, progress=False)
    >>> verify_study(folder).ok
    True
    """
    study = load_study(path, check_data=True, root=root)
    expected = read_expected(study)
    from evalkit.study.runner import run_study

    what = path if isinstance(path, Design) else study.root
    common: dict[str, Any] = {
        "root": study.root,
        "progress": progress,
        "jobs": jobs,
        "scheduler": scheduler,
    }
    if out is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="evalkit-verify-") as tmp:
            run = run_study(what, out=Path(tmp) / "run", **common)
    else:
        run = run_study(what, out=out, force=force, **common)
    mismatches = compare(expected, run.results, study.tolerances)
    lines = [
        f"verify {study.name}: {len(run.results['analyses'])} analyses compared with "
        f"{study.root / EXPECTED_FILE}"
    ]
    cols = ", ".join(f"{c} (rtol {t.rtol:g}, atol {t.atol:g})" for c, t in study.tolerances.items())
    lines.append(f"  compared: {cols}")
    if expected.get("design_sha256") and expected["design_sha256"] != study.design_sha256:
        lines.append("  note: study.toml has changed since expected.json was generated")
    data_sha = run.results.get("data", {}).get("sha256")
    if expected.get("data_sha256") and expected["data_sha256"] != data_sha:
        lines.append("  note: the data differ from those expected.json was generated from")
    if mismatches:
        lines.append(f"FAILED: {len(mismatches)} mismatch(es)")
        lines += [f"  - {m}" for m in mismatches]
    else:
        n_rows = sum(len(a["tidy"]) for a in run.results["analyses"])
        lines.append(f"OK: {n_rows} estimates match")
    return VerifyOutcome(
        ok=not mismatches, report="\n".join(lines), mismatches=tuple(mismatches), run=run
    )
