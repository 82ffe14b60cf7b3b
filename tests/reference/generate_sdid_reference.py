"""Generate peer reference values for synthetic DiD (run with /work/peers/bin/python).

Writes tests/reference/data/sdid_reference.json with, for each value, its source and the
package version:

- Prop 99 (California, 1989): diff-diff's SyntheticDiD estimate, placebo standard error
  (100 draws) and largest unit weights.
- A small simulated block panel (3 treated units; the panel itself is stored so the test
  does not depend on the random generator): diff-diff's estimate and jackknife standard
  error (deterministic: weights fixed).

synthdid 0.10.1 (PyPI) is not used: it fails under the peers' pandas 3 (its
``groupby(...).apply`` expects the grouping column in each group) before estimating.

Usage: /work/peers/bin/python tests/reference/generate_sdid_reference.py
"""

from __future__ import annotations

import json
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
PROP99 = Path("/work/shared/data/reference/california_prop99.csv")


def block_panel() -> pd.DataFrame:
    """20 donors and 3 units treated from 2007, 2001-2010, with a covariate."""
    rng = np.random.default_rng(20261129)
    rows = []
    for i in range(23):
        g = 0 if i < 20 else 2007
        a = rng.normal()
        trend = rng.normal(scale=0.2)
        for t in range(2001, 2011):
            x = rng.normal() + 0.1 * (t - 2001)
            d = int(g > 0 and t >= g)
            y = a + trend * (t - 2001) + 0.8 * x + 1.5 * d + rng.normal(scale=0.5)
            rows.append({"unit": i, "time": t, "cohort": g, "treated": d, "x": x, "y": y})
    return pd.DataFrame(rows)


def main() -> None:
    warnings.simplefilter("ignore")
    from diff_diff import SyntheticDiD

    df = pd.read_csv(PROP99, sep=";")
    out: dict = {"prop99": {}}

    post = sorted(df.loc[df["treated"] == 1, "Year"].unique().tolist())
    df["ever"] = (df["State"] == "California").astype(int)
    res = SyntheticDiD(variance_method="placebo", n_bootstrap=100, seed=1).fit(
        df,
        outcome="PacksPerCapita",
        treatment="ever",
        unit="State",
        time="Year",
        post_periods=post,
    )
    weights = pd.Series(res.unit_weights).sort_values(ascending=False).head(5)
    src_dd = (
        f"diff-diff {version('diff-diff')} "
        "SyntheticDiD(variance_method='placebo', n_bootstrap=100, seed=1)"
    )
    out["prop99"]["diff_diff"] = {
        "source": src_dd,
        "att": float(res.att),
        "se_placebo_100": float(res.se),
        "top_unit_weights": {str(k): float(v) for k, v in weights.items()},
    }

    panel = block_panel()
    out["block"] = {"panel": panel.to_dict(orient="list")}
    post = sorted(panel.loc[panel["treated"] == 1, "time"].unique().tolist())
    panel["ever"] = panel.groupby("unit")["treated"].transform("max")
    res = SyntheticDiD(variance_method="jackknife").fit(
        panel, outcome="y", treatment="ever", unit="unit", time="time", post_periods=post
    )
    out["block"]["diff_diff"] = {
        "source": f"diff-diff {version('diff-diff')} SyntheticDiD(variance_method='jackknife')",
        "att": float(res.att),
        "se_jackknife": float(res.se),
    }
    target = HERE / "data" / "sdid_reference.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out["prop99"].items()}, indent=1))
    print({k: v for k, v in out["block"].items() if k != "panel"})


if __name__ == "__main__":
    main()
