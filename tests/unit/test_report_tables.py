"""evalkit.report.table: golden Markdown/LaTeX/HTML, alignment, escaping, options, errors.

The golden files in tests/unit/golden/ were written by the renderer once and checked by
eye (numbers, stars, brackets, notes, escaping); the fakes in report_fakes.py fix the inputs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from report_fakes import A, B, C, D

import evalkit
from evalkit import EvalkitError
from evalkit.did import TWFE, BaconDecomposition
from evalkit.report import table
from evalkit.report.tables import latex_escape, maketables_adapter

GOLDEN = Path(__file__).parent / "golden"


def _golden_table():
    return table(
        [A, B, C],
        names=["(1)", "(2)", "(3)"],
        rename={"post": "Effect"},
        stars={"**": 0.01, "*": 0.05},
        stats=("outcome", "n_obs", "n_clusters", "inference"),
    )


@pytest.mark.parametrize(
    ("kind", "render"),
    [("md", "to_markdown"), ("tex", "to_latex"), ("html", "to_html")],
)
def test_golden_outputs(kind, render):
    expected = (GOLDEN / f"report_table.{kind}").read_text(encoding="utf-8")
    assert getattr(_golden_table(), render)() + "\n" == expected


def test_str_is_markdown_and_notebooks_get_html():
    tab = _golden_table()
    assert str(tab) == tab.to_markdown()
    assert tab._repr_html_() == tab.to_html()


def test_latex_escapes_specials():
    assert latex_escape(r"a_b & 5% $x$ #1 {y} ~ ^ \z") == (
        r"a\_b \& 5\% \$x\$ \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{}z"
    )
    tex = _golden_table().to_latex()
    assert r"ATT \& 50\%" in tex and r"x\_1" in tex and r"y\_\$" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex


def test_html_escapes_text():
    html = table([C]).to_html()
    assert "ATT &amp; 50%" in html and "ATT & 50%" not in html


def test_rows_with_different_terms_align():
    frame = _golden_table().to_frame()
    effect = frame.index[frame[""] == "Effect"][0]
    assert frame.loc[effect, ["(1)", "(2)", "(3)"]].tolist() == ["0.512**", "0.400*", "1.000"]
    x1 = frame.index[frame[""] == "x_1"][0]
    assert frame.loc[x1, ["(1)", "(2)", "(3)"]].tolist() == ["-0.020", "", ""]
    att = frame.index[frame[""] == "ATT & 50%"][0]
    assert frame.loc[att, ["(1)", "(2)", "(3)"]].tolist() == ["", "", "-0.250"]


def test_ci_mode_keep_drop_order_and_stars_off():
    tab = table(
        [A, B],
        uncertainty="ci",
        stars=False,
        keep=["post", "x_"],
        drop=[r"^x_1$"],
        names=["a", "b"],
    )
    frame = tab.to_frame()
    assert frame[""].tolist()[:2] == ["post", ""]
    assert frame.iloc[0, 1:].tolist() == ["0.512", "0.400"]
    assert frame.iloc[1, 1:].tolist() == ["[0.300, 0.700]", "[0.050, 0.810]"]
    assert "95% confidence intervals in brackets." in tab.notes
    assert not any("p<" in n for n in tab.notes)
    ordered = table([A], order=["x_1"]).to_frame()[""].tolist()
    assert ordered[:3] == ["x_1", "", "post"]


def test_p_value_only_is_shown_in_braces_with_a_note():
    tab = table([A, D], names=["a", "d"])
    assert tab.to_frame().iloc[1, 2] == "{p = 0.200}"
    assert any("No standard error or interval for d" in n for n in tab.notes)


def test_bad_options_raise_naming_the_option():
    with pytest.raises(EvalkitError, match="names"):
        table([A, B], names=["only one"])
    with pytest.raises(EvalkitError, match="uncertainty"):
        table([A], uncertainty="sd")
    with pytest.raises(EvalkitError, match="stars"):
        table([A], stars={"*": 5})
    with pytest.raises(EvalkitError, match="keep"):
        table([A], keep=["("])
    with pytest.raises(EvalkitError, match="keep"):
        table([A], keep=["nothing matches"])
    with pytest.raises(EvalkitError, match="results"):
        table([1, 2])
    with pytest.raises(EvalkitError, match="stats"):
        table([A], stats=("r2",))
    with pytest.raises(EvalkitError, match="label"):
        table([A], rename={"x_1": "post"})


def test_real_results_side_by_side():
    df = evalkit.datasets.load("mpdta")
    df["post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    df["x"] = df["lpop"] * (df["year"] - 2003)
    roles = dict(outcome="lemp", unit="countyreal", time="year")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = TWFE(**roles, treatment="post").fit(df, inference="cluster")
        b = TWFE(**roles, treatment="post", covariates=["x"]).fit(df, inference="hetero")
        c = BaconDecomposition(**roles, treatment="post").fit(df)
    tab = table([a, b, c], names=["CR1", "HC1", "Bacon"], keep=["^post$", "^x$", "never"])
    frame = tab.to_frame().set_index("")
    assert frame.loc["post", "CR1"] == f"{a.estimate('post'):.3f}***"
    assert frame.loc["x", "CR1"] == "" and frame.loc["x", "HC1"] != ""
    assert frame.loc["2006 vs never treated", "Bacon"] == "-0.023"
    assert frame.loc["countyreal effects"].tolist() == ["Yes", "Yes", ""]
    assert frame.loc["Observations"].tolist() == ["2,500"] * 3
    assert frame.loc["Clusters"].tolist() == ["500", "", ""]
    assert frame.loc["Inference"].tolist() == ["cluster (countyreal)", "hetero", "none"]
    assert any(n.startswith("No uncertainty for Bacon: none: the Goodman-Bacon") for n in tab.notes)


def test_maketables_adapter_protocol():
    adapter = maketables_adapter(A)
    coefs = adapter.__maketables_coef_table__
    assert list(coefs.columns) == ["b", "se", "t", "p", "ci95l", "ci95u"]
    assert coefs.index.name == "Coefficient" and list(coefs.index) == ["post", "x_1"]
    np.testing.assert_allclose(coefs["b"], [0.51234, -0.02])
    assert adapter.__maketables_stat__("N") == 1200
    assert adapter.__maketables_depvar__ == "y"
    assert adapter.__maketables_fixef_string__ == "city+month"


def test_aggregated_views_carry_their_fits_facts():
    from evalkit.did import ImputationDiD, SunAbraham

    df = evalkit.datasets.load("mpdta")
    roles = dict(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    sa = SunAbraham(**roles).fit(df).aggregate("overall")
    bjs = ImputationDiD(**roles).fit(df).aggregate("cohort")
    frame = table([sa, bjs], names=["SA", "BJS"]).to_frame().set_index("")
    assert frame.loc["Observations"].tolist() == ["2,500", "2,500"]
    assert frame.loc["countyreal effects"].tolist() == ["Yes", ""]
    assert sa.info["aggregation"] == "ATT" and sa.info["n_clusters"] == 500  # own key kept


def test_pretrend_note_counts_p_values_below_005_before_rounding() -> None:
    """0.0496 is below 0.05 though the table shows it as 0.050; a missing p is not."""
    from evalkit.report.pretrend import pretrend_blocks

    def entry(i: int, p: float | None) -> dict:
        return {"id": f"event.o{i}", "outcome": "work", "group": "all",
                "info": {"pretrend_test": {"p_value": p, "df": 3}}}  # fmt: skip

    blocks = pretrend_blocks([entry(0, 0.0496), entry(1, 0.2), entry(2, None)])
    table = next(b for b in blocks if b[0] == "table")
    assert [row[4] for row in table[2]] == ["0.050", "0.200", ""]
    note = next(b[1] for b in blocks if b[0] == "p" and "of 3 tests" in b[1])
    assert note.startswith("1 of 3 tests have a p-value below 0.05.")
