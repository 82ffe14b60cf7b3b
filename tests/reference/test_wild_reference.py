"""Wild cluster bootstrap against wildboottest 0.3.2 (values in data/wild_reference.json).

Source of every expected value: ``wildboottest`` 0.3.2 ``WildboottestCL`` (bootstrap_type "11",
the class pyfixest 0.60 calls) on the explicit dummy-variable design, written by
``generate_wild_reference.py``. evalkit absorbs the fixed effects instead (within transform) and
refits the non-nested time effects on each bootstrap sample through its ``demean`` correction.

Convention differences, measured here:
* small-sample factor: wildboottest's ``(N-1)/(N-k)`` counts every dummy in k; evalkit lets the
  caller pass ``ssc``. The factor multiplies sample and bootstrap statistics alike, so p-values
  and intervals do not depend on it; with the same factor the t statistics agree to 1e-10.
* ties: evalkit's p-value counts draws with ``|t*| >= |t|``; wildboottest counts ``|t*| > |t|``.
  Under WCR the all-ones and all-minus-ones sign vectors reproduce ``|t|`` exactly; wildboottest
  drops each such tie or not as floating-point rounding falls, so the enumerated WCR p-value is
  wildboottest's plus 0, 1 or 2 times 1/4096 (measured: +2/4096 for twfe, 0 for ols); WCU has no
  ties and agrees exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalkit.inference.wild import WildBootstrap, draw_weights
from evalkit.numerics.within import WithinTransform

REF = json.loads((Path(__file__).parent / "data" / "wild_reference.json").read_text())
DATA = {k: np.asarray(v) for k, v in REF["data"].items()}
G = 12


def problem(case: str, restricted: bool) -> WildBootstrap:
    n = len(DATA["y"])
    if case == "ols":
        x = np.column_stack([DATA["treat"], DATA["x"], np.ones(n)])
        k, demean, y = 3, None, DATA["y"]
    else:
        wt = WithinTransform((DATA["unit"], DATA["time"]))
        x = wt.demean(np.column_stack([DATA["treat"], DATA["x"]]))
        y, demean = wt.demean(DATA["y"]), wt.demean
        k = 2 + (DATA["unit"].max() + 1) + DATA["time"].max()  # wildboottest's one-hot k
    ssc = G / (G - 1) * (n - 1) / (n - k)
    return WildBootstrap(
        x, y, DATA["cluster"], coef=0, restricted=restricted, demean=demean, ssc=ssc
    )


ENUM = draw_weights("rademacher", G, 9999, np.random.default_rng(0))[0]


@pytest.mark.parametrize("case", ["twfe", "ols"])
@pytest.mark.parametrize("variant", ["wcr", "wcu"])
def test_enumerated_bootstrap_matches_wildboottest(case: str, variant: str) -> None:
    ref = REF["cases"][case]["runs"][variant]
    assert ref["full_enumeration"]
    wb = problem(case, variant == "wcr")
    res = wb.test(v=ENUM)
    assert wb.estimate == pytest.approx(REF["cases"][case]["estimate"], abs=1e-12)
    assert res.statistic == pytest.approx(ref["t_stat"], rel=1e-10)
    t_ref = np.asarray(ref["t_boot"])
    t_ours = wb.t_boot(0.0)
    scale = np.max(np.abs(t_ref))
    np.testing.assert_allclose(t_ours, t_ref, rtol=0, atol=1e-10 * scale)
    ties = int(np.sum(np.isclose(np.abs(t_ours), abs(res.statistic), rtol=1e-9, atol=0)))
    assert ties == (2 if variant == "wcr" else 0)
    # wildboottest drops a tie or not as rounding falls; evalkit counts it
    extra = (res.p_value - ref["p_value"]) * 4096
    assert extra == pytest.approx(round(extra), abs=1e-9)
    assert 0 <= round(extra) <= ties


@pytest.mark.parametrize("case", ["twfe", "ols"])
@pytest.mark.parametrize("variant", ["wcr", "wcu"])
def test_inverted_interval_agrees_with_wildboottest_p_values(case: str, variant: str) -> None:
    """p(r) on a grid equals wildboottest's (tests of y - r*treat); the interval is where p > 5%."""
    ref = REF["cases"][case]["runs"][variant]
    wb = problem(case, variant == "wcr")
    res = wb.test(v=ENUM)
    grid = np.asarray(ref["null_grid"])
    p_ref = np.asarray(ref["p_value_grid"])
    p_ours = np.asarray(wb.p_value(grid))
    extra = p_ours - p_ref
    assert set(np.round(extra * 4096).astype(int)) <= ({0, 1, 2} if variant == "wcr" else {0})
    inside = (grid > res.conf_low) & (grid < res.conf_high)
    np.testing.assert_array_equal(inside, p_ours > 0.05)
    # the bounds are jump points of p(r): just inside accepted, just outside rejected
    eps = 1e-6 * res.std_error_cr1
    for bound, step in ((res.conf_low, eps), (res.conf_high, -eps)):
        assert wb.p_value(bound + step) > 0.05 >= wb.p_value(bound - step)


@pytest.mark.parametrize("variant", ["wcr", "wcu"])
def test_webb_within_monte_carlo_error(variant: str) -> None:
    ref = REF["cases"]["twfe"]["runs"][variant]["webb_p_value_B9999"]
    res = problem("twfe", variant == "wcr").test(
        weights="webb", reps=9999, rng=np.random.default_rng(5)
    )
    # two independent sets of 9,999 draws: sd of the difference sqrt(2 p (1-p) / 9999)
    sd = np.sqrt(2 * ref * (1 - ref) / 9999)
    assert abs(res.p_value - ref) < 4 * sd
