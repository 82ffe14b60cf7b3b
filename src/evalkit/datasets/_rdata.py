"""A small reader for data frames saved by R's ``save()`` (``.rda`` / ``.RData`` files).

Only what a plain data frame needs is understood: the binary XDR serialization
(format versions 2 and 3), compressed with gzip, bzip2 or xz or not at all, holding
pairlists, symbols, strings and logical, integer, double, character and list vectors
(factors become categoricals). Anything else raises :class:`ValueError`. evalkit only
hands this reader files whose SHA-256 it has already checked.

The layout follows R's serialization format as described in "R Internals", section 1.8
(Serialization Formats).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["read_rdata_frame"]

# SEXP type codes (R Internals, section 1.1.1) and the serialization's special codes.
_NIL, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 0, 1, 2, 9, 10, 13, 14, 16, 19
_REF, _NILVALUE = 255, 254
_ENV_SPECIALS = {253, 252, 251, 250, 242, 241}  # global/empty/base env, unbound, missing...
_HAS_ATTR, _HAS_TAG = 1 << 9, 1 << 10
_NA_INTEGER = -(2**31)


@dataclass
class _Vector:
    kind: int
    values: Any
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Symbol:
    name: str


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.refs: list[Any] = []

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ValueError("unexpected end of R data")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def word(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.word()
        if n == -1:  # long vector: two more words
            upper, lower = struct.unpack(">II", self.take(8))
            n = (upper << 32) | lower
        return n

    def item(self) -> Any:
        flags = self.word()
        kind = flags & 0xFF
        if kind == _NILVALUE or kind in _ENV_SPECIALS:
            return None
        if kind == _REF:
            index = flags >> 8 or self.word()
            return self.refs[index - 1]
        if kind == _SYM:
            symbol = _Symbol(self.item() or "")
            self.refs.append(symbol)
            return symbol
        if kind == _LIST:
            return self._pairlist(flags)
        if kind == _CHAR:
            return self._string(flags)
        if kind in (_LGL, _INT, _REAL, _STR, _VEC):
            n = self.length()
            if kind == _REAL:
                values: Any = np.frombuffer(self.take(8 * n), dtype=">f8").astype(np.float64)
            elif kind in (_LGL, _INT):
                values = np.frombuffer(self.take(4 * n), dtype=">i4").astype(np.int32)
            else:
                values = [self.item() for _ in range(n)]
            attributes = self._attributes() if flags & _HAS_ATTR else {}
            return _Vector(kind, values, attributes)
        raise ValueError(f"R object of type {kind} is not supported by this reader")

    def _string(self, flags: int) -> str | None:
        n = self.word()
        if n == -1:
            return None
        raw = self.take(n)
        latin1 = (flags >> 12) & 4
        return raw.decode("latin-1" if latin1 else "utf-8")

    def _pairlist(self, flags: int) -> list[tuple[str | None, Any]]:
        out: list[tuple[str | None, Any]] = []
        while True:
            if flags & _HAS_ATTR:
                self.item()  # attributes of a pairlist cell: not needed
            tag = self.item() if flags & _HAS_TAG else None
            out.append((tag.name if isinstance(tag, _Symbol) else None, self.item()))
            flags = self.word()  # the CDR: another cell or the end of the list
            if flags & 0xFF != _LIST:
                if flags & 0xFF != _NILVALUE:
                    raise ValueError("an improper pairlist is not supported by this reader")
                return out

    def _attributes(self) -> dict[str, Any]:
        cells = self.item()
        return {tag: value for tag, value in (cells or []) if tag is not None}


def _column(vector: _Vector) -> Any:
    values = vector.values
    if vector.kind == _STR:
        return np.array(values, dtype=object)
    if vector.kind == _REAL:
        return values
    if vector.kind not in (_INT, _LGL):
        raise ValueError("a data-frame column that is a list is not supported by this reader")
    missing = values == _NA_INTEGER
    levels = vector.attributes.get("levels")
    if isinstance(levels, _Vector) and levels.kind == _STR:
        codes = np.where(missing, -1, values - 1)
        return pd.Categorical.from_codes(codes, categories=list(levels.values))
    if vector.kind == _LGL:
        return values.astype(bool) if not missing.any() else np.where(missing, np.nan, values)
    return values if not missing.any() else np.where(missing, np.nan, values.astype(float))


def read_rdata_frame(file: str | Path, name: str) -> pd.DataFrame:
    """Read the data frame called ``name`` from an ``.rda`` file written by R's ``save()``.

    Row names are dropped; columns keep their R storage (integer as int32, double as
    float64, character as object, factor as categorical).

    Parameters
    ----------
    file
        Path of the ``.rda`` file.
    name
        Name of the data frame object in the file.

    Returns
    -------
    pandas.DataFrame
        The data frame's columns in their order.

    Raises
    ------
    ValueError
        The file is not an R data file this reader understands, or holds no data frame
        called ``name``.

    Examples
    --------
    The mpdta data frame of the did R package (``data/mpdta.rda``) reads as
    ``read_rdata_frame("mpdta.rda", "mpdta")``. A file that is not R data is refused:

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = pathlib.Path(tmp) / "x.rda"
    ...     _ = p.write_bytes(b"year,lemp")
    ...     read_rdata_frame(p, "x")
    Traceback (most recent call last):
    ValueError: not an R data file in the binary XDR format (RDX2/RDX3)
    """
    raw = Path(file).read_bytes()
    if raw[:3] == b"\x1f\x8b\x08":
        import gzip

        raw = gzip.decompress(raw)
    elif raw[:3] == b"BZh":
        import bz2

        raw = bz2.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        import lzma

        raw = lzma.decompress(raw)
    if raw[:5] not in (b"RDX2\n", b"RDX3\n") or raw[5:7] != b"X\n":
        raise ValueError("not an R data file in the binary XDR format (RDX2/RDX3)")
    reader = _Reader(raw[7:])
    version = reader.word()
    reader.word()  # R version that wrote the file
    reader.word()  # oldest R version that can read it
    if version == 3:
        reader.take(reader.word())  # native encoding name
    elif version != 2:
        raise ValueError(f"R serialization format version {version} is not supported")
    objects = dict(reader.item() or [])
    frame = objects.get(name)
    if not isinstance(frame, _Vector) or frame.kind != _VEC:
        raise ValueError(f"the R data file holds no data frame called {name!r}")
    names = frame.attributes.get("names")
    if not isinstance(names, _Vector) or len(names.values) != len(frame.values):
        raise ValueError(f"the R object {name!r} has no column names")
    columns = {str(col): _column(vec) for col, vec in zip(names.values, frame.values, strict=True)}
    return pd.DataFrame(columns)
