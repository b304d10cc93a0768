"""The encoding chain built from a :class:`~chicago_arrest.model.feature_spec.FeatureSpec`, and its output names.

:func:`build_encoder` assembles the transformers of :mod:`chicago_arrest.model.features` into the encoding and
scaling stage (one block per group of the spec); :func:`build_feature_pipeline` puts
:class:`~chicago_arrest.model.features.RawFeatures` in front; :func:`encoded_feature_names` names the output
columns by category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler, TargetEncoder

from chicago_arrest.model.feature_spec import DEFAULT_FEATURES, FeatureSpec
from chicago_arrest.model.features import (
    CategoryCodes,
    DenseColumnTransformer,
    FrequencyEncoder,
    IQRClipper,
    RawFeatures,
)


def build_encoder(random_state: int = 0, spec: FeatureSpec = DEFAULT_FEATURES) -> ColumnTransformer:
    """The encoding and scaling stage, applied to the output of :class:`RawFeatures`.

    Args:
        random_state: Seed of the target encoder's cross-fitting.
        spec: Which columns, encoded how.

    Returns:
        A :class:`DenseColumnTransformer` producing a dense float matrix.
    """
    skewed = make_pipeline(
        SimpleImputer(strategy="median"),
        IQRClipper(k=1.5),
        FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
        StandardScaler(),
    )
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    one_hot = make_pipeline(
        CategoryCodes(), OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=True)
    )
    target = make_pipeline(
        CategoryCodes(),
        TargetEncoder(target_type="binary", cv=KFold(5, shuffle=True, random_state=random_state)),
        StandardScaler(),
    )
    freq = make_pipeline(FrequencyEncoder(), StandardScaler())
    blocks = [
        ("skewed", skewed, list(spec.skewed)),
        ("numeric", numeric, list(spec.numeric)),
        ("onehot", one_hot, list(spec.one_hot)),
        ("target", target, list(spec.target)),
        ("freq", freq, list(spec.frequency)),
    ]
    return DenseColumnTransformer(
        [block for block in blocks if block[2]],
        sparse_threshold=0.0,
        verbose_feature_names_out=True,
    )


def encoded_feature_names(encoder: ColumnTransformer) -> np.ndarray:
    """Names of the encoder's output columns, one-hot columns named by their category (``onehot__district_011``).

    ``get_feature_names_out`` names a one-hot column fed by :class:`CategoryCodes` by the code; this puts the
    category back, as scikit-learn names it on the text itself.
    """
    names = np.asarray(encoder.get_feature_names_out(), dtype=object)
    start = 0
    for name, transformer, columns in encoder.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        width = len(transformer.get_feature_names_out(columns))
        steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
        if len(steps) >= 2 and isinstance(steps[0], CategoryCodes) and isinstance(steps[1], OneHotEncoder):
            codes, one_hot = steps[0], steps[1]
            rare = getattr(one_hot, "infrequent_categories_", None) or [None] * len(one_hot.categories_)
            readable = []
            for column, vocab, cats, infrequent in zip(
                columns, codes.categories_, one_hot.categories_, rare, strict=True
            ):
                rare_codes = set() if infrequent is None else {int(c) for c in infrequent}
                readable += [f"{name}__{column}_{vocab[int(c)]}" for c in cats if int(c) not in rare_codes]
                readable += [f"{name}__{column}_infrequent_sklearn"] if rare_codes else []
            names[start : start + width] = readable
        start += width
    return names


def build_feature_pipeline(
    stations: pd.DataFrame, random_state: int = 0, spec: FeatureSpec = DEFAULT_FEATURES
) -> Pipeline:
    """Raw records → dense encoded feature matrix (no resampling, no selection, no classifier).

    Args:
        stations: Police stations embedded in the model.
        random_state: Seed.
        spec: Which features (default: :data:`DEFAULT_FEATURES`).

    Returns:
        An unfitted sklearn ``Pipeline``.
    """
    return Pipeline([("raw", RawFeatures(stations)), ("encode", build_encoder(random_state, spec))])
