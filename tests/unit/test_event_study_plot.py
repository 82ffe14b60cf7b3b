"""evalkit.report.event_study_plot: points, offsets, reference periods, errors."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

import evalkit
from evalkit import EvalkitError
from evalkit.did import CallawaySantAnna, EventStudy, ImputationDiD, SunAbraham
from evalkit.report import event_study_plot
from evalkit.report.event_plot import offsets

ROLES = dict(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")


@pytest.fixture(scope="module")
def fits():
    df = evalkit.datasets.load("mpdta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            EventStudy(**ROLES).fit(df),
            CallawaySantAnna(**ROLES).fit(df).aggregate("event_time"),
            SunAbraham(**ROLES).fit(df),
            ImputationDiD(**ROLES).fit(df),
        ]


def test_offsets_are_centred_and_keep_groups_apart():
    for n in range(1, 9):
        shift = offsets(n)
        assert shift.mean() == pytest.approx(0.0)
        assert np.all(np.diff(shift) > 0)
        assert shift.max() - shift.min() < 1.0  # neighbouring event times never overlap
    assert offsets(2, dodge=0.5).tolist() == [-0.25, 0.25]


def test_draws_every_event_time_estimate_at_its_offset(fits):
    labels = ["TWFE event study", "Callaway-Sant'Anna", "Sun-Abraham", "Imputation"]
    ax = event_study_plot(fits, labels=labels)
    assert len(ax.containers) == 4
    shift = offsets(4)
    for container, res, s in zip(ax.containers, fits, shift, strict=True):
        tidy = res.tidy()
        keep = tidy["event_time"].notna()
        x, y = container.lines[0].get_data()
        np.testing.assert_allclose(x, tidy.loc[keep, "event_time"].astype(float) + s)
        np.testing.assert_allclose(y, tidy.loc[keep, "estimate"])
    # CS has 7 event times (its 'average' row is left out), EventStudy and SA 7, BJS 4
    assert [len(c.lines[0].get_xdata()) for c in ax.containers] == [7, 7, 7, 4]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels
    plt.close("all")


def test_reference_periods_hollow_at_zero_and_lines(fits):
    ax = event_study_plot(fits)
    shift = offsets(4)
    hollow = [ln for ln in ax.lines if ln.get_markerfacecolor() == "white"]
    # EventStudy and SunAbraham normalise e = -1; CS and BJS do not
    assert sorted(float(ln.get_xdata()[0]) for ln in hollow) == pytest.approx(
        sorted([-1 + shift[0], -1 + shift[2]])
    )
    assert all(float(ln.get_ydata()[0]) == 0.0 for ln in hollow)
    flat = [ln for ln in ax.lines if len(set(ln.get_ydata())) == 1 and ln not in hollow]
    assert any(ln.get_ydata()[0] == 0 for ln in flat)  # zero line
    vertical = [ln for ln in ax.lines if list(ln.get_xdata()) == [-0.5, -0.5]]
    assert len(vertical) == 1  # treatment onset
    plt.close("all")


def test_draws_on_given_axes_and_never_shows(fits, monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("show() called"))
    _, ax = plt.subplots()
    assert event_study_plot(fits[:2], ax=ax, level=0.9) is ax
    plt.close("all")


def test_results_without_event_time_and_bad_labels_raise(fits):
    df = evalkit.datasets.load("mpdta")
    overall = CallawaySantAnna(**ROLES).fit(df).aggregate("overall")
    with pytest.raises(EvalkitError, match="event_time"):
        event_study_plot([fits[0], overall])
    with pytest.raises(EvalkitError, match="labels"):
        event_study_plot(fits, labels=["one"])
    with pytest.raises(EvalkitError, match="at least one"):
        event_study_plot([])


def test_fitted_results_and_study_entries_are_event_results(fits):
    """Both kinds of input satisfy the plot's protocol, so study_figures needs no cast."""
    from evalkit.report.event_plot import EventResult
    from evalkit.report.study_figures import EntryResult

    assert all(isinstance(f, EventResult) for f in fits)
    rows = fits[0].tidy()[["term", "event_time", "estimate", "conf_low", "conf_high"]]
    entry = EntryResult(
        {"estimator": "did.EventStudy", "level": 0.9, "tidy": rows.to_dict("records")}
    )
    assert isinstance(entry, EventResult)
    ax = event_study_plot([fits[0], entry], labels=["fit", "entry"])
    drawn = [c.lines[0].get_ydata() for c in ax.containers]
    np.testing.assert_array_equal(drawn[0], drawn[1])
    assert "90%/95% CI" in ax.get_title()
    plt.close(ax.figure)
