"""Why the model scored a record as it did: each raw field's contribution to the log-odds of the raw score.

The quantity explained is the log-odds of the **uncalibrated** classifier score,
``logit(ArrestModel.raw_scores(records))``: what the classifier (after resampling and mutual-information
selection) computes on the selected features; the calibrator then maps that score monotonically to the
calibrated probability reported beside it. For each record::

    base_value + sum(contributions.values()) == log_odds        (within 1e-6; tested per model type)

How the contributions of the selected encoded columns are computed:

- **XGBoost**: exact (path-dependent) TreeSHAP, XGBoost's own ``pred_contribs``, on the margin.
- **Logistic regression**: exact: ``coef_j · x_j`` with base ``intercept``; the encoded columns are centred on
  the training rows by the scalers (one-hot columns are 0/1: their reference is "not this category").
- **Random forest**: exact path-dependent TreeSHAP of the forest's probability (XGBoost's ``pred_contribs`` on
  the forest's trees converted to an XGBoost booster: same splits, leaf values and node weights), then scaled
  into log-odds: ``φ · (logit(p) − logit(p₀)) / (p − p₀)``. Additive and exact in probability; in log-odds it
  is that linear rescaling (the ``shap`` package is not used).

Encoded columns are summed into the raw field they came from: one-hot, target and frequency columns into their
field; the date's parts (hour, weekday, weekend, midnight, first of the month, part of day) under ``date``; the
coordinates, the station distance and ``has_coordinates`` under ``location``. An interaction column
(``primary_type × location_description``) is split equally between its two fields.

The served model interpolates the score between the distance grid points around each record's distance
(:data:`chicago_arrest.model.artifact.DISTANCE_GRID_M`): contributions are the same interpolation of the two points'
contributions in the classifier's additive space (the margin for XGBoost and logistic regression; the
probability for the forest, before its rescaling, so the forest's decomposition stays exact). For the margin
models the remainder, the curvature of the sigmoid between the two margins plus float32 rounding, goes to
``location``, the only input that is interpolated; it is kept in :attr:`Explanation.interpolation` (below 0.1
log-odds on the 2017 sample, bench/bench_explain.py).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from chicago_arrest.data.enrich import DISTANCE, HAS_COORDINATES
from chicago_arrest.model.artifact import XGBOOST_FOREST, ArrestModel, Calibrator, positive_scores
from chicago_arrest.model.feature_spec import INTERACTIONS

DATE = "date"
LOCATION = "location"
#: Columns of :class:`~chicago_arrest.model.features.RawFeatures` made from the date.
DATE_PARTS = frozenset(
    {
        *("hour_sin", "hour_cos", "dow_sin", "dow_cos", "month_sin", "month_cos", "is_weekend"),
        *("is_midnight", "is_first_of_month", "day_of_month", "season", "part_of_day", "hour_of_day"),
    }
)
#: Columns made from the coordinates.
LOCATION_PARTS = frozenset({DISTANCE, HAS_COORDINATES})


def raw_field(column: str) -> dict[str, float]:
    """The raw field(s) a :class:`~chicago_arrest.model.features.RawFeatures` column comes from, with shares.

    Args:
        column: A feature column (``hour_sin``, ``iucr``, ``type_location``, ...).

    Returns:
        ``{raw field: share}``; the shares sum to 1.
    """
    if column in INTERACTIONS:
        parts = [raw_field(c) for c in INTERACTIONS[column]]
        out: dict[str, float] = {}
        for part in parts:
            for name, share in part.items():
                out[name] = out.get(name, 0.0) + share / len(parts)
        return out
    if column in DATE_PARTS:
        return {DATE: 1.0}
    if column in LOCATION_PARTS:
        return {LOCATION: 1.0}
    return {column: 1.0}


def encoded_sources(encoder: ColumnTransformer) -> list[str]:
    """The feature column behind each output column of a fitted :func:`~chicago_arrest.model.encoding.build_encoder`.

    Read from the fitted transformers (widths of the one-hot blocks), not parsed from the output names.
    """
    sources: list[str] = []
    for name, transformer, columns in encoder.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
        one_hot = next((s for _, s in steps if isinstance(s, OneHotEncoder)), None)
        if one_hot is None:
            sources.extend(columns)
            continue
        rare = getattr(one_hot, "infrequent_categories_", None) or [None] * len(one_hot.categories_)
        for column, cats, infrequent in zip(columns, one_hot.categories_, rare, strict=True):
            n_rare = 0 if infrequent is None else len(infrequent)
            sources.extend([column] * (len(cats) - n_rare + (1 if n_rare else 0)))
    width = len(encoder.get_feature_names_out())
    if len(sources) != width:
        raise ValueError(f"encoder: traced {len(sources)} output columns, the encoder has {width}")
    return sources


def grouping(model: ArrestModel) -> tuple[list[str], np.ndarray]:
    """Raw fields and the ``(selected columns, fields)`` share matrix that sums contributions into them."""
    if model.pipeline is None:
        raise RuntimeError("ArrestModel is not trained")
    steps = model.pipeline.named_steps
    support = np.asarray(steps["select"].support_)
    sources = [s for s, keep in zip(encoded_sources(steps["encode"]), support, strict=True) if keep]
    shares = [raw_field(s) for s in sources]
    fields = list(dict.fromkeys(name for share in shares for name in share))
    if LOCATION not in fields:
        fields.append(LOCATION)  # the interpolation remainder goes there
    matrix = np.zeros((len(sources), len(fields)))
    index = {f: i for i, f in enumerate(fields)}
    for row, share in enumerate(shares):
        for name, value in share.items():
            matrix[row, index[name]] = value
    return fields, matrix


def _forest_booster(forest: RandomForestClassifier, n_features: int) -> Any:
    """The forest as an XGBoost booster whose sum of leaves is the forest's probability of class 1."""
    import xgboost as xgb

    trees = []
    n_trees = len(forest.estimators_)
    for i, estimator in enumerate(forest.estimators_):
        t = estimator.tree_
        # XGBoost's SHAP wants a node's two children next to each other (breadth-first numbering);
        # scikit-learn numbers depth-first.
        order, new_id = [0], {0: 0}
        for node in order:
            if t.children_left[node] != -1:
                for child in (t.children_left[node], t.children_right[node]):
                    new_id[int(child)] = len(order)
                    order.append(int(child))
        idx = np.asarray(order)
        leaf = t.children_left[idx] == -1
        left = [-1 if lf else new_id[int(t.children_left[o])] for o, lf in zip(idx, leaf, strict=True)]
        right = [-1 if lf else new_id[int(t.children_right[o])] for o, lf in zip(idx, leaf, strict=True)]
        value = t.value[idx, 0, :]
        proba = value[:, 1] / np.maximum(value.sum(axis=1), 1e-300) / n_trees
        threshold = t.threshold[idx]
        # scikit-learn goes left when float32(x) <= threshold; XGBoost when x < condition (float32).
        t32 = threshold.astype(np.float32)  # the largest float32 <= threshold
        t32 = np.where(t32.astype(np.float64) > threshold, np.nextafter(t32, np.float32(-np.inf)), t32)
        condition = np.where(leaf, proba, np.nextafter(t32, np.float32(np.inf)).astype(np.float64))
        parents = [2147483647] * len(left)
        for node, (lo, hi) in enumerate(zip(left, right, strict=True)):
            if lo != -1:
                parents[lo] = parents[hi] = node
        n = len(left)
        trees.append(
            {
                "base_weights": np.where(leaf, proba, 0.0).tolist(),
                "categories": [],
                "categories_nodes": [],
                "categories_segments": [],
                "categories_sizes": [],
                "default_left": [0] * n,
                "id": i,
                "left_children": left,
                "loss_changes": [0.0] * n,
                "parents": parents,
                "right_children": right,
                "split_conditions": condition.tolist(),
                "split_indices": np.where(leaf, 0, t.feature[idx]).tolist(),
                "split_type": [0] * n,
                "sum_hessian": t.weighted_n_node_samples[idx].tolist(),
                "tree_param": {
                    "num_deleted": "0",
                    "num_feature": str(n_features),
                    "num_nodes": str(n),
                    "size_leaf_vector": "1",
                },
            }
        )
    model = {
        "learner": {
            "attributes": {},
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": {
                "model": {
                    "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(n_trees)},
                    "iteration_indptr": list(range(n_trees + 1)),
                    "tree_info": [0] * n_trees,
                    "trees": trees,
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": "[0E0]",
                "boost_from_average": "0",
                "num_class": "0",
                "num_feature": str(n_features),
                "num_target": "1",
            },
            "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [3, 0, 0],
    }
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(model).encode()))
    booster.set_param({"nthread": 1})
    return booster


def _logit(p: np.ndarray) -> np.ndarray:
    return Calibrator._logit(p)


class Explainer:
    """Explains one :class:`~chicago_arrest.model.artifact.ArrestModel` (build once per model; cheap to call).

    Args:
        model: A trained model (XGBoost, logistic regression or random forest classifier).

    Raises:
        TypeError: For another classifier type.
    """

    def __init__(self, model: ArrestModel) -> None:
        if model.pipeline is None or model.calibrator is None:
            raise RuntimeError("ArrestModel is not trained")
        self.model = model
        self.fields, self.matrix = grouping(model)
        self.clf = model.pipeline.named_steps["classifier"]
        self.kind = self._kind(self.clf)
        self._forest: Any = None
        if self.kind == "random_forest":  # a booster whose contributions add up to the forest's probability
            forest = isinstance(self.clf, RandomForestClassifier)
            self._forest = (
                _forest_booster(self.clf, self.matrix.shape[0]) if forest else self.clf.get_booster()
            )

    @staticmethod
    def _kind(clf: Any) -> str:
        if isinstance(clf, LogisticRegression):
            return "logreg"
        if isinstance(clf, RandomForestClassifier) or type(clf).__name__ == XGBOOST_FOREST:
            return "random_forest"  # scikit-learn's (before issue 27) or XGBoost's forest of the 0/1 label
        if type(clf).__name__ == "XGBClassifier":
            return "xgboost"
        raise TypeError(f"explain: no exact contributions for classifier {type(clf).__name__}")

    def _contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per selected column contributions ``(n, d)`` and base ``(n,)`` in the classifier's additive space.

        That space is the margin (log-odds) for XGBoost and logistic regression, the probability for a random
        forest (its trees' probabilities are averaged); :meth:`explain` maps the forest's into log-odds.
        """
        if self.kind == "logreg":
            coef = np.asarray(self.clf.coef_, dtype=float).ravel()
            base = np.full(len(x), float(np.asarray(self.clf.intercept_).ravel()[0]))
            return x * coef[None, :], base
        import xgboost as xgb

        data = xgb.DMatrix(np.ascontiguousarray(x, dtype=np.float32), nthread=1)
        booster: Any = self.clf.get_booster() if self.kind == "xgboost" else self._forest
        contribs = np.asarray(booster.predict(data, pred_contribs=True, validate_features=False), dtype=float)
        return contribs[:, :-1], contribs[:, -1]

    @staticmethod
    def _probability_to_log_odds(
        fields: np.ndarray, p0: np.ndarray, p: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scale contributions that sum to ``p - p0`` into ones that sum to ``logit(p) - logit(p0)``."""
        gap = p - p0
        safe = np.abs(gap) > 1e-9
        mid = np.clip(p0, 1e-7, 1 - 1e-7)
        slope = np.where(safe, (_logit(p) - _logit(p0)) / np.where(safe, gap, 1.0), 1.0 / (mid * (1 - mid)))
        return fields * slope[:, None], _logit(p0)

    def explain(self, records: pd.DataFrame) -> Explanation:
        """Contributions of each raw field for each record.

        Args:
            records: Raw records (as for :meth:`ArrestModel.predict_arrest_probability`).

        Returns:
            The :class:`Explanation`.
        """
        variants, weight = self.model.selected_variants(records)
        stacked = np.vstack(variants)
        n = len(records)
        scores = positive_scores(self.clf, stacked).reshape(len(variants), n)
        phis, bases = self._contributions(stacked)
        per_field = (phis @ self.matrix).reshape(len(variants), n, -1)
        base = bases.reshape(len(variants), n)[0]
        if weight is None:
            score, fields = scores[0], per_field[0]
        else:
            score = (1.0 - weight) * scores[0] + weight * scores[1]
            fields = (1.0 - weight)[:, None] * per_field[0] + weight[:, None] * per_field[1]
        if self.kind == "random_forest":  # interpolated in probability (exact), then into log-odds
            fields, base = self._probability_to_log_odds(fields, base, np.clip(score, 0.0, 1.0))
        log_odds = _logit(score)
        remainder = log_odds - base - fields.sum(axis=1)
        fields[:, self.fields.index(LOCATION)] += remainder
        calibrator = self.model.calibrator
        probability = np.clip(calibrator.transform(score), 0.0, 1.0)  # type: ignore[union-attr]
        return Explanation(
            fields=list(self.fields),
            contributions=fields,
            base_value=base,
            log_odds=log_odds,
            probability=probability,
            interpolation=remainder,
        )


@dataclass
class Explanation:
    """Contributions of the raw fields for ``n`` records.

    Attributes:
        fields: Raw field names (columns of :attr:`contributions`).
        contributions: ``(n, fields)`` signed contributions to the log-odds of the raw score.
        base_value: ``(n,)`` the model's base log-odds (the expected margin; the intercept for logistic
            regression).
        log_odds: ``(n,)`` log-odds of the uncalibrated score: ``base_value + contributions.sum(1)``.
        probability: ``(n,)`` calibrated arrest probability (what infer returns).
        interpolation: ``(n,)`` the remainder added to ``location`` (see the module docstring).
    """

    fields: list[str]
    contributions: np.ndarray
    base_value: np.ndarray
    log_odds: np.ndarray
    probability: np.ndarray
    interpolation: np.ndarray

    def frame(self) -> pd.DataFrame:
        """Contributions as a frame (one column per raw field)."""
        return pd.DataFrame(self.contributions, columns=self.fields)

    def records(self, digits: int = 9) -> list[dict[str, Any]]:
        """One JSON-ready dict per record, contributions sorted by magnitude (largest first).

        Args:
            digits: Decimal places kept (9: the sum stays within 1e-6 of ``log_odds``).
        """
        out = []
        for i in range(len(self.log_odds)):
            row = self.contributions[i]
            order = np.argsort(-np.abs(row), kind="stable")
            out.append(
                {
                    "arrest_probability": float(self.probability[i]),
                    "log_odds": round(float(self.log_odds[i]), digits),
                    "base_value": round(float(self.base_value[i]), digits),
                    "contributions": [
                        {"field": self.fields[j], "value": round(float(row[j]), digits)} for j in order
                    ],
                }
            )
        return out


_EXPLAINERS: weakref.WeakKeyDictionary[ArrestModel, Explainer] = weakref.WeakKeyDictionary()


def explainer_for(model: ArrestModel) -> Explainer:
    """The model's :class:`Explainer`, built on first use and kept while the model lives (never pickled)."""
    cached = _EXPLAINERS.get(model)
    if cached is None:
        cached = _EXPLAINERS[model] = Explainer(model)
    return cached


def global_importance(model: ArrestModel, records: pd.DataFrame, batch: int = 5_000) -> pd.Series:
    """Mean |contribution| per raw field on ``records`` (the training report's global importance).

    Args:
        model: A trained model.
        records: Raw records (the test window).
        batch: Records explained at a time.

    Returns:
        Mean absolute contribution (log-odds) per raw field, largest first.
    """
    explainer = explainer_for(model)
    total = np.zeros(len(explainer.fields))
    for start in range(0, len(records), batch):
        part = explainer.explain(records.iloc[start : start + batch])
        total += np.abs(part.contributions).sum(axis=0)
    values = total / max(len(records), 1)
    return pd.Series(values, index=explainer.fields, name="mean_abs_contribution").sort_values(
        ascending=False
    )
