"""Subgroups of a one-treated-unit synthetic control (``fit(..., by="column")``).

Each subgroup is fitted on its own rows: every unit's outcome for that subgroup (Bergen's
families with children against the same families in the comparison cities, then
everyone else). Every subgroup must hold every unit and every period, so that the
placebo assignments are the same in every subgroup: donor ``j`` is the placebo "treated"
unit, with the other donors as its pool, in each of them.

The difference between two subgroups' effects then has its own placebo distribution.
For each run (the treated unit and each donor) the difference of the two gap paths,
``gap_a - gap_b``, is a gap path of its own; the treated unit's is ranked among the
donors' with the statistics of :mod:`evalkit.synth.placebo` (post/pre RMSPE ratio for
the average effect, ``|gap_t| / pre-RMSPE`` per period), which gives a p-value in steps
of ``1 / (1 + n)`` and, since a constant difference ``delta`` subtracted from the treated
unit's post-period outcomes in subgroup ``a`` leaves every fit unchanged, a test-inversion
interval for the difference. With more than two subgroups, the equality test ranks the
spread of the subgroups' gap paths around their mean (for two subgroups it is the
difference test).

Placebos are exchangeable with the treated unit under the null that the difference is
zero (or ``delta``) in the treated unit as in the donors, the same design assumption as
the placebo test of each subgroup's effect.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.core.heterogeneity import split_by
from evalkit.core.result import InferenceInfo, Result
from evalkit.core.uncertainty import NoInference, TestInversion, Uncertainty
from evalkit.errors import DataError, DesignError, InferenceNotSupportedError
from evalkit.errors import InferenceUnavailableWarning as _Unavailable
from evalkit.synth.placebo import PlaceboRuns, rank_p_value
from evalkit.synth.result import placebo_intervals

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.core.estimator import FitContext
    from evalkit.synth.result import SyntheticControlResult

__all__ = [
    "SyntheticControlByResult",
    "check_every_unit",
    "difference_runs",
    "equality_test",
    "placebo_fit_by",
]


@dataclass(frozen=True, eq=False)
class SyntheticControlByResult(Result):
    """Subgroup effects of a synthetic control fit and their pairwise differences.

    Rows: each subgroup's ``att`` and per-period ``effect`` rows (key ``subgroup``), then
    for each pair ``"a - b"`` the differences. With placebo inference every row's p-value
    and interval come from a placebo test (:class:`~evalkit.core.uncertainty.TestInversion`).

    Attributes
    ----------
    fits : Mapping[str, SyntheticControlResult]
        Each subgroup's own result (weights, paths, placebo runs).
    placebos : Mapping[str, PlaceboRuns]
        Placebo runs by subgroup and by difference (key ``"a - b"``): the difference's
        gaps are the two subgroups' gaps subtracted run by run.
    """

    fits: Mapping[str, Any] = field(default_factory=dict)
    placebos: Mapping[str, PlaceboRuns] = field(default_factory=dict)


def check_every_unit(data: pd.DataFrame, by: str, unit: str, time: str) -> None:
    """Refuse subgroups that lack a unit or a period (their placebo runs would differ).

    Examples
    --------
    >>> df = pd.DataFrame({"u": [1, 1, 2], "t": [1, 1, 1], "g": ["a", "b", "a"]})
    >>> check_every_unit(df, "g", "u", "t")
    Traceback (most recent call last):
    evalkit.errors.DataError: subgroup 'b' has no rows for unit(s) 2 ...
    """
    units = pd.unique(data[unit])
    times = pd.unique(data[time])
    for group, rows in split_by(data, by):
        for role, column, wanted in (("unit", unit, units), ("period", time, times)):
            have = set(pd.unique(rows[column]).tolist())
            lacking = [v for v in wanted.tolist() if v not in have]
            if lacking:
                shown = ", ".join(map(str, lacking[:5])) + (" ..." if len(lacking) > 5 else "")
                raise DataError(
                    f"subgroup {group!r} has no rows for {role}(s) {shown} of {column!r}; "
                    "by= with placebo inference needs every unit and period in every "
                    "subgroup, so that each subgroup has the same placebo runs",
                    hint=f"give every {role} rows in each subgroup of {by!r} (its outcome for "
                    f"that subgroup), or drop the {role}(s) {shown} from the data",
                    column=by,
                )


def difference_runs(a: PlaceboRuns, b: PlaceboRuns) -> PlaceboRuns:
    """Return the runs of the difference ``a - b``: gap paths subtracted donor by donor.

    Both must hold the same units in the same order (the treated unit first) and the same
    periods. The pre-fit cutoff, if any, applies to the difference's own pre-period fit.
    """
    if not (np.array_equal(a.units, b.units) and np.array_equal(a.times, b.times)):
        raise DesignError(  # pragma: no cover - check_every_unit refuses this first
            "the subgroups' placebo runs differ in their units or periods",
            hint="give every unit and period rows in every subgroup",
            column="by",
        )
    return PlaceboRuns(a.units, a.gaps - b.gaps, a.times, a.n_pre, a.cutoff)


def equality_test(runs: list[PlaceboRuns]) -> tuple[np.ndarray, np.ndarray]:
    """Placebo test that the effects are equal in every subgroup.

    For each run, the deviations of the subgroups' gap paths from their mean over
    subgroups; statistic: their post/pre root-mean-square ratio (average effect), then per
    period the root mean square over subgroups of period ``t``'s deviation over the
    pre-period one. The treated unit's is ranked among the donors' (those every
    subgroup keeps). Returns ``(statistics, p_values)`` of the treated unit, average
    first. With two subgroups this is the difference test.
    """
    gaps = np.stack([r.gaps for r in runs])  # (G, units, T)
    n_pre = runs[0].n_pre
    dev = gaps - gaps.mean(axis=0)
    pre = np.sqrt(np.mean(dev[:, :, :n_pre] ** 2, axis=(0, 2)))
    post = np.sqrt(np.mean(dev[:, :, n_pre:] ** 2, axis=(0, 2)))
    per = np.sqrt(np.mean(dev[:, :, n_pre:] ** 2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = np.column_stack([post / pre, per / pre[:, None]])  # (units, 1 + post)
    kept = np.all([r.kept for r in runs], axis=0)
    others = stats[1:][kept[1:]]
    p = np.array([rank_p_value(stats[0, j], others[:, j]) for j in range(stats.shape[1])])
    return stats[0], p


def _keyed(table: pd.DataFrame, subgroup: str) -> pd.DataFrame:
    out = table[["term", "estimate", "time"]].copy()
    out.insert(1, "subgroup", subgroup)
    return out


def placebo_fit_by(est: Any, data: pd.DataFrame, by: str, ctx: FitContext) -> Result:
    """``fit(by=...)`` of a one-treated-unit synthetic control estimator.

    Every subgroup is fitted with the same placebo assignments (each donor in turn, the
    same donors in every subgroup); differences get placebo p-values and intervals.
    """
    method = ctx.inference.method if ctx.inference is not None else "placebo"
    if method not in ("placebo", "none"):
        raise InferenceNotSupportedError(
            f"{est.registry_name} compares subgroups (by=) with placebo inference only, "
            f"not {method!r}",
            hint="use inference='placebo' (or 'none' for point estimates)",
            column="by",
        )
    check_every_unit(data, by, est.unit, est.time)
    fits: list[tuple[Any, SyntheticControlResult]] = est._fit_groups(data, by, ctx)
    groups = [str(g) for g, _ in fits]
    _check_same_treatment(fits, by, est.treatment)
    tables = [_keyed(r._table, g) for g, (_, r) in zip(groups, fits, strict=True)]
    n_rows = len(tables[0])
    pairs = list(itertools.combinations(range(len(groups)), 2))
    for a, b in pairs:
        diff = tables[a].copy()
        diff["subgroup"] = f"{groups[a]} - {groups[b]}"
        diff["estimate"] = tables[a]["estimate"].to_numpy() - tables[b]["estimate"].to_numpy()
        tables.append(diff)
    table = pd.concat(tables, ignore_index=True)
    runs: dict[str, PlaceboRuns] = {}
    first = fits[0][1]
    uncertainty: Uncertainty
    tests: list[dict[str, Any]] = []
    if method == "placebo":
        for g, (_, r) in zip(groups, fits, strict=True):
            assert r.placebos is not None
            runs[g] = r.placebos
        for a, b in pairs:
            runs[f"{groups[a]} - {groups[b]}"] = difference_runs(runs[groups[a]], runs[groups[b]])
        uncertainty, _ = _placebo_uncertainty(list(runs.values()), ctx.level)
        # each subgroup's fit has warned of its own empty intervals; warn of the differences'
        said = {n for g in groups for n in placebo_intervals(runs[g], ctx.level)[2]}
        for key in list(runs)[len(groups) :]:
            for note in placebo_intervals(runs[key], ctx.level)[2]:
                if note not in said:
                    said.add(note)
                    warnings.warn(f"{key}: {note}", _Unavailable, stacklevel=4)
        stat, p = equality_test([runs[g] for g in groups])
        time_keys = tables[0]["time"].tolist()
        for j, (term, t) in enumerate(zip(tables[0]["term"], time_keys, strict=True)):
            tests.append(
                {
                    "term": term,
                    **({} if t is None else {"time": t}),
                    "statistic": float(stat[j]),
                    "df": None,
                    "p_value": float(p[j]),
                    "method": "placebo",
                }
            )
        n = {k: r.n_placebos for k, r in runs.items()}
        description = (
            f"per subgroup of {by}: placebo in space with the same {runs[groups[0]].units.size - 1}"
            " donors as placebos in every subgroup; differences ranked on the donor-by-donor "
            "differences of the placebo gap paths (p-values in steps of "
            f"1/{min(n.values()) + 1} or finer); intervals by test inversion"
        )
    else:
        uncertainty = NoInference(getattr(first.uncertainty, "reason", "inference='none'"))
        description = f"per subgroup of {by}: point estimates only"
    assert len(table) == n_rows * (len(groups) + len(pairs))
    info = {
        "by": by,
        "groups": groups,
        "equality_tests": tests,
        "n_placebos": {k: r.n_placebos for k, r in runs.items()},
        "p_value_granularity": {k: r.granularity for k, r in runs.items()},
        "fits": {str(g): dict(r.info) for g, r in fits},
        "seed": ctx.seed,
    }
    inference = InferenceInfo(
        method=first.inference.method, description=description, reason=first.inference.reason
    )
    return SyntheticControlByResult(
        estimator=first.estimator,
        _table=table,
        inference=inference,
        info=info,
        level=ctx.level,
        uncertainty=uncertainty,
        fits=dict(zip(groups, (r for _, r in fits), strict=True)),
        placebos=runs,
    )


def _check_same_treatment(fits: list[tuple[Any, Any]], by: str, treatment: str) -> None:
    """Refuse subgroups whose treated unit or treatment start differ (no shared runs)."""
    first_group, first = fits[0]
    for group, res in fits[1:]:
        for what in ("treated_unit", "treatment_start"):
            if res.info[what] != first.info[what]:
                raise DesignError(
                    f"subgroups {first_group!r} and {group!r} of {by!r} differ in their "
                    f"{what.replace('_', ' ')} ({first.info[what]!r} vs {res.info[what]!r}), "
                    "so they cannot share placebo runs",
                    hint=f"mark the same unit and periods as treated in {treatment!r} in "
                    "every subgroup, or fit the subgroups separately",
                    column=by,
                )


def _placebo_uncertainty(runs: list[PlaceboRuns], level: float) -> tuple[TestInversion, list[str]]:
    """Stack every run set's p-values and inverted intervals (in table order)."""

    def intervals(lvl: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
        parts = [placebo_intervals(r, lvl) for r in runs]
        notes = list(dict.fromkeys(n for part in parts for n in part[2]))
        return (
            np.concatenate([part[0] for part in parts]),
            np.concatenate([part[1] for part in parts]),
            notes,
        )

    low, high, notes = intervals(level)
    unc = TestInversion(
        p_value=np.concatenate([np.r_[r.p_value_ratio(), r.p_values_by_period()] for r in runs]),
        conf_low=low,
        conf_high=high,
        level=level,
        method="placebo",
        # the coarsest step of any row (rows with a pre-fit cutoff may have fewer placebos)
        granularity=max(r.granularity for r in runs),
        statistic=np.concatenate([r.statistics() for r in runs]),
        invert=lambda lvl: intervals(lvl)[:2],
        note="; ".join(notes) or None,
    )
    return unc, notes
