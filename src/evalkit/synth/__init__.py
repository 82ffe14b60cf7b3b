"""Estimators of the synthetic-control family.

All of them work on the wide outcome matrix of :mod:`evalkit.data.wide`
(:func:`~evalkit.data.wide.wide_panel`), built once from the data and the roles.
"""

from evalkit.data.wide import Cohort, WideOutcomes, wide_panel
from evalkit.synth.synthetic_did import SyntheticDiD, SyntheticDiDResult

__all__ = ["Cohort", "SyntheticDiD", "SyntheticDiDResult", "WideOutcomes", "wide_panel"]
