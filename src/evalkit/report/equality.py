"""The report's section on equality tests across subgroups (analyses with ``by``).

An analysis with ``by = "<column>"`` fits each subgroup and tests that the effect is the
same in all of them (``info["equality_tests"]``): a Wald test from the subgroups' joint
influence-function covariance (chi-squared, ``df`` = subgroups - 1), or for a
one-treated-unit synthetic control a placebo test that ranks the spread of the treated
unit's subgroup gaps among the donors'. The section lists the test of each headline term
(rows without a period); tests by period are counted, not listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["equality_blocks"]


def _p(p: Any) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _num(x: Any) -> str:
    return "" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def equality_blocks(entries: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Return report blocks with the equality tests of every ``by`` analysis (or none).

    Examples
    --------
    >>> e = {"id": "sc.x", "by": "household", "level": 0.95, "info": {"groups": ["a", "b"],
    ...      "equality_tests": [{"term": "att", "statistic": 2.0, "df": None,
    ...      "p_value": 0.1, "method": "placebo"}, {"term": "effect", "time": 3,
    ...      "statistic": 1.0, "df": None, "p_value": 0.02, "method": "placebo"}]}}
    >>> blocks = equality_blocks([e])
    >>> blocks[0]
    ('h2', 'Equality tests across groups')
    >>> blocks[-1][2]
    [['sc.x', 'household', 'a, b', 'att', '2', '', '0.100', 'placebo', '1 of 1']]
    """
    rows = []
    for e in entries:
        info = e.get("info") or {}
        tests = info.get("equality_tests") or []
        if not e.get("by") or not tests or e.get("error"):
            continue
        alpha = 1 - float(e.get("level", 0.95))
        by_period = [t for t in tests if t.get("time") is not None]
        rejected = sum(1 for t in by_period if (t.get("p_value") or 1.0) <= alpha)
        for t in tests:
            if t.get("time") is not None:
                continue
            rows.append(
                [
                    e["id"],
                    str(e["by"]),
                    ", ".join(map(str, info.get("groups") or [])),
                    str(t.get("term")),
                    _num(t.get("statistic")),
                    _num(t.get("df")),
                    _p(t.get("p_value")),
                    str(t.get("method") or "Wald (chi-squared)"),
                    f"{rejected} of {len(by_period)}" if by_period else "",
                ]
            )
    if not rows:
        return []
    head = [
        "Analysis",
        "By",
        "Subgroups",
        "Term",
        "Statistic",
        "df",
        "p-value",
        "Test",
        "Periods with p <= 1 - level",
    ]
    intro = (
        "Each analysis below fits every subgroup of its `by` column and tests that the "
        "effect is the same in all of them. A Wald test (chi-squared with one fewer degrees "
        "of freedom than subgroups) uses the subgroups' joint covariance from their "
        "influence functions, clustered as the analysis is; a synthetic control's placebo "
        "test ranks the spread of the treated unit's subgroup effects among the same "
        "spread in each donor run as a placebo (p-values in steps of one over the runs), "
        "which stays valid with one treated unit. The pairwise differences, with their "
        "intervals, are the `a - b` rows of each analysis above."
    )
    return [("h2", "Equality tests across groups"), ("p", intro), ("table", head, rows)]
