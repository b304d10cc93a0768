"""The served artifact: ONE object that takes raw crime records and returns calibrated arrest probabilities.

:class:`ArrestModel` holds a fitted imbalanced-learn pipeline (:class:`~chicago_arrest.model.features.RawFeatures`,
the enrichment with the police stations embedded → encoders and scaling → mutual-information selection →
classifier; the resamplers are passthrough once fitted) and a :class:`Calibrator`. This module is everything
the model server and a pickled model need at predict time; the training loop that builds the object is
:mod:`chicago_arrest.model.training`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from chicago_arrest.core.schema import Records, record_count
from chicago_arrest.data.enrich import DISTANCE
from chicago_arrest.model.features import FastEncoder

log = logging.getLogger(__name__)

CalibrationMethod = Literal["sigmoid", "isotonic"]


class Calibrator(BaseEstimator):
    """Maps raw classifier scores to calibrated probabilities.

    Args:
        method: ``sigmoid`` fits ``p = σ(a·logit(s) + b)`` (Platt; ``b`` absorbs the prior shift of resampling)
            or ``isotonic`` a monotone step function.
    """

    def __init__(self, method: CalibrationMethod = "sigmoid") -> None:
        self.method = method

    @staticmethod
    def _logit(scores: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(scores, dtype=float), 1e-7, 1 - 1e-7)
        return np.log(s / (1 - s))

    def fit(self, scores: np.ndarray, y: np.ndarray) -> Calibrator:
        """Fit on held-out scores and labels."""
        if self.method == "isotonic":
            self.iso_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
        else:
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(self._logit(scores)[:, None], y)
            self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        if self.method == "isotonic":
            return np.asarray(self.iso_.predict(scores), dtype=float)
        z = self.a_ * self._logit(scores) + self.b_
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=float)


#: Grid (metres) on which the classifier sees the station distance. Socrata shifts crime locations to the block
#: for privacy, so the model must not tell apart points a few metres apart, but trees learn steps on the
#: distance. The classifier is evaluated at the two grid points around a record's distance and the scores are
#: interpolated linearly: continuous in the distance, so a 10 m move changes the score by at most a tenth of the
#: largest step within 100 m. On the 2017 sample the largest change from a 10 m move fell from 0.032 to below
#: 0.01 at the same ROC-AUC (docs/model.md), for two classifier calls per batch.
DISTANCE_GRID_M = 100.0
#: From this many records on, the classifier runs on ``set_threads(..., batch=k)``'s threads: one thread is the
#: fastest for a few records, two halve XGBoost's time for 1,000 (docs/benchmarks.md).
BATCH_ROWS = 256


#: Records scored at a time by :meth:`ArrestModel.raw_scores` (a batch of a year is scored in slices).
SCORE_CHUNK = 32_768


def _record_slice(records: Records, start: int, stop: int) -> Records:
    """Rows ``start:stop`` of a frame or of a mapping of columns."""
    if isinstance(records, pd.DataFrame):
        return records.iloc[start:stop]
    return {name: values[start:stop] for name, values in records.items()}


def positive_scores(clf: Any, X: np.ndarray, threads: int | None = None) -> np.ndarray:
    """``clf.predict_proba(X)[:, 1]``, without scikit-learn's per-call overhead for random forests.

    ``RandomForestClassifier.predict_proba`` dispatches every tree through joblib (~10 ms for one row with 150
    trees); averaging the trees' own probabilities directly is the same computation. Each tree is asked through
    ``tree_.predict`` (what ``DecisionTreeClassifier.predict_proba`` returns, without its per-call checks: 0.5
    instead of 1.4 ms for one row with 150 trees).

    ``threads`` (default: the classifier's own ``n_jobs``) runs a forest's trees or XGBoost's prediction on
    that many threads; the result is the same to the last bit.
    """
    if isinstance(clf, RandomForestClassifier):
        x32 = np.ascontiguousarray(X, dtype=np.float32)
        trees = [tree.tree_ for tree in clf.estimators_]
        total = np.zeros(len(x32))
        if threads is None or threads <= 1:
            for tree in trees:
                total += tree.predict(x32)[:, 1]
            return total / len(trees)
        # The trees' own work releases the GIL. Each thread fills the rows of its trees; the sum then runs in
        # tree order, so the result is the one-thread result to the last bit.
        each = np.empty((len(trees), len(x32)))

        def fill(first: int) -> None:
            for i in range(first, len(trees), threads):
                each[i] = trees[i].predict(x32)[:, 1]

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fill, range(threads)))
        for row in each:
            total += row
        return total / len(trees)
    forest = _xgboost_forest(clf)
    if forest or _plain_binary_xgboost(clf):
        # What XGBClassifier.predict_proba computes for class 1 (the forest: its prediction), without its
        # per-call configuration context (about a fifth of a one-record call).
        try:
            iterations = (0, clf.best_iteration + 1)
        except AttributeError:
            iterations = (0, 0)
        booster = clf.get_booster() if threads is None else _booster_with_threads(clf, threads)
        with contextlib.nullcontext() if threads is None else _openmp_threads(threads):
            scores = booster.inplace_predict(X, iteration_range=iterations, missing=clf.missing)
        scores = np.asarray(scores, dtype=float)
        return np.clip(scores, 0.0, 1.0) if forest else scores
    return np.asarray(clf.predict_proba(X)[:, 1], dtype=float)


_OPENMP: list[Any] = []


def _openmp_threads(threads: int) -> Any:
    """Context: OpenMP may use ``threads`` threads in this thread.

    A server pins ``OMP_NUM_THREADS=1`` (one thread is the fastest for single records), and XGBoost then stays
    on one thread whatever its ``nthread``. The limit is raised for one call and restored after it.
    """
    if not _OPENMP:  # the OpenMP runtimes loaded by then (XGBoost's is, once a booster predicts)
        from threadpoolctl import ThreadpoolController

        _OPENMP.append(ThreadpoolController().select(user_api="openmp"))
    return _OPENMP[0].limit(limits=threads)


_BOOSTERS: weakref.WeakKeyDictionary[Any, dict[int, Any]] = weakref.WeakKeyDictionary()
_BOOSTERS_LOCK = threading.Lock()


def _booster_with_threads(clf: Any, threads: int) -> Any:
    """A copy of ``clf``'s booster that predicts on ``threads`` threads.

    A booster's ``nthread`` is shared by every caller, and requests of different sizes are scored at once.
    """
    with _BOOSTERS_LOCK:
        boosters = _BOOSTERS.setdefault(clf, {})
        booster = boosters.get(threads)
        if booster is None:
            booster = clf.get_booster().copy()
            booster.set_param({"nthread": threads})
            boosters[threads] = booster
        return booster


#: The ``random_forest`` model type since issue 27: XGBoost's random-forest mode, regression trees on the 0/1 label
#: (squared error), so that the forest averages its leaves' arrest rates as scikit-learn's forest averages its
#: trees' class frequencies. (Its classifier takes one Newton step of the log-loss per tree: the same ranking,
#: but probabilities that Platt scaling could not straighten: ECE 0.032 against 0.009.)
XGBOOST_FOREST = "XGBRFRegressor"


def _xgboost_forest(clf: Any) -> bool:
    """XGBoost's random forest regressing the 0/1 label: its prediction is P(class 1)."""
    return type(clf).__name__ == XGBOOST_FOREST and clf.objective == "reg:squarederror"


def _plain_binary_xgboost(clf: Any) -> bool:
    """An XGBoost tree classifier of two classes with the logistic objective (its output is P(class 1))."""
    return (
        type(clf).__name__ == "XGBClassifier"
        and clf.objective == "binary:logistic"
        and clf.booster in (None, "gbtree")
        and getattr(clf, "n_classes_", 0) == 2
    )


class ArrestModel(ClassifierMixin, BaseEstimator):
    """The served artifact: raw Socrata records in, calibrated arrest probability out.

    Args:
        pipeline: Fitted imbalanced-learn pipeline (features → optional resampling → selection → classifier).
        calibrator: Fitted :class:`Calibrator`.
        threshold: Probability at or above which :meth:`predict` says arrest (F1-optimal on calibration data).
        info: Metadata (model type, parameters, data window, selected features, timings).
        distance_grid_m: Grid of the distance interpolation (see :data:`DISTANCE_GRID_M`); 0 = none.
    """

    def __init__(
        self,
        pipeline: ImbPipeline | None = None,
        calibrator: Calibrator | None = None,
        threshold: float = 0.5,
        info: dict[str, Any] | None = None,
        distance_grid_m: float = DISTANCE_GRID_M,
    ) -> None:
        self.pipeline = pipeline
        self.calibrator = calibrator
        self.threshold = threshold
        self.info = info
        self.distance_grid_m = distance_grid_m

    classes_ = np.array([False, True])

    def _require(self) -> tuple[ImbPipeline, Calibrator]:
        if self.pipeline is None or self.calibrator is None:
            raise RuntimeError(
                "ArrestModel is not trained: build it with chicago_arrest.model.training.train_model"
            )
        return self.pipeline, self.calibrator

    def compile(self, sample: pd.DataFrame) -> bool:
        """Build the fast prediction path and check it reproduces the pipeline on ``sample`` (raw records).

        Returns:
            Whether the compiled encoder is used (it is dropped when it does not match exactly).
        """
        if self.pipeline is None:
            raise RuntimeError("ArrestModel is not trained")
        raw_step, encoder = self.pipeline.steps[0][1], self.pipeline.named_steps["encode"]
        try:
            fast = FastEncoder(encoder)
            ok = fast.verify(encoder, raw_step.transform(sample))
        except NotImplementedError as exc:
            log.warning("prediction fast path unavailable: %s", exc)
            ok = False
        if not ok:
            log.warning("compiled encoder does not reproduce the pipeline: using scikit-learn's (slower)")
        self.fast_encoder_ = fast if ok else None
        return ok

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models pickled by earlier versions lack newer attributes: load them with the behaviour they had.
        state.pop("distance_smoothing_m", None)
        state.setdefault("distance_grid_m", 0.0)
        state.setdefault("fast_encoder_", None)
        self.__dict__.update(state)

    def raw_scores(self, records: Records) -> np.ndarray:
        """Uncalibrated classifier scores, interpolated on the distance grid (:attr:`distance_grid_m`).

        More than :data:`SCORE_CHUNK` records are scored a slice at a time: every step is per record, so the
        scores are the same, and the encoded matrices of a year of records (two grid points, 104 columns: ~1 GB)
        are never held at once.
        """
        n = record_count(records)
        if n > SCORE_CHUNK:
            return np.concatenate(
                [
                    self.raw_scores(_record_slice(records, i, i + SCORE_CHUNK))
                    for i in range(0, n, SCORE_CHUNK)
                ]
            )
        variants, weight = self.selected_variants(records)
        clf = self.pipeline.named_steps["classifier"]  # type: ignore[union-attr]
        threads = getattr(self, "batch_threads_", None) if n >= BATCH_ROWS else None
        scores = positive_scores(clf, np.vstack(variants), threads).reshape(len(variants), n)
        if weight is None:
            return scores[0]
        return (1.0 - weight) * scores[0] + weight * scores[1]

    def selected_variants(self, records: Records) -> tuple[list[np.ndarray], np.ndarray | None]:
        """The classifier's input for ``records``: one selected-feature matrix per distance grid point.

        Returns:
            The matrices (one without a grid; the grid points below and above each distance with one) and the
            interpolation weight of the second (``None`` without a grid). :meth:`raw_scores` is
            ``(1 - w)·score(X0) + w·score(X1)``; :mod:`chicago_arrest.model.explain` decomposes the same matrices.
        """
        if self.pipeline is None:
            raise RuntimeError("ArrestModel is not trained")
        steps = self.pipeline.named_steps
        raw_step, encoder = self.pipeline.steps[0][1], steps["encode"]
        support = np.asarray(steps["select"].support_)
        fast: FastEncoder | None = getattr(self, "fast_encoder_", None)
        arrays = raw_step.transform_arrays(records, None if fast is None else fast.input_columns)
        grid = float(self.distance_grid_m or 0.0)
        distance = arrays[DISTANCE]
        if grid <= 0:
            variants = [distance]
        else:
            low = np.floor(distance / grid) * grid
            variants = [low, low + grid]
        if fast is not None:
            encoded = fast.transform(arrays)
            cols = fast.block_slice("skewed")
            blocks = []
            for values in variants:
                shifted = encoded.copy()
                shifted[:, cols] = fast.transform_block("skewed", {DISTANCE: values})
                blocks.append(shifted)
            stacked = np.vstack(blocks)
        else:
            frame = pd.DataFrame(arrays)
            frames = [frame.assign(**{DISTANCE: values}) for values in variants]
            stacked = np.asarray(encoder.transform(pd.concat(frames, ignore_index=True)), dtype=float)
        selected = stacked[:, support]
        n = record_count(records)
        matrices = [selected[i * n : (i + 1) * n] for i in range(len(variants))]
        if grid <= 0:
            return matrices, None
        return matrices, np.nan_to_num((distance - variants[0]) / grid, nan=0.0)

    def predict_arrest_probability(self, records: Records) -> np.ndarray:
        """One calibrated arrest probability per raw record.

        Args:
            records: Raw records with Socrata field names, as a frame or as columns (the model server's parsed
                request). Unknown categories, missing optional fields and missing coordinates are scored,
                never rejected.

        Returns:
            ``float64`` array of shape ``(n,)`` with values in [0, 1].
        """
        if record_count(records) == 0:
            return np.empty(0, dtype=float)
        _, calibrator = self._require()
        return np.clip(calibrator.transform(self.raw_scores(records)), 0.0, 1.0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """scikit-learn style ``(n, 2)`` probabilities ``[P(no arrest), P(arrest)]``."""
        p = self.predict_arrest_probability(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Boolean arrest prediction at :attr:`threshold`."""
        return self.predict_arrest_probability(X) >= self.threshold

    def set_threads(self, n: int, batch: int | None = None) -> ArrestModel:
        """Pin the classifier's threads.

        Args:
            n: Threads for fewer than :data:`BATCH_ROWS` records (serving uses 1: single rows get slower with
                more).
            batch: Threads for :data:`BATCH_ROWS` records or more (default ``n``). Random forest and XGBoost
                only; the probabilities are the same to the last bit.
        """
        pipeline, _ = self._require()
        clf = pipeline.steps[-1][1]
        if "n_jobs" in clf.get_params():
            clf.set_params(n_jobs=n)
        self.batch_threads_ = batch if batch is not None and batch != n else None
        return self

    def feature_importance(self) -> pd.Series:
        """Importance of each selected feature (gain for trees, |coefficient| for logistic regression)."""
        pipeline, _ = self._require()
        clf = pipeline.steps[-1][1]
        names = list((self.info or {}).get("selected_features", []))
        if hasattr(clf, "feature_importances_"):
            values = np.asarray(clf.feature_importances_, dtype=float)
        else:
            values = np.abs(np.asarray(clf.coef_, dtype=float)).ravel()
        if len(names) != len(values):
            names = [f"f{i}" for i in range(len(values))]
        return pd.Series(values, index=names, name="importance").sort_values(ascending=False)
