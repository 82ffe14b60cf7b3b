"""Journal-style summaries of results, as text and as HTML."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.core.result import Result

__all__ = ["Summary", "stars"]


def stars(p: float) -> str:
    """Return significance stars for a p-value (*** < 0.01, ** < 0.05, * < 0.1).

    Examples
    --------
    >>> stars(0.003), stars(0.2)
    ('***', '')
    """
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""


def _fmt(x: float, digits: int) -> str:
    if x is None or np.isnan(x):
        return ""
    if np.isinf(x):  # an unbounded test-inversion interval
        return "-inf" if x < 0 else "inf"
    return f"{x:.{digits}f}"


class Summary:
    """A printable summary of a :class:`~evalkit.core.result.Result`.

    ``str(summary)`` gives a plain-text table (estimates with stars, standard errors in
    parentheses beneath, intervals), followed by the fit's facts and a sentence on how
    inference was done. In a notebook it renders as an HTML table.
    """

    def __init__(self, result: Result, digits: int = 4) -> None:
        self.result = result
        self.digits = digits

    def _rows(self) -> pd.DataFrame:
        tidy = self.result.tidy()
        keys = [c for c in ("subgroup", "group", "cohort", "time", "event_time") if c in tidy]
        label = tidy["term"].astype(str)
        for k in keys:  # rows without a key value (e.g. an overall estimate) keep their term
            present = tidy[k].notna()
            label = label.where(~present, label + " [" + k + "=" + tidy[k].astype(str) + "]")
        return tidy.assign(label=label)

    def _facts(self) -> list[tuple[str, str]]:
        info = self.result.info
        facts: list[tuple[str, str]] = []
        names = {
            "outcome": "Outcome",
            "n_obs": "Observations",
            "n_units": "Units",
            "n_periods": "Periods",
            "n_treated_units": "Treated units",
            "r2_within": "R2 (within)",
        }
        for key, label in names.items():
            if key in info and info[key] is not None:
                value = info[key]
                if isinstance(value, dict):  # per subgroup (fit with by=)
                    value = ", ".join(f"{v:,} ({k})" for k, v in value.items() if v is not None)
                text = (
                    f"{value:.4f}"
                    if isinstance(value, float)
                    else f"{value:,}"
                    if isinstance(value, int)
                    else str(value)
                )
                facts.append((label, text))
        if "fixed_effects" in info:
            facts.append(("Fixed effects", ", ".join(info["fixed_effects"]) or "none"))
        for test in info.get("equality_tests", ()):
            keys = ", ".join(
                f"{k}={v}"
                for k, v in test.items()
                if k not in ("term", "statistic", "df", "p_value", "method")
            )
            label = f"Equal across {info.get('by')}: {test['term']}" + (
                f" [{keys}]" if keys else ""
            )
            stat = test["statistic"]
            text = (
                f"chi2({test['df']}) = {stat:.3f}, p = {test['p_value']:.3f}"
                if stat is not None and np.isfinite(stat)
                else "not testable"
            )
            if test.get("method") == "placebo" and stat is not None:  # a rank test, no df
                text = f"placebo rank statistic {stat:.3f}, p = {test['p_value']:.3f}"
            facts.append((label, text))
        return facts

    def __str__(self) -> str:
        d = self.digits
        rows = self._rows()
        level = round(self.result.level * 100)
        header = f"{'':<28}{'Estimate':>14}{'CI ' + str(level) + '%':>26}{'p':>9}"
        lines = [f"{self.result.estimator}", "=" * len(header), header, "-" * len(header)]
        for r in rows.itertuples(index=False):
            est = _fmt(r.estimate, d) + stars(r.p_value)
            ci = f"[{_fmt(r.conf_low, d)}, {_fmt(r.conf_high, d)}]"
            lines.append(f"{r.label[:28]:<28}{est:>14}{ci:>26}{_fmt(r.p_value, 3):>9}")
            se = f"({_fmt(r.std_error, d)})" if np.isfinite(r.std_error) else "(n/a)"
            lines.append(f"{'':<28}{se:>14}")
        lines.append("-" * len(header))
        for label, text in self._facts():
            lines.append(f"{label:<28}{text:>14}")
        lines.append(f"Inference: {self.result.inference.description}")
        if self.result.inference.reason:
            lines.append(f"  why: {self.result.inference.reason}")
        if self.result.inference.missing:
            lines.append(f"  empty cells: {self.result.inference.missing}")
        lines.append("Signif.: *** p<0.01, ** p<0.05, * p<0.1; standard errors in parentheses")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        d = self.digits
        rows = self._rows()
        body = []
        for r in rows.itertuples(index=False):
            body.append(
                f"<tr><td style='text-align:left'>{html.escape(r.label)}</td>"
                f"<td>{_fmt(r.estimate, d)}{stars(r.p_value)}<br>({_fmt(r.std_error, d)})</td>"
                f"<td>[{_fmt(r.conf_low, d)}, {_fmt(r.conf_high, d)}]</td>"
                f"<td>{_fmt(r.p_value, 3)}</td></tr>"
            )
        facts = "".join(
            f"<tr><td style='text-align:left'>{html.escape(a)}</td><td colspan=3>{html.escape(b)}"
            "</td></tr>"
            for a, b in self._facts()
        )
        level = round(self.result.level * 100)
        return (
            f"<table><caption>{html.escape(self.result.estimator)}</caption>"
            f"<thead><tr><th></th><th>Estimate (SE)</th><th>CI {level}%</th><th>p</th></tr>"
            f"</thead><tbody>{''.join(body)}{facts}</tbody>"
            f"<tfoot><tr><td colspan=4 style='text-align:left'>Inference: "
            f"{html.escape(self.result.inference.description)}</td></tr></tfoot></table>"
        )
