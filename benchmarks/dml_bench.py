"""Double machine learning benchmark: evalkit.dml against DoubleML used directly (issue #11).

PLR and IRM of 401(k) eligibility (``e401``) on net financial assets (``net_tfa``) with
the nine covariates of the DoubleML example (sipp1991, 9,915 households), with random
forests and LightGBM. DoubleML is given the same seeded learners and the same folds
(``evalkit.dml.fold_splits``), so the coefficients must agree to 1e-12; the ratio shows
evalkit's overhead (validation, diagnostics, result). A second part fits PLR with
``n_rep=4`` repetitions serially and with ``jobs=2`` (evalkit.parallel workers).

Usage (from the repository root; lightgbm is the optional extra ``evalkit[lgbm]``)::

    PYTHONPATH=src /work/venv/bin/python benchmarks/dml_bench.py --quick
    PYTHONPATH=src /work/venv/bin/python benchmarks/dml_bench.py \\
        --markdown benchmarks/results/dml.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Contender, format_table, machine_info, package_version, run

X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]
SEED = 42
TREES = int(os.environ.get("DML_BENCH_TREES", "500"))
N_REP = 4


def _learner(name: str, kind: str) -> Any:
    from evalkit.dml.learners import make_preset

    est = make_preset(name, kind)
    if name in ("rf", "lgbm"):
        est.set_params(n_estimators=TREES)
    return est


def _evalkit(df: Any, model: str, learner: str, n_rep: int = 1, jobs: int = 1) -> dict[str, Any]:
    from evalkit.dml import IRM, PLR

    nuis = ("ml_l", "ml_m") if model == "PLR" else ("ml_g", "ml_m")
    learners = {
        nuis[0]: _learner(learner, "regressor"),
        "ml_m": _learner(learner, "classifier"),
    }
    cls = PLR if model == "PLR" else IRM
    est = cls(
        outcome="net_tfa", treatment="e401", covariates=X, learners=learners, n_rep=n_rep, jobs=jobs
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.fit(df, seed=SEED)
    return {"coef": res.estimate(), "se": res.std_error()}


def _doubleml(df: Any, model: str, learner: str) -> dict[str, Any]:
    import doubleml

    from evalkit.dml import fold_splits, seeded

    data = doubleml.DoubleMLData(df, y_col="net_tfa", d_cols="e401", x_cols=X)
    reg = seeded(_learner(learner, "regressor"), SEED)
    clf = seeded(_learner(learner, "classifier"), SEED)
    if model == "PLR":
        obj = doubleml.DoubleMLPLR(data, ml_l=reg, ml_m=clf, draw_sample_splitting=False)
    else:
        obj = doubleml.DoubleMLIRM(data, ml_g=reg, ml_m=clf, draw_sample_splitting=False)
    smpls, _ = fold_splits(len(df), 5, 1, SEED)
    obj.set_sample_splitting(smpls)
    obj.fit()
    return {"coef": float(obj.coef[0]), "se": float(obj.se[0])}


# module-level fit functions for the harness's child processes
def fit_evalkit_plr_rf(df: Any) -> dict[str, Any]:
    return _evalkit(df, "PLR", "rf")


def fit_doubleml_plr_rf(df: Any) -> dict[str, Any]:
    return _doubleml(df, "PLR", "rf")


def fit_evalkit_irm_rf(df: Any) -> dict[str, Any]:
    return _evalkit(df, "IRM", "rf")


def fit_doubleml_irm_rf(df: Any) -> dict[str, Any]:
    return _doubleml(df, "IRM", "rf")


def fit_evalkit_plr_lgbm(df: Any) -> dict[str, Any]:
    return _evalkit(df, "PLR", "lgbm")


def fit_doubleml_plr_lgbm(df: Any) -> dict[str, Any]:
    return _doubleml(df, "PLR", "lgbm")


def fit_evalkit_irm_lgbm(df: Any) -> dict[str, Any]:
    return _evalkit(df, "IRM", "lgbm")


def fit_doubleml_irm_lgbm(df: Any) -> dict[str, Any]:
    return _doubleml(df, "IRM", "lgbm")


def fit_evalkit_reps_serial(df: Any) -> dict[str, Any]:
    return _evalkit(df, "PLR", "rf", n_rep=N_REP, jobs=1)


def fit_evalkit_reps_jobs2(df: Any) -> dict[str, Any]:
    return _evalkit(df, "PLR", "rf", n_rep=N_REP, jobs=2)


def _pair(model: str, learner: str) -> list[Contender]:
    key = f"{model.lower()}_{learner}"
    return [
        Contender(
            f"evalkit {model} {learner}",
            f"fit_evalkit_{key}",
            imports=("evalkit.dml", "doubleml", "sklearn.ensemble"),
            package="evalkit",
            label=f'dml.{model}(learner="{learner}").fit(df, seed={SEED})',
        ),
        Contender(
            f"DoubleML {model} {learner}",
            f"fit_doubleml_{key}",
            imports=("evalkit.dml", "doubleml", "sklearn.ensemble"),
            package="doubleml",
            label=f"DoubleML{model}(same seeded learners) + set_sample_splitting(same folds)",
            rtol=1e-12,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Command line: run each pair of contenders and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=1, help="fits per contender (best of N)")
    p.add_argument("--quick", action="store_true", help="100 trees instead of 500")
    p.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    p.add_argument(
        "--reps-only",
        action="store_true",
        help="only the n_rep part (serial against two workers; with --repeat 2 or more the "
        "best jobs=2 fit reuses the workers the first one started)",
    )
    args = p.parse_args(argv)
    if args.quick:
        os.environ["DML_BENCH_TREES"] = "100"
    trees = os.environ.get("DML_BENCH_TREES", "500")
    try:
        import lightgbm  # noqa: F401

        learners = ["rf", "lgbm"]
    except ImportError:
        learners = ["rf"]
    import evalkit

    tables, code = [], 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dml_bench_") as tmp:
        data = Path(tmp) / "sipp1991.parquet"
        evalkit.datasets.load("sipp1991").to_parquet(data)
        for learner in [] if args.reps_only else learners:
            for model in ("PLR", "IRM"):
                pair = _pair(model, learner)
                results, c = run(
                    __file__, pair, data, repeat=args.repeat, reference=pair[0].name, rtol=1e-12
                )
                code = max(code, c)
                tables.append(format_table(results, reference=pair[0].name))
                print(tables[-1])
        reps = [
            Contender(
                f"evalkit PLR rf n_rep={N_REP} serial",
                "fit_evalkit_reps_serial",
                imports=("evalkit.dml", "doubleml", "sklearn.ensemble"),
                package="evalkit",
                label=f'dml.PLR(learner="rf", n_rep={N_REP})',
            ),
            Contender(
                f"evalkit PLR rf n_rep={N_REP} jobs=2",
                "fit_evalkit_reps_jobs2",
                imports=("evalkit.dml", "doubleml", "sklearn.ensemble"),
                package="evalkit",
                label=f'dml.PLR(learner="rf", n_rep={N_REP}, jobs=2)',
                rtol=1e-12,
            ),
        ]
        results, c = run(__file__, reps, data, repeat=args.repeat, reference=reps[0].name)
        code = max(code, c)
        tables.append(format_table(results, reference=reps[0].name))
        print(tables[-1])
    wall = time.perf_counter() - started
    if args.markdown:
        m = machine_info()
        versions = ", ".join(
            f"{pkg} {package_version(pkg)}"
            for pkg in ("evalkit", "doubleml", "scikit-learn", "lightgbm", "numpy")
        )
        body = "\n\n".join(tables)
        args.markdown.write_text(
            f"""# Double machine learning benchmark

Run on {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")} with
`python benchmarks/dml_bench.py {" ".join(sys.argv[1:])}` ({wall:.0f} s in all).

- Machine: {m["cpu"]}, {m["cores"]} cores (shared with other jobs), {m["memory"]} RAM,
  {m["os"]}, Python {m["python"]}.
- Packages: {versions}.
- Data: sipp1991 (401(k), 9,915 households), outcome net_tfa, treatment e401, nine
  covariates; 5 folds, seed {SEED}; forests and boosting with {trees} trees.
- Each table is one model and learner: evalkit and DoubleML used directly with the same
  seeded learners and folds (the coefficients must agree to 1e-12). Ratios are
  contender / first row (above 1: the first row is faster). The last table fits
  n_rep={N_REP} repetitions serially and on two evalkit.parallel workers.

{body}
""",
            encoding="utf-8",
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
