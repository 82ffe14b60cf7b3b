"""Parsing and validating study designs: keys, estimators, data, roles, expansion.

Designs are built in Python (:class:`~evalkit.study.design.Design`, or its dictionary
changed by dotted key) and written as study.toml; no test edits TOML text. Every error
must name the file and the line holding the mistake.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from evalkit.core import registry
from evalkit.errors import DataError, DesignError, InferenceNotSupportedError
from evalkit.study import check_study
from evalkit.study.config import apply_override, derive_seed
from evalkit.study.design import (
    Analysis,
    Collapse,
    Data,
    Design,
    MeasureTable,
    Roles,
    StudyInfo,
    dumps,
)


def base() -> Design:
    """A small valid design: TWFE on city x month cells, expanded over two outcomes."""
    return Design(
        study=StudyInfo(name="tiny", seed=3),
        data=Data(simulator="bergen_rates", options={"n_persons": 500}),
        roles=Roles(unit="city", time="month", treatment="treated", cluster="city"),
        groups={"families": "family_with_children = 1"},
        collapse=Collapse(
            by=["city", "month", "treated"],
            measures={
                "work": "mean",
                "duration": MeasureTable(column="months_on_assistance", where="recipient = 1"),
            },
        ),
        analyses=[
            Analysis(
                id="twfe",
                estimator="did.TWFE",
                inference="cr2",
                expand={"outcome": ["work", "duration"], "group": ["all", "families"]},
            )
        ],
    )


def ddd() -> Design:
    """The base design with a derived column, a second group and a triple difference."""
    design = base().to_dict()
    design["groups"]["nw"] = "non_western = 1"
    design["columns"] = {"after": "CAST(month >= DATE '2020-03-01' AS INTEGER)"}
    design["analysis"].append(
        {
            "id": "ddd",
            "estimator": "did.TripleDiff",
            "collapse_by": ["city", "after", "treated"],
            "options": {"time": "after"},
            "inference": "iid",
            "expand": {"outcome": ["work", "duration"], "split_by": ["families", "nw"]},
        }
    )
    return Design.model_validate(design, by_name=False)


def write(folder: Path, design: Design | dict[str, Any]) -> Path:
    """Write a design (or a design's dictionary, possibly invalid) as folder/study.toml."""
    raw = design.to_dict() if isinstance(design, Design) else design
    (folder / "study.toml").write_text(dumps(raw), encoding="utf-8")
    return folder


def changed(design: Design, **values: Any) -> dict[str, Any]:
    """The design's dictionary with dotted keys set, e.g. ``changed(d, **{"study.seed": 4})``.

    ``analysis.<id>.<key>`` names an analysis by id; a value of ``DROP`` removes the key.
    """
    raw = copy.deepcopy(design.to_dict())
    for key, value in values.items():
        if value is DROP:
            *path, last = key.split(".")
            node: Any = raw
            for i, part in enumerate(path):
                if part == "analysis" and i == 0:
                    node = next(a for a in raw["analysis"] if a["id"] == path[1])
                    path = path[2:]
                    for sub in path:
                        node = node[sub]
                    break
                node = node[part]
            del node[last]
        else:
            apply_override(raw, key, value)
    return raw


DROP = object()


def rejected(folder: Path, raw: dict[str, Any], error: type = DesignError) -> tuple[str, str]:
    """Check the design and return the error message and the text of the line it names."""
    write(folder, raw)
    with pytest.raises(error) as info:
        check_study(folder)
    message = str(info.value)
    assert "Traceback" not in message
    m = re.match(r"^(.*study\.toml)(:\d+)?: ", message)
    assert m, f"no file in {message!r}"
    assert Path(m.group(1)) == (folder / "study.toml").resolve()
    if m.group(2) is None:  # only a table missing from the file has no line
        return message, ""
    lines = (folder / "study.toml").read_text(encoding="utf-8").splitlines()
    return message, lines[int(m.group(2)[1:]) - 1].strip()


# --------------------------------------------------------------------------- valid designs
def test_valid_study_is_parsed_and_expanded(tmp_path):
    study = check_study(write(tmp_path, base()))
    assert study.name == "tiny" and study.seed == 3 and study.min_cell_size == 5
    assert [a.id for a in study.analyses] == [
        "twfe.work.all",
        "twfe.work.families",
        "twfe.duration.all",
        "twfe.duration.families",
    ]
    first = study.analyses[1]
    assert dict(first.kwargs) == {
        "unit": "city",
        "time": "month",
        "treatment": "treated",
        "cluster": "city",
        "outcome": "work",
        "weights": "n",
    }
    assert first.group == "families" and first.where == "family_with_children = 1"
    assert first.inference.method == "cr2"
    assert first.fit_on == "cells" and first.table is None
    # a measure with its own condition is weighted by its own count
    assert study.analyses[2].kwargs["weights"] == "n_duration"
    assert study.analyses[0].where is None
    assert study.data.kind == "simulator" and study.data.options["n_persons"] == 500


def test_a_design_is_checked_without_a_file(tmp_path):
    from_file = check_study(write(tmp_path, base()))
    in_memory = check_study(base(), root=tmp_path)
    assert [a.id for a in in_memory.analyses] == [a.id for a in from_file.analyses]
    assert [a.seed for a in in_memory.analyses] == [a.seed for a in from_file.analyses]
    assert in_memory.design_sha256 == from_file.design_sha256
    assert in_memory.root == tmp_path.resolve()


def test_a_design_without_a_file_points_at_its_toml_lines(tmp_path):
    bad = base().model_copy(update={"groups": {"families": "family = 1"}})
    with pytest.raises(DesignError, match=r"^<design>:(\d+): condition 'family = 1'") as err:
        check_study(bad, root=tmp_path)
    line = int(re.match(r"<design>:(\d+)", str(err.value)).group(1))
    assert bad.to_toml().splitlines()[line - 1].startswith("families =")


def test_inference_tables_and_defaults(tmp_path):
    raw = changed(base(), **{"analysis.twfe.inference": {"method": "cluster", "cluster": "city"}})
    study = check_study(write(tmp_path, raw))
    assert study.analyses[0].inference.method == "cluster"
    assert study.analyses[0].inference.cluster == "city"
    raw = changed(base(), **{"analysis.twfe.inference": DROP})
    assert check_study(write(tmp_path, raw)).analyses[0].inference is None


def test_verify_tolerances(tmp_path):
    raw = changed(base(), **{"verify.estimate.rtol": 1e-4, "verify.conf_low.atol": 0.1})
    study = check_study(write(tmp_path, raw))
    assert study.tolerances["estimate"].rtol == 1e-4
    assert study.tolerances["estimate"].atol == 1e-8
    assert study.tolerances["std_error"].rtol == 1e-6
    assert study.tolerances["conf_low"].atol == 0.1


def test_report_units_marks_and_simulated_notes(tmp_path):
    raw = changed(
        base(),
        **{
            "report.units": {"work": "share of persons"},
            "report.marks": {"2020-03-01": "first increase"},
            "report.simulated_notes": "Simulated data.\nEffects are planted.",
            "report.figures": False,
        },
    )
    study = check_study(write(tmp_path, raw))
    assert study.units == {"work": "share of persons"}
    assert study.marks == {"2020-03-01": "first increase"}
    assert study.simulated_notes == "Simulated data.\nEffects are planted."
    assert study.figures is False and study.notes == ""


def test_design_hash_ignores_layout_and_changes_with_values(tmp_path):
    a = check_study(write(tmp_path, base())).design_sha256
    text = (tmp_path / "study.toml").read_text(encoding="utf-8")
    (tmp_path / "study.toml").write_text("# a comment\n\n" + text.replace("\n[", "\n\n# x\n["))
    b = check_study(tmp_path).design_sha256
    c = check_study(write(tmp_path, changed(base(), **{"study.seed": 4}))).design_sha256
    assert a == b != c


def test_analysis_seeds_depend_on_id_not_order(tmp_path):
    study = check_study(write(tmp_path, base()))
    assert study.analyses[0].seed == derive_seed(3, "twfe.work.all")
    assert len({a.seed for a in study.analyses}) == len(study.analyses)


def test_where_and_group_combine(tmp_path):
    raw = changed(
        base(),
        **{"analysis.twfe.where": "city <> 'Oslo'", "analysis.twfe.expand.group": ["families"]},
    )
    study = check_study(write(tmp_path, raw))
    assert study.analyses[0].where == "(family_with_children = 1) AND (city <> 'Oslo')"
    assert study.analyses[0].custom_where


def test_roles_are_checked_against_a_data_files_columns(tmp_path):
    frame = pd.DataFrame(
        {"kommune": ["A", "B"] * 3, "t": [1, 1, 2, 2, 3, 3], "d": [0] * 5 + [1], "y": range(6)}
    )
    frame.to_csv(tmp_path / "extract.csv", index=False)
    design = Design(
        data=Data(file="extract.csv"),
        roles=Roles(unit="city", time="t", treatment="d", outcome="y"),
        analyses=[Analysis(id="a", estimator="did.TWFE")],
    )
    message, line = rejected(tmp_path, design.to_dict())
    assert "column 'city' (unit) is not in the data" in message and line.startswith("unit")
    fixed = design.model_copy(update={"roles": Roles(unit="kommune", time="t", treatment="d")})
    fixed.roles.outcome = "y"
    study = check_study(write(tmp_path, fixed))
    assert study.data.file == (tmp_path / "extract.csv").resolve()
    assert study.analyses[0].fit_on == "rows"


# --------------------------------------------------------------------------- every error
Change = Callable[[], dict[str, Any]]


def _rename(raw: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {(new if k == old else k): v for k, v in raw.items()}


def _second(**table: Any) -> dict[str, Any]:
    raw = base().to_dict()
    raw["analysis"].append({"id": "b", "estimator": "did.TWFE", **table})
    return raw


ERRORS: list[tuple[str, Change, str, str]] = [
    # (case, the design, message (regex), how the named line starts)
    (
        "unknown table",
        lambda: _rename(base().to_dict(), "analysis", "analyses"),
        r"unknown table 'analyses' in the file\n  hint: did you mean 'analysis'\?",
        "[[analyses]]",
    ),
    (
        "unknown key with hint",
        lambda: changed(base(), **{"study.titel": "x"}),
        r"unknown key 'titel' in \[study\]\n  hint: did you mean 'title'\?",
        "titel",
    ),
    (
        "unknown key in the second analysis",
        lambda: _second(inferense="cr2"),
        r"unknown key 'inferense' in \[\[analysis\]\] #2\n  hint: did you mean 'inference'",
        "inferense",
    ),
    (
        "unknown role",
        lambda: changed(base(), **{"roles.treatmnt": "treated"}),
        r"unknown role 'treatmnt' in \[roles\]\n  hint: did you mean 'treatment'",
        "treatmnt",
    ),
    (
        "unknown measure key",
        lambda: changed(base(), **{"collapse.measures.duration.colum": "x"}),
        r"unknown key 'colum' in \[collapse\.measures\.duration\]\n  hint: did you mean 'column'",
        "duration",
    ),
    (
        "unknown verify column",
        lambda: changed(base(), **{"verify.estimates.rtol": 1.0}),
        r"unknown column 'estimates' in \[verify\]\n  hint: did you mean 'estimate'",
        "estimates",
    ),
    (
        "unknown tolerance",
        lambda: changed(base(), **{"verify.estimate.rtl": 1.0}),
        r"unknown tolerance of estimate 'rtl' in \[verify\.estimate\]\n  hint: did you mean",
        "estimate",
    ),
    (
        "unknown estimator option",
        lambda: changed(base(), **{"analysis.twfe.options": {"weight": "n"}}),
        r"unknown did\.TWFE option 'weight' in \[analysis\.options\] \(analysis #1\)\n"
        r"  hint: did you mean 'weights'",
        "options",
    ),
    (
        "unknown expand key",
        lambda: changed(base(), **{"analysis.twfe.expand.outcom": ["work"]}),
        r"unknown expand key 'outcom'.*\n  hint: did you mean 'outcome'",
        "expand",
    ),
    (
        "unknown simulator option",
        lambda: changed(base(), **{"data.options.n_person": 5}),
        r"unknown simulator option 'n_person' in \[data\.options\]\n  hint: did you mean",
        "options",
    ),
    (
        "unknown simulator",
        lambda: changed(base(), **{"data.simulator": "bergen_rate"}),
        r"did you mean 'bergen_rates'",
        "simulator",
    ),
    (
        "unknown estimator",
        lambda: changed(base(), **{"analysis.twfe.estimator": "did.TWEF"}),
        r"unknown estimator 'did\.TWEF'.*\n  hint: did you mean 'did\.TWFE'",
        "estimator",
    ),
    (
        "wrong type: seed",
        lambda: changed(base(), **{"study.seed": "3"}),
        r"seed in \[study\] must be int, got '3'\n  hint: e\.g\. seed = 12345",
        "seed",
    ),
    (
        "wrong type: figures",
        lambda: changed(base(), **{"report.figures": "yes"}),
        r"figures in \[report\] must be bool, got 'yes'\n  hint: e\.g\. figures = true",
        "figures",
    ),
    (
        "wrong type: a table where a value goes",
        lambda: changed(base(), **{"roles.unit": {"column": "city"}}),
        r"unit in \[roles\] must be str",
        "unit",
    ),
    (
        "wrong type: a unit",
        lambda: changed(base(), **{"report.units": {"work": 3}}),
        r"work in \[report\.units\] must be str, got 3",
        "units",
    ),
    (
        "wrong type: expanded split_by",
        lambda: changed(ddd(), **{"analysis.ddd.expand.split_by": [1]}),
        r"split_by in \[\[analysis\]\] #2 must be str, got 1",
        "expand",
    ),
    (
        "negative seed",
        lambda: changed(base(), **{"study.seed": -1}),
        r"seed in \[study\]: input should be greater than or equal to 0, got -1\n"
        r"  hint: use a number >= 0",
        "seed",
    ),
    (
        "bad level",
        lambda: changed(base(), **{"analysis.twfe.level": 1.5}),
        r"level must be a number strictly between 0 and 1, got 1\.5",
        "level",
    ),
    (
        "bad min_cell_size",
        lambda: changed(base(), **{"study.min_cell_size": 0}),
        r"min_cell_size must be a whole number >= 1, got 0",
        "min_cell_size",
    ),
    (
        "bad id",
        lambda: changed(base(), **{"analysis.twfe.id": "two way"}),
        r"analysis id 'two way' may only contain letters, digits",
        "id",
    ),
    (
        "no id",
        lambda: changed(base(), **{"analysis.twfe.id": DROP}),
        r"\[\[analysis\]\] #1 has no id\n  hint: add id",
        "[[analysis]]",
    ),
    (
        "no estimator",
        lambda: changed(base(), **{"analysis.twfe.estimator": DROP}),
        r"\[\[analysis\]\] #1 names no estimator\n  hint: e\.g\. estimator = \"did\.TWFE\"",
        "[[analysis]]",
    ),
    (
        "duplicate id",
        lambda: _second(id="twfe.work.all", options={"outcome": "work"}),
        r"analysis id 'twfe\.work\.all' is used twice",
        "id",
    ),
    (
        "bad expand: empty list",
        lambda: changed(base(), **{"analysis.twfe.expand.outcome": []}),
        r"expand\.outcome must be a non-empty list of values",
        "expand",
    ),
    (
        "bad expand: a table",
        lambda: changed(base(), **{"analysis.twfe.expand.outcome": [{"a": 1}]}),
        r"expand\.outcome must be a non-empty list of values",
        "expand",
    ),
    (
        "bad expand: given twice",
        lambda: changed(base(), **{"analysis.twfe.options": {"outcome": "work"}}),
        r"'outcome' is given both in expand and directly",
        "expand",
    ),
    (
        "bad expand: collapse_by",
        lambda: changed(ddd(), **{"analysis.ddd.expand.collapse_by": ["city"]}),
        r"collapse_by cannot be expanded",
        "expand",
    ),
    (
        "bad inference: unknown method",
        lambda: changed(base(), **{"analysis.twfe.inference": "cr3"}),
        r"unknown inference method 'cr3'",
        "inference",
    ),
    (
        "bad inference: a number",
        lambda: changed(base(), **{"analysis.twfe.inference": 3}),
        r"inference must be a method name or a table\n  hint: e\.g\. inference = \"cr2\"",
        "inference",
    ),
    (
        "bad inference: no method",
        lambda: changed(base(), **{"analysis.twfe.inference": {"reps": 99}}),
        r"\[analysis\.inference\] \(analysis #1\) needs method",
        "inference",
    ),
    (
        "bad inference: too many reps",
        lambda: changed(base(), **{"analysis.twfe.inference": {"method": "wild", "reps": 10**7}}),
        r"reps = 10000000 is more replications than a study may ask for",
        "inference",
    ),
    (
        "bad tolerance: negative",
        lambda: changed(base(), **{"verify.estimate.rtol": -1.0}),
        r"rtol in \[verify\.estimate\]: input should be greater than or equal to 0",
        "estimate",
    ),
    (
        "bad tolerance: text",
        lambda: changed(base(), **{"verify.std_error.atol": "small"}),
        r"atol in \[verify\.std_error\] must be float, got 'small'\n  hint: e\.g\. atol = 0\.5",
        "std_error",
    ),
    (
        "two data sources",
        lambda: changed(base(), **{"data.query": "SELECT 1"}),
        r"\[data\] needs exactly one of file, query or simulator \(found query, simulator\)",
        "[data]",
    ),
    (
        "no data",
        lambda: changed(base(), **{"data": DROP}),
        r"names no data \(\[data\] is missing\)",
        "",
    ),
    (
        "options on a file",
        lambda: changed(base(), **{"data.simulator": DROP, "data.file": "x.csv"}),
        r"\[data\.options\] applies to simulators only",
        "options",
    ),
    (
        "bad table name",
        lambda: changed(base(), **{"data.tables": {"my table": {"simulator": "bergen_rates"}}}),
        r"table name 'my table' must be a plain identifier",
        '"my table"',
    ),
    (
        "an extra table with two sources",
        lambda: changed(base(), **{"data.tables.people": {"query": "SELECT 1", "file": "x"}}),
        r"\[data\] needs exactly one of file, query or simulator \(found file, query\)",
        "people",
    ),
    (
        "unknown data table",
        lambda: changed(base(), **{"analysis.twfe.table": "peple", "analysis.twfe.fit_on": "rows"}),
        r"table 'peple' is not defined\n  hint: define it as \[data\.tables\.peple\]",
        "table",
    ),
    (
        "cells on an extra table",
        lambda: changed(
            base(),
            **{
                "data.tables.people": {"simulator": "bergen_rates"},
                "analysis.twfe.table": "people",
                "analysis.twfe.fit_on": "cells",
            },
        ),
        r"with table = 'people': \[collapse\] applies to the main \[data\] only\n"
        r"  hint: use fit_on = \"rows\"",
        "fit_on",
    ),
    (
        "bad fit_on",
        lambda: changed(base(), **{"analysis.twfe.fit_on": "persons"}),
        r"fit_on must be one of 'cells', 'rows', got 'persons'",
        "fit_on",
    ),
    (
        "cells without [collapse]",
        lambda: changed(base(), **{"collapse": DROP, "analysis.twfe.fit_on": "cells"}),
        r"fit_on = \"cells\" needs \[collapse\]",
        "fit_on",
    ),
    (
        "a unit for an unknown outcome",
        lambda: changed(base(), **{"report.units": {"incme": "NOK"}}),
        r"\[report\] units names 'incme', which is not an outcome of any analysis",
        "units",
    ),
    (
        "a mark that is not a time",
        lambda: changed(base(), **{"report.marks": {"March 2020": "reform"}}),
        r"mark 'March 2020' in \[report\] marks is not a time",
        "marks",
    ),
    (
        "bad group name",
        lambda: changed(base(), **{"groups": {"my group": "work = 1"}}),
        r"group name 'my group' must be a plain identifier",
        '"my group"',
    ),
    (
        "redefined group all",
        lambda: changed(base(), **{"groups.all": "work = 1"}),
        r"the group 'all' means every row",
        "all",
    ),
    (
        "unknown group",
        lambda: changed(base(), **{"analysis.twfe.expand.group": ["all", "familes"]}),
        r"uses group 'familes', which \[groups\] does not define\n  hint: did you mean 'families'",
        "expand",
    ),
    (
        "group condition on a missing column",
        lambda: changed(base(), **{"groups.families": "family = 1"}),
        r"condition 'family = 1' does not work on the data",
        "families",
    ),
    (
        "empty derived column",
        lambda: changed(base(), **{"columns.after": "  "}),
        r"column 'after' has an empty expression",
        "after",
    ),
    (
        "collapse without by",
        lambda: changed(base(), **{"collapse.by": DROP}),
        r"\[collapse\] needs by\n  hint: e\.g\. by = ",
        "[collapse]",
    ),
    (
        "collapse by a number",
        lambda: changed(base(), **{"collapse.by": 3}),
        r"by must be a list of cell keys \(or one name\), got 3",
        "by",
    ),
    (
        "collapse without measures",
        lambda: changed(base(), **{"collapse.measures": {}}),
        r"\[collapse\] needs measures",
        "measures",
    ),
    (
        "role not in the cells",
        lambda: changed(base(), **{"analysis.twfe.expand.outcome": ["work", "income"]}),
        r"column 'income' \(outcome\) is not in the cells",
        "expand",
    ),
    (
        "required role missing",
        lambda: changed(base(), **{"roles.treatment": DROP}),
        r"needs treatment",
        "[[analysis]]",
    ),
]


@pytest.mark.parametrize(
    ("change", "message", "line"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_every_error_names_the_file_the_line_and_the_fix(tmp_path, change, message, line):
    got, at = rejected(tmp_path, change())
    assert re.search(message, got), got
    assert at.startswith(line), (at, got)
    assert "\n  hint: " in got, f"no fix suggested: {got}"


def test_unknown_estimator_lists_the_registry(tmp_path):
    message, _ = rejected(tmp_path, changed(base(), **{"analysis.twfe.estimator": "did.TWEF"}))
    for name in registry.names():
        assert name in message


def test_unsupported_inference_says_which_are(tmp_path):
    raw = changed(base(), **{"analysis.twfe.inference": "jackknife"})
    message, line = rejected(tmp_path, raw, InferenceNotSupportedError)
    assert "does not support inference='jackknife'" in message and line.startswith("inference")


def test_missing_data_file_is_a_data_error(tmp_path):
    raw = changed(base(), **{"data.simulator": DROP, "data.options": DROP})
    raw["data"]["file"] = "extract.parquet"
    message, line = rejected(tmp_path, raw, DataError)
    assert "'extract.parquet' not found" in message and line.startswith("file")


def test_invalid_toml_names_the_line(tmp_path):
    (tmp_path / "study.toml").write_text('[study]\nname = "x"\nseed = \n', encoding="utf-8")
    with pytest.raises(DesignError, match=r"not valid TOML.*line 3"):
        check_study(tmp_path)


def test_missing_study_file(tmp_path):
    with pytest.raises(DesignError, match="no study file"):
        check_study(tmp_path)


def test_the_first_error_in_the_file_is_reported(tmp_path):
    raw = changed(base(), **{"study.seed": "3", "analysis.twfe.level": "high"})
    message, line = rejected(tmp_path, raw)
    assert line.startswith("seed") and "seed in [study]" in message


# --------------------------------------------------------------------------- triple differences
def test_split_by_a_group_sets_the_group_column_and_target(tmp_path):
    study = check_study(write(tmp_path, ddd()))
    split = [a for a in study.analyses if a.family == "ddd"]
    assert [a.id for a in split] == [
        "ddd.work.families",
        "ddd.work.nw",
        "ddd.duration.families",
        "ddd.duration.nw",
    ]
    first = split[0]
    assert first.split.by == "families" and first.split.column == "in_families"
    assert first.split.condition == "family_with_children = 1"
    assert first.kwargs["group"] == "in_families" and first.kwargs["target"] == 1
    assert first.kwargs["time"] == "after" and first.kwargs["weights"] == "n"
    assert split[2].kwargs["weights"] == "n_duration"
    assert first.group == "all" and first.where is None  # the split selects no rows
    assert first.collapse_by == ("city", "after", "treated")
    assert study.cell_keys(first) == ("city", "after", "treated", "in_families")
    assert study.columns == {"after": "CAST(month >= DATE '2020-03-01' AS INTEGER)"}
    # the other analyses keep the study's cells
    assert study.cell_keys(study.analyses[0]) == ("city", "month", "treated")
    assert study.analyses[0].split is None


def test_split_by_combines_with_a_row_group(tmp_path):
    raw = changed(ddd(), **{"analysis.ddd.expand.split_by": ["families"]})
    raw["analysis"][1]["expand"] = {
        "outcome": ["work", "duration"],
        "group": ["all", "nw"],
        "split_by": ["families"],
    }
    split = [a for a in check_study(write(tmp_path, raw)).analyses if a.family == "ddd"]
    assert [a.id for a in split][:2] == ["ddd.work.all.families", "ddd.work.nw.families"]
    assert split[1].where == "non_western = 1" and split[1].group == "nw"
    # the row group is the study's; the estimator's group column comes from split_by
    assert {a.kwargs["group"] for a in split} == {"in_families"}


def test_split_by_a_column_needs_a_target(tmp_path):
    raw = changed(ddd(), **{"analysis.ddd.expand.split_by": ["non_western"]})
    message, _ = rejected(tmp_path, raw)
    assert "neither a [groups] name nor a column with options.target" in message
    raw = changed(ddd(), **{"analysis.ddd.expand.split_by": ["non_western"]})
    raw["analysis"][1]["options"]["target"] = 1
    a = next(a for a in check_study(write(tmp_path, raw)).analyses if a.family == "ddd")
    assert a.split.column == "non_western" and a.split.condition is None
    assert a.kwargs["group"] == "non_western" and a.kwargs["target"] == 1


DDD_ERRORS: list[tuple[dict[str, Any], str]] = [
    (
        {"analysis.ddd.expand.split_by": ["familes"]},
        r"(?s)split_by 'familes' is neither.*did you mean 'families'",
    ),
    ({"analysis.ddd.expand.split_by": ["all"]}, "puts every row in one group"),
    ({"analysis.ddd.group": "families"}, "splits them by the same group"),
    ({"analysis.ddd.options.target": 0}, "options.target is not needed"),
    ({"analysis.ddd.options.group": "x"}, "split_by and options.group"),
    ({"analysis.ddd.estimator": "did.TWFE"}, "did.TWFE does not compare groups"),
    (
        {"analysis.ddd.collapse_by": ["city", "aftr", "treated"]},
        r"(?s)column 'aftr' \(collapse_by\).*did you mean 'after'",
    ),
    (
        {"analysis.ddd.collapse_by": ["city", "after"]},
        r"column 'treated' \(treatment\) is not in the cells",
    ),
    ({"analysis.ddd.collapse_by": ["city", "city"]}, "names 'city' twice"),
    ({"analysis.ddd.collapse_by": ["city", "n"]}, "also a measure or count column"),
    ({"analysis.ddd.collapse_by": 3}, "collapse_by must be a list of cell keys"),
    (
        {"columns.after": "CAST(mnth >= DATE '2020-03-01' AS INTEGER)"},
        r"derived column 'after'.*does not work on the data",
    ),
    ({"columns": {"non_western": "1"}}, "already a column of the data"),
    ({"analysis.ddd.split_bi": "families"}, r"(?s)unknown key 'split_bi'.*did you mean 'split_by'"),
]


@pytest.mark.parametrize(("change", "message"), DDD_ERRORS)
def test_bad_triple_difference_designs_are_rejected(tmp_path, change, message):
    got, _ = rejected(tmp_path, changed(ddd(), **change))
    assert re.search(message, got), got


def test_collapse_by_on_rows_needs_no_collapse(tmp_path):
    raw = changed(ddd(), **{"collapse": DROP})
    del raw["analysis"][0]
    raw["analysis"][0]["options"]["outcome"] = "work"
    raw["analysis"][0]["expand"] = {"split_by": ["families"]}
    study = check_study(write(tmp_path, raw))
    a = study.analyses[0]
    assert a.fit_on == "rows" and a.collapse_by == ("city", "after", "treated")
    assert study.cell_keys(a) == () and "weights" not in a.kwargs


def test_split_column_must_not_exist_in_the_data(tmp_path):
    raw = changed(
        ddd(),
        **{
            "groups.x": "work = 1",
            "columns.in_x": "1",
            "analysis.ddd.expand.split_by": ["x"],
        },
    )
    message, _ = rejected(tmp_path, raw)
    assert "would add column 'in_x', which the data already have" in message
