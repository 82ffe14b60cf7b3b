"""Reporting: journal-style summaries, tables and plots of results."""

from evalkit.report.event_plot import event_study_plot
from evalkit.report.summary import Summary
from evalkit.report.tables import Table, table

__all__ = ["Summary", "Table", "event_study_plot", "table"]
