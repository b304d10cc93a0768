"""Explanations: the additivity contract per model type, and the grouping of encoded columns into raw fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.data.split import time_split
from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from chicago_arrest.model.artifact import ArrestModel
from chicago_arrest.model.explain import (
    DATE,
    LOCATION,
    Explainer,
    encoded_sources,
    global_importance,
    grouping,
    raw_field,
)
from chicago_arrest.model.training import TrainConfig, train_model

SMALL = {
    "logreg": {},
    "random_forest": {"n_estimators": 20, "max_depth": 8},
    "xgboost": {"n_estimators": 40, "max_depth": 4},
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    stations = generate_stations()
    train, test, _ = time_split(generate_crimes(3_000, stations=stations, seed=5))
    return stations, train, test


@pytest.fixture(scope="module", params=sorted(SMALL))
def model(request: pytest.FixtureRequest, data: tuple[pd.DataFrame, ...]) -> ArrestModel:
    stations, train, _ = data
    config = TrainConfig(model_type=request.param, params=SMALL[request.param], backtest_folds=0, n_jobs=1)
    return train_model(train, stations, config).model


def test_base_plus_contributions_is_the_log_odds_of_the_raw_score(
    model: ArrestModel, data: tuple[pd.DataFrame, ...]
) -> None:
    test = data[2].head(300)
    explanation = Explainer(model).explain(test)
    raw = np.clip(model.raw_scores(test), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(explanation.log_odds, np.log(raw / (1 - raw)), atol=1e-9)
    total = explanation.base_value + explanation.contributions.sum(axis=1)
    assert np.max(np.abs(total - explanation.log_odds)) < 1e-6
    # The probability beside the explanation is exactly what infer returns.
    np.testing.assert_array_equal(explanation.probability, model.predict_arrest_probability(test))
    # The contributions are not dumped into one field: several fields carry weight.
    assert (np.abs(explanation.contributions).mean(axis=0) > 1e-3).sum() >= 3


def test_decomposition_is_exact_without_the_distance_grid(
    model: ArrestModel, data: tuple[pd.DataFrame, ...]
) -> None:
    """Without interpolation, the remainder put into location is only rounding (the decomposition is exact)."""
    test = data[2].head(200)
    model.distance_grid_m = 0.0
    try:
        explanation = Explainer(model).explain(test)
    finally:
        model.distance_grid_m = 100.0
    assert np.max(np.abs(explanation.interpolation)) < 1e-5


def test_interpolation_remainder_is_small(model: ArrestModel, data: tuple[pd.DataFrame, ...]) -> None:
    explainer = Explainer(model)
    explanation = explainer.explain(data[2].head(200))
    assert np.max(np.abs(explanation.interpolation)) < 0.05
    if explainer.kind == "random_forest":  # interpolated in probability: nothing left over
        assert np.max(np.abs(explanation.interpolation)) < 1e-5


def test_records_sorted_by_magnitude_and_json_ready(
    model: ArrestModel, data: tuple[pd.DataFrame, ...]
) -> None:
    out = Explainer(model).explain(data[2].head(3)).records()
    assert len(out) == 3
    for rec in out:
        values = [abs(c["value"]) for c in rec["contributions"]]
        assert values == sorted(values, reverse=True)
        assert abs(rec["base_value"] + sum(c["value"] for c in rec["contributions"]) - rec["log_odds"]) < 1e-6
        names = {c["field"] for c in rec["contributions"]}
        assert DATE in names
        assert LOCATION in names
        assert not names & {"hour_sin", "dow_cos", "station_distance_m", "type_location"}


def test_encoded_columns_summed_into_their_raw_field(model: ArrestModel) -> None:
    encoder = model.pipeline.named_steps["encode"]  # type: ignore[union-attr]
    sources = encoded_sources(encoder)
    names = encoder.get_feature_names_out()
    assert len(sources) == len(names)
    for source, name in zip(sources, names, strict=True):
        assert source in name  # e.g. onehot__primary_type_THEFT comes from primary_type
    fields, matrix = grouping(model)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    support = model.pipeline.named_steps["select"].support_  # type: ignore[union-attr]
    selected = [s for s, keep in zip(sources, support, strict=True) if keep]
    one_hot_types = [i for i, s in enumerate(selected) if s == "primary_type"]
    if one_hot_types:
        col = fields.index("primary_type")
        assert all(matrix[i, col] == 1.0 for i in one_hot_types)


def test_raw_field_mapping() -> None:
    assert raw_field("hour_sin") == {DATE: 1.0}
    assert raw_field("part_of_day") == {DATE: 1.0}
    assert raw_field("station_distance_m") == {LOCATION: 1.0}
    assert raw_field("iucr") == {"iucr": 1.0}
    assert raw_field("type_location") == {"primary_type": 0.5, "location_description": 0.5}
    assert raw_field("hour_type") == {DATE: 0.5, "primary_type": 0.5}


def test_global_importance_is_mean_absolute_contribution(
    model: ArrestModel, data: tuple[pd.DataFrame, ...]
) -> None:
    test = data[2].head(400)
    importance = global_importance(model, test, batch=150)
    expected = np.abs(Explainer(model).explain(test).frame()).mean()
    pd.testing.assert_series_equal(
        importance.sort_index(), expected.sort_index(), check_names=False, atol=1e-9, rtol=0
    )
    assert list(importance) == sorted(importance, reverse=True)


def _conditional(tree: object, x: np.ndarray, known: set[int], node: int = 0) -> float:
    """E[tree(x) | x_known] with the path-dependent (node weight) expectation of TreeSHAP."""
    t = tree.tree_  # type: ignore[attr-defined]
    left, right = t.children_left[node], t.children_right[node]
    if left == -1:
        value = t.value[node, 0]
        return float(value[1] / value.sum())
    feature = t.feature[node]
    if feature in known:
        child = left if np.float32(x[feature]) <= t.threshold[node] else right
        return _conditional(tree, x, known, child)
    w = t.weighted_n_node_samples
    return float(
        (w[left] * _conditional(tree, x, known, left) + w[right] * _conditional(tree, x, known, right))
        / w[node]
    )


def test_random_forest_contributions_are_exact_shapley_values() -> None:
    """The converted forest's contributions equal brute-force Shapley values of the tree expectations."""
    from itertools import combinations
    from math import factorial

    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    from chicago_arrest.model.explain import _forest_booster

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(size=400) > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0).fit(X, y)
    booster = _forest_booster(forest, 4)
    rows = X[:5]
    got = booster.predict(xgb.DMatrix(rows.astype(np.float32)), pred_contribs=True)
    np.testing.assert_allclose(got.sum(axis=1), forest.predict_proba(rows)[:, 1], atol=1e-6)
    m = 4
    for r, x in enumerate(rows):

        def value(known: set[int], x: np.ndarray = x) -> float:
            return float(np.mean([_conditional(tree, x, known) for tree in forest.estimators_]))

        for i in range(m):
            others = [j for j in range(m) if j != i]
            phi = 0.0
            for size in range(m):
                for subset in combinations(others, size):
                    weight = factorial(size) * factorial(m - size - 1) / factorial(m)
                    phi += weight * (value({*subset, i}) - value(set(subset)))
            assert abs(got[r, i] - phi) < 1e-5
        assert abs(got[r, -1] - value(set())) < 1e-6
