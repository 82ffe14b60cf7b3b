"""The study report: a thin caller of :mod:`evalkit.report.study_report`.

The rendering (blocks, tables, figures, caveats) lives next to the other report code in
:mod:`evalkit.report`; this module keeps the study layer's entry point.
"""

from __future__ import annotations

from evalkit.report.study_report import FEW_TREATED_CLUSTERS, write_report

__all__ = ["FEW_TREATED_CLUSTERS", "write_report"]
