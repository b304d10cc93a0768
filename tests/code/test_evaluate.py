"""Evaluation metrics, the arrest-based subset, the per-type table, charts and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.model.evaluate import (
    calibration_table,
    classification_metrics,
    evaluate_predictions,
    expected_calibration_error,
    roc_points,
    save_charts,
)
from chicago_arrest.reports.format import html_page
from chicago_arrest.reports.training import evaluation_sections


def test_ece_of_perfectly_calibrated_and_of_overconfident_predictions() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p * 1.5, 0, 1)) > 0.1


def test_ece_known_value() -> None:
    # one bin: predicted 0.9, observed 0.5 -> ECE 0.4
    assert expected_calibration_error(np.array([1, 0]), np.array([0.9, 0.9])) == pytest.approx(0.4)


def test_classification_metrics_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, p, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 1, 1, 1)
    assert m["f1"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_single_class_gives_nan_ranking_metrics() -> None:
    m = classification_metrics(np.array([1, 1]), np.array([0.9, 0.8]), 0.5)
    assert np.isnan(m["roc_auc"])
    assert m["recall"] == 1.0


def test_arrest_based_types_are_separated() -> None:
    test = pd.DataFrame({"primary_type": ["NARCOTICS", "THEFT", "THEFT", "GAMBLING", "BATTERY", "BATTERY"]})
    y = np.array([1, 0, 1, 1, 0, 1])
    p = np.array([0.99, 0.2, 0.3, 0.98, 0.4, 0.35])
    ev = evaluate_predictions("m", test, y, p, 0.5)
    assert ev.arrest_based.tolist() == [True, False, False, True, False, False]
    assert ev.without_arrest_based["rows"] == 4
    assert ev.overall["roc_auc"] > ev.without_arrest_based["roc_auc"]
    table = ev.per_type.set_index("primary_type")
    assert table.loc["THEFT", "rows"] == 2
    assert table.loc["THEFT", "arrest_rate"] == 0.5
    flat = ev.flat_metrics()
    assert {"test_roc_auc", "test_no_ab_roc_auc", "test_ece", "threshold"} <= set(flat)


def test_calibration_table_and_roc_points() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=5_000)
    y = (rng.uniform(size=5_000) < p).astype(int)
    table = calibration_table(y, p)
    assert table["rows"].sum() == 5_000
    assert np.abs(table["mean_predicted"] - table["observed_rate"]).max() < 0.06
    roc = roc_points(y, p, max_points=50)
    assert len(roc) <= 50
    assert roc["fpr"].is_monotonic_increasing
    assert roc["threshold"].between(0, 1).all()


def test_charts_and_report(tmp_path) -> None:
    rng = np.random.default_rng(2)
    test = pd.DataFrame({"primary_type": rng.choice(["THEFT", "NARCOTICS"], 400)})
    y = rng.integers(0, 2, 400)
    evs = [
        evaluate_predictions(name, test, y, np.clip(y * 0.6 + rng.uniform(0, 0.4, 400), 0, 1), 0.5)
        for name in ("a", "b")
    ]
    charts = save_charts(evs, tmp_path, pd.Series([0.5, 0.3], index=["x", "y"]))
    assert set(charts) == {"roc", "pr", "calibration", "importance"}
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in charts.values())
    page = html_page("Report", evaluation_sections(evs, charts, "b", {"kind": "time"}))
    assert page.count("data:image/png;base64,") == 4
    assert "without crime types recorded only upon arrest" in page
    assert "Per crime type (b)" in page


def test_bootstrap_intervals_cover_the_metric_and_shrink_with_rows() -> None:
    from sklearn.metrics import roc_auc_score

    from chicago_arrest.model.evaluate import bootstrap_intervals

    rng = np.random.default_rng(3)
    widths = []
    for n in (1_000, 16_000):
        p = rng.uniform(size=n)
        y = (rng.uniform(size=n) < p).astype(int)
        ci = bootstrap_intervals(y, p, resamples=200, seed=0)
        auc = roc_auc_score(y, p)
        assert ci["roc_auc_ci_low"] < auc < ci["roc_auc_ci_high"]
        assert ci["ece_ci_low"] < ci["ece_ci_high"]
        assert ci["pr_auc_ci_low"] < ci["pr_auc_ci_high"]
        # the percentile interval is about ±1.96 standard errors
        assert (ci["roc_auc_ci_high"] - ci["roc_auc_ci_low"]) / ci["roc_auc_se"] == pytest.approx(
            3.92, rel=0.25
        )
        widths.append(ci["roc_auc_ci_high"] - ci["roc_auc_ci_low"])
    assert widths[1] < widths[0] / 3  # 16x the rows: a quarter of the width
    assert np.isnan(bootstrap_intervals(np.zeros(10), np.linspace(0, 1, 10))["roc_auc_se"])


def test_per_month_metrics_and_worst_month() -> None:
    rng = np.random.default_rng(4)
    n = 2_000
    dates = pd.Series(np.where(np.arange(n) < n // 2, "2017-11-15T10:00:00", "2017-12-15T10:00:00"))
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p).astype(int)
    p_shifted = np.where(np.arange(n) < n // 2, p, np.clip(p + 0.2, 0, 1))  # December over-predicted
    ev = evaluate_predictions("m", pd.DataFrame({"date": dates, "primary_type": "THEFT"}), y, p_shifted, 0.5)
    assert list(ev.per_month["month"]) == ["2017-11", "2017-12"]
    assert ev.per_month["rows"].tolist() == [1_000, 1_000]
    november, december = ev.per_month["ece"]
    assert november < 0.06 < 0.12 < december
    assert ev.overall["ece_worst_month"] == december
    assert ev.overall["test_months"] == 2
    flat = ev.flat_metrics()
    assert flat["test_ece_worst_month"] == december
    assert flat["test_roc_auc_ci_low"] < flat["test_roc_auc"] < flat["test_roc_auc_ci_high"]


def test_bootstrap_rank_metrics_equal_scikit_learn_with_weights() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from chicago_arrest.model.evaluate import _weighted_ap, _weighted_auc

    rng = np.random.default_rng(5)
    y = (rng.uniform(size=3_000) < 0.25).astype(float)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.uniform(size=3_000), 0, 1), 2)  # many ties
    unique, inverse = np.unique(p, return_inverse=True)
    w = rng.integers(0, 4, 3_000).astype(float)
    assert _weighted_auc(inverse, y, w, len(unique)) == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert _weighted_ap(inverse, y, w, len(unique)) == pytest.approx(
        average_precision_score(y, p, sample_weight=w)
    )
