"""Conformal test inversion: exact intervals, weights, and the interval holding its estimate.

The TWFE of the Bergen study is weighted by the persons behind each city-month cell; its
conformal interval used to come from the *unweighted* DiD of the cells (a different
estimate), so the reported estimate could fall outside its own interval. With the cells'
weights in the counterfactual fit and the statistic, the conformal estimate is the
weighted TWFE estimate, and the interval is solved exactly at the p-value's jumps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.did import TWFE
from evalkit.inference.conformal import (
    _exact_invert,
    _interval,
    conformal_inference,
    conformal_p_value,
    did_counterfactual,
)
from evalkit.simulate import bergen_rates


def _panel(seed: int, n_t: int = 24, n_ctrl: int = 6, start: int = 16):
    rng = np.random.default_rng(seed)
    ctrl = rng.normal(size=(n_ctrl, n_t)) + rng.normal(size=n_t)
    y = ctrl.mean(axis=0) + rng.normal(size=n_t) + 0.8 * (np.arange(n_t) >= start)
    w = rng.integers(5, 200, size=(n_ctrl + 1, n_t)).astype(float)
    return y, ctrl, w, np.arange(n_t) >= start


def _in_pieces(theta: np.ndarray, pieces) -> np.ndarray:
    return np.array([any(lo <= t <= hi for lo, hi in pieces) for t in theta])


class _AffineFit:
    """Residuals y - K y: linear in y with arbitrary K, so the accepted set can be split."""

    linear = True

    def __init__(self, k: np.ndarray) -> None:
        self.k = k

    def __call__(self, y: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return (y - self.k @ y)[keep]


def _check_against_grid(y, post, fit, w, alpha, pieces):
    """Brute force: refit at every point of a dense grid and compare acceptance."""
    ends = np.array([e for piece in pieces for e in piece if np.isfinite(e)])
    lo, hi = ends.min(), ends.max()
    pad = 0.5 * (hi - lo) + 1.0
    grid = np.linspace(lo - pad, hi + pad, 2001)
    brute = np.array([conformal_p_value(y, post, fit, t, "mean", w) > alpha for t in grid])
    exact = _in_pieces(grid, pieces)
    near_end = np.min(np.abs(grid[:, None] - ends[None, :]), axis=1) < 1e-9 * (1 + abs(hi))
    assert np.array_equal(brute[~near_end], exact[~near_end])
    # every piece end is itself accepted (closed intervals), just outside it is not
    for e in ends:
        assert conformal_p_value(y, post, fit, e, "mean", w) > alpha
        step = 1e-7 * max(1.0, abs(e))
        assert (
            sum(conformal_p_value(y, post, fit, e + s, "mean", w) > alpha for s in (-step, step))
            == 1
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_exact_interval_equals_dense_grid_for_did(seed, weighted):
    y, ctrl, w, post = _panel(seed)
    fit = did_counterfactual(ctrl, w if weighted else None)
    w1 = w[0] if weighted else None
    pieces, _ = _exact_invert(y, post, fit, w1, 0.1)
    assert len(pieces) == 1  # DiD with the mean statistic: an interval
    _check_against_grid(y, post, fit, w1, 0.1, pieces)


def test_exact_inversion_reports_a_split_accepted_set():
    # seed 7 of this affine model gives two pieces (found by search; checked by the grid)
    rng = np.random.default_rng(7)
    post = np.arange(10) >= 7
    k = rng.normal(size=(10, 10)) * 0.4
    y = rng.normal(size=10)
    fit = _AffineFit(k)
    pieces, _ = _exact_invert(y, post, fit, None, 0.2)
    assert len(pieces) == 2
    _check_against_grid(y, post, fit, None, 0.2, pieces)
    lo, hi, note, got = _interval(y, post, fit, None, "mean", 0.2, 0.0, 1.0)
    assert got == pieces and (lo, hi) == (pieces[0][0], pieces[-1][1])
    assert "not an interval" in note and "hull" in note


def test_weighted_conformal_estimate_is_the_weighted_twfe_estimate():
    y, ctrl, w, post = _panel(3)
    n_t = len(y)
    cells = np.vstack([y, ctrl])
    frame = pd.DataFrame(
        {
            "city": np.repeat(np.arange(len(cells)), n_t),
            "month": np.tile(np.arange(n_t), len(cells)),
            "y": cells.ravel(),
            "n": w.ravel(),
        }
    )
    frame["d"] = ((frame["city"] == 0) & (frame["month"] >= 16)).astype(int)
    roles = dict(outcome="y", unit="city", time="month", treatment="d", cluster="city")
    weighted = TWFE(**roles, weights="n").fit(frame, inference="conformal")
    res = conformal_inference(y, post, did_counterfactual(ctrl, w), weights=w[0], per_period=False)
    est = float(weighted.tidy()["estimate"].iloc[0])
    assert res.estimate == pytest.approx(est, rel=1e-9, abs=1e-12)
    assert conformal_p_value(y, post, did_counterfactual(ctrl, w), est, "mean", w[0]) == 1.0
    row = weighted.tidy().iloc[0]
    assert row["conf_low"] <= est <= row["conf_high"]


def _bergen_cells(seed: int, group: str | None) -> pd.DataFrame:
    """The study's TWFE cells: city x month means and counts of persons (of one group)."""
    data = bergen_rates(seed=seed, n_persons=4000).data
    rows = data if group is None else data[data[group] == 1]
    return rows.groupby(["city", "month", "treated"], as_index=False).agg(
        work=("work", "mean"),
        earnings=("earnings", "mean"),
        activity=("activity", "mean"),
        recipient=("recipient", "mean"),
        n=("work", "size"),
    )


# bergen_rates(n_persons=4000, seed=4), all persons, before the fix (interval of the
# unweighted DiD of the cells): work 0.00747 outside [-0.0393, 0.00298], earnings -253.2
# outside [-1708.1, -306.6], activity 0.00328 outside [-0.0390, -0.00096]; seed 5,
# non-Western persons: recipient -0.01503 outside [-0.01230, 0.0773].
@pytest.mark.parametrize(
    ("seed", "group", "outcomes"),
    [(4, None, ("work", "earnings", "activity")), (5, "non_western", ("recipient", "work"))],
)
def test_bergen_twfe_estimate_lies_in_its_conformal_interval(seed, group, outcomes):
    cells = _bergen_cells(seed, group)
    for outcome in outcomes:
        est = TWFE(
            outcome=outcome, unit="city", time="month", treatment="treated", cluster="city",
            weights="n",
        ).fit(cells)  # fmt: skip
        row = est.tidy().iloc[0]
        assert "conformal" in est.inference.method
        assert row["conf_low"] < row["estimate"] < row["conf_high"], outcome
