"""Synthetic DiD: equivalences with slow, obviously-correct paths, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from evalkit.did import TWFE
from evalkit.errors import DesignError, EvalkitError
from evalkit.synth import SyntheticDiD
from evalkit.synth.frank_wolfe import frank_wolfe, solve_weights
from evalkit.synth.sdid_block import BlockSettings, block_estimate, fit_block, noise_level
from evalkit.synth.sdid_cohorts import fit_cohorts, placebo_draws


def panel(
    seed: int = 0, n_donors: int = 12, cohorts: dict[int, int] | None = None, n_periods: int = 8
) -> pd.DataFrame:
    """Donors plus treated units by adoption period (cohort -> number of units)."""
    cohorts = {6: 2} if cohorts is None else cohorts
    rng = np.random.default_rng(seed)
    gs = [0] * n_donors + [g for g, n in cohorts.items() for _ in range(n)]
    rows = []
    for i, g in enumerate(gs):
        a, trend = rng.normal(), rng.normal(scale=0.3)
        for t in range(1, n_periods + 1):
            x = rng.normal() + 0.2 * t
            d = int(g > 0 and t >= g)
            y = a + trend * t + 0.7 * x + 1.0 * d + rng.normal(scale=0.4)
            rows.append({"id": i, "t": t, "g": g, "d": d, "x": x, "y": y})
    return pd.DataFrame(rows)


ROLES = dict(outcome="y", unit="id", time="t", treatment="d")


def test_did_variant_equals_twfe_and_the_mean_double_difference():
    df = panel(1, cohorts={6: 3})
    res = SyntheticDiD(**ROLES, variant="did").fit(df, inference="none")
    twfe = TWFE(**ROLES).fit(df, inference="iid")
    assert res.estimate() == pytest.approx(twfe.estimate("d"), abs=1e-10)
    treated = df["g"] > 0
    post = df["t"] >= 6
    m = df.groupby([treated, post])["y"].mean()
    by_hand = (m[True, True] - m[True, False]) - (m[False, True] - m[False, False])
    assert res.estimate() == pytest.approx(by_hand, abs=1e-10)


def test_sdid_formula_with_uniform_weights_is_did():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(9, 7))
    uniform = block_estimate(y, 6, 4, np.full(6, 1 / 6), np.full(4, 1 / 4))
    did = (y[6:, 4:].mean() - y[6:, :4].mean()) - (y[:6, 4:].mean() - y[:6, :4].mean())
    assert uniform == pytest.approx(did, abs=1e-12)


def _slsqp_simplex(a: np.ndarray, b: np.ndarray, zeta: float) -> np.ndarray:
    """The slow reference: SLSQP on the simplex, objective as in the paper."""
    rows, n = a.shape

    def obj(w):
        r = a @ w - b
        return zeta**2 * w @ w + r @ r / rows

    def grad(w):
        return 2 * zeta**2 * w + 2 * a.T @ (a @ w - b) / rows

    out = minimize(
        obj,
        np.full(n, 1 / n),
        jac=grad,
        method="SLSQP",
        bounds=[(0, 1)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(n)}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return out.x


@pytest.mark.parametrize("seed", range(4))
def test_sc_weights_solve_the_simplex_problem_like_slsqp(seed):
    rng = np.random.default_rng(seed)
    n0, t0, t1 = 5, 8, 3
    y = rng.normal(size=(n0 + 1, t0 + t1)).cumsum(axis=1)
    sigma = noise_level(y, n0, t0)
    zeta = 1e-6 * sigma
    a, b = y[:n0, :t0].T, y[n0, :t0]
    ref = _slsqp_simplex(a, b, zeta)

    def objective(w):
        r = a @ w - b
        return zeta**2 * w @ w + r @ r / t0

    # the Frank-Wolfe solver run long (with the sparsifying restart) reaches the reference
    # optimum; plain Frank-Wolfe approaches a face of the simplex at rate O(1/t), hence
    # the 1e-6 tolerance rather than machine precision
    def gap(w):  # Frank-Wolfe duality gap: bounds objective(w) - optimum
        grad = 2 * zeta**2 * w + 2 * a.T @ (a @ w - b) / t0
        return grad @ w - grad.min()

    tight = solve_weights(a, b, zeta, intercept=False, min_decrease=0, max_iter=20_000)
    assert -1e-9 <= objective(tight) - objective(ref) <= gap(tight) + 1e-12
    assert gap(tight) < 1e-3 * max(1.0, objective(ref))
    assert np.abs(tight - ref).max() < 1e-3
    # the estimator is that solver with R synthdid's settings and stopping rule, which
    # stops once an iteration gains less than (1e-5 sigma)^2: it is within the
    # Frank-Wolfe duality gap of the optimum (R's estimate carries the same gap)
    fit = fit_block(y, n0, t0, BlockSettings.default(y, n0, t0, "sc"))
    assert -1e-9 <= objective(fit.omega) - objective(ref) <= gap(fit.omega) + 1e-12
    assert np.all(fit.lam == 0)
    assert fit.estimate == pytest.approx(
        y[n0, t0:].mean() - fit.omega @ y[:n0, t0:].mean(axis=1), abs=1e-12
    )


def _frank_wolfe_literal(a, b, zeta, intercept, x0, min_decrease, max_iter):
    """The slow oracle: R synthdid's sc.weight.fw step by step (A x recomputed each time)."""
    if intercept:
        a = a - a.mean(axis=0)
        b = b - b.mean()
    rows, n = a.shape
    x = np.full(n, 1 / n) if x0 is None else np.array(x0, dtype=float)
    eta = rows * zeta**2
    vals = []
    t = 0
    while t < max_iter and (t < 2 or vals[-2] - vals[-1] > min_decrease**2):
        t += 1
        ax = a @ x
        half_grad = (ax - b) @ a + eta * x
        i = int(np.argmin(half_grad))
        dx = -x.copy()
        dx[i] = 1 - x[i]
        if np.any(dx != 0):
            derr = a[:, i] - ax
            step = -(half_grad @ dx) / (derr @ derr + eta * dx @ dx)
            x = x + min(1.0, max(0.0, step)) * dx
        err = a @ x - b
        vals.append(zeta**2 * x @ x + err @ err / rows)
    return x, t


@pytest.mark.parametrize("intercept", [True, False])
def test_solver_equals_the_literal_r_algorithm(intercept):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 6, 9)).cumsum(axis=1)
    b = rng.normal(size=(4, 6)).cumsum(axis=1)
    x0 = rng.dirichlet(np.ones(9), size=4)
    for md in (1e-1, 1e-3, 1e-6):
        batch, it = frank_wolfe(
            a, b, 0.3, intercept=intercept, x0=x0, min_decrease=md, max_iter=1500
        )
        for k in range(4):
            ref, it_ref = _frank_wolfe_literal(a[k], b[k], 0.3, intercept, x0[k], md, 1500)
            assert it[k] == it_ref
            assert np.abs(batch[k] - ref).max() < 1e-10


def test_staggered_with_one_cohort_equals_block():
    df = panel(2, cohorts={5: 3})
    res = SyntheticDiD(outcome="y", unit="id", time="t", cohort="g").fit(df, inference="none")
    y = df.pivot(index="id", columns="t", values="y").to_numpy()
    block = fit_block(y, 12, 4, BlockSettings.default(y, 12, 4, "sdid"))
    assert res.estimate() == pytest.approx(block.estimate, abs=1e-12)
    assert np.allclose(res.weights.to_numpy(), block.omega)


def test_cohort_estimates_are_block_fits_and_weighted_by_unit_periods():
    df = panel(3, cohorts={4: 2, 7: 3}, n_periods=9)
    est = SyntheticDiD(**ROLES)
    res = est.fit(df, inference="none")
    cohorts = res.aggregate("cohort").tidy().set_index("cohort")["estimate"]
    for g in (4, 7):
        sub = df[df["g"].isin([0, g])]
        assert cohorts[g] == pytest.approx(est.fit(sub, inference="none").estimate(), abs=1e-12)
    w = np.array([2 * (9 - 3), 3 * (9 - 6)], dtype=float)
    assert res.estimate() == pytest.approx(w @ cohorts[[4, 7]].to_numpy() / w.sum(), abs=1e-12)
    assert res.weights.index.names == ["cohort", "id"]


def test_event_time_effects_average_to_the_att_and_vanish_on_time_weights():
    df = panel(4, cohorts={5: 2})
    res = SyntheticDiD(**ROLES).fit(df, inference="none")
    ev = res.aggregate("event_time").tidy()
    assert ev.loc[ev["event_time"] >= 0, "estimate"].mean() == pytest.approx(res.estimate())
    pre = res.paths.loc[res.time_weights.index, "effect"]
    assert res.time_weights @ pre == pytest.approx(0.0, abs=1e-10)
    assert (res.paths["treated"] - res.paths["counterfactual"]).to_numpy() == pytest.approx(
        res.paths["effect"].to_numpy()
    )


def test_covariates_projected_by_definition():
    df = panel(5, cohorts={6: 2})
    res = SyntheticDiD(**ROLES, covariates=("x",)).fit(df, inference="none")
    # slow path: dummy-variable OLS of y on x with unit and time effects, donors only
    donors = df[df["g"] == 0]
    design = pd.get_dummies(donors[["id", "t"]].astype(str), drop_first=True).astype(float)
    design.insert(0, "x", donors["x"])
    design.insert(0, "const", 1.0)
    beta = np.linalg.lstsq(design.to_numpy(), donors["y"].to_numpy(), rcond=None)[0][1]
    assert res.info["covariate_coefficients"]["x"] == pytest.approx(beta, abs=1e-10)
    adjusted = df.assign(y=df["y"] - beta * df["x"])
    plain = SyntheticDiD(**ROLES).fit(adjusted, inference="none")
    assert res.estimate() == pytest.approx(plain.estimate(), abs=1e-10)


def test_jackknife_of_did_variant_equals_explicit_leave_one_out():
    df = panel(6, n_donors=8, cohorts={6: 3})
    est = SyntheticDiD(**ROLES, variant="did")
    res = est.fit(df, inference="jackknife")
    loo = np.array(
        [est.fit(df[df["id"] != i], inference="none").estimate() for i in df["id"].unique()]
    )
    n = len(loo)
    se = np.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())
    assert res.std_error() == pytest.approx(se, abs=1e-12)


def test_placebo_batched_draws_equal_one_fit_per_permutation():
    df = panel(7, n_donors=10, cohorts={6: 1})
    y = df.pivot(index="id", columns="t", values="y").to_numpy()
    fit = fit_cohorts(y, 10, [(5, (10,))], "sdid")
    draws = placebo_draws(y, fit, 4, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    settings = fit.cohorts[0].settings
    for b in range(4):
        perm = rng.permutation(10)
        controls, fake = perm[:9], perm[9:]
        omega0 = fit.cohorts[0].omega[controls]
        one = fit_block(
            y[np.r_[controls, fake]],
            9,
            5,
            settings,
            omega0=omega0 / omega0.sum(),
            lambda0=fit.cohorts[0].lam,
        )
        assert draws.overall[b] == pytest.approx(one.estimate, abs=1e-9)


def test_default_inference_is_placebo_and_seeded():
    df = panel(8, cohorts={6: 1})
    est = SyntheticDiD(**ROLES, variant="did")  # no weights to solve: fast
    a = est.fit(df, reps=8, seed=4)
    b = est.fit(df, reps=8, seed=4)
    c = est.fit(df, reps=8, seed=5)
    assert a.inference.method == "placebo" and "even one" in a.inference.reason
    assert a.std_error() == b.std_error() != c.std_error()
    assert np.isfinite(a.std_error()) and a.std_error() > 0


@pytest.mark.parametrize("method", ["jackknife", "bootstrap"])
def test_resampling_with_one_treated_unit_raises_not_nan(method):
    df = panel(9, cohorts={6: 1})
    with pytest.raises(DesignError, match=r"one treated unit|two treated units") as err:
        SyntheticDiD(**ROLES).fit(df, inference=method, reps=10, seed=1)
    assert "placebo" in err.value.hint


def test_placebo_needs_more_donors_than_treated():
    df = panel(10, n_donors=3, cohorts={6: 4})
    with pytest.raises(DesignError, match="more donors than treated"):
        SyntheticDiD(**ROLES).fit(df, inference="placebo", reps=5)
    res = SyntheticDiD(**ROLES).fit(df, reps=5)  # default falls back to the jackknife
    assert res.inference.method == "jackknife" and np.isfinite(res.std_error())


def test_bootstrap_several_treated_units_is_finite_and_seeded():
    df = panel(11, cohorts={5: 2, 7: 2})
    est = SyntheticDiD(**ROLES, variant="did")
    a = est.fit(df, inference="bootstrap", reps=15, seed=2)
    assert np.isfinite(a.aggregate("cohort").tidy()["std_error"]).all()
    assert a.std_error() == est.fit(df, inference="bootstrap", reps=15, seed=2).std_error()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(variant="synth"), "variant must be one of"),
        (dict(treatment=None), "needs treatment="),
        (dict(max_iter=0), "max_iter"),
        (dict(unit=3), "unit must be a column name"),
    ],
)
def test_bad_options_raise(options, match):
    with pytest.raises(EvalkitError, match=match):
        SyntheticDiD(**{**ROLES, **options})


def test_bad_data_names_the_problem():
    df = panel(12).drop(index=5)
    with pytest.raises(EvalkitError, match="unbalanced"):
        SyntheticDiD(**ROLES).fit(df, inference="none")
    with pytest.raises(EvalkitError, match="jackknife"):
        SyntheticDiD(**ROLES).fit(panel(12), inference="cluster")


def test_result_plots_and_json():
    import json

    import matplotlib.pyplot as plt

    df = panel(13, cohorts={5: 2, 7: 2})
    res = SyntheticDiD(**ROLES).fit(df, inference="jackknife")
    for kind in ("trajectory", "weights", "event_time"):
        assert res.plot(kind=kind).has_data()
    assert res.plot(kind="trajectory", cohort=7).has_data()
    with pytest.raises(DesignError, match="no cohort"):
        res.plot(cohort=99)
    plt.close("all")
    payload = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert payload["extras"]["weights"]["values"] and payload["extras"]["time_weights"]["values"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(res.synthetic) == 2 * 8
