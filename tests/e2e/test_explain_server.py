"""End-to-end: the explain routes of the real model server (V1 ``:explain`` and V2 ``"explain": true``).

One server serves the golden model folder (logistic regression); a second serves a champion (XGBoost) and a
challenger (random forest) at a 50 % canary from a local serving state, so both roles and both tree types
explain over HTTP.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.helpers import GOLDEN, MODEL, Server, start_server
from tests.mlflow_store import tracking_store

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}
EXPECTED = json.loads((GOLDEN / "v2_expected.json").read_text())


def _request() -> dict[str, Any]:
    return json.loads((GOLDEN / "v2_request.json").read_text())


def _rows() -> list[dict[str, Any]]:
    body = _request()
    n = body["inputs"][0]["shape"][0]
    return [{i["name"]: i["data"][r] for i in body["inputs"]} for r in range(n)]


def _check(explanation: dict[str, Any], probability: float) -> None:
    assert explanation["arrest_probability"] == pytest.approx(probability, abs=1e-12)
    contributions = explanation["contributions"]
    total = explanation["base_value"] + sum(c["value"] for c in contributions)
    assert abs(total - explanation["log_odds"]) < 1e-6
    magnitudes = [abs(c["value"]) for c in contributions]
    assert magnitudes == sorted(magnitudes, reverse=True)
    fields = {c["field"] for c in contributions}
    assert {"date", "location"} <= fields
    assert not fields & {"hour_sin", "station_distance_m", "onehot__primary_type_THEFT"}


def _two_models(folder: Path) -> dict[str, str]:
    """Train an XGBoost champion and a random forest challenger; save them as MLflow model folders."""
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import log_arrest_model
    from chicago_arrest.registry.state import ModelRef, ServingState, save_state

    stations = generate_stations()
    train, _, _ = time_split(generate_crimes(3_000, stations=stations, seed=3))
    refs = {}
    with tracking_store(folder, "explain-e2e"):
        for role, kind, params in (
            ("champion", "xgboost", {"n_estimators": 60, "max_depth": 4}),
            ("challenger", "random_forest", {"n_estimators": 30, "max_depth": 8}),
        ):
            model = train_model(
                train, stations, TrainConfig(model_type=kind, params=params, backtest_folds=0, n_jobs=1)
            ).model
            with mlflow.start_run():
                info = log_arrest_model(model, train)
            target = str(folder / role)
            refs[role] = str(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=target))
    state = ServingState(
        champion=ModelRef("xgb-1", refs["champion"]),
        challenger=ModelRef("rf-2", refs["challenger"]),
        canary_percent=50,
    )
    save_state(state, Settings(data_dir=folder / "data").serving_config_path)
    return refs


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("explain-e2e")
    golden = start_server(
        ["--model_dir", str(GOLDEN / "model")],
        root / "golden.log",
        ARREST_SERVER_MODEL_VERSION="golden-1",
        ARREST_DATA_DIR=str(root / "empty"),
    )
    state: Server | None = None
    try:
        _two_models(root)
        state = start_server([], root / "state.log", ARREST_DATA_DIR=str(root / "data"))
        golden.wait_ready()
        state.wait_ready()
        yield golden, state
    finally:
        for proc in (golden, state):
            if proc is not None:
                proc.stop()


def test_v1_explain_verb(servers: tuple[Server, Server]) -> None:
    golden, _ = servers
    r = golden.session.post(f"{golden.url}/v1/models/{MODEL}:explain", json={"instances": _rows()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == pytest.approx(EXPECTED["arrest_probability"], abs=1e-9)
    assert body["arrest"] == EXPECTED["arrest"]
    assert body["model_version"] == "golden-1"
    assert len(body["explanations"]) == len(EXPECTED["arrest"])
    for explanation, p in zip(body["explanations"], EXPECTED["arrest_probability"], strict=True):
        _check(explanation, p)


def test_v2_explain_parameter(servers: tuple[Server, Server]) -> None:
    golden, _ = servers
    body = _request()
    body["parameters"]["explain"] = True
    r = golden.session.post(golden.infer_url, json=body)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert set(outputs) == {"arrest_probability", "arrest", "explanation"}
    assert outputs["explanation"]["datatype"] == "BYTES"
    probabilities = outputs["arrest_probability"]["data"]
    np.testing.assert_allclose(probabilities, EXPECTED["arrest_probability"], rtol=0, atol=1e-9)
    for text, p in zip(outputs["explanation"]["data"], probabilities, strict=True):
        _check(json.loads(text), p)


def test_v2_without_explain_is_unchanged(servers: tuple[Server, Server]) -> None:
    golden, _ = servers
    body = _request()
    body["parameters"]["explain"] = False
    r = golden.session.post(golden.infer_url, json=body)
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == ["arrest_probability", "arrest"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b["inputs"].pop(0), "date"),
        (lambda b: b["parameters"].update(explain="yes"), "explain"),
        (lambda b: b["parameters"].pop("content_type"), "content_type"),
    ],
    ids=["missing date", "explain not a boolean", "no content_type"],
)
def test_v2_explain_bad_input_is_400(servers: tuple[Server, Server], mutate: Any, needle: str) -> None:
    golden, _ = servers
    body = _request()
    body["parameters"]["explain"] = True
    mutate(body)
    r = golden.session.post(golden.infer_url, json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_v1_explain_bad_input_is_the_same_400_as_predict(servers: tuple[Server, Server]) -> None:
    golden, _ = servers
    rows = _rows()
    rows[1]["latitude"] = True
    for verb in ("predict", "explain"):
        r = golden.session.post(f"{golden.url}/v1/models/{MODEL}:{verb}", json={"instances": rows})
        assert r.status_code == 400, r.text
        assert "latitude" in r.json()["error"]
    answers = {
        verb: golden.session.post(f"{golden.url}/v1/models/{MODEL}:{verb}", json={"rows": []}).json()
        for verb in ("predict", "explain")
    }
    assert answers["predict"] == answers["explain"]


def test_champion_and_challenger_both_explain(servers: tuple[Server, Server]) -> None:
    _, state = servers
    seen: dict[str, dict[str, Any]] = {}
    for i in range(60):
        body = _request()
        body["id"] = f"explain-{i}"
        body["parameters"]["explain"] = True
        r = state.session.post(state.infer_url, json=body)
        assert r.status_code == 200, r.text
        answer = r.json()
        seen.setdefault(answer["parameters"]["model_role"], answer)
        if len(seen) == 2:
            break
    assert set(seen) == {"champion", "challenger"}
    for answer in seen.values():
        outputs = {o["name"]: o["data"] for o in answer["outputs"]}
        for text, p in zip(outputs["explanation"], outputs["arrest_probability"], strict=True):
            _check(json.loads(text), p)
    assert {a["model_version"] for a in seen.values()} == {"xgb-1", "rf-2"}
