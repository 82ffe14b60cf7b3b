"""Difference-in-differences estimators.

The estimator classes load on first access (``evalkit.did.TWFE``), so ``import
evalkit.did`` is cheap; each registers itself under ``"did.<Class>"`` when its module
is imported (:func:`evalkit.core.registry.get` does that for any registry name).
"""

from evalkit._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={
        "BaconDecomposition": "bacon",
        "CallawaySantAnna": "callaway_santanna",
        "EventStudy": "event_study",
        "ImputationDiD": "imputation",
        "SunAbraham": "sun_abraham",
        "TWFE": "twfe",
        "TripleDiff": "triple_diff",
    },
)
