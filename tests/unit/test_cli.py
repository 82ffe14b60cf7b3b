"""The command line's listings, JSON output, line breaking and the describe-data rename."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from evalkit import datasets
from evalkit.cli import main
from evalkit.core.registry import get, names


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_estimators_lists_family_name_and_first_docstring_line():
    out = invoke("estimators")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert len(lines) == len(names())
    for name, line in zip(names(), lines, strict=True):
        family, listed, *description = line.split()
        first = get(name).__doc__.strip().splitlines()[0].strip()
        assert (family, listed) == (name.split(".")[0], name)
        assert " ".join(description) == " ".join(first.split())
    assert "Two-way fixed-effects difference-in-differences." in out.stdout
    # columns line up whatever the length of the family names
    starts = {line.index(name) for name, line in zip(names(), lines, strict=True)}
    assert len(starts) == 1


def test_estimators_json():
    out = invoke("estimators", "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == names()
    twfe = next(r for r in rows if r["name"] == "did.TWFE")
    assert twfe["family"] == "did" and twfe["description"].startswith("Two-way fixed-effects")
    assert all(r["description"] for r in rows)


def test_datasets_prints_paths_and_urls_in_full(monkeypatch, tmp_path):
    deep = tmp_path.joinpath(*(["a_rather_long_folder_name"] * 8), "mpdta.csv")
    real_path = datasets.path

    def fake_path(name, **kwargs):
        return deep if name == "mpdta" else real_path(name, **kwargs)

    monkeypatch.setattr(datasets, "path", fake_path)
    out = invoke("datasets")
    assert out.exit_code == 0, out.output
    assert len(str(deep)) > 200
    assert f"  local file:    {deep}" in out.stdout.splitlines()
    for name in datasets.names():
        assert f"public source: {datasets.info(name)['url']}" in out.stdout
    assert "..." not in out.stdout and "…" not in out.stdout

    out = invoke("datasets", "--json")
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == datasets.names()
    mpdta = rows[0]
    assert mpdta["local_file"] == str(deep)
    assert mpdta["url"] == datasets.info("mpdta")["url"]
    assert mpdta["sha256"] == datasets.info("mpdta")["sha256"]


def test_messages_are_not_hard_wrapped_when_not_a_terminal(tmp_path):
    column = "a_column_name_long_enough_that_an_eighty_column_console_would_break_it_" * 2
    path = tmp_path / "d.csv"
    path.write_text("id,t,y\n1,1,0.5\n1,2,0.7\n", encoding="utf-8")
    out = invoke("describe-data", str(path), "--unit", column, "--time", "t")
    assert out.exit_code == 2
    assert column in out.stderr  # one unbroken line, whatever the console width


def test_describe_data_help_says_it_describes_a_data_file():
    out = invoke("describe-data", "--help")
    assert out.exit_code == 0
    text = " ".join(out.stdout.split())  # help prose is wrapped like any --help
    assert "data file" in text and "evalkit estimators" in text
    listing = invoke("--help").stdout
    commands = [line.split()[0] for line in listing.split("Commands:")[1].splitlines() if line]
    assert "describe-data" in commands and "describe" not in commands  # the old name is hidden


def test_old_describe_name_still_works_and_warns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,t,y\n1,1,0.5\n1,2,0.7\n2,1,0.1\n2,2,0.3\n", encoding="utf-8")
    old = invoke("describe", str(path), "--unit", "id", "--time", "t")
    new = invoke("describe-data", str(path), "--unit", "id", "--time", "t")
    assert old.exit_code == new.exit_code == 0
    assert old.stdout == new.stdout and json.loads(new.stdout)["n_units"] == 2
    assert "describe-data" in old.stderr and new.stderr == ""


def test_old_describe_name_with_an_estimator_points_to_estimators():
    out = invoke("describe", "did.TWFE", "--unit", "id", "--time", "t")
    assert out.exit_code == 2
    assert "is an estimator" in out.stderr and "evalkit estimators" in out.stderr
    out = invoke("describe", str(Path("no") / "such.csv"), "--unit", "id", "--time", "t")
    assert out.exit_code == 2 and "does not exist" in out.stderr


def test_describe_data_reads_iso_date_text_in_a_csv_as_dates(tmp_path):
    path = tmp_path / "months.csv"
    path.write_text(
        "id,m,y,g\n1,2020-01,0.5,2020-02\n1,2020-02,0.7,2020-02\n2,2020-01,0.1,\n2,2020-02,0.3,\n",
        encoding="utf-8",
    )
    out = invoke("describe-data", str(path), "--unit", "id", "--time", "m", "--cohort", "g")
    assert out.exit_code == 0, out.output
    described = json.loads(out.stdout)
    assert described["time_unit"] == "month"
    assert (described["first_period"], described["last_period"]) == ("2020-01", "2020-02")
    years = tmp_path / "years.csv"
    years.write_text("id,t,y\n1,2003,0.5\n1,2004,0.7\n", encoding="utf-8")
    out = invoke("describe-data", str(years), "--unit", "id", "--time", "t")
    assert out.exit_code == 0 and "time_unit" not in json.loads(out.stdout)  # numbers stay
