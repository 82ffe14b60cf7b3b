"""sequence: OM and Hamming against hand computations, the typology, and disclosure."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import DataError, DesignError, RowsDroppedWarning
from evalkit.sequence import Typology
from evalkit.sequence.distance import (
    hamming,
    optimal_matching,
    substitution_costs,
    transition_rates,
)
from evalkit.simulate import get


def _om_slow(a, b, sub, indel):
    """Textbook edit distance with a full table (the obviously correct path)."""
    table = np.zeros((len(a) + 1, len(b) + 1))
    table[:, 0] = np.arange(len(a) + 1) * indel
    table[0, :] = np.arange(len(b) + 1) * indel
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i, j] = min(
                table[i - 1, j] + indel,
                table[i, j - 1] + indel,
                table[i - 1, j - 1] + sub[a[i - 1], b[j - 1]],
            )
    return table[-1, -1]


CONSTANT = np.array([[0.0, 2, 2], [2, 0, 2], [2, 2, 0]])


@pytest.mark.parametrize(
    ("a", "b", "sub", "indel", "expected"),
    [
        # ABC -> BCA: delete the leading A, append an A: two indels
        ([0, 1, 2], [1, 2, 0], CONSTANT, 1.0, 2.0),
        # AB -> BA: two substitutions cost 4; delete A + insert A costs 3 with indel 1.5
        ([0, 1], [1, 0], CONSTANT, 1.5, 3.0),
        # same with indel 2.5: substitutions (4) beat indels (5)
        ([0, 1], [1, 0], CONSTANT, 2.5, 4.0),
        # AAB -> ABB: one substitution A->B (cost 1 here) beats two indels (2 x 2)
        ([0, 0, 1], [0, 1, 1], np.array([[0.0, 1, 3], [1, 0, 3], [3, 3, 0]]), 2.0, 1.0),
        # identical sequences
        ([2, 2, 1], [2, 2, 1], CONSTANT, 1.0, 0.0),
        # AAAA -> CCCC with costly substitutions (3) and cheap indels (1): 4 + 4 indels
        ([0, 0, 0, 0], [2, 2, 2, 2], np.array([[0.0, 1, 3], [1, 0, 3], [3, 3, 0]]), 1.0, 8.0),
    ],
)
def test_optimal_matching_equals_hand_computation(a, b, sub, indel, expected):
    d = optimal_matching(np.array([a, b]), sub, indel)
    assert d[0, 1] == pytest.approx(expected)
    assert d[1, 0] == pytest.approx(expected)
    assert _om_slow(a, b, sub, indel) == pytest.approx(expected)


def test_optimal_matching_equals_slow_path_on_random_sequences():
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 4, size=(25, 9))
    seqs[5] = seqs[3]  # duplicates are computed once and expanded
    sub = substitution_costs(seqs, 4, "trate")
    d = optimal_matching(seqs, sub, 1.3)
    slow = np.array([[_om_slow(a, b, sub, 1.3) for b in seqs] for a in seqs])
    np.testing.assert_allclose(d, slow, atol=1e-12)
    assert d[5, 3] == 0.0


def test_hamming_and_trate_costs_by_definition():
    rng = np.random.default_rng(1)
    seqs = rng.integers(0, 3, size=(12, 7))
    np.testing.assert_array_equal(hamming(seqs), (seqs[:, None, :] != seqs[None, :, :]).sum(axis=2))
    p = transition_rates(seqs, 3)
    manual = np.zeros((3, 3))
    for row in seqs:
        for a, b in itertools.pairwise(row):
            manual[a, b] += 1
    manual /= manual.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, manual)
    sub = substitution_costs(seqs, 3, "trate")
    assert sub[0, 1] == pytest.approx(2 - manual[0, 1] - manual[1, 0])
    assert np.all(np.diag(sub) == 0)


@pytest.fixture(scope="module")
def pathways():
    return get("integration_pathways")(seed=2, n_persons=300).data


def test_typology_recovers_planted_types(pathways):
    res = Typology(
        unit="person_id",
        time="month",
        state="state",
        outcomes=["decent_income"],
        covariates=["age", "health_diagnosis"],
        compare_with="planted_type",
    ).fit(pathways)
    assert res.estimate("adjusted_rand") >= 0.8
    assert res.info["number_of_types"] == 6  # chosen by the silhouette among 2..8
    best = max(res.info["silhouette"], key=res.info["silhouette"].get)
    assert int(best) == 6
    tidy = res.tidy()
    shares = tidy[tidy["term"] == "share"]
    assert shares["estimate"].sum() == pytest.approx(1.0)
    # disability pathway: health diagnosis raises membership (planted logit +1.4)
    dis = tidy[(tidy["term"] == "membership:health_diagnosis") & tidy["group"].str.contains("dis")]
    assert len(dis) == 1 and dis["estimate"].iloc[0] > 0
    payload = res.to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload


def _with_rare_pattern() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for p in range(40):
        kind = 0 if p < 20 else 1 if p < 37 else 2  # the last three persons: a rare type
        for t in range(12):
            state = ["work", "waa", "disability"][kind] if rng.uniform() > 0.05 else "measures"
            rows.append((p, t, state, float(kind == 0)))
    return pd.DataFrame(rows, columns=["id", "month", "state", "y"])


def test_types_below_min_cell_size_are_never_reported():
    df = _with_rare_pattern()
    res = Typology(unit="id", time="month", state="state", outcomes=["y"], n_types=3).fit(df)
    assert res.info["types_suppressed"] == 1
    assert res.info["number_of_types"] == 2
    sizes = res.extras["sizes"]
    assert min(sizes.values()) >= 5 and sum(sizes.values()) == 40
    # no share of persons in any type, month and state rests on 1-4 persons
    dist = res.extras["state_distribution"]
    counts = dist["share"] * dist["type"].map(sizes)
    shown = counts.dropna()
    assert not ((shown > 1e-9) & (shown < 5 - 1e-9)).any()
    assert dist["share"].isna().any()  # the scattered 'measures' months were suppressed
    rates = res.extras["transition_rates"]
    assert rates["rate"].isna().any()
    # with a minimum of 3 the rare type is shown
    small = Typology(unit="id", time="month", state="state", n_types=3, min_cell_size=3).fit(df)
    assert small.info["number_of_types"] == 3 and small.info["types_suppressed"] == 0


def test_nothing_individual_in_the_result():
    df = _with_rare_pattern()
    res = Typology(unit="id", time="month", state="state", n_types=2).fit(df)
    payload = res.to_dict()
    assert not [k for k in [*payload["info"], *payload["extras"]] if "medoid" in k]
    # no person identifier reaches the output
    ids = {f'"{i}"' for i in df["id"].unique() if i > 9}
    assert not [i for i in ids if i in json.dumps(payload)]
    extras = set(res.extras)
    assert extras == {"state_distribution", "transition_rates", "silhouette", "sizes"}
    assert set(res.extras["state_distribution"].columns) == {"type", "time", "state", "share"}


def test_plots_draw_aggregates(pathways):
    res = Typology(unit="person_id", time="month", state="state", n_types=6).fit(pathways)
    ax = res.plot()
    assert len(ax.get_yticklabels()) == 6
    first = res.tidy()["group"].iloc[0]
    ax2 = res.plot(type=first)
    assert ax2.get_title() == first
    with pytest.raises(DesignError, match="no type"):
        res.plot(type="T99")


def test_incomplete_or_duplicated_sequences_are_refused():
    df = _with_rare_pattern()
    with pytest.raises(DataError, match="complete"):
        Typology(unit="id", time="month", state="state").fit(df.iloc[1:])
    with pytest.raises(DataError, match="two states in one period"):
        Typology(unit="id", time="month", state="state").fit(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(DataError, match="did you mean 'state'"):
        Typology(unit="id", time="month", state="stat").fit(df)
    with pytest.raises(DesignError, match="distance"):
        Typology(unit="id", time="month", state="state", distance="lcs")


def test_person_with_a_missing_state_is_dropped_whole():
    df = _with_rare_pattern()
    df.loc[3, "state"] = None
    with pytest.warns(RowsDroppedWarning, match="dropped 12 of 480"):
        res = Typology(unit="id", time="month", state="state", n_types=2).fit(df)
    assert res.info["n_persons"] == 39


def test_result_passes_the_disclosure_gate_untouched(pathways):
    from evalkit.data.disclosure import audit, protect

    res = Typology(
        unit="person_id", time="month", state="state", n_types=3, compare_with="planted_type"
    ).fit(pathways)
    payload = res.to_dict()
    protected, paths = protect(payload, 5)
    assert paths == [] and audit(protected, 5) == []
