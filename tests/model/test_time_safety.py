"""A model trained on part of a year stays calibrated in months it never saw (issue 11).

The generated records have a season-free arrest rate, so a correct model predicts the same mean in July as in
May. Trained on January–May, every model type must be calibrated in the large on every month of July–December,
and re-dating a record into a training month (same weekday and time of day) must not move its probability.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.core.parsing import labels, parse_timestamps
from chicago_arrest.data.synthetic import generate_crimes
from chicago_arrest.model.feature_spec import LEGACY_FEATURES
from chicago_arrest.model.training import MODEL_TYPES, TrainConfig, train_model

#: 26 weeks: the same weekday and clock time, half a year earlier.
SHIFT = pd.Timedelta(weeks=26)


@pytest.fixture(scope="module")
def year(stations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """January–May (training) and July–December (later, never seen) of a generated, season-free year."""
    crimes = generate_crimes(14_000, stations=stations, seed=5)
    month = pd.Series(parse_timestamps(crimes["date"]).values, index=crimes["date"].index).dt.month
    return crimes[month <= 5].reset_index(drop=True), crimes[month >= 7].reset_index(drop=True)


def redated(records: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Records moved 26 weeks back into the training months, and which rows keep their calendar features.

    Rows landing on or leaving the first of a month change ``is_first_of_month`` legitimately (a feature every
    month has), so only the other rows must keep their probability exactly.
    """
    stamps = pd.Series(parse_timestamps(records["date"]).values, index=records["date"].index)
    moved = records.copy()
    moved["date"] = (stamps - SHIFT).dt.strftime("%Y-%m-%dT%H:%M:%S.000")
    same = ((stamps.dt.day != 1) & ((stamps - SHIFT).dt.day != 1)).to_numpy()
    return moved, same


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_calibrated_in_months_never_seen(model_type: str, year, stations) -> None:
    train, later = year
    model = train_model(train, stations, TrainConfig(model_type=model_type, n_jobs=1, backtest_folds=2)).model
    y, p = labels(later).values, model.predict_arrest_probability(later)
    month = pd.Series(parse_timestamps(later["date"]).values, index=later["date"].index).dt.month.to_numpy()
    gaps = {int(m): float(p[month == m].mean() - y[month == m].mean()) for m in np.unique(month)}
    assert sorted(gaps) == [7, 8, 9, 10, 11, 12]
    # ~1,170 records a month at a ~25 % rate: the observed rate alone has a standard error of ~0.013.
    assert max(abs(g) for g in gaps.values()) < 0.045, gaps
    assert abs(p.mean() - y.mean()) < 0.025

    moved, same = redated(later)
    assert same.mean() > 0.9
    np.testing.assert_allclose(model.predict_arrest_probability(moved)[same], p[same], rtol=0, atol=1e-9)


def test_month_features_would_move_unseen_months(year, stations) -> None:
    """The check above can fail: with the pre-issue-11 month and season features it does."""
    train, later = year
    # mi_threshold 0: keep every feature (season-free data gives the month columns almost no information)
    config = TrainConfig(
        model_type="logreg", n_jobs=1, backtest_folds=0, features=LEGACY_FEATURES, mi_threshold=0.0
    )
    model = train_model(train, stations, config).model
    moved, same = redated(later.head(500))
    before = model.predict_arrest_probability(later.head(500))[same]
    after = model.predict_arrest_probability(moved)[same]
    assert np.abs(after - before).max() > 1e-3
