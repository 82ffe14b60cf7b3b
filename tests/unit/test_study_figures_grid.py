"""The report's per-analysis grid draws legible coefficient plots only."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from evalkit.core.result import InferenceInfo, Result
from evalkit.report import study_figures as figs


def _result(n_groups: int, n_months: int) -> Result:
    rows = []
    for g in range(n_groups):
        rows.append({"term": "att", "subgroup": f"g{g}", "time": np.nan})
        rows += [{"term": "effect", "subgroup": f"g{g}", "time": float(t)} for t in range(n_months)]
    table = pd.DataFrame(rows)
    table["estimate"] = np.linspace(-1, 1, len(table))
    table["std_error"] = 0.1
    table["df"] = np.inf
    return Result(
        estimator="toy", _table=table, inference=InferenceInfo(method="hc1", description="toy")
    )


def _fitted(result: Result) -> SimpleNamespace:
    return SimpleNamespace(result=result, spec=SimpleNamespace(id="a", outcome="y"))


def _rows_drawn(fig) -> int:
    return len(fig.axes[0].get_yticks())


@pytest.mark.parametrize(("groups", "months", "drawn"), [(3, 4, 15), (10, 34, 10)])
def test_a_result_with_too_many_rows_shows_its_summary_terms(groups, months, drawn):
    fig = figs.result_grid([_fitted(_result(groups, months))], lambda outcome: None)
    assert fig is not None
    assert _rows_drawn(fig) == drawn
    assert drawn <= figs.MAX_PLOT_ROWS


def test_a_result_whose_summary_terms_are_still_too_many_is_left_out():
    fig = figs.result_grid([_fitted(_result(60, 2))], lambda outcome: None)
    assert fig is None


def test_summary_rows_are_labelled_without_a_missing_period():
    fig = figs.result_grid([_fitted(_result(10, 34))], lambda outcome: None)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "att [subgroup=g0]"
    assert not any("time=" in label for label in labels)
