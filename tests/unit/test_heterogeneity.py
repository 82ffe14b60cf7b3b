"""Subgroup effects with fit(..., by=column): estimates, differences, equality tests."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit import EvalkitError
from evalkit.did import CallawaySantAnna

CS = CallawaySantAnna(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")


@pytest.fixture(scope="module")
def mpdta():
    df = evalkit.datasets.load("mpdta")
    df["size"] = np.where(df["lpop"] > df["lpop"].median(), "large", "small")
    return df


def _fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(df, **kw)


def test_subgroup_rows_equal_separate_fits_and_disjoint_difference(mpdta):
    res = _fit(CS, mpdta, by="size")
    tidy = res.tidy().set_index("subgroup")
    for g in ("large", "small"):
        alone = _fit(CS, mpdta[mpdta["size"] == g]).aggregate("overall")
        assert tidy.loc[g, "estimate"] == pytest.approx(alone.estimate("ATT"), abs=1e-12)
        assert tidy.loc[g, "std_error"] == pytest.approx(alone.std_error("ATT"), rel=1e-10)
    # no county is in both groups: the difference's variance is the sum of the two
    diff = tidy.loc["large - small"]
    expected = np.hypot(tidy.loc["large", "std_error"], tidy.loc["small", "std_error"])
    assert diff["std_error"] == pytest.approx(expected, rel=1e-10)
    assert diff["estimate"] == pytest.approx(
        tidy.loc["large", "estimate"] - tidy.loc["small", "estimate"], abs=1e-14
    )
    (test,) = res.info["equality_tests"]
    assert test["df"] == 1
    assert test["statistic"] == pytest.approx((diff["estimate"] / diff["std_error"]) ** 2)


def test_shared_units_make_identical_subgroups_indistinguishable(mpdta):
    """Two copies of the same counties: the difference is 0 with standard error 0.

    Ignoring that the subgroups share units would give sqrt(2) times the subgroup SE.
    """
    twice = pd.concat([mpdta.assign(copy="a"), mpdta.assign(copy="b")], ignore_index=True)
    res = _fit(CS, twice, by="copy")
    diff = res.tidy().set_index("subgroup").loc["a - b"]
    assert diff["estimate"] == pytest.approx(0.0, abs=1e-14)
    assert diff["std_error"] == pytest.approx(0.0, abs=1e-10)


def test_partly_shared_clusters_are_correlated(mpdta):
    """Subgroups within the same states: the covariance term is positive, not zero."""
    df = mpdta.copy()
    df["state"] = df["countyreal"] // 1000
    df["half"] = np.where(df["countyreal"] % 2 == 0, "even", "odd")
    est = CS.set_params(cluster="state")
    res = _fit(est, df, by="half")
    v = res.vcov.to_numpy()
    assert v.shape == (3, 3)
    assert v[0, 1] != 0.0
    tidy = res.tidy().set_index("subgroup")
    var = tidy.loc["even", "std_error"] ** 2 + tidy.loc["odd", "std_error"] ** 2 - 2 * v[0, 1]
    assert tidy.loc["even - odd", "std_error"] == pytest.approx(np.sqrt(var), rel=1e-10)


def test_by_errors_name_the_column(mpdta):
    with pytest.raises(EvalkitError, match="sise"):
        _fit(CS, mpdta, by="sise")
    with pytest.raises(EvalkitError, match="single value"):
        _fit(CS, mpdta.assign(one="x"), by="one")
    with pytest.raises(EvalkitError, match="missing"):
        _fit(CS, mpdta.assign(size=mpdta["size"].where(mpdta["year"] > 2003)), by="size")


def test_by_is_reproducible_and_json_safe(mpdta):
    a = _fit(CS, mpdta, by="size", seed=3)
    b = _fit(CS, mpdta, by="size", seed=3)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    import json

    assert json.loads(json.dumps(a.to_dict(), allow_nan=False)) == a.to_dict()


def test_twfe_copies_sharing_clusters_have_zero_difference_se(mpdta):
    from evalkit.did import TWFE

    df = mpdta.assign(post=((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])))
    df["post"] = df["post"].astype(int)
    twice = pd.concat([df.assign(copy="a"), df.assign(copy="b")], ignore_index=True)
    est = TWFE(outcome="lemp", treatment="post", unit="countyreal", time="year")
    for method in ("cluster", "cr2"):
        res = _fit(est, twice, by="copy", inference=method)
        tidy = res.tidy().set_index("subgroup")
        assert tidy.loc["a", "std_error"] == pytest.approx(
            _fit(est, df, inference=method).std_error("post"), rel=1e-12
        )
        assert tidy.loc["a - b", "std_error"] == pytest.approx(0.0, abs=1e-12)


def test_summary_shows_subgroup_counts_and_equality_test(mpdta):
    text = str(_fit(CS, mpdta, by="size").summary())
    assert "Equal across size" in text
    assert "(large)" in text and "chi2(1)" in text


def test_by_refuses_results_without_standard_errors():
    from evalkit.core.heterogeneity import combine_groups
    from evalkit.core.result import InferenceInfo, Result, Scores
    from evalkit.core.uncertainty import TestInversion
    from evalkit.errors import InferenceNotSupportedError

    def fake(p):
        unc = TestInversion(np.array([p]), np.array([-1.0]), np.array([1.0]), 0.95, "permutation")
        return Result(
            "test.Fake",
            pd.DataFrame({"term": ["ATT"], "estimate": [0.1]}),
            InferenceInfo("permutation", "randomization"),
            uncertainty=unc,
            _scores=Scores(np.array(["x"], dtype=object), np.ones((1, 1))),
        )

    with pytest.raises(InferenceNotSupportedError, match="test_inversion"):
        combine_groups("half", [("a", fake(0.1)), ("b", fake(0.2))], 0.95)
