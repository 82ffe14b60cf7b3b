"""Validation of confidence levels (used by results, inference and studies)."""

from __future__ import annotations

import math

from evalkit.errors import DesignError

__all__ = ["check_level"]


def check_level(level: float) -> float:
    """Validate a confidence level and return it as a float.

    Examples
    --------
    >>> check_level(0.9)
    0.9
    """
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < 1.0:
        raise DesignError(
            f"level must be a number strictly between 0 and 1, got {level!r}",
            hint="use level=0.95 for 95% confidence intervals",
            column="level",
        )
    return value
