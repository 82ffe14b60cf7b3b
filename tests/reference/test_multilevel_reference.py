"""MixedModel against R lme4 (values collected by generate_multilevel_reference.py).

Source of every expected value: R lme4 fits stored in statsmodels' test suite
(``statsmodels/regression/tests/results/lme_r_results.py``, statsmodels 0.15.0), on the
simulated data sets lme02.csv (random intercepts) and lme08.csv (random intercepts and
slopes, unstructured covariance) copied beside this file. R prints 7 significant digits,
so the tolerances are relative 1e-4 (optimiser differences between lme4 and statsmodels
stay below that on these data).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.multilevel import MixedModel

DATA = Path(__file__).parent / "data" / "multilevel"
REF = json.loads((DATA / "lme4_reference.json").read_text())["models"]


@pytest.mark.parametrize("name", sorted(REF))
def test_mixed_model_matches_lme4(name: str) -> None:
    ref = REF[name]
    df = pd.read_csv(DATA / ref["file"])
    slopes = ("exog_re_1",) if "exog_re_1" in df else ()
    model = MixedModel(
        outcome="endog",
        cluster="groups",
        covariates=("exog_fe_0", "exog_fe_1"),
        random_slopes=slopes,
        reml=ref["reml"],
        intercept=False,  # lme4: endog ~ 0 + exog_fe_0 + exog_fe_1 + (0 + exog_re_0 ... | groups)
    )
    res = model.fit(df, inference="iid")
    tidy = res.tidy()
    np.testing.assert_allclose(tidy["estimate"], ref["coef"], rtol=1e-4)
    np.testing.assert_allclose(res.vcov.to_numpy(), ref["vcov"], rtol=1e-3, atol=1e-8)
    comp = res.info["variance_components"]
    cov_re = np.asarray(ref["cov_re"])
    assert comp["var(groups: Intercept)"] == pytest.approx(cov_re[0, 0], rel=1e-3)
    if slopes:
        assert comp["var(groups: exog_re_1)"] == pytest.approx(cov_re[1, 1], rel=1e-3)
        assert comp["cov(groups: Intercept, exog_re_1)"] == pytest.approx(cov_re[0, 1], rel=1e-3)
    assert comp["var(residual)"] == pytest.approx(ref["scale"], rel=1e-4)
    assert res.info["log_likelihood"] == pytest.approx(ref["loglike"], rel=1e-5)


DIETOX = json.loads((DATA / "lme4_reference.json").read_text())["dietox"]


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_mixed_model_matches_lme4_on_dietox(method: str) -> None:
    # lme4 values as quoted in statsmodels' test_lme.py::test_dietox (see the generator)
    ref = DIETOX[method]
    df = pd.read_csv(DATA / DIETOX["file"])
    res = MixedModel(outcome="Weight", treatment="Time", cluster="Pig", reml=method == "reml").fit(
        df, inference="iid"
    )
    tidy = res.tidy().set_index("term")
    np.testing.assert_allclose(tidy.loc[["Intercept", "Time"], "estimate"], ref["coef"], rtol=1e-5)
    np.testing.assert_allclose(tidy.loc[["Intercept", "Time"], "std_error"], ref["se"], rtol=1e-5)
    comp = res.info["variance_components"]
    assert comp["var(Pig: Intercept)"] == pytest.approx(ref["cov_re"], rel=1e-5)
    assert comp["var(residual)"] == pytest.approx(ref["scale"], rel=1e-5)
    assert res.info["log_likelihood"] == pytest.approx(ref["loglike"], rel=1e-5)
