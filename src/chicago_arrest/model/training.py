"""Training: raw labelled records in, a calibrated :class:`~chicago_arrest.model.artifact.ArrestModel` out.

The pipeline is :class:`~chicago_arrest.model.features.RawFeatures` (enrichment with the police stations embedded) →
encoders and scaling → SMOTE + random undersampling (applied only while fitting) → mutual-information
selection → classifier. SMOTE and undersampling train the classifier on a ~44 %-positive set, which inflates
its scores; a Platt calibrator fitted on a held-out, later month maps them back to probabilities that mean
what they say.

With a time split the candidate is backtested on walk-forward folds inside the training window
(:mod:`chicago_arrest.model.backtest`); an optional Optuna search (:mod:`chicago_arrest.model.search`) tunes the
classifier on the same folds within ``search_budget_s`` seconds. The served model never sees a month-of-year feature
(:data:`~chicago_arrest.model.feature_spec.DEFAULT_FEATURES`), so months it was not trained on cannot move its output.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbPipeline
from imblearn.under_sampling import RandomUnderSampler
from pandas.api.types import union_categoricals
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from chicago_arrest.core.parsing import labels, parse_timestamps
from chicago_arrest.core.runtime import available_cpus, release_memory
from chicago_arrest.core.schema import DATE
from chicago_arrest.model.artifact import ArrestModel, CalibrationMethod, Calibrator, positive_scores
from chicago_arrest.model.backtest import Backtest, Fold, walk_forward_folds
from chicago_arrest.model.encoding import build_encoder, encoded_feature_names
from chicago_arrest.model.feature_spec import DEFAULT_FEATURES, FeatureSpec
from chicago_arrest.model.features import MutualInfoSelector, RawFeatures
from chicago_arrest.model.vocabulary import INFO_KEY as VOCABULARY_KEY
from chicago_arrest.model.vocabulary import build_vocabulary

log = logging.getLogger(__name__)

ModelType = Literal["logreg", "random_forest", "xgboost"]
#: Every model type, the dearest to train first (the training pipeline's default order: pipelines/training.py).
MODEL_TYPES: tuple[ModelType, ...] = ("xgboost", "random_forest", "logreg")

#: Class rebalancing while fitting (:attr:`TrainConfig.resample`).
RESAMPLE_DEFAULT = False

#: Defaults chosen on the 2017 sample (docs/model.md, "Resampling, forest size and XGBoost defaults"). The
#: random forest is XGBoost's random-forest mode since issue 27 (one round of 100 parallel regression trees of
#: the 0/1 label on ``hist``: a third of scikit-learn's fit time on the full year, the same fold ROC-AUC and
#: calibration), bounded for serving like scikit-learn's before it: depth 10, half the rows per tree, at least
#: 10 rows a leaf (the squared error's hessian is 1 a row), a third of the columns per split.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"C": 1.0, "max_iter": 2000},
    "random_forest": {
        "n_estimators": 100,
        "max_depth": 10,
        "min_child_weight": 10.0,
        "subsample": 0.5,
        "colsample_bynode": 0.33,
    },
    # Optuna's best on the 2017 sample's walk-forward folds (docs/model.md, "Hyper-parameter search"), then, at the
    # scale of one and two years (issue 27), 600 trees of depth 5 at a learning rate of 0.06 instead of 700 of
    # depth 4 at 0.035: chosen on the walk-forward folds of 2015, of 2016 and of the two years together (data
    # before the 2017 test year), better than the sample's on each of the nine (docs/model.md, "XGBoost at the
    # scale of a year").
    "xgboost": {
        "n_estimators": 600,
        "max_depth": 5,
        "learning_rate": 0.06,
        "subsample": 0.65,
        "colsample_bytree": 0.61,
        "min_child_weight": 6.4,
    },
}


#: From this many training records on, training hands freed memory back between its phases
#: (:func:`~chicago_arrest.core.runtime.release_memory`, ~0.2 s each time with MLflow and KFP imported): what a
#: year or two gains in memory, a small training set would pay in time (the test suite trains hundreds).
RELEASE_MEMORY_ROWS = 100_000


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
    from xgboost import XGBClassifier, XGBRFRegressor

    if model_type == "random_forest":  # the 0/1 label regressed: leaves average arrest rates (artifact.py)
        return XGBRFRegressor(
            **merged,
            objective="reg:squarederror",
            tree_method="hist",
            n_jobs=n_jobs,
            random_state=random_state,
        )
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


@dataclass
class _Encoded:
    """Training rows (and validation rows) encoded once, reused by every classifier fit on them.

    Without resampling the mutual-information selection sees exactly the encoded training matrix whatever the
    classifier's parameters, so it is fitted here, once, and only the selected columns are kept: a fifth of
    the encoded width (21 of 104 columns on the 2017 year). Tree models keep them as ``float32``, which is
    what XGBoost turns any input into (the same model, half the memory). With resampling the selection
    depends on the resampled rows, so the full matrix is kept and the head selects.

    Attributes:
        features: The fitted feature pipeline (raw records → encoded matrix).
        x_train: Encoded (and, without resampling, selected) training rows.
        x_valid: The same for the validation rows (``None`` when there are none).
        selector: The fitted selection (``None`` with resampling: the head fits its own).
    """

    features: Pipeline
    x_train: np.ndarray
    x_valid: np.ndarray | None
    selector: MutualInfoSelector | None


def _rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]``; a slice (no copy) when the positions are a run (the walk-forward folds)."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return frame.iloc[int(positions[0]) : int(positions[-1]) + 1]
    return frame.iloc[positions]


def _encode(
    config: TrainConfig,
    raw_step: RawFeatures,
    raw: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> _Encoded:
    """Fit the encoder (and, without resampling, the selection) on rows ``train``; encode ``train`` and ``valid``.

    Args:
        config: The training configuration (features, seed, selection threshold, model type).
        raw_step: The fitted :class:`RawFeatures` (the stations): the first step of the returned pipeline.
        raw: Its features of every training record, computed once (they depend on nothing fitted but the
            stations, so every fold takes its rows from them).
        y: Labels of every training record.
        train: Positions of the rows to fit on (default: all).
        valid: Positions of rows to encode only.
    """
    encoder = build_encoder(config.random_state, config.features)
    features = Pipeline([("raw", raw_step), ("encode", encoder)])
    y_train = y if train is None else y[train]
    x_train = encoder.fit_transform_as(np.float32, raw if train is None else _rows(raw, train), y_train)
    x_valid = None if valid is None else encoder.transform(_rows(raw, valid))
    if config.resample:
        return _Encoded(features, x_train, x_valid, None)
    selector = MutualInfoSelector(threshold=config.mi_threshold).fit(x_train, y_train)
    dtype = np.float64 if config.model_type == "logreg" else np.float32
    keep = selector.get_support()
    return _Encoded(
        features,
        np.ascontiguousarray(x_train[:, keep], dtype=dtype),
        None if x_valid is None else np.ascontiguousarray(x_valid[:, keep], dtype=dtype),
        selector,
    )


#: Records whose raw features are computed at a time (:func:`raw_features`).
RAW_CHUNK = 65_536


def raw_features(raw_step: RawFeatures, records: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """:meth:`RawFeatures.transform_arrays` of every record, text columns as categoricals, a slice at a time.

    The features of a record depend on nothing but the record and the stations, so slices give the same values.
    As categoricals a year's ~13 text columns take ~25 MB instead of ~135 MB as Python objects, and computing
    them a slice at a time keeps the parsing's intermediate arrays small (two years at once: +330 MB). The
    encoders read categoricals as they read text (:class:`~chicago_arrest.model.features.CategoryCodes`).
    """
    parts = []
    for start in range(0, max(len(records), 1), RAW_CHUNK):
        part = pd.DataFrame(raw_step.transform_arrays(records.iloc[start : start + RAW_CHUNK], columns))
        for name in part.columns:
            if part[name].dtype == object:
                part[name] = part[name].astype("category")
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    out = {}
    for name in parts[0].columns:
        if isinstance(parts[0][name].dtype, pd.CategoricalDtype):
            out[name] = pd.Series(union_categoricals([p[name] for p in parts]))
        else:
            out[name] = pd.Series(np.concatenate([p[name].to_numpy() for p in parts]))
    return pd.DataFrame(out)


def _fit_head(
    config: TrainConfig, params: dict[str, Any], n_jobs: int, encoded: _Encoded, y: np.ndarray
) -> ImbPipeline:
    """The fitted head (resampling, selection, classifier) on ``encoded``'s training rows."""
    head = _head(config, params, n_jobs)
    if encoded.selector is None:
        return head.fit(encoded.x_train, y)
    classifier = head.named_steps["classifier"].fit(encoded.x_train, y)
    steps = [(name, step) for name, step in head.steps if name not in ("select", "classifier")]
    return ImbPipeline([*steps, ("select", encoded.selector), ("classifier", classifier)])


def _head_scores(head: ImbPipeline, encoded: _Encoded) -> np.ndarray:
    """P(class 1) of ``head`` on ``encoded``'s validation rows."""
    x = encoded.x_valid
    if x is None:
        raise ValueError("no validation rows were encoded")
    if encoded.selector is None:
        x = head[:-1].transform(x)  # the selection (the samplers act only while fitting)
    return positive_scores(head.named_steps["classifier"], x)


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
    cal_frame = train.iloc[cal_pos]
    y_fit, y_cal = y[fit_pos], y[cal_pos]

    folds = (
        walk_forward_folds(train, config.backtest_folds) if split == "time" and config.backtest_folds else []
    )
    if not folds:  # random split or a short window: the calibration slice is the only fold
        folds = [Fold(("fit", "fit"), "calibration", fit_pos, cal_pos)]
    # The last fold is the calibration split with a time split (the same rows): its head, fitted with the
    # parameters finally used, is the calibration head. Kept only while they cannot change (no search).
    last = folds[-1]
    reuse_last = np.array_equal(last.train, fit_pos) and np.array_equal(last.validate, cal_pos)
    heads: dict[int, ImbPipeline] = {}
    encoded: list[_Encoded | None] = []

    def score_fold(candidate: dict[str, Any], i: int) -> float:
        fold_data = encoded[i]
        if fold_data is None:
            raise RuntimeError(f"fold {i} was dropped after it was scored")
        head = _fit_head(config, candidate, n_jobs, fold_data, y[folds[i].train])
        if reuse_last and i == len(folds) - 1 and config.search_budget_s == 0:
            heads[i] = head
        return float(roc_auc_score(y[folds[i].validate], _head_scores(head, fold_data)))

    # The raw features depend on nothing fitted but the stations: computed once for every training record.
    raw_step = RawFeatures(stations).fit(train)
    raw = raw_features(raw_step, train, config.features.columns())
    large = len(train) >= RELEASE_MEMORY_ROWS
    if large:  # the raw features' temporaries (two years: ~90 MB the C heap would keep)
        release_memory(collect=True)
    # The encoder (and the selection) is fitted once per fold; every parameter set (search trial) reuses it.
    # Without a search a fold is scored as soon as it is encoded and its matrices dropped, but the last one
    # (the calibration head's): a year's folds are never all in memory at once.
    params = dict(config.params)
    scores: list[float] = []
    for i, fold in enumerate(folds):
        encoded.append(_encode(config, raw_step, raw, y, fold.train, fold.validate))
        if i == 0:
            log.info(
                "%s: %d fit rows, %d calibration rows, %d folds, %d encoded features",
                config.model_type,
                len(fit_pos),
                len(cal_pos),
                len(folds),
                len(encoded[0].features.named_steps["encode"].get_feature_names_out()),  # type: ignore[union-attr]
            )
        if config.search_budget_s == 0:
            scores.append(score_fold(params, i))
            if i < len(folds) - 1:
                encoded[i] = None
    if config.search_budget_s > 0:
        scores = [score_fold(params, i) for i in range(len(folds))]
    features_done = time.perf_counter()
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

    cal_encoded = encoded[-1] if reuse_last else None
    if cal_encoded is None:
        cal_encoded = _encode(config, raw_step, raw, y, fit_pos, cal_pos)
    head = heads.get(len(folds) - 1)
    if head is None:
        head = _fit_head(config, params, n_jobs, cal_encoded, y_fit)
    best_auc = float(roc_auc_score(y_cal, _head_scores(head, cal_encoded)))
    features = cal_encoded.features
    encoded.clear()  # the fold matrices: the refit below needs the memory
    heads.clear()
    del cal_encoded
    if large:
        release_memory(collect=True)

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
        every = _encode(config, raw_step, raw, y)
        features = every.features
        head = _fit_head(config, params, n_jobs, every, y)
        del every
        model.pipeline = ImbPipeline([*features.steps, *_served(head)])
        model.compile(cal_frame)
        log.info(
            "%s: refitted on all %d training rows in %.1fs",
            config.model_type,
            len(train),
            time.perf_counter() - refit_start,
        )

    names = encoded_feature_names(features.named_steps["encode"])
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
            "backtest_s": features_done
            - start,  # raw features, each fold encoded (and scored, without a search)
            "search_calibration_head_s": head_done - features_done,
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
