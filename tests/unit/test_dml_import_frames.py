"""A DML fit that imports DoubleML does not keep its caller's data alive afterwards.

DoubleML imports optuna, which stores the ImportError of each optional package it
lacks with its traceback; a traceback's frames link to their callers. Imported from
inside a fit, that kept the fit's frames (the rows, the DoubleML model) for the life of
the process: ~0.5 GiB on each study worker at 1.1 million persons.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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


def test_importing_doubleml_in_a_fit_keeps_none_of_its_frames():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
