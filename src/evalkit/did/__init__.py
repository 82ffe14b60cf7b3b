"""Difference-in-differences estimators.

Importing this module registers the estimators under ``"did.<Class>"`` names.
"""

from evalkit.did.callaway_santanna import CallawaySantAnna
from evalkit.did.twfe import TWFE

__all__ = ["TWFE", "CallawaySantAnna"]
