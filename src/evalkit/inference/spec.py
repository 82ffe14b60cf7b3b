"""Inference specifications: what the ``inference=`` argument of ``fit`` accepts.

``inference`` takes a method name or an :class:`Inference` object carrying options
(the clustering column, the number of replications, the bootstrap weights...). Every
estimator declares the methods it supports; asking for another raises an
:class:`~evalkit.errors.InferenceNotSupportedError` that lists them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from evalkit.errors import DesignError, InferenceNotSupportedError

__all__ = ["METHODS", "Inference", "parse_inference"]

METHODS: dict[str, str] = {
    "iid": "classical (homoskedastic) standard errors",
    "hetero": "heteroskedasticity-robust (HC1) standard errors",
    "cluster": "cluster-robust CR1 standard errors (Stata/fixest small-sample convention)",
    "cr2": (
        "Bell-McCaffrey CR2 cluster-robust standard errors with Satterthwaite degrees of freedom"
    ),
    "wild": "wild cluster bootstrap",
    "bootstrap": "multiplier bootstrap",
    "permutation": "randomization inference over units",
    "conley_taber": "Conley-Taber inference for few treated groups",
    "ferman_pinto": "Ferman-Pinto inference for few treated groups with heteroskedasticity",
    "conformal": "conformal inference over time",
    "placebo": "placebo (in-space) inference",
    "jackknife": "jackknife standard errors",
    "none": "point estimates only",
}


@dataclass(frozen=True)
class Inference:
    """An inference method with its options.

    Parameters
    ----------
    method
        One of the names in :data:`METHODS`.
    cluster
        Column to cluster by; overrides the estimator's ``cluster`` role.
    reps
        Number of replications for resampling methods.
    options
        Method-specific options (e.g. ``{"weights": "webb"}`` for the wild bootstrap).

    Examples
    --------
    >>> Inference("cluster", cluster="city").method
    'cluster'
    """

    method: str
    cluster: str | None = None
    reps: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            close = difflib.get_close_matches(str(self.method), list(METHODS), n=2)
            raise DesignError(
                f"unknown inference method {self.method!r}",
                hint=(f"did you mean {' or '.join(map(repr, close))}? " if close else "")
                + f"known methods: {', '.join(METHODS)}",
                column="inference",
            )
        if self.reps is not None and (not isinstance(self.reps, int) or self.reps < 1):
            raise DesignError(
                f"reps must be a positive whole number, got {self.reps!r}",
                hint="e.g. reps=999",
                column="reps",
            )
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


def parse_inference(
    value: str | Inference | None, supported: tuple[str, ...], estimator: str
) -> Inference | None:
    """Turn the user's ``inference=`` argument into an :class:`Inference` (None = automatic).

    Raises
    ------
    InferenceNotSupportedError
        If the estimator does not support the method; the message lists those it does.
    """
    if value is None:
        return None
    if isinstance(value, str):
        spec = Inference(value)
    elif isinstance(value, Inference):
        spec = value
    else:
        raise DesignError(
            f"inference must be a method name or evalkit.inference.Inference, got {value!r}",
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
