"""Canonical public datasets: ``load(name)``.

Four public datasets are built in (see :func:`names` and :func:`info`):

- ``"mpdta"``: county teen employment and minimum wages (Callaway and Sant'Anna 2021),
- ``"prop99"``: California's Proposition 99 and cigarette sales (Abadie et al. 2010),
- ``"basque"``: terrorism and GDP in the Basque Country (Abadie and Gardeazabal 2003),
- ``"sipp1991"``: 401(k) eligibility and financial assets (Chernozhukov et al. 2018).

Where a dataset is looked for, in order:

1. the folder given as ``data_dir=``, when given;
2. the copy packaged with evalkit (``evalkit/datasets/data/``, whose README.md notes
   source, licence and SHA-256 of each file): all four datasets above ship with evalkit,
   so they load offline on any installation;
3. the folder named by the environment variable ``EVALKIT_DATA_DIR`` (unless ``data_dir=``
   is given), for datasets too large to ship;
4. the user cache: ``EVALKIT_CACHE_DIR`` when set, else
   ``$XDG_CACHE_HOME/evalkit/datasets``, else ``~/.cache/evalkit/datasets``;
5. the public source (a URL pinned to a commit), downloaded into the cache.

Every file is checked against its published SHA-256 before it is read; a local file that
does not match is an error naming the file, and a download that does not match is
deleted, not kept. Checks are remembered within the process (by path, modification time
and size), so loading again is fast.

Two public originals are not CSV files: mpdta is distributed as ``mpdta.rda`` in the did R
package and sipp1991 as the Stata file ``sipp1991.dta``. Those downloads are checked
against their own SHA-256, converted, and the CSV written to the cache must then have the
canonical SHA-256 as well; for both datasets the conversion reproduces the reference file
byte for byte. A copy of ``mpdta.rda`` or ``sipp1991.dta`` fetched by hand and put into
the data folder or the cache is converted the same way. A CSV saved by another program
(R's ``write.csv``, a spreadsheet) has other bytes even when the numbers agree, and is
rejected by the hash check.

Examples
--------
>>> import evalkit
>>> df = evalkit.datasets.load("mpdta")
>>> df.shape
(2500, 6)
>>> sorted(evalkit.datasets.names())
['basque', 'mpdta', 'prop99', 'sipp1991']
"""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.datasets._catalogue import CATALOGUE as _CATALOGUE
from evalkit.datasets._catalogue import Dataset as _Dataset
from evalkit.errors import DataError

__all__ = ["cache_dir", "info", "load", "names", "path"]

#: The folder of the datasets packaged with evalkit (their README.md notes each file's
#: source, licence and SHA-256).
PACKAGE_DATA = Path(__file__).resolve().parent / "data"

#: Seconds to wait for the server when downloading.
DOWNLOAD_TIMEOUT = 30.0

# SHA-256 of files already hashed in this process, keyed by (path, mtime_ns, size).
_VERIFIED: dict[tuple[str, int, int], str] = {}


def names() -> list[str]:
    """Return the names of the built-in datasets.

    Returns
    -------
    list of str
        The names :func:`load` accepts.

    Examples
    --------
    >>> names()
    ['mpdta', 'prop99', 'basque', 'sipp1991']
    """
    return list(_CATALOGUE)


def _entry(name: str) -> _Dataset:
    if isinstance(name, str) and name in _CATALOGUE:
        return _CATALOGUE[name]
    close = difflib.get_close_matches(str(name).lower(), list(_CATALOGUE), n=1, cutoff=0.5)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise DataError(
        f"unknown dataset {name!r}",
        hint=f"{suggestion}the datasets are: {', '.join(_CATALOGUE)}",
        column="name",
    )


def info(name: str) -> dict[str, Any]:
    """Return what is known about a dataset.

    Parameters
    ----------
    name
        One of :func:`names`.

    Returns
    -------
    dict
        ``title``, ``description``, ``source`` (where the data come from), ``url`` (the
        pinned public download), ``sha256`` (of the canonical file), ``file`` (its name),
        ``sep`` (its field separator), ``citation``, ``licence`` (of the source and the
        data), ``packaged`` (whether the file ships with evalkit), ``roles`` (suggested
        column roles for evalkit's estimators), ``download_format`` (``"csv"``,
        ``"rdata"`` or ``"stata"``), ``download_sha256`` (of the downloaded file) and
        ``download_file`` (its name, when it is converted). The dict is a copy.

    Examples
    --------
    >>> info("mpdta")["roles"]
    {'outcome': 'lemp', 'unit': 'countyreal', 'time': 'year', 'cohort': 'first.treat'}
    >>> info("prop99")["file"], info("prop99")["packaged"]
    ('california_prop99.csv', True)
    """
    entry = _entry(name)
    out = asdict(entry)
    out["download_sha256"] = entry.expected_download_sha256
    out.pop("rdata_object")
    return out


def cache_dir() -> Path:
    """Return the folder of the user cache of downloaded datasets.

    ``EVALKIT_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/evalkit/datasets``, else
    ``~/.cache/evalkit/datasets``. The folder is created only when something is
    downloaded into it.

    Returns
    -------
    pathlib.Path
        The cache folder.

    Examples
    --------
    >>> isinstance(cache_dir(), Path)
    True
    """
    given = os.environ.get("EVALKIT_CACHE_DIR")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "evalkit" / "datasets"


def _sha256(file: Path, *, remember: bool = True) -> str:
    """SHA-256 of a file, remembered per (resolved path, mtime, size)."""
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    known = _VERIFIED.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if remember:
        _VERIFIED[key] = digest.hexdigest()
    return digest.hexdigest()


def _check_local(file: Path, expected: str, entry: _Dataset) -> None:
    actual = _sha256(file)
    if actual != expected and file.parent == PACKAGE_DATA:
        raise DataError(
            f"{file}, packaged with evalkit, does not have the published SHA-256 of "
            f"{entry.file}: expected {expected}, got {actual}",
            hint="the installation is damaged or the file was edited; reinstall evalkit "
            "(or restore the file from the repository)",
            column="sha256",
        )
    if actual != expected:
        raise DataError(
            f"{file} does not have the published SHA-256 of {entry.file}: expected "
            f"{expected}, got {actual}",
            hint=(
                "the file is damaged, edited or another version (a file re-saved by another "
                "program has other bytes even when the numbers agree); delete or replace it "
                f"with the original from {entry.url}"
            ),
            column="sha256",
        )


def _folders(entry: _Dataset, data_dir: str | Path | None) -> list[tuple[Path, str]]:
    """Return the folders to look in, each with how it was chosen (the cache last)."""
    folders: list[tuple[Path, str]] = []
    if data_dir is not None:
        folders.append((Path(data_dir).expanduser(), "data_dir argument"))
    if entry.packaged:
        folders.append((PACKAGE_DATA, "packaged with evalkit"))
    if data_dir is None and os.environ.get("EVALKIT_DATA_DIR"):
        folders.append((Path(os.environ["EVALKIT_DATA_DIR"]).expanduser(), "EVALKIT_DATA_DIR"))
    how = "user cache, EVALKIT_CACHE_DIR" if os.environ.get("EVALKIT_CACHE_DIR") else "user cache"
    folders.append((cache_dir(), how))
    return folders


def _looked_in(folders: list[tuple[Path, str]]) -> str:
    lines = []
    for folder, how in folders:
        state = "" if folder.is_dir() else ", no such folder"
        lines.append(f"\n  - {folder} ({how}{state})")
    return "".join(lines)


def _by_hand(entry: _Dataset) -> str:
    if entry.download_format == "csv":
        return f"download {entry.url} into that folder"
    return (
        f"download {entry.url} into that folder (or the cache) as {entry.download_file}; "
        "evalkit checks it, "
        f"converts it to {entry.file} in the cache and checks that too"
    )


def _temp_in(folder: Path, suffix: str) -> Path:
    """Create an empty temporary file in ``folder`` (renamed into place when complete)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=".evalkit-", suffix=suffix)
    except OSError as exc:
        raise DataError(
            f"cannot write to the dataset cache {folder} ({exc})",
            hint="set EVALKIT_CACHE_DIR to a writable folder, or EVALKIT_DATA_DIR to a "
            "folder holding the dataset",
            column="EVALKIT_CACHE_DIR",
        ) from exc
    os.close(handle)
    return Path(name)


def _make_canonical(entry: _Dataset, source: Path, cache: Path) -> Path:
    """Convert a checked download into the canonical file in the cache; check its hash."""
    try:
        if entry.download_format == "rdata":
            from evalkit.datasets._rdata import read_rdata_frame

            frame = read_rdata_frame(source, entry.rdata_object or entry.file.split(".")[0])
        else:
            frame = pd.read_stata(source)
    except (ValueError, OSError) as exc:
        raise DataError(
            f"{source} could not be read as {entry.download_format} ({exc})",
            hint=f"set EVALKIT_DATA_DIR to a folder holding {entry.file}",
            column="name",
        ) from exc
    target = cache / entry.file
    tmp = _temp_in(cache, ".csv.part")
    try:
        frame.to_csv(tmp, sep=entry.sep, index=False, lineterminator="\n", encoding="utf-8")
        actual = _sha256(tmp, remember=False)
        if actual != entry.sha256:
            raise DataError(
                f"{entry.file} converted from {source} does not have the published SHA-256: "
                f"expected {entry.sha256}, got {actual}; it was not kept",
                hint=(
                    f"the source itself matched its SHA-256, so this version of pandas writes "
                    f"the numbers differently; put the reference {entry.file} in a folder and "
                    "set EVALKIT_DATA_DIR to it"
                ),
                column="sha256",
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # gone already when it was renamed
    return target


def _download(entry: _Dataset, cache: Path, looked: str) -> Path:
    """Download into the cache (via a temporary file), check, convert if needed."""
    import http.client
    import urllib.request

    tmp = _temp_in(cache, ".part")
    try:
        try:
            with (
                urllib.request.urlopen(entry.url, timeout=DOWNLOAD_TIMEOUT) as response,
                tmp.open("wb") as out,
            ):
                while block := response.read(1 << 20):
                    out.write(block)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise DataError(
                f"{entry.file} was not found and could not be downloaded from {entry.url} "
                f"({exc}); looked in:{looked}",
                hint=(
                    "when offline, set EVALKIT_DATA_DIR to a folder holding "
                    f"{entry.file} (export EVALKIT_DATA_DIR=/path/to/folder, or pass "
                    f"data_dir=), or {_by_hand(entry)}"
                ),
                column="name",
            ) from exc
        expected = entry.expected_download_sha256
        actual = _sha256(tmp, remember=False)
        if actual != expected:
            raise DataError(
                f"the download from {entry.url} does not have the published SHA-256: "
                f"expected {expected}, got {actual}; it was not kept",
                hint=(
                    "the server sent something else (a proxy or error page?); set "
                    f"EVALKIT_DATA_DIR to a folder holding the reference {entry.file}"
                ),
                column="sha256",
            )
        if entry.download_format != "csv":
            return _make_canonical(entry, tmp, cache)
        target = cache / entry.file
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)  # the source of a conversion, or a failed download


def _locate(entry: _Dataset, data_dir: str | Path | None, download: bool) -> Path:
    folders = _folders(entry, data_dir)
    cache = folders[-1][0]
    for folder, _ in folders:
        candidate = folder / entry.file
        if candidate.is_file():
            _check_local(candidate, entry.sha256, entry)
            return candidate
    if entry.download_file:
        for folder, _ in folders:
            candidate = folder / entry.download_file
            if candidate.is_file():
                _check_local(candidate, entry.expected_download_sha256, entry)
                return _make_canonical(entry, candidate, cache)
    looked = _looked_in(folders)
    if not download:
        raise DataError(
            f"{entry.file} was not found and download=False; looked in:{looked}",
            hint=(
                f"set EVALKIT_DATA_DIR to a folder holding {entry.file} (export "
                "EVALKIT_DATA_DIR=/path/to/folder, or pass data_dir=), "
                f"or {_by_hand(entry)}, or call with download=True"
            ),
            column="name",
        )
    return _download(entry, cache, looked)


def path(name: str, *, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Return the local path of a dataset's canonical file, checked against its SHA-256.

    Parameters
    ----------
    name
        One of :func:`names`.
    data_dir
        A folder to look in first (before the packaged copy), instead of
        ``EVALKIT_DATA_DIR``.
    download
        Whether to download from the public source when no local copy is found.

    Returns
    -------
    pathlib.Path
        The packaged file, or the file in the data folder or the cache.

    Raises
    ------
    DataError
        Unknown name; no local copy and no download (the message lists the folders
        looked in and the URL); a file whose SHA-256 does not match.

    Examples
    --------
    >>> path("prop99").name
    'california_prop99.csv'
    """
    return _locate(_entry(name), data_dir, download)


def load(name: str, *, data_dir: str | Path | None = None, download: bool = True) -> pd.DataFrame:
    """Return a public dataset as a new DataFrame.

    Parameters
    ----------
    name
        One of :func:`names`: ``"mpdta"``, ``"prop99"``, ``"basque"``, ``"sipp1991"``.
    data_dir
        A folder to look in first (before the packaged copy), instead of
        ``EVALKIT_DATA_DIR``; the cache and the download follow as usual.
    download
        Whether to download from the public source when no local copy is found.

    Returns
    -------
    pandas.DataFrame
        A new frame on every call, with the columns of the canonical file in its order
        and the types pandas reads from it (a default RangeIndex).

    Raises
    ------
    DataError
        Unknown name (with a suggestion); no local copy and no download (the message
        lists each folder looked in, how to set ``EVALKIT_DATA_DIR`` and the URL to fetch
        by hand); a local file or download whose SHA-256 does not match (expected and
        actual hash).

    Examples
    --------
    >>> load("prop99").columns.tolist()
    ['State', 'Year', 'PacksPerCapita', 'treated']
    >>> load("sipp1991").shape
    (9915, 14)
    """
    entry = _entry(name)
    return pd.read_csv(_locate(entry, data_dir, download), sep=entry.sep)
