"""Rendering report blocks: Markdown and HTML escape study text; HTML figures."""

from __future__ import annotations

import base64

from evalkit.report.render import markdown_blocks, to_html, to_markdown


def test_markdown_makes_study_text_inert():
    text = to_markdown(
        [
            ("h1", "Study <script>"),
            ("p", "see [here](http://x)"),
            ("ul", ["a & b"]),
            ("table", ["a|b", "c"], [["x\ny", 1]]),
            ("pre", "evalkit run s"),
            ("img", "figures/f.png", "cap [1]"),
        ]
    )
    assert "# Study &lt;script&gt;" in text
    assert "see \\[here\\](http://x)" in text
    assert "- a &amp; b" in text
    assert "| a\\|b | c |" in text and "| x y | 1 |" in text
    assert "```\nevalkit run s\n```" in text
    assert "![cap \\[1\\]](figures/f.png)" in text


def test_html_refers_to_figures_by_relative_path(tmp_path):
    page = to_html([("img", "figures/f.png", "cap")], "T", tmp_path)
    assert '<img src="figures/f.png" alt="cap">' in page
    assert "base64" not in page


def test_html_escapes_and_embeds_figures(tmp_path):
    png = b"\x89PNG not really"
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "f.png").write_bytes(png)
    page = to_html(
        [("h2", "A `code` *x*"), ("table", ["h"], [["<b>"]]), ("img", "figures/f.png", "c<")],
        "Title & co",
        tmp_path,
        embed=True,
    )
    assert "<title>Title &amp; co</title>" in page
    assert "<h2>A <code>code</code> <em>x</em></h2>" in page
    assert "<td>&lt;b&gt;</td>" in page
    assert base64.b64encode(png).decode("ascii") in page
    assert 'alt="c&lt;"' in page


def test_markdown_blocks_splits_paragraphs_and_lists():
    assert markdown_blocks("") == []
    assert markdown_blocks("a\nb\n\n* x\n* y\n\nc") == [
        ("p", "a b"),
        ("ul", ["x", "y"]),
        ("p", "c"),
    ]


def test_markdown_code_spans_are_kept_and_the_rest_made_inert():
    from evalkit.report.render import to_markdown

    text = to_markdown([("p", "`CAST(month >= 3)` and `n_<m>`, but <script> [x](javascript:y)")])
    assert "`CAST(month >= 3)`" in text and "`n_<m>`" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\\[x\\](javascript:y)" in text
