"""Inference specifications: what the ``inference=`` argument of ``fit`` accepts.

``inference`` takes a typed spec object (``Wild(weights="webb")``, ``Cluster(cluster="city")``,
...) or a method name as shorthand (case-insensitive, with did-you-mean suggestions).
Every estimator declares the methods it supports; asking for another raises an
:class:`~evalkit.errors.InferenceNotSupportedError` that lists only those.

Each method yields uncertainty of one kind (:data:`METHOD_KINDS`): ``"analytic"``
(standard errors and a reference distribution), ``"draws"`` (resampling replicates),
``"test_inversion"`` (p-values and intervals by inverting a test; no standard error) or
``"none"`` (point estimates only). The result objects of those kinds live in
:mod:`evalkit.core.uncertainty`; this module imports nothing from ``evalkit.core``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from evalkit.errors import DesignError, InferenceNotSupportedError

__all__ = [
    "CR2",
    "IID",
    "METHODS",
    "METHOD_KINDS",
    "Bootstrap",
    "Cluster",
    "Conformal",
    "ConleyTaber",
    "FermanPinto",
    "Hetero",
    "Inference",
    "Jackknife",
    "NoInference",
    "Permutation",
    "Placebo",
    "Wild",
    "method_name",
    "parse_inference",
    "spec_class",
]

METHODS: dict[str, str] = {
    "iid": "classical (homoskedastic) standard errors",
    "hetero": "heteroskedasticity-robust (HC1) standard errors",
    "cluster": "cluster-robust CR1 standard errors (Stata/fixest small-sample convention)",
    "cr2": (
        "Bell-McCaffrey CR2 cluster-robust standard errors with Satterthwaite degrees of freedom"
    ),
    "wild": "wild cluster bootstrap (p-values and intervals by test inversion)",
    "bootstrap": "multiplier bootstrap",
    "permutation": "randomization inference over which clusters are treated",
    "conley_taber": "Conley-Taber inference for few treated groups",
    "ferman_pinto": "Ferman-Pinto inference for few treated groups with heteroskedasticity",
    "conformal": "conformal inference over time",
    "placebo": "placebo (in-space) inference",
    "jackknife": "jackknife standard errors",
    "none": "point estimates only",
}

#: The kind of uncertainty each method produces (see :mod:`evalkit.core.uncertainty`).
METHOD_KINDS: dict[str, str] = {
    "iid": "analytic",
    "hetero": "analytic",
    "cluster": "analytic",
    "cr2": "analytic",
    "jackknife": "analytic",
    "bootstrap": "draws",
    "wild": "test_inversion",
    "permutation": "test_inversion",
    "conley_taber": "test_inversion",
    "ferman_pinto": "test_inversion",
    "conformal": "test_inversion",
    "placebo": "test_inversion",
    "none": "none",
}

#: Other spellings users type, mapped to the canonical method name.
ALIASES: dict[str, str] = {
    "cr1": "cluster",
    "crv1": "cluster",
    "clustered": "cluster",
    "hc1": "hetero",
    "robust": "hetero",
    "classical": "iid",
    "crv2": "cr2",
    "multiplier": "bootstrap",
    "wcr": "wild",
    "wild_bootstrap": "wild",
    "randomization": "permutation",
    "ri": "permutation",
    "ct": "conley_taber",
    "fp": "ferman_pinto",
}


def method_name(name: Any, supported: tuple[str, ...] | None = None) -> str:
    """Return the canonical method name of ``name`` or raise with a did-you-mean hint.

    Case-insensitive, ``-`` and spaces read as ``_``, aliases (``"CR1"``, ``"HC1"``,
    ``"multiplier"``...) resolved. With ``supported``, suggestions and the listed
    methods are the estimator's.

    Examples
    --------
    >>> method_name("Conley-Taber")
    'conley_taber'
    """
    if not isinstance(name, str) or not name.strip():
        raise DesignError(
            f"inference must be a method name or an evalkit.inference spec, got {name!r}",
            hint="e.g. inference='cluster' or inference=evalkit.inference.Cluster(cluster='city')",
            column="inference",
        )
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = ALIASES.get(key, key)
    if key in METHODS:
        return key
    pool = list(supported) if supported else list(METHODS)
    close = difflib.get_close_matches(key, pool, n=2, cutoff=0.6)
    if not close:  # a method this estimator lacks, or an alias
        close = difflib.get_close_matches(key, list(METHODS) + list(ALIASES), n=1, cutoff=0.6)
        close = [ALIASES.get(c, c) for c in close]
    guess = ""
    if close:
        missing = [c for c in close if c not in pool]
        guess = f"did you mean {' or '.join(map(repr, close))}" + (
            " (not available here)? " if missing else "? "
        )
    what = "supported here" if supported else "known methods"
    raise DesignError(
        f"unknown inference method {name!r}",
        hint=f"{guess}{what}: {', '.join(pool)}",
        column="inference",
    )


def _check_choice(value: Any, option: str, choices: tuple[str, ...]) -> str:
    text = str(value).lower() if isinstance(value, str) else value
    if text not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        raise DesignError(
            f"{option} must be one of {', '.join(map(repr, choices))}, got {value!r}",
            hint=f"did you mean {close[0]!r}?" if close else f"e.g. {option}={choices[0]!r}",
            column=option,
        )
    return str(text)


def _check_positive_int(value: Any, option: str, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DesignError(
            f"{option} must be a whole number >= {minimum}, got {value!r}",
            hint=f"e.g. {option}=999",
            column=option,
        )


@dataclass(frozen=True)
class Inference:
    """An inference method with its options (base class of the typed specs).

    ``Inference("wild", options={"weights": "webb"})`` is accepted for compatibility and
    for study files; :func:`parse_inference` turns it into the typed spec
    (``Wild(weights="webb")``), validating every option.

    Parameters
    ----------
    method
        A method name (case-insensitive; see :data:`METHODS`).
    cluster
        Column to cluster by; overrides the estimator's ``cluster`` role.
    reps
        Number of replications for resampling methods.
    options
        Method-specific options (the fields of the typed spec).

    Examples
    --------
    >>> Inference("Cluster", cluster="city").method
    'cluster'
    >>> Inference("wild", options={"weights": "webb"}).typed()
    Wild(cluster=None, reps=None, weights='webb', variant='wcr')
    """

    method: str
    cluster: str | None = field(default=None, kw_only=True)
    reps: int | None = field(default=None, kw_only=True)
    options: Mapping[str, Any] = field(default_factory=dict, kw_only=True, repr=False)

    #: Options of the typed spec besides cluster and reps (filled by subclasses).
    option_names: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", method_name(self.method))
        _check_positive_int(self.reps, "reps")
        if self.cluster is not None and (not isinstance(self.cluster, str) or not self.cluster):
            raise DesignError(
                f"cluster must name a column, got {self.cluster!r}",
                hint="e.g. cluster='city'",
                column="cluster",
            )
        if type(self) is Inference:
            object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
            self.typed()  # validates the options
        else:
            self._validate()
            typed = {name: getattr(self, name) for name in self.option_names}
            object.__setattr__(self, "options", MappingProxyType(typed))

    def _validate(self) -> None:
        """Check the typed options (subclasses)."""

    @property
    def kind(self) -> str:
        """The kind of uncertainty this method produces (:data:`METHOD_KINDS`)."""
        return METHOD_KINDS[self.method]

    def typed(self) -> Inference:
        """Return the typed spec of this method (itself when it already is one)."""
        if type(self) is not Inference:
            return self
        cls = spec_class(self.method)
        options = dict(self.options)
        unknown = sorted(set(options) - set(cls.option_names))
        if unknown:
            close = difflib.get_close_matches(unknown[0], cls.option_names, n=1)
            raise DesignError(
                f"inference {self.method!r} has no option(s) {', '.join(unknown)}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"options of {cls.__name__}: "
                + (", ".join(("cluster", "reps", *cls.option_names))),
                column="inference",
            )
        return cls(cluster=self.cluster, reps=self.reps, **options)

    def describe(self) -> str:
        """Return the spec as the user would write it, e.g. ``"Wild(weights='webb')"``."""
        parts = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.init and f.name not in ("method", "options") and getattr(self, f.name) != f.default
        ]
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, kw_only=True)
class IID(Inference):
    """Classical (homoskedastic) standard errors.

    Examples
    --------
    >>> IID().kind
    'analytic'
    """

    method: str = field(default="iid", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class Hetero(Inference):
    """Heteroskedasticity-robust HC1 standard errors."""

    method: str = field(default="hetero", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class Cluster(Inference):
    """Cluster-robust CR1 standard errors.

    Group-time estimators give analytic influence-function standard errors clustered
    the same way.

    Parameters
    ----------
    cluster
        Column to cluster by; defaults to the estimator's ``cluster`` role (or unit).
    uniform
        Simultaneous sup-t bands from a multiplier bootstrap, where the estimator has them
        (group-time estimators).

    Examples
    --------
    >>> Cluster(cluster="city").method
    'cluster'
    """

    method: str = field(default="cluster", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ("uniform",)

    uniform: bool = False

    def _validate(self) -> None:
        if not isinstance(self.uniform, bool):
            raise DesignError(
                f"uniform must be True or False, got {self.uniform!r}", column="uniform"
            )


@dataclass(frozen=True, kw_only=True)
class CR2(Inference):
    """Bell-McCaffrey CR2 standard errors with Satterthwaite degrees of freedom."""

    method: str = field(default="cr2", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class Bootstrap(Inference):
    """Multiplier bootstrap of influence functions (draws; sup-t bands with ``uniform``).

    Parameters
    ----------
    weights
        ``"rademacher"`` (default) or ``"mammen"``.
    uniform
        Simultaneous sup-t bands instead of pointwise intervals.
    """

    method: str = field(default="bootstrap", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ("weights", "uniform")

    weights: str = "rademacher"
    uniform: bool = False

    def _validate(self) -> None:
        object.__setattr__(
            self, "weights", _check_choice(self.weights, "weights", ("rademacher", "mammen"))
        )
        if not isinstance(self.uniform, bool):
            raise DesignError(
                f"uniform must be True or False, got {self.uniform!r}", column="uniform"
            )


@dataclass(frozen=True, kw_only=True)
class Wild(Inference):
    """Wild cluster bootstrap: p-values and intervals by test inversion.

    Parameters
    ----------
    weights
        ``"rademacher"`` (default), ``"webb"`` or ``"mammen"``.
    variant
        ``"wcr"`` (restricted, imposes the null; default) or ``"wcu"`` (unrestricted).
    reps
        Bootstrap draws; None means :attr:`DEFAULT_REPS` (full enumeration when
        ``2**G <= reps`` with Rademacher weights).

    Examples
    --------
    >>> Wild(weights="Webb").weights
    'webb'
    """

    method: str = field(default="wild", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ("weights", "variant")

    DEFAULT_REPS: ClassVar[int] = 9999
    weights: str = "rademacher"
    variant: str = "wcr"

    def _validate(self) -> None:
        weights = _check_choice(self.weights, "weights", ("rademacher", "webb", "mammen"))
        variant = _check_choice(self.variant, "variant", ("wcr", "wcu"))
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "variant", variant)


@dataclass(frozen=True, kw_only=True)
class Permutation(Inference):
    """Randomization inference over which clusters are treated (exact when enumerable).

    ``reps`` None enumerates every assignment when that is feasible.
    """

    method: str = field(default="permutation", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class ConleyTaber(Inference):
    """Conley-Taber (2011) inference for few treated and many control groups."""

    method: str = field(default="conley_taber", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class FermanPinto(Inference):
    """Ferman-Pinto (2019) inference with heteroskedasticity from group sizes."""

    method: str = field(default="ferman_pinto", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class Conformal(Inference):
    """Conformal inference over time for one treated unit (Chernozhukov, Wuthrich & Zhu).

    Parameters
    ----------
    scheme
        Permutations of the post-period residuals: ``"moving_block"`` (default) or ``"iid"``.
    q
        The test statistic: ``"mean"`` (default), the absolute mean of the post-period
        residuals, the statistic for an average effect; or a number ``q`` for
        Chernozhukov-Wuthrich-Zhu's ``S_q = (mean |u_t|^q)^(1/q)``, which has little power
        against a constant effect when the post period is longer than the pre period
        (docs/guide/inference-evidence.md).
    """

    method: str = field(default="conformal", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ("scheme", "q")

    scheme: str = "moving_block"
    q: float | str = "mean"

    def _validate(self) -> None:
        scheme = _check_choice(self.scheme, "scheme", ("moving_block", "iid"))
        object.__setattr__(self, "scheme", scheme)
        if self.q != "mean" and (
            isinstance(self.q, bool) or not isinstance(self.q, int | float) or not self.q > 0
        ):
            raise DesignError(
                f"q must be 'mean' or a positive number, got {self.q!r}",
                hint="e.g. inference.Conformal(q='mean') or q=1",
                column="q",
            )


@dataclass(frozen=True, kw_only=True)
class Placebo(Inference):
    """Placebo (in-space) inference: the estimate among those of every control as treated.

    Parameters
    ----------
    cutoff
        Leave out placebo runs whose pre-treatment mean squared prediction error exceeds
        ``cutoff`` times the treated unit's (Abadie, Diamond & Hainmueller 2010 use 20, 5
        and 2); None keeps every run. Used by ``synth.SyntheticControl`` and
        ``synth.AugmentedSyntheticControl``.
    """

    method: str = field(default="placebo", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ("cutoff",)

    cutoff: float | None = None

    def _validate(self) -> None:
        c = self.cutoff
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float)) or c < 1):
            raise DesignError(
                f"placebo cutoff must be a number >= 1 (a multiple of the treated unit's "
                f"pre-period MSPE), got {c!r}",
                hint="ADH (2010) use 20, 5 and 2; None keeps every placebo",
                column="cutoff",
            )


@dataclass(frozen=True, kw_only=True)
class Jackknife(Inference):
    """Jackknife (leave-one-cluster-out) standard errors."""

    method: str = field(default="jackknife", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class NoInference(Inference):
    """Point estimates only."""

    method: str = field(default="none", init=False, repr=False)
    option_names: ClassVar[tuple[str, ...]] = ()


_CLASSES: dict[str, type[Inference]] = {
    cls.method: cls
    for cls in (
        IID,
        Hetero,
        Cluster,
        CR2,
        Bootstrap,
        Wild,
        Permutation,
        ConleyTaber,
        FermanPinto,
        Conformal,
        Placebo,
        Jackknife,
        NoInference,
    )
}
assert set(_CLASSES) == set(METHODS)


def spec_class(method: str) -> type[Any]:
    """Return the typed spec class of a method name (case-insensitive).

    Examples
    --------
    >>> spec_class("WILD").__name__
    'Wild'
    """
    return _CLASSES[method_name(method)]


def parse_inference(
    value: str | Inference | None, supported: tuple[str, ...], estimator: str
) -> Inference | None:
    """Turn the user's ``inference=`` argument into a typed spec (None = automatic).

    Raises
    ------
    DesignError
        For an unknown name (with a did-you-mean among the supported methods).
    InferenceNotSupportedError
        If the estimator does not support the method; the message lists those it does.

    Examples
    --------
    >>> parse_inference("CR1", ("cluster", "none"), "did.X")
    Cluster(cluster=None, reps=None, uniform=False)
    """
    if value is None:
        return None
    if isinstance(value, str):
        spec = spec_class(method_name(value, supported))()
    elif isinstance(value, Inference):
        spec = value.typed()
    else:
        raise DesignError(
            f"inference must be a method name or an evalkit.inference spec, got {value!r}",
            hint=f"e.g. inference='cluster'; supported here: {', '.join(supported)}",
            column="inference",
        )
    if spec.method not in supported:
        raise InferenceNotSupportedError(
            f"{estimator} does not support inference={spec.method!r}",
            hint=f"supported: {', '.join(supported)}",
            column="inference",
        )
    return spec
