"""Hyper-parameter search with Optuna on the walk-forward folds (TPE, median pruning, seeded, time-boxed).

The objective of a trial is the mean validation ROC-AUC over the folds of :mod:`chicago_arrest.model.backtest`;
each fold's score is reported as an intermediate value, so a trial that is below the median of earlier trials
after a fold is pruned. The first trial is always the given parameters (the defaults), so the search never
returns something that backtests worse than them. The budget is wall time: no fold starts after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

log = logging.getLogger(__name__)

#: Scores one parameter set on fold ``i`` (validation ROC-AUC).
FoldScorer = Callable[[dict[str, Any], int], float]


def suggest(trial: optuna.Trial, model_type: str) -> dict[str, Any]:
    """The search space of one model type.

    Args:
        trial: The Optuna trial.
        model_type: ``logreg``, ``random_forest`` or ``xgboost``.

    Returns:
        Classifier parameters.
    """
    if model_type == "logreg":
        return {"C": trial.suggest_float("C", 0.01, 10.0, log=True)}
    # Bounded so that any searched model stays within the serving budgets: exact TreeSHAP of one record costs
    # about trees x leaves x depth^2, and a forest of 150 trees of depth 14 took 100 ms where the budget is 25
    # (docs/model.md, "Resampling, forest size and XGBoost defaults").
    if model_type == "random_forest":
        return {  # XGBoost's random-forest mode (chicago_arrest.model.training.DEFAULT_PARAMS)
            "n_estimators": trial.suggest_int("n_estimators", 50, 150, step=25),
            "max_depth": trial.suggest_int("max_depth", 6, 12),
            "min_child_weight": trial.suggest_float("min_child_weight", 5.0, 40.0, log=True),  # rows a leaf
            "subsample": trial.suggest_float("subsample", 0.3, 0.8),
            "colsample_bynode": trial.suggest_float("colsample_bynode", 0.2, 0.6),
        }
    if model_type == "xgboost":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 200, 800, step=100),
            "max_depth": trial.suggest_int("max_depth", 3, 6),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 10.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        }
    raise ValueError(f"model_type must be logreg, random_forest or xgboost, got {model_type!r}")


@dataclass
class SearchResult:
    """Outcome of one study.

    Attributes:
        params: Best parameters (the given ones when nothing beat them).
        scores: Fold ROC-AUCs of the best parameters.
        trials: Every trial: ``number``, ``state``, ``params``, ``value`` (mean fold ROC-AUC or ``None``),
            ``scores`` (the folds it completed).
        seconds: Wall time of the study.
    """

    params: dict[str, Any]
    scores: list[float]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best_value(self) -> float:
        """Mean fold ROC-AUC of the best parameters."""
        return float(np.mean(self.scores)) if self.scores else float("nan")

    def summary(self) -> dict[str, Any]:
        """Plain dict for the model's info and MLflow."""
        states = [t["state"] for t in self.trials]
        return {
            "best_params": self.params,
            "best_value": self.best_value,
            "trials": len(self.trials),
            "complete": states.count("COMPLETE"),
            "pruned": states.count("PRUNED"),
            "seconds": self.seconds,
            "history": self.trials,
        }


def search(
    model_type: str,
    score_fold: FoldScorer,
    n_folds: int,
    *,
    base_params: dict[str, Any],
    budget_s: float,
    seed: int = 0,
    base_scores: list[float] | None = None,
    max_trials: int | None = None,
) -> SearchResult:
    """Run a seeded TPE study with median pruning over the folds for ``budget_s`` seconds of wall time.

    Args:
        model_type: Which search space (:func:`suggest`).
        score_fold: Scores parameters on one fold.
        n_folds: Number of folds.
        base_params: Parameters of the first trial (the defaults).
        budget_s: Wall-time budget; no fold starts after it (a trial cut short is pruned).
        seed: Seed of the TPE sampler.
        base_scores: Fold scores of ``base_params`` when already known (the first trial then costs nothing).
        max_trials: Stop after this many trials (``None``: only the budget stops the study).

    Returns:
        The :class:`SearchResult`.

    Raises:
        ValueError: When there are no folds or the budget is not positive.
    """
    if model_type not in SEARCHABLE:
        raise ValueError(f"model_type must be one of {sorted(SEARCHABLE)}, got {model_type!r}")
    if n_folds < 1:
        raise ValueError("search needs at least one fold")
    if budget_s <= 0:
        raise ValueError(f"search_budget_s must be > 0 for a search, got {budget_s}")
    start = time.perf_counter()
    deadline = start + budget_s
    fold_scores: dict[int, list[float]] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {**base_params, **suggest(trial, model_type)}
        scores = fold_scores.setdefault(trial.number, [])
        if trial.number == 0 and base_scores is not None:
            for i, score in enumerate(base_scores):
                scores.append(score)
                trial.report(float(np.mean(scores)), i)
            return float(np.mean(scores))
        for i in range(n_folds):
            if time.perf_counter() >= deadline:
                raise optuna.TrialPruned("search budget spent")
            scores.append(score_fold(params, i))
            trial.report(float(np.mean(scores)), i)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {i}")
        return float(np.mean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    study.enqueue_trial(_searchable(base_params, model_type), skip_if_exists=True)
    study.optimize(objective, timeout=budget_s, n_trials=max_trials, catch=())
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "params": t.params,
            "value": t.value,
            "scores": fold_scores.get(t.number, []),
        }
        for t in study.trials
    ]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"search_budget_s={budget_s} did not allow one complete trial of {model_type}")
    best = study.best_trial
    params = {**base_params, **best.params}
    seconds = time.perf_counter() - start
    log.info(
        "search %s: %d trials (%d complete) in %.1fs; best mean fold ROC-AUC %.4f with %s",
        model_type,
        len(trials),
        len(complete),
        seconds,
        best.value,
        params,
    )
    return SearchResult(params, fold_scores[best.number], trials, seconds)


def _searchable(params: dict[str, Any], model_type: str) -> dict[str, Any]:
    """The entries of ``params`` that are dimensions of the search space (what Optuna can enqueue)."""
    return {k: v for k, v in params.items() if k in SEARCHABLE[model_type]}


#: The dimensions of :func:`suggest` per model type.
SEARCHABLE: dict[str, frozenset[str]] = {
    "logreg": frozenset({"C"}),
    "random_forest": frozenset(
        {"n_estimators", "max_depth", "min_child_weight", "subsample", "colsample_bynode"}
    ),
    "xgboost": frozenset(
        {"n_estimators", "max_depth", "learning_rate", "min_child_weight", "subsample", "colsample_bytree"}
    ),
}
