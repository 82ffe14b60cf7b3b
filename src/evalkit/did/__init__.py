"""Difference-in-differences estimators.

Importing this module registers the estimators under ``"did.<Class>"`` names.
"""

from evalkit.did.bacon import BaconDecomposition
from evalkit.did.callaway_santanna import CallawaySantAnna
from evalkit.did.event_study import EventStudy
from evalkit.did.imputation import ImputationDiD
from evalkit.did.sun_abraham import SunAbraham
from evalkit.did.triple_diff import TripleDiff
from evalkit.did.twfe import TWFE

__all__ = [
    "TWFE",
    "BaconDecomposition",
    "CallawaySantAnna",
    "EventStudy",
    "ImputationDiD",
    "SunAbraham",
    "TripleDiff",
]
