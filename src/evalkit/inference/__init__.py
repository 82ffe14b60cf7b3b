"""Inference: analytic and cluster-robust variances, resampling and few-cluster methods.

The HonestDiD sensitivity analysis (:func:`honest_did`) is imported on first use, so that
``import evalkit.inference`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkit.inference.spec import METHODS, Inference, parse_inference

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.inference.honest import EventTimeEstimates, HonestResult, honest_did

__all__ = [
    "METHODS",
    "EventTimeEstimates",
    "HonestResult",
    "Inference",
    "honest_did",
    "parse_inference",
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
