"""Training: raw labelled records in, a calibrated :class:`~chicago_arrest.model.artifact.ArrestModel` out.

The pipeline is :class:`~chicago_arrest.model.features.RawFeatures` (enrichment with the police stations embedded) →
encoders and scaling → SMOTE + random undersampling (applied only while fitting) → mutual-information
selection → classifier. SMOTE and undersampling train the classifier on a ~44 %-positive set, which inflates
its scores; a Platt calibrator fitted on a held-out, later month maps them back to probabilities that mean
what they say.

With a time split the candidate is backtested on walk-forward folds inside the training window
(:mod:`chicago_arrest.model.backtest`); an optional Optuna search (:mod:`chicago_arrest.model.search`) tunes the
classifier on the same folds within ``search_budget_s`` seconds. The served model never sees a month-of-year feature
(:data:`~chicago_arrest.model.features.DEFAULT_FEATURES`), so months it was not trained on cannot move its output.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbPipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from chicago_arrest.core.runtime import available_cpus
from chicago_arrest.core.schema import DATE, labels, parse_timestamps
from chicago_arrest.model.artifact import ArrestModel, CalibrationMethod, Calibrator
from chicago_arrest.model.backtest import Backtest, Fold, walk_forward_folds
from chicago_arrest.model.features import (
    DEFAULT_FEATURES,
    FeatureSpec,
    MutualInfoSelector,
    build_feature_pipeline,
)
from chicago_arrest.model.vocabulary import INFO_KEY as VOCABULARY_KEY
from chicago_arrest.model.vocabulary import build_vocabulary

log = logging.getLogger(__name__)

ModelType = Literal["logreg", "random_forest", "xgboost"]
MODEL_TYPES: tuple[ModelType, ...] = ("logreg", "random_forest", "xgboost")

#: Class rebalancing while fitting (:attr:`TrainConfig.resample`).
RESAMPLE_DEFAULT = False

#: Defaults chosen on the 2017 sample (docs/model.md, "Resampling, forest size and XGBoost defaults"). The
#: random forest is bounded for serving: 100 trees of depth 10 with 10 rows a leaf backtest as well as 150 trees
#: of depth 14 with 3 rows, at a fifth of the size, two thirds of the time for 1,000 records and a sixth of the
#: explain time.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"C": 1.0, "max_iter": 2000},
    "random_forest": {"n_estimators": 100, "max_depth": 10, "min_samples_leaf": 10, "max_samples": 0.5},
    # Optuna's best on the 2017 sample's walk-forward folds (docs/model.md, "Hyper-parameter search").
    "xgboost": {
        "n_estimators": 700,
        "max_depth": 4,
        "learning_rate": 0.035,
        "subsample": 0.65,
        "colsample_bytree": 0.61,
        "min_child_weight": 6.4,
    },
}


@dataclass
class TrainConfig:
    """How to train one model.

    Attributes:
        model_type: ``logreg``, ``random_forest`` or ``xgboost``.
        params: Classifier parameters over :data:`DEFAULT_PARAMS`.
        mi_threshold: Mutual-information threshold (nats) of the feature selection.
        resample: Rebalance the classes while fitting (SMOTE, then random undersampling). Off by default: on the
            walk-forward folds and the test months no model type gained from it (docs/model.md, "Resampling").
        smote_ratio: SMOTE's minority/majority ratio after oversampling (with ``resample``).
        undersample_ratio: Minority/majority ratio after random undersampling (with ``resample``).
        calibration: ``sigmoid`` (Platt on the log-odds; smooth) or ``isotonic``.
        calibration_fraction: Share of the training rows held out for calibration when the split is random.
        search_budget_s: Seconds of Optuna search on the backtest folds (0 = use the parameters as given).
        backtest_folds: Walk-forward folds inside the training window (time split only; fewer when the window
            is short; 0 = none, the calibration month is then the only fold).
        features: Which features the encoder uses (ablations; default :data:`DEFAULT_FEATURES`).
        refit: After calibration, refit features and classifier on every training row (the calibration rows
            included: the most recent month, with a time split), keeping the calibrator and threshold learnt
            on the held-out slice. More data for the served model, slightly looser calibration (docs/model.md).
        n_jobs: Threads for the classifier; ``None`` = :func:`~chicago_arrest.core.runtime.available_cpus`.
        random_state: Seed of every random step.
    """

    model_type: ModelType = "xgboost"
    params: dict[str, Any] = field(default_factory=dict)
    mi_threshold: float = 0.001
    resample: bool = RESAMPLE_DEFAULT
    smote_ratio: float = 0.5
    undersample_ratio: float = 0.8
    calibration: CalibrationMethod = "sigmoid"
    calibration_fraction: float = 0.15
    search_budget_s: float = 0.0
    backtest_folds: int = 3
    features: FeatureSpec = DEFAULT_FEATURES
    refit: bool = True
    n_jobs: int | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if not 0 < self.smote_ratio <= 1 or not 0 < self.undersample_ratio <= 1:
            raise ValueError("smote_ratio and undersample_ratio must be in (0, 1]")
        if self.mi_threshold < 0:
            raise ValueError(f"mi_threshold must be >= 0, got {self.mi_threshold}")
        if self.backtest_folds < 0 or self.search_budget_s < 0:
            raise ValueError("backtest_folds and search_budget_s must be >= 0")


def make_classifier(model_type: ModelType, params: dict[str, Any], n_jobs: int, random_state: int) -> Any:
    """Build an unfitted classifier with pinned threads.

    Args:
        model_type: Which classifier.
        params: Parameters over the defaults.
        n_jobs: Threads.
        random_state: Seed.

    Returns:
        The classifier.
    """
    merged = {**DEFAULT_PARAMS[model_type], **params}
    if model_type == "logreg":
        return LogisticRegression(**merged)
    if model_type == "random_forest":
        return RandomForestClassifier(**merged, n_jobs=n_jobs, random_state=random_state)
    from xgboost import XGBClassifier

    return XGBClassifier(
        **merged, tree_method="hist", n_jobs=n_jobs, random_state=random_state, eval_metric="logloss"
    )


@dataclass
class TrainResult:
    """A trained model and how it was made.

    Attributes:
        model: The served artifact.
        fit_seconds: Wall time of feature fitting, resampling, selection, classifier and calibration.
        calibration_auc: ROC-AUC on the calibration slice.
        params: Classifier parameters used.
        search_trials: Optuna trials (``number``, ``state``, ``params``, ``value``, ``scores``); empty without
            a search.
        backtest: Walk-forward folds and their validation ROC-AUC (used to pick the model type).
    """

    model: ArrestModel
    fit_seconds: float
    calibration_auc: float
    params: dict[str, Any]
    search_trials: list[dict[str, Any]] = field(default_factory=list)
    backtest: dict[str, Any] = field(default_factory=dict)


def calibration_split(
    frame: pd.DataFrame, split: Literal["time", "random"], fraction: float, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out calibration rows from the training data.

    ``time``: the latest calendar month of the training data (out-of-time, like the test month after it).
    ``random``: a stratified random ``fraction``.

    Returns:
        ``(fit positions, calibration positions)``.
    """
    positions = np.arange(len(frame))
    if split == "time":
        months = parse_timestamps(frame[DATE]).values.astype("datetime64[M]")
        dated = months[
            ~np.isnat(months)
        ]  # a record of no month (unreadable date) is fitted on, never held out
        last = dated.max() if len(dated) else np.datetime64("NaT", "M")
        cal = months == last
        if cal.sum() < 200 or (~cal).sum() < 200:
            raise ValueError(
                f"time split needs at least two months with 200+ rows each in the training data; "
                f"latest month {last} has {int(cal.sum())} of {len(frame)} rows"
            )
        return positions[~cal], positions[cal]
    fit, cal = train_test_split(
        positions, test_size=fraction, stratify=labels(frame).values, random_state=random_state
    )
    return np.sort(fit), np.sort(cal)


def _best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    grid = np.linspace(0.05, 0.95, 91)
    pred = p[None, :] >= grid[:, None]
    tp = (pred & (y[None, :] == 1)).sum(axis=1)
    fp = (pred & (y[None, :] == 0)).sum(axis=1)
    fn = ((~pred) & (y[None, :] == 1)).sum(axis=1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return float(grid[int(np.argmax(f1))])


def _head(config: TrainConfig, params: dict[str, Any], n_jobs: int) -> ImbPipeline:
    # Without resampling the steps stay, as passthrough: the served pipeline has the same step names either way.
    smote: Any = "passthrough"
    undersample: Any = "passthrough"
    if config.resample:
        smote = SMOTE(sampling_strategy=config.smote_ratio, random_state=config.random_state)
        undersample = RandomUnderSampler(
            sampling_strategy=config.undersample_ratio, random_state=config.random_state
        )
    return ImbPipeline(
        [
            ("smote", smote),
            ("undersample", undersample),
            ("select", MutualInfoSelector(threshold=config.mi_threshold)),
            ("classifier", make_classifier(config.model_type, params, n_jobs, config.random_state)),
        ]
    )


def _served(head: ImbPipeline) -> list[tuple[str, Any]]:
    # Samplers only act while fitting; the fitted SMOTE holds a neighbour index over the resampled training
    # matrix (6.7 of 8.3 MB of a served XGBoost model), so the served pipeline keeps them as passthrough.
    return [(name, "passthrough" if name in ("smote", "undersample") else step) for name, step in head.steps]


def measure_cost(model: ArrestModel, records: pd.DataFrame, repeats: int = 7) -> dict[str, float]:
    """What serving the model costs: milliseconds to score one record, and the pickled size.

    The time is the fastest of ``repeats`` calls: the one least disturbed by other work on the machine.

    Args:
        model: A trained model.
        records: Raw records (the first is scored).
        repeats: Timed calls (after one warm-up).

    Returns:
        ``ms_per_record`` and ``size_bytes``.
    """
    one = records.head(1)
    model.predict_arrest_probability(one)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict_arrest_probability(one)
        times.append((time.perf_counter() - t0) * 1000)
    return {"ms_per_record": float(np.min(times)), "size_bytes": float(len(pickle.dumps(model)))}


def train_model(
    train: pd.DataFrame,
    stations: pd.DataFrame,
    config: TrainConfig,
    *,
    split: Literal["time", "random"] = "time",
) -> TrainResult:
    """Fit, select and calibrate one model on raw training records.

    Args:
        train: Validated raw records with the ``arrest`` label, covering the training window.
        stations: Police stations to embed.
        config: Model type and knobs.
        split: How calibration rows are held out (see :func:`calibration_split`).

    Returns:
        The :class:`TrainResult`.
    """
    start = time.perf_counter()
    n_jobs = config.n_jobs or available_cpus()
    y = labels(train).values
    fit_pos, cal_pos = calibration_split(train, split, config.calibration_fraction, config.random_state)
    fit_frame, cal_frame = train.iloc[fit_pos], train.iloc[cal_pos]
    y_fit, y_cal = y[fit_pos], y[cal_pos]

    folds = (
        walk_forward_folds(train, config.backtest_folds) if split == "time" and config.backtest_folds else []
    )
    if not folds:  # random split or a short window: the calibration slice is the only fold
        folds = [Fold(("fit", "fit"), "calibration", fit_pos, cal_pos)]
    # Features are fitted once per fold; every parameter set (search trial) reuses the fold's matrices.
    fold_data = []
    for fold in folds:
        fold_features = build_feature_pipeline(stations, config.random_state, config.features)
        x_tr = fold_features.fit_transform(train.iloc[fold.train], y[fold.train])
        fold_data.append((fold_features, x_tr, fold_features.transform(train.iloc[fold.validate])))
    features_done = time.perf_counter()
    log.info(
        "%s: %d fit rows, %d calibration rows, %d folds, %d encoded features",
        config.model_type,
        len(fit_pos),
        len(cal_pos),
        len(folds),
        fold_data[-1][1].shape[1],
    )

    def score_fold(candidate: dict[str, Any], i: int) -> float:
        _, x_tr, x_va = fold_data[i]
        head = _head(config, candidate, n_jobs).fit(x_tr, y[folds[i].train])
        return float(roc_auc_score(y[folds[i].validate], head.predict_proba(x_va)[:, 1]))

    params = dict(config.params)
    scores = [score_fold(params, i) for i in range(len(folds))]
    search_summary: dict[str, Any] | None = None
    if config.search_budget_s > 0:
        from chicago_arrest.model.search import search

        found = search(
            config.model_type,
            score_fold,
            len(folds),
            base_params={**DEFAULT_PARAMS[config.model_type], **params},
            budget_s=config.search_budget_s,
            seed=config.random_state,
            base_scores=scores,
        )
        params, scores = found.params, found.scores
        search_summary = found.summary()
    backtest = Backtest([f.describe() for f in folds], scores)

    # The calibration head: the last fold is the calibration split with a time split (same rows), so its
    # fitted features are reused.
    last = folds[-1]
    if np.array_equal(last.train, fit_pos) and np.array_equal(last.validate, cal_pos):
        features, x_fit, x_cal = fold_data[-1]
    else:
        features = build_feature_pipeline(stations, config.random_state, config.features)
        x_fit = features.fit_transform(fit_frame, y_fit)
        x_cal = features.transform(cal_frame)
    head = _head(config, params, n_jobs).fit(x_fit, y_fit)
    best_auc = float(roc_auc_score(y_cal, head.predict_proba(x_cal)[:, 1]))

    head_done = time.perf_counter()
    pipeline = ImbPipeline([*features.steps, *_served(head)])
    model = ArrestModel(pipeline=pipeline)
    model.compile(cal_frame)
    # Calibrate on exactly the scores served: the compiled path, smoothed over distance.
    raw_cal = model.raw_scores(cal_frame)
    calibrator = Calibrator(config.calibration).fit(raw_cal, y_cal)
    p_cal = calibrator.transform(raw_cal)
    threshold = _best_threshold(y_cal, p_cal)

    calibrated = time.perf_counter()
    if config.refit:
        refit_start = calibrated
        features = build_feature_pipeline(stations, config.random_state, config.features)
        x_all = features.fit_transform(train, y)
        head = _head(config, params, n_jobs).fit(x_all, y)
        model.pipeline = ImbPipeline([*features.steps, *_served(head)])
        model.compile(cal_frame)
        log.info(
            "%s: refitted on all %d training rows in %.1fs",
            config.model_type,
            len(train),
            time.perf_counter() - refit_start,
        )

    names = np.asarray(features.get_feature_names_out(), dtype=object)
    selected = names[head.named_steps["select"].get_support()].tolist()
    resampled_rate = (
        config.smote_ratio / (config.smote_ratio + config.smote_ratio / config.undersample_ratio)
        if config.resample
        else float(y_fit.mean())
    )
    fit_seconds = time.perf_counter() - start
    info = {
        "model_type": config.model_type,
        "params": {**DEFAULT_PARAMS[config.model_type], **params},
        "mi_threshold": config.mi_threshold,
        "resample": config.resample,
        "smote_ratio": config.smote_ratio,
        "undersample_ratio": config.undersample_ratio,
        "calibration": config.calibration,
        "split": split,
        "fit_rows": len(train) if config.refit else len(fit_pos),
        "calibration_rows": len(cal_pos),
        "refit": config.refit,
        "train_positive_rate": float(y_fit.mean()),
        "resampled_positive_rate": float(resampled_rate),
        "encoded_features": len(names),
        "selected_features": selected,
        "threshold": threshold,
        "calibration_auc": best_auc,
        "backtest": backtest.as_dict(),
        "search": search_summary,
        "features": {k: list(v) for k, v in vars(config.features).items()},
        # The categories of the training window, for the model server's form (chicago_arrest.model.vocabulary).
        VOCABULARY_KEY: build_vocabulary(train),
        "fit_seconds": fit_seconds,
        "timings": {
            "features_s": features_done - start,
            "resample_select_classifier_s": head_done - features_done,
            "compile_calibrate_s": calibrated - head_done,
            "refit_s": time.perf_counter() - calibrated,
        },
    }
    model.calibrator, model.threshold, model.info = calibrator, threshold, info
    info["cost"] = measure_cost(model, cal_frame)
    log.info(
        "%s trained in %.1fs: backtest ROC-AUC %.4f ± %.4f over %d folds, calibration AUC %.4f, "
        "%d/%d features selected, threshold %.2f",
        config.model_type,
        fit_seconds,
        backtest.mean,
        backtest.std,
        len(folds),
        best_auc,
        len(selected),
        len(names),
        threshold,
    )
    return TrainResult(
        model,
        fit_seconds,
        best_auc,
        info["params"],
        (search_summary or {}).get("history", []),
        info["backtest"],
    )
