"""Generate tests/reference/data/cs_reference.json: Callaway-Sant'Anna numbers from peers.

evalkit/datasets/data/README.md lists the published mpdta numbers of the did R package for
the doubly robust estimator with never-treated controls. For every other option (not-yet-treated
controls, IPW, outcome regression, anticipation, universal base period, weights,
clustering, repeated cross-sections, unbalanced panels, event-time windows and balancing,
the multiplier bootstrap) this script computes reference numbers with csdid 0.4.3 (a port of
did 2.5.1) and, as a second opinion, diff-diff. Each case in the JSON records its source.

Run from the repository root (needs the peers: ``pip install csdid diff-diff``)::

    python tests/reference/generate_cs_reference.py

The data variants are built by :func:`make_data`, which the tests import, so the tests
and this script always use the same data.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "cs_reference.json"

VARIANTS = {
    "mpdta": "mpdta.csv as published",
    "weighted": "mpdta with weights w = 0.5 + (countyreal mod 7) / 4 (constant within county)",
    "state": "mpdta with state = countyreal // 1000 (the state FIPS code) for clustering",
    "rcs": "mpdta read as repeated cross-sections: every row its own sampling unit (obs_id)",
    "unbalanced": (
        "mpdta without the 2005 row of counties with countyreal mod 13 == 0 and the 2007 row "
        "of counties with countyreal mod 17 == 0"
    ),
}


def load_mpdta() -> pd.DataFrame:
    """Read mpdta from evalkit.datasets when importable, else the packaged file itself."""
    try:
        from evalkit.datasets import load

        return load("mpdta")
    except (ImportError, AttributeError):
        here = Path(__file__).resolve().parents[2] / "src/evalkit/datasets/data"
        return pd.read_csv(Path(os.environ.get("EVALKIT_DATA_DIR", here)) / "mpdta.csv")


def make_data(variant: str, base: pd.DataFrame | None = None) -> pd.DataFrame:
    """Build one data variant (see ``VARIANTS``) from mpdta."""
    df = (load_mpdta() if base is None else base).copy()
    df["first.treat"] = df["first.treat"].astype(float)
    cid = df["countyreal"].round().astype(int)
    if variant == "mpdta":
        return df
    if variant == "weighted":
        df["w"] = 0.5 + (cid % 7) / 4.0
        return df
    if variant == "state":
        df["state"] = cid // 1000
        return df
    if variant == "rcs":
        df["obs_id"] = np.arange(1, len(df) + 1)
        return df
    if variant == "unbalanced":
        drop = ((cid % 13 == 0) & (df["year"] == 2005)) | ((cid % 17 == 0) & (df["year"] == 2007))
        return df.loc[~drop].reset_index(drop=True)
    raise ValueError(variant)


# evalkit options of each case; the csdid call is derived from them in _csdid()
CASES: dict[str, dict[str, Any]] = {
    "dr_never": {"data": "mpdta", "options": {}},
    "dr_never_lpop": {"data": "mpdta", "options": {"covariates": ["lpop"]}},
    "dr_notyet": {"data": "mpdta", "options": {"control_group": "not_yet_treated"}},
    "dr_notyet_lpop": {
        "data": "mpdta",
        "options": {"control_group": "not_yet_treated", "covariates": ["lpop"]},
    },
    "ipw_never_lpop": {"data": "mpdta", "options": {"method": "ipw", "covariates": ["lpop"]}},
    "reg_never_lpop": {"data": "mpdta", "options": {"method": "reg", "covariates": ["lpop"]}},
    "ipw_notyet_lpop": {
        "data": "mpdta",
        "options": {"method": "ipw", "covariates": ["lpop"], "control_group": "not_yet_treated"},
    },
    "reg_notyet": {
        "data": "mpdta",
        "options": {"method": "reg", "control_group": "not_yet_treated"},
    },
    "dr_never_lpop_antic1": {
        "data": "mpdta",
        "options": {"covariates": ["lpop"], "anticipation": 1},
    },
    "dr_notyet_antic1": {
        "data": "mpdta",
        "options": {"control_group": "not_yet_treated", "anticipation": 1},
    },
    "dr_never_lpop_universal": {
        "data": "mpdta",
        "options": {"covariates": ["lpop"], "base_period": "universal"},
    },
    "dr_notyet_universal": {
        "data": "mpdta",
        "options": {"control_group": "not_yet_treated", "base_period": "universal"},
    },
    "dr_never_lpop_weights": {
        "data": "weighted",
        "options": {"covariates": ["lpop"], "weights": "w"},
    },
    "dr_never_lpop_cluster_state": {
        "data": "state",
        "options": {"covariates": ["lpop"], "cluster": "state"},
    },
    "rc_dr_never_lpop": {"data": "rcs", "options": {"covariates": ["lpop"], "panel": False}},
    "rc_ipw_notyet_lpop": {
        "data": "rcs",
        "options": {
            "covariates": ["lpop"],
            "panel": False,
            "method": "ipw",
            "control_group": "not_yet_treated",
        },
    },
    "rc_reg_never": {"data": "rcs", "options": {"panel": False, "method": "reg"}},
    "unbalanced_dropped": {"data": "unbalanced", "options": {"covariates": ["lpop"]}},
    "unbalanced_allowed": {
        "data": "unbalanced",
        "options": {"covariates": ["lpop"], "allow_unbalanced": True},
    },
}

EVENT_WINDOWS: dict[str, dict[str, Any]] = {
    "all": {},
    "window_m2_p2": {"min_e": -2, "max_e": 2},
    "balance_1": {"balance_e": 1},
}

BOOT_REPS = 999
BOOT_SEED = 20240531


def _csdid_model(case: dict[str, Any], bootstrap: bool = False) -> Any:
    from csdid.att_gt import ATTgt

    opts = case["options"]
    df = make_data(case["data"])
    covs = opts.get("covariates", [])
    kwargs: dict[str, Any] = {
        "yname": "lemp",
        "gname": "first.treat",
        "idname": "countyreal" if opts.get("panel", True) else "obs_id",
        "tname": "year",
        "data": df,
        "control_group": (
            "notyettreated" if opts.get("control_group") == "not_yet_treated" else "nevertreated"
        ),
        "xformla": "lemp ~ " + (" + ".join(covs) if covs else "1"),
        "panel": opts.get("panel", True),
        "allow_unbalanced_panel": opts.get("allow_unbalanced", False),
        "anticipation": opts.get("anticipation", 0),
        "weights_name": opts.get("weights"),
        "clustervar": opts.get("cluster"),
        "biters": BOOT_REPS,
    }
    model = ATTgt(**kwargs)
    return model.fit(
        est_method=opts.get("method", "dr"),
        base_period=opts.get("base_period", "varying"),
        bstrap=bootstrap,
    )


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _att_gt(model: Any) -> list[dict[str, Any]]:
    r = model.results
    return [
        {"cohort": int(g), "time": int(t), "estimate": _f(a), "std_error": _f(s)}
        for g, t, a, s in zip(r["group"], r["year"], r["att"], r["se"], strict=True)
    ]


def _aggte(model: Any, typec: str, **kw: Any) -> dict[str, Any]:
    with contextlib.redirect_stdout(io.StringIO()):
        model.aggte(typec=typec, bstrap=False, **kw)
    a = model.atte
    out: dict[str, Any] = {
        "average": {"estimate": _f(a["overall_att"]), "std_error": _f(a["overall_se"])}
    }
    if typec != "simple":
        out["rows"] = [
            {"key": float(k), "estimate": _f(e), "std_error": _f(s)}
            for k, e, s in zip(a["egt"], a["att_egt"], a["se_egt"], strict=True)
        ]
    return out


def _aggregations(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "overall": _aggte(model, "simple"),
        "cohort": _aggte(model, "group"),
        "calendar": _aggte(model, "calendar"),
    }
    for name, window in EVENT_WINDOWS.items():
        kw = {k: (float(v) if k != "balance_e" else int(v)) for k, v in window.items()}
        out[f"event_time:{name}"] = _aggte(model, "dynamic", **kw)
    return out


def _diff_diff_case(case: dict[str, Any]) -> list[dict[str, Any]]:
    from diff_diff import CallawaySantAnna as DiffDiffCS

    opts = case["options"]
    est = DiffDiffCS(
        control_group=opts.get("control_group", "never_treated"),
        estimation_method=opts.get("method", "dr"),
        anticipation=opts.get("anticipation", 0),
        base_period=opts.get("base_period", "varying"),
    )
    res = est.fit(
        make_data(case["data"]),
        outcome="lemp",
        unit="countyreal",
        time="year",
        first_treat="first.treat",
        covariates=opts.get("covariates") or None,
    )
    rows = []
    for (g, t), v in sorted(res.group_time_effects.items()):
        rows.append(
            {
                "cohort": int(g),
                "time": int(t),
                "estimate": _f(v["effect"]),
                "std_error": _f(v["se"]),
            }
        )
    return rows


def main() -> None:
    warnings.simplefilter("ignore")
    # csdid's bootstrap draws from numpy's global generator (this script only, not evalkit)
    np.random.seed(BOOT_SEED)  # noqa: NPY002
    cases: dict[str, Any] = {}
    for name, case in CASES.items():
        model = _csdid_model(case)
        cases[name] = {
            "source": f"csdid {version('csdid')} (port of R did 2.5.1), analytic standard errors",
            "data": case["data"],
            "options": case["options"],
            "att_gt": _att_gt(model),
            "aggregations": _aggregations(model),
        }
        print(f"{name}: {len(cases[name]['att_gt'])} ATT(g,t)", file=sys.stderr)
    # the multiplier bootstrap: random, compare loosely
    boot = _csdid_model(CASES["dr_never"], bootstrap=True)
    cases["bootstrap_dr_never"] = {
        "source": (
            f"csdid {version('csdid')} multiplier bootstrap, {BOOT_REPS} draws, Rademacher "
            f"weights, numpy global seed {BOOT_SEED}; compare within Monte Carlo error"
        ),
        "data": "mpdta",
        "options": {},
        "reps": BOOT_REPS,
        "att_gt": _att_gt(boot),
    }
    # second opinion from diff-diff on two cases
    diff_diff = {
        name: {
            "source": (
                f"diff-diff {version('diff-diff')} CallawaySantAnna, analytic standard errors"
            ),
            "data": CASES[name]["data"],
            "options": CASES[name]["options"],
            "att_gt": _diff_diff_case(CASES[name]),
        }
        for name in ("dr_notyet_lpop", "ipw_never_lpop")
    }
    payload = {
        "generator": "tests/reference/generate_cs_reference.py",
        "peers": {"csdid": version("csdid"), "diff-diff": version("diff-diff")},
        "outcome": "lemp",
        "unit": "countyreal",
        "time": "year",
        "cohort": "first.treat",
        "variants": VARIANTS,
        "event_windows": EVENT_WINDOWS,
        "cases": cases,
        "diff_diff": diff_diff,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
