"""The catalogue of built-in datasets: canonical files, public sources and their hashes.

Each dataset has one *canonical file* identified by its SHA-256, and one public *download*
pinned to a commit. Small datasets (``packaged=True``, all four today) ship their canonical
file inside evalkit, in ``evalkit/datasets/data/``, whose README.md notes the source,
licence and SHA-256 of each; the download serves larger datasets that are not packaged.

For prop99 and basque the download is the canonical file itself. For mpdta and sipp1991
the public originals are an R data file and a Stata file; evalkit checks the download
against its own SHA-256, converts it with pandas (``to_csv(index=False)``) and then checks
that the result has the canonical SHA-256 too, so a file in the cache always has exactly
the bytes of the reference file.

The hashes of all four downloads were confirmed on snapshots of the pinned commits, and
the two conversions were confirmed to reproduce the canonical SHA-256 (pandas 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CATALOGUE", "Dataset"]


@dataclass(frozen=True)
class Dataset:
    """One catalogue entry.

    Parameters
    ----------
    file
        Name of the canonical file (in a data folder or the cache).
    sha256
        SHA-256 of the canonical file.
    url
        Public download, pinned to a commit.
    download_format
        ``"csv"`` when the download is the canonical file; ``"rdata"`` (an ``.rda`` file
        written by R's ``save``) or ``"stata"`` (a ``.dta`` file) when it is converted.
    download_sha256
        SHA-256 of the download when it is not the canonical file itself.
    download_file
        Name of the download when it is converted: a copy fetched by hand is looked for
        under this name in the data folder and the cache.
    rdata_object
        Name of the data frame inside an ``.rda`` download.
    licence
        Licence of the public source the file comes from, and of the underlying data.
    packaged
        Whether the canonical file ships inside evalkit (``evalkit/datasets/data/``).
    sep
        Field separator of the canonical file.
    roles
        Suggested roles (``outcome``, ``unit``, ``time``, ...) for evalkit estimators.
    """

    file: str
    sha256: str
    url: str
    title: str
    description: str
    source: str
    citation: str
    licence: str
    roles: dict[str, Any] = field(default_factory=dict)
    sep: str = ","
    download_format: Literal["csv", "rdata", "stata"] = "csv"
    download_sha256: str | None = None
    download_file: str | None = None
    rdata_object: str | None = None
    packaged: bool = False

    @property
    def expected_download_sha256(self) -> str:
        """SHA-256 the downloaded bytes must have."""
        return self.download_sha256 or self.sha256


CATALOGUE: dict[str, Dataset] = {
    "mpdta": Dataset(
        file="mpdta.csv",
        sha256="e360d744e9a0694ad9530f0b98089ecefed89960ca71bdd757519d5cea3df1ff",
        # did R package, data/mpdta.rda (unchanged since 2018); the commit is that of
        # release 2.5.1. Read, it gives the canonical CSV byte for byte.
        url=(
            "https://raw.githubusercontent.com/bcallaway11/did/"
            "71ba8a564eada94d710d65ec0d4f64041351de96/data/mpdta.rda"
        ),
        download_format="rdata",
        download_sha256="0be3bc5eaaedaa50e047deaf45ad0e193e7210df1644103c63a6c1baa75965d4",
        download_file="mpdta.rda",
        rdata_object="mpdta",
        title="County teen employment and minimum wages, 2003-2007",
        description=(
            "500 US counties observed 2003-2007 (2,500 rows); states raised the minimum "
            "wage in 2004, 2006 or 2007 (staggered adoption) or not at all. lemp is log "
            "teen employment, lpop log population (in 1000s), first.treat the first treated "
            "year (0 = never treated), treat 1 for counties ever treated."
        ),
        source="did R package, data/mpdta.rda (github.com/bcallaway11/did), as CSV",
        citation=(
            "Callaway, B. and Sant'Anna, P. H. C. (2021). Difference-in-differences with "
            "multiple time periods. Journal of Econometrics 225(2), 200-230."
        ),
        licence=(
            "did R package: GPL-2; the data are public US county statistics (teen "
            "employment from the BLS Quarterly Census of Employment and Wages)"
        ),
        packaged=True,
        roles={"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"},
    ),
    "prop99": Dataset(
        file="california_prop99.csv",
        sha256="550d24c2f743507d097692d181bdbbf36c6168a39a0b6fc831cc89d98082f7de",
        url=(
            "https://raw.githubusercontent.com/synth-inference/synthdid/"
            "eaf905d96bdcd26d7b7386a8afa5f31488ffbfd0/data/california_prop99.csv"
        ),
        sep=";",
        title="California Proposition 99: cigarette sales, 1970-2000",
        description=(
            "Cigarette packs per capita in 39 US states, 1970-2000 (1,209 rows); "
            "California's tobacco control programme (Proposition 99) starts in 1989 "
            "(treated = 1 for California from 1989). The file is ';'-separated."
        ),
        source=(
            "synthdid R package, data/california_prop99.csv (github.com/synth-inference/synthdid)"
        ),
        citation=(
            "Abadie, A., Diamond, A. and Hainmueller, J. (2010). Synthetic control methods "
            "for comparative case studies. Journal of the American Statistical Association "
            "105(490), 493-505."
        ),
        licence=(
            "synthdid R package: GPL (>= 2) or BSD-3-Clause; the data are public US state "
            "tax statistics (Orzechowski and Walker, The Tax Burden on Tobacco)"
        ),
        packaged=True,
        roles={
            "outcome": "PacksPerCapita",
            "unit": "State",
            "time": "Year",
            "treatment": "treated",
        },
    ),
    "basque": Dataset(
        file="basque.csv",
        sha256="7f7f90d7a01984a33a2ea3efc311ce826c05b61234a52c27445adacc6f52bf70",
        url=(
            "https://raw.githubusercontent.com/sdfordham/pysyncon/"
            "e8c75d90bf31f030be467f86e66a5c22e4d66828/data/basque.csv"
        ),
        title="Basque Country: GDP per capita and predictors, 1955-1997",
        description=(
            "18 Spanish regions (regionno 1 is Spain as a whole, 17 the Basque Country), "
            "1955-1997 (774 rows), with GDP per capita, investment, schooling, sector "
            "shares and population density; terrorism in the Basque Country from about 1970."
        ),
        source=(
            "pysyncon, data/basque.csv (github.com/sdfordham/pysyncon), from the Synth R package"
        ),
        citation=(
            "Abadie, A. and Gardeazabal, J. (2003). The economic costs of conflict: a case "
            "study of the Basque Country. American Economic Review 93(1), 113-132."
        ),
        licence=(
            "pysyncon: MIT; the data come from the Synth R package (GPL) and public Spanish "
            "regional statistics (Abadie and Gardeazabal 2003)"
        ),
        packaged=True,
        roles={"outcome": "gdpcap", "unit": "regionno", "time": "year"},
    ),
    "sipp1991": Dataset(
        file="sipp1991.csv",
        sha256="d4d4a8a4a06f7ebf89b9b9b96139ef0c2ca31178be728770d6c747f8dc8f51c4",
        # The Stata file DoubleML's fetch_401K reads; read with pandas it gives the
        # canonical CSV byte for byte.
        url=(
            "https://raw.githubusercontent.com/VC2015/DMLonGitHub/"
            "b91cbf96c01eccd73367fbd6601ecdd7aa78403b/sipp1991.dta"
        ),
        download_format="stata",
        download_sha256="1123d5f0abf6adae1d8e200f756d2a22b0ce0ce30cb228e69342a0098e57b4b2",
        download_file="sipp1991.dta",
        title="401(k) eligibility and net financial assets (SIPP 1991)",
        description=(
            "9,915 households from the 1991 Survey of Income and Program Participation: "
            "401(k) eligibility (e401), participation (p401), net financial assets "
            "(net_tfa) and covariates (age, inc, educ, fsize, marr, twoearn, db, pira, hown)."
        ),
        source=(
            "sipp1991.dta (github.com/VC2015/DMLonGitHub), as loaded by DoubleML's "
            "fetch_401K, as CSV"
        ),
        citation=(
            "Chernozhukov, V., Chetverikov, D., Demirer, M., Duflo, E., Hansen, C., Newey, W. "
            "and Robins, J. (2018). Double/debiased machine learning for treatment and "
            "structural parameters. The Econometrics Journal 21(1), C1-C68."
        ),
        licence=(
            "DMLonGitHub: MIT; the data are a public-use extract of the US Census Bureau's "
            "Survey of Income and Program Participation"
        ),
        packaged=True,
        roles={
            "outcome": "net_tfa",
            "treatment": "e401",
            "covariates": ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"],
        },
    ),
}
