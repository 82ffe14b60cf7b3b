"""did.TWFE warns once, naming the bias and the robust estimators, on staggered adoption."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.did import TWFE
from evalkit.errors import EvalkitWarning, StaggeredAdoptionWarning


def _panel(cohorts: list[int], n_periods: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    first = np.asarray(cohorts)
    unit = np.repeat(np.arange(first.size), n_periods)
    time = np.tile(np.arange(1, n_periods + 1), first.size)
    g = first[unit]
    d = ((g > 0) & (time >= g)).astype(int)
    return pd.DataFrame({"unit": unit, "time": time, "d": d, "y": d + rng.normal(size=unit.size)})


def _fit_recording(df: pd.DataFrame) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TWFE(outcome="y", treatment="d", unit="unit", time="time").fit(df, inference="iid")
    return [w for w in caught if issubclass(w.category, StaggeredAdoptionWarning)]


def test_staggered_adoption_warns_once_with_pointers():
    caught = _fit_recording(_panel([0, 0, 3, 3, 5, 5]))
    assert len(caught) == 1
    assert issubclass(caught[0].category, EvalkitWarning)
    text = str(caught[0].message)
    assert "2 different periods (3, 5)" in text
    for name in ("CallawaySantAnna", "SunAbraham", "ImputationDiD", "BaconDecomposition"):
        assert name in text
    assert caught[0].filename == __file__  # attributed to the caller's line


def test_staggered_warning_survives_singleton_pruning_once():
    df = _panel([0, 0, 3, 3, 5, 5])
    df = pd.concat([df, pd.DataFrame({"unit": [99], "time": [1], "d": [0], "y": [0.0]})])
    assert len(_fit_recording(df)) == 1


@pytest.mark.parametrize("cohorts", [[0, 0, 4, 4], [4, 4, 4, 0, 0, 0, 0]])
def test_single_timing_does_not_warn(cohorts):
    assert _fit_recording(_panel(cohorts)) == []
