"""Retries of the network steps (issue 25): what is transient, who retries, and that each step is safe to repeat.

KFP 2.17.0 retries a task only when its pod errored (``chicago_arrest.steps.retry``), so the step process retries
its own transient failures: a retry-safe step must land, register, deploy or start nothing twice. Batch scoring and
monitoring are repeated in ``tests/code/test_monitoring.py`` (they need a registered model with a profile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.settings import Settings
from chicago_arrest.steps import run_step
from chicago_arrest.steps.retry import NETWORK, RETRY_SAFE, RetryPolicy, call_with_retries, is_transient

# ------------------------------------------------------------------------------------------------------------
# what is transient, and the retry loop
# ------------------------------------------------------------------------------------------------------------


def _from(cause: BaseException, wrapper: BaseException) -> BaseException:
    try:
        raise wrapper from cause
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("timed out"), True),
        (urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection"), True),  # type: ignore[arg-type]
        (ApiException(status=503, reason="Service Unavailable"), True),
        (ApiException(status=429, reason="Too Many Requests"), True),
        (ApiException(status=404, reason="Not Found"), False),
        (ApiException(status=403, reason="Forbidden"), False),
        (_from(urllib3.exceptions.ProtocolError("reset"), ReleaseError("the cluster is unreachable")), True),
        (_from(ApiException(status=422, reason="Invalid"), ReleaseError("refused the object")), False),
        (ReleaseError("a canary needs the champion rolled out"), False),
        (ValueError("the data contract rejected every row"), False),
        (FileNotFoundError("crimes.csv"), False),
    ],
)
def test_what_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_mlflow_and_minio_codes() -> None:
    from minio.error import S3Error
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2 as codes

    assert is_transient(MlflowException("busy", error_code=codes.TEMPORARILY_UNAVAILABLE))
    assert not is_transient(MlflowException("no such model", error_code=codes.RESOURCE_DOES_NOT_EXIST))
    assert not is_transient(MlflowException("any error without a code"))  # INTERNAL_ERROR
    assert is_transient(_from(ConnectionRefusedError("refused"), MlflowException("API request failed")))
    assert is_transient(S3Error(None, "SlowDown", "slow down", "r", "id", "host"))  # type: ignore[arg-type]
    assert not is_transient(S3Error(None, "AccessDenied", "denied", "r", "id", "host"))  # type: ignore[arg-type]


def test_call_with_retries_waits_with_backoff_and_stops() -> None:
    sleeps: list[float] = []
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionResetError("reset by peer")
        return "done"

    assert call_with_retries(flaky, sleep=sleeps.append) == "done"
    assert sleeps == NETWORK.delays() == [30.0, 60.0]
    attempts.clear()
    with pytest.raises(ConnectionResetError):
        call_with_retries(flaky, policy=RetryPolicy(retries=1, backoff_s=1), sleep=sleeps.append)
    assert len(attempts) == 2

    def bad() -> None:
        attempts.append(1)
        raise ValueError("bad data")

    attempts.clear()
    with pytest.raises(ValueError, match="bad data"):
        call_with_retries(bad, sleep=sleeps.append)
    assert len(attempts) == 1  # not transient: no retry


def test_policy_caps_each_wait() -> None:
    assert RetryPolicy(retries=4, backoff_s=100, factor=3, max_backoff_s=500).delays() == [100, 300, 500, 500]


def test_run_step_retries_a_retry_safe_step_in_a_pod_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from chicago_arrest.steps import retry as retry_module

    monkeypatch.setattr(retry_module.time, "sleep", lambda s: None)
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionRefusedError("MLflow is restarting")
        return "ok"

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    with pytest.raises(ConnectionRefusedError):
        run_step(step)  # not marked retry-safe: one attempt
    calls.clear()
    assert run_step(retry_module.retry_safe(step)) == "ok"
    assert len(calls) == 2
    calls.clear()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConnectionRefusedError):
        run_step(step)  # locally: fail fast
    assert len(calls) == 1


def test_the_network_steps_and_only_they_are_retry_safe() -> None:
    from chicago_arrest.steps import data, monitoring, release, training

    safe = {
        name
        for module in (data, release, monitoring, training)
        for name, fn in vars(module).items()
        if name.endswith("_step") and callable(fn) and getattr(fn, RETRY_SAFE, False)
    }
    assert safe == {"ingest_step", "register_step", "deploy_step", "batch_score_step", "monitor_step"}


# ------------------------------------------------------------------------------------------------------------
# each step twice: nothing twice
# ------------------------------------------------------------------------------------------------------------


def test_ingest_step_twice_lands_the_same_records_once(
    settings: Settings, crimes: pd.DataFrame, stations: pd.DataFrame, tmp_path: Path
) -> None:
    from chicago_arrest.core.store import make_store
    from chicago_arrest.data.ingest import load_window, months_in_store
    from chicago_arrest.steps.data import ingest_step

    source = tmp_path / "src" / "crimes.csv"
    source.parent.mkdir()
    crimes.to_csv(source, index=False)
    stations.to_csv(source.parent / "police_stations.csv", index=False)
    outputs = []
    for attempt in (1, 2):
        raw, st = tmp_path / f"raw{attempt}.parquet", tmp_path / f"stations{attempt}.parquet"
        ingest_step(raw, st, source=str(source), months=12, settings=settings)
        outputs.append((pd.read_parquet(raw), pd.read_parquet(st)))
    pd.testing.assert_frame_equal(outputs[0][0], outputs[1][0])
    pd.testing.assert_frame_equal(outputs[0][1], outputs[1][1])
    store = make_store(settings)
    window = load_window(store, months_in_store(store))
    assert window["id"].is_unique
    assert len(window) == len(crimes)


def test_register_and_deploy_twice_in_one_kfp_run_register_and_deploy_once(
    settings: Settings, stations: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chicago_arrest.core.names import CHAMPION, MODEL_NAME
    from chicago_arrest.data.split import time_split
    from chicago_arrest.data.synthetic import generate_crimes
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import configure_mlflow
    from chicago_arrest.registry.state import load_state
    from chicago_arrest.steps.release import deploy_step, register_step

    monkeypatch.setenv("MLFLOW_LOG_UV_FILES", "false")
    train, test, window = time_split(generate_crimes(3_000, stations=stations, seed=11))
    model = train_model(train, stations, TrainConfig(model_type="logreg")).model
    model_path = tmp_path / "model.joblib"
    joblib.dump(model, model_path)
    test_path = tmp_path / "test.parquet"
    test.to_parquet(test_path, index=False)
    metrics = {f"test_{k}": float(v) for k, v in evaluate_model(model, test).overall.items()}
    evaluation = {"selected_index": 0, "selected": "logreg", "candidates": {"logreg": metrics}}
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    charts = tmp_path / "charts"
    charts.mkdir()

    def register(kfp_run: str) -> dict[str, Any]:
        return register_step(
            [str(model_path)],
            evaluation,
            test_path,
            report,
            charts,
            window=window.as_dict(),
            source="test",
            kfp_run=kfp_run,
            settings=settings,
        )

    client = configure_mlflow(settings)
    first = register("chicago-arrest-training-run-1")
    again = register("chicago-arrest-training-run-1")  # the retry of the same KFP run
    assert again["version"] == first["version"]
    assert again["run_id"] == first["run_id"]
    assert again["metrics"] == first["metrics"]
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1
    tags = client.get_model_version(MODEL_NAME, first["version"]).tags
    assert tags["kfp.run"] == "chicago-arrest-training-run-1"
    assert tags["gate"] == "pending"
    other = register("chicago-arrest-training-run-2")  # another KFP run: a new version
    assert other["version"] != first["version"]

    client.set_registered_model_alias(MODEL_NAME, CHAMPION, first["version"])
    decision = {"challenger_version": first["version"], "promoted": True, "passed": True, "reason": "first"}
    done = [deploy_step(decision, first, evaluation, target="local", settings=settings) for _ in (1, 2)]
    assert done[0]["action"] == done[1]["action"] == "promote"
    assert "unchanged" in done[1]["message"]
    assert load_state(settings.serving_config_path).split().champion == first["version"]
