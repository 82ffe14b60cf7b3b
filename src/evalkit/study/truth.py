"""The true value of each reported estimate on simulated data, on the same estimand.

A simulator plants effects and returns, with the data, the sufficient statistics of the
effect of its treatment by stratum and treated period
(:attr:`~evalkit.simulate.SimulatedData.truth_strata`: per outcome, period and stratum the
count and sum of the outcome's measure with and without the treatment). Estimators
declare how each reported effect averages the effects of the treated observations
(:attr:`~evalkit.core.estimator.Estimator.effect_average`): over the treated cells
weighted by their counts (person-months), unweighted over the treated periods, one
period, or one event time; with staggered adoption, one cohort in one period (ATT(g,t))
or one event time across cohorts (from strata that hold the cohort column). This module
computes the truth of that average over exactly the rows the analysis uses (its group and
``where`` condition, evaluated on the stratum columns and the time column), so an
interval's coverage is a fair test.

Effects the simulator states directly (:attr:`~evalkit.simulate.SimulatedData.truth_terms`,
e.g. an intention-to-treat effect) are used first. Strata that no stratum row describes
carry no planted effect: an analysis none of whose rows is treated in the simulator
(e.g. a placebo reform date before the real one) has a true effect of zero.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from evalkit.core import registry
from evalkit.data import sandbox
from evalkit.data.collapse import Measure, quote

__all__ = [
    "RULES",
    "Lookup",
    "average",
    "period_effects",
    "truth_lookup",
]

#: The averaging rules an estimator can declare (see ``Estimator.effect_average``).
RULES = (
    "treated_cells",
    "treated_periods",
    "period",
    "event_time",
    "cohort_time",
    "cohort_event_time",
    "event_window",
)
#: Rules of staggered adoption: the row's cohort (the ``cohort`` option's column, which
#: the simulator's strata must hold) and time, or its event time ``time - cohort``.
_STAGGERED = ("cohort_time", "cohort_event_time")

#: Truth of every results row of an analysis (None where unknown).
Lookup = Callable[[Sequence[Mapping[str, Any]]], list[float | None]]

_FIXED = ("outcome", "period", "n1", "sum1", "n0", "sum0")


def _norm(text: str | None) -> str | None:
    return None if text is None else " ".join(text.lower().split())


#: Per simulated data set: the strata and period effects already computed, by outcome,
#: condition and time column (many analyses of a study ask for the same ones: each
#: estimator of an outcome and group; a DuckDB query each otherwise).
_MEMO: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def _memo(sim: Any, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """Return ``make()``, computed once per ``sim`` and ``key`` (a copy of a frame)."""
    try:
        memo = _MEMO.setdefault(sim, {})
    except TypeError:  # a stand-in that cannot be weakly referenced: no memo
        return make()
    if key not in memo:
        memo[key] = make()
    value = memo[key]
    return value.copy() if isinstance(value, pd.DataFrame) else value


def chosen_strata(
    sim: Any, outcome: str, condition: str | None, time: str | None = None
) -> pd.DataFrame | None:
    """Return the rows of the simulator's ``truth_strata`` for ``outcome`` meeting ``condition``.

    ``condition`` is evaluated as in :func:`period_effects`. None when the truth is not
    determined (no strata, unknown outcome, or the condition names other columns).

    Examples
    --------
    >>> from evalkit.simulate import bergen_rates
    >>> sim = bergen_rates(seed=1, n_persons=400)
    >>> rows = chosen_strata(sim, "work", "non_western = 1", time="month")
    >>> bool((rows["non_western"] == 1).all())
    True
    """
    return _memo(
        sim, ("strata", outcome, condition, time), lambda: _chosen(sim, outcome, condition, time)
    )


def _chosen(sim: Any, outcome: str, condition: str | None, time: str | None) -> pd.DataFrame | None:
    strata = getattr(sim, "truth_strata", None)
    if strata is None:
        return None
    rows = strata[strata["outcome"] == outcome]
    if rows.empty:
        return None
    keys = [c for c in rows.columns if c not in _FIXED]
    if condition is None:
        return rows

    distinct = rows[[*keys, "period"]].drop_duplicates().reset_index(drop=True)
    view = distinct.copy()
    if time and time not in view:
        view[time] = view["period"]
    term = getattr(sim, "term", None)
    if term and term not in view:
        view[term] = 1
    chosen = sandbox.select_where(view, condition)
    if chosen is None:
        return None
    chosen = chosen[[*keys, "period"]].astype(distinct.dtypes.to_dict())
    return rows.merge(chosen, on=[*keys, "period"], how="inner")


def period_effects(
    sim: Any, outcome: str, condition: str | None, time: str | None = None
) -> pd.DataFrame | None:
    """Return the planted effect by treated period among the rows meeting ``condition``.

    ``condition`` is a DuckDB SQL condition over the simulator's stratum columns, the
    time column (named ``time``, holding each period's date) and the simulator's
    treatment column (1 on every stratum row). The result has one row per period (index,
    sorted) with ``n1`` (rows the outcome's measure counts with the treatment) and
    ``effect`` (the measure with the treatment minus without it on the union of the
    chosen strata). Empty when no treated row meets the condition; None when the truth
    is not determined (no strata, unknown outcome, or the condition names other columns).

    Examples
    --------
    >>> from evalkit.simulate import bergen_rates
    >>> sim = bergen_rates(seed=1, n_persons=400)
    >>> eff = period_effects(sim, "work", "non_western = 1", time="month")
    >>> len(eff), list(eff.columns)
    (34, ['n1', 'effect'])
    >>> period_effects(sim, "work", "month < DATE '2020-01-01'", time="month").empty
    True
    >>> period_effects(sim, "work", "city = 'Oslo'", time="month") is None
    True
    """
    return _memo(
        sim, ("effects", outcome, condition, time), lambda: _effects(sim, outcome, condition, time)
    )


def _effects(
    sim: Any, outcome: str, condition: str | None, time: str | None
) -> pd.DataFrame | None:
    rows = chosen_strata(sim, outcome, condition, time)
    if rows is None:
        return None
    by = rows.groupby("period", sort=True)[["n1", "sum1", "n0", "sum0"]].sum()
    by = by[(by["n1"] > 0) & (by["n0"] > 0)]
    out = pd.DataFrame(
        {"n1": by["n1"].astype(float), "effect": by["sum1"] / by["n1"] - by["sum0"] / by["n0"]},
        index=by.index,
    )
    return out


def _months(later: Any, earlier: Any) -> int:
    """Months from ``earlier`` to ``later``: dates, or period numbers counting months."""
    if isinstance(later, int | np.integer) and isinstance(earlier, int | np.integer):
        return int(later - earlier)
    a, b = pd.Timestamp(later), pd.Timestamp(earlier)
    return (a.year - b.year) * 12 + (a.month - b.month)


def average(
    effects: pd.DataFrame,
    rule: str,
    *,
    position: int | None = None,
    event_time: float | None = None,
    window: Sequence[int] | None = None,
    bin_endpoints: bool = False,
    reference: Sequence[float] = (-1,),
) -> float | None:
    """Average period effects (from :func:`period_effects`) by an estimator's rule.

    Periods without a row have no planted effect (zero). ``position`` is the index of
    the period for ``"period"``; ``event_time``, ``window``, ``bin_endpoints`` and
    ``reference`` describe an event-study term (event times count months from the first
    treated period; binned end points pool every month that far or farther).

    Examples
    --------
    >>> import pandas as pd
    >>> eff = pd.DataFrame({"n1": [1.0, 3.0], "effect": [0.2, 0.4]},
    ...                    index=pd.to_datetime(["2020-03-01", "2020-04-01"]))
    >>> round(average(eff, "treated_cells"), 6), round(average(eff, "treated_periods"), 6)
    (0.35, 0.3)
    >>> average(eff, "period", position=1)
    0.4
    >>> average(eff, "event_time", event_time=-2)
    0.0
    >>> round(average(eff, "event_time", event_time=1, window=(-3, 1), bin_endpoints=True), 6)
    0.4
    >>> round(average(eff, "event_window", window=(-2, 1)), 6)
    0.3
    """
    if rule not in RULES:
        return None
    if effects.empty:
        return 0.0
    if rule == "treated_cells":
        return float((effects["effect"] * effects["n1"]).sum() / effects["n1"].sum())
    if rule == "treated_periods":
        return float(effects["effect"].mean())
    if rule == "period":
        if position is None or not 0 <= position < len(effects):
            return None
        return float(effects["effect"].iloc[position])
    if rule == "event_window":
        if window is None:
            return None
        # the average of the effects at event times 0 .. last of the window (HonestDiD's
        # target), each relative to the reference
        values = [
            average(effects, "event_time", event_time=e, window=window, reference=reference)
            for e in range(0, int(max(window)) + 1)
        ]
        return float(np.mean(values))
    if event_time is None:
        return None
    first = effects.index.min()
    ev = pd.Series([_months(t, first) for t in effects.index], index=effects.index)
    low, high = (None, None) if window is None else (min(window), max(window))

    def at(e: float) -> float:
        chosen = ev == e
        if bin_endpoints and high is not None and e == high:
            chosen = ev >= e
        elif bin_endpoints and low is not None and e == low:
            chosen = ev <= e
        part = effects[chosen.to_numpy()]
        if part.empty:
            return 0.0
        return float((part["effect"] * part["n1"]).sum() / part["n1"].sum())

    return at(event_time) - sum(at(r) for r in reference) / max(len(reference), 1)


def _same_measure(study: Any, sim: Any, spec: Any) -> bool:
    """Say whether the analysis' outcome is the measure the simulator's truth is for."""
    outcome = spec.outcome
    sim_measure = sim.measures.get(outcome)
    on_rows = study.collapse is None or getattr(spec, "fit_on", "cells") == "rows"
    if not on_rows:
        mine = study.collapse.measure(outcome)
        theirs = Measure(outcome, **dict(sim_measure)) if sim_measure else None
        if mine is None or theirs is None or mine.to_dict() != theirs.to_dict():
            return False
        return spec.kwargs.get("treatment") in study.cell_keys(spec)
    measure = dict(sim_measure or {})
    where = measure.pop("where", None)
    if measure != {"column": outcome, "stat": "mean"}:
        return False
    return where is None or _strata_condition(spec.where, where)[0]


def _strata_condition(condition: str | None, measure_where: str | None) -> tuple[bool, str | None]:
    """Return whether rows meeting ``condition`` are counted by a measure, and the rest of it.

    A measure that counts only rows meeting ``measure_where`` (e.g. persons at risk) is
    the analysis' outcome mean when that condition is one of the AND-ed parts of the
    analysis' condition; the strata hold only the rows the measure counts, so the other
    parts (None: none) select among them. Conditions with OR, NOT or BETWEEN are not
    split (False).

    Examples
    --------
    >>> _strata_condition("neet_prev = 1 AND country = 'Norway'", "neet_prev = 1")
    (True, "(country = 'Norway')")
    >>> _strata_condition("neet_prev = 1", "neet_prev = 1")
    (True, None)
    >>> _strata_condition("neet_prev = 1 OR age > 20", "neet_prev = 1")
    (False, None)
    """
    if measure_where is None:
        return True, condition
    if condition is None:
        return False, None

    def parts(text: str) -> list[str] | None:
        text = " ".join(text.split())
        if re.search(r"\b(or|not|between)\b", text, flags=re.IGNORECASE):
            return None
        return [p.strip().strip("()").strip() for p in re.split(r"\s+and\s+", text, flags=re.I)]

    mine, theirs = parts(condition), parts(measure_where)
    if mine is None or theirs is None:
        return False, None
    folded = {p.lower() for p in mine}
    if not all(p.lower() in folded for p in theirs):
        return False, None
    rest = [p for p in mine if p.lower() not in {q.lower() for q in theirs}]
    return True, " AND ".join(f"({p})" for p in rest) or None


def _sql_literal(value: Any) -> str | None:
    """Return a scalar as a DuckDB literal, or None for other values."""
    import math

    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None


def _rules(spec: Any) -> dict[str, str]:
    """Return the estimator's declared rules by term, the treatment column filled in."""
    declared = getattr(registry.get(spec.estimator), "effect_average", {}) or {}
    treatment = spec.kwargs.get("treatment")
    out = {}
    for term, rule in declared.items():
        if term == "{treatment}":
            if not isinstance(treatment, str):
                continue
            term = treatment
        out[term] = rule
    return out


def _direct(study: Any, sim: Any, spec: Any, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Return the truths the simulator states for (outcome, term, group) of the same group."""
    terms = getattr(sim, "truth_terms", None) or {}
    same_group = not spec.custom_where and (
        (spec.group == "all" and spec.where is None)
        or (
            spec.group in sim.groups
            and _norm(sim.groups[spec.group]) == _norm(study.groups.get(spec.group))
        )
    )
    if not terms or not same_group:
        return [None] * len(rows)
    return [terms.get((spec.outcome, str(r.get("term")), spec.group)) for r in rows]


def truth_lookup(study: Any, sim: Any, spec: Any) -> Lookup | None:
    """Return a function results rows -> true values, or None when the data are not simulated.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from evalkit.study import load_study
    >>> from evalkit.simulate import bergen_rates
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "study.toml").write_text('''
    ... [study]
    ... name = "t"
    ... [data]
    ... simulator = "bergen_rates"
    ... [roles]
    ... unit = "city"
    ... time = "month"
    ... treatment = "treated"
    ... [collapse]
    ... by = ["city", "month", "treated"]
    ... measures = {work = "mean"}
    ... [[analysis]]
    ... id = "twfe"
    ... estimator = "did.TWFE"
    ... options = {outcome = "work"}
    ... ''')
    >>> study = load_study(folder, check_data=False)
    >>> sim = bergen_rates(seed=1, n_persons=400)
    >>> lookup = truth_lookup(study, sim, study.analyses[0])
    >>> value = lookup([{"term": "treated"}, {"term": "other"}])
    >>> abs(value[0] - sim.truth["work"]["all"]) < 1e-12, value[1]
    (True, None)
    """
    if sim is None:
        return None
    outcome = spec.outcome
    if outcome is None:
        return lambda rows: [None] * len(rows)

    def lookup(rows: Sequence[Mapping[str, Any]]) -> list[float | None]:
        out = _direct(study, sim, spec, rows)
        if outcome in sim.measures and _same_measure(study, sim, spec):
            computed = _by_rule(sim, spec, rows, study)
            out = [d if d is not None else c for d, c in zip(out, computed, strict=True)]
        return out

    if getattr(spec, "by", None) is not None:
        return lambda rows: _by_subgroups(study, sim, spec, rows)
    return lookup


def _by_subgroups(study: Any, sim: Any, spec: Any, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Truths of a ``by=`` fit: each subgroup's estimand on its rows, differences of them.

    A subgroup row (key ``subgroup``) gets the truth of the same analysis restricted to the
    rows whose ``by`` column (a data column, or the SQL of a ``[columns]`` entry) has that
    value; a difference row ``"a - b"`` gets the truth of ``a`` minus that of ``b`` for the
    same term (and period or event time).
    """
    import dataclasses

    labels = [str(r.get("subgroup")) for r in rows]
    plain = set(labels)
    expression = study.columns.get(spec.by) if getattr(study, "columns", None) else None
    column = f"({expression})" if expression else quote(spec.by)
    out: list[Any] = [None] * len(rows)
    by_key: dict[tuple[Any, ...], float | None] = {}

    def key(label: str, r: Mapping[str, Any]) -> tuple[Any, ...]:
        return (label, str(r.get("term")), str(r.get("time")), str(r.get("event_time")))

    for label in dict.fromkeys(labels):
        if _split_difference(label, plain) is not None:
            continue
        mine = [i for i, lab in enumerate(labels) if lab == label]
        condition = f"CAST({column} AS VARCHAR) = {_sql_literal(label)}"
        where = f"({spec.where}) AND ({condition})" if spec.where else condition
        sub = dataclasses.replace(spec, where=where, custom_where=True, by=None)
        look = truth_lookup(study, sim, sub)
        values = look([rows[i] for i in mine]) if look is not None else [None] * len(mine)
        for i, v in zip(mine, values, strict=True):
            out[i] = v
            by_key[key(label, rows[i])] = v
    for i, label in enumerate(labels):
        pair = _split_difference(label, plain)
        if pair is None:
            continue
        a = by_key.get(key(pair[0], rows[i]))
        b = by_key.get(key(pair[1], rows[i]))
        out[i] = None if a is None or b is None else a - b
    return out


def _split_difference(label: str, plain: set[str]) -> tuple[str, str] | None:
    """Return ``(a, b)`` when ``label`` is the difference row ``"a - b"`` of two subgroups."""
    parts = label.split(" - ")
    for k in range(1, len(parts)):
        a, b = " - ".join(parts[:k]), " - ".join(parts[k:])
        if a in plain and b in plain:
            return a, b
    return None


def _rule_for(rules: Mapping[str, str], term: Any) -> str | None:
    """Return the rule of a term: its own, or that of a declared prefix ``"name*"``."""
    term = str(term)
    if term in rules:
        return rules[term]
    for key, rule in rules.items():
        if key.endswith("*") and term.startswith(key[:-1]):
            return rule
    return None


def _by_rule(sim: Any, spec: Any, rows: Sequence[Mapping[str, Any]], study: Any) -> list[Any]:
    """Return the truths by the estimator's declared rule over the analysis' rows."""
    rules = _rules(spec)
    treatment = spec.kwargs.get("treatment")
    time = spec.kwargs.get("time")
    time = time if isinstance(time, str) else None
    out: list[float | None] = [None] * len(rows)
    if not rules:
        return out
    if spec.split is not None:
        return _contrast(study, sim, spec, rows, rules)
    # the strata hold only the rows the measure counts: a part of the condition that is
    # the measure's own condition is dropped; any other condition applies as it stands
    counted, rest = _strata_condition(spec.where, sim.measures[spec.outcome].get("where"))
    where = rest if counted else spec.where
    if any(rule in _STAGGERED for rule in rules.values()):
        return _staggered(sim, spec, rows, rules, where)
    effects = period_effects(sim, spec.outcome, where, time)
    if effects is None:
        # a condition on other columns (a city, a cohort, a derived column): the mean of
        # the rows' exact effects, when the simulator keeps them, gives the treated-cells
        # average; the other rules need the effects by period and stay unknown
        if treatment != sim.term:
            return out
        value = sim.truth_where(sim.term, spec.outcome, spec.where, columns=study.columns)
        return [value if _rule_for(rules, r.get("term")) == "treated_cells" else None for r in rows]
    if not effects.empty and treatment != sim.term:
        return out  # another treatment column on treated rows: not determined here
    window = spec.kwargs.get("window")
    reference = spec.kwargs.get("reference", -1)
    refs = tuple(reference) if isinstance(reference, list | tuple) else (reference,)
    periods = sorted(
        (r.get("time"), i)
        for i, r in enumerate(rows)
        if _rule_for(rules, r.get("term")) == "period" and r.get("time") is not None
    )
    position = {i: k for k, (_, i) in enumerate(periods)}
    for i, r in enumerate(rows):
        rule = _rule_for(rules, r.get("term"))
        if rule is None:
            continue
        if rule == "period" and len(periods) != len(effects) and not effects.empty:
            continue
        event = r.get("event_time")
        if rule == "event_window" and spec.kwargs.get("target") == "first":
            rule, event = "event_time", 0
        out[i] = average(
            effects,
            rule,
            position=position.get(i),
            event_time=None if event is None else float(event),
            window=window,
            bin_endpoints=bool(spec.kwargs.get("bin_endpoints", False)),
            reference=refs,
        )
    return out


def _contrast(
    study: Any, sim: Any, spec: Any, rows: Sequence[Mapping[str, Any]], rules: Mapping[str, str]
) -> list[Any]:
    """Return the truths of a within-unit contrast: target rows' effect minus the others'.

    Both are averaged by the estimator's rule among the analysis' rows that are in, and
    not in, the targeted split group (e.g. a triple difference).
    """
    split = spec.split
    treatment = spec.kwargs.get("treatment")
    time = spec.kwargs.get("time")
    time = time if isinstance(time, str) else None
    out: list[float | None] = [None] * len(rows)
    if treatment != sim.term:
        return out
    if split.is_group:
        targets: dict[str, str] = {"1": f"({split.condition})"}
        others = f"NOT ({split.condition})"
    else:
        raw = spec.kwargs.get("target")
        values = list(raw) if isinstance(raw, list | tuple) else [raw]
        literals = [_sql_literal(v) for v in values]
        if any(v is None for v in literals):
            return out
        col = quote(split.column)
        others = f"{col} NOT IN ({', '.join(literals)})"  # type: ignore[arg-type]
        if spec.kwargs.get("separate") and len(values) > 1:
            targets = {str(v): f"{col} = {lit}" for v, lit in zip(values, literals, strict=True)}
        else:
            label = ", ".join(map(str, values))
            targets = {label: f"{col} IN ({', '.join(literals)})"}  # type: ignore[arg-type]

    def within(condition: str) -> str:
        return f"({spec.where}) AND ({condition})" if spec.where else condition

    for i, r in enumerate(rows):
        rule = _rule_for(rules, r.get("term"))
        condition = targets.get(str(r.get("group")))
        if rule != "treated_cells" or condition is None:
            continue
        mine = period_effects(sim, spec.outcome, within(condition), time)
        theirs = period_effects(sim, spec.outcome, within(others), time)
        if mine is None or theirs is None or mine.empty or theirs.empty:
            continue
        a, b = average(mine, rule), average(theirs, rule)
        out[i] = None if a is None or b is None else a - b
    return out


def _staggered(
    sim: Any,
    spec: Any,
    rows: Sequence[Mapping[str, Any]],
    rules: Mapping[str, str],
    condition: str | None,
) -> list[Any]:
    """Return the truths of staggered-adoption terms (rules ``cohort_time``, ``cohort_event_time``).

    ``cohort_time``: the mean effect over the treated observations of the row's cohort in
    the row's time (zero before the cohort is treated), as a group-time ATT(g,t) on
    rows or repeated cross-sections. ``cohort_event_time``: the mean effect over the
    treated observations at the row's event time, each observation counting once; when
    the analysis averages its rows within ``collapse_by`` first, each such cell counts
    once (its effect is the mean of its rows'), as an estimator without weights averages
    the cells. Unknown (None) with an estimator ``weights`` option, a treatment other
    than the simulator's, or strata without the ``cohort`` column.
    """
    out: list[float | None] = [None] * len(rows)
    cohort = spec.kwargs.get("cohort")
    treatment = spec.kwargs.get("treatment")
    time = spec.kwargs.get("time")
    time = time if isinstance(time, str) else None
    if not isinstance(cohort, str) or treatment not in (None, sim.term):
        return out
    if spec.kwargs.get("weights") is not None:
        return out
    strata = chosen_strata(sim, spec.outcome, condition, time)
    if strata is None or cohort not in strata:
        return out
    if not (
        pd.api.types.is_integer_dtype(strata["period"])
        and pd.api.types.is_integer_dtype(strata[cohort])
    ):
        return out
    first = strata[cohort].to_numpy()
    period = strata["period"].to_numpy()
    if ((first <= 0) | (period < first)).any():
        return out  # the cohort column is not the adoption period of the planted treatment
    strata = strata.assign(_event=period - first)
    keys: list[str] | bool | None = None  # False: the cells' keys are not in the strata
    if getattr(spec, "collapse_by", None):
        keys = ["period" if k == time else k for k in spec.collapse_by]
        if not all(k in strata for k in keys):
            keys = False

    def effect(part: pd.DataFrame) -> float:
        return float(part["sum1"].sum() / part["n1"].sum() - part["sum0"].sum() / part["n0"].sum())

    def cells_at(event: float) -> float | None:
        part = strata[strata["_event"] == event]
        if part.empty:
            return 0.0
        if keys is None:
            return effect(part)
        if keys is False:
            return None
        by = part.groupby(keys, sort=False)[["n1", "sum1", "n0", "sum0"]].sum()
        return float((by["sum1"] / by["n1"] - by["sum0"] / by["n0"]).mean())

    for i, r in enumerate(rows):
        rule = rules.get(str(r.get("term")))
        if rule == "cohort_time" and r.get("cohort") is not None and r.get("time") is not None:
            part = strata[(strata[cohort] == r["cohort"]) & (strata["period"] == r["time"])]
            out[i] = 0.0 if part.empty else effect(part)
        elif rule == "cohort_event_time" and r.get("event_time") is not None:
            out[i] = cells_at(float(r["event_time"]))
    return out
