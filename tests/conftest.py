"""Shared test fixtures and settings."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

REFERENCE_DIR = Path(
    os.environ.get(
        "EVALKIT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data/reference"
    )
)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the public reference datasets (EVALKIT_DATA_DIR in CI)."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference data folder {REFERENCE_DIR} not found; set EVALKIT_DATA_DIR")
    return REFERENCE_DIR
