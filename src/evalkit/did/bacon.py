"""Goodman-Bacon decomposition of a static two-way fixed-effects estimate."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.registry import register
from evalkit.core.result import InferenceInfo, Result, make_table
from evalkit.core.uncertainty import NoInference
from evalkit.data.panel import Panel
from evalkit.did._options import check_role_names
from evalkit.errors import DataError, DesignError, InferenceNotSupportedError, NotEstimableError
from evalkit.inference.policy import choose_inference
from evalkit.numerics.levels import check_level

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["COMPARISONS", "BaconDecomposition", "BaconResult", "BaconSummary"]

#: The kinds of 2x2 comparison, in display order, with their labels.
COMPARISONS: dict[str, str] = {
    "treated_vs_never": "Treated vs never treated",
    "earlier_vs_later": "Earlier vs later treated",
    "later_vs_earlier": "Later vs earlier treated",
    "treated_vs_always": "Treated vs always treated",
}
#: Comparisons that use already-treated units as controls ("forbidden" comparisons).
FORBIDDEN: tuple[str, ...] = ("later_vs_earlier", "treated_vs_always")

NO_UNCERTAINTY_REASON = (
    "the Goodman-Bacon decomposition is an exact algebraic identity of the TWFE point "
    "estimate, so its 2x2 estimates and weights have no standard errors, p-values or "
    "intervals; use did.TWFE for inference on the overall coefficient"
)
NO_UNCERTAINTY = f"none: {NO_UNCERTAINTY_REASON}"


@register("did.BaconDecomposition")
@dataclasses.dataclass(frozen=True, kw_only=True)
class BaconDecomposition(Estimator):
    """Goodman-Bacon (2021) decomposition of the static TWFE estimate.

    With staggered adoption, the coefficient of a binary treatment in a regression with
    unit and period fixed effects is a weighted average of every two-group, two-period
    (2x2) difference-in-differences the data contain: each treatment-timing group
    against the never-treated units, earlier- against later-treated groups (before the
    later group is treated), and later- against earlier-treated groups (after the earlier
    group is treated). The last kind uses already-treated units as controls; when effects
    change with time since treatment their outcomes move with their own effect, and the
    TWFE coefficient is biased. The decomposition shows how much weight those
    comparisons carry and what they estimate.

    Parameters
    ----------
    outcome, unit, time
        Column names. The panel must be balanced; ``time`` is any sortable period label.
    treatment
        An absorbing 0/1 treatment column (treated unit in a treated period). Give this
        or ``cohort``.
    cohort
        First treated period of each unit, on the scale of a numeric ``time``;
        never-treated units coded 0 or missing. Units with a cohort at or before the
        first period are always treated; cohorts after the last period never treated.
    covariates, weights
        Not supported: with covariates the decomposition gains a within-timing-group
        term (Goodman-Bacon 2021, section 5), and weighted TWFE has another one. Setting
        either raises :class:`~evalkit.errors.DesignError`.

    Notes
    -----
    Each 2x2 estimate is the TWFE coefficient on the two groups' rows in the comparison's
    window, and its weight is the window's share of the observations times the share of
    the full sample's residual treatment variance that the window holds (Goodman-Bacon
    2021, Theorem 1); the weights are non-negative and sum to one, and the weighted sum
    of the estimates equals the TWFE coefficient exactly. Units treated in every period
    ("always treated") act as controls whose treatment never changes; their comparisons
    are listed as ``treated_vs_always`` and, like ``later_vs_earlier``, count as
    forbidden. There is no inference (``inference="none"``): the decomposition is an
    identity of point estimates.

    Examples
    --------
    >>> import evalkit
    >>> from evalkit.did import BaconDecomposition
    >>> df = evalkit.datasets.load("mpdta")
    >>> df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    >>> bacon = BaconDecomposition(outcome="lemp", unit="countyreal", time="year",
    ...                            treatment="post").fit(df)
    >>> round(bacon.twfe_estimate, 4), round(bacon.forbidden_weight, 4)
    (-0.0365, 0.0539)
    """

    outcome: str
    unit: str
    time: str
    treatment: str | None = None
    cohort: str | None = None
    covariates: tuple[str, ...] = ()
    weights: str | None = None

    supported_inference: ClassVar[tuple[str, ...]] = ("none",)
    supports_by: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_role_names(self, ("outcome", "unit", "time"), ("treatment", "cohort", "weights"))
        if (self.treatment is None) == (self.cohort is None):
            raise DesignError(
                "BaconDecomposition needs exactly one of treatment= (an absorbing 0/1 column) "
                "or cohort= (first treated period)",
                hint="e.g. treatment='post', the treated-unit-in-treated-period indicator",
                column="treatment",
            )
        if self.covariates:
            raise DesignError(
                "BaconDecomposition does not support covariates: with covariates the TWFE "
                "coefficient also mixes a within-timing-group comparison (Goodman-Bacon "
                "2021, section 5), which is not implemented",
                hint="drop covariates= to decompose the unconditional TWFE estimate, or use "
                "did.CallawaySantAnna(covariates=...) for covariate-adjusted effects",
                column="covariates",
            )
        if self.weights is not None:
            raise DesignError(
                "BaconDecomposition does not support weights: the decomposition is of the "
                "unweighted TWFE regression",
                hint="drop weights=, or decompose unweighted cells",
                column="weights",
            )

    def fit(self, data: pd.DataFrame | Panel, **kwargs: Any) -> Result:
        """Decompose the TWFE estimate on ``data``; see :meth:`Estimator.fit`.

        ``by=`` is not supported (there is nothing to compare across subgroups without
        uncertainty): decompose each subgroup's rows separately.
        """
        if kwargs.get("by") is not None:
            raise DesignError(
                "BaconDecomposition does not support by=: a decomposition has no standard "
                "errors to compare subgroups with",
                hint="fit the decomposition on each subgroup's rows separately",
                column="by",
            )
        return super().fit(data, **kwargs)

    def _fit(self, data: pd.DataFrame, ctx: FitContext) -> Result:
        panel = Panel(
            data,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            treatment=self.treatment,
            cohort=self.cohort,
            balanced=True,
            absorbing=self.treatment is not None,
            stacklevel=4,
        )
        n_units, n_periods = panel.n_units, panel.n_periods
        first = _first_treated(panel, self.time, self.treatment, self.cohort)
        codes, group = np.unique(first, return_inverse=True)
        sizes = np.bincount(group, minlength=codes.size)
        cells = group[panel.unit_codes] * n_periods + panel.time_codes
        sums = np.bincount(cells, panel.values(self.outcome), minlength=codes.size * n_periods)
        means = sums.reshape(codes.size, n_periods) / sizes[:, None]
        comparisons, twfe = decompose(means, sizes, codes)
        times = panel.times

        def label(code: int) -> Any:
            if code <= 0:
                return "always"
            if code >= n_periods:
                return "never"
            return _scalar(times[code])

        table = make_table(
            [f"{label(c.treated)} vs {_control_name(label(c.control))}" for c in comparisons],
            [c.estimate for c in comparisons],
            np.full(len(comparisons), np.nan),
            comparison=[c.kind for c in comparisons],
            treated=pd.array([label(c.treated) for c in comparisons], dtype=object),
            control=pd.array([label(c.control) for c in comparisons], dtype=object),
            weight=[c.weight for c in comparisons],
            forbidden=[c.kind in FORBIDDEN for c in comparisons],
        )
        groups = {str(label(int(c))): int(n) for c, n in zip(codes, sizes, strict=True)}
        info = {
            "n_obs": panel.n_obs,
            "n_units": n_units,
            "n_periods": n_periods,
            "twfe_estimate": twfe,
            "forbidden_weight": float(sum(c.weight for c in comparisons if c.kind in FORBIDDEN)),
            "timing_groups": groups,
            "roles": dict(panel.roles),
            "dropped": dict(panel.dropped),
            "seed": ctx.seed,
        }
        return BaconResult(
            estimator=self.registry_name,
            _table=table,
            inference=InferenceInfo(
                "none",
                NO_UNCERTAINTY,
                reason=choose_inference(
                    ctx.inference,
                    supported=self.supported_inference,
                    counts=None,
                    own=("none", "a decomposition of point estimates has no uncertainty"),
                ).reason,
            ),
            info=info,
            level=ctx.level,
            uncertainty=NoInference(NO_UNCERTAINTY_REASON),
        )


def _control_name(label: Any) -> str:
    return f"{label} treated" if label in ("never", "always") else str(label)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _first_treated(
    panel: Panel, time: str, treatment: str | None, cohort: str | None
) -> np.ndarray:
    """Each unit's first treated period as a period code; ``n_periods`` if never treated."""
    n_periods = panel.n_periods
    first = np.full(panel.n_units, n_periods, dtype=np.int64)
    if treatment is not None:
        treated = panel.values(treatment) > 0
        np.minimum.at(first, panel.unit_codes[treated], panel.time_codes[treated])
        return first
    times = panel.times
    if not pd.api.types.is_numeric_dtype(np.asarray(times)):
        raise DataError(
            f"time column {time!r} must be numeric when the design is given by cohort=",
            hint="give treatment= (an absorbing 0/1 column) instead, or a numeric time",
            column=time,
        )
    g = np.zeros(panel.n_units)
    g[panel.unit_codes] = panel.values(cohort)
    code = np.searchsorted(np.asarray(times, dtype=float), g, side="left")
    return np.where(g > 0, code, n_periods).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One 2x2 comparison: groups by first treated period code, estimate and weight."""

    kind: str
    treated: int
    control: int
    estimate: float
    weight: float


def _demean(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Two-way demeaning of a complete (groups x periods) grid with group weights ``w``.

    Equal to demeaning the unit-level grid when each row is the mean of ``w`` units.
    """
    col = (w @ a) / w.sum()
    row = a.mean(axis=1, keepdims=True)
    return a - row - col[None, :] + (w @ row[:, 0]) / w.sum()


def decompose(
    means: np.ndarray, sizes: np.ndarray, first: np.ndarray
) -> tuple[list[Comparison], float]:
    """Split the TWFE coefficient on a balanced panel into 2x2 comparisons.

    Parameters
    ----------
    means
        Mean outcome of each timing group in each period, (groups x periods).
    sizes
        Number of units in each group.
    first
        Each group's first treated period code (0: always treated, ``n_periods``: never),
        distinct.

    Returns
    -------
    comparisons : list of Comparison
        Every 2x2 comparison with positive weight.
    twfe : float
        The TWFE coefficient, ``sum(weight * estimate)``.

    The treatment varies by group and period only, so every sum over units is a sum over
    groups weighted by their sizes: the work is on a (groups x periods) grid whatever the
    number of units. Each comparison's estimate is the TWFE coefficient on its two groups
    over its window, and its weight ``(N_w / N) * sum_w(D~_w^2) / sum(D~^2)``, with ``D~``
    the two-way demeaned treatment of the full panel and ``D~_w`` that of the window
    (Goodman-Bacon 2021, Theorem 1: squared sample share times the window's treatment
    variance over the full sample's).
    """
    n_periods = means.shape[1]
    w = sizes.astype(float)
    d = (np.arange(n_periods)[None, :] >= first[:, None]).astype(float)
    d_full = _demean(d, w)
    total = float(w @ (d_full**2).sum(axis=1))
    if total <= 1e-12 * w.sum() * n_periods:
        raise NotEstimableError(
            "the treatment does not vary once unit and period effects are removed: every "
            "treated unit starts treatment in the same period and there are no untreated "
            "or always-treated units to compare with",
            hint="the decomposition (and TWFE) needs units treated at different times or "
            "units that are never treated",
            column="treatment",
        )
    twfe = float(w @ (_demean(means, w) * d_full).sum(axis=1) / total)
    index = {int(g): i for i, g in enumerate(first)}
    timing = sorted(g for g in index if 0 < g < n_periods)
    pairs: list[tuple[str, int, int, int, int]] = []  # kind, treated, control, start, stop
    for k in timing:
        if n_periods in index:
            pairs.append(("treated_vs_never", k, n_periods, 0, n_periods))
        if 0 in index:
            pairs.append(("treated_vs_always", k, 0, 0, n_periods))
        for ell in timing:
            if k < ell:
                pairs.append(("earlier_vs_later", k, ell, 0, ell))
            elif k > ell:
                pairs.append(("later_vs_earlier", k, ell, ell, n_periods))
    comparisons = []
    n_total = w.sum() * n_periods
    for kind, treated, control, start, stop in pairs:
        rows = [index[treated], index[control]]
        ws = w[rows]
        ds = _demean(d[rows, start:stop], ws)
        var = float(ws @ (ds**2).sum(axis=1))
        share = ws.sum() * (stop - start) / n_total
        estimate = float(ws @ (_demean(means[rows, start:stop], ws) * ds).sum(axis=1) / var)
        comparisons.append(Comparison(kind, treated, control, estimate, share * var / total))
    return comparisons, twfe


@dataclasses.dataclass(frozen=True, eq=False)
class BaconResult(Result):
    """The 2x2 comparisons of a Goodman-Bacon decomposition, one row per comparison.

    ``tidy()`` has the result columns (``std_error``, ``statistic``, ``p_value`` and the
    intervals are empty: the decomposition has no uncertainty, as
    ``inference.description`` says) followed by ``comparison`` (the kind, see
    :data:`COMPARISONS`), ``treated`` and ``control`` (the groups' first treated periods,
    or ``"never"``/``"always"``), ``weight`` and ``forbidden`` (True where the control
    group is already treated). :meth:`by_type` sums the weights by kind.
    """

    @property
    def twfe_estimate(self) -> float:
        """The TWFE coefficient: the weighted sum of the 2x2 estimates."""
        return float(self.info["twfe_estimate"])

    @property
    def forbidden_weight(self) -> float:
        """Total weight of comparisons that use already-treated units as controls."""
        return float(self.info["forbidden_weight"])

    def tidy(self, level: float | None = None) -> pd.DataFrame:
        """Return one row per 2x2 comparison (see the class description).

        Raises
        ------
        InferenceNotSupportedError
            If a confidence ``level`` is asked for: there are no intervals.
        """
        if level is not None:
            self._no_intervals(level)
        tidy = super().tidy()
        extra = self._table[["comparison", "treated", "control", "weight", "forbidden"]]
        return pd.concat([tidy, extra.reset_index(drop=True)], axis=1)

    def ci(self, level: float | None = None) -> pd.DataFrame:
        """Not available: the decomposition has no uncertainty (raises)."""
        self._no_intervals(level)
        raise AssertionError("unreachable")  # pragma: no cover

    def _no_intervals(self, level: float | None) -> None:
        if level is not None:
            check_level(level)
        raise InferenceNotSupportedError(
            "a Goodman-Bacon decomposition has no confidence intervals: it is an exact "
            "identity of point estimates",
            hint="call tidy() without level=; for an interval of the overall coefficient fit "
            "did.TWFE",
            column="level",
        )

    def by_type(self) -> pd.DataFrame:
        """Total weight, weighted-average estimate and count of comparisons by kind.

        Returns
        -------
        pandas.DataFrame
            Columns ``comparison, weight, estimate, n_comparisons, forbidden``; the
            weights sum to one and ``sum(weight * estimate)`` is the TWFE estimate.
        """
        table = self._table
        rows = []
        for kind in COMPARISONS:
            part = table[table["comparison"] == kind]
            if part.empty:
                continue
            w = part["weight"].to_numpy(dtype=float)
            rows.append(
                {
                    "comparison": kind,
                    "weight": float(w.sum()),
                    "estimate": float(w @ part["estimate"].to_numpy(dtype=float) / w.sum()),
                    "n_comparisons": len(part),
                    "forbidden": kind in FORBIDDEN,
                }
            )
        return pd.DataFrame(rows)

    def summary(self, digits: int = 4) -> BaconSummary:  # type: ignore[override]
        """Return a printable summary: weights by kind, then every comparison."""
        return BaconSummary(self, digits)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Scatter the 2x2 estimates against their weights, by kind of comparison.

        A horizontal line marks the TWFE estimate. Forbidden comparisons are drawn as
        crosses. Returns the matplotlib Axes; never calls ``show()``.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.2))
        markers: Mapping[str, str] = {
            "treated_vs_never": "o",
            "earlier_vs_later": "s",
            "later_vs_earlier": "X",
            "treated_vs_always": "P",
        }
        table = self._table
        for i, (kind, text) in enumerate(COMPARISONS.items()):
            part = table[table["comparison"] == kind]
            if part.empty:
                continue
            ax.scatter(
                part["weight"],
                part["estimate"],
                marker=markers[kind],
                color=f"C{i}",
                label=f"{text} (weight {part['weight'].sum():.2f})",
                **kwargs,
            )
        ax.axhline(self.twfe_estimate, color="0.3", lw=0.9, ls="--", label="TWFE estimate")
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xlabel("Weight")
        ax.set_ylabel("2x2 DiD estimate")
        ax.set_title(f"Goodman-Bacon decomposition (TWFE = {self.twfe_estimate:.4f})")
        ax.legend(fontsize="small")
        return ax


class BaconSummary:
    """Text and HTML summary of a :class:`BaconResult`."""

    def __init__(self, result: BaconResult, digits: int = 4) -> None:
        self.result = result
        self.digits = digits

    def _tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        d = self.digits
        by_type = self.result.by_type().assign(
            comparison=lambda t: t["comparison"].map(COMPARISONS)
        )
        by_type = by_type.rename(columns={"estimate": "average estimate"}).round(d)
        rows = self.result.tidy()[["term", "comparison", "estimate", "weight"]].copy()
        rows["comparison"] = rows["comparison"].map(COMPARISONS)
        return by_type, rows.round(d)

    def _lines(self) -> list[str]:
        r = self.result
        return [
            f"TWFE estimate {r.twfe_estimate:.{self.digits}f} = sum of weight x 2x2 estimate "
            f"over {len(r.tidy())} comparisons ({r.info['n_units']:,} units, "
            f"{r.info['n_periods']} periods).",
            f"Weight on comparisons with already-treated controls (forbidden): "
            f"{r.forbidden_weight:.{self.digits}f}.",
            f"Inference: {r.inference.description}.",
        ]

    def __str__(self) -> str:
        by_type, rows = self._tables()
        head = f"{self.result.estimator}: Goodman-Bacon decomposition"
        return "\n".join(
            [
                head,
                "=" * len(head),
                by_type.to_string(index=False),
                "",
                rows.to_string(index=False),
                "",
                *self._lines(),
            ]
        )

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:

        by_type, rows = self._tables()
        notes = "".join(f"<p>{html.escape(line)}</p>" for line in self._lines())
        return by_type.to_html(index=False) + rows.to_html(index=False) + notes
