"""did.BaconDecomposition against diff-diff and the published castle-doctrine decomposition.

Values in tests/reference/data/bacon_reference.json, written by
tests/reference/generate_bacon_reference.py: every 2x2 estimate and weight from diff-diff 3.13.0's
``BaconDecomposition(weights="exact")``, the TWFE coefficient from a dense dummy-variable
regression, and (castle) the by-type weights and estimates printed in the R bacondecomp 0.1.1
vignette (5 decimals) with the TWFE estimate 0.0818116169306475 from its README notebook.
castle.csv beside the JSON holds state, year, l_homicide and post of bacondecomp's ``castle``
data (Cheng & Hoekstra 2013); the generator's docstring gives its provenance and hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import evalkit
from evalkit.did import BaconDecomposition

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "bacon_reference.json").read_text(encoding="utf-8"))["cases"]


def _mpdta() -> pd.DataFrame:
    df = evalkit.datasets.load("mpdta")
    df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    return df


def _castle() -> pd.DataFrame:
    return pd.read_csv(DATA / "castle.csv")


def _always_treated() -> pd.DataFrame:
    return pd.DataFrame(REFERENCE["always_treated"]["data"])  # the generator's panel (seed 3)


DATASETS = {"mpdta": _mpdta, "castle": _castle, "always_treated": _always_treated}


def _fit(name: str):
    return BaconDecomposition(**REFERENCE[name]["roles"]).fit(DATASETS[name]())


@pytest.mark.parametrize("name", ["mpdta", "castle"])
def test_every_comparison_matches_diff_diff(name):
    ref = REFERENCE[name]
    tidy = _fit(name).tidy()
    assert len(tidy) == len(ref["comparisons"])
    for row in ref["comparisons"]:
        control = "never" if row["control"] == "never_treated" else row["control"]
        match = tidy[
            (tidy["comparison"] == row["comparison"])
            & (tidy["treated"] == row["treated"])
            & (tidy["control"] == control)
        ]
        assert len(match) == 1, row
        # diff-diff 3.13.0, weights="exact"
        assert match["estimate"].iloc[0] == pytest.approx(row["estimate"], abs=1e-12)
        assert match["weight"].iloc[0] == pytest.approx(row["weight"], abs=1e-12)


@pytest.mark.parametrize("name", ["mpdta", "castle", "always_treated"])
def test_twfe_estimate_matches_dummy_regression(name):
    res = _fit(name)
    ref = REFERENCE[name]
    assert res.twfe_estimate == pytest.approx(ref["twfe_lsdv"], abs=1e-12)  # numpy LSDV
    assert res.twfe_estimate == pytest.approx(ref["twfe_diff_diff"], abs=1e-12)  # diff-diff


def test_castle_matches_published_bacondecomp_vignette():
    published = REFERENCE["castle"]["published"]
    res = _fit("castle")
    # R bacondecomp README notebook: TWFE 0.0818116169306475
    assert res.twfe_estimate == pytest.approx(published["twfe_estimate"], abs=1e-12)
    by_type = res.by_type().set_index("comparison")
    assert set(by_type.index) == set(published["by_type"])
    for kind, values in published["by_type"].items():
        # bacondecomp 0.1.1 vignette, printed to 5 decimals
        assert by_type.loc[kind, "weight"] == pytest.approx(values["weight"], abs=5e-6)
        assert by_type.loc[kind, "estimate"] == pytest.approx(values["estimate"], abs=5e-6)
    assert res.forbidden_weight == pytest.approx(0.03190, abs=5e-6)


def test_always_treated_units_pool_with_never_treated_in_diff_diff():
    """diff-diff folds always-treated units into U; evalkit keeps them apart.

    A 2x2 against pooled never- and always-treated controls is the weight-weighted average of
    the two separate 2x2s, and its weight their sum; timing comparisons are unchanged.
    """
    ref = REFERENCE["always_treated"]
    assert ref["n_always_treated_remapped"] == 2
    tidy = _fit("always_treated").tidy()
    assert set(tidy["comparison"]) == {
        "treated_vs_never",
        "treated_vs_always",
        "earlier_vs_later",
        "later_vs_earlier",
    }
    for row in ref["comparisons"]:
        if row["comparison"] == "treated_vs_never":
            part = tidy[
                tidy["comparison"].isin(["treated_vs_never", "treated_vs_always"])
                & (tidy["treated"] == row["treated"])
            ]
            assert len(part) == 2
            weight = part["weight"].sum()
            estimate = (part["weight"] * part["estimate"]).sum() / weight
        else:
            part = tidy[
                (tidy["comparison"] == row["comparison"])
                & (tidy["treated"] == row["treated"])
                & (tidy["control"] == row["control"])
            ]
            assert len(part) == 1
            weight, estimate = part["weight"].iloc[0], part["estimate"].iloc[0]
        assert weight == pytest.approx(row["weight"], abs=1e-12)
        assert estimate == pytest.approx(row["estimate"], abs=1e-12)
