"""did.BaconDecomposition: by-definition 2x2s and weights, TWFE equivalence, errors, plot."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit import EvalkitError
from evalkit.did import TWFE, BaconDecomposition

NEVER, ALWAYS = 0, 1  # first treated period codes in the panels below (periods 1..T)


def panel(first_by_unit: list[int], n_periods: int, seed: int = 0) -> pd.DataFrame:
    """Balanced panel; ``first`` 0 = never treated, 1 = treated in every period."""
    rng = np.random.default_rng(seed)
    first = np.asarray(first_by_unit)
    unit = np.repeat(np.arange(first.size), n_periods)
    time = np.tile(np.arange(1, n_periods + 1), first.size)
    g = first[unit]
    d = ((g > 0) & (time >= g)).astype(int)
    effect = d * (1.0 + 0.5 * (time - g)) * (1 + 0.2 * (g % 3))  # dynamic, cohort-specific
    y = rng.normal(size=first.size)[unit] + rng.normal(size=n_periods)[time - 1] + effect
    y = y + rng.normal(scale=0.5, size=unit.size)
    return pd.DataFrame({"unit": unit, "time": time, "first": g, "d": d, "y": y})


def by_definition(df: pd.DataFrame) -> dict[tuple[str, int, int], tuple[float, float]]:
    """Every 2x2 DiD from group means and its weight from Goodman-Bacon (2021), eq. 10e-g.

    Groups are keyed by first treated period (0 never, 1 always). ``V^D`` is the mean squared
    residual of the treatment on unit and period dummies (dense least squares).
    """
    periods = np.sort(df["time"].unique())
    T = len(periods)
    first = df.groupby("unit")["first"].first()
    share = first.value_counts(normalize=True)  # n_k
    dbar = {g: 0.0 if g == NEVER else (T - (g - 1)) / T for g in share.index}  # D-bar_k
    dummies = pd.get_dummies(df[["unit", "time"]].astype(str), drop_first=True, dtype=float)
    design = np.column_stack([np.ones(len(df)), dummies])
    resid = df["d"] - design @ np.linalg.lstsq(design, df["d"].to_numpy(float), rcond=None)[0]
    vd = float(np.mean(resid**2))

    def mean(g: int, lo: int, hi: int) -> float:  # group g's mean outcome over periods [lo, hi)
        rows = (df["first"] == g) & (df["time"] >= lo) & (df["time"] < hi)
        return float(df.loc[rows, "y"].mean())

    end = T + 1
    out = {}
    timing = sorted(g for g in share.index if g not in (NEVER, ALWAYS))
    for k in timing:
        if NEVER in share:
            est = (mean(k, k, end) - mean(k, 1, k)) - (mean(NEVER, k, end) - mean(NEVER, 1, k))
            n_ku = share[k] / (share[k] + share[NEVER])
            w = (share[k] + share[NEVER]) ** 2 * n_ku * (1 - n_ku) * dbar[k] * (1 - dbar[k])
            out[("treated_vs_never", k, NEVER)] = (est, w / vd)
        for ell in [*timing, *([ALWAYS] if ALWAYS in share else [])]:
            n_kl = share[k] / (share[k] + share[ell])
            if ell != ALWAYS and k < ell:  # k treated, ell not yet treated: periods [1, ell)
                est = (mean(k, k, ell) - mean(k, 1, k)) - (mean(ell, k, ell) - mean(ell, 1, k))
                w = (
                    ((share[k] + share[ell]) * (1 - dbar[ell])) ** 2
                    * n_kl
                    * (1 - n_kl)
                    * (dbar[k] - dbar[ell])
                    / (1 - dbar[ell])
                    * (1 - dbar[k])
                    / (1 - dbar[ell])
                )
                out[("earlier_vs_later", k, ell)] = (est, w / vd)
            elif k > ell:  # k treated, ell already treated: periods [ell, T]
                est = (mean(k, k, end) - mean(k, ell, k)) - (mean(ell, k, end) - mean(ell, ell, k))
                w = (
                    ((share[k] + share[ell]) * dbar[ell]) ** 2
                    * n_kl
                    * (1 - n_kl)
                    * dbar[k]
                    / dbar[ell]
                    * (dbar[ell] - dbar[k])
                    / dbar[ell]
                )
                kind = "treated_vs_always" if ell == ALWAYS else "later_vs_earlier"
                out[(kind, k, ell)] = (est, w / vd)
    return out


def _bacon(df: pd.DataFrame, **options):
    return BaconDecomposition(outcome="y", unit="unit", time="time", treatment="d", **options).fit(
        df
    )


def _key(row) -> tuple[str, int, int]:
    code = {"never": NEVER, "always": ALWAYS}
    return (row.comparison, int(row.treated), code.get(row.control, row.control))


PANELS = {
    "never_and_timing": ([0, 0, 0, 3, 3, 5, 5, 5, 6], 7),
    "with_always_treated": ([0, 0, 1, 1, 1, 3, 3, 4, 6, 6, 6], 6),
    "no_never_treated": ([3, 3, 4, 6, 6, 6, 2], 6),
    "always_no_never": ([1, 1, 3, 3, 5], 6),
}


@pytest.mark.parametrize("name", PANELS)
def test_estimates_and_weights_match_the_paper_formulas(name):
    first, n_periods = PANELS[name]
    df = panel(first, n_periods, seed=len(name))
    expected = by_definition(df)
    res = _bacon(df)
    got = {_key(r): (r.estimate, r.weight) for r in res.tidy().itertuples()}
    assert set(got) == set(expected)
    for key, (est, w) in expected.items():
        assert got[key][0] == pytest.approx(est, abs=1e-10), key
        assert got[key][1] == pytest.approx(w, abs=1e-12), key
    assert sum(w for _, w in expected.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", PANELS)
def test_weighted_sum_equals_twfe_coefficient(name):
    first, n_periods = PANELS[name]
    df = panel(first, n_periods, seed=len(name) + 1)
    res = _bacon(df)
    tidy = res.tidy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twfe = TWFE(outcome="y", treatment="d", unit="unit", time="time").fit(df).estimate("d")
    assert (tidy["weight"] * tidy["estimate"]).sum() == pytest.approx(twfe, abs=1e-10)
    assert res.twfe_estimate == pytest.approx(twfe, abs=1e-10)
    assert tidy["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert (tidy["weight"] > 0).all()


def test_weighted_sum_equals_twfe_on_mpdta():
    df = evalkit.datasets.load("mpdta")
    df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    roles = dict(outcome="lemp", unit="countyreal", time="year")
    res = BaconDecomposition(**roles, treatment="post").fit(df)
    twfe = TWFE(**roles, treatment="post").fit(df).estimate("post")
    tidy = res.tidy()
    assert (tidy["weight"] * tidy["estimate"]).sum() == pytest.approx(twfe, abs=1e-10)
    by_cohort = BaconDecomposition(**roles, cohort="first.treat").fit(df).tidy()
    pd.testing.assert_frame_equal(tidy, by_cohort)


def test_goodman_bacon_figure_2_weights():
    """Goodman-Bacon (2021), Figure 2: T=100, early group treated at t=34, late at t=85, one
    unit each with an untreated unit; published weights 0.365 (early vs untreated), 0.222
    (late vs untreated), 0.278 (early vs late), 0.135 (late vs early)."""
    df = panel([0, 34, 85], 100, seed=2)
    by_type = {_key(r): r.weight for r in _bacon(df).tidy().itertuples()}
    assert by_type[("treated_vs_never", 34, NEVER)] == pytest.approx(0.365, abs=5e-4)
    assert by_type[("treated_vs_never", 85, NEVER)] == pytest.approx(0.222, abs=5e-4)
    assert by_type[("earlier_vs_later", 34, 85)] == pytest.approx(0.278, abs=5e-4)
    assert by_type[("later_vs_earlier", 85, 34)] == pytest.approx(0.135, abs=5e-4)


def test_forbidden_weight_and_by_type():
    df = panel(*PANELS["with_always_treated"])
    res = _bacon(df)
    tidy = res.tidy()
    forbidden = tidy["comparison"].isin(["later_vs_earlier", "treated_vs_always"])
    assert (tidy["forbidden"] == forbidden).all()
    assert res.forbidden_weight == pytest.approx(tidy.loc[forbidden, "weight"].sum())
    assert res.forbidden_weight > 0
    by_type = res.by_type()
    assert by_type["weight"].sum() == pytest.approx(1.0)
    assert (by_type["weight"] * by_type["estimate"]).sum() == pytest.approx(res.twfe_estimate)
    assert by_type.set_index("comparison")["forbidden"].to_dict() == {
        "treated_vs_never": False,
        "earlier_vs_later": False,
        "later_vs_earlier": True,
        "treated_vs_always": True,
    }


def test_no_uncertainty_is_stated_not_silent():
    res = _bacon(panel(*PANELS["never_and_timing"]))
    assert res.inference.method == "none"
    assert "no standard errors" in res.inference.description
    tidy = res.tidy()
    assert tidy[["std_error", "conf_low", "conf_high", "p_value"]].isna().all().all()
    with pytest.raises(EvalkitError, match="no confidence intervals"):
        res.ci()
    with pytest.raises(EvalkitError, match="no confidence intervals"):
        res.tidy(level=0.9)
    assert res.to_dict()["tidy"][0]["std_error"] is None


def test_datetime_time_column_gives_the_same_decomposition():
    df = panel(*PANELS["never_and_timing"])
    monthly = df.assign(time=pd.Timestamp("2020-01-01") + pd.to_timedelta(df["time"] * 31, "D"))
    a = _bacon(df).tidy()
    b = _bacon(monthly).tidy()
    np.testing.assert_allclose(a["estimate"], b["estimate"], atol=1e-12)
    np.testing.assert_allclose(a["weight"], b["weight"], atol=1e-12)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(covariates=["x"]), "covariates"),
        (dict(weights="w"), "weights"),
        (dict(cohort="first"), "exactly one of"),
    ],
)
def test_unsupported_options_raise(options, match):
    with pytest.raises(EvalkitError, match=match):
        BaconDecomposition(outcome="y", unit="unit", time="time", treatment="d", **options)


def test_unbalanced_panel_and_switching_treatment_raise():
    df = panel(*PANELS["never_and_timing"])
    with pytest.raises(EvalkitError, match="unbalanced"):
        _bacon(df.drop(index=[5]))
    off = df.copy()
    off.loc[(off["unit"] == 3) & (off["time"] == 7), "d"] = 0
    with pytest.raises(EvalkitError, match="switches from 1 to 0"):
        _bacon(off)


def test_no_variation_is_not_estimable():
    df = panel([3, 3, 3], 5)
    with pytest.raises(EvalkitError, match="does not vary"):
        _bacon(df)


def test_by_is_refused():
    df = panel(*PANELS["never_and_timing"])
    with pytest.raises(EvalkitError, match="by="):
        BaconDecomposition(outcome="y", unit="unit", time="time", treatment="d").fit(df, by="unit")


def test_plot_draws_one_point_per_comparison():
    res = _bacon(panel(*PANELS["with_always_treated"]))
    ax = res.plot()
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == len(res.tidy())
    assert len(ax.get_legend().get_texts()) == res.by_type().shape[0] + 1  # + TWFE line
    plt.close("all")
