"""Randomised trials with imperfect compliance, contamination and spillover.

:class:`ITT` estimates the effect of the randomised offer (with covariates, cluster-robust
or randomization inference); :class:`IV2SLS` the effect of receipt on compliers by
two-stage least squares (linearmodels). Both can bound the spillover-free effect under a
stated assumption on the spillover to the controls (``spillover_share``). The classes
load on first access.
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.trial.itt import ITT as ITT
    from evalkit.trial.iv import IV2SLS as IV2SLS

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={"ITT": "itt", "IV2SLS": "iv"},
)
