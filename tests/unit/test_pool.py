"""evalkit pool: meta-analysis by hand, and pooling three tiny runs of one study."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import DataError, DesignError, StudyError
from evalkit.pool import meta_analysis, pool_runs

# ----------------------------------------------------------------- formulas by hand


def test_fixed_and_dersimonian_laird_by_hand() -> None:
    y = np.array([0.12, 0.30, -0.05, 0.22])
    s = np.array([0.05, 0.08, 0.10, 0.06])
    w = 1 / s**2
    mu = (w * y).sum() / w.sum()
    q = (w * (y - mu) ** 2).sum()
    t2 = max(0.0, (q - 3) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (s**2 + t2)
    m = meta_analysis(y, s, level=0.9)
    assert m.fixed.estimate == pytest.approx(mu, rel=1e-12)
    assert m.fixed.std_error == pytest.approx(w.sum() ** -0.5, rel=1e-12)
    assert m.fixed.conf_high - m.fixed.estimate == pytest.approx(1.6448536 * w.sum() ** -0.5)
    assert m.q == pytest.approx(q, rel=1e-12)
    assert m.i2 == pytest.approx(100 * (q - 3) / q, rel=1e-12)
    assert m.h2 == pytest.approx(q / 3)
    dl = m.random["dl"]
    assert dl.tau2 == pytest.approx(t2, rel=1e-12)
    assert dl.estimate == pytest.approx((ws * y).sum() / ws.sum(), rel=1e-12)
    assert dl.std_error == pytest.approx(ws.sum() ** -0.5, rel=1e-12)
    assert sum(dl.weights) == pytest.approx(1.0)


def test_reml_maximises_the_restricted_likelihood() -> None:
    y = np.array([0.12, 0.30, -0.05, 0.22, 0.4])
    s = np.array([0.05, 0.08, 0.10, 0.06, 0.07])

    def restricted_loglik(t: float) -> float:
        w = 1 / (s**2 + t)
        mu = (w * y).sum() / w.sum()
        return -0.5 * (np.log(1 / w).sum() + np.log(w.sum()) + (w * (y - mu) ** 2).sum())

    t = meta_analysis(y, s).random["reml"].tau2
    grid = np.linspace(0, 0.2, 20001)
    best = grid[np.argmax([restricted_loglik(g) for g in grid])]
    assert t == pytest.approx(best, abs=2e-5)


def test_homogeneous_estimates_give_zero_tau2_and_knapp_hartung_uses_t() -> None:
    y, s = [0.10, 0.11, 0.09], [0.05, 0.05, 0.05]
    m = meta_analysis(y, s, knapp_hartung=True)
    assert all(m.random[k].tau2 == 0.0 for k in ("dl", "reml", "pm"))
    assert m.random["reml"].estimate == pytest.approx(m.fixed.estimate)
    assert m.random["reml"].df == 2
    assert m.i2 == 0.0


def test_bad_input() -> None:
    with pytest.raises(DataError, match="at least two"):
        meta_analysis([0.1], [0.1])
    with pytest.raises(DataError, match="positive, finite standard error"):
        meta_analysis([0.1, 0.2], [0.1, float("nan")])
    with pytest.raises(DesignError, match="tau2"):
        meta_analysis([0.1, 0.2], [0.1, 0.1], methods=["ml"])


# ----------------------------------------------------------------- three tiny runs

STUDY = """
[study]
name = "tiny_pool"
seed = 11

[data]
simulator = "bergen_rates"
options = {n_persons = 2500, start = "2019-07", end = "2020-12"}

[roles]
unit = "city"
time = "month"
treatment = "treated"
cluster = "city"

[collapse]
by = ["city", "month", "treated"]
measures = {recipient = "mean"}

[[analysis]]
id = "twfe"
estimator = "did.TWFE"
options = {outcome = "recipient"}
inference = "cr2"

[[analysis]]
id = "twfe_wild"
estimator = "did.TWFE"
options = {outcome = "recipient"}
inference = {method = "wild", reps = 99}
"""


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One study run on three countries' extracts (three simulated data sets)."""
    from evalkit.simulate import bergen_rates
    from evalkit.study import run_study

    root = tmp_path_factory.mktemp("pool")
    study = root / "study"
    study.mkdir()
    (study / "study.toml").write_text(textwrap.dedent(STUDY), encoding="utf-8")
    runs = []
    for i, country in enumerate(["norway", "sweden", "denmark"]):
        extract = bergen_rates(seed=100 + i, n_persons=2500, start="2019-07", end="2020-12")
        path = extract.save(root / f"{country}.parquet")
        out = root / "runs" / country
        run_study(study, out=out, progress=False, data_override=path)
        runs.append(out)
    return study, runs


def test_pool_three_runs(three_runs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, runs = three_runs
    pooled = pool_runs(runs)
    assert [r.label for r in pooled.runs] == ["norway", "sweden", "denmark"]
    assert len({r.design_sha256 for r in pooled.runs}) == 1
    (est,) = [p for p in pooled.estimates if p.analysis == "twfe"]
    assert est.term == "treated" and est.labels == ("norway", "sweden", "denmark")
    rows = [json.loads((r / "results.json").read_text())["analyses"][0]["tidy"][0] for r in runs]
    by_hand = meta_analysis([r["estimate"] for r in rows], [r["std_error"] for r in rows])
    assert est.meta.fixed.estimate == pytest.approx(by_hand.fixed.estimate, rel=1e-12)
    assert est.meta.random["reml"].tau2 == pytest.approx(by_hand.random["reml"].tau2)
    # the wild bootstrap gives no standard error: listed as not pooled, with the reason
    (skip,) = [s for s in pooled.skipped if s["analysis"] == "twfe_wild"]
    assert "test inversion" in skip["reason"]
    files = pooled.write(tmp_path / "pooled")
    names = sorted(p.name for p in files)
    assert names == ["forest_twfe_treated.png", "pooled.json", "pooled.md"]
    saved = json.loads((tmp_path / "pooled" / "pooled.json").read_text())
    assert saved["estimates"][0]["k"] == 3
    assert saved["runs"][0]["folder"] == "norway"


def test_pool_cli_and_refusals(three_runs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    study, runs = three_runs
    cli = CliRunner()
    res = cli.invoke(main, ["pool", *map(str, runs), "--out", str(tmp_path / "p"), "--tau2", "dl"])
    assert res.exit_code == 0, res.output
    assert "twfe" in res.output and (tmp_path / "p" / "pooled.md").exists()
    stale = tmp_path / "p" / "figures" / "forest_old.png"
    stale.write_bytes(b"")
    res = cli.invoke(main, ["pool", *map(str, runs), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "not empty" in res.output
    res = cli.invoke(main, ["pool", *map(str, runs), "--out", str(tmp_path / "p"), "--force"])
    assert res.exit_code == 0 and not stale.exists()
    # the same run twice: one country counted twice
    res = cli.invoke(main, ["pool", str(runs[0]), str(runs[0])])
    assert res.exit_code == 2 and "label" in res.output
    res = cli.invoke(main, ["pool", str(runs[0]), str(runs[0]), "--label", "a", "--label", "b"])
    assert res.exit_code == 2 and "same data" in res.output
    # a different design is refused unless --allow-different
    other = json.loads((runs[1] / "results.json").read_text())
    other["design_sha256"] = "0" * 64
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "results.json").write_text(json.dumps(other))
    res = cli.invoke(main, ["pool", str(runs[0]), str(changed)])
    assert res.exit_code == 2 and "different designs" in res.output
    assert "--allow-different" in res.output
    ok = pool_runs([runs[0], changed], allow_different=True)
    assert ok.designs_differ and ok.notes
    with pytest.raises(StudyError, match=r"no results\.json"):
        pool_runs([runs[0], study])
    with pytest.raises(StudyError, match="two or more runs"):
        pool_runs([runs[0]])
