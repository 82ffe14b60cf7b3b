"""Reporting: journal-style summaries, tables and plots of results."""

from evalkit.report.summary import Summary
from evalkit.report.tables import Table, table

__all__ = ["Summary", "Table", "table"]
