"""Inference: analytic and cluster-robust variances, resampling and few-cluster methods."""

from evalkit.inference.spec import METHODS, Inference, parse_inference

__all__ = ["METHODS", "Inference", "parse_inference"]
