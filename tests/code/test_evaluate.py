"""Evaluation metrics, the arrest-based subset, the per-type table, charts and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.evaluate import (
    calibration_table,
    classification_metrics,
    evaluate_predictions,
    expected_calibration_error,
    roc_points,
    save_charts,
)
from chicago_arrest.report import evaluation_sections, html_page


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
