"""A DML fit that imports DoubleML does not keep its caller's data alive afterwards.

DoubleML imports optuna, which stores the ImportError of each optional package it
lacks with its traceback; a traceback's frames link to their callers. Imported from
inside a fit, that kept the fit's frames (the rows, the DoubleML model) for the life of
the process: ~0.5 GiB on each study worker at 1.1 million persons.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import weakref

import pytest

from evalkit.dml._base import import_on_thread

# a module that, like optuna, keeps the ImportError of an optional package it lacks
KEEPER = """
try:
    import evalkit_no_such_package_xyz  # noqa: F401
except ImportError as exc:
    KEPT = exc
"""


def _fit_like(importer, name, kept):
    marker = type("Rows", (), {})()  # stands for a fit's rows and model
    kept.append(weakref.ref(marker))
    importer(name)


@pytest.mark.parametrize("on_thread", [False, True])
def test_an_import_inside_a_call_keeps_its_frames_unless_on_a_thread(
    tmp_path, monkeypatch, on_thread
):
    name = f"evalkit_keeper_{int(on_thread)}"
    (tmp_path / f"{name}.py").write_text(KEEPER, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    kept: list[weakref.ref] = []
    try:
        if on_thread:
            _fit_like(import_on_thread, name, kept)
        else:
            import importlib

            _fit_like(importlib.import_module, name, kept)
        gc.collect()
        # imported here, the kept traceback's frames hold the caller's objects
        assert (kept[0]() is None) is on_thread
        assert sys.modules[name].KEPT is not None
    finally:
        sys.modules.pop(name, None)


def test_a_failed_import_on_a_thread_raises_here(tmp_path, monkeypatch):
    (tmp_path / "evalkit_broken_xyz.py").write_text(
        "raise ValueError('broken')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="broken"):
        import_on_thread("evalkit_broken_xyz")
    with pytest.raises(ModuleNotFoundError):
        import_on_thread("evalkit_no_such_package_xyz")


CODE = textwrap.dedent(
    """
    import gc, sys, weakref
    import numpy as np, pandas as pd
    assert "doubleml" not in sys.modules
    from evalkit.dml import PLR

    kept = []

    def fit():
        rng = np.random.default_rng(0)
        x = rng.normal(size=200)
        rows = pd.DataFrame({"y": x + rng.normal(size=200), "d": x + rng.normal(size=200),
                             "x": x})
        marker = type("Marker", (), {})()
        kept.append(weakref.ref(marker))
        PLR(outcome="y", treatment="d", covariates=["x"], learner="logit", n_folds=2).fit(
            rows, seed=1)

    fit()
    gc.collect()
    print("doubleml" in sys.modules, kept[0]() is None)
    """
)


@pytest.mark.slow  # a fresh interpreter imports pandas, scikit-learn and DoubleML (~4 s CPU)
def test_importing_doubleml_in_a_fit_keeps_none_of_its_frames():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
