"""Estimators of the dml family (later issues)."""
