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


def test_xgboost_small_batches_take_the_direct_c_api_path_with_the_same_scores(data) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from chicago_arrest.model import artifact

    X, y = data
    clf = XGBClassifier(n_estimators=60, max_depth=4, n_jobs=1, missing=-999.0).fit(X, y)
    booster = clf.get_booster()
    for rows in (X[:1], X[:2], X[5:70], X[::7], X[:, :].T.copy().T[:3]):  # contiguous or not
        expected = np.asarray(booster.inplace_predict(rows, missing=-999.0), dtype=float)
        assert np.array_equal(positive_scores(clf, rows), expected)
    direct = artifact._DENSE[clf][(0, 0)]
    assert isinstance(direct, artifact._DensePredictor)  # checked on the first call and kept

    # Each thread has its own proxy DMatrix: concurrent calls never see another thread's rows.
    chunks = [X[i : i + 1 + i % 5] for i in range(0, 400, 4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(direct, chunks * 3))
    for chunk, scores in zip(chunks * 3, got, strict=True):
        assert np.array_equal(scores, np.asarray(booster.inplace_predict(chunk, missing=-999.0), dtype=float))


def test_xgboost_direct_path_that_disagrees_is_never_used(
    data, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from chicago_arrest.model import artifact

    X, y = data
    clf = XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    monkeypatch.setattr(artifact._DensePredictor, "__call__", lambda self, X: np.zeros(len(X)))
    with caplog.at_level("WARNING", logger="chicago_arrest.model.artifact"):
        scores = positive_scores(clf, X[:3])
    assert np.array_equal(scores, clf.predict_proba(X[:3])[:, 1].astype(float))
    assert artifact._DENSE[clf][(0, 0)] is None
    assert "using inplace_predict" in caplog.text


def test_xgboost_direct_path_frees_each_threads_proxy(data, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import threading

    from xgboost import core

    from chicago_arrest.model import artifact

    X, y = data
    clf = XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y)
    real, freed = core._LIB.XGDMatrixFree, []
    monkeypatch.setattr(
        core._LIB, "XGDMatrixFree", lambda handle: (freed.append(handle.value), real(handle))[1]
    )
    direct = artifact._DensePredictor(clf.get_booster(), (0, 0), np.nan)
    worker = threading.Thread(target=direct, args=(X[:2],))
    worker.start()
    worker.join()
    del worker
    gc.collect()
    assert len(freed) == 1  # the thread ended: its proxy went with it
    direct(X[:2])
    assert len(freed) == 1
    del direct
    gc.collect()
    assert len(freed) == 2  # the predictor was dropped (a model reload): this thread's proxy went too
