"""Test settings shared by tests/ and the doctests in src/: a non-interactive plot backend.

The reference datasets ship inside the package (evalkit/datasets/data/), so the tests need
no data folder, no environment variable and no network.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
