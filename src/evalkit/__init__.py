"""evalkit: causal effect evaluation for welfare and labour-market policy with register data.

Difference-in-differences (including staggered adoption and event studies), synthetic
control (including synthetic DiD) and double machine learning behind one interface.

The subpackages (``did``, ``synth``, ``dml``, ``inference``, ``study``, ``simulate``,
``report``, ``datasets``, ``data``, ``core``) load on first attribute access, so
``import evalkit`` is cheap and ``evalkit.did.TWFE`` needs no separate import.

Examples
--------
>>> import evalkit as ek
>>> df = ek.datasets.load("mpdta")
>>> df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
>>> res = ek.did.TWFE(outcome="lemp", treatment="post", unit="countyreal", time="year").fit(df)
>>> round(float(res.estimate("post")), 4)
-0.0365
"""

from __future__ import annotations

from typing import Any

from evalkit._lazy import attach
from evalkit.errors import EvalkitError as EvalkitError
from evalkit.errors import EvalkitWarning as EvalkitWarning

_SUBPACKAGES = (
    "core",
    "data",
    "datasets",
    "did",
    "dml",
    "inference",
    "multilevel",
    "parallel",
    "report",
    "simulate",
    "study",
    "synth",
)

_lazy_getattr, __dir__, __all__ = attach(
    __name__,
    submodules=_SUBPACKAGES,
    eager=["EvalkitError", "EvalkitWarning", "__version__"],
)


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs ~40 ms: read it when asked
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("evalkit")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            found = "0.0.0+unknown"
        globals()["__version__"] = found
        return found
    return _lazy_getattr(name)
