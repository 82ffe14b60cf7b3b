"""Option checks shared by the difference-in-differences estimators.

Column-name options (:func:`check_name`, :func:`check_names`), an estimator's role
options at once (:func:`check_role_names`) and event-time reference periods
(:func:`reference_periods`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evalkit.data.checks import check_name, check_names
from evalkit.errors import DesignError

__all__ = ["check_name", "check_names", "check_role_names", "reference_periods"]


def check_role_names(est: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Validate an estimator's role options and normalise its covariates (in place).

    ``required`` options must name a column, ``optional`` ones may be None; a
    ``covariates`` field becomes a tuple of names.
    """
    for option in required:
        check_name(getattr(est, option), option)
    for option in optional:
        check_name(getattr(est, option), option, required=False)
    if hasattr(est, "covariates"):
        object.__setattr__(est, "covariates", check_names(est.covariates, "covariates"))


def reference_periods(values: Any, option: str = "reference") -> tuple[float, ...]:
    """Normalise the ``reference`` option to a sorted tuple of distinct floats.

    Examples
    --------
    >>> reference_periods(-1), reference_periods((-1, -5))
    ((-1.0,), (-5.0, -1.0))
    """
    scalar = isinstance(values, (int, float, np.integer, np.floating))
    items = (values,) if scalar else values
    try:
        bad = isinstance(values, bool) or any(isinstance(v, bool) for v in items)
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        bad, out = True, ()
    if bad or not out or any(not math.isfinite(v) for v in out):
        raise DesignError(
            f"{option} must be an event time or a tuple of event times, got {values!r}",
            hint=f"e.g. {option}=-1",
            column=option,
        )
    return tuple(sorted(set(out)))
