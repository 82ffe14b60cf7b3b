"""Occupational exposures from survey-based job exposure matrices.

:class:`JobExposure` builds the matrix (survey means by occupation, shrunk towards the
overall mean, validated by split-half reliability), links it to register occupations and
estimates the effect of exposure by double ML clustered by occupation. The class loads
on first access.
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.exposure.job_exposure import JobExposure as JobExposure

__getattr__, __dir__, __all__ = attach(
    __name__,
    submodules=["matrix"],
    attributes={"JobExposure": "job_exposure"},
)
