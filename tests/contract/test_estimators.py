"""The result protocol, checked over every registered estimator."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit import EvalkitError
from evalkit.core import registry
from evalkit.core.result import TIDY_COLUMNS, Result

from .cases import CASES

NAMES = registry.names()


def _point_only(name: str) -> bool:
    """Estimators with point estimates only (a decomposition): no standard errors by design."""
    return registry.get(name).supported_inference == ("none",)


def _fit(name: str, data: pd.DataFrame | None = None, **fit_kwargs):
    case = CASES[name]
    est = registry.get(name)(**case.options)
    frame = case.data() if data is None else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(frame, **{**case.fit, **fit_kwargs})


def test_every_registered_estimator_has_a_contract_case():
    missing = [n for n in NAMES if n not in CASES]
    assert not missing, f"add contract cases for {missing} in tests/contract/cases.py"


def test_registry_is_not_empty():
    assert "did.TWFE" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_result_with_tidy_columns(name):
    res = _fit(name, seed=1)
    assert isinstance(res, Result)
    assert res.estimator == name
    tidy = res.tidy()
    assert list(tidy.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    assert len(tidy) >= 1
    assert np.isfinite(tidy["estimate"]).all()
    if _point_only(name):  # empty, and said so; intervals refused rather than NaN
        assert tidy["std_error"].isna().all() and res.inference.method == "none"
        assert res.inference.description.startswith("none: ")
        with pytest.raises(EvalkitError):
            res.ci()
        return
    # a standard error is never a silent NaN
    assert np.isfinite(tidy["std_error"]).all()
    assert (tidy["conf_low"] <= tidy["estimate"]).all()
    assert (tidy["estimate"] <= tidy["conf_high"]).all()


@pytest.mark.parametrize("name", NAMES)
def test_to_dict_survives_json_round_trip(name):
    res = _fit(name, seed=2)
    payload = res.to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    assert payload["estimator"] == name
    assert set(TIDY_COLUMNS) <= set(payload["tidy"][0])


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name):
    a = _fit(name, seed=123)
    b = _fit(name, seed=123)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize("name", NAMES)
def test_caller_frame_is_not_modified(name):
    frame = CASES[name].data()
    before = frame.copy(deep=True)
    _fit(name, data=frame, seed=3)
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize("name", NAMES)
def test_missing_outcome_column_is_named(name):
    case = CASES[name]
    frame = case.data().drop(columns=[case.outcome])
    est = registry.get(name)(**case.options)
    with pytest.raises(EvalkitError, match=case.outcome):
        est.fit(frame)


@pytest.mark.parametrize("name", NAMES)
def test_text_in_outcome_is_named(name):
    case = CASES[name]
    frame = case.data()
    frame[case.outcome] = frame[case.outcome].astype(object)
    frame.loc[3, case.outcome] = "n/a"
    est = registry.get(name)(**case.options)
    with pytest.raises(EvalkitError, match=case.outcome):
        est.fit(frame)


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_inference_lists_supported(name):
    est = registry.get(name)(**CASES[name].options)
    unsupported = [m for m in ("conformal", "conley_taber") if m not in est.supported_inference]
    if not unsupported:
        pytest.skip("supports every probe method")
    with pytest.raises(EvalkitError, match=est.supported_inference[0]):
        est.fit(CASES[name].data(), inference=unsupported[0])


@pytest.mark.parametrize("name", NAMES)
def test_result_and_estimator_are_immutable(name):
    est = registry.get(name)(**CASES[name].options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.outcome = "other"  # type: ignore[misc]
    res = _fit(name, seed=4)
    tidy = res.tidy()
    tidy.loc[0, "estimate"] = 1e9
    assert res.tidy().loc[0, "estimate"] != 1e9
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.estimator = "x"  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_summary_and_plot(name):
    import matplotlib.pyplot as plt

    res = _fit(name, seed=5)
    text = str(res.summary())
    assert res.tidy()["term"].iloc[0] in text
    assert "<table" in res._repr_html_()
    ax = res.plot()
    assert ax.has_data()
    plt.close("all")


@pytest.mark.parametrize("name", NAMES)
def test_ci_level_changes_width(name):
    if _point_only(name):
        pytest.skip("point estimates only: ci() raises (checked above)")
    res = _fit(name, seed=6)
    narrow = res.ci(level=0.5)
    wide = res.ci(level=0.99)
    assert (
        (wide["conf_high"] - wide["conf_low"]) > (narrow["conf_high"] - narrow["conf_low"])
    ).all()


@pytest.mark.parametrize("name", NAMES)
def test_by_subgroups_give_group_rows_and_equality_tests(name):
    case = CASES[name]
    frame = case.data()
    unit = case.options.get("unit", "unit")
    if _point_only(name) or not registry.get(name).supports_by:
        frame["half"] = frame[unit] % 2
        with pytest.raises(EvalkitError, match="by="):
            _fit(name, data=frame, by="half")
        return
    # two subgroups of units (sharing the periods)
    frame["half"] = np.where(frame[unit] % 2 == 0, "a", "b")
    res = _fit(name, data=frame, by="half", seed=7)
    tidy = res.tidy()
    assert {"a", "b", "a - b"} <= set(tidy["subgroup"])
    assert np.isfinite(tidy["std_error"]).all()
    assert res.info["equality_tests"]
    diff = tidy[tidy["subgroup"] == "a - b"].iloc[0]
    a = tidy[(tidy["subgroup"] == "a") & (tidy["term"] == diff["term"])].iloc[0]
    b = tidy[(tidy["subgroup"] == "b") & (tidy["term"] == diff["term"])].iloc[0]
    assert diff["estimate"] == pytest.approx(a["estimate"] - b["estimate"])
