"""DML cross-fitting by cluster with every treated unit in one cluster (one treated city)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.dml import DID, IRM
from evalkit.errors import DesignError


def _cities(n_per_city=40, n_cities=6, treated_cities=(0,), seed=0):
    """Persons in cities, two periods; the treated group is whole cities."""
    rng = np.random.default_rng(seed)
    n = n_per_city * n_cities
    city = np.repeat(np.arange(n_cities), n_per_city)
    x = rng.normal(size=n)
    d = np.isin(city, treated_cities).astype(int)
    rows = []
    for t in (0, 1):
        y = x + 0.3 * t + 0.5 * d * t + rng.normal(size=n)
        rows.append(
            pd.DataFrame({"id": np.arange(n), "t": t, "city": city, "x": x, "d": d, "y": y})
        )
    return pd.concat(rows, ignore_index=True)


ROLES = dict(outcome="y", treatment="d", time="t", unit="id", covariates=["x"], n_folds=2)


def test_dml_did_clustered_by_the_one_treated_city_raises_an_evalkit_error():
    with pytest.raises(DesignError, match="cross-fitting by cluster 'city' needs treated") as err:
        DID(**ROLES, cluster="city", learner="logit").fit(_cities(), seed=1)
    assert err.value.column == "cluster"
    assert "in 1 cluster" in err.value.message
    assert "finer column" in err.value.hint


def test_the_same_data_fit_when_clustered_by_person():
    res = DID(**ROLES, cluster="id", learner="logit").fit(_cities(), seed=1)
    assert np.isfinite(res.tidy()["estimate"].iloc[0])


def test_two_treated_cities_drawn_into_one_fold_say_so():
    # with 2 folds over 4 cities, some seeds put both treated cities in the same fold
    frame = _cities(n_cities=4, treated_cities=(0, 1))
    raised = fitted = 0
    for seed in range(8):
        try:
            DID(**ROLES, cluster="city", learner="logit").fit(frame, seed=seed)
            fitted += 1
        except DesignError as err:
            assert "put all 2 of their clusters in one fold" in err.message
            assert "another seed" in err.hint
            raised += 1
    assert raised and fitted


def test_irm_treated_in_one_cluster_raises_too():
    frame = _cities()
    frame = frame[frame["t"] == 1]
    with pytest.raises(DesignError, match="needs treated units"):
        IRM(outcome="y", treatment="d", covariates=["x"], n_folds=2, cluster="city",
            learner="logit").fit(frame, seed=1)  # fmt: skip
