from __future__ import annotations

import pytest
from click.testing import CliRunner

from evalkit import EvalkitError
from evalkit.cli import main
from evalkit.core import registry


def test_registry_lookup_and_suggestion():
    assert registry.get("did.TWFE").__name__ == "TWFE"
    with pytest.raises(EvalkitError, match=r"did\.TWFE"):
        registry.get("did.TWEF")


def test_cli_help_and_estimators():
    runner = CliRunner()
    out = runner.invoke(main, ["--help"])
    assert out.exit_code == 0 and "verify" in out.output
    out = runner.invoke(main, ["estimators"])
    assert out.exit_code == 0 and "did.TWFE" in out.output


def test_cli_describe_data_reports_evalkit_errors_with_status_2(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,t,y\n1,1,0.5\n1,1,0.7\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["describe-data", str(path), "--unit", "id", "--time", "t"])
    assert out.exit_code == 2
    assert "P003" in out.output
    out = CliRunner().invoke(main, ["describe-data", str(path), "--unit", "idd", "--time", "t"])
    assert out.exit_code == 2 and "idd" in out.output


def test_cli_error_messages_keep_brackets(tmp_path):
    study = tmp_path / "s"
    study.mkdir()
    (study / "study.toml").write_text("[study]\nname = 's'\ntitel = 'x'\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["check", str(study)])
    assert out.exit_code == 2
    assert "[study]" in out.output or "titel" in out.output


def test_cli_simulate_writes_a_file(tmp_path):
    target = tmp_path / "sim.parquet"
    out = CliRunner().invoke(
        main,
        [
            "simulate",
            "bergen_rates",
            "--out",
            str(target),
            "--seed",
            "1",
            "--option",
            "n_persons=2000",
        ],
    )
    assert out.exit_code == 0, out.output
    assert target.is_file()
    bad = CliRunner().invoke(
        main, ["simulate", "bergen_rates", "--out", str(target), "--option", "x"]
    )
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


def test_cli_datasets_lists_local_files(monkeypatch):
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)  # the packaged copies serve
    out = CliRunner().invoke(main, ["datasets"])
    assert out.exit_code == 0, out.output
    for name in ("mpdta", "prop99", "basque", "sipp1991"):
        assert name in out.output
