"""The registry of estimators: names such as ``"did.TWFE"`` map to estimator classes.

Study files and the command line name estimators by their registry name (``module.Class``
inside ``evalkit``). Estimators register themselves when their module is imported;
:func:`get` imports every family's estimators on first use, so looking up a name never requires the
caller to import the family first.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from evalkit.errors import DesignError

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.core.estimator import Estimator

__all__ = ["FAMILIES", "get", "names", "register"]

FAMILIES: tuple[str, ...] = ("did", "synth", "dml")
_REGISTRY: dict[str, type[Estimator]] = {}

E = TypeVar("E", bound="type[Estimator]")


def register(name: str) -> Callable[[E], E]:
    """Class decorator that registers an estimator under ``name`` (e.g. ``"did.TWFE"``)."""

    def decorate(cls: E) -> E:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise RuntimeError(f"estimator name {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return decorate


def _load_families() -> None:
    for family in FAMILIES:
        try:
            module = importlib.import_module(f"evalkit.{family}")
        except ModuleNotFoundError as exc:  # a family not built yet
            if exc.name != f"evalkit.{family}":
                raise
            continue
        for name in getattr(module, "__all__", ()):  # a lazy family imports its classes
            getattr(module, name)


def names() -> list[str]:
    """Return the sorted registry names of every available estimator.

    Examples
    --------
    >>> "did.TWFE" in names()
    True
    """
    _load_families()
    return sorted(_REGISTRY)


def get(name: str) -> type[Estimator]:
    """Return the estimator class registered as ``name``.

    Raises
    ------
    DesignError
        If no estimator has that name; the message suggests the closest names.

    Examples
    --------
    >>> get("did.TWFE").__name__
    'TWFE'
    """
    if name not in _REGISTRY:
        _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(map(repr, close))}?" if close else None
        raise DesignError(
            f"unknown estimator {name!r}; available: {', '.join(sorted(_REGISTRY))}",
            hint=hint or "run `evalkit estimators` to list the estimators",
            column="estimator",
        ) from None
