"""``artifact.positive_scores``: the classifiers' class-1 probability, on one thread or several, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from chicago_arrest.model.artifact import positive_scores


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 6))
    X[rng.random(X.shape) < 0.05] = np.nan  # XGBoost's missing values take the default branch
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=1500) > 0.3).astype(int)
    return X, y


@pytest.mark.parametrize("threads", [None, 1, 2, 3])
def test_xgboost_scores_are_predict_proba_on_any_thread_count(data, threads: int | None) -> None:
    X, y = data
    clf = XGBClassifier(n_estimators=40, max_depth=3, n_jobs=1).fit(X, y)
    expected = clf.predict_proba(X)[:, 1].astype(float)
    assert np.array_equal(positive_scores(clf, X, threads), expected)


@pytest.mark.parametrize("threads", [None, 1, 2, 3])
def test_forest_scores_are_predict_proba_on_any_thread_count(data, threads: int | None) -> None:
    X, y = data
    X = np.nan_to_num(X)
    clf = RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0).fit(X, y)
    one = positive_scores(clf, X)
    assert np.allclose(one, clf.predict_proba(X)[:, 1], atol=1e-12)
    assert np.array_equal(positive_scores(clf, X, threads), one)  # the sum runs in tree order


def test_other_classifiers_use_predict_proba(data) -> None:
    X, y = data
    X = np.nan_to_num(X)
    clf = LogisticRegression().fit(X, y)
    assert np.array_equal(positive_scores(clf, X, 2), clf.predict_proba(X)[:, 1])


def test_xgboost_threads_lift_the_processs_openmp_limit_for_the_call_only(
    data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server pins OpenMP to one thread; without lifting it XGBoost ignores ``nthread`` (measured: same time)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from chicago_arrest.model import artifact

    X, y = data
    clf = XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y)
    real = artifact._booster_with_threads
    seen: list[set[int]] = []

    class Spy:
        def __init__(self, booster: object) -> None:
            self.booster = booster

        def inplace_predict(self, *args: object, **kwargs: object) -> object:
            seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"})
            return self.booster.inplace_predict(*args, **kwargs)  # type: ignore[attr-defined]

    monkeypatch.setattr(artifact, "_booster_with_threads", lambda c, t: Spy(real(c, t)))
    with threadpool_limits(limits=1, user_api="openmp"):
        positive_scores(clf, X, 2)
        after = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}
    assert seen == [{2}]
    assert after == {1}


def test_xgboost_small_batches_are_predict_proba_from_several_threads(data) -> None:
    from concurrent.futures import ThreadPoolExecutor

    X, y = data
    clf = XGBClassifier(n_estimators=60, max_depth=4, n_jobs=1, missing=-999.0).fit(X, y)
    for rows in (X[:1], X[:2], X[5:70], X[::7], X[:, :].T.copy().T[:3]):  # contiguous or not
        assert np.array_equal(positive_scores(clf, rows), clf.predict_proba(rows)[:, 1].astype(float))

    # Requests are scored at once on the server's threads: no call sees another's rows.
    chunks = [X[i : i + 1 + i % 5] for i in range(0, 400, 4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda rows: positive_scores(clf, rows), chunks * 3))
    for chunk, scores in zip(chunks * 3, got, strict=True):
        assert np.array_equal(scores, clf.predict_proba(chunk)[:, 1].astype(float))
