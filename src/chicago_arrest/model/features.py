"""scikit-learn transformers that turn RAW crime records into model features.

The chain is part of the served model, so training and serving run the same code on the same raw fields:
``RawFeatures`` (coercion + enrichment with the stations embedded) → ``IQRClipper`` (fitted on train) →
log transform of the distance → encoders (one-hot for low cardinality, target + frequency encoding for high
cardinality, cyclic for hour and weekday; no month-of-year, see
:data:`~chicago_arrest.model.feature_spec.SEASONAL`) → scaling, then (in the model) resampling,
mutual-information selection and the classifier.

This module holds the transformers themselves (fitted models pickle them by this module's name, so they stay
here) and :class:`FastEncoder`, the compiled prediction path. Which columns exist and which the encoder uses are
in :mod:`chicago_arrest.model.feature_spec`; :func:`~chicago_arrest.model.encoding.build_encoder` assembles the
chain.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import SelectorMixin
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler, TargetEncoder
from sklearn.utils.validation import check_is_fitted

from chicago_arrest.core.parsing import DISTINCT_FROM, map_distinct
from chicago_arrest.core.schema import Records
from chicago_arrest.data.enrich import (
    DISTANCE,
    HAS_COORDINATES,
    PARTS_OF_DAY,
    SEASONS,
    TEMPORAL_NUMERIC,
    StationIndex,
    project_arrays,
    temporal_arrays,
)
from chicago_arrest.model.feature_spec import ALL_COLUMNS, INTERACTIONS, MISSING
from chicago_arrest.model.inputs import model_input_arrays
from chicago_arrest.model.mutual_info import binned_mutual_information


class RawFeatures(TransformerMixin, BaseEstimator):
    """Raw Socrata records → one frame of typed features (enrichment included).

    Args:
        stations: The police stations table the distances are measured to; embedded in the fitted model.
    """

    def __init__(self, stations: pd.DataFrame | None = None) -> None:
        self.stations = stations

    def fit(self, X: pd.DataFrame, y: object = None) -> RawFeatures:
        """Build the station index."""
        if self.stations is None:
            raise ValueError("RawFeatures needs the police stations table (stations=...)")
        self.index_ = StationIndex.from_frame(self.stations)
        return self

    def transform_arrays(self, X: Records, columns: Collection[str] | None = None) -> dict[str, np.ndarray]:
        """Model features as a dict of arrays (the fast path used at prediction time).

        Numeric features are ``float64``; categoricals are ``object`` arrays of strings with :data:`MISSING`
        for missing or unparsable values. Unknown values never raise.

        Args:
            X: Raw records, as a frame or as columns (:data:`~chicago_arrest.core.schema.Records`).
            columns: Only these features (default: all of :data:`ALL_COLUMNS`); a served model needs about
                two thirds of them, and for one record each column costs as much as its arithmetic.

        Returns:
            Feature name → array, in the order of :data:`ALL_COLUMNS`.
        """
        check_is_fitted(self, "index_")
        wanted = set(ALL_COLUMNS if columns is None else columns)
        for name in [w for w in wanted if w in INTERACTIONS]:
            wanted.update(INTERACTIONS[name])
        raw = model_input_arrays(X)
        x_ft, y_ft = project_arrays(
            raw["latitude"], raw["longitude"], raw["x_coordinate"], raw["y_coordinate"]
        )
        distance, station = self.index_.query(x_ft, y_ft)
        block, season, part = temporal_arrays(raw["date"])
        out: dict[str, np.ndarray] = {DISTANCE: distance, HAS_COORDINATES: (station >= 0).astype(float)}
        for i, name in enumerate(TEMPORAL_NUMERIC):
            out[name] = block[:, i]
        if "day_of_month" in wanted:
            stamps = np.asarray(raw["date"], dtype="datetime64[ns]")
            days = stamps.astype("datetime64[D]")
            day = (days - stamps.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
            out["day_of_month"] = np.where(np.isnat(stamps), np.nan, day.astype(float))
        if "hour_of_day" in wanted:
            hours = out["hour"]
            out["hour_of_day"] = np.where(
                np.isnan(hours), MISSING, np.nan_to_num(hours).astype(np.int64).astype(str)
            ).astype(object)
        codes = {"season": (SEASONS, season), "part_of_day": (PARTS_OF_DAY, part)}
        for name in ALL_COLUMNS:
            if name in out or name in INTERACTIONS or name in TEMPORAL_NUMERIC or name not in wanted:
                continue
            if name in codes:
                labels, index = codes[name]
                out[name] = np.asarray((*labels, MISSING), dtype=object)[index]
            else:
                out[name] = np.where(pd.isna(raw[name]), MISSING, raw[name]).astype(object)
        for name, (left, right) in INTERACTIONS.items():
            if name in wanted:
                out[name] = _pairs(out[left], out[right])
        return {name: out[name] for name in ALL_COLUMNS if name in wanted}

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return typed model features for raw records (unknown or missing values never raise)."""
        return pd.DataFrame(self.transform_arrays(X), index=X.index)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the produced columns."""
        return np.asarray(ALL_COLUMNS, dtype=object)


def _pairs(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left + "|" + right`` for ``object`` arrays of text (an interaction's value).

    For many records each distinct pair is joined once and shared by its rows: a year's two interactions made
    ~900,000 new strings (~100 MB of small objects the allocator keeps after they are freed), now ~9,000.
    """
    if len(left) < DISTINCT_FROM:
        return np.asarray(left + "|" + right, dtype=object)  # element-wise concatenation
    left_codes, left_values = pd.factorize(left)
    right_codes, right_values = pd.factorize(right)
    if (left_codes < 0).any() or (right_codes < 0).any():  # a missing value: no pair to share
        return np.asarray(left + "|" + right, dtype=object)
    pair_codes, pairs = pd.factorize(left_codes.astype(np.int64) * len(right_values) + right_codes)
    joined = np.asarray(
        [f"{left_values[p // len(right_values)]}|{right_values[p % len(right_values)]}" for p in pairs],
        dtype=object,
    )
    return joined[pair_codes]


class IQRClipper(TransformerMixin, BaseEstimator):
    """Tame outliers beyond Tukey's fences ``[Q1 - k·IQR, Q3 + k·IQR]`` learnt on the training data.

    ``soft`` (default) compresses values beyond a fence logarithmically, ``fence ± IQR·log1p(excess / IQR)``:
    continuous, monotone, slope 1 at the fence. ``hard`` clips to the fence, which piles every outlier onto one
    value; tree models then split exactly there and a point moved a few metres across the fence jumped by
    0.04 in probability (docs/model.md). Outliers are never dropped: a prediction request can never lose a row.

    Args:
        k: IQR multiplier (1.5 is Tukey's fence).
        mode: ``soft`` or ``hard``.
    """

    def __init__(self, k: float = 1.5, mode: str = "soft") -> None:
        self.k = k
        self.mode = mode

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("mode", "hard")  # pickled before soft fences existed
        super().__setstate__(state)

    def fit(self, X: np.ndarray | pd.DataFrame, y: object = None) -> IQRClipper:
        """Learn the fences, ignoring NaN."""
        if self.mode not in ("soft", "hard"):
            raise ValueError(f"mode must be 'soft' or 'hard', got {self.mode!r}")
        arr = np.asarray(X, dtype=float)
        q1, q3 = np.nanpercentile(arr, [25, 75], axis=0)
        self.iqr_ = np.maximum(q3 - q1, 1e-12)
        self.low_ = q1 - self.k * self.iqr_
        self.high_ = q3 + self.k * self.iqr_
        self.n_features_in_ = arr.shape[1]
        return self

    def transform(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Apply the fences (NaN stays NaN)."""
        check_is_fitted(self, "low_")
        arr = np.asarray(X, dtype=float)
        if self.mode == "hard":
            return np.clip(arr, self.low_, self.high_)
        out = arr.copy()
        above = arr > self.high_
        below = arr < self.low_
        iqr = np.broadcast_to(self.iqr_, arr.shape)
        high = np.broadcast_to(self.high_, arr.shape)
        low = np.broadcast_to(self.low_, arr.shape)
        out[above] = high[above] + iqr[above] * np.log1p((arr[above] - high[above]) / iqr[above])
        out[below] = low[below] - iqr[below] * np.log1p((low[below] - arr[below]) / iqr[below])
        return out

    def get_feature_names_out(self, input_features: np.ndarray | None = None) -> np.ndarray:
        """Same names as the input."""
        return np.asarray(input_features, dtype=object)


def _plain(values: pd.Series) -> pd.Series:
    """A categorical column as its values (training keeps the raw features as categoricals to save memory)."""
    return values.astype(object) if isinstance(values.dtype, pd.CategoricalDtype) else values


def _object_values(values: pd.Series) -> np.ndarray:
    """The values of a column as an ``object`` array (a categorical's categories are shared, not copied)."""
    return np.asarray(values.to_numpy(dtype=object), dtype=object)


class FrequencyEncoder(TransformerMixin, BaseEstimator):
    """Replace each category by its share of the training rows (unknown categories → 0)."""

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> FrequencyEncoder:
        """Learn the category shares per column."""
        frame = pd.DataFrame(X)
        self.maps_ = [_plain(frame[c]).value_counts(normalize=True).to_dict() for c in frame.columns]
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Encode."""
        check_is_fitted(self, "maps_")
        frame = pd.DataFrame(X)
        cols = [_plain(frame.iloc[:, i]).map(m).fillna(0.0).to_numpy(float) for i, m in enumerate(self.maps_)]
        return np.column_stack(cols)

    def get_feature_names_out(self, input_features: np.ndarray | None = None) -> np.ndarray:
        """``<name>_freq`` per input column."""
        names = [] if input_features is None else list(input_features)
        return np.asarray([f"{c}_freq" for c in names], dtype=object)


class CategoryCodes(TransformerMixin, BaseEstimator):
    """Categories → integer codes (their rank among the training values; an unseen value → one more code).

    Put before scikit-learn's ``OneHotEncoder`` and ``TargetEncoder``: on text they count and map every value
    in Python (``_unique_python``, a dict lookup per row); on integers they use numpy's sorted arrays. The codes
    keep the order scikit-learn gives the text (sorted), so the encoders that follow produce the same matrix,
    column for column, as on the text itself, in about a fifth of the time (docs/model.md). Lookups are pandas
    hash tables (``Index.get_indexer``).
    """

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> CategoryCodes:
        """Learn the sorted distinct values of each column."""
        frame = pd.DataFrame(X)
        self.categories_ = [np.sort(pd.unique(_object_values(frame[c]))) for c in frame.columns]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Codes, ``int64``; a value not seen in ``fit`` gets ``len(categories_[j])``."""
        check_is_fitted(self, "categories_")
        frame = pd.DataFrame(X)
        out = np.empty(frame.shape, dtype=np.int64)
        for j, cats in enumerate(self.categories_):
            column = frame.iloc[:, j]
            if isinstance(column.dtype, pd.CategoricalDtype):  # each category looked up once, then its rows
                known = category_codes(cats, _object_values(pd.Series(column.cat.categories)))
                codes = column.cat.codes.to_numpy()
                out[:, j] = np.where(codes >= 0, known[np.maximum(codes, 0)], len(cats))
            else:
                out[:, j] = category_codes(cats, _object_values(column))
        return out

    def get_feature_names_out(self, input_features: np.ndarray | None = None) -> np.ndarray:
        """Same names as the input."""
        names = getattr(self, "feature_names_in_", None) if input_features is None else input_features
        if names is None:
            names = [f"x{i}" for i in range(self.n_features_in_)]
        return np.asarray(names, dtype=object)


def category_codes(categories: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in the sorted ``categories``; ``len(categories)`` when absent."""
    codes = pd.Index(categories).get_indexer(values)
    codes[codes < 0] = len(categories)
    return codes.astype(np.int64)


class MutualInfoSelector(SelectorMixin, BaseEstimator):
    """Keep the features whose mutual information with the label is at least ``threshold`` (nats).

    Args:
        threshold: Minimum mutual information to keep a feature.
        min_features: Keep at least this many (the most informative) features.
        bins: Quantile bins of the estimator (see :func:`~chicago_arrest.model.mutual_info.binned_mutual_information`).
    """

    def __init__(self, threshold: float = 0.001, min_features: int = 5, bins: int = 16) -> None:
        self.threshold = threshold
        self.min_features = min_features
        self.bins = bins

    def fit(self, X: np.ndarray, y: np.ndarray) -> MutualInfoSelector:
        """Estimate mutual information and choose the features."""
        self.scores_ = binned_mutual_information(X, y, self.bins)
        keep = self.scores_ >= self.threshold
        if keep.sum() < self.min_features:
            keep[np.argsort(self.scores_)[::-1][: self.min_features]] = True
        self.support_ = keep
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return np.asarray(self.support_)


class DenseColumnTransformer(ColumnTransformer):
    """scikit-learn's ``ColumnTransformer`` whose dense output is filled block by block.

    ``ColumnTransformer`` densifies every block, then ``np.hstack``s them: for a year of records the one-hot
    block alone is 151 MB dense and the stacking holds every block and the output at once. Here the output is
    allocated once and each block written into its columns (a sparse block straight from its non-zeros), so the
    one-hot encoder can stay sparse: the same matrix, about half the peak memory of the encoding
    (docs/benchmarks.md). ``_hstack`` is the method scikit-learn documents for subclasses to control stacking.
    """

    def fit_transform_as(self, dtype: Any, X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        """``fit_transform`` with the stacked output in ``dtype`` (the blocks are computed as always).

        Training stacks its matrix as ``float32``: what XGBoost turns any input into, at half the memory of a
        year's 104 encoded columns. The fitted transformers are the same; ``transform`` (the checked serving
        fallback) stays ``float64``.
        """
        self.stack_dtype_ = np.dtype(dtype)
        try:
            return np.asarray(self.fit_transform(X, y))
        finally:
            del self.stack_dtype_

    def _hstack(self, Xs: list[Any], *, n_samples: int) -> Any:
        if self.sparse_output_ or not all(isinstance(X, np.ndarray) or sparse.issparse(X) for X in Xs):
            return super()._hstack(Xs, n_samples=n_samples)
        width = sum(X.shape[1] for X in Xs)
        dtype = getattr(self, "stack_dtype_", None) or (
            np.result_type(*(X.dtype for X in Xs)) if Xs else np.float64
        )
        out = np.zeros((n_samples, width), dtype=dtype)
        start = 0
        for X in Xs:
            if sparse.issparse(X):
                coo = X.tocoo()
                out[coo.row, start + coo.col] = coo.data
            else:
                out[:, start : start + X.shape[1]] = X
            start += X.shape[1]
        return out


# --- compiled encoder (prediction fast path) ------------------------------------------------------------------


class _Vocabulary:
    """The sorted categories of one column, with lookups built on first use (not pickled)."""

    def __init__(self, categories: np.ndarray) -> None:
        self.categories = np.asarray(categories, dtype=object)

    def __getstate__(self) -> dict[str, Any]:
        return {"categories": self.categories}

    def codes(self, values: np.ndarray) -> np.ndarray:
        """:func:`category_codes`; a dict for a handful of values (a served record), a hash table beyond."""
        unseen = len(self.categories)
        if len(values) >= DISTINCT_FROM:
            index = self.__dict__.get("_index")
            if index is None:
                index = self.__dict__["_index"] = pd.Index(self.categories)
            codes = index.get_indexer(values)
            codes[codes < 0] = unseen
            return codes.astype(np.int64)
        table = self.__dict__.get("_table")
        if table is None:
            table = self.__dict__["_table"] = {c: i for i, c in enumerate(self.categories.tolist())}
        return np.fromiter((table.get(v, unseen) for v in values), dtype=np.int64, count=len(values))


def _lookup(mapping: dict[Any, Any], default: Any, values: np.ndarray, dtype: Any) -> np.ndarray:
    """``mapping.get(v, default)`` for each value (once per distinct value for many values)."""
    mapped = map_distinct(
        values, lambda v: mapping.get(v, default), dtype=dtype, missing=mapping.get(None, default)
    )
    if mapped is not None:
        return mapped
    return np.fromiter((mapping.get(v, default) for v in values), dtype=dtype, count=len(values))


class FastEncoder:
    """A fitted :func:`build_encoder` ``ColumnTransformer`` compiled to plain numpy and dict lookups.

    scikit-learn's transformers validate and convert their input on every call; for one record that costs
    ~12 ms, a hundred times the arithmetic. This class applies the same fitted parameters directly and is
    checked against the original on real rows when built (:meth:`verify`); the model falls back to the
    ``ColumnTransformer`` if the check fails.

    Args:
        encoder: The fitted ``ColumnTransformer``.

    Raises:
        NotImplementedError: When a step type has no compiled equivalent.
    """

    def __init__(self, encoder: ColumnTransformer) -> None:
        self.blocks: list[tuple[str, list[str], list[Any]]] = []
        for name, transformer, columns in encoder.transformers_:
            if name == "remainder" or transformer == "drop":
                continue
            steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
            ops: list[Any] = []
            for _, step in steps:
                ops.append(self._compile_coded(step, ops[-1][1]) if ops and ops[-1][0] == "codes" else None)
                if ops[-1] is None:
                    ops[-1] = self._compile(step)
            self.blocks.append((name, list(columns), ops))
        self.n_features_out = len(encoder.get_feature_names_out())

    @cached_property
    def input_columns(self) -> tuple[str, ...]:
        """The :class:`RawFeatures` columns the blocks read (derived once; encoders pickled before it have it too)."""
        return tuple(dict.fromkeys(c for _, columns, _ in self.blocks for c in columns))

    @staticmethod
    def _compile_coded(step: Any, vocabularies: list[_Vocabulary]) -> Any:
        """An encoder fed by :class:`CategoryCodes`: dense tables indexed by code (the last slot: unseen)."""
        sizes = [len(v.categories) for v in vocabularies]
        if isinstance(step, TargetEncoder):
            tables = []
            for size, cats, enc in zip(sizes, step.categories_, step.encodings_, strict=True):
                table = np.full(size + 1, float(step.target_mean_))
                table[np.asarray(cats, dtype=np.int64)] = np.asarray(enc, dtype=float)
                tables.append(table)
            return ("take", tables)
        if isinstance(step, OneHotEncoder):
            maps, width = FastEncoder._one_hot_plan(step)
            tables = []
            for size, mapping in zip(sizes, maps, strict=True):
                table = np.full(size + 1, -1, dtype=np.int64)
                for code, column in mapping.items():
                    table[int(code)] = column
                tables.append(table)
            return ("onehot_take", (tables, width))
        return None

    @staticmethod
    def _compile(step: Any) -> Any:
        if isinstance(step, CategoryCodes):
            return ("codes", [_Vocabulary(c) for c in step.categories_])
        if isinstance(step, SimpleImputer):
            return ("impute", np.asarray(step.statistics_, dtype=float))
        if isinstance(step, IQRClipper):
            return ("iqr", step)
        if isinstance(step, FunctionTransformer) and step.func is np.log1p:
            return ("log1p", None)
        if isinstance(step, StandardScaler):
            mean = (
                np.zeros(step.n_features_in_) if step.mean_ is None else np.asarray(step.mean_, dtype=float)
            )
            scale = (
                np.ones(step.n_features_in_) if step.scale_ is None else np.asarray(step.scale_, dtype=float)
            )
            return ("scale", (mean, scale))
        if isinstance(step, FrequencyEncoder):
            return (
                "lookup",
                ([{str(k): float(v) for k, v in m.items()} for m in step.maps_], [0.0] * len(step.maps_)),
            )
        if isinstance(step, TargetEncoder):
            maps = [
                {str(c): float(e) for c, e in zip(cats, enc, strict=True)}
                for cats, enc in zip(step.categories_, step.encodings_, strict=True)
            ]
            return ("lookup", (maps, [float(step.target_mean_)] * len(maps)))
        if isinstance(step, OneHotEncoder):
            return ("onehot", FastEncoder._one_hot_plan(step))
        raise NotImplementedError(f"no compiled equivalent for {type(step).__name__}")

    @staticmethod
    def _one_hot_plan(step: OneHotEncoder) -> tuple[list[dict[str, int]], int]:
        # Output columns per feature: the frequent categories in order, then one "infrequent" column.
        maps, offset = [], 0
        infrequent = getattr(step, "infrequent_categories_", None) or [None] * len(step.categories_)
        for cats, rare in zip(step.categories_, infrequent, strict=True):
            rare_set = set() if rare is None else {str(c) for c in rare}
            frequent = [str(c) for c in cats if str(c) not in rare_set]
            mapping = {c: offset + i for i, c in enumerate(frequent)}
            offset += len(frequent)
            if rare_set:
                mapping.update({c: offset for c in rare_set})
                offset += 1
            maps.append(mapping)
        return maps, offset

    def block_slice(self, name: str) -> slice:
        """Output columns of the block ``name`` (e.g. ``"skewed"``, the station distance)."""
        start = 0
        for block, columns, ops in self.blocks:
            width = self._width(columns, ops)
            if block == name:
                return slice(start, start + width)
            start += width
        raise KeyError(name)

    @staticmethod
    def _width(columns: list[str], ops: list[Any]) -> int:
        for kind, params in ops[::-1]:
            if kind in ("onehot", "onehot_take"):
                return int(params[1])
        return len(columns)

    def transform_block(self, name: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Encode one block only (its input columns from ``arrays``)."""
        for block, columns, ops in self.blocks:
            if block == name:
                n = len(arrays[columns[0]])
                data: Any = [arrays[c] for c in columns]
                for kind, params in ops:
                    data = self._apply(kind, params, data, n)
                return np.asarray(data, dtype=float)
        raise KeyError(name)

    def transform(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Encode features given as arrays (see :meth:`RawFeatures.transform_arrays`)."""
        n = len(next(iter(arrays.values())))
        parts = []
        for _, columns, ops in self.blocks:
            data: Any = [arrays[c] for c in columns]
            for kind, params in ops:
                data = self._apply(kind, params, data, n)
            parts.append(data)
        return np.hstack(parts) if parts else np.empty((n, 0))

    @staticmethod
    def _apply(kind: str, params: Any, data: Any, n: int) -> Any:
        if kind == "codes":
            return [
                vocab.codes(np.asarray(col, dtype=object)) for vocab, col in zip(params, data, strict=True)
            ]
        if kind == "take":
            return np.column_stack([table[codes] for table, codes in zip(params, data, strict=True)])
        if kind == "onehot_take":
            tables, width = params
            out = np.zeros((n, width))
            rows = np.arange(n)
            for table, codes in zip(tables, data, strict=True):
                idx = table[codes]
                hit = idx >= 0
                out[rows[hit], idx[hit]] = 1.0
            return out
        if kind == "lookup":
            maps, default = params
            return np.column_stack(
                [_lookup(m, d, col, float) for m, d, col in zip(maps, default, data, strict=True)]
            )
        if kind == "onehot":
            maps, width = params
            out = np.zeros((n, width))
            rows = np.arange(n)
            for mapping, col in zip(maps, data, strict=True):
                idx = _lookup(mapping, -1, col, np.int64)
                hit = idx >= 0
                out[rows[hit], idx[hit]] = 1.0
            return out
        arr = np.column_stack(data).astype(float) if isinstance(data, list) else data
        if kind == "impute":
            return np.where(np.isnan(arr), params[None, :], arr)
        if kind == "iqr":
            return params.transform(arr)
        if kind == "log1p":
            return np.log1p(arr)
        if kind == "scale":
            mean, scale = params
            return (arr - mean) / scale
        raise ValueError(kind)

    def verify(self, encoder: ColumnTransformer, features: pd.DataFrame, atol: float = 1e-9) -> bool:
        """Whether this encoder reproduces ``encoder`` on ``features`` (a :class:`RawFeatures` frame)."""
        arrays = {c: features[c].to_numpy() for c in features.columns}
        expected = np.asarray(encoder.transform(features), dtype=float)
        got = self.transform(arrays)
        return got.shape == expected.shape and bool(np.allclose(got, expected, atol=atol, equal_nan=True))
