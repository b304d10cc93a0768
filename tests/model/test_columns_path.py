"""Records given as columns (the model server's parsed request) score exactly as the same records in a frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from chicago_arrest.core.schema import MODEL_INPUT_COLUMNS, record_count
from chicago_arrest.model.artifact import ArrestModel
from chicago_arrest.model.feature_spec import ALL_COLUMNS
from chicago_arrest.model.inputs import model_input_arrays


def _messy(test: pd.DataFrame) -> pd.DataFrame:
    records = test.head(300).reset_index(drop=True).copy()
    records.loc[:49, "iucr"] = "ZZZZ"  # unknown code
    records.loc[50:99, ["latitude", "longitude", "x_coordinate", "y_coordinate"]] = np.nan
    records.loc[100:119, "location_description"] = None
    records.loc[120:139, "beat"] = 111  # an integer code: padded like "0111"
    return records.drop(columns=["community_area"])  # a missing optional field


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {name: frame[name].to_numpy() for name in frame.columns}
    out["date"] = pd.to_datetime(frame["date"]).to_numpy("datetime64[ns]")  # parsed, like the server's
    return out


def test_columns_score_like_the_frame_to_the_last_bit(
    trained: ArrestModel, split_records: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    frame = _messy(split_records[1])
    columns = _columns(frame)
    assert record_count(columns) == record_count(frame) == 300
    by_frame, by_columns = model_input_arrays(frame), model_input_arrays(columns)
    assert list(by_columns) == list(MODEL_INPUT_COLUMNS)
    for name in MODEL_INPUT_COLUMNS:
        np.testing.assert_array_equal(by_columns[name], by_frame[name], err_msg=name)
    for rows in (slice(0, 1), slice(0, 8), slice(None)):  # one record, a few, many (the distinct-value path)
        part = {name: values[rows] for name, values in columns.items()}
        expected = trained.predict_arrest_probability(frame.iloc[rows])
        assert (trained.predict_arrest_probability(part) == expected).all()
    assert trained.predict_arrest_probability({"date": columns["date"][:0]}).shape == (0,)


def test_only_the_encoders_columns_are_computed_and_they_are_the_same(
    trained: ArrestModel, split_records: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    frame = _messy(split_records[1])
    raw = trained.pipeline.steps[0][1]  # type: ignore[union-attr]
    fast = trained.fast_encoder_
    assert fast is not None
    full, some = raw.transform_arrays(frame), raw.transform_arrays(frame, fast.input_columns)
    assert list(full) == list(ALL_COLUMNS)
    assert set(some) == set(fast.input_columns)
    assert set(some) < set(full)
    assert "hour_type" not in some  # neither is season, day_of_month...: the encoder does not read them
    assert "day_of_month" not in some
    for name, values in some.items():
        np.testing.assert_array_equal(values, full[name], err_msg=name)
    interaction = raw.transform_arrays(frame, ["hour_type"])  # an interaction brings what it joins
    assert set(interaction) == {"hour_of_day", "primary_type", "hour_type"}
    np.testing.assert_array_equal(interaction["hour_type"], full["hour_type"])
