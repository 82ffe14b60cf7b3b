"""A tiny simulated study, built in Python and written into a folder for each test."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.study.design import (
    Analysis,
    Collapse,
    Data,
    Design,
    MeasureTable,
    Report,
    Roles,
    StudyInfo,
)


def tiny_design(figures: bool = False) -> Design:
    """The tiny study, built in Python: TWFE on city x month cells of 1,200 persons."""
    return Design(
        study=StudyInfo(name="tiny", title="Tiny test study", seed=17, min_cell_size=5),
        data=Data(
            simulator="bergen_rates",
            options={"n_persons": 1200, "start": "2019-01", "end": "2021-06"},
        ),
        roles=Roles(unit="city", time="month", treatment="treated", cluster="city"),
        groups={
            "families": "family_with_children = 1",
            "nw_families": "non_western = 1 AND family_with_children = 1",
        },
        collapse=Collapse(
            by=["city", "month", "treated"],
            measures={
                "recipient": "mean",
                "income": "mean",
                "duration": MeasureTable(column="months_on_assistance", where="recipient = 1"),
            },
        ),
        report=Report(figures=figures),
        analyses=[
            Analysis(
                id="twfe",
                title="TWFE on cells",
                estimator="did.TWFE",
                inference="cr2",
                expand={
                    "outcome": ["recipient", "income", "duration"],
                    "group": ["all", "families", "nw_families"],
                },
            ),
            Analysis(
                id="no_oslo",
                estimator="did.TWFE",
                options={"outcome": "recipient"},
                where="city <> 'Oslo'",
            ),
        ],
    )


def write_tiny(folder: Path, figures: bool = False, design: Design | None = None) -> Path:
    """Write the tiny study (or ``design``) into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (design or tiny_design(figures)).to_toml(folder / "study.toml")
    return folder


@pytest.fixture(scope="session")
def tiny_writer():
    """The function that writes the tiny study into a folder (for module-scoped fixtures)."""
    return write_tiny


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    """A study folder with a small simulated study, without figures (runs in a second)."""
    return write_tiny(tmp_path / "tiny")


@pytest.fixture(scope="session")
def tiny():
    """The function that builds the tiny study's design (change it, then ``write_tiny``)."""
    return tiny_design
