"""Numerics shared by ``core`` and ``inference``: no imports from either.

``within`` absorbs fixed effects (and sums within groups); ``levels`` validates
confidence levels. Both ``core`` and ``inference`` import from here, so neither needs
to import the other for these.
"""

from evalkit.numerics.levels import check_level
from evalkit.numerics.within import WithinTransform, group_sums

__all__ = ["WithinTransform", "check_level", "group_sums"]
