"""Walk-forward folds (no fold validates on data earlier than its training) and the selection rule."""

from __future__ import annotations

import pandas as pd
import pytest

from chicago_arrest.core.parsing import parse_timestamps
from chicago_arrest.data.synthetic import generate_crimes
from chicago_arrest.model.backtest import Candidate, select_candidate, walk_forward_folds


@pytest.fixture(scope="module")
def crimes() -> pd.DataFrame:
    return generate_crimes(4_000, months=8, seed=3)


@pytest.mark.parametrize("n_folds", [1, 3, 5])
def test_every_fold_validates_after_all_its_training_rows(crimes: pd.DataFrame, n_folds: int) -> None:
    stamps = pd.Series(parse_timestamps(crimes["date"]).values, index=crimes["date"].index)
    folds = walk_forward_folds(crimes, n_folds)
    assert len(folds) == n_folds
    for fold in folds:
        assert stamps.iloc[fold.train].max() < stamps.iloc[fold.validate].min()
        assert set(fold.train).isdisjoint(fold.validate)
        # expanding window: everything before the validation month, nothing after it
        month = stamps.dt.to_period("M")
        assert (month.iloc[fold.validate].astype(str) == fold.validate_month).all()
        assert len(fold.train) == int((month < pd.Period(fold.validate_month)).sum())
    months = [f.validate_month for f in folds]
    assert months == sorted(months)
    assert len(set(months)) == len(months)
    assert months[-1] == "2017-08"  # the last fold validates on the latest month (the calibration month)


def test_short_window_gives_fewer_folds(crimes: pd.DataFrame) -> None:
    three_months = crimes[
        pd.Series(parse_timestamps(crimes["date"]).values, index=crimes["date"].index).dt.month <= 3
    ]
    folds = walk_forward_folds(three_months, 5)
    assert [f.validate_month for f in folds] == ["2017-03"]  # two training months at the least
    assert walk_forward_folds(three_months.head(150), 3) == []  # too few rows per fold


def test_fold_description_names_months_and_rows(crimes: pd.DataFrame) -> None:
    fold = walk_forward_folds(crimes, 3)[0]
    described = fold.describe()
    assert described["train_start"] == "2017-01"
    assert described["train_end"] == "2017-05"
    assert described["validate_month"] == "2017-06"
    assert described["train_rows"] == len(fold.train)
    assert described["validate_rows"] == len(fold.validate)


def cand(name: str, scores: tuple[float, ...], ms: float, size: int = 1_000_000) -> Candidate:
    return Candidate(name, scores, ms, size)


def test_clear_winner_wins_even_when_dearer() -> None:
    xgb = cand("xgboost", (0.90, 0.91, 0.92), ms=3.0)
    lr = cand("logreg", (0.88, 0.89, 0.90), ms=1.0)  # 0.02 behind in every fold: spread 0
    index, reason = select_candidate([lr, xgb])
    assert index == 1
    assert "logreg loses" in reason


def test_tie_goes_to_the_cheaper_model() -> None:
    # xgboost leads by 0.001 on average, but the per-fold advantage swings from -0.004 to +0.006.
    xgb = cand("xgboost", (0.900, 0.906, 0.897), ms=3.0)
    rf = cand("random_forest", (0.904, 0.900, 0.896), ms=1.0)
    lr = cand("logreg", (0.850, 0.860, 0.855), ms=0.5)
    index, reason = select_candidate([xgb, rf, lr])
    assert index == 1, reason
    assert reason.startswith("random_forest ties with the leader xgboost")


def test_equal_cost_tie_goes_to_the_smaller_artifact() -> None:
    a = cand("random_forest", (0.900, 0.905), ms=1.0, size=5_000_000)
    b = cand("xgboost", (0.902, 0.901), ms=1.0, size=1_000_000)
    assert select_candidate([a, b])[0] == 1


def test_scoring_times_within_the_noise_factor_count_as_equal() -> None:
    # Measured times swap under load (1.44 vs 1.64 ms/record): within 2x, the smaller artifact decides, so the
    # same data always selects the same model.
    rf = cand("random_forest", (0.856, 0.860, 0.855), ms=1.44, size=5_400_000)
    lr = cand("logreg", (0.857, 0.858, 0.859), ms=1.64, size=100_000)
    assert select_candidate([rf, lr])[0] == 1
    assert select_candidate([rf, cand("logreg", lr.scores, 1.2, lr.size_bytes)])[0] == 1
    # Beyond the factor, time decides.
    assert select_candidate([rf, cand("logreg", lr.scores, 3.1, lr.size_bytes)])[0] == 0


def test_consistent_small_lead_is_not_a_tie() -> None:
    # +0.001 in every fold: small, but beyond the spread of the paired differences (0).
    a = cand("xgboost", (0.901, 0.891, 0.881), ms=3.0)
    b = cand("logreg", (0.900, 0.890, 0.880), ms=1.0)
    assert select_candidate([a, b])[0] == 0


def test_selection_needs_scores() -> None:
    with pytest.raises(ValueError, match="no finite fold scores"):
        select_candidate([cand("logreg", (), 1.0)])
    with pytest.raises(ValueError, match="no candidates"):
        select_candidate([])
