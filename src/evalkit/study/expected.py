"""Regenerate a study's expected.json: ``python -m evalkit.study.expected STUDY_DIR``.

Run the study once and write the estimates that ``evalkit verify`` will compare against.
Only do this when a change in the numbers is intended, and commit the file with a
message saying why the numbers changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evalkit.study.config import load_study
from evalkit.study.design import Design
from evalkit.study.verify import EXPECTED_FILE, expected_from

__all__ = ["main", "write_expected"]


def write_expected(
    path: str | Path | Design,
    *,
    root: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Run a study and write its expected.json; return the path written.

    Parameters
    ----------
    path
        The study folder (or its study.toml), or a
        :class:`~evalkit.study.design.Design` built in Python.
    root
        For a design: the folder expected.json is written to (and that its file paths
        are relative to); the working directory when None.
    out
        Output folder of the run; ``<study>/out`` when None.
    progress
        Show a progress bar.

    Examples
    --------
    See :func:`evalkit.study.verify_study`.
    """
    from evalkit.errors import EvalkitError
    from evalkit.study.runner import run_study

    study = load_study(path, root=root)
    what = path if isinstance(path, Design) else study.root
    run = run_study(what, root=study.root, out=out, progress=progress)
    if run.errors:
        raise EvalkitError(
            "not writing expected.json: some analyses failed:\n  " + "\n  ".join(run.errors),
            hint="fix the study first",
        )
    target = study.root / EXPECTED_FILE
    doc = expected_from(run.results, study)
    target.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m evalkit.study.expected",
        description="Run a study and (re)write its expected.json.",
    )
    parser.add_argument("study", type=Path, help="the study folder")
    parser.add_argument("--out", type=Path, default=None, help="output folder of the run")
    args = parser.parse_args(argv)
    from evalkit.errors import EvalkitError

    try:
        target = write_expected(args.study, out=args.out)
    except EvalkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
