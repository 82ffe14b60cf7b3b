"""Core: the result protocol, the estimator base, the registry and seeded randomness."""

from evalkit.core.estimator import Estimator, FitContext
from evalkit.core.random import make_rng
from evalkit.core.registry import get, names, register
from evalkit.core.result import InferenceInfo, Result

__all__ = [
    "Estimator",
    "FitContext",
    "InferenceInfo",
    "Result",
    "get",
    "make_rng",
    "names",
    "register",
]
