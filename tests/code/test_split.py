"""Time-based and stratified random splits."""

from __future__ import annotations

import pandas as pd
import pytest

from chicago_arrest.data.split import random_split, split_records, time_split


def test_time_split_tests_on_the_latest_months(crimes: pd.DataFrame) -> None:
    train, test, window = time_split(crimes, test_months=2)
    assert len(train) + len(test) == len(crimes)
    assert window.test_start == "2017-11-01"
    assert window.train_end < window.test_start
    assert pd.to_datetime(train["date"]).max() < pd.to_datetime(test["date"]).min()
    assert window.as_dict()["test_rows"] == len(test)


def test_time_split_needs_enough_months(crimes: pd.DataFrame) -> None:
    one_month = crimes[crimes["date"].str.startswith("2017-03")]
    with pytest.raises(ValueError, match="more than 1 month"):
        time_split(one_month)
    with pytest.raises(ValueError, match="test_months"):
        time_split(crimes, test_months=0)


def test_random_split_is_stratified_and_seeded(crimes: pd.DataFrame) -> None:
    _train, test, window = random_split(crimes, test_size=0.2, random_state=3)
    assert window.kind == "random"
    assert len(test) == pytest.approx(0.2 * len(crimes), abs=1)
    rate = (crimes["arrest"] == "true").mean()
    assert (test["arrest"] == "true").mean() == pytest.approx(rate, abs=0.01)
    assert random_split(crimes, 0.2, 3)[1].index.equals(test.index)


def test_unknown_kind(crimes: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="split kind"):
        split_records(crimes, kind="sideways")  # type: ignore[arg-type]
