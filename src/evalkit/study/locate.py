"""Point study errors at the line of study.toml that holds the mistake.

A :class:`Source` reads the text of a study file once and finds the line of a key in a
table (or in the n-th ``[[analysis]]``). The helpers here build the error messages the
study layer raises: ``file:line: what is wrong``, the table named as the user wrote it,
a did-you-mean hint for unknown keys, and how to fix it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import DesignError, EvalkitError

__all__ = ["Locator", "Source", "located", "table_name", "unknown_key"]


class Source:
    """The text of study.toml, to point errors at lines.

    Parameters
    ----------
    file
        The file named in messages (for a design built in Python, a label such as
        ``<design>``; lines then refer to :meth:`Design.to_toml`'s text).
    text
        Its text.

    Examples
    --------
    >>> text = '[study]', 'name = "x"', '[[analysis]]', 'id = "a"'
    >>> src = Source(Path("study.toml"), chr(10).join(text))
    >>> src.where("study", "name"), src.where("analysis", "id", 0)
    ('study.toml:2', 'study.toml:4')
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")

    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.sections: list[tuple[str, int, int]] = []  # (header, array index, line no.)
        counts: dict[str, int] = {}
        for no, line in enumerate(self.lines, start=1):
            m = self._HEADER.match(line)
            if m:
                name = m.group(2).replace(" ", "")
                top = name.split(".")[0]
                if m.group(1) == "[[" and name == top:
                    counts[top] = counts.get(top, 0) + 1
                self.sections.append((name, counts.get(top, 0) - 1, no))

    @classmethod
    def read(cls, file: Path) -> Source:
        """Return the source of a study file, read from disk."""
        return cls(file, file.read_text(encoding="utf-8"))

    def line(self, table: str, key: str | None = None, index: int | None = None) -> int | None:
        """Best guess of the line defining ``key`` in ``table`` (array element ``index``)."""
        if not table and key is not None:  # a top-level table: find its header
            for name, _, no in self.sections:
                if name.split(".")[0] == key:
                    return no
            return None
        top = table.split(".")[0]
        spans: list[tuple[int, int, bool]] = []
        bounds = [*(s[2] for s in self.sections), len(self.lines) + 1]
        for i, (name, idx, no) in enumerate(self.sections):
            if name.split(".")[0] != top or (index is not None and idx != index):
                continue
            spans.append((no, bounds[i + 1], name == table))
        if not spans:
            return None
        if key is None:
            exact_spans = [s for s in spans if s[2]] or spans
            return exact_spans[0][0]
        pattern = re.compile(r"(^|[{,\s])[\"']?" + re.escape(key) + r"[\"']?\s*=")
        inline = table.split(".")[-1] if "." in table else None
        if inline and not any(s[2] for s in spans):  # an inline table: `name = {key = ...}`
            holder = re.compile(r"(^|[{,\s])[\"']?" + re.escape(inline) + r"[\"']?\s*=\s*\{")
            for start, stop, _ in spans:
                for no in range(start, stop):
                    text = self.lines[no - 1].split("#")[0]
                    m = holder.search(text)
                    if m and pattern.search(text[m.end() - 1 :]):
                        return no
        for exact_first in (True, False):
            for start, stop, exact in spans:
                if exact != exact_first:
                    continue
                for no in range(start, stop):
                    text = self.lines[no - 1].split("#")[0]
                    if pattern.search(text):
                        return no
        return spans[0][0]

    def where(self, table: str, key: str | None = None, index: int | None = None) -> str:
        """``file:line`` (or just the file) for messages."""
        no = self.line(table, key, index)
        return f"{self.file}:{no}" if no else str(self.file)


#: The name the ``rows`` branch gave the locator.
Locator = Source


def table_name(table: str, index: int | None) -> str:
    """Name a table as the user wrote it, e.g. ``[study]`` or ``[[analysis]] #2``.

    Examples
    --------
    >>> table_name("analysis", 1), table_name("analysis.options", 0), table_name("", None)
    ('[[analysis]] #2', '[analysis.options] (analysis #1)', 'the file')
    """
    if not table:
        return "the file"
    if index is None:
        return f"[{table}]"
    return f"[[{table}]] #{index + 1}" if "." not in table else f"[{table}] (analysis #{index + 1})"


def unknown_key(
    src: Source,
    key: str,
    allowed: Sequence[str],
    table: str,
    index: int | None = None,
    what: str = "key",
) -> DesignError:
    """Return the error for a key that ``table`` does not take, with the closest allowed key."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return DesignError(
        f"{src.where(table, key, index)}: unknown {what} {key!r} in {table_name(table, index)}",
        hint=hint + f"allowed: {', '.join(allowed)}",
        column=str(key),
    )


def check_keys(
    src: Source,
    given: Any,
    allowed: Sequence[str],
    table: str,
    index: int | None = None,
    what: str = "key",
) -> None:
    """Raise :func:`unknown_key`'s error for the first key of ``given`` not in ``allowed``."""
    for key in given:
        if key not in allowed:
            raise unknown_key(src, str(key), allowed, table, index, what)


def located(err: EvalkitError, src: Source, table: str, index: int | None = None) -> Exception:
    """Return ``err`` again, its message prefixed with the line of ``err.column`` in ``table``."""
    where = src.where(table, err.column, index)
    return type(err)(f"{where}: {err.message}", hint=err.hint, code=err.code, column=err.column)
