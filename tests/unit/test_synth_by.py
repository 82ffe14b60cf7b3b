"""fit(by=...) of one-treated-unit synthetic control: shared placebo runs, differences.

Every subgroup holds every unit (each unit's outcome for that subgroup), so donor ``j`` is
the placebo in every subgroup and the difference of two subgroups' effects has a placebo
distribution of its own: the donor-by-donor differences of the placebo gap paths.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import DataError, DesignError, EvalkitError, InferenceNotSupportedError
from evalkit.synth import AugmentedSyntheticControl, SyntheticControl
from evalkit.synth.placebo import rank_p_value
from evalkit.synth.subgroups import SyntheticControlByResult

N_PRE = 8


def by_panel(
    seed: int = 0,
    n_donors: int = 9,
    n_post: int = 3,
    tau: tuple[float, ...] = (1.0, 1.0),
) -> pd.DataFrame:
    """Units from a two-factor model (the treated unit, the last, is drawn like the donors);
    in subgroup ``g`` every unit has its own outcome path (shared unit effect and factor
    loadings, subgroup noise), and the treated unit gains ``tau[g]`` from period N_PRE."""
    rng = np.random.default_rng(seed)
    n, t = n_donors + 1, N_PRE + n_post
    factors = rng.normal(size=(2, t)).cumsum(axis=1)
    loadings = rng.normal(size=(n, 2))
    level = rng.normal(size=n)
    frames = []
    for name, effect in zip("abcdef", tau, strict=False):
        y = level[:, None] + loadings @ factors + 0.5 * rng.normal(size=(n, t))
        y[-1, N_PRE:] += effect
        frames.append(
            pd.DataFrame(
                {
                    "unit": np.repeat(np.arange(n), t),
                    "year": np.tile(np.arange(2000, 2000 + t), n),
                    "y": y.ravel(),
                    "g": name,
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df["d"] = ((df["unit"] == n - 1) & (df["year"] >= 2000 + N_PRE)).astype(int)
    return df


def _asc(**kw):
    return AugmentedSyntheticControl(
        outcome="y", unit="unit", time="year", treatment="d", **{"penalty": 1.0, **kw}
    )


def _fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded intervals with few donors are expected
        return est.fit(df, **kw)


def _rows(tidy, subgroup):
    return tidy[tidy["subgroup"] == subgroup].reset_index(drop=True)


@pytest.mark.parametrize(
    "est",
    [
        _asc(),
        SyntheticControl(
            outcome="y", unit="unit", time="year", treatment="d", custom_v=[1.0] * N_PRE
        ),
    ],
    ids=["asc", "sc"],
)
def test_each_subgroup_equals_a_separate_fit_on_its_rows(est):
    df = by_panel(tau=(1.0, -0.5))
    before = df.copy()
    res = _fit(est, df, by="g", level=0.8)
    assert isinstance(res, SyntheticControlByResult)
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is untouched
    tidy = res.tidy()
    cols = ["term", "estimate", "p_value", "conf_low", "conf_high", "time"]
    for g in "ab":
        alone = _fit(est, df[df["g"] == g], level=0.8).tidy()
        got = _rows(tidy, g)
        # exact equality: the same fit, not a re-estimate
        pd.testing.assert_frame_equal(got[cols], alone[cols], check_exact=True)
        assert res.fits[g].weights.equals(_fit(est, df[df["g"] == g]).weights)
    diff = _rows(tidy, "a - b")
    assert np.array_equal(
        diff["estimate"].to_numpy(), _rows(tidy, "a")["estimate"] - _rows(tidy, "b")["estimate"]
    )
    assert diff["time"].tolist() == _rows(tidy, "a")["time"].tolist()


def _placebo_by_hand(est, sub: pd.DataFrame, donor: int) -> np.ndarray:
    """Gap path of ``donor`` fitted as if treated, the treated unit left out (public API)."""
    treated = sub.loc[sub["d"] == 1, "unit"].iloc[0]
    fake = sub[sub["unit"] != treated].copy()
    fake["d"] = ((fake["unit"] == donor) & (fake["year"] >= 2000 + N_PRE)).astype(int)
    return _fit(est, fake, inference="none").gaps.to_numpy()


def test_difference_placebo_distribution_is_the_donor_by_donor_difference():
    est = _asc()
    df = by_panel(seed=3, tau=(2.0, 0.0))
    res = _fit(est, df, by="g")
    runs = res.placebos["a - b"]
    a, b = df[df["g"] == "a"], df[df["g"] == "b"]
    treated_gap = res.fits["a"].gaps.to_numpy() - res.fits["b"].gaps.to_numpy()
    hand = [treated_gap]
    for donor in range(9):
        hand.append(_placebo_by_hand(est, a, donor) - _placebo_by_hand(est, b, donor))
    hand_gaps = np.array(hand)
    np.testing.assert_allclose(runs.gaps, hand_gaps, rtol=0, atol=1e-12)
    assert runs.units.tolist() == [9, *range(9)]
    # the p-value of the difference: the treated unit's post/pre RMSPE ratio ranked among
    # the donors' ratios of their difference paths
    ratio = np.sqrt((hand_gaps[:, N_PRE:] ** 2).mean(1)) / np.sqrt(
        (hand_gaps[:, :N_PRE] ** 2).mean(1)
    )
    row = _rows(res.tidy(), "a - b").iloc[0]
    assert row["term"] == "att"
    assert row["p_value"] == rank_p_value(ratio[0], ratio[1:])
    assert row["estimate"] == pytest.approx(hand_gaps[0, N_PRE:].mean(), abs=1e-12)
    pre_rmspe = np.sqrt((hand_gaps[:, :N_PRE] ** 2).mean(1))
    per_period = np.abs(hand_gaps[:, N_PRE:]) / pre_rmspe[:, None]
    expect = [rank_p_value(per_period[0, j], per_period[1:, j]) for j in range(3)]
    assert _rows(res.tidy(), "a - b")["p_value"].iloc[1:].tolist() == expect
    # two subgroups: the equality test is the difference test
    test = res.info["equality_tests"][0]
    assert test["p_value"] == row["p_value"] and test["method"] == "placebo"


def test_p_value_granularity_is_one_over_placebos_plus_one():
    for n_donors in (9, 19):
        res = _fit(_asc(), by_panel(seed=1, n_donors=n_donors), by="g")
        step = 1 / (n_donors + 1)
        assert res.uncertainty.granularity == pytest.approx(step)
        assert res.info["p_value_granularity"]["a - b"] == pytest.approx(step)
        assert f"1/{n_donors + 1}" in res.inference.description
        p = res.tidy()["p_value"].to_numpy()
        np.testing.assert_allclose(p * (n_donors + 1), np.round(p * (n_donors + 1)), atol=1e-9)
        assert p.min() >= step - 1e-12


def test_difference_interval_is_the_set_of_differences_not_rejected():
    est = _asc()
    df = by_panel(seed=5, n_donors=19, tau=(1.5, 0.0))
    level = 0.9
    res = _fit(est, df, by="g", level=level)
    row = _rows(res.tidy(), "a - b").iloc[0]
    low, high = row["conf_low"], row["conf_high"]
    assert np.isfinite([low, high]).all() and low < row["estimate"] < high
    # subtract delta from subgroup a's treated post-period outcomes and test again
    treated_post = (df["g"] == "a") & (df["d"] == 1)
    for delta, inside in [
        (low + 0.01 * (high - low), True),
        (0.5 * (low + high), True),
        (high - 0.01 * (high - low), True),
        (low - 0.05 * (high - low), False),
        (high + 0.05 * (high - low), False),
    ]:
        shifted = df.copy()
        shifted.loc[treated_post, "y"] -= delta
        p = _rows(_fit(est, shifted, by="g", level=level).tidy(), "a - b")["p_value"].iloc[0]
        assert bool(p > 1 - level + 1e-12) == inside, (delta, p)  # rejected: p <= alpha
    # another level is re-inverted from the stored runs, and nests
    wider = _rows(res.tidy(level=0.95), "a - b").iloc[0]
    assert wider["conf_low"] <= low and wider["conf_high"] >= high


def _size(seeds: range, alpha: float) -> tuple[int, int]:
    est = _asc()
    rejected = 0
    for s in seeds:
        df = by_panel(seed=s, n_donors=19, tau=(1.0, 1.0))  # equal effects: the null holds
        p = _rows(_fit(est, df, by="g", inference="placebo").tidy(), "a - b")["p_value"]
        rejected += int(p.iloc[0] <= alpha)
    return rejected, len(seeds)


def test_difference_test_holds_its_size_under_a_true_null_fast():
    # 25 simulated designs with 19 donors (p-values in steps of 1/20); at alpha = 0.1 the
    # expected count is 2.5 and P(Binomial(25, 0.1) >= 8) < 0.003
    rejected, n = _size(range(25), 0.1)
    assert rejected <= 7, f"{rejected}/{n} rejections at the 10% level"


@pytest.mark.slow
def test_difference_test_holds_its_size_under_a_true_null():
    # measured: 44/400 at 10% and 22/400 at 5% (seeds 100-499)
    rejected, n = _size(range(100, 500), 0.1)
    # binomial band: 400 draws at 10% give 40 +/- 3 sd (18) -> at most 58
    assert rejected <= 58, f"{rejected}/{n} rejections at the 10% level"


def test_three_subgroups_give_three_differences_and_a_joint_test():
    res = _fit(_asc(), by_panel(seed=2, tau=(1.0, 0.0, 0.5)), by="g")
    tidy = res.tidy()
    assert set(tidy["subgroup"]) == {"a", "b", "c", "a - b", "a - c", "b - c"}
    assert len(res.info["equality_tests"]) == 4  # att and three periods
    assert all(t["p_value"] >= 0.1 - 1e-12 for t in res.info["equality_tests"])
    np.testing.assert_allclose(
        res.placebos["b - c"].gaps, res.placebos["b"].gaps - res.placebos["c"].gaps
    )


def test_point_estimates_only():
    res = _fit(_asc(), by_panel(), by="g", inference="none")
    tidy = res.tidy()
    assert len(tidy) == 12 and tidy["p_value"].isna().all()
    assert res.inference.kind == "none"


def test_same_seed_same_result():
    est = _asc(penalty=None)  # the penalty cross-validated in every run
    df = by_panel(n_donors=5)
    one = _fit(est, df, by="g", seed=4).tidy()
    two = _fit(est, df, by="g", seed=4).tidy()
    pd.testing.assert_frame_equal(one, two)


@pytest.mark.parametrize("what", ["unit", "year"])
def test_a_subgroup_missing_units_or_periods_is_refused(what):
    df = by_panel()
    lacking = 3 if what == "unit" else 2002
    df = df[~((df["g"] == "b") & (df[what] == lacking))]
    with pytest.raises(DataError, match=f"subgroup 'b' has no rows for .*{lacking}") as err:
        _fit(_asc(), df, by="g")
    assert err.value.column == "g"
    assert "every unit and period" in str(err.value)


def test_a_subgroup_without_the_treated_unit_is_refused_before_fitting():
    df = by_panel()
    df = df[~((df["g"] == "a") & (df["unit"] == 9))]
    with pytest.raises(DataError, match=r"subgroup 'a' has no rows for unit.* 9"):
        _fit(_asc(), df, by="g")


def test_conformal_by_is_refused_with_a_hint():
    est = SyntheticControl(outcome="y", unit="unit", time="year", treatment="d", random_starts=0)
    with pytest.raises(InferenceNotSupportedError, match="placebo") as err:
        _fit(est, by_panel(), by="g", inference="conformal")
    assert err.value.column == "by"


def test_bad_by_column_is_refused():
    with pytest.raises(EvalkitError, match="by column 'gg'"):
        _fit(_asc(), by_panel(), by="gg")


# ---------------------------------------------------------------- synthetic DiD (placebo)
def _sdid_fit(df, **kw):
    from evalkit.synth import SyntheticDiD

    est = SyntheticDiD(outcome="y", unit="unit", time="year", treatment="d", max_iter=500)
    return est.fit(df, seed=3, reps=40, **kw)


def test_sdid_placebo_draws_are_paired_across_subgroups():
    df = by_panel(seed=1, tau=(1.0, 0.0))
    res = _sdid_fit(df, by="g")
    a, b = _sdid_fit(df[df["g"] == "a"]), _sdid_fit(df[df["g"] == "b"])
    tidy = res.tidy()
    for g, alone in (("a", a), ("b", b)):
        row = tidy[tidy["subgroup"] == g].iloc[0]
        assert row["estimate"] == alone.estimate()
        assert row["std_error"] == pytest.approx(alone.std_error(), rel=1e-12)
    # the same seed and donors: subgroup a's and b's draws reassign the same donors, so
    # the difference's placebo draws are the draw-by-draw differences (R's placebo SE)
    diff = a.uncertainty.draws[:, 0] - b.uncertainty.draws[:, 0]
    se = np.sqrt(np.mean((diff - diff.mean()) ** 2))
    row = tidy[tidy["subgroup"] == "a - b"].iloc[0]
    assert row["estimate"] == pytest.approx(a.estimate() - b.estimate(), abs=1e-12)
    assert row["std_error"] == pytest.approx(se, rel=1e-10)
    assert "paired" in res.inference.description
    # not the independent-subgroups figure
    assert abs(se - np.hypot(a.std_error(), b.std_error())) > 1e-3


def test_sdid_subgroups_of_different_units_count_as_independent():
    one = by_panel(seed=1).query("g == 'a'").assign(g="x")
    two = by_panel(seed=2).query("g == 'a'").assign(g="y", unit=lambda d: d["unit"] + 100)
    res = _sdid_fit(pd.concat([one, two], ignore_index=True), by="g")
    tidy = res.tidy()
    se = dict(zip(tidy["subgroup"], tidy["std_error"], strict=True))
    assert "paired" not in res.inference.description
    assert se["x - y"] == pytest.approx(np.hypot(se["x"], se["y"]), rel=1e-10)


def test_pre_fit_cutoff_applies_to_each_run_set_and_the_coarsest_step_is_stated():
    from evalkit.inference import Placebo

    res = _fit(_asc(), by_panel(seed=4, n_donors=19), by="g", inference=Placebo(cutoff=1.0))
    kept = {k: int(r.kept[1:].sum()) for k, r in res.placebos.items()}
    assert res.info["n_placebos"] == kept
    assert min(kept.values()) < 19  # the cutoff bites in this design
    assert res.uncertainty.granularity == pytest.approx(1 / (1 + min(kept.values())))
    # the difference's runs are kept on their own pre-period fit
    diff = res.placebos["a - b"]
    mspe = diff.pre_rmspe**2
    assert diff.kept[1:].tolist() == (mspe[1:] <= mspe[0]).tolist()
    summary = str(res.summary())
    assert "placebo rank statistic" in summary and "chi2" not in summary


@pytest.mark.parametrize("change", ["start", "unit"])
def test_subgroups_treated_differently_are_refused(change):
    df = by_panel()
    in_b = df["g"] == "b"
    if change == "start":  # subgroup b treated a period later
        df.loc[in_b & (df["year"] == 2000 + N_PRE), "d"] = 0
    else:  # subgroup b marks another unit as treated
        df.loc[in_b, "d"] = ((df["unit"] == 0) & (df["year"] >= 2000 + N_PRE)).astype(int)
    what = "treatment start" if change == "start" else "treated unit"
    with pytest.raises(DesignError, match=f"differ in their {what}") as err:
        _fit(_asc(), df, by="g")
    assert err.value.column == "g"


def _sdid_size(seeds: range) -> int:
    """Rejections at 10% of 'no difference' when both subgroups have the same effect."""
    from evalkit.synth import SyntheticDiD

    est = SyntheticDiD(outcome="y", unit="unit", time="year", treatment="d", max_iter=500)
    rejected = 0
    for s in seeds:
        df = by_panel(seed=s, n_donors=14, tau=(1.0, 1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tidy = est.fit(df, by="g", seed=s, reps=50).tidy()
        rejected += int(tidy.loc[tidy["subgroup"] == "a - b", "p_value"].iloc[0] <= 0.1)
    return rejected


# With one treated unit the placebo SE comes from 14 donors (14 distinct placebo draws), so it
# is itself noisy: with about 13 degrees of freedom a normal 10% test rejects about 12% of the
# time (t_13 tail beyond 1.645). Measured on seeds 0-399: paired 53/400 (13.3%); each
# subgroup's own interval around the truth 45/400; treating the subgroups as independent
# (the former behaviour) 15/400, conservative because the subgroups share unit factors.
def test_sdid_paired_difference_size_fast():
    rejected = _sdid_size(range(25))
    assert rejected <= 8, f"{rejected}/25"  # P(Binomial(25, 0.12) >= 9) < 0.005


@pytest.mark.slow
def test_sdid_paired_difference_size():
    rejected = _sdid_size(range(400))
    assert 28 <= rejected <= 68, f"{rejected}/400"  # 12% +/- 3 binomial sd
