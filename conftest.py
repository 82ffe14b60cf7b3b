"""Test settings shared by tests/ and the doctests in src/: backend and reference data."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def _reference_dir() -> Path | None:
    """Locate the reference datasets: EVALKIT_DATA_DIR, else a shared/data/reference above."""
    given = os.environ.get("EVALKIT_DATA_DIR")
    if given and Path(given).is_dir():
        return Path(given).resolve()
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "reference"
        if candidate.is_dir():
            return candidate
    return None


REFERENCE_DIR = _reference_dir()
if REFERENCE_DIR is not None:
    # an absolute path, so tests that change directory still find the data
    os.environ["EVALKIT_DATA_DIR"] = str(REFERENCE_DIR)
