"""Inference: typed specs, the automatic-choice policy, and the numerical methods.

``fit(..., inference=...)`` takes one of the typed specs below (or its name as a
case-insensitive shorthand): :class:`IID`, :class:`Hetero`, :class:`Cluster` (CR1),
:class:`CR2`, :class:`Wild`, :class:`Bootstrap` (multiplier), :class:`Permutation`,
:class:`ConleyTaber`, :class:`FermanPinto`, :class:`Conformal`, :class:`Placebo`,
:class:`Jackknife`, :class:`NoInference`. Left to evalkit (``inference=None``), every
estimator calls :func:`~evalkit.inference.policy.choose_inference`, which reads the one
table :data:`~evalkit.inference.policy.POLICY`.

This package imports nothing from :mod:`evalkit.core` (core imports it). The HonestDiD
sensitivity analysis (:func:`honest_did`) is imported on first use, so that
``import evalkit.inference`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkit.inference.policy import POLICY, THRESHOLDS, Choice, ClusterCounts, choose_inference
from evalkit.inference.spec import (
    CR2,
    IID,
    METHOD_KINDS,
    METHODS,
    Bootstrap,
    Cluster,
    Conformal,
    ConleyTaber,
    FermanPinto,
    Hetero,
    Inference,
    Jackknife,
    NoInference,
    Permutation,
    Placebo,
    Wild,
    parse_inference,
    spec_class,
)

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.inference.honest import EventTimeEstimates, HonestResult, honest_did

__all__ = [
    "CR2",
    "IID",
    "METHODS",
    "METHOD_KINDS",
    "POLICY",
    "THRESHOLDS",
    "Bootstrap",
    "Choice",
    "Cluster",
    "ClusterCounts",
    "Conformal",
    "ConleyTaber",
    "EventTimeEstimates",
    "FermanPinto",
    "Hetero",
    "HonestResult",
    "Inference",
    "Jackknife",
    "NoInference",
    "Permutation",
    "Placebo",
    "Wild",
    "choose_inference",
    "honest_did",
    "parse_inference",
    "spec_class",
]

_LAZY = {
    "EventTimeEstimates": "evalkit.inference.honest",
    "HonestResult": "evalkit.inference.honest",
    "honest_did": "evalkit.inference.honest",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evalkit.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
