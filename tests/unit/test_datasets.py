"""evalkit.datasets: lookup order, hash checks, downloads (through file:// URLs), errors."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from evalkit import datasets
from evalkit.errors import DataError

SHAPES = {"mpdta": (2500, 6), "prop99": (1209, 4), "basque": (774, 17), "sipp1991": (9915, 14)}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    datasets._VERIFIED.clear()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_dataset_loads_from_data_dir(name, reference_dir):
    df = datasets.load(name)
    assert df.shape == SHAPES[name]
    roles = datasets.info(name)["roles"]
    assert set(c for c in roles.values()) <= set(df.columns)


def test_each_load_is_a_fresh_frame(reference_dir):
    a = datasets.load("mpdta")
    a.loc[0, "lemp"] = -999.0
    assert datasets.load("mpdta").loc[0, "lemp"] != -999.0


def test_unknown_name_suggests():
    with pytest.raises(DataError, match="mpdta"):
        datasets.load("mpdt")


def test_absent_without_download_names_the_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="empty") as err:
        datasets.load("basque", download=False)
    assert "cache" in str(err.value) and "EVALKIT_DATA_DIR" in str(err.value)


def test_damaged_local_file_is_rejected(tmp_path, monkeypatch, reference_dir):
    folder = tmp_path / "data"
    folder.mkdir()
    text = (reference_dir / "basque.csv").read_text(encoding="utf-8")
    (folder / "basque.csv").write_text(text.replace("1955", "1956", 1), encoding="utf-8")
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    with pytest.raises(DataError, match="SHA-256"):
        datasets.load("basque")


def _serve(monkeypatch, name, file):
    entry = datasets._CATALOGUE[name]
    monkeypatch.setitem(
        datasets._CATALOGUE, name, dataclasses.replace(entry, url=file.resolve().as_uri())
    )


def test_download_verifies_and_caches(tmp_path, monkeypatch, reference_dir):
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)
    source = tmp_path / "remote.csv"
    shutil.copy(reference_dir / "california_prop99.csv", source)
    _serve(monkeypatch, "prop99", source)
    df = datasets.load("prop99")
    assert df.shape == SHAPES["prop99"]
    assert (tmp_path / "cache" / "california_prop99.csv").is_file()
    source.unlink()  # now served from the cache
    assert datasets.load("prop99").equals(df)


def test_bad_download_is_not_kept(tmp_path, monkeypatch, reference_dir):
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)
    source = tmp_path / "remote.csv"
    source.write_text("State;Year\nx;1\n", encoding="utf-8")
    _serve(monkeypatch, "prop99", source)
    with pytest.raises(DataError, match="not kept"):
        datasets.load("prop99")
    assert not any((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True


def test_offline_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)
    _serve(monkeypatch, "basque", tmp_path / "nowhere.csv")
    with pytest.raises(DataError, match="could not be downloaded"):
        datasets.load("basque")


def test_source_in_another_format_is_made_canonical(tmp_path, monkeypatch, reference_dir):
    """The published mpdta source (csdid's CSV export) reads as the canonical frame."""
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)
    canonical = pd.read_csv(reference_dir / "mpdta.csv")
    # rebuild the source's layout: integer ids, quoted header, 15 significant digits
    source = tmp_path / "mpdta_source.csv"
    canonical.astype({"countyreal": int, "first.treat": int, "treat": int}).to_csv(
        source, index=False, float_format="%.15g"
    )
    entry = datasets._CATALOGUE["mpdta"]
    monkeypatch.setitem(
        datasets._CATALOGUE,
        "mpdta",
        dataclasses.replace(entry, url=source.as_uri(), source_sha256=datasets._sha256(source)),
    )
    df = datasets.load("mpdta")
    assert list(df.dtypes) == list(canonical.dtypes)
    np.testing.assert_allclose(df.to_numpy(), canonical.to_numpy(), rtol=1e-13)
