"""The ``evalkit`` command line: run, verify and check studies; list datasets and estimators.

Every command turns an :class:`~evalkit.errors.EvalkitError` into a short message on
standard error and exit status 2, so a study script or CI job fails cleanly without a
traceback. Exit status 1 means a study ran but did not verify.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from evalkit import __version__
from evalkit.errors import EvalkitError

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _friendly(func: F) -> F:
    """Report EvalkitError as a message and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EvalkitError as err:
            from rich.markup import escape

            _console(stderr=True).print(f"[bold red]error:[/] {escape(str(err))}", markup=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalkit")
def main() -> None:
    """evalkit: causal evaluation of welfare and labour-market policy with register data.

    A study is a folder with a study.toml that names its data, the roles of the
    columns and the analyses to run. `evalkit run STUDY` writes results.json, a report
    and a manifest; `evalkit verify STUDY` re-runs it and compares with expected.json.
    """


@main.command()
@click.argument("study", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Run on this data file (CSV or Parquet) instead of the study's own data.",
)
@_friendly
def run(study: Path, out: Path | None, progress: bool, data: Path | None) -> None:
    """Run every analysis of STUDY and write results.json, the report and a manifest.

    Exits with status 1 when an analysis failed (the others are still written).
    """
    from evalkit.study import run_study

    outcome = run_study(study, out=out, progress=progress, data_override=data)
    console = _console()
    console.print(f"[green]wrote[/] {outcome.out_dir}")
    for path in outcome.files:
        console.print(f"  {path}")
    if outcome.errors:
        from rich.markup import escape

        for error in outcome.errors:
            console.print(f"[red]failed:[/] {escape(str(error))}")
        sys.exit(1)


@main.command()
@click.argument("study", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder.")
@_friendly
def verify(study: Path, out: Path | None) -> None:
    """Re-run STUDY and compare with its expected.json; exit 1 on any mismatch."""
    from evalkit.study import verify_study

    outcome = verify_study(study, out=out)
    click.echo(outcome.report)
    if not outcome.ok:
        sys.exit(1)


@main.command()
@click.argument("study", type=click.Path(exists=True, path_type=Path))
@_friendly
def check(study: Path) -> None:
    """Validate STUDY's study.toml (keys, estimators, roles) without running it."""
    from evalkit.study import check_study

    parsed = check_study(study)
    analyses = getattr(parsed, "analyses", ())
    click.echo(f"{study}: OK ({len(analyses)} analyses)")


@main.command()
@_friendly
def datasets() -> None:
    """List the built-in public datasets and where each is read from.

    A dataset not found locally is downloaded (and its SHA-256 checked) on first use.
    """
    from rich.table import Table

    from evalkit import datasets as ds
    from evalkit.errors import DataError

    table = Table("name", "title", "local file", "public source")
    for name in ds.names():
        entry = ds.info(name)
        try:
            where = str(ds.path(name, download=False))
        except DataError:
            where = "not found locally (downloaded on first use)"
        table.add_row(name, str(entry.get("title", "")), where, str(entry.get("url", "")))
    _console().print(table)


@main.command()
def estimators() -> None:
    """List the registered estimators by registry name."""
    from evalkit.core.registry import names

    for name in names():
        click.echo(name)


@main.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--unit", required=True, help="Unit identifier column.")
@click.option("--time", "time_", required=True, help="Time period column.")
@click.option("--outcome", default=None, help="Outcome column.")
@click.option("--treatment", default=None, help="0/1 treatment column.")
@click.option("--cohort", default=None, help="First treated period column.")
@_friendly
def describe(
    data: Path,
    unit: str,
    time_: str,
    outcome: str | None,
    treatment: str | None,
    cohort: str | None,
) -> None:
    """Validate a data file (CSV or Parquet) as a panel and print its structure."""
    import json

    from evalkit.data import Panel
    from evalkit.data.readers import read

    frame = read(data)
    panel = Panel(
        frame,
        unit=unit,
        time=time_,
        outcome=outcome,
        treatment=treatment,
        cohort=cohort,
        require_variation=False,
    )
    click.echo(json.dumps(panel.describe(), indent=2, default=str))


@main.command()
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="File to write.")
@click.option("--seed", type=int, default=None, help="Seed of the simulation.")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A simulator option, e.g. --option n_persons=20000 (repeatable).",
)
@_friendly
def simulate(name: str, out: Path, seed: int | None, options: tuple[str, ...]) -> None:
    """Write register-like simulated data with planted effects (simulator NAME) to OUT."""
    import json

    from evalkit import simulate as sim
    from evalkit.errors import DesignError

    kwargs: dict[str, object] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DesignError(f"option {item!r} is not KEY=VALUE", column="option")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    if seed is not None:
        kwargs["seed"] = seed
    data = sim.get(name)(**kwargs)
    data.save(out)
    click.echo(f"wrote {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
