"""The model server's guard (bearer token, body size limit) and its time limit, in-process (no HTTP server)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from arrest_server.guard import GuardMiddleware, RequestTimeoutError, is_open, token_matches
from arrest_server.observability import Metrics
from arrest_server.settings import ServerSettings
from arrest_server.validation import TooManyRows
from prometheus_client import CollectorRegistry, generate_latest

from tests.asgi import run_asgi

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
ROW = {"date": "2017-03-01T13:05:00.000", "primary_type": "THEFT", "iucr": "0820", "domestic": False}


# -- auth ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "open_"),
    [
        ("GET", "/", True),
        ("GET", "/metrics", True),
        ("GET", "/v2/health/live", True),
        ("GET", "/v2/health/ready", True),
        ("GET", "/v2/models/arrest-predictor/ready", True),
        ("GET", "/v2/models/arrest-predictor/versions/3/ready", True),
        ("GET", "/v1/models/arrest-predictor", True),  # V1 model readiness
        ("POST", "/v1/models/arrest-predictor", False),
        ("POST", "/v1/models/arrest-predictor:predict", False),
        ("POST", "/v1/models/arrest-predictor:explain", False),
        ("POST", "/v2/models/arrest-predictor/infer", False),
        ("GET", "/v2/models/arrest-predictor", False),  # metadata
        ("GET", "/v2", False),
        ("GET", "/v1/models", False),
        ("GET", "/docs", False),
        ("GET", "/openapi.json", False),
        ("POST", "/v2/repository/models/arrest-predictor/unload", False),
        ("GET", "/metrics/../v2", False),
    ],
)
def test_only_health_and_metrics_are_open(method: str, path: str, open_: bool) -> None:
    assert is_open(method, path) is open_


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (b"Bearer s3cret", True),
        (b"bearer s3cret", True),
        (b"Bearer  s3cret ", True),
        (b"Bearer s3cre", False),
        (b"Bearer s3cret2", False),
        (b"Basic s3cret", False),
        (b"s3cret", False),
        (b"", False),
        (None, False),
        ("Bearer sécret".encode(), False),
    ],
)
def test_token_matches(header: bytes | None, ok: bool) -> None:
    assert token_matches(header, b"s3cret") is ok


def test_empty_token_setting_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREST_SERVER_API_TOKEN", "  ")
    assert ServerSettings().api_token is None
    monkeypatch.setenv("ARREST_SERVER_API_TOKEN", "abc")
    settings = ServerSettings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "abc"
    assert "abc" not in repr(settings)


# -- the ASGI middleware against a tiny app ------------------------------------------------------------------


def call(
    guard: GuardMiddleware, path: str, chunks: list[bytes], headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict[str, Any], bytes | None]:
    """Drive the middleware like a server; the inner app echoes how many body bytes it received."""
    seen: dict[str, bytes] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen["body"] = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    guard.app = inner
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent = run_asgi(guard, scope, messages)
    status = sent[0]["status"]
    body = json.loads(sent[1]["body"]) if status != 200 else {"echo": int(sent[1]["body"])}
    return status, body, seen.get("body")


INFER = "/v2/models/arrest-predictor/infer"


def test_guard_refuses_a_declared_length_over_the_limit_before_reading() -> None:
    guard = GuardMiddleware(None, max_body_bytes=10)
    status, body, seen = call(guard, INFER, [b"x" * 11], {"content-length": "11"})
    assert status == 413
    assert seen is None
    assert "at most 10 bytes" in body["error"]
    assert "ARREST_SERVER_MAX_BODY_BYTES" in body["error"]
    assert call(guard, INFER, [b"x" * 10], {"content-length": "10"})[:2] == (200, {"echo": 10})


def test_guard_counts_a_chunked_body() -> None:
    guard = GuardMiddleware(None, max_body_bytes=10)
    status, body, seen = call(guard, INFER, [b"x" * 6, b"y" * 6], {"transfer-encoding": "chunked"})
    assert status == 413
    assert seen is None
    assert "more than 10 bytes" in body["error"]
    status, _, seen = call(guard, INFER, [b"x" * 4, b"y" * 6], {"transfer-encoding": "chunked"})
    assert status == 200
    assert seen == b"x" * 4 + b"y" * 6


def test_guard_asks_for_the_token_outside_health_and_metrics() -> None:
    guard = GuardMiddleware(None, max_body_bytes=100, token="s3cret")
    status, body, seen = call(guard, INFER, [b"{}"], {"content-length": "2"})
    assert status == 401
    assert seen is None
    assert "Authorization: Bearer" in body["error"]
    status, _, _ = call(guard, INFER, [b"{}"], {"content-length": "2", "authorization": "Bearer nope"})
    assert status == 401
    status, _, _ = call(guard, INFER, [b"{}"], {"content-length": "2", "authorization": "Bearer s3cret"})
    assert status == 200
    assert call(guard, "/v2/health/ready", [b""], {}, method="GET")[0] == 200
    # The token is checked before the size: an anonymous client learns nothing about the limits.
    assert call(guard, INFER, [b"x" * 200], {"content-length": "200"})[0] == 401


# -- limits through ArrestPredictor.predict ------------------------------------------------------------------


@pytest.fixture
def predictor(tmp_path: Path) -> Any:
    from arrest_server.loading import load_model
    from arrest_server.model import ArrestPredictor
    from arrest_server.router import Deployment, DeploymentHolder

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.state import ModelRef

    registry = CollectorRegistry()
    model = ArrestPredictor(
        ServerSettings(max_rows=3, request_timeout_s=0.2, inline_rows=1),
        library_settings=Settings(data_dir=tmp_path / "data"),  # its request log
        metrics=Metrics(registry),
    )
    model.test_registry = registry
    model.holder = DeploymentHolder(Deployment(load_model(ModelRef("7", str(GOLDEN / "model")))))
    model.ready = True
    return model


def test_too_many_rows_is_counted_as_too_large(predictor: Any) -> None:
    with pytest.raises(TooManyRows, match="4 rows; at most 3"):
        asyncio.run(predictor.predict({"instances": [ROW] * 4}, {}, {}))
    assert 'outcome="too_large",protocol="v1"' in generate_latest(predictor.test_registry).decode()


def test_a_slow_request_times_out_and_the_next_one_answers(
    predictor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = predictor.holder.current.champion.model
    real = served.predict_arrest_probability

    def slow(frame: pd.DataFrame) -> np.ndarray:
        if len(frame) > 1:
            time.sleep(0.6)
        return np.asarray(real(frame))

    monkeypatch.setattr(served, "predict_arrest_probability", slow)

    async def scenario() -> tuple[float, dict[str, Any]]:
        start = time.perf_counter()
        with pytest.raises(RequestTimeoutError, match=r"longer than 0\.2 s") as info:
            await predictor.predict({"instances": [ROW, ROW]}, {"x-request-id": "slow-1"}, {})
        assert "slow-1" in str(info.value)
        assert "ARREST_SERVER_REQUEST_TIMEOUT_S" in str(info.value)
        waited = time.perf_counter() - start
        # The slow scoring still runs in its thread; a small request is answered meanwhile.
        return waited, await predictor.predict({"instances": [ROW]}, {}, {})

    waited, response = asyncio.run(scenario())
    assert waited < 0.5
    assert len(response["predictions"]) == 1
    text = generate_latest(predictor.test_registry).decode()
    assert 'outcome="timeout",protocol="v1"' in text
    assert 'outcome="ok",protocol="v1"' in text


def test_requests_up_to_inline_rows_are_scored_without_the_thread(
    predictor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[Any] = []

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        loop = asyncio.get_running_loop()
        real = loop.run_in_executor

        def spy(*args: Any) -> Any:
            hops.append(args)
            return real(*args)

        monkeypatch.setattr(loop, "run_in_executor", spy)
        one = await predictor.predict({"instances": [ROW]}, {}, {})
        two = await predictor.predict({"instances": [ROW, ROW]}, {}, {})
        return one, two

    one, two = asyncio.run(scenario())
    assert len(hops) == 1  # only the request above inline_rows (1) went to a worker thread
    assert one["predictions"] == two["predictions"][:1]
