"""Progress of a study run on standard error: a bar in a terminal, lines otherwise.

A run simulates or opens its data, fits its analyses one by one and writes a report;
on national register data or a large simulation that takes minutes. In a terminal the
runner shows a rich progress bar; when standard error is a file or a pipe (CI logs,
``nohup``, ``2> log``) a bar would print nothing until the end, so each step is one
plain line instead (``[3/15] twfe_work 1.2 s``), flushed as it happens.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TextIO

__all__ = ["RunProgress"]


class RunProgress:
    """Report the stages and analyses of one study run.

    Parameters
    ----------
    title
        The study's name, shown before every line.
    total
        Number of analyses.
    enabled
        False shows nothing.
    stream
        Where to write; standard error when None. A terminal gets a progress bar, any
        other stream one line per step.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> progress = RunProgress("demo", total=2, stream=out)
    >>> with progress.stage("opening the data"):
    ...     pass
    >>> with progress.analyses() as step:
    ...     for name in ("a", "b"):
    ...         with step(name):
    ...             pass
    >>> progress.finish()
    >>> print(out.getvalue().replace("0.0 s", "t"))  # doctest: +NORMALIZE_WHITESPACE
    demo: opening the data ...
    demo: opening the data done (t)
    demo: [1/2] a (t)
    demo: [2/2] b (t)
    demo: done in t
    """

    def __init__(
        self, title: str, total: int, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.title = title
        self.total = total
        self.enabled = enabled
        self._stream = stream
        self._start = time.perf_counter()

    @property
    def stream(self) -> TextIO:
        """The stream written to (standard error unless one was given)."""
        return self._stream if self._stream is not None else sys.stderr

    def _is_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _line(self, text: str) -> None:
        if self.enabled:
            print(f"{self.title}: {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, text: str) -> Iterator[None]:
        """Report a step that is not an analysis (opening the data, writing the report)."""
        start = time.perf_counter()
        self._line(f"{text} ...")
        yield
        self._line(f"{text} done ({time.perf_counter() - start:.1f} s)")

    @contextmanager
    def analyses(self) -> Iterator[Callable[[str], AbstractContextManager[None]]]:
        """Report the analyses: yields ``step(name)``, a context around each analysis."""
        if not (self.enabled and self._is_terminal()):
            done = 0

            @contextmanager
            def line(name: str) -> Iterator[None]:
                nonlocal done
                start = time.perf_counter()
                yield
                done += 1
                self._line(f"[{done}/{self.total}] {name} ({time.perf_counter() - start:.1f} s)")

            yield line
            return

        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=self.stream),
        ) as bar:
            task = bar.add_task(self.title, total=self.total)

            @contextmanager
            def advance(name: str) -> Iterator[None]:
                bar.update(task, description=f"{self.title}: {name}")
                yield
                bar.advance(task)

            yield advance
            bar.update(task, description=self.title)

    def finish(self) -> None:
        """Report the total time of the run."""
        self._line(f"done in {time.perf_counter() - self._start:.1f} s")
