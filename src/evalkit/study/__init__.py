"""Studies: a folder with a study.toml that names its data, roles and analyses.

``check_study`` validates the file without running anything, ``run_study`` runs every
analysis and writes results.json, report.md, report.html (with figures) and
manifest.json, and ``verify_study`` re-runs the study and compares it with its committed
expected.json. Everything written passes the disclosure gate: no count below the
study's ``min_cell_size`` leaves the runner.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.study.config import AnalysisSpec, CollapseSpec, DataSpec, Study, Tolerance, load_study
from evalkit.study.runner import RunOutcome, run_study
from evalkit.study.verify import Mismatch, VerifyOutcome, verify_study

__all__ = [
    "AnalysisSpec",
    "CollapseSpec",
    "DataSpec",
    "Mismatch",
    "RunOutcome",
    "Study",
    "Tolerance",
    "VerifyOutcome",
    "check_study",
    "run_study",
    "verify_study",
]


def check_study(path: str | Path, *, data: str | Path | None = None) -> Study:
    """Parse and validate a study without running it.

    Checks every key (unknown keys are errors that name the file, line and table and
    suggest the closest key), the data source (the file exists; the simulator and its
    options are known), every estimator name (an unknown one lists the registry), the
    estimator options, the inference methods, the subgroups, and, when the data's
    columns can be read cheaply (a simulator's schema, a Parquet or CSV header, a
    query's result columns), that every role, cell key, measure and condition refers to
    an existing column.

    Parameters
    ----------
    path
        The study folder (or its study.toml).
    data
        A data file (CSV or Parquet) to validate as the study's data, as ``evalkit run
        --data`` would use it: its columns against every name in the design, the types
        the roles and measures need, and missing values in the role columns.

    Returns
    -------
    Study
        The parsed study; ``study.analyses`` lists the analyses after expansion.

    Raises
    ------
    DesignError
        For any mistake in the design.
    DataError
        When the data file does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "study.toml").write_text('''
    ... [study]
    ... titel = "A typo"
    ... ''')
    >>> check_study(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evalkit.errors.DesignError: .../study.toml:3: unknown key 'titel' in [study]
      hint: did you mean 'title'? allowed: name, title, description, seed, min_cell_size, level
    """
    if data is None:
        return load_study(path, check_data=True)
    from evalkit.study.locate import Locator
    from evalkit.study.source import check_columns, open_source, validate_data

    study = load_study(path, check_data=False)
    check_columns(study, Locator.read(study.file), data)
    source = open_source(study, Path(data))
    try:
        validate_data(study, source)
    finally:
        source.close()
    return study
