"""Reporting: journal-style summaries, tables and plots of results."""

from evalkit.report.summary import Summary

__all__ = ["Summary"]
