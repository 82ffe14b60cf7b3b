"""Running someone else's study is safe: hostile study folders are refused and change nothing.

Every file in ``hostile/`` is a study.toml that tries to write, read or fetch something it
should not. Each must fail with an EvalkitError, before or during the run, and leave the
file system outside the run folder exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.simulate import get as simulator
from evalkit.study import check_study, load_study, run_study

HOSTILE = Path(__file__).parent / "hostile"
CASES = sorted(HOSTILE.glob("*.toml"))


@pytest.fixture(scope="module")
def extract_csv(tmp_path_factory) -> Path:
    """A small simulated register extract, written once."""
    path = tmp_path_factory.mktemp("extract") / "extract.csv"
    sim = simulator("bergen_rates")(seed=3, n_persons=800, start="2019-06", end="2020-09")
    sim.data.to_csv(path, index=False)
    return path


def _snapshot(folder: Path) -> dict[str, str]:
    """Path -> content hash of every file below ``folder`` (links not followed)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if Path(root, d).is_symlink()]:
            p = Path(root, name)
            key = str(p.relative_to(folder))
            out[key] = "link" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _lay_out(tmp_path: Path, case: Path, extract: Path) -> tuple[Path, Path]:
    """Write the study folder and a sibling 'outside' folder holding a secret."""
    outside = tmp_path / "outside"
    outside.mkdir(parents=True)
    (outside / "secret.csv").write_text("city,secret\nBergen,42\n", encoding="utf-8")
    study = tmp_path / "study"
    study.mkdir()
    (study / "extract.csv").write_bytes(extract.read_bytes())
    (study / "link.csv").symlink_to(outside / "secret.csv")
    (study / "linkdir").symlink_to(outside, target_is_directory=True)
    text = case.read_text(encoding="utf-8").replace("{outside}", str(outside))
    (study / "study.toml").write_text(text, encoding="utf-8")
    return study, outside


def test_there_are_hostile_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_hostile_study_is_refused_and_changes_nothing(case, tmp_path, extract_csv):
    study, _ = _lay_out(tmp_path, case, extract_csv)
    run_dir = tmp_path / "run"
    before = _snapshot(tmp_path)
    with pytest.raises(EvalkitError) as info:
        load_study(study)
        check_study(study)
        outcome = run_study(study, out=run_dir, progress=False)
        if outcome.errors:  # an analysis that failed is reported, not raised: re-raise it
            raise EvalkitError(f"analysis failed: {outcome.errors[0]}")
    message = str(info.value)
    assert "Traceback" not in message
    print(f"{case.stem}: {message.splitlines()[0]}")
    after = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("run/")}
    assert after == before, f"{case.stem} changed files outside the run folder"


def test_messages_name_the_key(tmp_path, extract_csv):
    study, _ = _lay_out(tmp_path, HOSTILE / "query_then_copy.toml", extract_csv)
    with pytest.raises(EvalkitError, match=r"study\.toml:\d+.*query must be exactly one SELECT"):
        load_study(study)
    study2, _ = _lay_out(tmp_path / "b", HOSTILE / "path_traversal.toml", extract_csv)
    with pytest.raises(EvalkitError, match="outside the study folder"):
        load_study(study2)
    study3, _ = _lay_out(tmp_path / "c", HOSTILE / "column_injection.toml", extract_csv)
    with pytest.raises(EvalkitError, match=r"\[columns\] leak must be a single SQL expression"):
        load_study(study3)


BENIGN = """
[study]
name = "benign"
title = "<script>alert('x')</script> & [link](javascript:alert(1))"
seed = 1

[data]
query = "SELECT * FROM 'extract.csv' WHERE city <> 'Nowhere; COPY'"

[columns]
late = "CAST(month >= DATE '2020-03-01' AS INTEGER)"

[roles]
unit = "city"
time = "month"
treatment = "treated"
cluster = "city"

[groups]
semi = "city <> 'a;b'"

[collapse]
by = ["city", "month", "treated"]

[collapse.measures]
work = "mean"

[report]
figures = false

[[analysis]]
id = "twfe"
estimator = "did.TWFE"
inference = "cr2"
options = {outcome = "work"}
"""


def _benign(tmp_path: Path, extract: Path) -> Path:
    study = tmp_path / "study"
    study.mkdir()
    (study / "extract.csv").write_bytes(extract.read_bytes())
    (study / "study.toml").write_text(BENIGN, encoding="utf-8")
    return study


def test_a_legitimate_query_study_runs_without_network(tmp_path, extract_csv, monkeypatch):
    """Quoted ';' in strings are fine; the run opens no socket and writes only its folder."""
    study = _benign(tmp_path, extract_csv)

    def no_network(*args, **kwargs):
        raise AssertionError("a study run tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    before = _snapshot(tmp_path)
    outcome = run_study(study, out=tmp_path / "run", progress=False)
    assert not outcome.errors
    after = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("run/")}
    assert after == before
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in markdown
    assert not re.search(r"(?<!\\)\]\(javascript:", markdown)  # only an escaped, inert \]


def test_relative_query_paths_ignore_the_working_directory(tmp_path, extract_csv, monkeypatch):
    """'extract.csv' in a query is the study's file, even when the cwd has one too."""
    study = _benign(tmp_path, extract_csv)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "extract.csv").write_text("not,the,data\n1,2,3\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    outcome = run_study(study, out=tmp_path / "run", progress=False)
    assert not outcome.errors


def test_data_root_allows_files_outside_the_study(tmp_path, extract_csv, monkeypatch):
    study = _benign(tmp_path, extract_csv)
    secure = tmp_path / "secure"
    secure.mkdir()
    (secure / "extract.csv").write_bytes(extract_csv.read_bytes())
    text = BENIGN.replace(
        "query = \"SELECT * FROM 'extract.csv' WHERE city <> 'Nowhere; COPY'\"",
        f'file = "{secure / "extract.csv"}"',
    )
    (study / "study.toml").write_text(text, encoding="utf-8")
    with pytest.raises(EvalkitError, match="outside the study folder"):
        load_study(study)
    monkeypatch.setenv("EVALKIT_DATA_ROOT", str(secure))
    outcome = run_study(study, out=tmp_path / "run", progress=False)
    assert not outcome.errors
