"""The Optuna search: seeded, pruned, starts from the given parameters, and keeps to its time budget."""

from __future__ import annotations

import time

import pytest

from chicago_arrest.model.search import search


def fake_scorer(delay: float = 0.0):
    """ROC-AUC as a smooth function of C (best at C = 1), a little different per fold."""
    calls: list[tuple[float, int]] = []

    def score(params: dict, fold: int) -> float:
        calls.append((params["C"], fold))
        time.sleep(delay)
        return 0.9 - 0.01 * abs(__import__("math").log10(params["C"])) - 0.002 * fold

    return score, calls


def test_budget_is_honoured() -> None:
    score, _calls = fake_scorer(delay=0.05)
    start = time.perf_counter()
    result = search("logreg", score, 3, base_params={"C": 0.05}, budget_s=1.0, seed=0)
    elapsed = time.perf_counter() - start
    # No fold starts after the budget: at most one fold (0.05 s) plus Optuna's bookkeeping beyond it.
    assert elapsed < 1.0 + 0.5
    assert elapsed >= 1.0
    assert len(result.trials) >= 3
    assert result.seconds == pytest.approx(elapsed, abs=0.1)


def test_first_trial_is_the_given_parameters_and_the_best_is_no_worse() -> None:
    score, calls = fake_scorer()
    result = search(
        "logreg", score, 3, base_params={"C": 0.05}, budget_s=1.5, seed=1, base_scores=[0.88, 0.87, 0.86]
    )
    first = result.trials[0]
    assert first["params"] == {"C": 0.05}
    assert first["scores"] == [0.88, 0.87, 0.86]
    assert (0.05, 0) not in calls  # known scores are not recomputed
    assert result.best_value >= 0.87
    assert abs(__import__("math").log10(result.params["C"])) < 1.0  # moved towards C = 1
    summary = result.summary()
    assert summary["trials"] == len(result.trials)
    assert summary["best_value"] == result.best_value


def test_seeded_study_repeats() -> None:
    a = search(
        "xgboost",
        lambda p, f: 0.9 - abs(p["max_depth"] - 5) / 100,
        2,
        base_params={},
        budget_s=60,
        seed=3,
        max_trials=6,
    )
    b = search(
        "xgboost",
        lambda p, f: 0.9 - abs(p["max_depth"] - 5) / 100,
        2,
        base_params={},
        budget_s=60,
        seed=3,
        max_trials=6,
    )
    assert [t["params"] for t in a.trials] == [t["params"] for t in b.trials]


def test_pruning_stops_bad_trials_early() -> None:
    def score(params: dict, fold: int) -> float:
        return 0.9 if params["C"] > 0.5 else 0.6

    result = search("logreg", score, 4, base_params={"C": 1.0}, budget_s=60, seed=0, max_trials=25)
    pruned = [t for t in result.trials if t["state"] == "PRUNED"]
    assert pruned
    assert all(len(t["scores"]) < 4 for t in pruned)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="search_budget_s"):
        search("logreg", lambda p, f: 0.5, 1, base_params={}, budget_s=0)
    with pytest.raises(ValueError, match="model_type"):
        search("svm", lambda p, f: 0.5, 1, base_params={}, budget_s=1)
