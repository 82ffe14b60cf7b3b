"""Difference-in-differences estimators.

The estimator classes load on first access (``evalkit.did.TWFE``), so ``import
evalkit.did`` is cheap; each registers itself under ``"did.<Class>"`` when its module
is imported (:func:`evalkit.core.registry.get` does that for any registry name).
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.did.bacon import BaconDecomposition as BaconDecomposition
    from evalkit.did.callaway_santanna import CallawaySantAnna as CallawaySantAnna
    from evalkit.did.event_study import EventStudy as EventStudy
    from evalkit.did.honest_event_study import HonestEventStudy as HonestEventStudy
    from evalkit.did.imputation import ImputationDiD as ImputationDiD
    from evalkit.did.sun_abraham import SunAbraham as SunAbraham
    from evalkit.did.triple_diff import TripleDiff as TripleDiff
    from evalkit.did.twfe import TWFE as TWFE

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={
        "BaconDecomposition": "bacon",
        "CallawaySantAnna": "callaway_santanna",
        "EventStudy": "event_study",
        "HonestEventStudy": "honest_event_study",
        "ImputationDiD": "imputation",
        "SunAbraham": "sun_abraham",
        "TWFE": "twfe",
        "TripleDiff": "triple_diff",
    },
)
