"""evalkit.datasets: packaged copies, lookup order, hash checks, downloads, conversions.

No test touches the network or the real user cache: every test runs with
EVALKIT_CACHE_DIR in its own tmp_path, downloads are served from file:// URLs, and any
other URL fails the test. The four reference datasets ship inside the package; the tests
of the data folder, cache and download paths pretend they do not (``unpackaged``).
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import shutil
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit import datasets
from evalkit.datasets._rdata import read_rdata_frame
from evalkit.errors import DataError

# Shapes and columns of the packaged reference files (evalkit/datasets/data/README.md).
EXPECTED = {
    "mpdta": ((2500, 6), ["year", "countyreal", "lpop", "lemp", "first.treat", "treat"]),
    "prop99": ((1209, 4), ["State", "Year", "PacksPerCapita", "treated"]),
    "basque": ((774, 17), ["regionno", "regionname", "year", "gdpcap", "invest", "popdens"]),
    "sipp1991": ((9915, 14), ["net_tfa", "e401", "p401", "age", "inc", "educ", "fsize"]),
}


PACKAGED = datasets.PACKAGE_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_VERIFIED", {})


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Fail any attempt to open a URL that is not a local file."""
    real = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            pytest.fail(f"a test tried to reach the network: {url}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


@pytest.fixture
def no_data_dir(monkeypatch):
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)


@pytest.fixture
def unpackaged(monkeypatch):
    """Pretend no dataset ships with evalkit, as for a larger dataset."""
    for name, entry in list(datasets._CATALOGUE.items()):
        monkeypatch.setitem(datasets._CATALOGUE, name, dataclasses.replace(entry, packaged=False))


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
def test_each_dataset_loads_from_the_packaged_copy(name, no_data_dir):
    shape, columns = EXPECTED[name]
    df = datasets.load(name)
    assert df.shape == shape
    assert set(columns) <= set(df.columns)
    roles = datasets.info(name)["roles"]
    for role, column in roles.items():
        wanted = column if isinstance(column, list) else [column]
        assert set(wanted) <= set(df.columns), role
    assert isinstance(df.index, pd.RangeIndex)
    assert datasets.path(name, download=False) == PACKAGED / datasets.info(name)["file"]
    assert datasets.info(name)["packaged"]


def test_packaged_copy_comes_before_the_environment(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "basque.csv").write_text("damaged\n", encoding="utf-8")  # never read
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    assert datasets.path("basque") == PACKAGED / "basque.csv"
    assert datasets.load("basque").shape == EXPECTED["basque"][0]
    assert _files(tmp_path / "cache") == []


def test_damaged_packaged_copy_says_reinstall(tmp_path, monkeypatch, no_data_dir):
    folder = tmp_path / "site-packages" / "evalkit" / "datasets" / "data"
    folder.mkdir(parents=True)
    text = (PACKAGED / "mpdta.csv").read_text(encoding="utf-8")
    (folder / "mpdta.csv").write_text(text.replace("2003", "2002", 1), encoding="utf-8")
    monkeypatch.setattr(datasets, "PACKAGE_DATA", folder)
    with pytest.raises(DataError, match="packaged with evalkit") as err:
        datasets.load("mpdta")
    assert "reinstall evalkit" in str(err.value) and str(folder / "mpdta.csv") in str(err.value)


def test_packaged_readme_notes_source_licence_and_hash():
    """The catalogue next to the files names each one with its SHA-256 and licence."""
    readme = (PACKAGED / "README.md").read_text(encoding="utf-8")
    shipped = sorted(p.name for p in PACKAGED.iterdir() if p.name != "README.md")
    packaged = [n for n in datasets.names() if datasets.info(n)["packaged"]]
    assert shipped == sorted(datasets.info(n)["file"] for n in packaged)
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line[:2] == "| "}
    for name in packaged:
        meta = datasets.info(name)
        row = rows[name]
        assert meta["file"] in row and meta["sha256"] in row
        assert hashlib.sha256((PACKAGED / meta["file"]).read_bytes()).hexdigest() == meta["sha256"]
        licence = meta["licence"].split(";")[0]  # e.g. "did R package: GPL-2"
        assert licence.split(": ")[1] in row, (name, licence)


def test_types_are_read_from_the_file():
    prop99 = datasets.load("prop99")  # ';'-separated: four columns, not one
    assert pd.api.types.is_string_dtype(prop99["State"])
    assert prop99["Year"].dtype == np.int64 and prop99["PacksPerCapita"].dtype == np.float64
    assert set(prop99.loc[prop99["treated"] == 1, "State"]) == {"California"}
    sipp = datasets.load("sipp1991")
    assert sipp["e401"].dtype == np.int64 and sipp["net_tfa"].dtype == np.float64


def test_each_load_is_a_fresh_frame():
    a = datasets.load("mpdta")
    a.loc[0, "lemp"] = -999.0
    a["extra"] = 1
    b = datasets.load("mpdta")
    assert b is not a
    assert b.loc[0, "lemp"] != -999.0 and "extra" not in b.columns


def test_explicit_data_dir_comes_before_the_environment(tmp_path, monkeypatch, unpackaged):
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(tmp_path / "elsewhere"))
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(PACKAGED / "basque.csv", folder)
    assert datasets.path("basque", data_dir=folder) == folder / "basque.csv"
    assert datasets.load("basque", data_dir=folder).shape == EXPECTED["basque"][0]


def test_explicit_data_dir_comes_before_the_packaged_copy(tmp_path, no_data_dir):
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(PACKAGED / "california_prop99.csv", folder)
    assert datasets.path("prop99", data_dir=folder) == folder / "california_prop99.csv"
    assert datasets.path("prop99", data_dir=tmp_path / "empty") == (
        PACKAGED / "california_prop99.csv"
    )


def test_environment_folder_is_read_when_not_packaged(tmp_path, monkeypatch, unpackaged):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(PACKAGED / "sipp1991.csv", folder)
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    assert datasets.path("sipp1991", download=False) == folder / "sipp1991.csv"
    assert datasets.load("sipp1991").shape == EXPECTED["sipp1991"][0]


def test_unknown_name_suggests_and_lists():
    with pytest.raises(DataError, match=r"did you mean 'mpdta'") as err:
        datasets.load("mpdt")
    for name in datasets.names():
        assert name in str(err.value)
    with pytest.raises(DataError, match="prop99"):
        datasets.info("prop 99")
    with pytest.raises(DataError, match="unknown dataset"):
        datasets.path("census")


def test_absent_without_download_names_each_folder(tmp_path, monkeypatch, unpackaged):
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="download=False") as err:
        datasets.load("basque", download=False)
    text = str(err.value)
    assert str(tmp_path / "empty") in text and str(tmp_path / "cache") in text
    assert "EVALKIT_DATA_DIR" in text
    assert datasets.info("basque")["url"] in text
    assert _files(tmp_path / "cache") == []  # nothing created


def test_damaged_local_file_is_rejected_with_its_path(tmp_path, monkeypatch, unpackaged):
    folder = tmp_path / "data"
    folder.mkdir()
    text = (PACKAGED / "basque.csv").read_text(encoding="utf-8")
    damaged = folder / "basque.csv"
    damaged.write_text(text.replace("1955", "1956", 1), encoding="utf-8")
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    with pytest.raises(DataError, match="SHA-256") as err:
        datasets.load("basque")
    assert str(damaged) in str(err.value)
    assert datasets.info("basque")["sha256"] in str(err.value)


def test_damaged_cache_file_is_rejected_not_replaced(tmp_path, no_data_dir, unpackaged):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mpdta.csv").write_text("year,lemp\n2003,1.0\n", encoding="utf-8")
    with pytest.raises(DataError, match="SHA-256") as err:
        datasets.load("mpdta")
    assert str(cache / "mpdta.csv") in str(err.value)


def test_hash_check_is_remembered_but_sees_changes(tmp_path, monkeypatch, unpackaged):
    folder = tmp_path / "data"
    folder.mkdir()
    copy = Path(shutil.copy(PACKAGED / "california_prop99.csv", folder))
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


def test_download_is_checked_and_cached(tmp_path, no_data_dir, unpackaged, monkeypatch):
    remote = tmp_path / "remote.csv"
    shutil.copy(PACKAGED / "california_prop99.csv", remote)
    _serve(monkeypatch, "prop99", remote)
    df = datasets.load("prop99")
    assert df.shape == EXPECTED["prop99"][0]
    assert _files(tmp_path / "cache") == ["california_prop99.csv"]  # no temporary files left
    remote.unlink()  # from now on served from the cache
    assert datasets.path("prop99", download=False) == tmp_path / "cache" / "california_prop99.csv"
    assert datasets.load("prop99", download=False).equals(df)


def test_bad_download_is_not_kept(tmp_path, no_data_dir, unpackaged, monkeypatch):
    remote = tmp_path / "remote.csv"
    remote.write_text("State;Year\nx;1\n", encoding="utf-8")
    _serve(monkeypatch, "prop99", remote)
    with pytest.raises(DataError, match="not kept") as err:
        datasets.load("prop99")
    actual = hashlib.sha256(remote.read_bytes()).hexdigest()
    assert datasets.info("prop99")["sha256"] in str(err.value) and actual in str(err.value)
    assert _files(tmp_path / "cache") == []


def test_offline_is_a_clear_error(tmp_path, no_data_dir, unpackaged, monkeypatch):
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


def test_download_goes_to_evalkit_cache_dir(tmp_path, no_data_dir, monkeypatch, unpackaged):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "custom"))
    remote = Path(shutil.copy(PACKAGED / "basque.csv", tmp_path / "remote.csv"))
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
    tmp_path, no_data_dir, monkeypatch, unpackaged
):
    """An .rda holding did::mpdta (year integer, the rest double) gives the reference bytes."""
    canonical = pd.read_csv(PACKAGED / "mpdta.csv")
    frame = canonical.astype({"year": np.int32})
    remote = tmp_path / "mpdta.rda"
    remote.write_bytes(bz2.compress(_xdr_data_frame("mpdta", frame)))
    digest = hashlib.sha256(remote.read_bytes()).hexdigest()
    _serve(monkeypatch, "mpdta", remote, download_sha256=digest)
    file = datasets.path("mpdta")
    assert file == tmp_path / "cache" / "mpdta.csv"
    assert file.read_bytes() == (PACKAGED / "mpdta.csv").read_bytes()
    assert _files(tmp_path / "cache") == ["mpdta.csv"]  # the .rda is not kept
    pd.testing.assert_frame_equal(datasets.load("mpdta"), canonical)


def test_sipp1991_dta_is_converted_to_the_canonical_file(
    tmp_path, no_data_dir, monkeypatch, unpackaged
):
    """A .dta with the original's storage (float32 amounts, int8 codes) gives the reference."""
    canonical = pd.read_csv(PACKAGED / "sipp1991.csv")
    stored = canonical.astype(
        {c: np.float32 if canonical[c].dtype.kind == "f" else np.int8 for c in canonical}
    )
    remote = tmp_path / "sipp1991.dta"
    stored.to_stata(remote, write_index=False)
    _serve(monkeypatch, "sipp1991", remote, download_sha256=datasets._sha256(remote))
    assert datasets.path("sipp1991").read_bytes() == (PACKAGED / "sipp1991.csv").read_bytes()
    assert _files(tmp_path / "cache") == ["sipp1991.csv"]


def test_a_source_fetched_by_hand_is_converted(tmp_path, monkeypatch, unpackaged):
    frame = pd.read_csv(PACKAGED / "mpdta.csv").astype({"year": np.int32})
    folder = tmp_path / "by_hand"
    folder.mkdir()
    (folder / "mpdta.rda").write_bytes(bz2.compress(_xdr_data_frame("mpdta", frame)))
    digest = hashlib.sha256((folder / "mpdta.rda").read_bytes()).hexdigest()
    _serve(monkeypatch, "mpdta", tmp_path / "unreachable.rda", download_sha256=digest)
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(folder))
    assert datasets.load("mpdta", download=False).shape == EXPECTED["mpdta"][0]
    assert _files(tmp_path / "cache") == ["mpdta.csv"]


def test_a_conversion_that_does_not_match_is_not_kept(
    tmp_path, no_data_dir, monkeypatch, unpackaged
):
    frame = pd.DataFrame({"year": np.array([2003], dtype=np.int32), "lemp": [1.0]})
    remote = tmp_path / "mpdta.rda"
    remote.write_bytes(bz2.compress(_xdr_data_frame("mpdta", frame)))
    digest = hashlib.sha256(remote.read_bytes()).hexdigest()
    _serve(monkeypatch, "mpdta", remote, download_sha256=digest)
    with pytest.raises(DataError, match=r"converted .* not kept"):
        datasets.load("mpdta")
    assert _files(tmp_path / "cache") == []


def test_a_source_with_the_wrong_hash_is_refused(tmp_path, no_data_dir, monkeypatch, unpackaged):
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
    keys |= {"licence", "packaged"}
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
