"""Double ML of the integration index on one country's extract: the study's design per country.

Each country runs the study on its own extract (20-40 municipalities), so
``integration_plr.*`` is fitted per country and pooled. With 3 folds and no measure of the
municipalities' unexplained NEET level the per-country estimates were unstable (I^2 91%
for standard needs on the default data, although the planted effect is the same in every
country): the fold split moved an estimate by as much as its standard error, and the
municipalities' deviation ``u_m`` (which lowers exits where NEET is unexpectedly common)
was left in the residuals of 20-40 clusters. The study now uses 10 folds and the derived
column ``entry_rate``. Fast: the derived column is the municipality's entry rate. Slow: a
coverage simulation per country and need with the study's options.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

STUDY = Path(__file__).resolve().parents[2] / "studies" / "service_integration"
COUNTRIES = ("Norway", "Sweden", "Denmark")


def _design() -> tuple[dict, dict]:
    raw = tomllib.loads((STUDY / "study.toml").read_text())
    (plr,) = [a for a in raw["analysis"] if a["id"] == "integration_plr"]
    return raw["columns"], plr["options"]


def _with_columns(frame, columns: dict):
    """The study's derived columns, computed in DuckDB as the study does."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("rows", frame)
        items = ", ".join(f'{expr} AS "{name}"' for name, expr in columns.items())
        return con.sql(f"SELECT *, {items} FROM rows").df()
    finally:
        con.close()


def test_entry_rate_is_the_municipalitys_rate_of_entry_into_neet() -> None:
    from evalkit.simulate.integration.youth import integration_youth

    columns, options = _design()
    assert {"entry_rate", "country_sweden", "country_denmark"} <= set(options["covariates"])
    assert options["n_folds"] >= 10
    data = integration_youth(seed=5, n_persons=2000).data
    derived = _with_columns(data, columns)
    rate = data[data["neet_prev"] == 0].groupby("municipality", observed=True)["neet"].mean()
    expected = derived["municipality"].astype(str).map(rate.rename(index=str))
    np.testing.assert_allclose(derived["entry_rate"], expected, rtol=1e-12)
    assert set(derived.loc[derived["country"] == "Sweden", "country_sweden"]) == {1}
    assert set(derived.loc[derived["country"] != "Denmark", "country_denmark"]) == {0}


@pytest.mark.slow
def test_plr_per_country_covers_the_truth_and_pools_without_spurious_heterogeneity() -> None:
    """8 simulated draws x 3 countries x 2 needs, the study's PLR options (about 4 min)."""
    import warnings

    from evalkit.dml import PLR
    from evalkit.pool.meta import meta_analysis
    from evalkit.simulate.integration.youth import integration_youth

    columns, options = _design()
    covered, total, rejected, tests = 0, 0, 0, 0
    for seed in range(1, 9):
        sim = integration_youth(seed=seed, n_persons=40_000)
        rows = _with_columns(sim.data, columns)
        rows = rows[rows["neet_prev"] == 1]
        for high_need, group in ((1, "at_risk_complex"), (0, "at_risk_standard")):
            truth = sim.truth_terms[("exit", "integration", group)]
            est, se = [], []
            for country in COUNTRIES:
                part = rows[(rows["country"] == country) & (rows["high_need"] == high_need)]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = PLR(**options).fit(part, seed=1, inference="cluster")
                row = fit.tidy().iloc[0]
                est.append(row["estimate"])
                se.append(row["std_error"])
                covered += int(row["conf_low"] <= truth <= row["conf_high"])
                total += 1
            tests += 1
            rejected += int(meta_analysis(est, se).q_p_value < 0.05)
    print(f"covered {covered} of {total}; Q rejects homogeneity in {rejected} of {tests}")
    assert covered / total >= 0.8, (covered, total)
    assert rejected / tests <= 0.25, (rejected, tests)
