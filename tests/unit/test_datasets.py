"""evalkit.datasets: lookup order, hash checks, downloads (through file:// URLs), conversions.

No test touches the network or the real user cache: every test runs with
EVALKIT_CACHE_DIR in its own tmp_path, and downloads are served from file:// URLs.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit import datasets
from evalkit.datasets._rdata import read_rdata_frame
from evalkit.errors import DataError

# Shapes and columns of the reference files (shared/data/reference, PROVENANCE.md).
EXPECTED = {
    "mpdta": ((2500, 6), ["year", "countyreal", "lpop", "lemp", "first.treat", "treat"]),
    "prop99": ((1209, 4), ["State", "Year", "PacksPerCapita", "treated"]),
    "basque": ((774, 17), ["regionno", "regionname", "year", "gdpcap", "invest", "popdens"]),
    "sipp1991": ((9915, 14), ["net_tfa", "e401", "p401", "age", "inc", "educ", "fsize"]),
}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_VERIFIED", {})


@pytest.fixture
def no_data_dir(monkeypatch):
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)


def _serve(monkeypatch, name, file, **changes):
    """Point a dataset's download at a local file (a file:// URL)."""
    entry = datasets._CATALOGUE[name]
    new = dataclasses.replace(entry, url=Path(file).resolve().as_uri(), **changes)
    monkeypatch.setitem(datasets._CATALOGUE, name, new)
    return new


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- local files


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_dataset_loads_from_data_dir(name, reference_dir):
    shape, columns = EXPECTED[name]
    df = datasets.load(name)
    assert df.shape == shape
    assert set(columns) <= set(df.columns)
    roles = datasets.info(name)["roles"]
    for role, column in roles.items():
        wanted = column if isinstance(column, list) else [column]
        assert set(wanted) <= set(df.columns), role
    assert isinstance(df.index, pd.RangeIndex)
    assert datasets.path(name) == reference_dir / datasets.info(name)["file"]


def test_types_are_read_from_the_file(reference_dir):
    prop99 = datasets.load("prop99")  # ';'-separated: four columns, not one
    assert pd.api.types.is_string_dtype(prop99["State"])
    assert prop99["Year"].dtype == np.int64 and prop99["PacksPerCapita"].dtype == np.float64
    assert set(prop99.loc[prop99["treated"] == 1, "State"]) == {"California"}
    sipp = datasets.load("sipp1991")
    assert sipp["e401"].dtype == np.int64 and sipp["net_tfa"].dtype == np.float64


def test_each_load_is_a_fresh_frame(reference_dir):
    a = datasets.load("mpdta")
    a.loc[0, "lemp"] = -999.0
    a["extra"] = 1
    b = datasets.load("mpdta")
    assert b is not a
    assert b.loc[0, "lemp"] != -999.0 and "extra" not in b.columns


def test_explicit_data_dir_comes_before_the_environment(tmp_path, monkeypatch, reference_dir):
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(tmp_path / "elsewhere"))
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(reference_dir / "basque.csv", folder)
    assert datasets.path("basque", data_dir=folder) == folder / "basque.csv"
    assert datasets.load("basque", data_dir=folder).shape == EXPECTED["basque"][0]


def test_unknown_name_suggests_and_lists():
    with pytest.raises(DataError, match=r"did you mean 'mpdta'") as err:
        datasets.load("mpdt")
    for name in datasets.names():
        assert name in str(err.value)
    with pytest.raises(DataError, match="prop99"):
        datasets.info("prop 99")
    with pytest.raises(DataError, match="unknown dataset"):
        datasets.path("census")


def test_absent_without_download_names_each_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="download=False") as err:
        datasets.load("basque", download=False)
    text = str(err.value)
    assert str(tmp_path / "empty") in text and str(tmp_path / "cache") in text
    assert "EVALKIT_DATA_DIR" in text
    assert datasets.info("basque")["url"] in text
    assert _files(tmp_path / "cache") == []  # nothing created


def test_damaged_local_file_is_rejected_with_its_path(tmp_path, monkeypatch, reference_dir):
    folder = tmp_path / "data"
    folder.mkdir()
    text = (reference_dir / "basque.csv").read_text(encoding="utf-8")
    damaged = folder / "basque.csv"
    damaged.write_text(text.replace("1955", "1956", 1), encoding="utf-8")
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    with pytest.raises(DataError, match="SHA-256") as err:
        datasets.load("basque")
    assert str(damaged) in str(err.value)
    assert datasets.info("basque")["sha256"] in str(err.value)


def test_damaged_cache_file_is_rejected_not_replaced(tmp_path, no_data_dir, reference_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mpdta.csv").write_text("year,lemp\n2003,1.0\n", encoding="utf-8")
    with pytest.raises(DataError, match="SHA-256") as err:
        datasets.load("mpdta")
    assert str(cache / "mpdta.csv") in str(err.value)


def test_hash_check_is_remembered_but_sees_changes(tmp_path, monkeypatch, reference_dir):
    folder = tmp_path / "data"
    folder.mkdir()
    copy = Path(shutil.copy(reference_dir / "california_prop99.csv", folder))
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    datasets.load("prop99")
    assert len(datasets._VERIFIED) == 1
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    datasets.load("prop99")
    assert calls == []  # not hashed again
    with copy.open("a", encoding="utf-8") as handle:
        handle.write("Utah;2001;1.0;0\n")  # new size and mtime
    with pytest.raises(DataError, match="SHA-256"):
        datasets.load("prop99")
    assert calls


# --------------------------------------------------------------------------- downloads


def test_download_is_checked_and_cached(tmp_path, no_data_dir, reference_dir, monkeypatch):
    remote = tmp_path / "remote.csv"
    shutil.copy(reference_dir / "california_prop99.csv", remote)
    _serve(monkeypatch, "prop99", remote)
    df = datasets.load("prop99")
    assert df.shape == EXPECTED["prop99"][0]
    assert _files(tmp_path / "cache") == ["california_prop99.csv"]  # no temporary files left
    remote.unlink()  # from now on served from the cache
    assert datasets.path("prop99", download=False) == tmp_path / "cache" / "california_prop99.csv"
    assert datasets.load("prop99", download=False).equals(df)


def test_bad_download_is_not_kept(tmp_path, no_data_dir, monkeypatch):
    remote = tmp_path / "remote.csv"
    remote.write_text("State;Year\nx;1\n", encoding="utf-8")
    _serve(monkeypatch, "prop99", remote)
    with pytest.raises(DataError, match="not kept") as err:
        datasets.load("prop99")
    actual = hashlib.sha256(remote.read_bytes()).hexdigest()
    assert datasets.info("prop99")["sha256"] in str(err.value) and actual in str(err.value)
    assert _files(tmp_path / "cache") == []


def test_offline_is_a_clear_error(tmp_path, no_data_dir, monkeypatch):
    entry = _serve(monkeypatch, "basque", tmp_path / "nowhere.csv")
    with pytest.raises(DataError, match="could not be downloaded") as err:
        datasets.load("basque")
    text = str(err.value)
    assert entry.url in text and str(tmp_path / "cache") in text and "EVALKIT_DATA_DIR" in text
    assert _files(tmp_path / "cache") == []


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert datasets.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("EVALKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "evalkit" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "evalkit" / "datasets"


def test_download_goes_to_evalkit_cache_dir(tmp_path, no_data_dir, monkeypatch, reference_dir):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "custom"))
    remote = Path(shutil.copy(reference_dir / "basque.csv", tmp_path / "remote.csv"))
    _serve(monkeypatch, "basque", remote)
    assert datasets.path("basque") == tmp_path / "custom" / "basque.csv"
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- conversions


def _xdr_data_frame(name: str, frame: pd.DataFrame) -> bytes:
    """Serialise a data frame as R's save() does (XDR, format 2), for int and double columns."""

    def words(*xs: int) -> bytes:
        return struct.pack(f">{len(xs)}i", *xs)

    def char(text: str) -> bytes:
        return words(9 | 64 << 12, len(text)) + text.encode()

    def strings(values: list[str]) -> bytes:
        return words(16, len(values)) + b"".join(char(v) for v in values)

    def tagged(tag: str, value: bytes) -> bytes:  # one pairlist cell with a symbol tag
        return words(2 | 1 << 10, 1) + char(tag) + value

    body = words(19 | 1 << 8 | 1 << 9, frame.shape[1])
    for column in frame:
        values = frame[column].to_numpy()
        if values.dtype.kind == "i":
            body += words(13, len(values)) + values.astype(">i4").tobytes()
        else:
            body += words(14, len(values)) + values.astype(">f8").tobytes()
    body += tagged("names", strings([str(c) for c in frame.columns]))
    body += tagged("class", strings(["data.frame"]))
    body += tagged("row.names", words(13, 2, -(2**31), -len(frame)))
    body += words(254)
    return b"RDX2\nX\n" + words(2, 0x30403, 0x20300) + tagged(name, body) + words(254)


def test_rdata_reader_reads_a_data_frame(tmp_path):
    frame = pd.DataFrame({"year": np.array([2003, 2004], dtype=np.int32), "y": [0.5, -1.25]})
    (tmp_path / "d.rda").write_bytes(bz2.compress(_xdr_data_frame("d", frame)))
    pd.testing.assert_frame_equal(read_rdata_frame(tmp_path / "d.rda", "d"), frame)
    with pytest.raises(ValueError, match="no data frame called 'e'"):
        read_rdata_frame(tmp_path / "d.rda", "e")


def test_mpdta_rda_is_converted_to_the_canonical_file(
    tmp_path, no_data_dir, monkeypatch, reference_dir
):
    """An .rda holding did::mpdta (year integer, the rest double) gives the reference bytes."""
    canonical = pd.read_csv(reference_dir / "mpdta.csv")
    frame = canonical.astype({"year": np.int32})
    remote = tmp_path / "mpdta.rda"
    remote.write_bytes(bz2.compress(_xdr_data_frame("mpdta", frame)))
    digest = hashlib.sha256(remote.read_bytes()).hexdigest()
    _serve(monkeypatch, "mpdta", remote, download_sha256=digest)
    file = datasets.path("mpdta")
    assert file == tmp_path / "cache" / "mpdta.csv"
    assert file.read_bytes() == (reference_dir / "mpdta.csv").read_bytes()
    assert _files(tmp_path / "cache") == ["mpdta.csv"]  # the .rda is not kept
    pd.testing.assert_frame_equal(datasets.load("mpdta"), canonical)


def test_sipp1991_dta_is_converted_to_the_canonical_file(
    tmp_path, no_data_dir, monkeypatch, reference_dir
):
    """A .dta with the original's storage (float32 amounts, int8 codes) gives the reference."""
    canonical = pd.read_csv(reference_dir / "sipp1991.csv")
    stored = canonical.astype(
        {c: np.float32 if canonical[c].dtype.kind == "f" else np.int8 for c in canonical}
    )
    remote = tmp_path / "sipp1991.dta"
    stored.to_stata(remote, write_index=False)
    _serve(monkeypatch, "sipp1991", remote, download_sha256=datasets._sha256(remote))
    assert datasets.path("sipp1991").read_bytes() == (reference_dir / "sipp1991.csv").read_bytes()
    assert _files(tmp_path / "cache") == ["sipp1991.csv"]


def test_a_source_fetched_by_hand_is_converted(tmp_path, monkeypatch, reference_dir):
    frame = pd.read_csv(reference_dir / "mpdta.csv").astype({"year": np.int32})
    folder = tmp_path / "by_hand"
    folder.mkdir()
    (folder / "mpdta.rda").write_bytes(bz2.compress(_xdr_data_frame("mpdta", frame)))
    digest = hashlib.sha256((folder / "mpdta.rda").read_bytes()).hexdigest()
    _serve(monkeypatch, "mpdta", tmp_path / "unreachable.rda", download_sha256=digest)
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    assert datasets.load("mpdta", download=False).shape == EXPECTED["mpdta"][0]
    assert _files(tmp_path / "cache") == ["mpdta.csv"]


def test_a_conversion_that_does_not_match_is_not_kept(tmp_path, no_data_dir, monkeypatch):
    frame = pd.DataFrame({"year": np.array([2003], dtype=np.int32), "lemp": [1.0]})
    remote = tmp_path / "mpdta.rda"
    remote.write_bytes(bz2.compress(_xdr_data_frame("mpdta", frame)))
    digest = hashlib.sha256(remote.read_bytes()).hexdigest()
    _serve(monkeypatch, "mpdta", remote, download_sha256=digest)
    with pytest.raises(DataError, match=r"converted .* not kept"):
        datasets.load("mpdta")
    assert _files(tmp_path / "cache") == []


def test_a_source_with_the_wrong_hash_is_refused(tmp_path, no_data_dir, monkeypatch):
    remote = tmp_path / "sipp1991.dta"
    pd.DataFrame({"e401": np.array([1], dtype=np.int8)}).to_stata(remote, write_index=False)
    _serve(monkeypatch, "sipp1991", remote)  # the published source hash stays
    with pytest.raises(DataError, match="not kept"):
        datasets.load("sipp1991")
    assert _files(tmp_path / "cache") == []


# --------------------------------------------------------------------------- metadata, imports


def test_info_describes_each_dataset():
    assert datasets.names() == ["mpdta", "prop99", "basque", "sipp1991"]
    keys = {"title", "description", "source", "url", "sha256", "file", "citation", "roles"}
    for name in datasets.names():
        meta = datasets.info(name)
        assert keys <= set(meta)
        assert len(meta["sha256"]) == 64 and meta["url"].startswith("https://")
        converted = meta["download_format"] != "csv"
        assert bool(meta["download_file"]) == converted
        assert (meta["download_sha256"] != meta["sha256"]) == converted
    assert datasets.info("mpdta")["roles"] == {
        "outcome": "lemp",
        "unit": "countyreal",
        "time": "year",
        "cohort": "first.treat",
    }
    datasets.info("mpdta")["roles"]["outcome"] = "changed"  # a copy
    assert datasets.info("mpdta")["roles"]["outcome"] == "lemp"


def test_import_is_light():
    code = (
        "import sys, evalkit.datasets; heavy = ['scipy', 'sklearn', 'matplotlib', 'doubleml', "
        "'statsmodels', 'urllib.request', 'evalkit.datasets._rdata']; "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
