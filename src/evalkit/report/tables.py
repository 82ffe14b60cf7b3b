"""Regression tables: several results side by side, as Markdown, LaTeX and HTML.

:func:`table` lines up the estimates of several results by term (one column per
model, one row per term), like fixest's ``etable``: significance stars, standard errors
in parentheses or intervals in brackets beneath each estimate, then rows for the
fixed effects, the number of observations and clusters and the inference used. The
returned :class:`Table` renders as Markdown (``str()``), LaTeX with booktabs rules and
HTML, and displays as HTML in notebooks.

Why evalkit writes its own renderer rather than using maketables
------------------------------------------------------------------
maketables 0.2 (PyPI; the table engine behind pyfixest's ``etable``) was tried on evalkit
results through its plug-in protocol (a wrapper exposing ``__maketables_coef_table__``,
``__maketables_stat__`` and ``__maketables_fixef_string__``): a TWFE fit and a
Callaway-Sant'Anna aggregate rendered correctly to LaTeX and to a Great Tables HTML
object. It was not adopted because:

* it has no Markdown output, which evalkit's study reports are written in;
* its coefficient cell has one format for every model, while evalkit's results differ in
  what uncertainty they have: a standard error, an interval by test inversion without a
  standard error (wild bootstrap, randomization, conformal), or none (a decomposition).
  evalkit shows each model's own kind and says so in a note, never an empty ``()``;
* its LaTeX needs ``tabularx``, ``makecell`` and ``threeparttable`` on top of
  ``booktabs``, and its HTML needs great-tables, python-docx and IPython at run time,
  about 2 s of imports, against evalkit's aim of a light, fast import;
* fixed-effects rows come from a single formula string, so "not applicable" (an
  estimator without absorbed effects) cannot be told from "not included".

The renderer here is about 300 lines of plain Python with no dependency. For Word or
Typst output, :func:`maketables_adapter` wraps a result in maketables' plug-in protocol
without importing maketables.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from evalkit.errors import DesignError

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.core.result import Result

__all__ = ["DEFAULT_STARS", "Table", "latex_escape", "maketables_adapter", "table"]

#: Default significance stars: symbol -> p-value threshold (strictly below).
DEFAULT_STARS: dict[str, float] = {"***": 0.01, "**": 0.05, "*": 0.1}
_KEYS = ("subgroup", "group", "cohort", "time", "event_time")
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters in plain text.

    Examples
    --------
    >>> print(latex_escape("50% of x_1 & y"))
    50\% of x\_1 \& y
    """
    return "".join(_LATEX_SPECIALS.get(c, c) for c in str(text))


@dataclass(frozen=True)
class Table:
    """A rendered comparison table; build it with :func:`table`.

    Attributes
    ----------
    header : tuple of str
        Column names: an empty corner cell, then one name per model.
    body : tuple of tuple of str
        Estimate rows, each followed by its uncertainty row (empty first cell) unless
        no model has uncertainty for that row.
    footer : tuple of tuple of str
        Fixed-effects and statistics rows.
    notes : tuple of str
        Notes printed beneath the table.
    caption : str or None
        Optional caption.
    """

    header: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]
    footer: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]
    caption: str | None = None

    def to_frame(self) -> pd.DataFrame:
        """Return the cells (body then footer) as a DataFrame of strings."""
        return pd.DataFrame([*self.body, *self.footer], columns=list(self.header))

    # ------------------------------------------------------------------ markdown
    def to_markdown(self) -> str:
        """Render as a GitHub-flavoured Markdown table followed by the notes."""
        rows = [self.header, *self.body, *self.footer]
        widths = [max(len(r[j]) for r in rows) for j in range(len(self.header))]
        widths = [max(w, 3) for w in widths]

        def line(cells: Sequence[str]) -> str:
            padded = [
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "| " + " | ".join(_md_cell(c) for c in padded) + " |"

        rule = (
            "|"
            + "|".join(
                ":" + "-" * (w + 1) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths)
            )
            + "|"
        )
        out = [f"**{self.caption}**", ""] if self.caption else []
        out += [line(self.header), rule]
        out += [line(r) for r in self.body]
        out += [line(r) for r in self.footer]
        out += ["", *self.notes] if self.notes else []
        return "\n".join(out)

    # ------------------------------------------------------------------ latex
    def to_latex(self) -> str:
        r"""Render as a LaTeX ``tabular`` with booktabs rules (needs ``\usepackage{booktabs}``).

        Notes follow in ``\multicolumn`` rows beneath the bottom rule. Text is escaped.
        """
        n = len(self.header)
        esc = [[latex_escape(c) for c in r] for r in (self.header, *self.body, *self.footer)]
        head, body, foot = esc[0], esc[1 : 1 + len(self.body)], esc[1 + len(self.body) :]
        lines = []
        if self.caption:
            lines.append(f"% {latex_escape(self.caption)}")
        lines += [f"\\begin{{tabular}}{{l{'c' * (n - 1)}}}", r"\toprule"]
        lines.append(" & ".join(head) + r" \\")
        lines.append(r"\midrule")
        lines += [" & ".join(r) + r" \\" for r in body]
        if foot:
            lines.append(r"\midrule")
            lines += [" & ".join(r) + r" \\" for r in foot]
        lines.append(r"\bottomrule")
        lines += [
            f"\\multicolumn{{{n}}}{{l}}{{\\footnotesize {latex_escape(note)}}} \\\\"
            for note in self.notes
        ]
        lines.append(r"\end{tabular}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ html
    def to_html(self) -> str:
        """Render as an HTML ``<table>`` (text escaped), notes in the footer."""
        n = len(self.header)
        esc = html.escape
        parts = ["<table class='evalkit-table'>"]
        if self.caption:
            parts.append(f"<caption>{esc(self.caption)}</caption>")
        parts.append(
            "<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in self.header) + "</tr></thead>"
        )
        parts.append("<tbody>")
        for r in self.body:
            parts.append(_html_row(r))
        for i, r in enumerate(self.footer):
            parts.append(_html_row(r, top_rule=i == 0))
        parts.append("</tbody>")
        if self.notes:
            notes = "<br>".join(esc(note) for note in self.notes)
            parts.append(
                f"<tfoot><tr><td colspan={n} style='text-align:left'>{notes}</td></tr></tfoot>"
            )
        parts.append("</table>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_markdown()


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|")


def _html_row(cells: Sequence[str], top_rule: bool = False) -> str:
    style = " style='border-top:1px solid'" if top_rule else ""
    first, *rest = cells
    return (
        f"<tr{style}><td style='text-align:left'>{html.escape(first)}</td>"
        + "".join(f"<td>{html.escape(c)}</td>" for c in rest)
        + "</tr>"
    )


# ---------------------------------------------------------------------- building
def _label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    label = str(row["term"])
    for key in keys:
        value = row[key]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        label += f" [{key}={value}]"
    return label


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _matches(patterns: Sequence[str], label: str) -> bool:
    return any(re.search(p, label) for p in patterns)


def _check_patterns(option: str, patterns: Sequence[str] | str | None) -> list[str]:
    if patterns is None:
        return []
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    for p in items:
        try:
            re.compile(p)
        except (re.error, TypeError) as err:
            raise DesignError(
                f"{option} entry {p!r} is not a valid regular expression ({err})",
                hint=f"{option} takes regular expressions matched against row labels, "
                "e.g. '^post$'; escape special characters with re.escape",
                column=option,
            ) from None
    return items


def table(
    results: Sequence[Result],
    *,
    names: Sequence[str] | None = None,
    uncertainty: Literal["se", "ci"] = "se",
    level: float | None = None,
    stars: Mapping[str, float] | bool = True,
    digits: int = 3,
    rename: Mapping[str, str] | None = None,
    keep: Sequence[str] | str | None = None,
    drop: Sequence[str] | str | None = None,
    order: Sequence[str] | str | None = None,
    fixed_effects: bool = True,
    stats: Sequence[Literal["outcome", "n_obs", "n_clusters", "inference"]] = (
        "n_obs",
        "n_clusters",
        "inference",
    ),
    notes: Sequence[str] = (),
    caption: str | None = None,
) -> Table:
    """Put several results side by side in one table.

    Parameters
    ----------
    results
        The results, one column each.
    names
        Column names; default ``(1), (2), ...`` after the estimator's short name.
    uncertainty
        ``"se"``: standard errors in parentheses beneath each estimate; ``"ci"``:
        confidence intervals in brackets. Where a result has no standard error, its
        interval (e.g. by test inversion) is shown instead, or its p-value when it has
        no interval; a note says which models.
    level
        Confidence level of the intervals; default each result's own.
    stars
        True for ``*** p<0.01, ** p<0.05, * p<0.1``, False for none, or a mapping of
        symbol to p-value threshold, e.g. ``{"+": 0.1, "*": 0.05}``.
    digits
        Decimals of estimates and their uncertainty.
    rename
        Row label -> display label, applied after ``keep``/``drop`` and before ``order``.
        Row labels are terms, with keys appended as ``term [event_time=0]``.
    keep, drop
        Regular expressions (``re.search``) on row labels: keep only rows matching one of
        ``keep``; drop rows matching one of ``drop``.
    order
        Regular expressions on the (renamed) labels: matching rows first, in pattern
        order; the others after, in their first-seen order.
    fixed_effects
        Add a row per fixed effect named in the results' ``info["fixed_effects"]``
        ("Yes"/"No"; empty for a result that does not report fixed effects).
    stats
        Statistic rows beneath: ``"outcome"``, ``"n_obs"`` (observations),
        ``"n_clusters"`` (clusters) and ``"inference"`` (method, and cluster column).
    notes
        Extra notes printed beneath the table.
    caption
        A caption.

    Returns
    -------
    Table
        Renders with ``to_markdown()`` (also ``str()``), ``to_latex()`` and ``to_html()``.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did import TWFE
    >>> df = evalkit.datasets.load("mpdta")
    >>> df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    >>> twfe = TWFE(outcome="lemp", treatment="post", unit="countyreal", time="year")
    >>> a = twfe.fit(df, inference="cluster")
    >>> b = twfe.fit(df, inference="hetero")
    >>> tab = table([a, b], names=["CR1", "HC1"], rename={"post": "Minimum wage"},
    ...             fixed_effects=False, stats=["n_obs", "inference"])
    >>> print(tab)
    |              |                  CR1 |       HC1 |
    |:-------------|---------------------:|----------:|
    | Minimum wage |            -0.037*** | -0.037*** |
    |              |              (0.013) |   (0.012) |
    | Observations |                2,500 |     2,500 |
    | Inference    | cluster (countyreal) |    hetero |
    <BLANKLINE>
    Standard errors in parentheses.
    *** p<0.01, ** p<0.05, * p<0.1.
    """
    results = list(results)
    if not results or not all(hasattr(r, "tidy") and hasattr(r, "inference") for r in results):
        raise DesignError(
            "table() needs a list of evalkit results",
            hint="e.g. evalkit.report.table([res1, res2]) with results from .fit()",
            column="results",
        )
    if names is None:
        names = [f"({i + 1}) {r.estimator.split('.')[-1]}" for i, r in enumerate(results)]
    names = [str(n) for n in names]
    if len(names) != len(results):
        raise DesignError(
            f"names has {len(names)} entries for {len(results)} results",
            hint="give one name per result",
            column="names",
        )
    if uncertainty not in ("se", "ci"):
        raise DesignError(
            f"uncertainty must be 'se' or 'ci', got {uncertainty!r}", column="uncertainty"
        )
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise DesignError(f"digits must be a whole number >= 0, got {digits!r}", column="digits")
    star_map = _star_map(stars)
    keep_p, drop_p = _check_patterns("keep", keep), _check_patterns("drop", drop)
    order_p = _check_patterns("order", order)
    rename = dict(rename or {})
    unknown_stats = [s for s in stats if s not in ("outcome", "n_obs", "n_clusters", "inference")]
    if unknown_stats:
        raise DesignError(
            f"unknown stats {unknown_stats}",
            hint="choose from 'outcome', 'n_obs', 'n_clusters', 'inference'",
            column="stats",
        )

    fmt = f"{{:.{digits}f}}"
    cells: dict[str, list[tuple[str, str]]] = {}
    labels: list[str] = []
    shown_kinds: dict[str, list[tuple[str, Result]]] = {"interval": [], "p": [], "none": []}
    for j, (res, name) in enumerate(zip(results, names, strict=True)):
        tidy = res.tidy() if level is None else res.tidy(level)
        keys = [k for k in _KEYS if k in tidy]
        kinds = set()
        for row in tidy.to_dict(orient="records"):
            label = _label(row, keys)
            if (keep_p and not _matches(keep_p, label)) or _matches(drop_p, label):
                continue
            label = rename.get(label, label)
            est = fmt.format(row["estimate"]) if _finite(row["estimate"]) else ""
            if star_map and _finite(row["p_value"]):
                est += next((s for s, cut in star_map if row["p_value"] < cut), "")
            has_ci = _finite(row["conf_low"]) and _finite(row["conf_high"])
            interval = (
                f"[{fmt.format(row['conf_low'])}, {fmt.format(row['conf_high'])}]" if has_ci else ""
            )
            if uncertainty == "se" and _finite(row["std_error"]):
                below = f"({fmt.format(row['std_error'])})"
            elif has_ci:
                below = interval
                kinds.add("interval" if uncertainty == "se" else "")
            elif _finite(row["p_value"]):
                below = f"{{p = {row['p_value']:.3f}}}"  # braces: p-value
                kinds.add("p")
            else:
                below = ""
                kinds.add("none")
            if label not in cells:
                cells[label] = [("", "")] * len(results)
                labels.append(label)
            if cells[label][j] != ("", ""):
                raise DesignError(
                    f"two rows of result {name!r} have the label {label!r}",
                    hint="rename= or drop= one of them, or give terms that differ",
                    column="rename",
                )
            cells[label] = [*cells[label][:j], (est, below), *cells[label][j + 1 :]]
        for kind in sorted(kinds & set(shown_kinds)):
            shown_kinds[kind].append((name, res))
        if not any(cells[lab][j] != ("", "") for lab in labels):
            raise DesignError(
                f"no row of result {name!r} is left after keep/drop",
                hint=f"its rows are {sorted({_label(r, keys) for r in tidy.to_dict('records')})}",
                column="keep",
            )

    labels = _ordered(labels, order_p)
    body: list[tuple[str, ...]] = []
    for label in labels:
        body.append((label, *(c[0] for c in cells[label])))
        if any(c[1] for c in cells[label]):
            body.append(("", *(c[1] for c in cells[label])))

    footer = _footer(results, fixed_effects, stats)
    note_lines = _notes(uncertainty, star_map, shown_kinds, results, level)
    return Table(
        header=("", *names),
        body=tuple(body),
        footer=tuple(footer),
        notes=tuple([*note_lines, *map(str, notes)]),
        caption=caption,
    )


def _star_map(stars: Mapping[str, float] | bool) -> list[tuple[str, float]]:
    if stars is True:
        stars = DEFAULT_STARS
    if stars is False or stars is None:
        return []
    if not isinstance(stars, Mapping) or not all(
        isinstance(v, (int, float)) and 0 < v < 1 for v in stars.values()
    ):
        raise DesignError(
            f"stars must be True, False or a mapping of symbol to p-value threshold, got {stars!r}",
            hint="e.g. stars={'***': 0.01, '**': 0.05, '*': 0.1}",
            column="stars",
        )
    return sorted(((str(k), float(v)) for k, v in stars.items()), key=lambda kv: kv[1])


def _ordered(labels: list[str], patterns: list[str]) -> list[str]:
    first: list[str] = []
    for p in patterns:
        first += [lab for lab in labels if lab not in first and re.search(p, lab)]
    return first + [lab for lab in labels if lab not in first]


def _footer(
    results: Sequence[Result], fixed_effects: bool, stats: Sequence[str]
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    if fixed_effects:
        names: list[str] = []
        for r in results:
            names += [str(f) for f in r.info.get("fixed_effects", ()) if str(f) not in names]
        for fe in names:
            cells = []
            for r in results:
                listed = r.info.get("fixed_effects")
                cells.append("" if listed is None else "Yes" if fe in map(str, listed) else "No")
            rows.append((f"{fe} effects", *cells))
    labels = {
        "outcome": "Outcome",
        "n_obs": "Observations",
        "n_clusters": "Clusters",
        "inference": "Inference",
    }
    for stat in stats:
        cells = [_stat(r, stat) for r in results]
        if any(cells):
            rows.append((labels[stat], *cells))
    return rows


def _stat(res: Result, stat: str) -> str:
    info = res.info
    if stat == "outcome":
        roles = info.get("roles") or {}
        return str(info.get("outcome") or roles.get("outcome") or "")
    if stat == "n_obs":
        n = info.get("n_obs")
        return f"{n:,}" if isinstance(n, int) else ""
    if stat == "n_clusters":
        method = res.inference.method
        n = res.inference.n_clusters or (info.get("n_clusters") if method != "none" else None)
        return f"{n:,}" if isinstance(n, int) and res.inference.cluster else ""
    method = res.inference.method
    return f"{method} ({res.inference.cluster})" if res.inference.cluster else method


def _notes(
    uncertainty: str,
    star_map: list[tuple[str, float]],
    kinds: Mapping[str, list[tuple[str, Result]]],
    results: Sequence[Result],
    level: float | None,
) -> list[str]:
    levels = {round(100 * (level or r.level)) for r in results}
    pct = "/".join(f"{lv}%" for lv in sorted(levels))
    notes = [
        "Standard errors in parentheses."
        if uncertainty == "se"
        else f"{pct} confidence intervals in brackets."
    ]
    if kinds["interval"]:
        who = ", ".join(name for name, _ in kinds["interval"])
        notes.append(f"No standard error for {who}: {pct} interval in brackets.")
    if kinds["p"]:
        who = ", ".join(name for name, _ in kinds["p"])
        notes.append(f"No standard error or interval for {who}: p-value in braces.")
    for name, res in kinds["none"]:
        notes.append(f"No uncertainty for {name}: {res.inference.description}.")
    if star_map:
        notes.append(", ".join(f"{s} p<{cut:g}" for s, cut in star_map) + ".")
    return notes


def maketables_adapter(result: Result) -> Any:
    """Wrap a result in maketables' plug-in protocol (for Word or Typst tables).

    The wrapper exposes ``__maketables_coef_table__`` (columns ``b, se, t, p, ci95l,
    ci95u`` by row label), ``__maketables_stat__`` (``"N"``), ``__maketables_depvar__``
    and ``__maketables_fixef_string__``; ``maketables.ETable([maketables_adapter(r), ...])``
    then renders it. maketables is not needed to build the wrapper.
    """
    return _MaketablesAdapter(result)


class _MaketablesAdapter:
    def __init__(self, result: Result) -> None:
        self._result = result

    @property
    def __maketables_coef_table__(self) -> pd.DataFrame:
        tidy = self._result.tidy()
        keys = [k for k in _KEYS if k in tidy]
        index = [_label(r, keys) for r in tidy.to_dict(orient="records")]
        cols = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
        out = tidy[cols].set_axis(["b", "se", "t", "p", "ci95l", "ci95u"], axis=1)
        return out.set_axis(pd.Index(index, name="Coefficient"), axis=0)

    def __maketables_stat__(self, key: str) -> Any:
        return {"N": self._result.info.get("n_obs")}.get(key)

    @property
    def __maketables_depvar__(self) -> str:
        return _stat(self._result, "outcome") or self._result.estimator

    @property
    def __maketables_fixef_string__(self) -> str | None:
        fe = self._result.info.get("fixed_effects")
        return "+".join(map(str, fe)) if fe else None
