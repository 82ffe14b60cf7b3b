"""Paragraphs of a study report that explain its inference.

Which analyses compare groups within units (triple differences), which take their
standard errors from the cells rather than from the treated clusters, why p-values and
intervals by test inversion come without standard errors, and why within-unit
comparisons can be trusted where unit-level ones cannot with few treated clusters. All
are read from the analyses of ``results.json`` (after the disclosure gate).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from evalkit.core import registry
from evalkit.inference.policy import THRESHOLDS

__all__ = ["FEW_TREATED_CLUSTERS", "cell_level", "is_within", "test_inversion_note", "within_note"]

# Inference a within-unit comparison can rest on with few treated clusters: the errors of
# the cells (not of the treated clusters) carry the information.
_CELL_LEVEL = ("iid", "hetero")
#: Below this many treated clusters, cluster-robust intervals get a caution (the one
#: thresholds table, :data:`evalkit.inference.THRESHOLDS`).
FEW_TREATED_CLUSTERS = THRESHOLDS.few_treated


def is_within(entry: Mapping[str, Any]) -> bool:
    """Say whether an analysis compares groups within units (a triple difference)."""
    name = entry.get("estimator")
    within = name in registry.names() and registry.get(name).within_unit
    return within or bool(entry.get("split"))


def _few_treated(entry: Mapping[str, Any]) -> bool:
    k = (entry.get("info") or {}).get("n_treated_clusters")
    return isinstance(k, int) and k < FEW_TREATED_CLUSTERS


def cell_level(entry: Mapping[str, Any]) -> bool:
    """Say whether a within-unit comparison takes its standard errors from the cells."""
    return is_within(entry) and (entry.get("inference") or {}).get("method") in _CELL_LEVEL


_TEST_INVERSION_NAMES = {
    "conformal": "conformal inference over time (Chernozhukov, Wuthrich & Zhu 2021)",
    "wild": "the wild cluster bootstrap",
    "permutation": "randomization inference over which clusters are treated",
    "conley_taber": "Conley-Taber inference",
    "ferman_pinto": "Ferman-Pinto inference",
}


def test_inversion_note(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Explain p-values and intervals that come from inverting a test (no standard errors)."""
    mine = [e for e in entries if (e.get("inference") or {}).get("kind") == "test_inversion"]
    if not mine:
        return None
    methods = list(dict.fromkeys((e.get("inference") or {}).get("method") for e in mine))
    names = ", ".join(_TEST_INVERSION_NAMES.get(str(m), str(m)) for m in methods)
    k = (mine[0].get("info") or {}).get("n_treated_clusters")
    g = (mine[0].get("info") or {}).get("n_clusters")
    steps = sorted(
        set(
            re.findall(
                r"steps of (1/\d+)",
                " ".join((e.get("inference") or {}).get("description") or "" for e in mine),
            )
        )
    )
    gran = ""
    if steps:
        gran = (
            f" Their p-values come in steps of {', '.join(steps)}, so no smaller p-value "
            "is possible."
        )
    return (
        f"**Inference valid with few treated clusters.** {len(mine)} analyses "
        f"({k} treated cluster(s) of {g}) use {names}, chosen because cluster-robust "
        "standard errors are not reliable with so few treated clusters. These methods give "
        "a p-value and an interval (the effects the test does not reject) but no standard "
        f"error, so the standard-error column is empty.{gran}"
    )


def within_note(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Explain why within-unit comparisons can be trusted where unit-level ones cannot."""
    mine = [e for e in entries if cell_level(e) and _few_treated(e) and e.get("tidy")]
    if not mine:
        return None
    info = mine[0].get("info") or {}
    unit = (info.get("roles") or {}).get("unit", "unit")
    times = list(
        dict.fromkeys(str(((e.get("info") or {}).get("roles") or {}).get("time")) for e in mine)
    )
    k, g = info.get("n_treated_clusters"), info.get("n_clusters")
    by_method: dict[str, int] = {}
    for e in mine:
        method = str((e.get("inference") or {}).get("method"))
        by_method[method] = by_method.get(method, 0) + 1
    text = (
        f"**Why triple differences can be trusted where the {unit}-level analyses "
        f"cannot.** With {k} treated {unit} of {g}, a {unit}-level comparison cannot tell "
        f"the treatment from anything else that hit the treated {unit} and not the others "
        "in the same periods, and no standard error can learn how large such shocks are "
        "from a single treated cluster. The triple differences compare a group with the "
        f"rest of the same {unit} in the same period "
        f"({', '.join(f'`{t}`' for t in times)}): the {unit} x period fixed effects absorb "
        f"every shock the two share, so {unit}-level shocks neither bias these estimates "
        "nor enter their noise. What is left is the noise of the within-unit contrast, "
        "which the comparison units show as well as the treated one, so it can be "
        "estimated from the cells rather than from the number of treated clusters."
    )
    if by_method.get("iid"):
        text += (
            f" The {by_method['iid']} with classical standard errors (weighted by the "
            "cell counts) assume that this contrast is equally noisy per person in every "
            "unit and learn its size from the comparison units."
        )
        periods = [
            (e.get("info") or {}).get("n_periods")
            for e in mine
            if (e.get("inference") or {}).get("method") == "iid"
        ]
        if all(isinstance(n, int) and n <= 2 for n in periods):
            text += (
                " Their cells cover the whole period before and after the treatment, so "
                "following the same persons over time does not make the cells' errors "
                "dependent."
            )
        else:
            text += (
                " Where cells of consecutive periods follow the same persons their errors "
                "are dependent and these standard errors too small: collapse to the periods "
                "before and after the treatment (`collapse_by`)."
            )
    if by_method.get("hetero"):
        text += (
            f" The {by_method['hetero']} with heteroskedasticity-robust (HC1) standard "
            "errors assume that the cells' errors are independent; cells of consecutive "
            "periods that follow the same persons are not, and then HC1 is too small: "
            "collapse to longer periods (e.g. before and after, with `collapse_by`) and "
            'use inference = "iid".'
        )
    text += (
        " All rest on the within-unit contrast evolving in parallel across units (a "
        "shock that hits one group of the treated unit and not the rest is not absorbed)."
    )
    return text
