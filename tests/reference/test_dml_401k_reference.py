"""401(k) eligibility and net financial assets: evalkit.dml against the published DoubleML numbers.

Source (src/evalkit/datasets/data/README.md; Chernozhukov et al. 2018, DoubleML
documentation, DoubleML 0.11, 5 folds): random forests PLR 8,923 (se 1,310), IRM ATE
8,185 (se 1,094); LightGBM PLR 8,882 (se 1,360). The estimates move with the learners
and the random split by a few hundred, so the band is +-700 for the estimate (about
half a standard error) and +-15% for the standard error. Slow: full 500-tree forests.
"""

from __future__ import annotations

import pytest

import evalkit
from evalkit.dml import IRM, PLR

X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]

# (model, learner, published estimate, published se), DoubleML 0.11 documentation
PUBLISHED = [
    (PLR, "rf", 8923.0, 1310.0),
    (IRM, "rf", 8185.0, 1094.0),
    (PLR, "lgbm", 8882.0, 1360.0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "learner", "estimate", "se"), PUBLISHED)
def test_401k_within_published_band(cls, learner, estimate, se):
    if learner == "lgbm":
        pytest.importorskip("lightgbm")
    df = evalkit.datasets.load("sipp1991")
    res = cls(outcome="net_tfa", treatment="e401", covariates=X, learner=learner).fit(df, seed=42)
    print(f"{cls.__name__} {learner}: {res.estimate():.1f} (se {res.std_error():.1f})")
    assert abs(res.estimate() - estimate) < 700
    assert res.std_error() == pytest.approx(se, rel=0.15)
