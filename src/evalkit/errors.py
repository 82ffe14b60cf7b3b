"""Errors and warnings raised by evalkit.

Every problem evalkit detects in a user's input is raised as an :class:`EvalkitError`
(or one of its subclasses) whose message names the column or option at fault and says
how to fix it. Conditions that do not stop the computation but change what it means
(rows dropped, a cohort too small, inference that could not be computed) are issued as
an :class:`EvalkitWarning` subclass so that they can be filtered precisely.
"""

from __future__ import annotations

__all__ = [
    "ConvergenceError",
    "ConvergenceWarning",
    "DataError",
    "DesignError",
    "EvalkitError",
    "EvalkitWarning",
    "FewClustersWarning",
    "InferenceNotSupportedError",
    "InferenceUnavailableWarning",
    "LevelFixedError",
    "NotEstimableError",
    "RowsDroppedWarning",
    "SerializationError",
    "SmallCohortWarning",
    "StaggeredAdoptionWarning",
    "WeakOverlapWarning",
]


class EvalkitError(Exception):
    """Base class for every error evalkit raises about its input.

    Parameters
    ----------
    message
        What is wrong, naming the column or option.
    hint
        How to fix it; appended to the message.
    code
        A stable identifier of the check that failed (for example ``"P003"``), so
        programs can react to a specific problem without parsing the text.
    column
        The column (or option) at fault, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.hint = hint
        self.code = code
        self.column = column
        text = f"[{code}] {message}" if code else message
        if hint:
            text = f"{text}\n  hint: {hint}"
        super().__init__(text)


class DataError(EvalkitError, ValueError):
    """The data do not satisfy what the estimator needs (missing columns, bad values...)."""


class DesignError(EvalkitError, ValueError):
    """The options or roles given to an estimator or a study do not make a valid design."""


class InferenceNotSupportedError(EvalkitError, ValueError):
    """The requested inference method is not available for this estimator."""


class LevelFixedError(DesignError):
    """Intervals were asked for at a level other than the one fixed at fit time.

    Test-inversion intervals (wild bootstrap, randomization, placebo, conformal) are
    computed at the fit's level unless the procedure keeps what it needs to recompute;
    the message says how to refit (``fit(..., level=0.9)``).
    """


class SerializationError(EvalkitError, TypeError):
    """A result holds a value ``to_dict`` does not know how to write as JSON."""


class NotEstimableError(EvalkitError):
    """The quantity cannot be estimated from these data (for example, collinear regressors)."""


class ConvergenceError(EvalkitError, RuntimeError):
    """An iterative algorithm did not converge within its limits."""


class EvalkitWarning(UserWarning):
    """Base class for evalkit's warnings."""


class RowsDroppedWarning(EvalkitWarning):
    """Rows were removed from the data; the message says how many and why."""


class SmallCohortWarning(EvalkitWarning):
    """A cohort or cell is so small that its estimate is unreliable."""


class WeakOverlapWarning(EvalkitWarning):
    """Propensity scores are close to 0 or 1 for some units."""


class InferenceUnavailableWarning(EvalkitWarning):
    """A standard error or interval could not be computed; the message says why."""


class FewClustersWarning(EvalkitWarning):
    """Too few (treated) clusters for cluster-robust inference to be reliable."""


class ConvergenceWarning(EvalkitWarning):
    """An iterative algorithm stopped at its tolerance limit rather than converging cleanly."""


class StaggeredAdoptionWarning(EvalkitWarning):
    """A static TWFE regression was fitted to staggered adoption, where it can be biased."""
