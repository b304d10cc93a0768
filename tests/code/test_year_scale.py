"""Issue 27's shortcuts for a year of records give exactly what the straightforward computation gives.

Each test compares a fast path with the path it replaced, on generated records: the category codes in front of
scikit-learn's encoders, the in-place stacking, the float32 training matrix, interactions joined once per pair,
raw features a slice at a time, a batch scored a slice at a time, the compact reading of a step's Dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.preprocessing import OneHotEncoder, TargetEncoder

from chicago_arrest.core.parsing import labels
from chicago_arrest.core.schema import LABEL, MODEL_INPUT_COLUMNS
from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from chicago_arrest.model import artifact, training
from chicago_arrest.model.encoding import build_encoder, encoded_feature_names
from chicago_arrest.model.evaluate import expected_calibration_error, paired_bootstrap
from chicago_arrest.model.feature_spec import DEFAULT_FEATURES
from chicago_arrest.model.features import CategoryCodes, FastEncoder, RawFeatures, _pairs
from chicago_arrest.model.training import TrainConfig, raw_features, train_model
from chicago_arrest.steps import read_dataset, write_dataset


@pytest.fixture(scope="module")
def records() -> tuple[pd.DataFrame, pd.DataFrame]:
    stations = generate_stations()
    return generate_crimes(6_000, stations=stations, seed=27), stations


@pytest.fixture(scope="module")
def features(records: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray, RawFeatures]:
    crimes, stations = records
    raw = RawFeatures(stations).fit(crimes)
    return raw.transform(crimes), np.asarray(labels(crimes).values), raw


def test_category_codes_give_scikit_learns_matrix_on_text(
    features: tuple[pd.DataFrame, np.ndarray, RawFeatures],
) -> None:
    """One-hot and target encoding of codes = of the text itself, column for column (unseen values too)."""
    frame, y, _ = features
    columns = ["primary_type", "iucr", "location_description", "type_location"]
    cv = KFold(5, shuffle=True, random_state=0)
    for encoder in (
        OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False),
        TargetEncoder(target_type="binary", cv=cv),
    ):
        on_text = ColumnTransformer([("e", encoder, columns)]).fit(frame, y)
        coded = ColumnTransformer([("e", _with_codes(encoder), columns)]).fit(frame, y)
        np.testing.assert_array_equal(on_text.fit_transform(frame, y), coded.fit_transform(frame, y))
        unseen = frame.head(50).copy()
        unseen["iucr"] = "ZZZZ"
        np.testing.assert_array_equal(on_text.transform(unseen), coded.transform(unseen))


def _with_codes(encoder: object) -> object:
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline

    return make_pipeline(CategoryCodes(), clone(encoder))


def test_codes_read_categoricals_as_text(features: tuple[pd.DataFrame, np.ndarray, RawFeatures]) -> None:
    frame, _, _ = features
    column = frame[["location_description"]]
    codes = CategoryCodes().fit(column)
    as_category = column.astype("category")
    np.testing.assert_array_equal(codes.transform(column), codes.transform(as_category))
    unseen = column.head(1).assign(location_description="MOON BASE")
    np.testing.assert_array_equal(codes.transform(unseen), [[len(codes.categories_[0])]])


def test_encoder_stacks_in_place_and_as_float32(
    features: tuple[pd.DataFrame, np.ndarray, RawFeatures],
) -> None:
    """The sparse one-hot block densified into its columns; ``fit_transform_as`` only rounds the output."""
    frame, y, _ = features
    encoder = build_encoder()
    dense = encoder.fit_transform(frame, y)
    reference = ColumnTransformer(encoder.transformers, sparse_threshold=0.0).fit_transform(frame, y)
    np.testing.assert_array_equal(dense, reference)
    as32 = build_encoder().fit_transform_as(np.float32, frame, y)
    assert as32.dtype == np.float32
    np.testing.assert_array_equal(as32, dense.astype(np.float32))
    assert encoder.transform(frame).dtype == np.float64  # the checked serving fallback stays float64
    assert FastEncoder(encoder).verify(encoder, frame)
    names = encoded_feature_names(encoder)
    assert len(names) == dense.shape[1]
    assert "onehot__primary_type_THEFT" in set(names)


def test_interactions_joined_once_per_pair() -> None:
    rng = np.random.default_rng(1)
    left = np.asarray(rng.choice(["THEFT", "BATTERY", "__MISSING__", "A|B"], 500), dtype=object)
    right = np.asarray(rng.choice(["STREET", "", "APARTMENT"], 500), dtype=object)
    expected = left + "|" + right
    for n in (1, 63, 64, 500):
        assert _pairs(left[:n], right[:n]).tolist() == expected[:n].tolist()


def test_raw_features_a_slice_at_a_time(
    records: tuple[pd.DataFrame, pd.DataFrame],
    features: tuple[pd.DataFrame, np.ndarray, RawFeatures],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crimes, _ = records
    _, _, raw = features
    whole = pd.DataFrame(raw.transform_arrays(crimes, DEFAULT_FEATURES.columns()))
    monkeypatch.setattr(training, "RAW_CHUNK", 700)
    sliced = raw_features(raw, crimes, DEFAULT_FEATURES.columns())
    assert list(sliced.columns) == list(whole.columns)
    for name in whole.columns:
        np.testing.assert_array_equal(sliced[name].to_numpy(dtype=whole[name].dtype), whole[name].to_numpy())


@pytest.fixture(scope="module")
def model(records: tuple[pd.DataFrame, pd.DataFrame]) -> artifact.ArrestModel:
    crimes, stations = records
    return train_model(crimes.head(5_000), stations, TrainConfig(model_type="xgboost", n_jobs=1)).model


def test_a_batch_is_scored_a_slice_at_a_time(
    records: tuple[pd.DataFrame, pd.DataFrame], model: artifact.ArrestModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    crimes, _ = records
    later = crimes.tail(1_000)
    whole = model.predict_arrest_probability(later)
    monkeypatch.setattr(artifact, "SCORE_CHUNK", 128)
    np.testing.assert_array_equal(model.predict_arrest_probability(later), whole)
    columns = {name: later[name].to_numpy() for name in later.columns}  # the model server's parsed columns
    np.testing.assert_array_equal(model.predict_arrest_probability(columns), whole)


def test_forest_is_xgboost_regressing_the_label_and_calibrated(
    records: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    crimes, stations = records
    forest = train_model(
        crimes.head(5_000), stations, TrainConfig(model_type="random_forest", n_jobs=1)
    ).model
    classifier = forest.pipeline.named_steps["classifier"]  # type: ignore[union-attr]
    assert type(classifier).__name__ == "XGBRFRegressor"
    later = crimes.tail(1_000)
    p = forest.predict_arrest_probability(later)
    y = np.asarray(labels(later).values)
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(y, p) > 0.8
    assert expected_calibration_error(y, p) < 0.05


def test_paired_bootstrap_of_two_models() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3_000)
    a = np.clip(y * 0.3 + rng.random(3_000) * 0.7, 0, 1)
    b = np.clip(y * 0.2 + rng.random(3_000) * 0.8, 0, 1)
    out = paired_bootstrap(y, a, b, resamples=100)
    assert out["roc_auc_diff"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert out["pr_auc_diff"] == pytest.approx(average_precision_score(y, a) - average_precision_score(y, b))
    assert out["roc_auc_diff_ci_low"] < out["roc_auc_diff"] < out["roc_auc_diff_ci_high"]
    assert out["roc_auc_diff_ci_low"] > 0  # a clearly better model: the interval is above 0
    same = paired_bootstrap(y, a, a, resamples=20)
    assert same["roc_auc_diff_ci_low"] == same["roc_auc_diff_ci_high"] == 0.0


def test_a_dataset_read_compactly_holds_the_same_values(
    records: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    crimes, _ = records
    path = tmp_path / "records.parquet"
    write_dataset(crimes.astype("string"), path)
    plain = read_dataset(path)
    for text in ("arrow", "category"):
        compact = read_dataset(path, (*MODEL_INPUT_COLUMNS, LABEL), text=text)  # type: ignore[arg-type]
        assert list(compact.columns) == [*MODEL_INPUT_COLUMNS, LABEL]
        for name in compact.columns:
            assert compact[name].astype(object).tolist() == plain[name].astype(object).tolist()
    assert isinstance(read_dataset(path, ["iucr"], text="category")["iucr"].dtype, pd.CategoricalDtype)
