"""Canonical public datasets: ``load(name)``.

A dataset is read from the folder named by ``EVALKIT_DATA_DIR`` when that is set, else
from the user cache (``EVALKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/evalkit/datasets``,
else ``~/.cache/evalkit/datasets``), else downloaded from its public source into the
cache. Every file is checked against its published SHA-256 before it is read; a file
that does not match is rejected (and a download that does not match is not kept).

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
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.errors import DataError

__all__ = ["info", "load", "names", "path"]


@dataclass(frozen=True)
class _Dataset:
    file: str
    title: str
    description: str
    source: str
    url: str
    sha256: str
    citation: str
    roles: dict[str, Any] = field(default_factory=dict)
    sep: str = ","
    #: The published source, when its bytes differ from the canonical file: its name in
    #: the cache, its SHA-256, how to read it, and dtypes that make it canonical.
    source_file: str | None = None
    source_sha256: str | None = None
    source_format: str = "csv"
    canonical_dtypes: dict[str, str] = field(default_factory=dict)


_CATALOGUE: dict[str, _Dataset] = {
    "mpdta": _Dataset(
        file="mpdta.csv",
        title="County teen employment and minimum wages, 2003-2007",
        description=(
            "500 US counties observed 2003-2007; states raised the minimum wage in 2004, "
            "2006 or 2007 (staggered adoption) or not at all. lemp is log teen employment, "
            "lpop log population, first.treat the first treated year (0 = never)."
        ),
        source="did R package, data/mpdta.rda (github.com/bcallaway11/did), as CSV",
        # The CSV export of did::mpdta in the csdid repository (commit-pinned); it equals
        # the canonical file to 4e-14 and is read with the canonical dtypes.
        url=(
            "https://raw.githubusercontent.com/d2cml-ai/csdid/"
            "a14e7de7446d47bfd7c3d642b4cc1fd79c394745/data/mpdta.csv"
        ),
        sha256="e360d744e9a0694ad9530f0b98089ecefed89960ca71bdd757519d5cea3df1ff",
        source_file="mpdta.source.csv",
        source_sha256="2283bea1221a152420f98dfa20f633c5d054ea51d881115c8cd702a97bcd3167",
        canonical_dtypes={"countyreal": "float64", "first.treat": "float64", "treat": "float64"},
        citation=(
            "Callaway, B. and Sant'Anna, P. H. C. (2021). Difference-in-differences with "
            "multiple time periods. Journal of Econometrics 225(2), 200-230."
        ),
        roles={"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"},
    ),
    "prop99": _Dataset(
        file="california_prop99.csv",
        title="California Proposition 99: cigarette sales, 1970-2000",
        description=(
            "Cigarette packs per capita in 39 US states, 1970-2000; California's tobacco "
            "control programme (Proposition 99) starts in 1989. ';'-separated."
        ),
        source="synthdid R package, data/california_prop99.csv",
        url=(
            "https://raw.githubusercontent.com/synth-inference/synthdid/"
            "eaf905d96bdcd26d7b7386a8afa5f31488ffbfd0/data/california_prop99.csv"
        ),
        sha256="550d24c2f743507d097692d181bdbbf36c6168a39a0b6fc831cc89d98082f7de",
        citation=(
            "Abadie, A., Diamond, A. and Hainmueller, J. (2010). Synthetic control methods "
            "for comparative case studies. Journal of the American Statistical Association "
            "105(490), 493-505."
        ),
        roles={
            "outcome": "PacksPerCapita",
            "unit": "State",
            "time": "Year",
            "treatment": "treated",
        },
        sep=";",
    ),
    "basque": _Dataset(
        file="basque.csv",
        title="Basque Country: GDP per capita and predictors, 1955-1997",
        description=(
            "Spanish regions (regionno 1 is Spain as a whole), 1955-1997, with GDP per "
            "capita, investment, schooling, sector shares and population density; terrorism "
            "in the Basque Country from about 1970."
        ),
        source="pysyncon, data/basque.csv (from the Synth R package)",
        url=(
            "https://raw.githubusercontent.com/sdfordham/pysyncon/"
            "e8c75d90bf31f030be467f86e66a5c22e4d66828/data/basque.csv"
        ),
        sha256="7f7f90d7a01984a33a2ea3efc311ce826c05b61234a52c27445adacc6f52bf70",
        citation=(
            "Abadie, A. and Gardeazabal, J. (2003). The economic costs of conflict: a case "
            "study of the Basque Country. American Economic Review 93(1), 113-132."
        ),
        roles={"outcome": "gdpcap", "unit": "regionno", "time": "year"},
    ),
    "sipp1991": _Dataset(
        file="sipp1991.csv",
        title="401(k) eligibility and net financial assets (SIPP 1991)",
        description=(
            "9,915 households from the 1991 Survey of Income and Program Participation: "
            "401(k) eligibility (e401), participation (p401), net financial assets "
            "(net_tfa) and covariates."
        ),
        source="sipp1991.dta (github.com/VC2015/DMLonGitHub), as loaded by DoubleML, as CSV",
        # The public original is a Stata file; read, it equals the canonical CSV exactly.
        url=(
            "https://raw.githubusercontent.com/VC2015/DMLonGitHub/"
            "b91cbf96c01eccd73367fbd6601ecdd7aa78403b/sipp1991.dta"
        ),
        sha256="d4d4a8a4a06f7ebf89b9b9b96139ef0c2ca31178be728770d6c747f8dc8f51c4",
        source_file="sipp1991.source.dta",
        source_sha256="1123d5f0abf6adae1d8e200f756d2a22b0ce0ce30cb228e69342a0098e57b4b2",
        source_format="stata",
        canonical_dtypes={
            **dict.fromkeys(["nifa", "net_tfa", "tw", "inc"], "float64"),
            **dict.fromkeys(
                ["age", "fsize", "educ", "db", "marr", "twoearn", "e401", "p401", "pira", "hown"],
                "int64",
            ),
        },
        citation=(
            "Chernozhukov, V., Chetverikov, D., Demirer, M., Duflo, E., Hansen, C., Newey, W. "
            "and Robins, J. (2018). Double/debiased machine learning for treatment and "
            "structural parameters. The Econometrics Journal 21(1), C1-C68."
        ),
        roles={"outcome": "net_tfa", "treatment": "e401"},
    ),
}

_VERIFIED: dict[tuple[str, int, int], bool] = {}


def names() -> list[str]:
    """Return the names of the built-in datasets.

    Examples
    --------
    >>> "mpdta" in names()
    True
    """
    return list(_CATALOGUE)


def _entry(name: str) -> _Dataset:
    try:
        return _CATALOGUE[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_CATALOGUE), n=2)
        raise DataError(
            f"unknown dataset {name!r}",
            hint=(f"did you mean {' or '.join(map(repr, close))}? " if close else "")
            + f"datasets: {', '.join(_CATALOGUE)}",
            column="name",
        ) from None


def info(name: str) -> dict[str, Any]:
    """Return what is known about a dataset: title, description, source, url, sha256, roles.

    Examples
    --------
    >>> info("mpdta")["roles"]["unit"]
    'countyreal'
    """
    return asdict(_entry(name))


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(file: Path, expected: str) -> None:
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    if _VERIFIED.get(key):
        return
    actual = _sha256(file)
    if actual != expected:
        raise DataError(
            f"{file} does not have the published SHA-256: expected {expected}, got {actual}",
            hint="the file is damaged or a different version; replace it with the original",
            column="sha256",
        )
    _VERIFIED[key] = True


def _cache_dir() -> Path:
    if os.environ.get("EVALKIT_CACHE_DIR"):
        return Path(os.environ["EVALKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evalkit" / "datasets"


def _download(url: str, target: Path, expected: str, timeout: float = 30.0) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            while block := r.read(1 << 20):
                out.write(block)
        actual = _sha256(tmp)
        if actual != expected:
            raise DataError(
                f"the download from {url} does not have the published SHA-256: expected "
                f"{expected}, got {actual}; it was not kept",
                hint="set EVALKIT_DATA_DIR to a folder holding the original file",
                column="sha256",
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _locate(entry: _Dataset, data_dir: str | Path | None, download: bool) -> tuple[Path, bool]:
    """Find (or download) the verified file; the flag says it is the published source."""
    folders: list[Path] = []
    if data_dir is not None:
        folders.append(Path(data_dir))
    elif os.environ.get("EVALKIT_DATA_DIR"):
        folders.append(Path(os.environ["EVALKIT_DATA_DIR"]))
    cache = _cache_dir()
    if data_dir is None:
        folders.append(cache)
    for folder in folders:
        candidate = folder / entry.file
        if candidate.is_file():
            _verify(candidate, entry.sha256)
            return candidate, False
    if data_dir is None and entry.source_file and entry.source_sha256:
        candidate = cache / entry.source_file
        if candidate.is_file():
            _verify(candidate, entry.source_sha256)
            return candidate, True
    looked = ", ".join(str(f) for f in folders)
    if not download or data_dir is not None:
        raise DataError(
            f"{entry.file} was not found; looked in: {looked}",
            hint=f"set EVALKIT_DATA_DIR to a folder holding {entry.file}, or allow the "
            f"download from {entry.url}",
            column="name",
        )
    is_source = bool(entry.source_file and entry.source_sha256)
    target = cache / (entry.source_file if is_source else entry.file)  # type: ignore[operator]
    expected = entry.source_sha256 if is_source else entry.sha256
    try:
        _download(entry.url, target, expected)  # type: ignore[arg-type]
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{entry.file} is not available locally and could not be downloaded from "
            f"{entry.url} ({exc}); looked in: {looked}",
            hint="download it by hand into a folder and set EVALKIT_DATA_DIR to that folder",
            column="name",
        ) from exc
    return target, is_source


def path(name: str, *, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Return the verified local path of a dataset's file, downloading it if needed.

    The path is that of the canonical file, or of the published source file in the cache
    when the dataset was downloaded from a source in another format.

    Parameters
    ----------
    name
        One of :func:`names`.
    data_dir
        A folder to read from instead of ``EVALKIT_DATA_DIR`` and the cache.
    download
        Whether to download from the public source when the file is not found.

    Examples
    --------
    >>> path("prop99").name
    'california_prop99.csv'
    """
    return _locate(_entry(name), data_dir, download)[0]


def load(name: str, *, data_dir: str | Path | None = None, download: bool = True) -> pd.DataFrame:
    """Return a public dataset as a new DataFrame.

    Parameters
    ----------
    name
        One of :func:`names`: ``"mpdta"``, ``"prop99"``, ``"basque"``, ``"sipp1991"``.
    data_dir
        A folder to read from instead of ``EVALKIT_DATA_DIR`` and the cache.
    download
        Whether to download from the public source when the file is not found.

    Returns
    -------
    pandas.DataFrame
        A fresh frame on every call with the columns and types of the canonical file.

    Raises
    ------
    DataError
        Unknown name, file absent (and not downloadable), or a file whose SHA-256 does
        not match the published one.

    Examples
    --------
    >>> load("prop99").columns.tolist()
    ['State', 'Year', 'PacksPerCapita', 'treated']
    """
    entry = _entry(name)
    file, is_source = _locate(entry, data_dir, download)
    if not is_source:
        return pd.read_csv(file, sep=entry.sep)
    if entry.source_format == "stata":
        frame = pd.read_stata(file)
    else:
        frame = pd.read_csv(file, sep=entry.sep)
    return frame.astype(entry.canonical_dtypes)
