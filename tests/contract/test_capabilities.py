"""Every registered estimator, checked for each capability it declares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit import EvalkitError
from evalkit.core import registry
from evalkit.core.result import InferenceInfo, Result
from evalkit.core.uncertainty import Analytic, Draws, NoInference, TestInversion

from .capabilities import CHECKS, check_by, check_draws, check_none, check_test_inversion
from .cases import CASES, METHOD_CASES
from .test_estimators import _fit

PAIRS = [
    (name, method) for name in registry.names() for method in registry.get(name).supported_inference
]
BY = [name for name in registry.names() if "by" in registry.get(name).capabilities()]
NO_BY = [name for name in registry.names() if name not in BY]


@pytest.mark.parametrize(("name", "method"), PAIRS, ids=[f"{n}-{m}" for n, m in PAIRS])
def test_each_supported_method_gives_its_kind_of_uncertainty(name, method):
    kind = registry.get(name).kind_of(method)
    reps = 49 if kind in ("draws", "test_inversion") else None
    case = METHOD_CASES.get((name, method))
    if case is None:
        res = _fit(name, inference=method, seed=11, reps=reps)
    else:
        est = registry.get(name)(**case.options)
        res = est.fit(case.data(), inference=method, seed=11, reps=reps)
    assert res.inference.method == method
    CHECKS[kind](res)


@pytest.mark.parametrize("name", registry.names())
def test_declared_capabilities_follow_supported_methods(name):
    cls = registry.get(name)
    kinds = {cls.kind_of(m) for m in cls.supported_inference}
    assert cls.capabilities() - {"by"} == kinds
    # the automatic choice is one of the supported methods
    res = _fit(name, seed=1)
    assert res.inference.method in cls.supported_inference


@pytest.mark.parametrize("name", BY)
def test_by_subgroups_capability(name):
    case = CASES[name]
    frame = case.data()
    if case.by_within_units:
        other = frame.assign(y=frame["y"] + np.random.default_rng(3).normal(size=len(frame)))
        frame = pd.concat([frame.assign(half="a"), other.assign(half="b")], ignore_index=True)
    else:
        unit = case.options.get("unit", "unit")
        frame["half"] = np.where(frame[unit] % 2 == 0, "a", "b")
    check_by(_fit(name, data=frame, by="half", seed=7))


@pytest.mark.parametrize("name", NO_BY or ["-"])
def test_estimators_without_by_refuse_it(name):
    if name == "-":
        pytest.skip("every registered estimator supports by=")
    case = CASES[name]
    frame = case.data()
    frame["half"] = frame[case.options.get("unit", "unit")] % 2
    with pytest.raises(EvalkitError, match="by="):
        _fit(name, data=frame, by="half")


# ---------------------------------------------------------------- the checks can fail
def _fake(unc, level=0.95, method="permutation"):
    table = pd.DataFrame({"term": ["ATT", "ATT"], "estimate": [1.0, 2.0], "time": [1, 2]})
    return Result(
        "test.Fake",
        table,
        InferenceInfo(method, "fake", reason="requested"),
        level=level,
        uncertainty=unc,
    )


def test_test_inversion_check_accepts_a_valid_result_and_rejects_broken_ones():
    good = TestInversion(
        np.array([0.1, 0.3]),
        np.array([-1.0, 0.5]),
        np.array([3.0, 3.5]),
        level=0.9,
        method="permutation",
        granularity=0.1,
    )
    check_test_inversion(_fake(good, level=0.9))
    off_grid = TestInversion(
        np.array([0.15, 0.3]),
        np.array([-1.0, 0.5]),
        np.array([3.0, 3.5]),
        level=0.9,
        method="permutation",
        granularity=0.1,
    )
    with pytest.raises(AssertionError, match="granularity grid"):
        check_test_inversion(_fake(off_grid, level=0.9))
    silent_nan = TestInversion(
        np.array([0.1, 0.3]),
        np.array([np.nan, 0.5]),
        np.array([3.0, 3.5]),
        level=0.9,
        method="permutation",
    )
    with pytest.raises(AssertionError, match="never NaN"):
        check_test_inversion(_fake(silent_nan, level=0.9))
    with pytest.raises(AssertionError, match="expected test_inversion"):
        check_test_inversion(_fake(Analytic(np.array([0.5, 0.5]))))


def test_draws_and_none_checks_reject_wrong_kinds():
    draws = np.random.default_rng(0).normal(size=(30, 2))
    check_draws(_fake(Draws(draws, draws.std(axis=0)), method="bootstrap"))
    with pytest.raises(AssertionError):
        check_draws(_fake(Draws(None, np.array([0.5, 0.5])), method="bootstrap"))
    check_none(_fake(NoInference(), method="none"))
    with pytest.raises(AssertionError):
        check_none(_fake(Analytic(np.array([0.5, 0.5])), method="none"))
