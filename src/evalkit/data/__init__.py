"""Data: the validated :class:`Panel`, its check catalogue, and readers."""

from evalkit.data.checks import CATALOGUE
from evalkit.data.panel import ROLES, Panel
from evalkit.data.readers import read, read_csv, read_parquet, read_sql

__all__ = ["CATALOGUE", "ROLES", "Panel", "read", "read_csv", "read_parquet", "read_sql"]
