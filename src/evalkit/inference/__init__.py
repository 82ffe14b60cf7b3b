"""Inference: analytic and cluster-robust variances, resampling and few-cluster methods."""

from evalkit.inference.honest import EventTimeEstimates, HonestResult, honest_did
from evalkit.inference.spec import METHODS, Inference, parse_inference

__all__ = [
    "METHODS",
    "EventTimeEstimates",
    "HonestResult",
    "Inference",
    "honest_did",
    "parse_inference",
]
