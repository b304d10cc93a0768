"""``ArrestModel.set_threads(n, batch=k)``: large requests score on ``k`` threads with the same probabilities."""

from __future__ import annotations

import pandas as pd
import pytest

from chicago_arrest.model import artifact
from chicago_arrest.model.artifact import BATCH_ROWS, ArrestModel


def test_batch_threads_apply_from_batch_rows_on_and_change_nothing(
    trained: ArrestModel, split_records: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, test = split_records
    records = test.head(BATCH_ROWS + 10).reset_index(drop=True)
    small = records.head(BATCH_ROWS - 1)
    trained.set_threads(1)
    one_small, one_large = (
        trained.predict_arrest_probability(small),
        trained.predict_arrest_probability(records),
    )

    seen: list[tuple[int, int | None]] = []
    real = artifact.positive_scores

    def spy(clf, X, threads=None):  # type: ignore[no-untyped-def]
        seen.append((len(X), threads))
        return real(clf, X, threads)

    monkeypatch.setattr(artifact, "positive_scores", spy)
    try:
        trained.set_threads(1, batch=2)
        two_small, two_large = (
            trained.predict_arrest_probability(small),
            trained.predict_arrest_probability(records),
        )
    finally:
        trained.set_threads(1)
    assert [threads for _, threads in seen] == [None, 2]  # the grid's two points: 2 x rows per call
    assert (one_small == two_small).all()
    assert (one_large == two_large).all()
