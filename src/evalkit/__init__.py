"""evalkit: causal effect evaluation for welfare and labour-market policy with register data.

Difference-in-differences (including staggered adoption and event studies), synthetic
control (including synthetic DiD) and double machine learning behind one interface.

Examples
--------
>>> import evalkit
>>> from evalkit.did import TWFE
>>> df = evalkit.datasets.load("mpdta")
>>> df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
>>> res = TWFE(outcome="lemp", treatment="post", unit="countyreal", time="year").fit(df)
>>> round(float(res.estimate("post")), 4)
-0.0365
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from evalkit import datasets
from evalkit.errors import EvalkitError, EvalkitWarning

try:
    __version__ = version("evalkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["EvalkitError", "EvalkitWarning", "__version__", "datasets"]
