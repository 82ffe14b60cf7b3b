"""Rendering of report blocks as Markdown and as a self-contained HTML page.

A report is a list of blocks, tuples whose first item is the kind: ``("h1", text)``
(``h2``, ``h3``), ``("p", text)``, ``("pre", text)``, ``("ul", items)``,
``("table", header, rows)`` and ``("img", path, caption)``. :func:`to_markdown` and
:func:`to_html` render them; text from a study or the data is escaped (no raw HTML,
no links), and :func:`to_html` refers to the figures by their relative paths (so a run
folder opens in a browser as it is) or, with ``embed=True``, embeds them so that the page
stands alone.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Block", "markdown_blocks", "to_html", "to_markdown"]

#: One block of a report: its kind (``"h1"``, ``"p"``, ``"table"``, ...) and content.
Block = tuple[Any, ...]


def markdown_blocks(text: str) -> list[Block]:
    r"""Return the paragraphs and bullet lists of a small Markdown text as blocks.

    Examples
    --------
    >>> markdown_blocks("One\nparagraph.\n\n- a\n- b")
    [('p', 'One paragraph.'), ('ul', ['a', 'b'])]
    """
    out: list[Block] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.strip() for ln in para.splitlines() if ln.strip()]
        if lines and all(ln.startswith(("- ", "* ")) for ln in lines):
            out.append(("ul", [ln[2:] for ln in lines]))
        elif lines:
            out.append(("p", " ".join(lines)))
    return out


_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def _md_text(x: Any) -> str:
    """Text from a study or the data, made inert in Markdown: no raw HTML, no links.

    Code spans are left as they are: Markdown shows their content literally (an escaped
    ``&gt;`` there would be shown as those four characters).

    Examples
    --------
    >>> _md_text("<b>x</b> `month >= 3`")
    '&lt;b&gt;x&lt;/b&gt; `month >= 3`'
    """
    text = str(x)
    out: list[str] = []
    end = 0
    for span in _CODE_SPAN.finditer(text):
        out.append(_md_inert(text[end : span.start()]))
        out.append(span.group(0))
        end = span.end()
    out.append(_md_inert(text[end:]))
    return "".join(out)


def _md_inert(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("[", "\\[").replace("]", "\\]")


def _md_cell(x: Any) -> str:
    return _md_text(x).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """Render blocks as Markdown; text is made inert (no raw HTML, no links).

    Examples
    --------
    >>> print(to_markdown([("h2", "Results"), ("table", ["term", "ATT"], [["<b>x", 1.5]])]))
    ## Results
    <BLANKLINE>
    | term | ATT |
    |---|---|
    | &lt;b&gt;x | 1.5 |
    <BLANKLINE>
    """
    parts = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + _md_text(b[1]))
        elif kind == "p":
            parts.append(_md_text(b[1]))
        elif kind == "pre":
            parts.append("```\n" + b[1] + "\n```")
        elif kind == "ul":
            parts.append("\n".join(f"- {_md_text(item)}" for item in b[1]))
        elif kind == "table":
            head, rows = b[1], b[2]
            lines = ["| " + " | ".join(map(_md_cell, head)) + " |"]
            lines.append("|" + "|".join("---" for _ in head) + "|")
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
            parts.append("\n".join(lines))
        elif kind == "img":
            parts.append(f"![{_md_text(b[2])}]({b[1]})")
    return "\n\n".join(parts) + "\n"


def _inline(text: str) -> str:
    out = html.escape(str(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:72rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{border-bottom:2px solid #888}
td{font-variant-numeric:tabular-nums}
code,pre{background:#f5f5f5;border-radius:3px}
pre{padding:.6rem;overflow-x:auto}
img{max-width:100%;height:auto;margin:.5rem 0}
"""


def to_html(blocks: Sequence[Block], title: str, root: Path, *, embed: bool = False) -> str:
    """Render blocks as an HTML page; figures by relative path, or embedded.

    Figure paths are relative to ``root`` (the folder the page is written to). By default
    the page refers to them (``<img src="figures/x.png">``); ``embed=True`` embeds them
    as base64 data so that the page stands alone.

    Examples
    --------
    >>> page = to_html([("p", "a **b** <i>")], "T", Path("."))
    >>> "<p>a <strong>b</strong> &lt;i&gt;</p>" in page
    True
    """
    body = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_inline(b[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "pre":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in b[2]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            if embed:
                data = base64.b64encode((root / b[1]).read_bytes()).decode("ascii")
                src = f"data:image/png;base64,{data}"
            else:
                src = html.escape(Path(b[1]).as_posix(), quote=True)
            body.append(
                f'<figure><img src="{src}" alt="{html.escape(b[2])}">'
                f"<figcaption>{html.escape(b[2])}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
