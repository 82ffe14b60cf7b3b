"""Parsing and validating study.toml: keys, estimators, data, roles, expansion."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from evalkit.core import registry
from evalkit.errors import DataError, DesignError, InferenceNotSupportedError
from evalkit.study import check_study
from evalkit.study.config import derive_seed

BASE = """
[study]
name = "tiny"
seed = 3

[data]
simulator = "bergen_rates"
options = {n_persons = 500}

[roles]
unit = "city"
time = "month"
treatment = "treated"
cluster = "city"

[groups]
families = "family_with_children = 1"

[collapse]
by = ["city", "month", "treated"]
measures = {work = "mean", duration = {column = "months_on_assistance", where = "recipient = 1"}}

[[analysis]]
id = "twfe"
estimator = "did.TWFE"
inference = "cr2"
expand = {outcome = ["work", "duration"], group = ["all", "families"]}
"""


def write(tmp_path, text: str):
    (tmp_path / "study.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_valid_study_is_parsed_and_expanded(tmp_path):
    study = check_study(write(tmp_path, BASE))
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
    # a measure with its own condition is weighted by its own count
    assert study.analyses[2].kwargs["weights"] == "n_duration"
    assert study.analyses[0].where is None
    assert study.data.kind == "simulator" and study.data.options["n_persons"] == 500


def test_unknown_top_level_table_suggests_the_right_one(tmp_path):
    text = BASE.replace("[[analysis]]", "[[analyses]]")
    with pytest.raises(DesignError, match="unknown table 'analyses'") as err:
        check_study(write(tmp_path, text))
    assert "did you mean 'analysis'" in str(err.value)


def test_unknown_key_names_file_line_table_and_suggestion(tmp_path):
    text = BASE.replace('name = "tiny"', 'name = "tiny"\ntitel = "x"')
    with pytest.raises(DesignError) as err:
        check_study(write(tmp_path, text))
    msg = str(err.value)
    assert "study.toml:4: unknown key 'titel' in [study]" in msg
    assert "did you mean 'title'" in msg
    assert err.value.column == "titel"


def test_unknown_key_in_an_analysis_points_at_its_line(tmp_path):
    text = BASE + '\n[[analysis]]\nid = "b"\nestimator = "did.TWFE"\ninferense = "cr2"\n'
    with pytest.raises(DesignError, match=r"study\.toml:\d+: unknown key 'inferense'") as err:
        check_study(write(tmp_path, text))
    assert "[[analysis]] #2" in str(err.value)
    assert "did you mean 'inference'" in str(err.value)
    line = int(str(err.value).split("study.toml:")[1].split(":")[0])
    assert (tmp_path / "study.toml").read_text().splitlines()[line - 1].startswith("inferense")


def test_unknown_estimator_option_lists_the_estimators_options(tmp_path):
    text = BASE.replace('inference = "cr2"', 'inference = "cr2"\noptions = {weight = "n"}')
    with pytest.raises(DesignError, match=r"unknown did\.TWFE option 'weight'") as err:
        check_study(write(tmp_path, text))
    assert "did you mean 'weights'" in str(err.value)


def test_unknown_estimator_lists_the_registry(tmp_path):
    text = BASE.replace('"did.TWFE"', '"did.TWEF"')
    with pytest.raises(DesignError, match=r"unknown estimator 'did\.TWEF'") as err:
        check_study(write(tmp_path, text))
    for name in registry.names():
        assert name in str(err.value)
    assert "did you mean 'did.TWFE'" in str(err.value)


def test_missing_data_table(tmp_path):
    text = BASE.replace('[data]\nsimulator = "bergen_rates"\noptions = {n_persons = 500}\n', "")
    with pytest.raises(DesignError, match=r"names no data \(\[data\] is missing\)"):
        check_study(write(tmp_path, text))


def test_two_data_sources_are_an_error(tmp_path):
    text = BASE.replace('simulator = "bergen_rates"', 'simulator = "bergen_rates"\nquery = "x"')
    with pytest.raises(DesignError, match="exactly one of file, query or simulator"):
        check_study(write(tmp_path, text))


def test_missing_data_file_is_a_data_error(tmp_path):
    text = BASE.replace(
        'simulator = "bergen_rates"\noptions = {n_persons = 500}', 'file = "extract.parquet"'
    )
    with pytest.raises(DataError, match=r"'extract\.parquet' not found"):
        check_study(write(tmp_path, text))


def test_unknown_simulator_and_simulator_option(tmp_path):
    with pytest.raises(DesignError, match="did you mean 'bergen_rates'"):
        check_study(write(tmp_path, BASE.replace('"bergen_rates"', '"bergen_rate"')))
    with pytest.raises(DesignError, match="unknown simulator option 'n_person'"):
        check_study(write(tmp_path, BASE.replace("n_persons = 500", "n_person = 500")))


def test_roles_are_checked_against_a_data_files_columns(tmp_path):
    frame = pd.DataFrame(
        {"kommune": ["A", "B"] * 3, "t": [1, 1, 2, 2, 3, 3], "d": [0] * 5 + [1], "y": range(6)}
    )
    frame.to_csv(tmp_path / "extract.csv", index=False)
    text = """
    [data]
    file = "extract.csv"
    [roles]
    unit = "city"
    time = "t"
    treatment = "d"
    outcome = "y"
    [[analysis]]
    id = "a"
    estimator = "did.TWFE"
    """
    with pytest.raises(DesignError, match="column 'city' \\(unit\\) is not in the data"):
        check_study(write(tmp_path, text))
    study = check_study(write(tmp_path, text.replace('"city"', '"kommune"')))
    assert study.data.file == (tmp_path / "extract.csv").resolve()


def test_roles_are_checked_against_the_cells(tmp_path):
    text = BASE.replace('outcome = ["work", "duration"]', 'outcome = ["work", "income"]')
    with pytest.raises(DesignError, match="column 'income' \\(outcome\\) is not in the cells"):
        check_study(write(tmp_path, text))


def test_group_conditions_are_bound_against_the_columns(tmp_path):
    text = BASE.replace("family_with_children = 1", "family = 1")
    with pytest.raises(DesignError, match="condition 'family = 1' does not work"):
        check_study(write(tmp_path, text))


def test_unknown_group_suggests_the_closest(tmp_path):
    text = BASE.replace('group = ["all", "families"]', 'group = ["all", "familes"]')
    with pytest.raises(DesignError, match="group 'familes'") as err:
        check_study(write(tmp_path, text))
    assert "did you mean 'families'" in str(err.value)


def test_inference_tables_and_unsupported_methods(tmp_path):
    text = BASE.replace('inference = "cr2"', 'inference = {method = "cluster", cluster = "city"}')
    study = check_study(write(tmp_path, text))
    assert study.analyses[0].inference.method == "cluster"
    assert study.analyses[0].inference.cluster == "city"
    with pytest.raises(InferenceNotSupportedError, match="does not support inference='wild'"):
        check_study(write(tmp_path, BASE.replace('"cr2"', '"wild"')))
    with pytest.raises(DesignError, match="unknown inference method 'cr3'"):
        check_study(write(tmp_path, BASE.replace('"cr2"', '"cr3"')))


def test_duplicate_ids_are_rejected(tmp_path):
    text = BASE + '\n[[analysis]]\nid = "twfe.work.all"\nestimator = "did.TWFE"\n'
    text += 'options = {outcome = "work"}\n'
    with pytest.raises(DesignError, match=r"'twfe\.work\.all' is used twice"):
        check_study(write(tmp_path, text))


def test_required_roles_must_be_given(tmp_path):
    text = BASE.replace('treatment = "treated"\n', "")
    with pytest.raises(DesignError, match="needs treatment"):
        check_study(write(tmp_path, text))


def test_invalid_toml_names_the_line(tmp_path):
    with pytest.raises(DesignError, match=r"not valid TOML.*line 3"):
        check_study(write(tmp_path, '[study]\nname = "x"\nseed = \n'))


def test_missing_study_file(tmp_path):
    with pytest.raises(DesignError, match="no study file"):
        check_study(tmp_path)


def test_verify_tolerances(tmp_path):
    text = BASE + "\n[verify]\nestimate = {rtol = 1e-4}\nconf_low = {atol = 0.1}\n"
    study = check_study(write(tmp_path, text))
    assert study.tolerances["estimate"].rtol == 1e-4
    assert study.tolerances["estimate"].atol == 1e-8
    assert study.tolerances["std_error"].rtol == 1e-6
    assert study.tolerances["conf_low"].atol == 0.1
    with pytest.raises(DesignError, match="unknown column 'estimates'"):
        check_study(write(tmp_path, BASE + "\n[verify]\nestimates = {rtol = 1}\n"))


def test_design_hash_ignores_comments_and_layout(tmp_path):
    a = check_study(write(tmp_path, BASE)).design_sha256
    b = check_study(
        write(tmp_path, "# a comment\n" + BASE.replace("seed = 3", "seed   =   3"))
    ).design_sha256
    c = check_study(write(tmp_path, BASE.replace("seed = 3", "seed = 4"))).design_sha256
    assert a == b != c


def test_analysis_seeds_depend_on_id_not_order(tmp_path):
    study = check_study(write(tmp_path, BASE))
    assert study.analyses[0].seed == derive_seed(3, "twfe.work.all")
    assert len({a.seed for a in study.analyses}) == len(study.analyses)


def test_where_and_group_combine(tmp_path):
    text = BASE.replace(
        'inference = "cr2"', 'inference = "cr2"\nwhere = "city <> \'Oslo\'"'
    ).replace('group = ["all", "families"]', 'group = ["families"]')
    study = check_study(write(tmp_path, text))
    assert study.analyses[0].where == "(family_with_children = 1) AND (city <> 'Oslo')"
    assert study.analyses[0].custom_where
