"""Inference: typed specs, the automatic-choice policy, and the numerical methods.

``fit(..., inference=...)`` takes one of the typed specs below (or its name as a
case-insensitive shorthand): :class:`IID`, :class:`Hetero`, :class:`Cluster` (CR1),
:class:`CR2`, :class:`Wild`, :class:`Bootstrap` (multiplier), :class:`Permutation`,
:class:`ConleyTaber`, :class:`FermanPinto`, :class:`Conformal`, :class:`Placebo`,
:class:`Jackknife`, :class:`NoInference`. Left to evalkit (``inference=None``), every
estimator calls :func:`~evalkit.inference.policy.choose_inference`, which reads the one
table :data:`~evalkit.inference.policy.POLICY`.

This package imports nothing from :mod:`evalkit.core` (core imports it).
"""

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
    "FermanPinto",
    "Hetero",
    "Inference",
    "Jackknife",
    "NoInference",
    "Permutation",
    "Placebo",
    "Wild",
    "choose_inference",
    "parse_inference",
    "spec_class",
]
