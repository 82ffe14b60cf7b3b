"""Designs in Python: TOML -> Design -> TOML round trips, running without a file, the schema.

The round trip is checked on every study in studies/, on the test studies (tests/studies,
tests/security/hostile) and on generated designs; the JSON Schema and the key tables in
the docs must be what the models generate today.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import DesignError
from evalkit.study import check_study, run_study
from evalkit.study.config import design_hash
from evalkit.study.design import (
    Analysis,
    Collapse,
    Data,
    Design,
    Roles,
    StudyInfo,
    dumps,
    json_schema,
)
from evalkit.study.reference import markdown, schema_text

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted(ROOT.glob("studies/*/study.toml"))
HOSTILE = sorted((ROOT / "tests" / "security" / "hostile").glob("*.toml"))


def _fixture_texts() -> dict[str, str]:
    """The study.toml texts the study tests write (tiny: built in Python; SMALL: text)."""
    import importlib.util

    out = {}
    for name in ("conftest", "test_bergen_triple_diff"):
        path = ROOT / "tests" / "studies" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"_fixture_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if name == "conftest":
            out[name] = module.tiny_design(figures=True).to_toml()
        else:
            out[name] = module.SMALL
    return out


def _round_trip(text: str) -> None:
    raw = tomllib.loads(text)
    design = Design.from_text(text)
    again = design.to_toml()
    assert tomllib.loads(again) == raw
    assert Design.from_text(again) == design
    assert design_hash(tomllib.loads(again)) == design_hash(raw)
    assert design.to_toml() == Design.from_text(again).to_toml()  # writing is stable


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.parent.name)
def test_every_study_round_trips(path):
    _round_trip(path.read_text(encoding="utf-8"))


def test_there_are_studies_and_fixtures():
    assert any(p.parent.name == "bergen_rates" for p in STUDIES)
    assert len(_fixture_texts()) == 2


@pytest.mark.parametrize("name", ["conftest", "test_bergen_triple_diff"])
def test_test_studies_round_trip(name):
    _round_trip(_fixture_texts()[name])


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_hostile_studies_round_trip_or_are_refused_by_the_schema(path):
    text = path.read_text(encoding="utf-8")
    try:
        Design.from_text(text, path)
    except DesignError as err:  # refused before anything runs, naming the file
        assert str(err).startswith(str(path))
        return
    _round_trip(text)


def test_writer_keeps_awkward_values():
    raw = {
        "study": {"name": "x", "description": 'two\nlines with "quotes" and a \\ backslash\n'},
        "data": {
            "simulator": "bergen_rates",
            "options": {"start": dt.date(2019, 1, 1), "rate": 0.1, "big": 10**12},
        },
        "groups": {"with space": "a = 'b'", "tab": "x\t= 1"},
        "report": {"marks": {"2020-03-01": "first increase"}, "figures": False},
        "analysis": [
            {
                "id": "a",
                "estimator": "did.TWFE",
                "options": {"covariates": ["x", "y"], "n": 1, "f": 1.5, "b": True, "s": "t"},
                "inference": {"method": "wild", "reps": 999, "weights": "webb"},
            }
        ],
    }
    text = dumps(raw)
    assert tomllib.loads(text) == raw
    design = Design.from_text(text)
    assert design.to_dict() == raw
    assert design.analyses[0].inference.model_extra == {"weights": "webb"}


def test_python_design_equals_its_toml_and_runs_without_a_file(tmp_path):
    design = Design(
        study=StudyInfo(name="tiny", seed=7),
        data=Data(simulator="bergen_rates", options={"n_persons": 600, "end": "2020-12"}),
        roles=Roles(unit="city", time="month", treatment="treated", cluster="city"),
        collapse=Collapse(by=["city", "month", "treated"], measures={"recipient": "mean"}),
        analyses=[
            Analysis(
                id="twfe", estimator="did.TWFE", inference="cr2", options={"outcome": "recipient"}
            )
        ],
    )
    folder = tmp_path / "study"
    folder.mkdir()
    design.to_toml(folder / "study.toml")
    assert Design.from_toml(folder) == design
    from_file = run_study(folder, out=tmp_path / "a", progress=False)
    in_memory = run_study(design, root=folder, out=tmp_path / "b", progress=False)
    assert (tmp_path / "a" / "results.json").read_bytes() == (
        tmp_path / "b" / "results.json"
    ).read_bytes()
    assert from_file.manifest["design"]["sha256"] == in_memory.manifest["design"]["sha256"]
    assert in_memory.manifest["design"]["file"] == "<design>"
    # overrides apply to a design as to a file
    changed = check_study(design, root=folder)
    assert changed.data.options["n_persons"] == 600


def test_python_design_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ValueError, match="titel"):
        StudyInfo(titel="x")
    with pytest.raises(ValueError, match="seed"):
        StudyInfo(seed="3")
    with pytest.raises(ValueError, match="exactly one of file, query or simulator"):
        Data(file="a.csv", simulator="bergen_rates")


def test_design_reads_the_toml_name_analysis_only():
    base = {"data": {"simulator": "bergen_rates"}}
    with pytest.raises(DesignError, match="unknown table 'analyses'"):
        Design.from_dict({**base, "analyses": [{"id": "a", "estimator": "did.TWFE"}]})
    one = Design.from_dict({**base, "analysis": {"id": "a", "estimator": "did.TWFE"}})
    assert [a.id for a in one.analyses] == ["a"]


# --------------------------------------------------------------------------- the docs
def test_json_schema_in_the_docs_is_current():
    committed = (ROOT / "docs" / "guide" / "study.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "regenerate: evalkit schema > docs/guide/study.schema.json"


def test_key_tables_in_the_docs_are_current():
    page = (ROOT / "docs" / "guide" / "study-toml.md").read_text(encoding="utf-8")
    begin = "<!-- begin: evalkit schema --markdown -->\n"
    end = "<!-- end: evalkit schema --markdown -->"
    committed = page.split(begin, 1)[1].split(end, 1)[0]
    assert committed == markdown(), "regenerate the tables with: evalkit schema --markdown"


def test_json_schema_describes_every_table_and_forbids_unknown_keys():
    schema = json_schema()
    assert set(schema["properties"]) == {
        "study",
        "data",
        "columns",
        "roles",
        "groups",
        "collapse",
        "analysis",
        "verify",
        "report",
    }
    assert schema["additionalProperties"] is False
    analysis = schema["$defs"]["Analysis"]
    assert {"fit_on", "table", "expand", "split_by"} <= set(analysis["properties"])
    assert set(schema["$defs"]["Report"]["properties"]) >= {"units", "marks", "simulated_notes"}
    assert "tables" in schema["$defs"]["Data"]["properties"]


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.parent.name)
def test_studies_validate_against_the_published_schema(path):
    import jsonschema

    schema = json_schema()
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(raw, schema)
    # and the schema refuses what the validator refuses
    raw["study"]["titel"] = "x"
    with pytest.raises(jsonschema.ValidationError, match="titel"):
        jsonschema.validate(raw, schema)
    del raw["study"]["titel"]
    raw["analysis"][0]["fit_on"] = "persons"
    with pytest.raises(jsonschema.ValidationError, match="persons"):
        jsonschema.validate(raw, schema)


def test_cli_prints_the_schema():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["title"] == "study.toml"
    result = CliRunner().invoke(main, ["schema", "--markdown"])
    assert result.exit_code == 0 and "### `[[analysis]]`" in result.output
