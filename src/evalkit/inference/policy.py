"""The one policy for inference: which method a fit uses, why, and when it warns.

Every estimator calls :func:`choose_inference` with the user's spec (None when the
choice is left to evalkit), the methods it supports, and the design's
:class:`ClusterCounts`. The choice reads two tables and nothing else:

- :data:`THRESHOLDS`: how many clusters make "few clusters" and "few treated clusters";
- :data:`POLICY`: for each situation, the methods in order of preference (the first one
  the estimator supports is used) and why.

The reason is recorded for every choice, a requested one included, and the warning
texts give the actual counts ("1 treated and 9 untreated clusters of 'city'").

Counting the clusters that matter
---------------------------------
Cluster-robust inference fails when few clusters carry the treated (or the control)
variation (MacKinnon & Webb 2017). A cluster carries both when treatment varies
against controls *within* it: in some period it holds treated units and untreated ones
(a state with treated and never-treated counties; a region with a treated and a control
city). :class:`ClusterCounts` therefore counts three kinds of cluster: ``treated``
(treated units and no controls beside them), ``untreated`` (no treated units) and
``mixed``. The few-treated problem is ``min(treated + mixed, untreated + mixed)`` below
:attr:`Thresholds.few_treated`. "Units" are the level treatment is compared at: the
panel's units for TWFE and event studies, the units (cities) for triple differences,
whose within-unit group contrasts are absorbed by design.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from evalkit.errors import FewClustersWarning
from evalkit.inference.spec import Inference, spec_class

__all__ = [
    "POLICY",
    "THRESHOLDS",
    "Choice",
    "ClusterCounts",
    "Rule",
    "Thresholds",
    "choose_inference",
    "count_clusters",
]


@dataclass(frozen=True)
class Thresholds:
    """The one table of cluster-count thresholds.

    Attributes
    ----------
    few_clusters
        Below this many clusters CR1 is unreliable (Cameron & Miller 2015), so the
        automatic choice moves to CR2; explicit CR1 warns below :attr:`cr1_warn`;
        influence-function estimators warn below it.
    few_treated
        Below this many clusters carrying treated (or control) variation, CR1 and CR2
        both over-reject: with one treated city of ten both reject a true null about
        half the time at the 5% level (tests/simulation/test_twfe_coverage.py).
    cr1_warn
        An explicitly requested CR1 warns below this many clusters.
    one_treated
        Below this many clusters carrying treated (or control) variation (that is, one),
        the default is conformal inference over time: the wild bootstrap (WCR) never
        rejects there (size 0, power 0.34 at an effect of 3 on the one-treated-of-ten
        design) and randomization over ten cities cannot reach 5% (granularity 1/10);
        conformal held size 0.05 with power 0.93 (docs/guide/inference-evidence.md).
    """

    few_clusters: int = 30
    few_treated: int = 5
    cr1_warn: int = 10
    one_treated: int = 2


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Rule:
    """One row of :data:`POLICY`.

    Attributes
    ----------
    prefer
        Methods in order of preference; the first the estimator supports is chosen.
    within_unit
        Preference for designs whose fixed effects absorb every shock a unit's groups
        share in a period (triple differences); None = as :attr:`prefer`.
    why
        The reason recorded in the result (the counts are prefixed).
    valid
        Methods that hold their level in this situation; choosing or requesting another
        cluster-robust method here issues a :class:`~evalkit.errors.FewClustersWarning`.
    """

    prefer: tuple[str, ...]
    why: str
    within_unit: tuple[str, ...] | None = None
    valid: tuple[str, ...] = field(default=())


#: The automatic choice, one row per situation (see :func:`situation`): one cluster
#: carrying the treated (or control) variation, 2 to ``few_treated - 1`` of them, fewer
#: than ``few_clusters`` clusters, or many. To change a default, edit that row's
#: ``prefer`` (one line); the evidence is in docs/guide/inference-evidence.md.
POLICY: dict[str, Rule] = {
    "one_treated": Rule(
        prefer=("conformal", "wild", "cr2"),
        within_unit=("hetero",),
        why=(
            "cluster-robust standard errors reject a true null about half the time with a "
            "single treated (or untreated) cluster, so conformal inference over time "
            "(moving-block permutations of the treated cluster's residuals; p-values in "
            "steps of 1/T) was used where the design allows (one treatment start, no "
            "covariates, every cluster in every period), otherwise the restricted wild "
            "cluster bootstrap (valid but very conservative with one treated cluster); "
            "simulation evidence in docs/guide/inference-evidence.md"
        ),
        valid=("conformal", "wild", "permutation", "placebo"),
    ),
    "few_treated": Rule(
        prefer=("wild", "cr2"),
        within_unit=("hetero",),
        why=(
            "CR1 over-rejects with few treated clusters (18.5% at 5% with 3 treated of 30), "
            "so the restricted wild cluster bootstrap (WCR, Rademacher, 9,999 draws or all "
            "2^G sign vectors) was used, p-value and interval by test inversion; it held "
            "size 0.05 with 3 treated of 10 (docs/guide/inference-evidence.md)"
        ),
        valid=("wild", "permutation", "conley_taber", "ferman_pinto", "conformal", "placebo"),
    ),
    "few_clusters": Rule(
        prefer=("cr2",),
        why=(
            "CR1 is unreliable with few clusters, so CR2 with Satterthwaite degrees of "
            "freedom was used"
        ),
        valid=("cr2", "wild", "permutation", "conley_taber", "ferman_pinto", "conformal"),
    ),
    "many_clusters": Rule(
        prefer=("cluster",),
        why="CR1 is the convention",
        valid=("cluster", "cr2", "wild", "bootstrap", "permutation", "jackknife"),
    ),
}

#: The reason when an estimator without the few-treated methods falls back to CR2.
FEW_TREATED_CR2_WHY = (
    "CR1 is unreliable with few (treated) clusters, so CR2 with Satterthwaite degrees of "
    "freedom was used; with so few treated clusters CR2 over-rejects as well, so its "
    "intervals are descriptive (a FewClustersWarning says so)"
)

#: The reason for the within-unit (triple-differences) few-treated choice.
WITHIN_UNIT_WHY = (
    "cluster-robust standard errors (CR1 and CR2) are far too small with so few treated "
    "clusters, also in triple differences (in a simulated one-treated-city design CR2 "
    "intervals covered about half the time), so heteroskedasticity-robust HC1 was used; "
    "it assumes the errors are independent across unit x group x time cells once the "
    "unit x time effects absorb the shocks common to a unit's groups; serial correlation "
    "within a unit x group (the same persons in a cell month after month) makes it too "
    "small, so with more than two periods a FewClustersWarning recommends before/after "
    "cells"
)


@dataclass(frozen=True)
class ClusterCounts:
    """How many clusters carry treated variation, control variation, or both.

    Attributes
    ----------
    cluster
        The clustering column.
    n_clusters
        Number of clusters.
    treated
        Clusters with treated units and, in the periods they are treated, no untreated
        units beside them.
    untreated
        Clusters without treated units.
    mixed
        Clusters where treatment varies against controls within the cluster.

    Examples
    --------
    >>> c = ClusterCounts("city", 10, treated=1, untreated=9, mixed=0)
    >>> c.few_treated(), c.text()
    (True, "10 clusters of 'city': 1 treated and 9 untreated")
    """

    cluster: str
    n_clusters: int
    treated: int
    untreated: int
    mixed: int = 0

    @property
    def treated_side(self) -> int:
        """Clusters that carry treated variation (treated + mixed)."""
        return self.treated + self.mixed

    @property
    def control_side(self) -> int:
        """Clusters that carry control variation (untreated + mixed)."""
        return self.untreated + self.mixed

    def few_treated(self, thresholds: Thresholds = THRESHOLDS) -> bool:
        """Whether few clusters carry the treated or the control variation."""
        return min(self.treated_side, self.control_side) < thresholds.few_treated

    def text(self) -> str:
        """Return the counts in words, for reasons and warnings."""
        out = f"{self.n_clusters} clusters of {self.cluster!r}: {self.treated} treated and "
        out += f"{self.untreated} untreated"
        if self.mixed:
            out += f", {self.mixed} with treated and untreated units within"
        return out

    def to_dict(self) -> dict[str, int | str]:
        """Return the counts as a JSON-safe dictionary."""
        return {
            "cluster": self.cluster,
            "n_clusters": self.n_clusters,
            "treated": self.treated,
            "untreated": self.untreated,
            "mixed": self.mixed,
        }


def count_clusters(
    cluster: np.ndarray,
    time: np.ndarray,
    treated: np.ndarray,
    *,
    name: str,
    unit: np.ndarray | None = None,
) -> ClusterCounts:
    """Classify clusters as treated, untreated or mixed (see :class:`ClusterCounts`).

    Parameters
    ----------
    cluster, time
        Integer codes ``0..G-1`` and ``0..T-1`` per row.
    treated
        Boolean per row: a treated observation.
    name
        The clustering column (for messages).
    unit
        Integer codes of the level treatment is compared at, when rows are finer than
        it (triple-differences cells: a unit-period is treated when any of its rows is);
        None when each row is its own unit-period.

    Examples
    --------
    Two clusters; the first holds a treated and an untreated unit in period 1:

    >>> cl = np.array([0, 0, 0, 0, 1, 1]); t = np.array([0, 1, 0, 1, 0, 1])
    >>> d = np.array([0, 1, 0, 0, 0, 0], dtype=bool)
    >>> count_clusters(cl, t, d, name="region").text()
    "2 clusters of 'region': 0 treated and 1 untreated, 1 with treated and untreated units within"
    """
    cl = np.asarray(cluster, dtype=np.int64)
    tm = np.asarray(time, dtype=np.int64)
    d = np.asarray(treated, dtype=bool)
    n_clusters = int(cl.max()) + 1 if cl.size else 0
    n_time = int(tm.max()) + 1 if tm.size else 0
    if unit is not None:
        u = np.asarray(unit, dtype=np.int64)
        n_units = int(u.max()) + 1 if u.size else 0
        ut = u * n_time + tm
        any_treated = np.bincount(ut[d], minlength=n_units * n_time) > 0
        d = any_treated[ut]
    key = cl * n_time + tm
    size = n_clusters * n_time
    n_treated = np.bincount(key[d], minlength=size).reshape(n_clusters, n_time)
    n_all = np.bincount(key, minlength=size).reshape(n_clusters, n_time)
    has_treated = (n_treated > 0).any(axis=1)
    mixed = ((n_treated > 0) & (n_all > n_treated)).any(axis=1)
    present = (n_all > 0).any(axis=1)
    return ClusterCounts(
        cluster=name,
        n_clusters=int(present.sum()),
        treated=int((has_treated & ~mixed).sum()),
        untreated=int((present & ~has_treated).sum()),
        mixed=int(mixed.sum()),
    )


def situation(counts: ClusterCounts, thresholds: Thresholds = THRESHOLDS) -> str:
    """Return the row of :data:`POLICY` that applies to a design.

    ``"one_treated"`` (one cluster carries the treated or the control variation),
    ``"few_treated"``, ``"few_clusters"`` or ``"many_clusters"``.

    Examples
    --------
    >>> situation(ClusterCounts("city", 10, 1, 9)), situation(ClusterCounts("city", 10, 3, 7))
    ('one_treated', 'few_treated')
    """
    if min(counts.treated_side, counts.control_side) < thresholds.one_treated:
        return "one_treated"
    if counts.few_treated(thresholds):
        return "few_treated"
    if counts.n_clusters < thresholds.few_clusters:
        return "few_clusters"
    return "many_clusters"


@dataclass(frozen=True)
class Choice:
    """The inference a fit uses, why, and the warning it issues (if any).

    Attributes
    ----------
    spec
        The typed spec (requested, or chosen).
    reason
        Why: recorded in the result's ``inference.reason``.
    requested
        Whether the user asked for it.
    counts
        The design's cluster counts (None without clusters).
    warning
        The text of the FewClustersWarning to issue, or None.
    """

    spec: Inference
    reason: str
    requested: bool
    counts: ClusterCounts | None = None
    warning: str | None = None

    @property
    def method(self) -> str:
        """Return the method name."""
        return self.spec.method

    def warn(self, stacklevel: int = 4) -> None:
        """Issue the warning, if any (a :class:`~evalkit.errors.FewClustersWarning`)."""
        if self.warning is not None:
            warnings.warn(self.warning, FewClustersWarning, stacklevel=stacklevel + 1)


def _warning(
    method: str,
    requested: bool,
    counts: ClusterCounts,
    design: str,
    thresholds: Thresholds,
) -> str | None:
    """Return the few-cluster warning for ``method`` on this design, or None."""
    if method in POLICY[situation(counts, thresholds)].valid:
        return None  # the table says it holds its level here
    few = counts.few_treated(thresholds)
    where = f"{counts.treated} treated and {counts.untreated} untreated clusters of "
    where += f"{counts.cluster!r}"
    if counts.mixed:
        where += f" (and {counts.mixed} with treated and untreated units within)"
    if design == "influence":
        if method != "none" and counts.n_clusters < thresholds.few_clusters:
            return (
                f"only {counts.n_clusters} clusters of {counts.cluster!r} ({where}): "
                "influence-function standard errors and the multiplier bootstrap can be "
                "unreliable with few clusters"
            )
        return None
    if design == "imputation":
        if method == "cluster" and (few or counts.n_clusters < thresholds.few_clusters):
            return (
                f"{counts.n_clusters} clusters ({where}): the clustered variance of the "
                "imputation estimator relies on many clusters and can be too small with few"
            )
        return None
    if method == "cluster" and requested and (few or counts.n_clusters < thresholds.cr1_warn):
        return (
            f"CR1 standard errors with {where} over-reject badly; inference='cr2' (or a "
            "few-treated-cluster method) is more reliable"
        )
    if method == "cr2" and few:
        if design == "within_unit" and requested:
            return (
                f"CR2 standard errors with {where} are far too small in triple differences "
                "(a single treated city's 95% intervals cover about half the time); "
                "inference='hetero' is valid when the errors are independent across cells "
                "after the fixed effects"
            )
        return (
            f"CR2 standard errors with {where} over-reject: with one treated city of ten, "
            "CR1 and CR2 both reject a true null about half the time at the 5% level; read "
            "the intervals as descriptive, compare groups within the treated clusters "
            "(did.TripleDiff), or use a few-treated-cluster method"
        )
    return None


def choose_inference(
    spec: Inference | None,
    *,
    supported: tuple[str, ...],
    counts: ClusterCounts | None,
    design: str = "regression",
    own: tuple[str, str] | None = None,
    thresholds: Thresholds = THRESHOLDS,
) -> Choice:
    """Choose the inference of a fit (or record why the requested one is used).

    Parameters
    ----------
    spec
        The user's typed spec, or None to choose automatically.
    supported
        The estimator's ``supported_inference``.
    counts
        The design's cluster counts (:func:`count_clusters`); None when the estimator
        does not cluster.
    design
        ``"regression"`` (TWFE, event studies), ``"within_unit"`` (triple
        differences: the unit x time effects absorb what a unit's groups share),
        ``"imputation"`` or ``"influence"`` (group-time estimators with
        influence-function variances): selects the :data:`POLICY` preference and the
        warning texts.
    own
        ``(method, reason)``: the estimator's own default, used when it prefers its own
        variance (influence-function estimators) or supports none of the policy's
        preferences.
    thresholds
        The thresholds table (tests pass another to probe the policy).

    Returns
    -------
    Choice

    Examples
    --------
    >>> c = choose_inference(None, supported=("cluster", "cr2", "none"),
    ...                      counts=ClusterCounts("city", 10, 1, 9))
    >>> c.method, c.reason.split(": ")[0]
    ('cr2', "automatic (10 clusters of 'city'")
    >>> choose_inference(c.spec, supported=("cluster", "cr2", "none"),
    ...                  counts=ClusterCounts("city", 10, 1, 9)).reason.split(";")[0]
    "requested: inference=CR2() (10 clusters of 'city': 1 treated and 9 untreated)"
    """
    if spec is not None:
        text = spec.describe()
        reason = f"requested: inference={text}"
        if counts is not None:
            reason += f" ({counts.text()})"
        warning = None
        if counts is not None:
            warning = _warning(spec.method, True, counts, design, thresholds)
            reason += f"; {situation(counts, thresholds).replace('_', ' ')}"
        return Choice(spec, reason, True, counts, warning)
    if counts is None or design in ("influence", "imputation"):
        if own is None:
            raise ValueError("an estimator without cluster counts must give its own default")
        method, why = own
        warning = None if counts is None else _warning(method, False, counts, design, thresholds)
        return Choice(spec_class(method)(), why, False, counts, warning)
    where = situation(counts, thresholds)
    rule = POLICY[where]
    prefer = rule.within_unit if design == "within_unit" and rule.within_unit else rule.prefer
    why = WITHIN_UNIT_WHY if prefer is rule.within_unit else rule.why
    found = next((m for m in prefer if m in supported), None)
    if found is None:
        if own is None:
            raise ValueError(f"no policy method among {prefer} is supported: {supported}")
        method, own_why = own
        why = f"{own_why} (the policy prefers {', '.join(prefer)}, not available here)"
    elif found == "cr2" and where in ("one_treated", "few_treated") and prefer[0] != "cr2":
        method = found
        skipped = ", ".join(prefer[: prefer.index("cr2")])
        why = f"{FEW_TREATED_CR2_WHY} (the policy prefers {skipped}, not available here)"
    else:
        method = found
    reason = f"automatic ({counts.text()}): {why}"
    warning = _warning(method, False, counts, design, thresholds)
    return Choice(spec_class(method)(), reason, False, counts, warning)
