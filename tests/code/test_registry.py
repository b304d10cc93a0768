"""MLflow registry: pyfunc contract, aliases and the champion/challenger gate (local SQLite store)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from chicago_arrest.core.store import LocalStore
from chicago_arrest.data.split import time_split
from chicago_arrest.data.synthetic import generate_crimes
from chicago_arrest.model.artifact import ArrestModel
from chicago_arrest.model.training import TrainConfig, train_model
from chicago_arrest.registry.models import (
    CHALLENGER,
    CHAMPION,
    EXPERIMENT_NAME,
    MODEL_NAME,
    alias_version,
    configure_mlflow,
    load_arrest_model,
    log_arrest_model,
    publish_model_version,
)
from chicago_arrest.release.gate import decide, gate


@pytest.fixture(scope="module")
def data(stations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test, _ = time_split(generate_crimes(5_000, stations=stations, seed=5))
    return train, test


@pytest.fixture(scope="module")
def good(data, stations) -> ArrestModel:
    return train_model(data[0], stations, TrainConfig(model_type="logreg")).model


@pytest.fixture(scope="module")
def bad(data, stations) -> ArrestModel:
    """A useless model: trained on shuffled labels."""
    train = data[0].copy()
    train["arrest"] = np.random.default_rng(1).permutation(train["arrest"].to_numpy())
    return train_model(train, stations, TrainConfig(model_type="logreg")).model


@pytest.fixture
def client(settings) -> MlflowClient:
    return configure_mlflow(settings)


def register(model: ArrestModel, example: pd.DataFrame) -> str:
    with mlflow.start_run():
        return str(log_arrest_model(model, example, MODEL_NAME).registered_model_version)


def test_local_store_and_experiment(settings, client) -> None:
    assert settings.resolved_tracking_uri().startswith("sqlite:///")
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    assert experiment is not None
    assert experiment.artifact_location.startswith(settings.local_artifact_root())


def test_mlflow_tracking_uri_is_honoured(monkeypatch, tmp_path) -> None:
    from chicago_arrest.core.settings import Settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert Settings(data_dir=tmp_path).resolved_tracking_uri() == "http://mlflow.example:5000"


def test_pyfunc_returns_one_probability_per_raw_record(client, good, data) -> None:
    version = register(good, data[0])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}")
    raw = data[1].head(25)
    p = np.asarray(pyfunc.predict(raw))
    assert p.shape == (25,)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p, good.predict_arrest_probability(raw))
    # the signature requires date / primary_type / iucr and names the missing one
    with pytest.raises(Exception, match="date"):
        pyfunc.predict(raw.drop(columns=["date"]))


def test_publish_model_version_copies_the_model_dir(client, good, data, tmp_path) -> None:
    """What the cluster deploy step puts in the models bucket loads as the same model (and re-runs are exact)."""
    version = register(good, data[0])
    store = LocalStore(tmp_path / "models")
    store.put_bytes("arrest-predictor/v1/stale.txt", b"left by an older publish")
    store.put_bytes("arrest-predictor/v10/keep.txt", b"another version")
    keys = publish_model_version(client, version, store, "arrest-predictor/v1/")
    assert "arrest-predictor/v1/MLmodel" in keys
    assert sorted(store.list_keys("arrest-predictor/v1/")) == keys
    assert store.exists("arrest-predictor/v10/keep.txt")
    assert publish_model_version(client, version, store, "arrest-predictor/v1") == keys
    served = load_arrest_model(str(tmp_path / "models" / "arrest-predictor" / "v1"))
    raw = data[1].head(20)
    np.testing.assert_allclose(
        served.predict_arrest_probability(raw), good.predict_arrest_probability(raw), rtol=1e-12
    )


def test_gate_first_worse_better(client, good, bad, data) -> None:
    _, test = data
    first = register(bad, data[0])
    decision = gate(client, first, test, margin=0.0, max_ece=1.0)
    assert decision.promoted
    assert decision.reason.startswith("first model")
    assert alias_version(client, CHAMPION) == first
    assert alias_version(client, CHALLENGER) is None  # the first model is champion, not challenger
    assert client.get_model_version(MODEL_NAME, first).tags["champion_by"] == "first model"

    # a worse one is rejected: no alias moves, the decision is on the version
    worse = register(bad, data[0])
    decision = gate(client, worse, test, margin=0.05, max_ece=1.0)
    assert not decision.passed
    assert not decision.promoted
    assert alias_version(client, CHAMPION) == first
    assert alias_version(client, CHALLENGER) is None
    rejected = client.get_model_version(MODEL_NAME, worse)
    assert rejected.tags["gate"] == "rejected"
    assert rejected.description.endswith(f"Gate: rejected against champion {first}: {decision.reason}.")

    # a better one is promoted; the old champion's version is kept
    better = register(good, data[0])
    decision = gate(client, better, test, margin=0.05, max_ece=0.2)
    assert decision.passed
    assert decision.promoted
    assert decision.champion_version == first
    assert decision.challenger["roc_auc"] >= decision.champion["roc_auc"] + 0.05
    assert alias_version(client, CHAMPION) == better
    assert str(client.get_model_version(MODEL_NAME, first).version) == first
    assert alias_version(client, CHALLENGER) is None
    promoted = client.get_model_version(MODEL_NAME, better)
    assert promoted.tags["gate"] == "passed"
    assert (promoted.tags["previous_champion"], promoted.tags["champion_by"]) == (first, "gate")
    assert "Gate: promoted to champion against champion" in promoted.description
    metrics = client.get_run(promoted.run_id).data.metrics  # the comparison is on the run
    assert metrics["gate_promoted"] == 1.0
    assert metrics["gate_champion_roc_auc"] == pytest.approx(decision.champion["roc_auc"])


def test_canary_mode_passes_without_promoting_then_operator_promotes(client, good, bad, data) -> None:
    _, test = data
    champion = register(bad, data[0])
    gate(client, champion, test, max_ece=1.0)
    challenger = register(good, data[0])
    decision = gate(client, challenger, test, margin=0.0, max_ece=0.2, auto_promote=False)
    assert decision.passed
    assert not decision.promoted
    assert alias_version(client, CHAMPION) == champion
    assert alias_version(client, CHALLENGER) == challenger
    assert (
        "Gate: passed, released as a canary" in client.get_model_version(MODEL_NAME, challenger).description
    )
    from chicago_arrest.registry.aliases import MlflowAliases, make_champion

    assert make_champion(MlflowAliases.of(client), challenger, "promote") == champion
    assert alias_version(client, CHAMPION) == challenger
    assert load_arrest_model(f"models:/{MODEL_NAME}@{CHAMPION}").threshold == good.threshold


@pytest.mark.parametrize(
    ("challenger", "champion", "passed"),
    [
        ({"roc_auc": 0.80, "ece": 0.01}, None, True),
        ({"roc_auc": 0.80, "ece": 0.09}, None, True),  # the first model becomes champion regardless
        ({"roc_auc": 0.805, "ece": 0.01}, {"roc_auc": 0.80, "ece": 0.01}, True),
        ({"roc_auc": 0.801, "ece": 0.01}, {"roc_auc": 0.80, "ece": 0.01}, False),
        ({"roc_auc": 0.90, "ece": 0.06}, {"roc_auc": 0.80, "ece": 0.01}, False),
    ],
)
def test_decide_rule(challenger, champion, passed) -> None:
    assert decide(challenger, champion, margin=0.002, max_ece=0.05)[0] is passed
