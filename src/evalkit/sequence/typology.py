"""A typology of monthly pathways by sequence analysis, reported in aggregates only."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.uncertainty import Analytic, NoInference
from evalkit.data.checks import check_columns, check_name, check_names, numeric_column
from evalkit.data.disclosure import check_min_cell_size
from evalkit.errors import DataError, DesignError, RowsDroppedWarning
from evalkit.inference import vcov as sandwich
from evalkit.sequence.cluster import cluster_sequences, merge_small
from evalkit.sequence.distance import (
    hamming,
    optimal_matching,
    substitution_costs,
    transition_counts,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["MAX_PERSONS", "Typology", "TypologyResult"]

#: The most persons a typology accepts: its distances take ``8 n^2`` bytes (1.8 GB here).
MAX_PERSONS = 15_000


@dataclass(frozen=True, eq=False)
class TypologyResult(Result):
    """The result of :class:`Typology`: aggregate rows, plus aggregate extras.

    Extras: ``state_distribution`` (type, time, state, share: the share of the type's
    persons in each state each month; shares resting on fewer than the minimum cell
    size of persons are empty), ``transition_rates`` (from, to, rate: month-to-month
    rates over everyone, small counts empty), ``silhouette`` (average silhouette width
    by number of types tried). Never an individual sequence or a medoid.
    """

    def plot(self, ax: Axes | None = None, *, type: str | None = None, **kwargs: Any) -> Axes:
        """Plot the state distribution: of every type (bars), or of one type over time.

        With ``type=None``: one stacked bar per type, the share of its person-months in
        each state. With a type's label: its state distribution month by month
        (a chronogram); suppressed shares are drawn as a grey band.
        """
        from evalkit.sequence.plots import state_bars, state_chronogram

        if type is None:
            return state_bars(self, ax=ax)
        return state_chronogram(self, type, ax=ax)


@register("sequence.Typology")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Typology(Estimator):
    """Pathway types from monthly state sequences: distances, clustering, outcomes by type.

    Every person's sequence of states (``state`` in each ``time`` period) is compared
    with every other's by optimal matching (``distance="om"``) or Hamming distance;
    the persons are clustered by Ward's method (or Ward then PAM), with the number of
    types chosen by the average silhouette width unless ``n_types`` is given. Types
    are labelled by size (``T1`` the largest) and their two most common states.

    Rows of the result (key ``group`` = the type): ``share`` (share of persons), each
    of ``outcomes`` (the type's mean of the person's average of the column), and
    ``membership:<covariate>`` (linear probability model of belonging to the type on
    ``covariates``, heteroskedasticity-robust). With ``compare_with`` (a known typology,
    e.g. the simulator's planted types) a row ``adjusted_rand`` gives the agreement.

    Disclosure: no individual sequence, medoid or index plot is ever kept; types with
    fewer than ``min_cell_size`` persons are not reported (their persons join the nearest
    reported type, so their count cannot be recovered by subtraction), and state shares
    and transition rates resting on fewer persons are left empty.

    Parameters
    ----------
    unit, time, state
        Person identifier, period (e.g. month since entry) and state columns. Every
        person must have one row in every period.
    outcomes, covariates
        Numeric person-level columns (averaged over the person's rows).
    distance
        ``"om"`` (optimal matching) or ``"hamming"``.
    substitution
        ``"constant"`` (2 per substitution) or ``"trate"`` (from transition rates).
    indel
        Insertion/deletion cost of optimal matching (default half the largest
        substitution cost).
    clustering
        ``"ward"`` or ``"pam"``.
    n_types, max_types
        A fixed number of types, or the largest number tried (from 2).
    min_cell_size
        Smallest type reported.
    compare_with
        A column holding a known typology to compare with (simulated data).

    Notes
    -----
    Inference: ``"hetero"`` (binomial and sample-mean standard errors, HC1 for the
    membership regressions; conditional on the estimated typology) and ``"none"``.
    Distances are computed once per distinct sequence (compiled dynamic programming),
    but clustering needs all ``n^2`` of them: at most :data:`MAX_PERSONS` persons.
    The adjusted Rand row has no standard error.

    Examples
    --------
    >>> from evalkit.simulate import get
    >>> from evalkit.sequence import Typology
    >>> df = get("integration_pathways")(seed=1, n_persons=150, n_months=24).data
    >>> res = Typology(unit="person_id", time="month", state="state", n_types=6,
    ...                compare_with="planted_type").fit(df)
    >>> res.estimate("adjusted_rand") > 0.8
    True
    """

    unit: str
    time: str
    state: str
    outcomes: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    distance: str = "om"
    substitution: str = "constant"
    indel: float | None = None
    clustering: str = "ward"
    n_types: int | None = None
    max_types: int = 8
    min_cell_size: int = 5
    compare_with: str | None = None

    supported_inference: ClassVar[tuple[str, ...]] = ("hetero", "none")
    supports_by: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for role in ("unit", "time", "state"):
            check_name(getattr(self, role), role)
        check_name(self.compare_with, "compare_with", required=False)
        for option in ("outcomes", "covariates"):
            object.__setattr__(self, option, check_names(getattr(self, option), option))
        choices = {
            "distance": ("om", "hamming"),
            "substitution": ("constant", "trate"),
            "clustering": ("ward", "pam"),
        }
        for option, allowed in choices.items():
            if getattr(self, option) not in allowed:
                raise DesignError(
                    f"{option} must be one of {', '.join(map(repr, allowed))}, "
                    f"got {getattr(self, option)!r}",
                    column=option,
                )
        for option, low in (("n_types", 2), ("max_types", 2)):
            value = getattr(self, option)
            if value is None and option == "n_types":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DesignError(
                    f"{option} must be a whole number >= {low}, got {value!r}", column=option
                )
        if self.indel is not None and (
            isinstance(self.indel, bool)
            or not isinstance(self.indel, int | float)
            or not self.indel > 0
        ):
            raise DesignError(
                f"indel must be a positive number, got {self.indel!r}", column="indel"
            )
        object.__setattr__(self, "min_cell_size", check_min_cell_size(self.min_cell_size))

    # ------------------------------------------------------------------ data
    def _sequences(
        self, data: pd.DataFrame
    ) -> tuple[np.ndarray, list[str], list[Any], pd.DataFrame]:
        cols = [self.unit, self.time, self.state, *self.outcomes, *self.covariates]
        if self.compare_with:
            cols.append(self.compare_with)
        cols = list(dict.fromkeys(cols))
        check_columns(
            data,
            {
                "unit": self.unit,
                "time": self.time,
                "state": self.state,
                "outcomes": list(self.outcomes),
                "covariates": list(self.covariates),
                "compare_with": self.compare_with,
            },
        )
        frame = data[cols]
        numeric = {c: numeric_column(frame, c, "outcome or covariate") for c in [
            *self.outcomes, *self.covariates]}  # fmt: skip
        bad = frame[[self.unit, self.time, self.state]].isna().any(axis=1).to_numpy().copy()
        for v in numeric.values():
            bad |= np.isnan(v)
        if bad.any():
            # a person with any unusable row is left out whole: a sequence must be complete
            persons = frame.loc[bad, self.unit].dropna().unique()
            drop = frame[self.unit].isin(persons).to_numpy() | bad
            warnings.warn(
                f"dropped {int(drop.sum())} of {len(frame)} rows (every row of a person with a "
                f"missing {', '.join(cols[:3])} or outcome/covariate value)",
                RowsDroppedWarning,
                stacklevel=5,
            )
            frame = frame.loc[~drop]
            numeric = {c: v[~drop] for c, v in numeric.items()}
        if frame.duplicated([self.unit, self.time]).any():
            raise DataError(
                f"{self.unit!r} and {self.time!r} do not identify the rows: a person has two "
                "states in one period",
                hint="keep one state per person and period (e.g. the main one)",
                column=self.time,
            )
        units, ucode = np.unique(frame[self.unit].to_numpy(), return_inverse=True)
        times, tcode = np.unique(frame[self.time].to_numpy(), return_inverse=True)
        states, scode = np.unique(frame[self.state].astype(str).to_numpy(), return_inverse=True)
        if len(frame) != len(units) * len(times):
            short = int((np.bincount(ucode.reshape(-1), minlength=len(units)) < len(times)).sum())
            raise DataError(
                f"sequences must be complete: {short} persons lack some of the {len(times)} "
                f"periods of {self.time!r}",
                hint="align sequences on a common period (e.g. months since entry) and "
                "code gaps as a state of their own",
                column=self.time,
            )
        if len(units) < 2 * self.min_cell_size:
            raise DataError(
                f"{len(units)} persons are too few for a typology reported with "
                f"min_cell_size={self.min_cell_size}",
                column=self.unit,
            )
        if len(units) > MAX_PERSONS:
            raise DataError(
                f"{len(units)} persons: the typology needs a matrix of all pairwise distances "
                f"({len(units)}^2 numbers); at most {MAX_PERSONS} persons are accepted",
                hint="draw a random sample of persons (e.g. in the study's `where`), or fit "
                "each entry cohort separately",
                column=self.unit,
            )
        seqs = np.zeros((len(units), len(times)), dtype=np.int64)
        seqs[ucode.reshape(-1), tcode.reshape(-1)] = scode.reshape(-1)
        person = {c: np.bincount(ucode.reshape(-1), weights=v, minlength=len(units))
                  / len(times) for c, v in numeric.items()}  # fmt: skip
        persons = pd.DataFrame(person)
        if self.compare_with:
            first = frame.groupby(ucode.reshape(-1), sort=True)[self.compare_with].first()
            persons["__compare"] = first.to_numpy()
        return seqs, list(states), list(times), persons

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        from sklearn.metrics import adjusted_rand_score

        spec = ctx.inference
        method = "hetero" if spec is None else spec.method
        seqs, states, times, persons = self._sequences(data)
        n, n_states = seqs.shape[0], len(states)
        sub = substitution_costs(seqs, n_states, self.substitution)
        if self.distance == "om":
            d = optimal_matching(seqs, sub, self.indel)
        else:
            d = hamming(seqs, sub)
        raw, silhouette = cluster_sequences(d, self.clustering, self.n_types, self.max_types)
        labels, n_folded = merge_small(d, raw, self.min_cell_size)
        order = np.argsort(-np.bincount(labels), kind="stable")
        order = order[np.bincount(labels)[order] > 0]
        relabel = np.empty(labels.max() + 1, dtype=np.int64)
        relabel[order] = np.arange(len(order))
        labels = relabel[labels]
        k = len(order)
        names = [_label(i, seqs[labels == i], states) for i in range(k)]

        terms: list[str] = []
        groups: list[str] = []
        est: list[float] = []
        se: list[float] = []
        member = np.eye(k)[labels]
        for i in range(k):
            p = member[:, i].mean()
            terms.append("share")
            groups.append(names[i])
            est.append(p)
            se.append(np.sqrt(p * (1 - p) / n))
        for c in self.outcomes:
            v = persons[c].to_numpy()
            for i in range(k):
                vi = v[labels == i]
                terms.append(c)
                groups.append(names[i])
                est.append(float(vi.mean()))
                se.append(float(vi.std(ddof=1) / np.sqrt(len(vi))))
        if self.covariates:
            x = np.column_stack([np.ones(n), persons[list(self.covariates)].to_numpy()])
            if np.linalg.matrix_rank(x) < x.shape[1]:
                raise DesignError(
                    "the covariates are collinear (or constant) across persons",
                    column="covariates",
                )
            bread = np.linalg.inv(x.T @ x)
            for i in range(k):
                y = member[:, i]
                beta = bread @ (x.T @ y)
                cov = sandwich.hc1(bread, x, y - x @ beta, n, x.shape[1]).vcov
                for j, c in enumerate(self.covariates, start=1):
                    terms.append(f"membership:{c}")
                    groups.append(names[i])
                    est.append(float(beta[j]))
                    se.append(float(np.sqrt(cov[j, j])))
        note = None
        if self.compare_with:
            terms.append("adjusted_rand")
            groups.append("all")
            est.append(float(adjusted_rand_score(persons["__compare"].astype(str), labels)))
            se.append(np.nan)
            note = (
                "adjusted_rand (agreement with the typology in "
                f"{self.compare_with!r}) is descriptive: no standard error"
            )
        table = make_table(terms, est, np.full(len(terms), np.nan), group=groups)
        info = {
            "n_persons": n,
            "n_periods": len(times),
            "states": states,
            "number_of_types": k,
            "types_suppressed": n_folded,
            "silhouette": {str(key): v for key, v in silhouette.items()},
            "distance": self.distance,
            "substitution": self.substitution,
            "indel": float(sub.max() / 2 if self.indel is None else self.indel),
            "clustering": self.clustering,
            "min_cell_size": self.min_cell_size,
            "disclosure": (
                "aggregates only: no sequence, medoid or index plot; "
                f"types under {self.min_cell_size} persons folded into the nearest type; "
                "shares resting on fewer persons left empty"
            ),
            "seed": ctx.seed,
        }
        extras = {
            "state_distribution": _distribution(
                seqs, labels, names, states, times, self.min_cell_size
            ),
            "transition_rates": _transitions(seqs, states, self.min_cell_size),
            "silhouette": pd.Series(silhouette, name="silhouette"),
            "sizes": {names[i]: int((labels == i).sum()) for i in range(k)},
        }
        if method == "none":
            unc: Any = NoInference()
            inf = InferenceInfo("none", "point estimates only", reason="requested")
        else:
            unc = Analytic(np.array(se), note=note)
            inf = InferenceInfo(
                "hetero",
                "binomial and sample-mean standard errors, HC1 for membership, given the typology",
                reason="requested" if spec is not None else "the one method for a typology",
            )
        return TypologyResult(
            estimator=self.registry_name,
            _table=table,
            inference=inf,
            info=info,
            level=ctx.level,
            uncertainty=unc,
            extras=extras,
        )


def _label(i: int, seqs: np.ndarray, states: list[str]) -> str:
    counts = np.bincount(seqs.ravel(), minlength=len(states))
    top = np.argsort(-counts, kind="stable")[:2]
    return f"T{i + 1} {'/'.join(states[j] for j in top)}"


def _distribution(
    seqs: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    states: list[str],
    times: list[Any],
    min_cell: int,
) -> pd.DataFrame:
    rows = []
    s = len(states)
    for i, name in enumerate(names):
        sub = seqs[labels == i]
        size = len(sub)
        for t, when in enumerate(times):
            counts = np.bincount(sub[:, t], minlength=s)
            for j in range(s):
                c = counts[j]
                share = np.nan if 0 < c < min_cell else c / size
                rows.append((name, when, states[j], share))
    return pd.DataFrame(rows, columns=["type", "time", "state", "share"])


def _transitions(seqs: np.ndarray, states: list[str], min_cell: int) -> pd.DataFrame:
    counts = transition_counts(seqs, len(states))
    total = counts.sum(axis=1, keepdims=True)
    rate = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    rate[(counts > 0) & (counts < min_cell)] = np.nan
    rows = [
        (states[a], states[b], rate[a, b])
        for a in range(len(states))
        for b in range(len(states))
        if total[a, 0] >= min_cell
    ]
    return pd.DataFrame(rows, columns=["from", "to", "rate"])
