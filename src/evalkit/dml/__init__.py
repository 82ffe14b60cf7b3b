"""Double machine learning estimators on the DoubleML package.

The estimator classes load on first access (``evalkit.dml.PLR``), so ``import
evalkit.dml`` is cheap (DoubleML and scikit-learn are imported only when a model is
used); each registers itself under ``"dml.<Class>"`` when its module is imported.
"""

from evalkit._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={
        "DID": "did",
        "DIDMulti": "did_multi",
        "IIVM": "models",
        "IRM": "models",
        "PLIV": "models",
        "PLPR": "panel",
        "PLR": "models",
        "fold_splits": "splits",
        "seeded": "learners",
    },
)
