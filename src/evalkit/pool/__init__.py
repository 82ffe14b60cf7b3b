"""Pooling across countries: meta-analysis of the same design's results from several runs.

Register microdata never leave a country; each country runs the same study on its own
extract and only the aggregate results (``results.json``) are brought together.
:func:`pool_runs` matches the estimates of several run folders, refuses runs of
different designs, and pools each estimate by fixed- and random-effects meta-analysis
(:func:`meta_analysis`); ``evalkit pool RUN_DIRS...`` is the command line.
"""

from typing import TYPE_CHECKING

from evalkit._lazy import attach

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (never executed)
    from evalkit.pool.forest import forest_plot as forest_plot
    from evalkit.pool.meta import MetaAnalysis as MetaAnalysis
    from evalkit.pool.meta import meta_analysis as meta_analysis
    from evalkit.pool.runs import PooledRuns as PooledRuns
    from evalkit.pool.runs import pool_runs as pool_runs

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={
        "MetaAnalysis": "meta",
        "PooledRuns": "runs",
        "forest_plot": "forest",
        "meta_analysis": "meta",
        "pool_runs": "runs",
    },
)
