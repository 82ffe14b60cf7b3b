"""Old import path of :mod:`evalkit.numerics.within` (kept so existing imports work)."""

from evalkit.numerics.within import WithinTransform, group_sums

__all__ = ["WithinTransform", "group_sums"]
