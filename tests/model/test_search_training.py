"""train_model with a search budget: an Optuna study on the walk-forward folds, within the budget."""

from __future__ import annotations

import pandas as pd

from chicago_arrest.model.training import TrainConfig, train_model


def test_search_on_the_folds_within_the_budget(
    split_records: tuple[pd.DataFrame, pd.DataFrame], stations
) -> None:
    train, _ = split_records
    result = train_model(train, stations, TrainConfig(model_type="logreg", n_jobs=1, search_budget_s=3.0))
    info = result.model.info or {}
    search = info["search"]
    # no fold starts after the budget: the study overruns it by at most one fold (~1 s here, 3 s of slack for
    # a loaded machine)
    assert search["seconds"] < 3.0 + 3.0
    assert search["trials"] == len(result.search_trials) >= 2
    assert result.search_trials[0]["params"] == {"C": 1.0}  # the defaults first
    backtest = info["backtest"]
    assert len(backtest["folds"]) == 3
    assert backtest["mean"] == search["best_value"] >= result.search_trials[0]["value"]
    assert info["params"]["C"] == search["best_params"]["C"]
    assert [f["validate_month"] for f in backtest["folds"]] == ["2017-09", "2017-10", "2017-11"]


def test_no_budget_no_search(trained) -> None:
    info = trained.info or {}
    assert info["search"] is None
    assert len(info["backtest"]["scores"]) == 3
    assert info["cost"]["ms_per_record"] > 0
    assert info["cost"]["size_bytes"] > 10_000
