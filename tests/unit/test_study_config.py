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
    with pytest.raises(InferenceNotSupportedError, match="does not support inference='jackknife'"):
        check_study(write(tmp_path, BASE.replace('"cr2"', '"jackknife"')))
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


# --------------------------------------------------------------------------- triple differences
DDD = (
    BASE
    + """
[columns]
after = "CAST(month >= DATE '2020-03-01' AS INTEGER)"

[[analysis]]
id = "ddd"
estimator = "did.TripleDiff"
collapse_by = ["city", "after", "treated"]
options = {time = "after"}
inference = "iid"
expand = {outcome = ["work", "duration"], split_by = ["families", "nw"]}
"""
).replace(
    'families = "family_with_children = 1"',
    'families = "family_with_children = 1"\nnw = "non_western = 1"',
)


def test_split_by_a_group_sets_the_group_column_and_target(tmp_path):
    study = check_study(write(tmp_path, DDD))
    ddd = [a for a in study.analyses if a.family == "ddd"]
    assert [a.id for a in ddd] == [
        "ddd.work.families",
        "ddd.work.nw",
        "ddd.duration.families",
        "ddd.duration.nw",
    ]
    first = ddd[0]
    assert first.split.by == "families" and first.split.column == "in_families"
    assert first.split.condition == "family_with_children = 1"
    assert first.kwargs["group"] == "in_families" and first.kwargs["target"] == 1
    assert first.kwargs["time"] == "after" and first.kwargs["weights"] == "n"
    assert ddd[2].kwargs["weights"] == "n_duration"
    assert first.group == "all" and first.where is None  # the split selects no rows
    assert first.collapse_by == ("city", "after", "treated")
    assert study.cell_keys(first) == ("city", "after", "treated", "in_families")
    assert study.columns == {"after": "CAST(month >= DATE '2020-03-01' AS INTEGER)"}
    # the other analyses keep the study's cells
    assert study.cell_keys(study.analyses[0]) == ("city", "month", "treated")
    assert study.analyses[0].split is None


def test_split_by_combines_with_a_row_group(tmp_path):
    text = DDD.replace(
        'split_by = ["families", "nw"]', 'group = ["all", "nw"], split_by = ["families"]'
    )
    ddd = [a for a in check_study(write(tmp_path, text)).analyses if a.family == "ddd"]
    assert [a.id for a in ddd][:2] == ["ddd.work.all.families", "ddd.work.nw.families"]
    assert ddd[1].where == "non_western = 1" and ddd[1].group == "nw"
    # the row group is the study's; the estimator's group column comes from split_by
    assert {a.kwargs["group"] for a in ddd} == {"in_families"}


def test_split_by_a_column_needs_a_target(tmp_path):
    text = DDD.replace('split_by = ["families", "nw"]', 'split_by = ["non_western"]')
    with pytest.raises(DesignError, match=r"neither a \[groups\] name nor a column with options"):
        check_study(write(tmp_path, text))
    text = text.replace('options = {time = "after"}', 'options = {time = "after", target = 1}')
    a = next(a for a in check_study(write(tmp_path, text)).analyses if a.family == "ddd")
    assert a.split.column == "non_western" and a.split.condition is None
    assert a.kwargs["group"] == "non_western" and a.kwargs["target"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('"families", "nw"', '"familes"'),
            r"(?s)split_by 'familes' is neither.*did you mean 'families'",
        ),
        (('"families", "nw"', '"all"'), "puts every row in one group"),
        (
            ('inference = "iid"\nexpand', 'inference = "iid"\ngroup = "families"\nexpand'),
            "splits them by the same group",
        ),
        (('{time = "after"}', '{time = "after", target = 0}'), "options.target is not needed"),
        (('{time = "after"}', '{time = "after", group = "x"}'), "split_by and options.group"),
        (('"did.TripleDiff"', '"did.TWFE"'), "did.TWFE does not compare groups"),
        (
            ('split_by = ["families", "nw"]', "split_by = [1]"),
            r"split_by in \[\[analysis\]\] #2 must be str",
        ),
        (
            (
                'collapse_by = ["city", "after", "treated"]',
                'collapse_by = ["city", "aftr", "treated"]',
            ),
            r"(?s)column 'aftr' \(collapse_by\).*did you mean 'after'",
        ),
        (
            ('collapse_by = ["city", "after", "treated"]', 'collapse_by = ["city", "after"]'),
            r"column 'treated' \(treatment\) is not in the cells",
        ),
        (
            ('collapse_by = ["city", "after", "treated"]', 'collapse_by = ["city", "city"]'),
            "names 'city' twice",
        ),
        (
            ('collapse_by = ["city", "after", "treated"]', 'collapse_by = ["city", "n"]'),
            "also a measure or count column",
        ),
        (
            ('collapse_by = ["city", "after", "treated"]', "collapse_by = 3"),
            "must be a list of cell keys",
        ),
        (('"CAST(month', '"CAST(mnth'), r"derived column 'after'.*does not work on the data"),
        (('after = "CAST', 'non_western = "CAST'), "already a column of the data"),
    ],
)
def test_bad_triple_difference_designs_are_rejected(tmp_path, change, message):
    text = DDD.replace(*change)
    assert text != DDD
    with pytest.raises(DesignError, match=message):
        check_study(write(tmp_path, text))


def test_split_by_key_typo_suggests_it(tmp_path):
    text = DDD.replace("expand = {outcome", 'split_bi = "families"\nexpand = {outcome')
    with pytest.raises(DesignError, match="unknown key 'split_bi'") as err:
        check_study(write(tmp_path, text))
    assert "did you mean 'split_by'" in str(err.value)
    text = DDD.replace("[columns]", "[column]")
    with pytest.raises(DesignError, match="unknown table 'column'") as err:
        check_study(write(tmp_path, text))
    assert "did you mean 'columns'" in str(err.value)


def test_collapse_by_needs_collapse_and_cannot_be_expanded(tmp_path):
    text = DDD.replace(
        'expand = {outcome = ["work", "duration"], split_by',
        'expand = {collapse_by = ["city"], outcome = ["work"], split_by',
    )
    with pytest.raises(DesignError, match="collapse_by cannot be expanded"):
        check_study(write(tmp_path, text))
    start = DDD.index("[collapse]")
    stop = DDD.index("[[analysis]]")
    text = DDD[:start] + DDD[stop:]
    text = text.replace("collapse_by = [", 'fit_on = "cells"\ncollapse_by = [', 1)
    with pytest.raises(DesignError, match=r'fit_on = "cells" needs \[collapse\]'):
        check_study(write(tmp_path, text))


def test_split_column_must_not_exist_in_the_data(tmp_path):
    text = DDD.replace('nw = "non_western = 1"', 'nw = "non_western = 1"\nx = "work = 1"')
    text = text.replace('after = "CAST', 'in_x = "1"\nafter = "CAST')
    text = text.replace('split_by = ["families", "nw"]', 'split_by = ["x"]')
    with pytest.raises(DesignError, match="would add column 'in_x', which the data already have"):
        check_study(write(tmp_path, text))
