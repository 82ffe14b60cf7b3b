"""Report blocks for pre-trend tests and HonestDiD breakdown values of a study's analyses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evalkit.report.render import Block

__all__ = ["pretrend_blocks"]


def _p(value: Any) -> str:
    if value is None:
        return ""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _ratio(value: Any) -> str:
    if not value:
        return ""
    return ", ".join(f"{v:.2f}" for v in value)


def _together(p_values: Sequence[float | None]) -> str:
    """How many tests reject at 5%, and why they are not independent evidence."""
    small = sum(1 for p in p_values if p is not None and p < 0.05)
    return (
        f"{small} of {len(p_values)} tests have a p-value below 0.05. They are not independent "
        "evidence: the groups of one outcome share the treated city's city-level shocks, "
        "outcomes made from one another (work, activity, earnings, income) share them too, "
        "and every lead is measured against the same reference month, so one unusual month "
        "in the treated city moves many tests together."
    )


def pretrend_blocks(entries: Sequence[Mapping[str, Any]]) -> list[Block]:
    """Return a "Pre-trend tests" table (joint tests of the leads) and a HonestDiD table.

    Reads ``info["pretrend_test"]`` of every analysis that has one (event studies,
    HonestDiD) and ``info["breakdown"]`` of HonestDiD analyses; no blocks when none has.

    Examples
    --------
    >>> entry = {"id": "event.work.all", "outcome": "work", "group": "all",
    ...          "info": {"pretrend_test": {"p_value": 0.41, "df": 11,
    ...                                     "method": "wald_few_treated"}}}
    >>> blocks = pretrend_blocks([entry])
    >>> blocks[0], blocks[2][2]
    (('h2', 'Pre-trend tests'), [['`event.work.all`', 'work', 'all', '11', '0.410']])

    With the covariance scaled to the cells' sizes, a column says by how much:

    >>> entry["info"]["pretrend_test"]["treated_variance_ratio"] = [0.43]
    >>> pretrend_blocks([entry])[2][2][0][-1]
    '0.43'

    With several tests, a note counts those below 0.05 and says why they move together:

    >>> other = {"id": "event.work.non_western", "outcome": "work", "group": "non_western",
    ...          "info": {"pretrend_test": {"p_value": 0.03, "df": 11}}}
    >>> pretrend_blocks([entry, other])[3][1][:43]
    '1 of 2 tests have a p-value below 0.05. The'
    """
    tests, honest = [], []
    ratios: list[str] = []
    p_values: list[float | None] = []
    for e in entries:
        info = e.get("info") or {}
        test = info.get("pretrend_test")
        if isinstance(test, Mapping) and "p_value" in test:
            tests.append([f"`{e['id']}`", str(e.get("outcome") or ""), str(e.get("group") or ""),
                          str(test.get("df", "")), _p(test["p_value"])])  # fmt: skip
            ratios.append(_ratio(test.get("treated_variance_ratio")))
            p_values.append(test["p_value"])
        if "breakdown" in info and "bound_name" in info:
            b = info["breakdown"]
            honest.append([f"`{e['id']}`", str(e.get("outcome") or ""),
                           str(e.get("group") or ""), info["bound_name"],
                           "none" if b is None else f"{b:g}"])  # fmt: skip
    blocks: list[Block] = []
    if tests:
        columns = ["analysis", "outcome", "group", "leads", "p-value"]
        sized = any(ratios)
        if sized:  # the covariance was scaled to the cells' sizes: show by how much
            columns.append("treated / comparison error variance")
            tests = [[*row, r] for row, r in zip(tests, ratios, strict=True)]
        blocks += [
            ("h2", "Pre-trend tests"),
            (
                "p",
                "Joint Wald test that every lead (event time before the reform, the "
                "reference month left out) is zero. With one treated city the leads' "
                "covariance is learned from the comparison cities' errors (Conley & Taber "
                "2011; errors assumed distributed as theirs and stationary over time), "
                "not from Bergen's own residuals; a small p-value says the trends before "
                "the reform differ."
                + (
                    " Where cells differ in size the errors' variance is modelled as a + b "
                    "/ (persons per cell), learned from the comparison cities and taken at "
                    "each city's own size (Ferman & Pinto 2019's model); the last column is "
                    "the treated city's fitted error variance over the comparison cities' "
                    "average."
                    if sized
                    else ""
                ),
            ),
            ("table", columns, tests),
        ]
        if len(tests) > 1:
            blocks.append(("p", _together(p_values)))
    if honest:
        blocks += [
            ("h2", "HonestDiD: how large a violation of parallel trends the effect survives"),
            (
                "p",
                "Breakdown value: the largest bound on the grid up to which every robust "
                "interval excludes zero (none: not even the smallest); the intervals per "
                "bound are in the analysis' table (rows `honest:...`).",
            ),
            ("table", ["analysis", "outcome", "group", "bound", "breakdown"], honest),
        ]
    return blocks
