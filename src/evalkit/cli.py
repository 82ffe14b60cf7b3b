"""The ``evalkit`` command line: run, verify and check studies; list datasets and estimators.

Every command turns an :class:`~evalkit.errors.EvalkitError` into a short message on
standard error and exit status 2, so a study script or CI job fails cleanly without a
traceback. Exit status 1 means a study ran but did not verify.
"""

from __future__ import annotations

import functools
import os
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
    """Return a rich console that never inserts line breaks (paths stay whole)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


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


def _run_options(func: F) -> F:
    """Add the options that run and verify share: --force, --jobs, --scheduler."""
    func = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Fit the analyses on a Dask distributed cluster (tcp://host:8786); "
        "default: EVALKIT_SCHEDULER, else local.",
    )(func)
    func = click.option(
        "--jobs",
        "-j",
        type=int,
        default=None,
        help="Fit the analyses on N local processes (-1: every core); default: "
        "EVALKIT_JOBS, else every core up to 4. Results are identical for any N.",
    )(func)
    return click.option(
        "--force", is_flag=True, help="Replace an earlier run in the output folder."
    )(func)


def _default_jobs(jobs: int | None) -> int | None:
    """Return the number of processes a study run uses when --jobs is not given.

    ``EVALKIT_JOBS`` decides when it is set; otherwise every core, up to 4 (results are
    identical for any number of processes, so only the wall time changes).

    Examples
    --------
    >>> _default_jobs(3)
    3
    """
    if jobs is not None or os.environ.get("EVALKIT_JOBS"):
        return jobs
    return max(1, min(os.cpu_count() or 1, 4))


@main.command(short_help="Run a study: results, report and manifest.")
@click.argument("study", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder.")
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Show progress on standard error (a bar in a terminal, else one line per step).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Run on this data file (CSV or Parquet) instead of the study's own data.",
)
@_run_options
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a design value, e.g. --set data.options.n_persons=1500000 or "
    "--set analysis.twfe.inference=cluster (repeatable; recorded in the manifest).",
)
@_friendly
def run(
    study: Path,
    out: Path | None,
    progress: bool,
    data: Path | None,
    force: bool,
    jobs: int | None,
    scheduler: str | None,
    settings: tuple[str, ...],
) -> None:
    """Run every analysis of STUDY and write results.json, the report and a manifest.

    The run is written to a temporary folder and moved into place when complete; an
    earlier run's folder is replaced only with --force. Exits with status 1 when an
    analysis failed (the others are still written).
    """
    from evalkit.study import run_study
    from evalkit.study.config import parse_override

    overrides = dict(parse_override(s) for s in settings)
    outcome = run_study(
        study,
        out=out,
        progress=progress,
        data_override=data,
        force=force,
        jobs=_default_jobs(jobs),
        scheduler=scheduler,
        overrides=overrides,
    )
    console = _console()
    console.print(f"[green]wrote[/] {outcome.out_dir}")
    for path in outcome.files:
        console.print(f"  {path}")
    if outcome.errors:
        from rich.markup import escape

        for error in outcome.errors:
            console.print(f"[red]failed:[/] {escape(str(error))}")
        sys.exit(1)


@main.command(short_help="Re-run a study and compare with expected.json.")
@click.argument("study", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder.")
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Show progress on standard error (a bar in a terminal, else one line per step).",
)
@_run_options
@_friendly
def verify(
    study: Path,
    out: Path | None,
    progress: bool,
    force: bool,
    jobs: int | None,
    scheduler: str | None,
) -> None:
    """Re-run STUDY and compare with its expected.json; exit 1 on any mismatch.

    The re-run goes to a temporary folder that is removed afterwards, unless --out names
    a folder to keep it in.
    """
    from evalkit.study import verify_study

    outcome = verify_study(
        study,
        out=out,
        progress=progress,
        force=force,
        jobs=_default_jobs(jobs),
        scheduler=scheduler,
    )
    click.echo(outcome.report)
    if not outcome.ok:
        sys.exit(1)


@main.command(short_help="Validate a study.toml without running it.")
@click.argument("study", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Also validate this extract (CSV or Parquet) as the study's data: columns, "
    "types and missing values.",
)
@_friendly
def check(study: Path, data: Path | None) -> None:
    """Validate STUDY's study.toml (keys, estimators, roles) without running it.

    With --data, also check that the extract has every column the design names, the
    types the roles and measures need, and no missing values in role columns.
    """
    from evalkit.study import check_study

    parsed = check_study(study, data=data)
    analyses = getattr(parsed, "analyses", ())
    click.echo(f"{study}: OK ({len(analyses)} analyses)")


@main.command(short_help="Print the JSON Schema of study.toml.")
@click.option(
    "--markdown", is_flag=True, help="Print the key tables of the docs' study.toml reference."
)
def schema(markdown: bool) -> None:
    """Print the JSON Schema of study.toml (generated from evalkit's study models).

    Editors that read JSON Schema (e.g. with the Taplo TOML language server) can use it
    to complete and check study files.
    """
    from evalkit.study import reference

    click.echo(reference.markdown() if markdown else reference.schema_text(), nl=False)


@main.command(short_help="Pool one study's runs across countries (meta-analysis).")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write pooled.json, pooled.md and forest plots here (else print the table only).",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="A label per run, in the order of RUN_DIRS (default: the folder names).",
)
@click.option(
    "--tau2",
    type=click.Choice(["reml", "dl", "pm"]),
    default="reml",
    show_default=True,
    help="Between-country variance estimator of the random-effects column (all three are "
    "written to pooled.json).",
)
@click.option(
    "--knapp-hartung",
    is_flag=True,
    help="Hartung-Knapp-Sidik-Jonkman random-effects intervals (t, k-1 df): advisable with "
    "few countries.",
)
@click.option("--level", type=float, default=0.95, show_default=True, help="Confidence level.")
@click.option(
    "--allow-different",
    is_flag=True,
    help="Pool runs whose design hashes differ (their shared estimates); refused otherwise.",
)
@click.option("--force", is_flag=True, help="Replace files in a non-empty --out folder.")
@_friendly
def pool(
    run_dirs: tuple[Path, ...],
    out: Path | None,
    labels: tuple[str, ...],
    tau2: str,
    knapp_hartung: bool,
    level: float,
    allow_different: bool,
    force: bool,
) -> None:
    """Pool the same estimates from RUN_DIRS (one `evalkit run` folder per country).

    Only each run's results.json is read: aggregates that passed its disclosure gate,
    so no microdata leave a country. Runs must share the design hash (the same
    study.toml run on each country's extract with --data) unless --allow-different;
    two runs on the same data are refused. Every estimate with a standard error in two
    or more runs is pooled by fixed-effect (inverse-variance) and random-effects
    meta-analysis (tau^2 by DerSimonian-Laird, REML and Paule-Mandel), with Cochran's Q
    and I^2.
    """
    from evalkit.pool import pool_runs

    pooled = pool_runs(
        list(run_dirs),
        labels=list(labels) or None,
        level=level,
        tau2=tau2,
        knapp_hartung=knapp_hartung,
        allow_different=allow_different,
    )
    click.echo(pooled.markdown())
    if out is not None:
        files = pooled.write(out, force=force)
        console = _console()
        console.print(f"[green]wrote[/] {out}")
        for path in files:
            console.print(f"  {path}")


@main.command(short_help="List the public datasets: files and sources.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per dataset).")
@_friendly
def datasets(as_json: bool) -> None:
    """List the built-in public datasets, where each is read from and its public source.

    Paths and URLs are printed in full. A dataset not found locally is downloaded (and
    its SHA-256 checked) on first use.
    """
    import json

    from evalkit import datasets as ds
    from evalkit.errors import DataError

    rows = []
    for name in ds.names():
        entry = ds.info(name)
        try:
            local: str | None = str(ds.path(name, download=False))
        except DataError:
            local = None
        rows.append({"name": name, "local_file": local, **entry})
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        click.echo(f"{row['name']}: {row.get('title', '')}")
        where = row["local_file"] or "not found locally (downloaded on first use)"
        click.echo(f"  local file:    {where}")
        click.echo(f"  public source: {row.get('url', '')}")


def _first_line(doc: str | None) -> str:
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


@main.command(short_help="List the estimators: family, name, summary.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per estimator).")
def estimators(as_json: bool) -> None:
    """List the registered estimators: family, registry name and what each estimates.

    The registry name (e.g. did.TWFE) is what a study.toml's `estimator` key takes;
    `help(evalkit.did.TWFE)` gives the full documentation.
    """
    import json

    from evalkit.core.registry import get, names

    rows = [
        {
            "family": name.split(".", 1)[0],
            "name": name,
            "description": _first_line(get(name).__doc__),
        }
        for name in names()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    family = max((len(r["family"]) for r in rows), default=0)
    width = max((len(r["name"]) for r in rows), default=0)
    for row in rows:
        click.echo(f"{row['family']:<{family}}  {row['name']:<{width}}  {row['description']}")


_ROLE_OPTIONS = (
    click.option("--unit", required=True, help="Unit identifier column."),
    click.option("--time", "time_", required=True, help="Time period column."),
    click.option("--outcome", default=None, help="Outcome column."),
    click.option("--treatment", default=None, help="0/1 treatment column."),
    click.option("--cohort", default=None, help="First treated period column."),
)


def _role_options(func: F) -> F:
    for option in reversed(_ROLE_OPTIONS):
        func = option(func)
    return func


def _describe_data(
    data: Path,
    unit: str,
    time_: str,
    outcome: str | None,
    treatment: str | None,
    cohort: str | None,
) -> None:
    import json

    import pandas as pd

    from evalkit.data import Panel
    from evalkit.data.readers import read

    frame = read(data)
    for col in (time_, cohort):  # a CSV file has no types: read date text as dates
        if col in frame and _is_date_text(frame[col]):
            frame[col] = pd.to_datetime(frame[col])
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


def _is_date_text(series: Any) -> bool:
    """Return True for text that all parses as dates and does not look like numbers."""
    import pandas as pd

    text = series.dropna()
    if len(text) == 0 or pd.api.types.is_numeric_dtype(text) or text.dtype == bool:
        return False
    if pd.to_numeric(text.astype(object), errors="coerce").notna().any():
        return False
    try:
        pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


@main.command("describe-data", short_help="Check a panel data file and describe it.")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_role_options
@_friendly
def describe_data(data: Path, **roles: Any) -> None:
    """Check a data file (CSV or Parquet) as a panel and describe its structure.

    DATA is read and validated with the roles given (the checks every estimator runs,
    with their codes and hints); ISO date text (2020-03-01) in the time and cohort
    columns of a CSV file is read as dates. The summary is JSON: rows, units, periods, whether the
    panel is balanced, the roles and any rows dropped. Aggregates only, no microdata.
    To list the estimators, use `evalkit estimators`.
    """
    _describe_data(data, **roles)


@main.command(hidden=True)
@click.argument("data")
@_role_options
@_friendly
def describe(data: str, **roles: Any) -> None:
    """Old name of describe-data: describe a data file (deprecated)."""
    click.echo("warning: `evalkit describe` is now `evalkit describe-data`", err=True)
    if not Path(data).exists():
        from evalkit.core.registry import names

        if data in names():
            raise click.UsageError(
                f"`evalkit describe` (now `describe-data`) describes a data file; {data} is an "
                "estimator: "
                "`evalkit estimators` lists the estimators with what each estimates"
            )
        raise click.BadParameter(f"file {data!r} does not exist", param_hint="DATA")
    _describe_data(Path(data), **roles)


@main.command(short_help="Write simulated register-like data.")
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
