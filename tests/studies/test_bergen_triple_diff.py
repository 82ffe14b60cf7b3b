"""Triple differences in studies: split_by, collapse_by and [columns], truth, report, privacy.

The fast tests run a small simulated study; the slow ones check that the estimates are
near the planted truth on a larger sample and that the before/after design's intervals
hold their level on data without an effect (where monthly cells with HC1 do not).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from evalkit.data.disclosure import DisclosurePolicy, audit
from evalkit.simulate import bergen_rates
from evalkit.study import check_study, run_study
from evalkit.study.design import Design

STUDY = Path(__file__).resolve().parents[2] / "studies" / "bergen_rates"
SIM = {"seed": 23, "n_persons": 4000, "start": "2019-01", "end": "2021-06"}

SMALL = """
[study]
name = "ddd_small"
seed = 23
min_cell_size = 5

[data]
simulator = "bergen_rates"
options = {n_persons = 4000, start = "2019-01", end = "2021-06"}

[columns]
after_reform = "CAST(month >= DATE '2020-03-01' AS INTEGER)"

[roles]
unit = "city"
time = "month"
treatment = "treated"
cluster = "city"

[groups]
families = "family_with_children = 1"
nw = "non_western = 1"
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
estimator = "did.TWFE"
inference = "cr2"
options = {outcome = "recipient"}

[[analysis]]
id = "ddd"
title = "Each group against the rest of its city"
estimator = "did.TripleDiff"
collapse_by = ["city", "after_reform", "treated"]
options = {time = "after_reform"}
inference = "iid"
[analysis.expand]
outcome = ["recipient", "income", "duration"]
split_by = ["families", "nw", "nw_families"]

[[analysis]]
id = "ddd_within_nw"
estimator = "did.TripleDiff"
collapse_by = ["city", "after_reform", "treated"]
options = {time = "after_reform", outcome = "recipient"}
inference = "iid"
group = "nw"
split_by = "families"

[[analysis]]
id = "ddd_column"
estimator = "did.TripleDiff"
collapse_by = ["city", "after_reform", "treated"]
options = {time = "after_reform", outcome = "recipient", target = 1}
inference = "iid"
split_by = "non_western"

[[analysis]]
id = "ddd_monthly"
estimator = "did.TripleDiff"
options = {outcome = "recipient"}
split_by = "families"
"""


def _write(folder: Path, text: str = SMALL, figures: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    design = Design.from_text(textwrap.dedent(text))
    if figures:
        design.report.figures = True
    design.to_toml(folder / "study.toml")
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = _write(tmp_path_factory.mktemp("ddd") / "small", figures=True)
    run = run_study(folder, progress=False)
    assert run.ok, run.errors
    return run, {a["id"]: a for a in run.results["analyses"]}


@pytest.fixture(scope="module")
def sim():
    return bergen_rates(**SIM)


def _contrast(sim, outcome, target, rows=None):
    def within(c):
        return f"({rows}) AND ({c})" if rows else c

    mine = sim.truth_where("treated", outcome, within(target))
    rest = sim.truth_where("treated", outcome, within(f"NOT ({target})"))
    return mine - rest


def test_triple_difference_rows_are_in_results_json_with_truth(small, sim):
    run, by_id = small
    on_disk = json.loads((run.out_dir / "results.json").read_text())
    assert on_disk == run.results
    conditions = {
        "families": "family_with_children = 1",
        "nw": "non_western = 1",
        "nw_families": "non_western = 1 AND family_with_children = 1",
    }
    for outcome in ("recipient", "income", "duration"):
        for split, condition in conditions.items():
            entry = by_id[f"ddd.{outcome}.{split}"]
            assert entry["estimator"] == "did.TripleDiff" and entry["error"] is None
            assert entry["split"] == {
                "by": split,
                "column": f"in_{split}",
                "condition": condition,
            }
            assert entry["options"]["group"] == f"in_{split}"
            (row,) = entry["tidy"]
            assert row["term"] == "DDD" and row["group"] == "1"
            expected = _contrast(sim, outcome, condition)
            assert row["truth"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert entry["info"]["n_periods"] == 2 and entry["info"]["n_groups"] == 2
            assert entry["inference"]["method"] == "iid"


def test_the_truth_of_the_rest_adds_up_with_the_simulators_truth(small, sim):
    """Independent check of the complement: ATT(all) mixes ATT(group) and ATT(rest)."""
    _, by_id = small
    data = sim.data
    treated = data[data["treated"] == 1]
    n_all = len(treated)
    n_fam = int((treated["family_with_children"] == 1).sum())
    for outcome in ("recipient", "income"):  # person-month shares and means
        t_all = sim.truth[outcome]["all"]
        t_fam = sim.truth[outcome]["families_with_children"]
        t_rest = (t_all * n_all - t_fam * n_fam) / (n_all - n_fam)
        truth = by_id[f"ddd.{outcome}.families"]["tidy"][0]["truth"]
        assert truth == pytest.approx(t_fam - t_rest, rel=1e-9)


def test_estimates_are_near_the_truth_on_a_small_sample(small):
    _, by_id = small
    for aid, entry in by_id.items():
        # ddd_monthly's HC1 errors on monthly cells are known to be too small (the study's
        # notes: 41% of true nulls rejected); its limits are tested below instead.
        if not aid.startswith("ddd") or aid == "ddd_monthly":
            continue
        (row,) = entry["tidy"]
        assert row["truth"] is not None, aid
        assert abs(row["estimate"] - row["truth"]) < 4 * row["std_error"], aid


def test_a_row_group_and_a_split_compare_within_the_group(small, sim):
    _, by_id = small
    entry = by_id["ddd_within_nw"]
    assert entry["group"] == "nw" and entry["where"] == "non_western = 1"
    expected = _contrast(sim, "recipient", "family_with_children = 1", rows="non_western = 1")
    assert entry["tidy"][0]["truth"] == pytest.approx(expected, rel=1e-12)
    # only non-Western rows: fewer rows behind the cells than in the whole population
    assert entry["data"]["n_microdata_rows"] < by_id["ddd.recipient.nw"]["data"]["n_microdata_rows"]


def test_a_column_split_equals_the_same_group_split(small):
    _, by_id = small
    col, grp = by_id["ddd_column"], by_id["ddd.recipient.nw"]
    assert col["split"] == {"by": "non_western", "column": "non_western", "condition": None}
    a, b = col["tidy"][0], grp["tidy"][0]
    assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-10)
    assert a["std_error"] == pytest.approx(b["std_error"], rel=1e-10)
    assert a["truth"] == pytest.approx(b["truth"], rel=1e-12)


def test_monthly_cells_pick_hc1_and_the_report_says_its_limits(small):
    run, by_id = small
    monthly = by_id["ddd_monthly"]
    assert monthly["inference"]["method"] == "hetero"  # automatic with one treated city
    assert monthly["info"]["n_periods"] == 30
    md = (run.out_dir / "report.md").read_text()
    assert "## Heterogeneity within the treated units: triple differences" in md
    assert "Why triple differences can be trusted where the city-level analyses" in md
    assert "(`after_reform`, `month`): the city x period fixed effects absorb" in md
    assert "The 11 with classical standard errors" in md
    assert "Their cells cover the whole period before and after the treatment" in md
    assert "The 1 with heteroskedasticity-robust (HC1) standard errors" in md
    assert "then HC1 is too small" in md
    # the caution about cluster-robust intervals concerns the city-level analysis only
    caveats = md.split("## Caveats", 1)[1].split("\n## ", 1)[0]
    assert "**C1. Few treated clusters.**" in caveats
    assert "*Concerns 1 analysis: " in caveats
    assert (
        "| Outcome | Comparison | Unit | Term |" in md
        and "| recipient | families vs the rest | share | DDD |" in md
    )
    assert "![ddd: estimates with confidence intervals](figures/ddd.png)" in md
    assert (run.out_dir / "figures" / "ddd.png").stat().st_size > 0
    # the trend figures use the study's own cells only
    trends = {p.name for p in (run.out_dir / "figures").glob("trends_*")}
    assert trends == {"trends_all.png"}
    keys = {(c["group"], c["split_by"], tuple(c["cell_keys"])) for c in run.results["cells"]}
    assert ("all", "families", ("city", "after_reform", "treated", "in_families")) in keys
    assert ("all", "families", ("city", "month", "treated", "in_families")) in keys
    assert ("nw", "families", ("city", "after_reform", "treated", "in_families")) in keys
    assert ("all", None, ("city", "month", "treated")) in keys


def test_no_small_counts_and_small_split_cells_are_suppressed(tmp_path):
    design = Design.from_text(textwrap.dedent(SMALL))
    design.study.min_cell_size = 40
    for analysis in design.analyses:
        if analysis.split_by == "families":
            analysis.split_by = "nw_families"
    folder = tmp_path / "s"
    folder.mkdir()
    design.to_toml(folder / "study.toml")
    run = run_study(folder, progress=False)
    assert run.ok, run.errors
    by_id = {a["id"]: a for a in run.results["analyses"]}
    monthly = by_id["ddd_monthly"]
    assert monthly["data"]["n_suppressed_cells"] > 0
    # cells left without a partner (group or rest suppressed) carry no information
    assert monthly["info"]["n_obs"] < monthly["data"]["n_cells"]
    assert any("singleton" in w for w in monthly["warnings"])
    policy = DisclosurePolicy(40)
    assert audit({k: v for k, v in run.results.items() if k != "analyses"}, policy) == []
    assert audit(run.results["analyses"], policy.for_cells()) == []


def test_split_by_works_on_rows_without_collapse(tmp_path):
    text = """
    [study]
    seed = 5
    [data]
    simulator = "bergen_rates"
    options = {n_persons = 600, start = "2019-09", end = "2020-08"}
    [roles]
    unit = "city"
    time = "month"
    treatment = "treated"
    [groups]
    families = "family_with_children = 1"
    [[analysis]]
    id = "rows"
    estimator = "did.TripleDiff"
    options = {outcome = "recipient"}
    inference = "hetero"
    split_by = "families"
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_study(_write(tmp_path / "rows", text), progress=False)
    assert run.ok, run.errors
    (entry,) = run.results["analyses"]
    assert entry["data"]["mode"] == "rows"
    row = entry["tidy"][0]
    assert row["term"] == "DDD" and np.isfinite(row["estimate"])
    sim = bergen_rates(seed=5, n_persons=600, start="2019-09", end="2020-08")
    assert row["truth"] == pytest.approx(
        _contrast(sim, "recipient", "family_with_children = 1"), rel=1e-12
    )


def test_real_extract_gets_no_truth_and_the_same_estimates(tmp_path, small, sim):
    path = tmp_path / "extract.parquet"
    sim.data.to_parquet(path, index=False)
    run = run_study(_write(tmp_path / "x"), out=tmp_path / "o", progress=False, data_override=path)
    _, by_id = small
    for entry in run.results["analyses"]:
        row = entry["tidy"][0]
        assert "truth" not in row
        assert row["estimate"] == pytest.approx(by_id[entry["id"]]["tidy"][0]["estimate"], rel=1e-9)


# --------------------------------------------------------------------------- slow
def _ddd_only(folder: Path, seed: int | None = None, **options) -> Path:
    """The committed study with only its triple differences; seed and simulator changed."""
    design = Design.from_toml(STUDY)
    design.analyses = [a for a in design.analyses if a.id == "ddd"]
    assert len(design.analyses) == 1, "study.toml no longer has the ddd analysis"
    if seed is not None:
        design.study.seed = seed
    design.data.options = {**(design.data.options or {}), **options}
    design.report.figures = False
    folder.mkdir(parents=True, exist_ok=True)
    design.to_toml(folder / "study.toml")
    return folder


@pytest.mark.slow
def test_estimates_are_near_the_truth_on_a_large_sample(tmp_path):
    small = run_study(_ddd_only(tmp_path / "small"), progress=False)
    large = run_study(_ddd_only(tmp_path / "large", n_persons=300_000), progress=False)
    assert small.ok and large.ok
    se_small = {a["id"]: a["tidy"][0]["std_error"] for a in small.results["analyses"]}
    assert len(se_small) == 21  # 7 outcomes x 3 groups
    for entry in large.results["analyses"]:
        (row,) = entry["tidy"]
        z = (row["estimate"] - row["truth"]) / row["std_error"]
        assert abs(z) < 3.5, (entry["id"], row["estimate"], row["truth"], row["std_error"])
        if abs(row["truth"]) > 4 * row["std_error"]:
            assert np.sign(row["estimate"]) == np.sign(row["truth"]), entry["id"]
    # six times the persons: the intervals are clearly narrower
    ratio = np.median(
        [a["tidy"][0]["std_error"] / se_small[a["id"]] for a in large.results["analyses"]]
    )
    assert ratio < 0.6


@pytest.mark.slow
def test_before_after_cells_hold_the_level_where_monthly_hc1_does_not(tmp_path):
    """Null simulations: the committed design (before/after cells, iid) vs monthly HC1."""
    rejected = {"before_after_iid": [], "monthly_hc1": []}
    for seed in range(12):
        folder = _ddd_only(
            tmp_path / f"s{seed}", n_persons=20_000, effect_scale=0.0, seed=900 + seed
        )
        monthly = Design.from_toml(folder)
        (ddd,) = monthly.analyses
        assert ddd.collapse_by and ddd.options == {"time": "after_reform"} and ddd.inference
        ddd.collapse_by, ddd.options, ddd.inference = None, None, None  # monthly cells, HC1
        (tmp_path / f"m{seed}").mkdir()
        monthly.to_toml(tmp_path / f"m{seed}" / "study.toml")
        for name, where in (("before_after_iid", folder), ("monthly_hc1", tmp_path / f"m{seed}")):
            run = run_study(where, progress=False)
            for entry in run.results["analyses"]:
                row = entry["tidy"][0]
                assert row["truth"] == 0.0
                rejected[name].append(row["p_value"] < 0.05)
    assert check_study(folder).analyses[0].inference.method == "iid"
    rate = {k: float(np.mean(v)) for k, v in rejected.items()}
    assert len(rejected["before_after_iid"]) == 12 * 21  # seeds x (7 outcomes x 3 groups)
    # nominal 5%; the 15 tests of a data set share it, so 12 data sets give a rough rate
    # (this run: 16 of 180; 40 data sets of this size gave 35 of 600, 5.8%)
    assert rate["before_after_iid"] <= 0.12, rate
    assert rate["monthly_hc1"] >= 0.25, rate  # serially dependent cells (this run: 48%)


def test_the_guides_example_is_a_valid_design(tmp_path):
    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "studies.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", guide, re.S) if "split_by" in b]
    head = textwrap.dedent(
        """
        [data]
        simulator = "bergen_rates"
        [roles]
        unit = "city"
        time = "month"
        treatment = "treated"
        [collapse]
        by = ["city", "month", "treated"]
        measures = {work = "mean", recipient = "mean"}
        """
    )
    study = check_study(_write(tmp_path / "guide", head + block))
    assert [a.id for a in study.analyses] == [
        "ddd.work.families_with_children",
        "ddd.work.non_western",
        "ddd.recipient.families_with_children",
        "ddd.recipient.non_western",
    ]


def test_truth_by_stratum_reproduces_the_simulators_truth(sim):
    from evalkit.simulate.bergen import GROUPS

    assert {"family_with_children", "non_western"} <= set(sim.strata_columns)
    for outcome, by_group in sim.truth.items():
        for group, condition in GROUPS.items():
            got = sim.truth_where("treated", outcome, condition)
            assert got == pytest.approx(by_group[group], rel=1e-12, abs=1e-12), (outcome, group)
    # conditions on other columns are answered from each row's effect (every treated row
    # is in Bergen); other terms and empty selections have no truth
    assert sim.truth_where("treated", "income", "city = 'Bergen'") == pytest.approx(
        sim.truth["income"]["all"], rel=1e-12
    )
    assert sim.truth_where("treated_2021", "work", None) is None
    assert sim.truth_where("treated", "work", "non_western = 2") is None
