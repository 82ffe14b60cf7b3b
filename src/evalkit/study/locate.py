"""Point messages at the line of study.toml that defines a table or key."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["Locator"]


class Locator:
    r"""The text of study.toml, to point errors at lines.

    Examples
    --------
    >>> loc = Locator(Path("study.toml"), '[data]\nsimulator = "x"\n[[analysis]]\nid = "a"\n')
    >>> loc.where("analysis", "id", 0)
    'study.toml:4'
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
    def read(cls, file: Path) -> Locator:
        """Return the locator of a study file, read from disk."""
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
