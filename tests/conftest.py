"""Fixtures shared by the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the public reference datasets (EVALKIT_DATA_DIR, resolved in conftest.py)."""
    folder = os.environ.get("EVALKIT_DATA_DIR")
    if not folder or not Path(folder).is_dir():
        pytest.fail("reference datasets not found; set EVALKIT_DATA_DIR to their folder")
    return Path(folder)
