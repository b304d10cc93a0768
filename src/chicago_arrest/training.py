"""Training: raw labelled records in, a calibrated :class:`~chicago_arrest.artifact.ArrestModel` out.

The pipeline is :class:`~chicago_arrest.features.RawFeatures` (enrichment with the police stations embedded) →
encoders and scaling → SMOTE + random undersampling (applied only while fitting) → mutual-information
selection → classifier. SMOTE and undersampling train the classifier on a ~44 %-positive set, which inflates
its scores; a Platt calibrator fitted on a held-out, later month maps them back to probabilities that mean
what they say. An optional bounded random search tunes the classifier on the calibration slice.
"""

from __future__ import annotations

import logging
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

from chicago_arrest.artifact import ArrestModel, CalibrationMethod, Calibrator
from chicago_arrest.features import MutualInfoSelector, build_feature_pipeline
from chicago_arrest.runtime import available_cpus
from chicago_arrest.schema import DATE, LABEL, parse_bool, parse_timestamp

log = logging.getLogger(__name__)

ModelType = Literal["logreg", "random_forest", "xgboost"]
MODEL_TYPES: tuple[ModelType, ...] = ("logreg", "random_forest", "xgboost")

#: Defaults chosen on the 2017 sample (docs/model.md); random forest is bounded for a 2-core budget.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"C": 1.0, "max_iter": 2000},
    "random_forest": {"n_estimators": 150, "max_depth": 14, "min_samples_leaf": 3, "max_samples": 0.5},
    "xgboost": {
        "n_estimators": 400,
        "max_depth": 6,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 2,
    },
}
#: Search space of the optional bounded hyper-parameter search.
SEARCH_SPACE: dict[str, dict[str, list[Any]]] = {
    "logreg": {"C": [0.05, 0.2, 1.0, 5.0]},
    "random_forest": {
        "n_estimators": [100, 150, 200],
        "max_depth": [10, 14, 18],
        "min_samples_leaf": [1, 3, 5],
    },
    "xgboost": {
        "n_estimators": [200, 400, 600],
        "max_depth": [4, 6, 8],
        "learning_rate": [0.03, 0.05, 0.1],
        "min_child_weight": [1, 2, 5],
    },
}


@dataclass
class TrainConfig:
    """How to train one model.

    Attributes:
        model_type: ``logreg``, ``random_forest`` or ``xgboost``.
        params: Classifier parameters over :data:`DEFAULT_PARAMS`.
        mi_threshold: Mutual-information threshold (nats) of the feature selection.
        smote_ratio: SMOTE's minority/majority ratio after oversampling.
        undersample_ratio: Minority/majority ratio after random undersampling.
        calibration: ``sigmoid`` (Platt on the log-odds; smooth) or ``isotonic``.
        calibration_fraction: Share of the training rows held out for calibration when the split is random.
        search_budget_s: Seconds of random hyper-parameter search (0 = use the parameters as given).
        refit: After calibration, refit features and classifier on every training row (the calibration rows
            included: the most recent month, with a time split), keeping the calibrator and threshold learnt
            on the held-out slice. More data for the served model, slightly looser calibration (docs/model.md).
        n_jobs: Threads for the classifier; ``None`` = :func:`~chicago_arrest.runtime.available_cpus`.
        random_state: Seed of every random step.
    """

    model_type: ModelType = "xgboost"
    params: dict[str, Any] = field(default_factory=dict)
    mi_threshold: float = 0.001
    smote_ratio: float = 0.5
    undersample_ratio: float = 0.8
    calibration: CalibrationMethod = "sigmoid"
    calibration_fraction: float = 0.15
    search_budget_s: float = 0.0
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
        calibration_auc: ROC-AUC on the calibration slice (used to pick the best model type).
        params: Classifier parameters used.
        search_trials: Hyper-parameter trials as ``(params, calibration AUC)``.
    """

    model: ArrestModel
    fit_seconds: float
    calibration_auc: float
    params: dict[str, Any]
    search_trials: list[tuple[dict[str, Any], float]] = field(default_factory=list)


def labels(frame: pd.DataFrame) -> np.ndarray:
    """The label (``arrest``) as a 0/1 int array.

    Raises:
        ValueError: When the label column is missing or has empty / unknown values.
    """
    if LABEL not in frame.columns:
        raise ValueError(f"training data needs the label column {LABEL!r}")
    parsed, bad = parse_bool(frame[LABEL])
    if bad.any() or parsed.isna().any():
        raise ValueError(f"{LABEL!r} has {int(bad.sum() + parsed.isna().sum())} empty or non-boolean values")
    return parsed.astype(bool).to_numpy().astype(int)


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
        months = parse_timestamp(frame[DATE]).dt.to_period("M")
        last = months.max()
        cal = (months == last).to_numpy()
        if cal.sum() < 200 or (~cal).sum() < 200:
            raise ValueError(
                f"time split needs at least two months with 200+ rows each in the training data; "
                f"latest month {last} has {int(cal.sum())} of {len(frame)} rows"
            )
        return positions[~cal], positions[cal]
    fit, cal = train_test_split(
        positions, test_size=fraction, stratify=labels(frame), random_state=random_state
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
    return ImbPipeline(
        [
            ("smote", SMOTE(sampling_strategy=config.smote_ratio, random_state=config.random_state)),
            (
                "undersample",
                RandomUnderSampler(
                    sampling_strategy=config.undersample_ratio, random_state=config.random_state
                ),
            ),
            ("select", MutualInfoSelector(threshold=config.mi_threshold)),
            ("classifier", make_classifier(config.model_type, params, n_jobs, config.random_state)),
        ]
    )


def _sample_params(model_type: ModelType, rng: np.random.Generator) -> dict[str, Any]:
    return {k: v[int(rng.integers(len(v)))] for k, v in SEARCH_SPACE[model_type].items()}


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
    y = labels(train)
    fit_pos, cal_pos = calibration_split(train, split, config.calibration_fraction, config.random_state)
    fit_frame, cal_frame = train.iloc[fit_pos], train.iloc[cal_pos]
    y_fit, y_cal = y[fit_pos], y[cal_pos]

    features = build_feature_pipeline(stations, random_state=config.random_state)
    x_fit = features.fit_transform(fit_frame, y_fit)
    x_cal = features.transform(cal_frame)
    features_done = time.perf_counter()
    log.info(
        "%s: %d fit rows, %d calibration rows, %d encoded features",
        config.model_type,
        len(fit_pos),
        len(cal_pos),
        x_fit.shape[1],
    )

    params = dict(config.params)
    trials: list[tuple[dict[str, Any], float]] = []
    head = _head(config, params, n_jobs).fit(x_fit, y_fit)
    best_auc = float(roc_auc_score(y_cal, head.predict_proba(x_cal)[:, 1]))
    if config.search_budget_s > 0:
        trials.append((params, best_auc))
        rng = np.random.default_rng(config.random_state)
        deadline = start + config.search_budget_s
        while time.perf_counter() < deadline:
            candidate = {**params, **_sample_params(config.model_type, rng)}
            if any(candidate == t[0] for t in trials):
                if len(trials) >= np.prod([len(v) for v in SEARCH_SPACE[config.model_type].values()]):
                    break
                continue
            trial = _head(config, candidate, n_jobs).fit(x_fit, y_fit)
            auc = float(roc_auc_score(y_cal, trial.predict_proba(x_cal)[:, 1]))
            trials.append((candidate, auc))
            log.info("search %s: %s -> calibration AUC %.4f", config.model_type, candidate, auc)
            if auc > best_auc:
                head, best_auc, params = trial, auc, candidate

    head_done = time.perf_counter()
    # Samplers only act while fitting; the fitted SMOTE holds a neighbour index over the resampled training
    # matrix (6.7 of 8.3 MB of a served XGBoost model), so the served pipeline keeps them as passthrough.
    served_head = [
        (name, "passthrough" if name in ("smote", "undersample") else step) for name, step in head.steps
    ]
    pipeline = ImbPipeline([*features.steps, *served_head])
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
        features = build_feature_pipeline(stations, random_state=config.random_state)
        x_all = features.fit_transform(train, y)
        head = _head(config, params, n_jobs).fit(x_all, y)
        served_head = [(n, "passthrough" if n in ("smote", "undersample") else s) for n, s in head.steps]
        model.pipeline = ImbPipeline([*features.steps, *served_head])
        model.compile(cal_frame)
        log.info(
            "%s: refitted on all %d training rows in %.1fs",
            config.model_type,
            len(train),
            time.perf_counter() - refit_start,
        )

    names = np.asarray(features.get_feature_names_out(), dtype=object)
    selected = names[head.named_steps["select"].get_support()].tolist()
    resampled_rate = config.smote_ratio / (config.smote_ratio + config.smote_ratio / config.undersample_ratio)
    fit_seconds = time.perf_counter() - start
    info = {
        "model_type": config.model_type,
        "params": {**DEFAULT_PARAMS[config.model_type], **params},
        "mi_threshold": config.mi_threshold,
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
        "fit_seconds": fit_seconds,
        "timings": {
            "features_s": features_done - start,
            "resample_select_classifier_s": head_done - features_done,
            "compile_calibrate_s": calibrated - head_done,
            "refit_s": time.perf_counter() - calibrated,
        },
    }
    model.calibrator, model.threshold, model.info = calibrator, threshold, info
    log.info(
        "%s trained in %.1fs: calibration AUC %.4f, %d/%d features selected, threshold %.2f",
        config.model_type,
        fit_seconds,
        best_auc,
        len(selected),
        len(names),
        threshold,
    )
    return TrainResult(model, fit_seconds, best_auc, info["params"], trials)
