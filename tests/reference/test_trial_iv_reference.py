"""trial.IV2SLS against published 2SLS numbers and against linearmodels called directly.

Published values: Wooldridge, *Introductory Econometrics: A Modern Approach* (5th ed.,
2013), Chapter 15, on the datasets linearmodels documents and ships
(``linearmodels.datasets.mroz`` and ``card``; Mroz 1987 and Card 1995 data as used in
the book), printed to three decimals, so they are compared to within half a unit of
the third decimal. Classical (homoskedastic) standard errors with the N - K divisor,
as the book uses.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evalkit.errors import RowsDroppedWarning
from evalkit.trial import IV2SLS

linearmodels = pytest.importorskip("linearmodels")


def _mroz():
    from linearmodels.datasets import mroz

    return mroz.load()


def test_wooldridge_example_15_1_return_to_education_instrumented_by_fathers_education():
    # Example 15.1: log(wage) = .441 + .059 educ, se (.446) (.035), n = 428 (women in work)
    with pytest.warns(RowsDroppedWarning, match="325 of 753"):
        res = IV2SLS(outcome="lwage", treatment="educ", instrument="fatheduc").fit(
            _mroz(), inference="iid"
        )
    tidy = res.tidy().set_index("term")
    assert res.info["n_obs"] == 428
    assert tidy.loc["educ", "estimate"] == pytest.approx(0.059, abs=5e-4)
    assert tidy.loc["educ", "std_error"] == pytest.approx(0.035, abs=5e-4)
    assert tidy.loc["const", "estimate"] == pytest.approx(0.441, abs=5e-4)
    assert tidy.loc["const", "std_error"] == pytest.approx(0.446, abs=5e-4)


def test_wooldridge_example_15_4_card_proximity_to_college():
    # Example 15.4: educ instrumented by nearc4 with exper, expersq, black, smsa, south,
    # smsa66 and regional dummies reg662-reg669: educ .132 (.055), n = 3,010
    from linearmodels.datasets import card

    covs = ["exper", "expersq", "black", "smsa", "south", "smsa66"] + [
        f"reg66{i}" for i in range(2, 10)
    ]
    res = IV2SLS(outcome="lwage", treatment="educ", instrument="nearc4", covariates=covs).fit(
        card.load(), inference="iid"
    )
    assert res.info["n_obs"] == 3010
    assert res.estimate("educ") == pytest.approx(0.132, abs=5e-4)
    assert res.std_error("educ") == pytest.approx(0.055, abs=5e-4)


@pytest.mark.parametrize("method", ["iid", "hetero", "cluster"])
def test_equals_linearmodels_called_directly(method):
    from linearmodels.iv import IV2SLS as LM

    df = _mroz().dropna(subset=["lwage"]).reset_index(drop=True)
    df["cl"] = df.index % 37
    covs = ["exper", "expersq"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = IV2SLS(
            outcome="lwage", treatment="educ", instrument="motheduc", covariates=covs, cluster="cl"
        ).fit(df, inference=method)
    exog = df[covs].assign(const=1.0)
    kw = {"cov_type": {"iid": "unadjusted", "hetero": "robust", "cluster": "clustered"}[method]}
    if method == "cluster":
        kw["clusters"] = df["cl"]
    direct = LM(df["lwage"], exog, df["educ"], df["motheduc"]).fit(debiased=True, **kw)
    tidy = res.tidy().set_index("term")
    for name in ["educ", *covs, "const"]:
        assert tidy.loc[name, "estimate"] == pytest.approx(direct.params[name], rel=1e-10)
        assert tidy.loc[name, "std_error"] == pytest.approx(direct.std_errors[name], rel=1e-10)
    diag = direct.first_stage.diagnostics
    assert res.info["first_stage_f"] == pytest.approx(diag.loc["educ", "f.stat"], rel=1e-8)
    df_expected = 36 if method == "cluster" else 428 - 4
    crit = tidy.loc["educ", "conf_high"] - tidy.loc["educ", "estimate"]
    from scipy import stats

    assert crit == pytest.approx(
        stats.t.ppf(0.975, df_expected) * direct.std_errors["educ"], rel=1e-10
    )


def test_without_covariates_2sls_is_the_wald_ratio():
    # the obviously correct path: cov(y, z) / cov(d, z)
    rng = np.random.default_rng(0)
    import pandas as pd

    z = rng.integers(0, 2, 500)
    d = ((z + rng.normal(size=500)) > 0.5).astype(float)
    y = 0.7 * d + rng.normal(size=500)
    df = pd.DataFrame({"y": y, "d": d, "z": z})
    res = IV2SLS(outcome="y", treatment="d", instrument="z").fit(df)
    wald = (y[z == 1].mean() - y[z == 0].mean()) / (d[z == 1].mean() - d[z == 0].mean())
    assert res.estimate("d") == pytest.approx(wald, rel=1e-12)
