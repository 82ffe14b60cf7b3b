"""Case selection: which units lie clearly above or below what their conditions predict.

The estimator classes load on first access (``evalkit.selection.ObservedExpected``) and
register themselves under ``"selection.<Class>"``.
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.selection.observed_expected import ObservedExpected as ObservedExpected

__getattr__, __dir__, __all__ = attach(
    __name__,
    submodules=["npmle", "shrinkage"],
    attributes={"ObservedExpected": "observed_expected"},
)
