"""Estimators of the synthetic-control family.

All of them work on the wide outcome matrix of :mod:`evalkit.data.wide`
(:func:`~evalkit.data.wide.wide_panel`), built once from the data and the roles.
The estimator classes load on first access (``evalkit.synth.SyntheticControl``); each
registers itself under ``"synth.<Class>"`` when its module is imported
(:func:`evalkit.core.registry.get` does that for any registry name).
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach
from evalkit.data.wide import Cohort as Cohort
from evalkit.data.wide import WideOutcomes as WideOutcomes
from evalkit.data.wide import wide_panel as wide_panel

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.synth.augmented import AugmentedSyntheticControl as AugmentedSyntheticControl
    from evalkit.synth.result import SyntheticControlResult as SyntheticControlResult
    from evalkit.synth.synthetic_control import SyntheticControl as SyntheticControl
    from evalkit.synth.synthetic_did import SyntheticDiD as SyntheticDiD
    from evalkit.synth.synthetic_did import SyntheticDiDResult as SyntheticDiDResult

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={
        "AugmentedSyntheticControl": "augmented",
        "SyntheticControl": "synthetic_control",
        "SyntheticControlResult": "result",
        "SyntheticDiD": "synthetic_did",
        "SyntheticDiDResult": "synthetic_did",
    },
    eager=["Cohort", "WideOutcomes", "wide_panel"],
)
