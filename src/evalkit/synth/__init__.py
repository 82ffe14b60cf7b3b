"""Estimators of the synthetic-control family.

All of them work on the wide outcome matrix of :mod:`evalkit.data.wide`
(:func:`~evalkit.data.wide.wide_panel`), built once from the data and the roles.
Importing this module registers the estimators under ``"synth.<Class>"`` names.
"""

from evalkit.data.wide import Cohort, WideOutcomes, wide_panel
from evalkit.synth.augmented import AugmentedSyntheticControl
from evalkit.synth.result import SyntheticControlResult
from evalkit.synth.synthetic_control import SyntheticControl
from evalkit.synth.synthetic_did import SyntheticDiD, SyntheticDiDResult

__all__ = [
    "AugmentedSyntheticControl",
    "Cohort",
    "SyntheticControl",
    "SyntheticControlResult",
    "SyntheticDiD",
    "SyntheticDiDResult",
    "WideOutcomes",
    "wide_panel",
]
