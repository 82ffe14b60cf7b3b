"""Checks of the uncertainty contract, one per capability.

Each registered estimator declares its capabilities (``Estimator.capabilities()``: the
kinds of uncertainty its ``supported_inference`` produce, plus ``"by"``); the contract
test fits it with every supported method and runs the check of that method's kind.
New families (synthetic control, DML) slot in by declaring theirs. The checks are tested
against deliberately broken results in test_capabilities.py, so they can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evalkit.core.result import Result
from evalkit.errors import InferenceNotSupportedError, LevelFixedError, NotEstimableError

OTHER_LEVEL = 0.8


def _width(tidy: pd.DataFrame) -> np.ndarray:
    return (tidy["conf_high"] - tidy["conf_low"]).to_numpy(dtype=float)


def _common(res: Result, kind: str) -> pd.DataFrame:
    assert res.uncertainty is not None, "a result must hold its uncertainty"
    assert res.uncertainty.kind == kind, f"expected {kind} uncertainty, got {res.uncertainty.kind}"
    assert res.inference.kind == kind
    assert res.inference.reason, "every choice of inference records its reason"
    tidy = res.tidy()
    assert np.isfinite(tidy["estimate"]).all()
    payload = res.to_dict()
    assert payload["uncertainty"]["kind"] == kind
    return tidy


def _with_se(res: Result, tidy: pd.DataFrame) -> None:
    se = tidy["std_error"].to_numpy(dtype=float)
    assert np.isfinite(se).all() and (se >= 0).all(), "standard errors must be defined"
    assert res.inference.missing is None
    p = tidy["p_value"].to_numpy(dtype=float)
    live = se > 0
    assert ((p[live] >= 0) & (p[live] <= 1)).all()
    assert (tidy["conf_low"] <= tidy["estimate"]).all()
    assert (tidy["estimate"] <= tidy["conf_high"]).all()
    other = res.tidy(level=OTHER_LEVEL)
    assert np.isfinite(other[["conf_low", "conf_high"]].to_numpy(dtype=float)).all()
    narrower = _width(other)[live] < _width(tidy)[live]
    assert narrower.all(), "intervals at a lower level must be narrower"
    pd.testing.assert_series_equal(other["p_value"], tidy["p_value"])
    assert res.std_error(**_first_row_keys(tidy)) == float(se[0])


def _first_row_keys(tidy: pd.DataFrame) -> dict:
    row = tidy.iloc[0]
    keys = {"term": row["term"]}
    for col in ("subgroup", "group", "cohort", "time", "event_time"):
        if col in tidy and not pd.isna(row[col]):
            keys[col] = row[col]
    return keys


def check_analytic(res: Result) -> None:
    """Analytic: SE, vcov consistent with them, a reference distribution, any level."""
    tidy = _common(res, "analytic")
    _with_se(res, tidy)
    if res.vcov is not None:
        diag = np.sqrt(np.clip(np.diag(res.vcov.to_numpy()), 0, None))
        assert np.allclose(diag, tidy["std_error"], rtol=1e-8, atol=1e-12)


def check_draws(res: Result) -> None:
    """Draws: replicates aligned with the rows, SE from them, any level."""
    tidy = _common(res, "draws")
    _with_se(res, tidy)
    unc = res.uncertainty
    assert unc.draws is not None and unc.draws.shape == (unc.reps, len(tidy))
    assert not unc.draws.flags.writeable


def check_test_inversion(res: Result) -> None:
    """Test inversion: no SE (reason stated), p-values on the stated grid, level fixed or
    recomputable."""
    tidy = _common(res, "test_inversion")
    assert tidy["std_error"].isna().all(), "test inversion has no standard error"
    assert res.inference.missing and "no standard error" in res.inference.missing
    p = tidy["p_value"].to_numpy(dtype=float)
    assert np.isfinite(p).all() and ((p > 0) & (p <= 1)).all()
    step = res.uncertainty.granularity
    if step is not None:
        assert (p >= step - 1e-12).all(), "p-values cannot be below the granularity"
        on_grid = np.allclose(p / step, np.round(p / step), atol=1e-9)
        assert on_grid, "p-values off the granularity grid"
    low, high = tidy["conf_low"].to_numpy(float), tidy["conf_high"].to_numpy(float)
    assert not np.isnan(low).any() and not np.isnan(high).any(), "intervals are never NaN"
    try:
        res.std_error(**_first_row_keys(tidy))
    except NotEstimableError:
        pass
    else:  # pragma: no cover - the point of the check
        raise AssertionError("std_error() must raise where no SE is defined")
    if res.uncertainty.recomputable(OTHER_LEVEL):
        other = res.tidy(level=OTHER_LEVEL)
        assert not other[["conf_low", "conf_high"]].isna().any().any()
    else:
        try:
            res.tidy(level=OTHER_LEVEL)
        except LevelFixedError as err:
            assert f"level={OTHER_LEVEL:g}" in str(err)
        else:  # pragma: no cover
            raise AssertionError("a level fixed at fit time must raise LevelFixedError")


def check_none(res: Result) -> None:
    """None: point estimates only, every inference column empty, the reason stated."""
    tidy = _common(res, "none")
    cols = ["std_error", "statistic", "p_value", "conf_low", "conf_high"]
    assert tidy[cols].isna().all().all()
    assert res.inference.missing and "no standard errors" in res.inference.missing
    for ask in (lambda: res.tidy(level=OTHER_LEVEL), res.ci):
        try:
            ask()
        except InferenceNotSupportedError as err:
            assert "no confidence intervals" in str(err)
        else:  # pragma: no cover
            raise AssertionError("intervals of a point-only result must be refused")


def check_by(res: Result) -> None:
    """by=: subgroup rows keyed ``subgroup``, pairwise differences, equality tests."""
    tidy = res.tidy()
    assert "subgroup" in tidy.columns
    assert {"a", "b", "a - b"} <= set(tidy["subgroup"])
    if res.inference.kind == "test_inversion":  # placebo tests: p-values, no standard error
        assert np.isfinite(tidy["p_value"]).all()
    else:
        assert np.isfinite(tidy["std_error"]).all()
    tests = res.info["equality_tests"]
    assert tests
    keys = [c for c in ("group", "cohort", "time", "event_time") if c in tidy]
    diffs = tidy[tidy["subgroup"] == "a - b"]
    # one difference per (term, keys) present in both subgroups, none lost
    per = tidy[tidy["subgroup"] == "a"][["term", *keys]].astype(str).drop_duplicates()
    assert len(diffs) == len(per) == len(tests)
    for _, diff in diffs.iterrows():
        match = {k: diff[k] for k in keys if not pd.isna(diff[k])}
        a = res.estimate(diff["term"], subgroup="a", **match)
        b = res.estimate(diff["term"], subgroup="b", **match)
        assert math.isclose(diff["estimate"], a - b, rel_tol=1e-12, abs_tol=1e-12)


CHECKS = {
    "analytic": check_analytic,
    "draws": check_draws,
    "test_inversion": check_test_inversion,
    "none": check_none,
}
