"""Train/test splits: time-based by default, stratified random for comparison with the predecessor."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from chicago_arrest.core.parsing import labels, parse_timestamps, require_values
from chicago_arrest.core.schema import DATE

SplitKind = Literal["time", "random"]


@dataclass(frozen=True)
class DataWindow:
    """What a model was trained and tested on (logged to MLflow and shown in reports).

    Attributes:
        kind: ``time`` or ``random``.
        train_start: First day (ISO date) of the training data.
        train_end: Last day of the training data.
        test_start: First day of the test data.
        test_end: Last day of the test data.
        train_rows: Rows in the training data.
        test_rows: Rows in the test data.
    """

    kind: SplitKind
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    train_rows: int
    test_rows: int

    def as_dict(self) -> dict[str, str | int]:
        """Plain dict (for MLflow params/tags and JSON)."""
        return asdict(self)


def dates_of(frame: pd.DataFrame) -> np.ndarray:
    """The records' ``date`` (``datetime64[ns]``), every one readable.

    Raises:
        FieldError: Naming ``date`` when a record has no readable date: split the records the data contract
            passed (it quarantines them), a record of no month belongs to neither side.
    """
    if DATE not in frame.columns:
        raise KeyError(f"records to split need the {DATE!r} field")
    dates = parse_timestamps(frame[DATE]).values
    require_values(DATE, frame[DATE], np.isnat(dates), "split the records the data contract passed")
    return dates


def _window(kind: SplitKind, train: pd.DataFrame, test: pd.DataFrame) -> DataWindow:
    tr, te = dates_of(train), dates_of(test)

    def day(values: np.ndarray, pick: str) -> str:
        return str(getattr(values, pick)().astype("datetime64[D]")) if len(values) else ""

    return DataWindow(
        kind, day(tr, "min"), day(tr, "max"), day(te, "min"), day(te, "max"), len(train), len(test)
    )


def time_split(frame: pd.DataFrame, test_months: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, DataWindow]:
    """Train on earlier months, test on the latest ``test_months`` calendar months.

    Args:
        frame: Records with a ``date`` field.
        test_months: Number of latest months held out.

    Returns:
        ``(train, test, window)``.

    Raises:
        ValueError: When there are not more months than ``test_months``.
        FieldError: When a record has no readable ``date`` (see :func:`dates_of`).
    """
    if test_months < 1:
        raise ValueError(f"test_months must be >= 1, got {test_months}")
    months = dates_of(frame).astype("datetime64[M]")
    distinct = np.unique(months)
    if len(distinct) <= test_months:
        raise ValueError(
            f"time split needs more than {test_months} month(s) of data, found {len(distinct)}: "
            f"{[str(m) for m in distinct]}"
        )
    cutoff = distinct[-test_months]
    is_test = months >= cutoff
    train, test = frame[~is_test], frame[is_test]
    return train, test, _window("time", train, test)


def random_split(
    frame: pd.DataFrame, test_size: float = 0.2, random_state: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, DataWindow]:
    """Stratified random split (what the Airflow predecessor reported; optimistic for a deployed model).

    Args:
        frame: Records with ``date`` and ``arrest``.
        test_size: Share held out.
        random_state: Seed.

    Returns:
        ``(train, test, window)``.

    Raises:
        FieldError: When a record has no readable ``date`` or label.
    """
    dates_of(frame)
    y = labels(frame).values
    train, test = train_test_split(frame, test_size=test_size, stratify=y, random_state=random_state)
    train, test = train.sort_index(), test.sort_index()
    return train, test, _window("random", train, test)


def split_records(
    frame: pd.DataFrame,
    kind: SplitKind = "time",
    test_months: int = 1,
    test_size: float = 0.2,
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame, DataWindow]:
    """Dispatch to :func:`time_split` or :func:`random_split`."""
    if kind == "time":
        return time_split(frame, test_months)
    if kind == "random":
        return random_split(frame, test_size, seed)
    raise ValueError(f"split kind must be 'time' or 'random', got {kind!r}")
