"""Pool the results of several runs of one study (one run per country) by meta-analysis.

Each run folder holds the ``results.json`` that ``evalkit run`` wrote after its disclosure
gate: aggregates only. :func:`pool_runs` reads nothing else, so pooling never needs
microdata to leave a country. Runs must come from the same design (the same
``design_sha256``: the same study.toml, each country running it on its own extract with
``evalkit run STUDY --data EXTRACT``); runs of different designs are refused unless
``allow_different=True``, and two runs on the same data (the same ``data.sha256``) are
always refused, since pooling them would count one country twice.

Every estimate (an analysis id, a term and its keys such as ``subgroup`` or
``event_time``) found with a standard error in two or more runs is pooled with
:func:`~evalkit.pool.meta.meta_analysis`. Estimates without a standard error (p-values
and intervals by test inversion, such as randomization inference) cannot be pooled by
inverse variance and are listed with the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from evalkit.errors import StudyError
from evalkit.pool.meta import TAU2_METHODS, MetaAnalysis, meta_analysis

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["KEYS", "PooledEstimate", "PooledRuns", "Run", "load_run", "pool_runs"]

#: Key columns that identify an estimate within an analysis (besides ``term``).
KEYS: tuple[str, ...] = ("subgroup", "group", "cohort", "time", "event_time")
#: Keys that make an estimate one of many (no forest plot of its own).
_DETAIL_KEYS = ("cohort", "time", "event_time")
POOLED_FORMAT = 1


@dataclass(frozen=True)
class Run:
    """One run folder: its label and what pooling needs from its results.json."""

    label: str
    path: Path
    study: str | None
    design_sha256: str | None
    data_sha256: str | None
    results_sha256: str
    simulated: bool
    analyses: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe description (no path outside the run's own name)."""
        return {
            "label": self.label,
            "folder": self.path.name,
            "study": self.study,
            "design_sha256": self.design_sha256,
            "data_sha256": self.data_sha256,
            "results_sha256": self.results_sha256,
            "simulated": self.simulated,
        }


@dataclass(frozen=True)
class PooledEstimate:
    """One estimate pooled across runs."""

    analysis: str
    estimator: str
    term: str
    keys: dict[str, Any]
    labels: tuple[str, ...]
    estimates: tuple[float, ...]
    std_errors: tuple[float, ...]
    truths: tuple[float | None, ...]
    meta: MetaAnalysis

    @property
    def name(self) -> str:
        """``analysis: term (key=value, ...)``, for tables and figure titles."""
        keys = ", ".join(f"{k}={v}" for k, v in self.keys.items())
        return f"{self.analysis}: {self.term}" + (f" ({keys})" if keys else "")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary."""
        return {
            "analysis": self.analysis,
            "estimator": self.estimator,
            "term": self.term,
            **self.keys,
            "runs": [
                {"run": lab, "estimate": e, "std_error": s, "truth": t}
                for lab, e, s, t in zip(
                    self.labels, self.estimates, self.std_errors, self.truths, strict=True
                )
            ],
            **self.meta.to_dict(),
        }


@dataclass(frozen=True)
class PooledRuns:
    """The pooled estimates of several runs, with what could not be pooled and why."""

    runs: tuple[Run, ...]
    estimates: tuple[PooledEstimate, ...]
    skipped: tuple[dict[str, Any], ...]
    level: float
    tau2: str
    knapp_hartung: bool
    designs_differ: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def table(self) -> pd.DataFrame:
        """One row per pooled estimate: fixed and random effects (``tau2`` method), Q, I^2."""
        rows = []
        for p in self.estimates:
            m = p.meta
            r = m.random[self.tau2]
            rows.append(
                {
                    "analysis": p.analysis,
                    "term": p.term,
                    **{k: p.keys.get(k) for k in KEYS if any(k in q.keys for q in self.estimates)},
                    "k": m.k,
                    "fixed": m.fixed.estimate,
                    "fixed_se": m.fixed.std_error,
                    "random": r.estimate,
                    "random_se": r.std_error,
                    "random_low": r.conf_low,
                    "random_high": r.conf_high,
                    "tau2_dl": m.random["dl"].tau2,
                    "tau2_reml": m.random["reml"].tau2,
                    "tau2_pm": m.random["pm"].tau2,
                    "q": m.q,
                    "q_p_value": m.q_p_value,
                    "i2": m.i2,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe content of pooled.json."""
        from evalkit.core.result import jsonable

        return jsonable(
            {
                "evalkit_pooled": POOLED_FORMAT,
                "level": self.level,
                "tau2": self.tau2,
                "knapp_hartung": self.knapp_hartung,
                "designs_differ": self.designs_differ,
                "runs": [r.to_dict() for r in self.runs],
                "estimates": [p.to_dict() for p in self.estimates],
                "not_pooled": list(self.skipped),
                "notes": list(self.notes),
            }
        )

    def markdown(self, digits: int = 4) -> str:
        """Return a Markdown summary: the runs, the pooled table and what was not pooled."""
        lines = [
            "# Pooled results",
            "",
            f"{len(self.runs)} runs: "
            + ", ".join(f"`{r.label}` (design {str(r.design_sha256)[:12]})" for r in self.runs)
            + ".",
            "",
            f"Fixed effect: inverse-variance weights. Random effects: tau^2 by "
            f"{self.tau2.upper()} (DL, REML and Paule-Mandel all in pooled.json); "
            + (
                "Hartung-Knapp-Sidik-Jonkman variance, t(k-1)."
                if self.knapp_hartung
                else "normal-reference Wald intervals."
            )
            + f" Level {self.level:g}.",
            "",
        ]
        lines.extend(f"> {n}" for n in self.notes)
        if self.notes:
            lines.append("")
        table = self.table()
        if not table.empty:
            lines.append(_markdown_table(table, digits))
            lines.append("")
        if self.skipped:
            lines.append("## Not pooled")
            lines.append("")
            lines.extend(
                f"- {s['analysis']}: {s['term']} {s.get('keys') or ''}: {s['reason']}"
                for s in self.skipped
            )
            lines.append("")
        return "\n".join(lines)

    def write(self, out: str | Path, *, force: bool = False, figures: bool = True) -> list[Path]:
        """Write pooled.json, pooled.md and a forest plot per headline estimate to ``out``."""
        out_dir = Path(out).expanduser()
        if out_dir.exists() and any(out_dir.iterdir()) and not force:
            raise StudyError(
                f"the output folder {str(out_dir)!r} is not empty",
                hint="pass --force (force=True) to replace its files, or --out another folder",
                column="out",
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        # an earlier pool's own files go, so no stale forest plot is left beside new ones
        for old in [out_dir / "pooled.json", out_dir / "pooled.md"]:
            old.unlink(missing_ok=True)
        for old in (out_dir / "figures").glob("forest_*.png"):
            old.unlink()
        files = []
        path = out_dir / "pooled.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        files.append(path)
        md = out_dir / "pooled.md"
        text = self.markdown()
        if figures:
            plots = self._figures(out_dir)
            files.extend(plots)
            text += "\n" + "\n".join(
                f"![{p.stem}](figures/{p.name})" for p in plots if p.suffix == ".png"
            )
        md.write_text(text + "\n", encoding="utf-8")
        files.append(md)
        return files

    def _figures(self, out_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from evalkit.pool.forest import forest_plot

        fig_dir = out_dir / "figures"
        paths = []
        for p in self.estimates:
            if any(k in p.keys for k in _DETAIL_KEYS):
                continue
            fig_dir.mkdir(exist_ok=True)
            ax = forest_plot(p, tau2=self.tau2)
            path = fig_dir / _figure_name(p.analysis, p.term, p.keys)
            figure = cast("Figure", ax.figure)
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            paths.append(path)
        return paths


def _figure_name(analysis: str, term: str, keys: Mapping[str, Any]) -> str:
    """File name of a forest plot: analysis, term and keys, every other character ``_``.

    Examples
    --------
    >>> _figure_name("pathways_om", "share", {"type": "T1 measures/work"})
    'forest_pathways_om_share_T1_measures_work.png'
    """
    name = "_".join([analysis, term, *(str(v) for v in keys.values())])
    return "forest_" + "".join(c if c.isalnum() else "_" for c in name) + ".png"


def _markdown_table(table: pd.DataFrame, digits: int) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return (
                "" if math.isnan(v) else f"{v:.{digits}g}" if abs(v) < 1e-3 else f"{v:.{digits}f}"
            )
        return "" if v is None else str(v)

    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Read one run folder (or its results.json) as a :class:`Run`.

    Raises
    ------
    StudyError
        If the folder has no results.json or it is not an evalkit run's results.
    """
    p = Path(path).expanduser()
    file = p / "results.json" if p.is_dir() else p
    if not file.is_file():
        raise StudyError(
            f"{str(p)!r} holds no results.json",
            hint="pass the output folders of `evalkit run` (one per country)",
            column="run_dirs",
        )
    raw = file.read_bytes()
    try:
        results = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StudyError(f"{str(file)!r} is not valid JSON: {exc}", column="run_dirs") from None
    if not isinstance(results, dict) or "analyses" not in results:
        raise StudyError(
            f"{str(file)!r} is not the results.json of an evalkit run (no 'analyses')",
            hint="pass the output folders of `evalkit run`",
            column="run_dirs",
        )
    folder = file.parent
    data = results.get("data") or {}
    study = results.get("study") or {}
    return Run(
        label=label or folder.name,
        path=folder,
        study=study.get("name") if isinstance(study, dict) else None,
        design_sha256=results.get("design_sha256"),
        data_sha256=data.get("sha256") if isinstance(data, dict) else None,
        results_sha256=hashlib.sha256(raw).hexdigest(),
        simulated=bool(data.get("simulated")) if isinstance(data, dict) else False,
        analyses=tuple(a for a in results["analyses"] if isinstance(a, dict)),
    )


def _check_runs(runs: Sequence[Run], allow_different: bool) -> tuple[bool, list[str]]:
    labels = [r.label for r in runs]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise StudyError(
            f"two runs have the label {dup[0]!r}",
            hint="give each run its own label (--label NO --label SE ...) or folder name",
            column="label",
        )
    by_data: dict[str, str] = {}
    for r in runs:
        if r.data_sha256 and r.data_sha256 in by_data:
            raise StudyError(
                f"runs {by_data[r.data_sha256]!r} and {r.label!r} used the same data "
                f"(data sha256 {r.data_sha256[:12]}): pooling them would count one extract twice",
                hint="pool one run per country, each on its own extract",
                column="run_dirs",
            )
        if r.data_sha256:
            by_data[r.data_sha256] = r.label
    designs = {r.design_sha256 for r in runs}
    notes = []
    if len(designs) > 1:
        listing = ", ".join(f"{r.label}: {str(r.design_sha256)[:12]}" for r in runs)
        if not allow_different:
            raise StudyError(
                f"the runs come from different designs (design sha256 {listing}); only the "
                "same design's estimates can be pooled",
                hint="run the same study.toml in every country (evalkit run STUDY --data "
                "EXTRACT --out RUN), or pass --allow-different (allow_different=True) to pool "
                "the analyses they share anyway (recorded in pooled.json)",
                column="run_dirs",
            )
        notes.append(
            f"The runs come from different designs ({listing}); they were pooled because "
            "--allow-different was given: check that the pooled analyses mean the same thing."
        )
    return len(designs) > 1, notes


def _rows(run: Run) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Map ``(analysis, term, keys...)`` to the run's tidy row (with the estimator)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in run.analyses:
        if entry.get("error") or not entry.get("tidy"):
            continue
        for row in entry["tidy"]:
            keys = tuple((k, row[k]) for k in KEYS if row.get(k) is not None)
            out[(entry.get("id"), row.get("term"), keys)] = {
                **row,
                "_estimator": entry.get("estimator"),
                "_level": entry.get("level"),
            }
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pool_runs(
    run_dirs: Sequence[str | Path],
    *,
    labels: Sequence[str] | None = None,
    level: float = 0.95,
    tau2: str = "reml",
    knapp_hartung: bool = False,
    allow_different: bool = False,
) -> PooledRuns:
    """Pool the estimates that several runs of one study share.

    Parameters
    ----------
    run_dirs
        Output folders of ``evalkit run`` (one per country), or their results.json files.
    labels
        A label per run (default: the folder names).
    level
        Confidence level of the pooled intervals.
    tau2
        The random-effects estimate reported in the table: ``"reml"`` (default, as
        metafor), ``"dl"`` or ``"pm"``; all three are computed and written.
    knapp_hartung
        Hartung-Knapp-Sidik-Jonkman intervals (t with k-1 degrees of freedom) for the
        random-effects estimates; advisable with few countries.
    allow_different
        Pool runs whose design hashes differ (the estimates they share by analysis id,
        term and keys); otherwise such runs are refused.

    Returns
    -------
    PooledRuns

    Raises
    ------
    StudyError
        For fewer than two runs, a folder without results.json, runs of different designs
        (unless ``allow_different``), two runs on the same data, or repeated labels.
    """
    if tau2 not in TAU2_METHODS:
        raise StudyError(
            f"tau2 must be one of {', '.join(TAU2_METHODS)}, got {tau2!r}", column="tau2"
        )
    if len(run_dirs) < 2:
        raise StudyError(
            f"pooling needs two or more runs, got {len(run_dirs)}",
            hint="evalkit pool out/norway out/sweden out/denmark",
            column="run_dirs",
        )
    if labels is not None and len(labels) != len(run_dirs):
        raise StudyError(f"{len(labels)} labels for {len(run_dirs)} runs", column="label")
    runs = [load_run(d, None if labels is None else labels[i]) for i, d in enumerate(run_dirs)]
    differ, notes = _check_runs(runs, allow_different)
    tables = [_rows(r) for r in runs]
    order: list[tuple[Any, ...]] = []
    for t in tables:
        order.extend(k for k in t if k not in order)
    pooled: list[PooledEstimate] = []
    skipped: list[dict[str, Any]] = []
    for key in order:
        analysis, term, keys = key
        present = [(r, t[key]) for r, t in zip(runs, tables, strict=True) if key in t]
        where = {"analysis": analysis, "term": term, "keys": dict(keys) or None}
        estimators = {row["_estimator"] for _, row in present}
        if len(present) < 2:
            skipped.append({**where, "reason": f"only in run {present[0][0].label!r}"})
            continue
        if len(estimators) > 1:
            skipped.append({**where, "reason": f"different estimators: {sorted(estimators)}"})
            continue
        no_se = [r.label for r, row in present if not _finite(row.get("std_error"))]
        no_est = [r.label for r, row in present if not _finite(row.get("estimate"))]
        if no_est or no_se:
            why = (
                f"no estimate in run(s) {no_est} (suppressed or not estimable)"
                if no_est
                else f"no standard error in run(s) {no_se} (inference by test inversion or "
                "none): inverse-variance pooling needs standard errors"
            )
            skipped.append({**where, "reason": why})
            continue
        if any(row["std_error"] <= 0 for _, row in present):
            skipped.append({**where, "reason": "a standard error of zero"})
            continue
        est = tuple(float(row["estimate"]) for _, row in present)
        se = tuple(float(row["std_error"]) for _, row in present)
        pooled.append(
            PooledEstimate(
                analysis=str(analysis),
                estimator=str(next(iter(estimators))),
                term=str(term),
                keys=dict(keys),
                labels=tuple(r.label for r, _ in present),
                estimates=est,
                std_errors=se,
                truths=tuple(
                    float(row["truth"]) if _finite(row.get("truth")) else None for _, row in present
                ),
                meta=meta_analysis(est, se, level=level, knapp_hartung=knapp_hartung),
            )
        )
    if not pooled:
        notes.append("No estimate is shared by two or more runs with standard errors.")
    return PooledRuns(
        runs=tuple(runs),
        estimates=tuple(pooled),
        skipped=tuple(skipped),
        level=level,
        tau2=tau2,
        knapp_hartung=knapp_hartung,
        designs_differ=differ,
        notes=tuple(notes),
    )
