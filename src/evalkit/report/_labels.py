"""Labels for the models of a comparison (table columns, plot legends)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.errors import DesignError


def model_labels(results: Sequence[Any], given: Sequence[str] | None, option: str) -> list[str]:
    """Return one label per result: ``given`` (checked) or ``(1) TWFE``, ``(2) ...``.

    Examples
    --------
    >>> class R:
    ...     estimator = "did.TWFE"
    >>> model_labels([R(), R()], None, "names")
    ['(1) TWFE', '(2) TWFE']
    """
    if given is None:
        return [
            f"({i + 1}) {str(getattr(r, 'estimator', 'result')).split('.')[-1]}"
            for i, r in enumerate(results)
        ]
    labels = [str(g) for g in given]
    if len(labels) != len(results):
        raise DesignError(
            f"{option} has {len(labels)} entries for {len(results)} results",
            hint=f"give one entry of {option} per result",
            column=option,
        )
    return labels
