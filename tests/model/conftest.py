"""Model-tier fixtures: models trained once per session on generated records."""

from __future__ import annotations

import pandas as pd
import pytest

from chicago_arrest.data.split import time_split
from chicago_arrest.data.synthetic import generate_crimes
from chicago_arrest.model.artifact import ArrestModel
from chicago_arrest.model.training import TrainConfig, train_model


@pytest.fixture(scope="session")
def split_records(stations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """12,000 generated crimes over 2017, split in time (test = December)."""
    train, test, _ = time_split(generate_crimes(12_000, stations=stations, seed=11))
    return train, test


@pytest.fixture(scope="session", params=["xgboost", "logreg"])
def trained(request: pytest.FixtureRequest, split_records, stations) -> ArrestModel:
    """A trained model of each served type."""
    train, _ = split_records
    return train_model(train, stations, TrainConfig(model_type=request.param, n_jobs=1)).model
