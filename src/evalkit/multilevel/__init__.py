"""Multilevel (mixed-effects) models of individual outcomes in groups such as municipalities.

The estimator classes load on first access (``evalkit.multilevel.MixedModel``), so
``import evalkit.multilevel`` is cheap (statsmodels is imported only when a model is
fitted); each registers itself under ``"multilevel.<Class>"`` when its module is imported.
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.multilevel.mixed import MixedModel as MixedModel

__getattr__, __dir__, __all__ = attach(__name__, attributes={"MixedModel": "mixed"})
