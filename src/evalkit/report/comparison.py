"""The summary table of a study report: every estimator's answer side by side.

One row per outcome and group, one column per analysis family (or family and term when
an analysis reports several effects), each cell the estimate with its interval (or
p-value); a row with its own subgroup (e.g. group effects of one fit) goes to that
group's row, and a family with more than :data:`MAX_TERMS` distinct effects (e.g. a
sensitivity grid) stays in its own table. On simulated data a *Truth* column gives the
true value most columns of the row estimate; a cell whose estimand has another truth
(e.g. a triple difference, a group against the rest) carries its own. Rows with an event
time are left to the event-study figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["MAX_TERMS", "coverage", "effect_rows", "group_of", "summary_table"]

#: A family with more distinct effect terms than this stays out of the summary table.
MAX_TERMS = 3

Fmt = Callable[[Any], str]


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def group_of(entry: Mapping[str, Any]) -> str:
    """Return the group an analysis is about: its ``group`` label, else the split group, else all.

    Examples
    --------
    >>> group_of({"labels": {"split_by": "nw"}, "split": {"by": "nw"}, "group": "all"})
    'nw'
    """
    labels = entry.get("labels") or {}
    if labels.get("group") is not None:
        return str(labels["group"])
    if entry.get("split"):
        return str(entry["split"]["by"])
    return str(entry.get("group") or "all")


def effect_rows(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the headline effects of an analysis: rows without a time or event time.

    Rows by event time are left to the event-study figures and rows by calendar time
    (e.g. a synthetic control's effect in each period) to the path figures; an analysis
    whose rows all have a calendar time keeps them.

    Examples
    --------
    >>> e = {"tidy": [{"term": "att", "estimate": 1.0}, {"term": "effect", "estimate": 2.0,
    ...       "time": 15}, {"term": "ATT(e)", "estimate": 3.0, "event_time": 0}]}
    >>> [r["term"] for r in effect_rows(e)]
    ['att']
    """
    if entry.get("error"):
        return []
    rows = [
        r
        for r in entry.get("tidy") or []
        if r.get("event_time") is None and r.get("estimate") is not None
    ]
    headline = [r for r in rows if r.get("time") is None]
    return headline or rows


def _cell(r: Mapping[str, Any], fmt: Fmt) -> str:
    est = fmt(r.get("estimate"))
    lo, hi = _num(r.get("conf_low")), _num(r.get("conf_high"))
    if lo is not None and hi is not None:
        return f"{est} [{fmt(lo)}, {fmt(hi)}]"
    p = _num(r.get("p_value"))
    if p is not None:
        return f"{est} (p={p:.3f})"
    return est


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def summary_table(
    entries: Sequence[Mapping[str, Any]],
    *,
    fmt: Fmt,
    unit: Callable[[str | None], str],
    simulated: bool,
    within: Callable[[Mapping[str, Any]], bool] = lambda e: False,
) -> tuple[list[str], list[list[str]], list[tuple[str, str]]] | None:
    """Build the side-by-side table: header, rows and a legend of the columns.

    Parameters
    ----------
    entries
        The analyses of ``results.json`` (after the disclosure gate).
    fmt
        Number formatter.
    unit
        Outcome -> unit (shown in its own column).
    simulated
        Add the *Truth* column.
    within
        Says whether an analysis compares a group with the rest of its unit (its
        column is headed ``(group - rest)``).

    Returns
    -------
    tuple or None
        ``(header, rows, legend)`` with legend ``(column, description)``; None when no
        analysis has an effect row.

    Examples
    --------
    >>> e = [{"id": "t.w", "family": "t", "title": "TWFE", "outcome": "w",
    ...       "labels": {"outcome": "w", "group": "all"},
    ...       "tidy": [{"term": "d", "estimate": 0.5, "conf_low": 0.1, "conf_high": 0.9}]}]
    >>> head, rows, legend = summary_table(e, fmt=str, unit=lambda o: "share", simulated=False)
    >>> head, rows
    (['Outcome', 'Unit', 'Group', 't'], [['w', 'share', 'all', '0.5 [0.1, 0.9]']])
    """
    families: dict[str, dict[str, Any]] = {}
    for e in entries:
        by_group = _by_group(e)
        if not by_group:
            continue
        fam = families.setdefault(
            e["family"], {"title": _title(e), "terms": set(), "within": False}
        )
        fam["terms"] |= {str(r["term"]) for rows in by_group.values() for r in rows}
        fam["multi"] = fam.get("multi", False) or any(len(v) > 1 for v in by_group.values())
        fam["within"] |= bool(within(e))
    # families with many effects per analysis (e.g. sensitivity grids) keep to their tables
    families = {k: v for k, v in families.items() if len(v["terms"]) <= MAX_TERMS}
    if not families:
        return None
    columns: list[tuple[str, str | None]] = []
    cells: dict[tuple[str, str], dict[tuple[str, str | None], Mapping[str, Any]]] = {}
    for e in entries:
        info = families.get(e["family"])
        if info is None:
            continue
        for group, rows in _by_group(e).items():
            key = (str(e.get("outcome") or ""), group)
            for r in rows:
                col = (e["family"], str(r["term"]) if info["multi"] else None)
                if col not in columns:
                    columns.append(col)
                cells.setdefault(key, {}).setdefault(col, r)
    names: dict[tuple[str, str | None], str] = {}
    for family, term in columns:
        label = family if term is None else f"{family}: {term}"
        names[(family, term)] = label + (" (group - rest)" if families[family]["within"] else "")
    legend = list(dict.fromkeys((f, str(families[f]["title"])) for f, _ in columns))
    head = ["Outcome", "Unit", "Group", *(names[c] for c in columns)]
    if simulated:
        head.append("Truth")
    body = []
    for (outcome, group), row in cells.items():
        truths = [t for t in (_num(r.get("truth")) for r in row.values()) if t is not None]
        common = _mode(truths)
        line = [outcome, unit(outcome or None), group]
        for col in columns:
            hit = row.get(col)
            if hit is None:
                line.append("")
                continue
            text = _cell(hit, fmt)
            t = _num(hit.get("truth"))
            if simulated and t is not None and common is not None and not _close(t, common):
                text += f"; truth {fmt(t)}"
            line.append(text)
        if simulated:
            line.append(fmt(common) if common is not None else "")
        body.append(line)
    return head, body, legend


def _by_group(entry: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Effect rows by the group they are about: a row's own subgroup, else the analysis'."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in effect_rows(entry):
        own = r.get("subgroup")
        out.setdefault(str(own) if own is not None else group_of(entry), []).append(r)
    return out


def _title(entry: Mapping[str, Any]) -> str:
    title, name = str(entry.get("title") or ""), str(entry.get("estimator") or "")
    return name if title in ("", entry.get("family")) else f"{title} ({name})"


def _mode(values: Sequence[float]) -> float | None:
    """Return the value most of ``values`` agree on (the first such when tied)."""
    best, count = None, 0
    for v in values:
        n = sum(_close(v, w) for w in values)
        if n > count:
            best, count = v, n
    return best


def coverage(entries: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per family, how many effect intervals cover the truth: ``{family: (covered, known)}``.

    Examples
    --------
    >>> e = [{"family": "t", "tidy": [{"estimate": 1.0, "conf_low": 0.0, "conf_high": 2.0,
    ...       "truth": 1.5}, {"estimate": 1.0, "conf_low": 0.0, "conf_high": 2.0, "truth": 3}]}]
    >>> coverage(e)
    {'t': (1, 2)}
    """
    out: dict[str, tuple[int, int]] = {}
    for e in entries:
        for r in effect_rows(e):
            t, lo, hi = _num(r.get("truth")), _num(r.get("conf_low")), _num(r.get("conf_high"))
            if t is None or lo is None or hi is None:
                continue
            c, n = out.get(e["family"], (0, 0))
            out[e["family"]] = (c + int(lo <= t <= hi), n + 1)
    return out
