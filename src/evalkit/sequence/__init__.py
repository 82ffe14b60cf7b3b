"""Sequence analysis of monthly pathways: distances, typologies, aggregate plots.

:class:`Typology` clusters persons' state sequences (optimal matching or Hamming
distances, :mod:`evalkit.sequence.distance`) into pathway types and reports shares,
outcomes and membership regressions by type, in aggregates only. The class loads on
first access.
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.sequence.typology import Typology as Typology

__getattr__, __dir__, __all__ = attach(
    __name__,
    submodules=["distance", "cluster", "plots"],
    attributes={"Typology": "typology"},
)
