"""evalkit.inference.honest_did: special cases, monotonicity, fast paths and errors."""

from __future__ import annotations

import json
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

import evalkit
from evalkit.did import CallawaySantAnna, EventStudy
from evalkit.errors import DesignError, EvalkitError
from evalkit.inference import EventTimeEstimates, HonestResult, honest_did
from evalkit.inference._relative_magnitudes import rm_confidence_set, rm_identified_set
from evalkit.inference._smoothness import flci, folded_normal_quantile


def small(n_pre=3, n_post=4, seed=3):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_pre + n_post,) * 2)
    sigma = (a @ a.T / (n_pre + n_post) + np.eye(n_pre + n_post)) * 1e-4
    beta = np.concatenate([rng.normal(0, 0.01, n_pre), np.linspace(0.03, 0.1, n_post)])
    return beta, sigma


@pytest.fixture(scope="module")
def mpdta():
    return evalkit.datasets.load("mpdta")


@pytest.fixture(scope="module")
def es_fit(mpdta):
    return EventStudy(outcome="lemp", unit="countyreal", time="year", cohort="first.treat").fit(
        mpdta
    )


# ----------------------------------------------------------------- special cases
def test_smoothness_m0_one_pre_period_is_linear_extrapolation():
    """With one pre period and M = 0 the trend through 0 and -1 is extrapolated."""
    beta, sigma = small(n_pre=1, n_post=2)
    hr = honest_did(
        EventTimeEstimates.from_arrays(beta, sigma, n_pre=1),
        restriction="smoothness",
        bounds=[0.0],
        target=1,
    )
    v = np.array([2.0, 0.0, 1.0])  # theta_hat = beta_2 + 2 beta_{-1} for event time 1
    est, sd = v @ beta, np.sqrt(v @ sigma @ v)
    z = stats.norm.ppf(0.975)
    row = hr.tidy().iloc[0]
    assert row.conf_low == pytest.approx(est - z * sd, abs=1e-12)
    assert row.conf_high == pytest.approx(est + z * sd, abs=1e-12)


def test_smoothness_m0_is_gls_extrapolation_of_the_pre_trend():
    """M = 0, diagonal covariance: centred at beta_1 minus the GLS pre-trend slope."""
    beta = np.array([0.03, 0.018, 0.011, 0.05, 0.06])
    w = np.array([1.0, 2.0, 4.0])  # precisions of the pre periods (relative)
    sigma = np.diag(np.concatenate([1e-4 / w, [1e-4, 1e-4]]))
    t = np.array([-3.0, -2.0, -1.0])
    slope = np.sum(w * t * beta[:3]) / np.sum(w * t * t)  # weighted LS through origin
    var_slope = 1e-4 / np.sum(w * t * t)
    res = flci(beta, sigma, 3, np.array([1.0, 0.0]), 0.0, alpha=0.05)
    assert res.estimate == pytest.approx(beta[3] - slope, abs=1e-12)
    assert res.std_error == pytest.approx(np.sqrt(1e-4 + var_slope), abs=1e-12)


def test_relative_magnitudes_mbar0_one_post_is_the_original_interval():
    """Mbar = 0, one post period, conditional test: the usual two-sided interval."""
    beta, sigma = small(n_pre=2, n_post=1)
    est = EventTimeEstimates.from_arrays(beta, sigma, n_pre=2)
    hr = honest_did(est, bounds=[0.0], method="conditional", grid_points=2001, grid_bounds="R")
    step = 40 * np.sqrt(sigma[2, 2]) / 2000
    row = hr.tidy().iloc[0]
    assert row.conf_low == pytest.approx(hr.original["conf_low"], abs=step)
    assert row.conf_high == pytest.approx(hr.original["conf_high"], abs=step)


def test_relative_magnitudes_identified_set_one_pre_period():
    """One pre period: post changes are at most Mbar |beta_-1| each, so the set for
    tau_t is beta_t +- t Mbar |beta_-1|."""
    beta = np.array([-0.03, 0.05, 0.08])
    for mbar in (0.0, 0.5, 2.0):
        lo, hi = rm_identified_set(beta, 1, np.array([1.0, 0.0]), mbar)
        assert (lo, hi) == pytest.approx((0.05 - 0.03 * mbar, 0.05 + 0.03 * mbar), abs=1e-12)
        lo, hi = rm_identified_set(beta, 1, np.array([0.0, 1.0]), mbar)
        assert (lo, hi) == pytest.approx((0.08 - 0.06 * mbar, 0.08 + 0.06 * mbar), abs=1e-12)
    # a positive bias removes the upper half: tau_1 = beta_1 - delta_1 <= beta_1
    lo, hi = rm_identified_set(beta, 1, np.array([1.0, 0.0]), 1.0, bias="positive")
    assert (lo, hi) == pytest.approx((0.05 - 0.03, 0.05), abs=1e-12)


@pytest.mark.parametrize(
    "shape",
    [
        {"monotone": "increasing"},
        pytest.param({}, marks=pytest.mark.slow),
        pytest.param({"bias": "positive"}, marks=pytest.mark.slow),
        pytest.param({"bias": "negative"}, marks=pytest.mark.slow),
    ],
)
def test_sign_and_monotonicity_sets_approach_their_identified_sets(shape):
    """With little noise the robust set is close to the identified set, which nests.

    (Confidence sets of conditional tests need not nest when moments are added; the
    identified sets do.)
    """
    beta, sigma = small()
    beta[:3] = [-0.02, -0.012, -0.005]  # increasing pre-trend, so monotonicity can hold
    sigma = sigma * 1e-6  # standard errors around 1e-5
    l_vec = np.eye(4)[0]
    step = 0.06 / 600
    ident = rm_identified_set(beta, 3, l_vec, 1.0, **shape)
    lo, hi = rm_confidence_set(
        beta, sigma, 3, l_vec, 1.0, grid_points=601, grid_bounds=(0.0, 0.06), **shape
    )
    assert lo == pytest.approx(ident[0], abs=2 * step + 1e-4)
    assert hi == pytest.approx(ident[1], abs=2 * step + 1e-4)
    plain = rm_identified_set(beta, 3, l_vec, 1.0)
    for shape in ({"bias": "positive"}, {"monotone": "increasing"}):
        ident = rm_identified_set(beta, 3, l_vec, 1.0, **shape)
        assert plain[0] <= ident[0] and ident[1] <= plain[1]


def test_sign_and_monotonicity_options_label_the_result():
    beta, sigma = small()
    est = EventTimeEstimates.from_arrays(beta, sigma, n_pre=3)
    hr = honest_did(
        est, bounds=[1.0], grid_points=50, method="conditional", monotonicity="increasing"
    )
    assert hr.restriction == "relative_magnitude+increasing"
    assert hr.bound_name == "Mbar"


def test_folded_normal_quantile():
    assert folded_normal_quantile(0.95, 0.0) == pytest.approx(stats.norm.ppf(0.975), abs=1e-12)
    q = folded_normal_quantile(0.9, 1.3)
    assert stats.norm.cdf(q - 1.3) - stats.norm.cdf(-q - 1.3) == pytest.approx(0.9, abs=1e-12)


# ------------------------------------------------------- nesting and fast paths
def test_smoothness_intervals_nested_in_m():
    beta, sigma = small()
    hr = honest_did(
        EventTimeEstimates.from_arrays(beta, sigma, n_pre=3),
        restriction="smoothness",
        bounds=[0.0, 0.002, 0.01, 0.03],
    )
    t = hr.tidy()
    assert np.all(np.diff(t.conf_low) <= 1e-10)
    assert np.all(np.diff(t.conf_high) >= -1e-10)


def test_relative_magnitude_intervals_nested_in_mbar(es_fit):
    hr = honest_did(es_fit, bounds=[0.0, 1.0, 2.0], grid_points=200)
    t = hr.tidy()
    assert np.all(np.diff(t.conf_low) <= 0) and np.all(np.diff(t.conf_high) >= 0)
    # every robust set contains the original estimate for these data
    assert np.all(t.conf_low < hr.original["estimate"]) and np.all(
        t.conf_high > hr.original["estimate"]
    )


def test_default_grid_widens_to_cover_the_set():
    """R's grid (+-20 se around zero) cuts off a set far from zero; evalkit's does not."""
    beta, sigma = small(n_pre=2, n_post=1)
    beta[2] = 19 * np.sqrt(sigma[2, 2])  # effect 19 standard errors from zero
    est = EventTimeEstimates.from_arrays(beta, sigma, n_pre=2)
    with pytest.warns(UserWarning, match="reaches the end of the grid"):
        cut = honest_did(est, bounds=[0.5], grid_points=200, grid_bounds="R").tidy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = honest_did(est, bounds=[0.5], grid_points=200).tidy()
    assert cut.conf_high.iloc[0] == pytest.approx(20 * np.sqrt(sigma[2, 2]))
    assert full.conf_high.iloc[0] > cut.conf_high.iloc[0]
    assert full.conf_low.iloc[0] > 0


def test_bisection_scan_equals_full_scan():
    beta, sigma = small()
    l_vec = np.array([1.0, 0.0, 0.0, 0.0])
    fast = rm_confidence_set(beta, sigma, 3, l_vec, 1.5, grid_points=100)
    full = rm_confidence_set(beta, sigma, 3, l_vec, 1.5, grid_points=100, scan="full")
    assert fast == full


def test_linear_programme_path_equals_vertex_enumeration(monkeypatch):
    """Many post periods fall back to one HiGHS LP per test; both paths agree."""
    from evalkit.inference import _arp

    beta, sigma = small()
    l_vec = np.full(4, 0.25)
    a = np.vstack([np.eye(4), -np.eye(4)])
    x = a[:, 1:]
    sig = a @ sigma[3:, 3:] @ a.T
    fast_cv = _arp.least_favourable_cv(x, sig, 0.005, sims=200, seed=1)
    fast = rm_confidence_set(beta, sigma, 3, l_vec, 1.0, hybrid="ARP", grid_points=60)
    monkeypatch.setattr(_arp, "_MAX_VERTEX_SUBSETS", 0)
    assert _arp._dual_vertices(x, np.sqrt(np.diag(sig))) is None
    assert _arp.least_favourable_cv(x, sig, 0.005, sims=200, seed=1) == pytest.approx(
        fast_cv, abs=1e-9
    )
    slow = rm_confidence_set(beta, sigma, 3, l_vec, 1.0, hybrid="ARP", grid_points=60)
    assert slow == fast


@pytest.mark.slow
@pytest.mark.parametrize("hybrid", ["LF", "ARP"])
def test_bisection_scan_equals_full_scan_grid(hybrid):
    beta, sigma = small(seed=11)
    for l_vec in (np.array([1.0, 0, 0, 0]), np.full(4, 0.25)):
        for mbar in (0.0, 0.5, 1.0, 2.0):
            kw = dict(grid_points=300, hybrid=hybrid)
            fast = rm_confidence_set(beta, sigma, 3, l_vec, mbar, **kw)
            assert fast == rm_confidence_set(beta, sigma, 3, l_vec, mbar, scan="full", **kw)


def test_same_seed_same_result_and_inputs_untouched():
    beta, sigma = small()
    b0, s0 = beta.copy(), sigma.copy()
    est = EventTimeEstimates.from_arrays(beta, sigma, n_pre=3)
    a = honest_did(est, bounds=[1.0], grid_points=100, seed=5).tidy()
    b = honest_did(est, bounds=[1.0], grid_points=100, seed=5).tidy()
    assert a.equals(b)
    np.testing.assert_array_equal(beta, b0)
    np.testing.assert_array_equal(sigma, s0)


# -------------------------------------------------------- results and readers
def test_event_study_result_plot_and_json(es_fit):
    hr = honest_did(es_fit, restriction="smoothness", bounds=[0.0, 0.01, 0.02])
    assert isinstance(hr, HonestResult)
    assert hr.target == "effect at event time 0"
    assert hr.original["estimate"] == pytest.approx(es_fit.estimate(event_time=0))
    ax = hr.plot()
    assert ax.get_xlabel() == "M"
    plt.close(ax.figure)
    text = json.dumps(hr.to_dict(), allow_nan=False)
    assert '"restriction": "smoothness"' in text
    assert json.loads(text)["intervals"][0]["conf_low"] == pytest.approx(hr.tidy().conf_low[0])


def test_callaway_santanna_event_time_reads_universal_base(mpdta):
    cs = CallawaySantAnna(
        outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
        base_period="universal",
    ).fit(mpdta)  # fmt: skip
    agg = cs.aggregate("event_time")
    est = EventTimeEstimates.from_result(agg)
    assert est.event_times == (-4, -3, -2, 0, 1, 2, 3)
    assert est.reference == -1
    assert est.beta[3] == pytest.approx(agg.estimate("ATT(e)", event_time=0))
    hr = honest_did(agg, restriction="smoothness", bounds=[0.0], l_vec=[0.25] * 4)
    assert hr.original["estimate"] == pytest.approx(agg.tidy().query("term == 'average'").estimate)


def test_breakdown_is_read_off_the_grid():
    import pandas as pd

    def result(excludes):
        table = pd.DataFrame(
            {
                "bound": [0.0, 0.5, 1.0, 1.5],
                "conf_low": 0.0,
                "conf_high": 1.0,
                "excludes_zero": excludes,
            }
        )
        return HonestResult("smoothness", "FLCI", "t", np.ones(1), 0.95, {}, table)

    assert result([True, True, False, True]).breakdown == 0.5
    assert result([True] * 4).breakdown == 1.5
    assert result([False, True, True, True]).breakdown is None


def test_refine_breakdown_brackets_the_switch():
    beta = np.array([0.004, 0.05, 0.06])  # one pre period: the FLCI is in closed form
    sigma = np.diag([1e-4] * 3) + 2e-5
    est = EventTimeEstimates.from_arrays(beta, sigma, n_pre=1)
    hr = honest_did(est, restriction="smoothness", bounds=[0.0, 0.01, 0.02, 0.04])
    assert hr.breakdown is not None
    found = hr.refine_breakdown(tol=1e-6)
    assert hr.breakdown <= found
    l_vec = np.array([1.0, 0.0])
    assert flci(beta, sigma, 1, l_vec, found, alpha=0.05).interval[0] > 0
    assert flci(beta, sigma, 1, l_vec, found + 2e-6, alpha=0.05).interval[0] <= 0
    with pytest.raises(DesignError, match="beyond the grid"):
        honest_did(est, restriction="smoothness", bounds=[0.0]).refine_breakdown()


# ------------------------------------------------------------------- errors
def test_error_no_pre_periods():
    with pytest.raises(DesignError, match="no pre-periods") as err:
        EventTimeEstimates.from_arrays([0.1, 0.2], np.eye(2), n_pre=0)
    assert "leads" in str(err.value)


def test_error_no_leads_in_an_imputation_result(mpdta):
    from evalkit.did import ImputationDiD

    fit = ImputationDiD(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    with pytest.raises(DesignError, match="there are no pre-periods") as err:
        honest_did(fit.fit(mpdta))
    assert "SunAbraham" in str(err.value)


def test_sun_abraham_result_is_read():
    from evalkit.did import SunAbraham

    df = evalkit.datasets.load("mpdta")
    fit = SunAbraham(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    est = EventTimeEstimates.from_result(fit.fit(df))
    assert est.event_times == (-4, -3, -2, 0, 1, 2, 3) and est.reference == -1


def test_error_no_post_periods():
    with pytest.raises(DesignError, match="no post-periods"):
        EventTimeEstimates.from_arrays([0.1, 0.2], np.eye(2), n_pre=2)


def test_error_missing_vcov(mpdta):
    fit = EventStudy(outcome="lemp", unit="countyreal", time="year", cohort="first.treat").fit(
        mpdta, inference="none"
    )
    with pytest.raises(DesignError, match="no covariance") as err:
        honest_did(fit)
    assert "inference='cluster'" in str(err.value)


def test_error_not_psd():
    sigma = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(DesignError, match="not positive semi-definite"):
        EventTimeEstimates.from_arrays([0.0, 0.1, 0.2], sigma, n_pre=1)


def test_error_reference_not_normalised(mpdta):
    cs = CallawaySantAnna(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    agg = cs.fit(mpdta).aggregate("event_time")
    with pytest.raises(DesignError, match="not normalised") as err:
        honest_did(agg)
    assert "base_period='universal'" in str(err.value)


def test_error_two_reference_periods(mpdta):
    fit = EventStudy(
        outcome="lemp", unit="countyreal", time="year", cohort="first.treat", reference=(-1, -4)
    ).fit(mpdta)
    with pytest.raises(EvalkitError, match="2 reference event times"):
        honest_did(fit)


def test_error_options():
    beta, sigma = small()
    est = EventTimeEstimates.from_arrays(beta, sigma, n_pre=3)
    with pytest.raises(DesignError, match="did you mean 'smoothness'"):
        honest_did(est, restriction="smooth")
    with pytest.raises(DesignError, match="not available"):
        honest_did(est, restriction="smoothness", method="C-LF")
    with pytest.raises(DesignError, match="not a post period"):
        honest_did(est, target=7)
    with pytest.raises(DesignError, match="l_vec must hold 4"):
        honest_did(est, l_vec=[1, 0])
    with pytest.raises(DesignError, match="non-negative"):
        honest_did(est, bounds=[-1])
    with pytest.raises(DesignError, match="not both"):
        honest_did(est, bias_sign="positive", monotonicity="increasing")
    with pytest.raises(DesignError, match="relative_magnitude' only"):
        honest_did(est, restriction="smoothness", bias_sign="positive")
    with pytest.raises(DesignError, match="level must be a number"):
        honest_did(est, level=95)
    with pytest.raises(DesignError, match="bias_sign must be one of"):
        honest_did(est, bias_sign="up")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        honest_did(est, restriction="smoothness", bounds=[0.0])
