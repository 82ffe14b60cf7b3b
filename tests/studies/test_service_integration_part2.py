"""The part-2 analyses of the service-integration study, fitted straight from their blocks.

Reads the blocks of studies/service_integration/study.toml that name an extra table
(``table = ...``), fits each analysis directly on its table's simulator with the same
options and inference, and checks the planted
truths: typology agreement (adjusted Rand >= 0.8), ITT and complier intervals covering
their truths, spillover bounds covering the spillover-free truths. Slow (about 30 s).
"""

from __future__ import annotations

import itertools
import time
import tomllib
import warnings
from pathlib import Path

import pytest

from evalkit.core import registry
from evalkit.inference.spec import Inference
from evalkit.simulate import get

STUDY = Path(__file__).parents[2] / "studies" / "service_integration"


def _blocks() -> dict:
    raw = tomllib.loads((STUDY / "study.toml").read_text(encoding="utf-8"))
    raw["analysis"] = [a for a in raw.get("analysis", []) if "table" in a]
    return raw


def _analyses(raw: dict):
    for block in raw.get("analysis", []):
        expand = block.get("expand", {})
        keys = list(expand)
        for values in itertools.product(*(expand[k] for k in keys)) if keys else [()]:
            options = {**block.get("options", {}), **dict(zip(keys, values, strict=True))}
            yield block, options


@pytest.mark.slow
def test_part2_analyses_recover_their_truths():
    raw = _blocks()
    assert raw["analysis"], "no analysis of study.toml reads an extra table"
    tables = {
        name: get(spec["simulator"])(seed=20260101, **spec.get("options", {}))
        for name, spec in raw["data"]["tables"].items()
    }
    seconds = {}
    for block, options in _analyses(raw):
        sim = tables[block["table"]]
        inference = block.get("inference")
        if isinstance(inference, dict):
            inference = Inference(inference["method"], reps=inference.get("reps"))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = registry.get(block["estimator"])(**options).fit(
                sim.data, inference=inference, seed=7
            )
        key = f"{block['id']}.{options.get('outcome', '')}"
        seconds[key] = time.perf_counter() - start
        tidy = res.tidy().set_index("term")
        if block["estimator"] == "sequence.Typology":
            assert tidy.loc["adjusted_rand", "estimate"] >= 0.8, key
            continue
        outcome = options["outcome"]
        term = options.get("treatment", options.get("exposure"))
        truth = sim.truth_terms[(outcome, term, "all")]
        assert tidy.loc[term, "conf_low"] <= truth <= tidy.loc[term, "conf_high"], key
        bound = f"{term}:no_spillover_bound"
        if bound in tidy.index:
            free = sim.truth_terms[(outcome, f"{term}:no_spillover", "all")]
            lo = tidy.loc[[term, bound], "conf_low"].min()
            hi = tidy.loc[[term, bound], "conf_high"].max()
            assert lo <= free <= hi, key
    print({k: round(v, 1) for k, v in seconds.items()}, round(sum(seconds.values()), 1))
