"""A tiny simulated study, written into a temporary folder for each test that needs one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TINY = """
[study]
name = "tiny"
title = "Tiny test study"
seed = 17
min_cell_size = 5

[data]
simulator = "bergen_rates"
options = {n_persons = 1200, start = "2019-01", end = "2021-06"}

[roles]
unit = "city"
time = "month"
treatment = "treated"
cluster = "city"

[groups]
families = "family_with_children = 1"
nw_families = "non_western = 1 AND family_with_children = 1"

[collapse]
by = ["city", "month", "treated"]

[collapse.measures]
recipient = "mean"
income = "mean"
duration = {column = "months_on_assistance", where = "recipient = 1"}

[report]
figures = false

[[analysis]]
id = "twfe"
title = "TWFE on cells"
estimator = "did.TWFE"
inference = "cr2"
expand = {outcome = ["recipient", "income", "duration"], group = ["all", "families", "nw_families"]}

[[analysis]]
id = "no_oslo"
estimator = "did.TWFE"
options = {outcome = "recipient"}
where = "city <> 'Oslo'"
"""


def write_tiny(folder: Path, figures: bool = False) -> Path:
    """Write the tiny study into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(TINY)
    if figures:
        text = text.replace("figures = false", "figures = true")
    (folder / "study.toml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_writer():
    """The function that writes the tiny study into a folder (for module-scoped fixtures)."""
    return write_tiny


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    """A study folder with a small simulated study, without figures (runs in a second)."""
    return write_tiny(tmp_path / "tiny")
