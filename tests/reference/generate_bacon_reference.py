"""Generate reference values for evalkit's Goodman-Bacon decomposition.

Run from the repository root with the peers' Python::

    EVALKIT_DATA_DIR=/work/shared/data/reference \
        /work/peers/bin/python tests/reference/generate_bacon_reference.py

It writes ``tests/reference/data/bacon_reference.json``. Nothing in evalkit is used: every number
comes from diff-diff's ``BaconDecomposition`` (weights="exact", Goodman-Bacon 2021, Theorem 1)
and the TWFE coefficient from a dense dummy-variable least-squares fit (numpy ``lstsq``; pyfixest's
import fails in /work/peers today: its matplotlib was built against NumPy 1.x).

Data
----
* mpdta (Callaway & Sant'Anna 2021): lemp on ``post = first.treat > 0 and year >= first.treat``,
  units countyreal, periods year.
* Castle doctrine (Cheng & Hoekstra 2013, JHR), as shipped in the R package bacondecomp 0.1.1
  (MIT licence; ``data/castle.rda``, SHA-256
  3e102de8f64e5fbc602c165144f4f7ed453f0c2a8e106ea5add156df3f88f708). The columns state, year,
  l_homicide and post were read with evalkit's R-data reader and written to
  ``tests/reference/data/castle.csv`` (550 rows, 50 states x 2000-2010, floats to 17 digits).
  bacondecomp's vignette prints for ``bacon(l_homicide ~ post, id_var = "state",
  time_var = "year")``: TWFE 0.0818 (0.0818116169306475 in the package's README notebook);
  by type, Earlier vs Later Treated weight 0.05976, average estimate -0.00554; Later vs Earlier
  Treated 0.03190, 0.07032; Treated vs Untreated 0.90834, 0.08796. Those published numbers are
  kept in the JSON beside diff-diff's.
* A small simulated panel with always-treated units (seed 3): diff-diff folds units treated from
  the first period into the never-treated bucket U (Goodman-Bacon 2021, footnote 11), so its
  ``treated_vs_never`` rows pool never- and always-treated controls. The panel is stored in
  the JSON (``data``) so that the test reads the same numbers.
"""

from __future__ import annotations

import json
import os
import warnings
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from diff_diff import BaconDecomposition

DATA_DIR = Path(os.environ.get("EVALKIT_DATA_DIR", "/work/shared/data/reference"))
HERE = Path(__file__).resolve().parent
OUT_PATH = HERE / "data" / "bacon_reference.json"

PUBLISHED_CASTLE = {
    "source": "R bacondecomp 0.1.1 vignette (bacon.Rmd), castle data; TWFE digits from the "
    "package's README notebook",
    "twfe_estimate": 0.0818116169306475,
    "by_type": {
        "earlier_vs_later": {"weight": 0.05976, "estimate": -0.00554},
        "later_vs_earlier": {"weight": 0.03190, "estimate": 0.07032},
        "treated_vs_never": {"weight": 0.90834, "estimate": 0.08796},
    },
    "rounding": "weights and estimates printed to 5 decimals",
}


def mpdta() -> pd.DataFrame:
    df = pd.read_csv(DATA_DIR / "mpdta.csv")
    df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    return df


def castle() -> pd.DataFrame:
    return pd.read_csv(HERE / "data" / "castle.csv")


def always_treated_panel() -> pd.DataFrame:
    """12 units x 6 periods: 3 never, 2 always treated, cohorts 3 (4 units) and 5 (3 units)."""
    rng = np.random.default_rng(3)
    first = np.array([0] * 3 + [1] * 2 + [3] * 4 + [5] * 3)
    unit = np.repeat(np.arange(first.size), 6)
    time = np.tile(np.arange(1, 7), first.size)
    g = first[unit]
    d = ((g > 0) & (time >= g)).astype(int)
    y = (
        rng.normal(size=first.size)[unit]
        + 0.3 * time
        + d * (1 + 0.4 * (time - g))
        + rng.normal(scale=0.3, size=unit.size)
    )
    return pd.DataFrame({"unit": unit, "time": time, "first": g, "d": d, "y": y})


def first_treat(df: pd.DataFrame, unit: str, time: str, treatment: str) -> pd.Series:
    first = df[df[treatment] > 0].groupby(unit)[time].min()
    return df[unit].map(first).fillna(0)


def decompose(df: pd.DataFrame, outcome: str, unit: str, time: str, treatment: str) -> dict:
    frame = df.assign(_first=first_treat(df, unit, time, treatment))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = BaconDecomposition(weights="exact").fit(
            frame, outcome=outcome, unit=unit, time=time, first_treat="_first"
        )
    dummies = pd.get_dummies(df[[unit, time]].astype(str), drop_first=True, dtype=float)
    design = np.column_stack([df[treatment], np.ones(len(df)), dummies])
    beta = np.linalg.lstsq(design, df[outcome].to_numpy(dtype=float), rcond=None)[0]
    rows = [
        {
            "comparison": c.comparison_type,
            "treated": float(c.treated_group),
            "control": c.control_group
            if isinstance(c.control_group, str)
            else float(c.control_group),
            "estimate": float(c.estimate),
            "weight": float(c.weight),
        }
        for c in res.comparisons
    ]
    return {
        "twfe_diff_diff": float(res.twfe_estimate),
        "twfe_lsdv": float(beta[0]),
        "comparisons": rows,
        "n_always_treated_remapped": int(res.n_always_treated_remapped),
    }


def main() -> None:
    cases = {
        "mpdta": {
            "roles": dict(outcome="lemp", unit="countyreal", time="year", treatment="post"),
            **decompose(mpdta(), "lemp", "countyreal", "year", "post"),
        },
        "castle": {
            "roles": dict(outcome="l_homicide", unit="state", time="year", treatment="post"),
            **decompose(castle(), "l_homicide", "state", "year", "post"),
            "published": PUBLISHED_CASTLE,
        },
        "always_treated": {
            "roles": dict(outcome="y", unit="unit", time="time", treatment="d"),
            "data": always_treated_panel().to_dict(orient="list"),
            **decompose(always_treated_panel(), "y", "unit", "time", "d"),
        },
    }
    payload = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": f"diff-diff {version('diff-diff')} BaconDecomposition(weights='exact'); "
        f"TWFE by dense LSDV (numpy {version('numpy')})",
        "cases": cases,
    }
    OUT_PATH.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT_PATH}")


if __name__ == "__main__":
    main()
