"""Lazy subpackages: what ``import evalkit`` loads, attribute access, did-you-mean.

Module sets are checked in a fresh interpreter (a subprocess), never timings; the
timings are in benchmarks/import_time.py and benchmarks/results/import_time.md.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import evalkit

SRC = Path(evalkit.__file__).resolve().parents[1]
HEAVY = ("scipy", "scipy.stats", "matplotlib", "duckdb", "sklearn", "doubleml", "statsmodels")


def loaded_after(statement: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    probe = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement", ["import evalkit", "import evalkit.did"])
def test_import_loads_no_heavy_dependency(statement):
    mods = loaded_after(statement)
    assert "evalkit" in mods  # the probe ran the statement
    assert not mods & {*HEAVY, "pandas"}, sorted(mods & {*HEAVY, "pandas"})


def test_estimator_classes_load_without_scipy_or_plotting():
    mods = loaded_after(
        "from evalkit.did import TWFE, CallawaySantAnna, EventStudy, ImputationDiD,"
        " SunAbraham, TripleDiff\nimport evalkit.study, evalkit.simulate, evalkit.report"
    )
    assert "evalkit.did.twfe" in mods and "pandas" in mods
    assert not mods & set(HEAVY), sorted(mods & set(HEAVY))


def test_subpackages_load_on_first_attribute_access():
    mods = loaded_after(
        "import evalkit as ek\nassert ek.did.TWFE.__name__ == 'TWFE'\n"
        "assert ek.inference.parse_inference\nassert ek.study.run_study"
    )
    assert {"evalkit.did.twfe", "evalkit.inference", "evalkit.study"} <= mods
    assert "evalkit.did.callaway_santanna" not in mods  # only what was asked for


def test_dir_lists_the_public_subpackages():
    names = dir(evalkit)
    for name in ("did", "inference", "study", "simulate", "datasets", "EvalkitError"):
        assert name in names
    assert {"TWFE", "CallawaySantAnna"} <= set(dir(evalkit.did))
    assert set(evalkit.did.__all__) == {n for n in dir(evalkit.did)}


def test_static_names_match_the_lazy_ones():
    """The TYPE_CHECKING imports (for type checkers and the API docs) match the lazy map."""
    tree = ast.parse((SRC / "evalkit" / "did" / "__init__.py").read_text(encoding="utf-8"))
    static = {
        (node.module.rsplit(".", 1)[1], alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("evalkit.did.")
        for alias in node.names
    }
    lazy = {(getattr(evalkit.did, n).__module__.rsplit(".", 1)[1], n) for n in evalkit.did.__all__}
    missing = sorted(f"from evalkit.did.{m} import {n} as {n}" for m, n in lazy - static)
    assert not missing, f"add to the TYPE_CHECKING block of evalkit/did/__init__.py: {missing}"
    assert static == lazy and {"TWFE", "CallawaySantAnna"} <= {n for _, n in static}


def test_typos_raise_attribute_error_with_a_suggestion():
    with pytest.raises(AttributeError, match=r"no attribute 'dd'; did you mean 'did'"):
        evalkit.dd  # noqa: B018
    with pytest.raises(AttributeError, match=r"'TWEF'; did you mean 'TWFE'"):
        evalkit.did.TWEF  # noqa: B018
    with pytest.raises(AttributeError, match=r"no attribute 'nothing_like_it'$"):
        evalkit.nothing_like_it  # noqa: B018
    assert not hasattr(evalkit, "zzz")


def test_missing_family_is_an_attribute_error_not_an_import_error():
    # ``parallel`` is listed lazily whether or not it is built yet
    if (SRC / "evalkit" / "parallel.py").exists() or (SRC / "evalkit" / "parallel").exists():
        assert "parallel" in dir(evalkit)
    else:
        assert "parallel" not in dir(evalkit)
        with pytest.raises(AttributeError):
            evalkit.parallel  # noqa: B018


def test_registry_finds_lazy_estimators_in_a_fresh_process():
    mods = loaded_after(
        "from evalkit.core.registry import get, names\n"
        "assert 'did.SunAbraham' in names(), names()\n"
        "assert get('did.TripleDiff').__name__ == 'TripleDiff'"
    )
    assert "evalkit.did.triple_diff" in mods
    assert "evalkit.did.sun_abraham" not in mods  # names() imports no estimator module


def test_version_is_read_on_demand():
    assert isinstance(evalkit.__version__, str) and evalkit.__version__
    assert "importlib.metadata" not in loaded_after("import evalkit")
    assert "importlib.metadata" in loaded_after("import evalkit\nevalkit.__version__")
