"""Meta-analysis against R metafor on the BCG vaccine trials (dat.bcg, Colditz et al. 1994).

Data: the 13 trials' 2x2 tables (tpos, tneg, cpos, cneg) as in metafor's ``dat.bcg``;
effect size: log risk ratio with variance 1/a - 1/(a+b) + 1/c - 1/(c+d) (metafor
``escalc(measure="RR")``). Expected values (4 decimals, as metafor's tests state them):

- fixed effect, Q, DL and its I^2: metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r
  (``rma(yi, vi, method="FE")`` and ``method="DL"``, checked there against Stata's metan);
- REML tau^2 0.3132: metafor tests/testthat/test_misc_rma_mv.r (``rma.mv(yi, vi,
  random = ~ 1 | trial)``, REML, which is the same model as ``rma(yi, vi)``);
- Paule-Mandel tau^2 0.3181: metafor tests/testthat/test_misc_rma_uni.r gives it for the
  iterated DerSimonian-Laird estimator (``method="DLIT"``), whose fixed point solves the
  same equation Q(tau^2) = k - 1 as Paule-Mandel; the equation itself is checked below.
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.pool import meta_analysis

BCG = np.array(
    [  # tpos, tneg, cpos, cneg (metafor dat.bcg, trials 1-13)
        [4, 119, 11, 128],
        [6, 300, 29, 274],
        [3, 228, 11, 209],
        [62, 13536, 248, 12619],
        [33, 5036, 47, 5761],
        [180, 1361, 372, 1079],
        [8, 2537, 10, 619],
        [505, 87886, 499, 87892],
        [29, 7470, 45, 7232],
        [17, 1699, 65, 1600],
        [186, 50448, 141, 27197],
        [5, 2493, 3, 2338],
        [27, 16886, 29, 17825],
    ],
    dtype=float,
)


def _log_rr() -> tuple[np.ndarray, np.ndarray]:
    a, b, c, d = BCG.T
    return np.log((a / (a + b)) / (c / (c + d))), np.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))


def test_bcg_matches_metafor() -> None:
    yi, sei = _log_rr()
    m = meta_analysis(yi, sei)
    tol = dict(abs=5e-5)  # metafor states 4 decimals
    assert m.fixed.estimate == pytest.approx(-0.4303, **tol)
    assert m.fixed.conf_low == pytest.approx(-0.5097, **tol)
    assert m.fixed.conf_high == pytest.approx(-0.3509, **tol)
    assert m.fixed.statistic == pytest.approx(-10.6247, **tol)
    assert m.q == pytest.approx(152.2330, **tol)
    dl = m.random["dl"]
    assert dl.estimate == pytest.approx(-0.7141, **tol)
    assert dl.conf_low == pytest.approx(-1.0644, **tol)
    assert dl.conf_high == pytest.approx(-0.3638, **tol)
    assert dl.statistic == pytest.approx(-3.9952, **tol)
    assert dl.tau2 == pytest.approx(0.3088, **tol)
    assert dl.i2 == pytest.approx(92.1173, **tol)
    assert m.i2 == pytest.approx(92.1173, **tol)  # (Q - df) / Q equals the DL I^2
    assert m.random["reml"].tau2 == pytest.approx(0.3132, **tol)
    assert m.random["pm"].tau2 == pytest.approx(0.3181, **tol)


def test_paule_mandel_solves_the_generalised_q_equation() -> None:
    yi, sei = _log_rr()
    t = meta_analysis(yi, sei).random["pm"].tau2
    w = 1 / (sei**2 + t)
    mu = w @ yi / w.sum()
    assert w @ (yi - mu) ** 2 == pytest.approx(len(yi) - 1, rel=1e-10)
