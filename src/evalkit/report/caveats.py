"""Caveats of a study report, consolidated across analyses.

A warning that several analyses raise (the same text, or the same text with other
numbers or names) is stated once, with the list of analyses it concerns, instead of once
per row. Caveats that follow from the design are added here too: few treated clusters
under cluster-robust inference, and outcomes that are means over a subset of the rows
(e.g. a duration among recipients), whose effects mix behaviour with composition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FEW_CLUSTER_WARNINGS", "Caveat", "concerns", "consolidate", "warning_kind"]

#: Warning categories that say what the few-treated-clusters caveat says.
FEW_CLUSTER_WARNINGS = ("FewClustersWarning",)

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_NUMBER = re.compile(r"[-+]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?")


@dataclass(frozen=True)
class Caveat:
    """One caveat and the analyses it concerns.

    Attributes
    ----------
    key
        Its kind: ``"few_clusters"``, ``"composition:<outcome>"`` or ``"warning:<n>"``.
    title
        A short bold title.
    text
        The caveat itself (for a warning: the first analysis' message).
    analyses
        Ids of the analyses it concerns, in report order.
    varies
        True when the analyses' messages differ in numbers or names (the text is the
        first one's).
    """

    key: str
    title: str
    text: str
    analyses: tuple[str, ...]
    varies: bool = False


def warning_kind(message: str) -> str:
    """Return a warning's kind: its text with numbers and quoted names blanked out.

    Examples
    --------
    >>> warning_kind("FewClustersWarning: only 1 treated cluster of 10 in 'city'")
    'FewClustersWarning: only # treated cluster of # in _'
    """
    text = _QUOTED.sub("_", message)
    text = _NUMBER.sub("#", text)
    return " ".join(text.split())


def concerns(ids: Sequence[str], families: Mapping[str, Sequence[str]]) -> str:
    """Name a set of analyses briefly: whole families by name, the rest by id.

    ``families`` maps each family to the ids of all its analyses.

    Examples
    --------
    >>> fams = {"twfe": ["twfe.a", "twfe.b"], "ddd": ["ddd.a", "ddd.b"]}
    >>> concerns(["twfe.a", "twfe.b", "ddd.b"], fams)
    'all 2 `twfe` analyses; `ddd.b`'
    """
    chosen = set(ids)
    parts: list[str] = []
    for fam, members in families.items():
        mine = [m for m in members if m in chosen]
        if not mine:
            continue
        if len(mine) == len(members) and len(members) > 1:
            parts.append(f"all {len(members)} `{fam}` analyses")
        else:
            parts.extend(f"`{m}`" for m in mine)
    return "; ".join(parts)


def _few_clusters(
    entries: Sequence[Mapping[str, Any]], few: int, robust: Sequence[str], skip: Any
) -> Caveat | None:
    hit = []
    for e in entries:
        info, inf = e.get("info") or {}, e.get("inference") or {}
        k = info.get("n_treated_clusters")
        if skip(e) or not (isinstance(k, int) and k < few and inf.get("method") in robust):
            continue
        hit.append((e["id"], k, info.get("n_clusters"), inf.get("method"), inf.get("cluster")))
    if not hit:
        return None
    _, k, g, _, cluster = hit[0]
    methods = sorted({str(h[3]) for h in hit})
    text = (
        f"These analyses have only {k} treated cluster(s) of {g} ({cluster}), and their "
        f"standard errors ({', '.join(methods)}) are cluster-robust or model-based: with "
        "so few treated clusters such intervals are unreliable and usually too narrow (on "
        "a null simulation of a one-treated-city design, CR1 rejects a true null about half "
        "the time at the 5% level, and CR2 does not fix this). Methods built for few "
        "treated clusters (wild cluster bootstrap, randomization over units, Conley-Taber, "
        "Ferman-Pinto, conformal inference) were not used for them; read their intervals "
        "and p-values as descriptive, not as tests."
    )
    return Caveat(
        "few_clusters",
        "Few treated clusters",
        text,
        tuple(h[0] for h in hit),
        len({(h[1], h[2]) for h in hit}) > 1,
    )


def _composition(entries: Sequence[Mapping[str, Any]], subsets: Mapping[str, str]) -> list[Caveat]:
    out = []
    for outcome, where in subsets.items():
        ids = tuple(e["id"] for e in entries if e.get("outcome") == outcome and not e.get("error"))
        if not ids:
            continue
        out.append(
            Caveat(
                f"composition:{outcome}",
                f"`{outcome}` is a mean among a subset of the rows",
                f"`{outcome}` is averaged only over the rows with `{where}`. If the treatment "
                "(or anything else that differs between units after it, such as an epidemic "
                "wave) changes who is in that subset, its estimates mix a change in the "
                f"outcome with a change in who is measured, and parallel trends in `{outcome}` "
                "can fail even where they hold for the shares of the other outcomes. Read "
                "these estimates with the effects on the subset's size (the share with "
                f"`{where}`) alongside.",
                ids,
            )
        )
    return out


def _warnings(entries: Sequence[Mapping[str, Any]], keep: Any) -> list[Caveat]:
    kinds: dict[str, list[tuple[str, str]]] = {}
    for e in entries:
        for message in dict.fromkeys(e.get("warnings") or []):
            if keep(e, message):
                kinds.setdefault(warning_kind(message), []).append((e["id"], message))
    out = []
    for i, hits in enumerate(kinds.values(), start=1):
        category, _, rest = hits[0][1].partition(": ")
        title = category if rest and re.fullmatch(r"\w+", category) else "Warning"
        text = rest if title != "Warning" else hits[0][1]
        out.append(
            Caveat(
                f"warning:{i}",
                title,
                text,
                tuple(dict.fromkeys(h[0] for h in hits)),
                len({h[1] for h in hits}) > 1,
            )
        )
    return out


def consolidate(
    entries: Sequence[Mapping[str, Any]],
    *,
    few_treated: int,
    robust: Sequence[str] = (),
    skip_few: Any = None,
    subsets: Mapping[str, str] | None = None,
) -> list[Caveat]:
    """Collect the caveats of a run's analyses, each once with the analyses it concerns.

    Parameters
    ----------
    entries
        The analyses of ``results.json`` (after the disclosure gate).
    few_treated
        Below this many treated clusters, cluster-robust inference gets a caveat.
    robust
        Inference methods that are cluster-robust or model-based.
    skip_few
        A predicate on an entry: True to leave it out of the few-clusters caveat (e.g.
        within-unit comparisons whose standard errors come from the cells).
    subsets
        Outcome to the condition of the rows it is averaged over (measures with a
        ``where``): each gets a composition caveat.

    Examples
    --------
    >>> entries = [
    ...     {"id": "a.1", "warnings": ["UserWarning: 3 rows dropped in 'x'"]},
    ...     {"id": "a.2", "warnings": ["UserWarning: 5 rows dropped in 'y'"]},
    ... ]
    >>> [(c.title, c.analyses, c.varies) for c in consolidate(entries, few_treated=2)]
    [('UserWarning', ('a.1', 'a.2'), True)]
    """
    skip = skip_few or (lambda e: False)
    few = _few_clusters(entries, few_treated, robust, skip)

    def folded(e: Mapping[str, Any], message: str) -> bool:
        # an estimator's own few-clusters warning on a cluster-level analysis says what
        # the few-clusters caveat says; on a within-unit analysis it says something else
        return message.partition(":")[0] in FEW_CLUSTER_WARNINGS and not skip(e)

    same = _warnings(entries, folded)
    warned = _warnings(entries, lambda e, m: not folded(e, m))
    if same:
        ids = set().union(*(w.analyses for w in same), few.analyses if few else ())
        few = Caveat(
            "few_clusters",
            "Few treated clusters",
            few.text if few else same[0].text,
            tuple(e["id"] for e in entries if e["id"] in ids),
            (few.varies if few else False) or any(w.varies for w in same) or len(same) > 1,
        )
    out = [few] if few is not None else []
    out.extend(_composition(entries, subsets or {}))
    out.extend(warned)
    return out
