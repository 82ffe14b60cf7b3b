"""JobExposure on the simulated job exposure matrix over many draws (slow).

Raw survey means by occupation carry sampling error (classical error, worst in small
occupations), which attenuates the slope; the shrunk (empirical Bayes) matrix should undo
that on average, and the intervals (which add the matrix's sampling error) should cover
the planted effect. 20 draws of ``integration_jem`` (600 respondents, 3000 register persons).
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.exposure import JobExposure
from evalkit.simulate import get

COVS = ["age", "female", "low_education"]


@pytest.mark.slow
def test_shrinkage_undoes_attenuation_on_average():
    # raw survey means carry sampling error, which attenuates the slope; averaged over
    # draws the shrunk matrix lands nearer the planted 1.5 than the raw one
    raw, shrunk, covered = [], [], []
    for seed in range(20):
        df = get("integration_jem")(seed=seed, n_survey=600, n_register=3000).data
        for flag, store in ((True, shrunk), (False, raw)):
            res = JobExposure(
                outcome="sickness_days",
                exposure="physical_strain",
                occupation="occupation",
                sample="source",
                covariates=COVS,
                shrink=flag,
                learner="logit",
                n_folds=2,
            ).fit(df, seed=seed)
            store.append(res.estimate())
            if flag:
                t = res.tidy().iloc[0]
                covered.append(t["conf_low"] <= 1.5 <= t["conf_high"])
    assert np.mean(raw) < np.mean(shrunk)
    assert abs(np.mean(shrunk) - 1.5) < abs(np.mean(raw) - 1.5)
    # intervals with the matrix's sampling error: 95% within a 3-sd binomial band (20 draws)
    assert np.mean(covered) >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 20)
