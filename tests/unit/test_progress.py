"""RunProgress: a bar in a terminal, one line per step otherwise, nothing when disabled."""

from __future__ import annotations

import io

from evalkit.study.progress import RunProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(progress: RunProgress) -> None:
    with progress.stage("opening the data"):
        pass
    with progress.analyses() as step:
        for name in ("first", "second", "third"):
            with step(name):
                pass
    progress.finish()


def test_lines_when_not_a_terminal():
    out = io.StringIO()
    drive(RunProgress("s", total=3, stream=out))
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("s: done in ")
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "s: opening the data ...",
        "s: opening the data done",
        "s: [1/3] first",
        "s: [2/3] second",
        "s: [3/3] third",
    ]


def test_bar_in_a_terminal():
    out = Terminal()
    drive(RunProgress("s", total=3, stream=out))
    text = out.getvalue()
    assert "3/3" in text and "[1/3]" not in text  # the bar, not the lines
    assert "s: opening the data ..." in text


def test_disabled_writes_nothing():
    out = Terminal()
    drive(RunProgress("s", total=3, stream=out, enabled=False))
    assert out.getvalue() == ""
