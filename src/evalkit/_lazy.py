"""Lazy attributes of a package (Scientific Python SPEC 1 style).

A package lists the submodules and names it exposes; each is imported on first
attribute access, so ``import evalkit`` and ``import evalkit.did`` stay cheap (no pandas,
no SciPy) while ``evalkit.did.TWFE`` still works without a separate import. A name that
is not there raises :class:`AttributeError` suggesting the closest public names.

This is a few lines of standard library (``importlib`` and a module ``__getattr__``),
so evalkit does not depend on ``lazy_loader`` for it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["attach"]


def attach(
    package: str,
    *,
    submodules: Sequence[str] = (),
    attributes: Mapping[str, str] | None = None,
    eager: Sequence[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Return ``__getattr__``, ``__dir__`` and ``__all__`` for a package's ``__init__``.

    Parameters
    ----------
    package
        The package's ``__name__``.
    submodules
        Submodule names (``"did"``) imported on first access as ``package.did``. A
        submodule that does not exist (a family not built yet) is left out of
        ``__dir__`` and ``__all__`` and raises :class:`AttributeError` when asked for.
    attributes
        Public names mapped to the submodule that defines them
        (``{"TWFE": "twfe"}`` makes ``package.TWFE`` import ``package.twfe``).
    eager
        Public names the package defines itself (listed in ``__dir__`` and ``__all__``).

    Returns
    -------
    tuple
        ``(__getattr__, __dir__, __all__)``; assign them at the package's top level.

    Examples
    --------
    >>> getattr_, dir_, all_ = attach("evalkit", submodules=["errors"])
    >>> getattr_("errors").__name__
    'evalkit.errors'
    >>> getattr_("erors")
    Traceback (most recent call last):
    ...
    AttributeError: module 'evalkit' has no attribute 'erors'; did you mean 'errors'?
    """
    names_to_module = dict(attributes or {})
    present = [m for m in submodules if importlib.util.find_spec(f"{package}.{m}") is not None]
    public = sorted({*present, *names_to_module, *eager})

    def __getattr__(name: str) -> Any:
        if name in names_to_module:
            module = importlib.import_module(f"{package}.{names_to_module[name]}")
            value = getattr(module, name)
            setattr(sys.modules[package], name, value)  # later look-ups skip this function
            return value
        if name in present:
            return importlib.import_module(f"{package}.{name}")
        close = difflib.get_close_matches(name, public, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise AttributeError(f"module {package!r} has no attribute {name!r}{hint}")

    def __dir__() -> list[str]:
        return public

    return __getattr__, __dir__, public
