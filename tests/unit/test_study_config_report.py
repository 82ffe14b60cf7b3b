"""``[report] units``, ``marks`` and ``simulated_notes`` in study.toml."""

from __future__ import annotations

import textwrap

import pytest
from test_study_config import base

from evalkit.errors import DesignError
from evalkit.study import check_study


def load(tmp_path, report: str):
    text = base().to_toml() + "\n[report]\n" + textwrap.dedent(report)
    (tmp_path / "study.toml").write_text(text, encoding="utf-8")
    return check_study(tmp_path)


def test_units_marks_and_simulator_notes_are_read(tmp_path):
    study = load(
        tmp_path,
        """
        units = {duration = "months"}
        marks = {"2020-03-01" = "first increase", "2021-03" = "second", "2019" = "a year"}
        simulated_notes = "Illustrative."
        """,
    )
    assert dict(study.units) == {"duration": "months"}
    assert list(study.marks) == ["2020-03-01", "2021-03", "2019"]
    assert study.simulated_notes == "Illustrative."


def test_defaults_are_empty(tmp_path):
    study = load(tmp_path, "")
    assert dict(study.units) == {} and dict(study.marks) == {} and study.simulated_notes == ""


def test_a_unit_for_an_unknown_outcome_suggests_the_closest(tmp_path):
    with pytest.raises(DesignError, match=r"study.toml:\d+: \[report\] units names 'duraton'") as e:
        load(tmp_path, 'units = {duraton = "months"}')
    assert "did you mean 'duration'" in str(e.value)


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ('marks = {"March 2020" = "reform"}', "mark 'March 2020' in \\[report\\] marks is not a"),
        ('marks = {"2020-03-01" = 1}', "2020-03-01 in \\[report.* must be str"),
        ("units = {work = 5}", "work in \\[report.* must be str"),
        ('units = "NOK"', "units in \\[report\\] must be"),
        ("simulated_notes = 1", "simulated_notes in \\[report\\] must be str"),
        ('unitz = {work = "share"}', "unitz"),
    ],
)
def test_bad_report_keys_are_design_errors(tmp_path, report, message):
    with pytest.raises(DesignError, match=message):
        load(tmp_path, report)
