"""``arrest_server.fast_infer.FastInferMiddleware``: which requests it answers, and what it passes on."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from arrest_server.fast_infer import FastInferMiddleware
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from tests.asgi import run_asgi

BODY = json.dumps(
    {
        "id": "r1",
        "parameters": {"content_type": "pd"},
        "inputs": [{"name": "date", "shape": [1], "datatype": "BYTES", "data": ["2017-03-01T13:05:00.000"]}],
    }
).encode()


class FakePredictor:
    name = "arrest-predictor"

    def __init__(self, ready: bool = True, error: Exception | None = None) -> None:
        self.ready = ready
        self.error = error
        self.calls: list[InferRequest] = []

    async def __call__(
        self, request: InferRequest, headers: dict[str, str]
    ) -> tuple[InferResponse, dict[str, str]]:
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        out = InferOutput(name="arrest_probability", shape=[1], datatype="FP64")
        out.set_data_from_numpy(np.array([0.25]))
        response = InferResponse(response_id=request.id or "x", model_name=self.name, infer_outputs=[out])
        return response, {"x-model-version": "7", "content-length": "999"}


class Inner:
    """The rest of the stack: records what reached it, with the body it could read."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


async def _invalid_input_handler(request: Any, exc: Exception) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse(status_code=400, content={"error": str(exc)})


def _call(
    middleware: FastInferMiddleware,
    path: str = "/v2/models/arrest-predictor/infer",
    method: str = "POST",
    body: bytes = BODY,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers if headers is not None else [(b"content-type", b"application/json")],
        "query_string": b"",
        "root_path": "",
    }
    sent = run_asgi(middleware, scope, [{"type": "http.request", "body": body, "more_body": False}])
    start, payload = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), payload


def _middleware(predictor: FakePredictor | None = None) -> tuple[FastInferMiddleware, Inner]:
    inner = Inner()
    models = {"arrest-predictor": predictor} if predictor is not None else {}
    return FastInferMiddleware(inner, models, {InvalidInput: _invalid_input_handler}), inner


def test_a_plain_v2_request_is_answered_without_the_inner_app() -> None:
    predictor = FakePredictor()
    middleware, inner = _middleware(predictor)
    status, headers, payload = _call(middleware)
    assert status == 200
    assert inner.bodies == []
    assert predictor.calls[0].id == "r1"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-model-version"] == b"7"
    assert headers[b"content-length"] == str(len(payload)).encode()  # not the predictor's
    doc = json.loads(payload)
    assert doc["id"] == "r1"
    assert doc["outputs"][0]["data"] == [0.25]


@pytest.mark.parametrize(
    ("path", "method", "headers", "predictor"),
    [
        ("/v2/models/arrest-predictor/infer", "GET", None, FakePredictor()),
        ("/v2/models/arrest-predictor", "POST", None, FakePredictor()),
        ("/v2/models/arrest-predictor/versions/1/infer", "POST", None, FakePredictor()),
        ("/v2/models/other/infer", "POST", None, FakePredictor()),
        ("/v2/models/arrest-predictor/infer", "POST", None, FakePredictor(ready=False)),
        (
            "/v2/models/arrest-predictor/infer",
            "POST",
            [(b"content-type", b"application/json"), (b"inference-header-content-length", b"10")],
            FakePredictor(),
        ),
        (
            "/v2/models/arrest-predictor/infer",
            "POST",
            [(b"content-type", b"application/octet-stream")],
            FakePredictor(),
        ),
        ("/v2/models/arrest-predictor/infer", "POST", [(b"ce-id", b"1")], FakePredictor()),
    ],
)
def test_anything_else_goes_to_the_inner_app_with_its_body(path, method, headers, predictor) -> None:
    middleware, inner = _middleware(predictor)
    status, _, payload = _call(middleware, path, method, headers=headers)
    assert (status, payload) == (299, b"inner")
    assert inner.bodies == [BODY]
    assert predictor.calls == []


@pytest.mark.parametrize("body", [b"{not json", b'{"instances": [1]}', b"[]", "\u00e9".encode("latin-1")])
def test_a_body_that_is_not_a_v2_request_is_replayed_to_the_inner_app(body: bytes) -> None:
    predictor = FakePredictor()
    middleware, inner = _middleware(predictor)
    status, _, _ = _call(middleware, body=body)
    assert status == 299
    assert inner.bodies == [body]
    assert predictor.calls == []


def test_errors_go_to_the_apps_exception_handlers() -> None:
    middleware, inner = _middleware(FakePredictor(error=InvalidInput("field 'date': bad")))
    status, _, payload = _call(middleware)
    assert status == 400
    assert json.loads(payload) == {"error": "field 'date': bad"}
    assert inner.bodies == []


def test_an_error_without_a_handler_propagates() -> None:
    middleware, _ = _middleware(FakePredictor(error=KeyError("boom")))
    with pytest.raises(KeyError):
        _call(middleware)
