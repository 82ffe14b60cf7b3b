"""Test-inversion inference for the regression estimators (TWFE, EventStudy, TripleDiff).

Turns a typed inference spec (``inference.Wild``, ``Permutation``, ``ConleyTaber``,
``FermanPinto``, ``Conformal``) and the regression's data into a
:class:`~evalkit.core.uncertainty.TestInversion`: p-values of no effect and intervals
from inverting the test, with no standard error, computed by
:func:`evalkit.inference.panel.panel_test`. The interval can be recomputed at another
level from what the procedure kept (``Result.tidy(level=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit.core.result import InferenceInfo
from evalkit.core.uncertainty import TestInversion
from evalkit.errors import InferenceNotSupportedError
from evalkit.inference.panel import PanelData, PanelTest, panel_test, wild_tests
from evalkit.inference.wild import WildBootstrap

__all__ = ["TEST_INVERSION_METHODS", "inversion_info", "run_test_inversion", "wild_from_fit"]

#: Methods whose results are p-values and intervals by test inversion.
TEST_INVERSION_METHODS: tuple[str, ...] = (
    "wild",
    "permutation",
    "conley_taber",
    "ferman_pinto",
    "conformal",
)

#: Methods that test only the cluster-level treatment (one coefficient).
TREATMENT_ONLY = ("permutation", "conley_taber", "ferman_pinto", "conformal")


def _options(spec: Any, method: str) -> dict[str, Any]:
    reps = getattr(spec, "reps", None)
    if method == "wild":
        return {
            "reps": reps or int(getattr(spec, "DEFAULT_REPS", 9999)),
            "weights": getattr(spec, "weights", "rademacher"),
            "restricted": getattr(spec, "variant", "wcr") == "wcr",
        }
    if method == "conformal":
        if getattr(spec, "scheme", "moving_block") != "moving_block":
            raise InferenceNotSupportedError(
                "conformal inference with i.i.d. permutations is not implemented",
                hint="use inference.Conformal(scheme='moving_block') (the default)",
                column="inference",
            )
        return {"q": getattr(spec, "q", "mean")}
    return {"reps": reps or 9999}


def run_test_inversion(
    spec: Any,
    *,
    y: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    unit: np.ndarray,
    time: np.ndarray,
    cluster: np.ndarray,
    w: np.ndarray | None,
    rng: np.random.Generator,
    level: float,
    coefs: Sequence[int] | None = None,
    n_rows: int | None = None,
) -> tuple[TestInversion, str, int | None]:
    """Run the spec's test-inversion method for the coefficients ``coefs`` of ``x``.

    Returns the uncertainty, a description for the result's inference, and the number of
    replications (None for methods without).

    ``coefs`` defaults to every column for the wild bootstrap and to the treatment
    (column 0) for the methods that test only a cluster-level treatment; the other rows
    are left empty and the note says why. ``n_rows`` (default: every column) is the
    number of result rows, the first columns of ``x``.
    """
    method = spec.method
    opts = _options(spec, method)
    k = x.shape[1] if n_rows is None else n_rows
    if coefs is None:
        coefs = range(k) if method == "wild" else (0,)
    data = PanelData(y, x, unit, time, cluster, w)
    p = np.full(k, np.nan)
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    results: dict[int, PanelTest]
    if method == "wild":  # one projection and one set of cluster statistics for every coef
        results = wild_tests(data, list(coefs), level=level, rng=rng, **opts)
    else:
        results = {j: panel_test(data, method, level=level, rng=rng, coef=j, **opts) for j in coefs}
    for j, res in results.items():
        p[j], lo[j], hi[j] = res.p_value, res.conf_low, res.conf_high
    first = results[next(iter(results))]
    note = first.description
    skipped = [names[j] for j in range(x.shape[1]) if j not in results]
    if skipped:
        note += f"; {', '.join(skipped)} not tested (the method tests the treatment only)"
    grans = {r.granularity for r in results.values()}
    granularity = grans.pop() if len(grans) == 1 else None

    def invert(new_level: float) -> tuple[np.ndarray, np.ndarray]:
        lo2, hi2 = np.full(k, np.nan), np.full(k, np.nan)
        for j, r in results.items():
            if r.invert is not None:
                lo2[j], hi2[j] = r.invert(new_level)
        return lo2, hi2

    unc = TestInversion(
        p,
        lo,
        hi,
        level,
        method=method,
        granularity=granularity,
        invert=invert,
        note=note,
    )
    reps = None
    details: Any = first.details
    if method == "wild":
        reps = int(details.reps)
    elif method == "permutation":
        reps = int(details.n_assignments)
    elif method in ("conley_taber", "ferman_pinto"):
        reps = int(details.n_draws)
    return unc, note, reps


def wild_from_fit(
    spec: Any,
    *,
    xt: np.ndarray,
    yt: np.ndarray,
    within: Any,
    w: np.ndarray | None,
    cluster: np.ndarray,
    rng: np.random.Generator,
    level: float,
    coefs: Sequence[int],
) -> tuple[TestInversion, str, int]:
    """Wild cluster bootstrap of an absorbed fit with any fixed effects (e.g. TripleDiff).

    ``xt``, ``yt`` are the fit's demeaned (and square-root-weighted) design and outcome;
    ``within`` the fixed-effects projection, refitted on the bootstrap errors.
    """
    opts = _options(spec, "wild")
    sw = np.sqrt(w) if w is not None else np.ones(len(yt))
    k = len(coefs)
    p, lo, hi = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    problems = []
    res = None
    for i, j in enumerate(coefs):
        wb = WildBootstrap(
            xt,
            yt,
            cluster,
            coef=j,
            restricted=opts["restricted"],
            demean=lambda v: within.demean(v / sw) * sw,
        )
        res = wb.test(weights=opts["weights"], reps=opts["reps"], rng=rng, level=level)
        p[i], lo[i], hi[i] = res.p_value, res.conf_low, res.conf_high
        problems.append(wb)
    assert res is not None

    def invert(new_level: float) -> tuple[np.ndarray, np.ndarray]:
        bounds = np.array([wb.interval(new_level) for wb in problems])
        return bounds[:, 0], bounds[:, 1]

    gran = 1.0 / res.reps if res.enumerated else 1.0 / (res.reps + 1)
    unc = TestInversion(
        p, lo, hi, level, method="wild", granularity=gran, invert=invert, note=res.describe()
    )
    return unc, res.describe(), res.reps


def inversion_info(
    method: str, text: str, cluster: str, n_clusters: int, reason: str | None, reps: int | None
) -> InferenceInfo:
    """Return the :class:`~evalkit.core.result.InferenceInfo` of a test-inversion result."""
    return InferenceInfo(
        method,
        text,
        distribution="randomization",
        cluster=cluster,
        n_clusters=n_clusters,
        reason=reason,
        reps=reps,
    )
