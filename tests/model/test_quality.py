"""Model quality within bounds that a broken pipeline would miss (generated data), and the headline
targets on the real 2017 sample when it is present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.data.split import time_split
from chicago_arrest.model.artifact import ArrestModel
from chicago_arrest.model.evaluate import evaluate_model
from chicago_arrest.model.training import TrainConfig, train_model


def test_metrics_on_generated_test_month(trained: ArrestModel, split_records) -> None:
    _, test = split_records
    ev = evaluate_model(trained, test)
    assert ev.overall["roc_auc"] > 0.75
    assert ev.overall["ece"] < 0.06
    assert abs(ev.overall["mean_predicted"] - ev.overall["positive_rate"]) < 0.05
    # no resampling by default: the classifier fits the training rows' own arrest rate
    info = trained.info or {}
    assert info["resample"] is False
    assert info["resampled_positive_rate"] == pytest.approx(info["train_positive_rate"], abs=0.01)


def test_resampling_when_asked_is_corrected_by_the_calibration(split_records, stations) -> None:
    train, test = split_records
    model = train_model(
        train, stations, TrainConfig(model_type="logreg", resample=True, backtest_folds=0)
    ).model
    info = model.info or {}
    assert info["resampled_positive_rate"] > 0.4 > info["train_positive_rate"]
    steps = model.pipeline.named_steps  # the samplers act while fitting only
    assert steps["smote"] == "passthrough"
    assert steps["undersample"] == "passthrough"
    ev = evaluate_model(model, test)
    assert abs(ev.overall["mean_predicted"] - ev.overall["positive_rate"]) < 0.05


def test_shuffled_labels_learn_nothing(split_records, stations) -> None:
    train, test = split_records
    shuffled = train.copy()
    shuffled["arrest"] = np.random.default_rng(0).permutation(shuffled["arrest"].to_numpy())
    model = train_model(shuffled, stations, TrainConfig(model_type="logreg")).model
    ev = evaluate_model(model, test)
    assert 0.4 < ev.overall["roc_auc"] < 0.6


def test_selected_features_and_threshold_recorded(trained: ArrestModel) -> None:
    info = trained.info or {}
    assert 5 <= len(info["selected_features"]) <= info["encoded_features"]
    assert 0.05 <= trained.threshold <= 0.95
    importance = trained.feature_importance()
    assert len(importance) == len(info["selected_features"])
    assert (importance >= 0).all()


@pytest.mark.shared_data
def test_real_sample_time_split_targets(shared_data) -> None:
    """Issue target on the real 2017 sample: ROC-AUC >= 0.89 on December with ECE <= 0.03 (XGBoost), and the
    predecessor's figures beaten without the arrest-based crime types (0.845)."""
    crimes = pd.read_csv(shared_data / "crimes_sample.csv", dtype=str, keep_default_na=False)
    stations = pd.read_csv(shared_data / "police_stations.csv", dtype=str, keep_default_na=False)
    train, test, window = time_split(crimes)
    assert window.test_start == "2017-12-01"
    model = train_model(train, stations, TrainConfig(model_type="xgboost")).model
    ev = evaluate_model(model, test)
    assert ev.overall["roc_auc"] >= 0.89
    assert ev.overall["ece"] <= 0.03
    assert ev.overall["pr_auc"] > 0.76
    assert ev.without_arrest_based["roc_auc"] > 0.845
