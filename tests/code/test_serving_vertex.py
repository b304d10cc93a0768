"""The model server under Vertex AI's environment, in process: routing by body shape, health, the answer's shape.

The real server started as Vertex starts it is in tests/e2e/test_vertex_server.py; these cover the other routes
Vertex may set (its default predict route when ``predictRoute`` is empty), and the middleware's edges.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from arrest_server.settings import ServerSettings
from arrest_server.vertex import VertexMiddleware, VertexRoutes, body_shape, install, vertex_predictions

from tests.asgi import run_asgi

#: Vertex's default predictRoute / healthRoute (ModelContainerSpec docs) for endpoint 42, deployed model 7311.
DEFAULT_PREDICT = "/v1/endpoints/42/deployedModels/7311:predict"
DEFAULT_HEALTH = "/v1/endpoints/42/deployedModels/7311"
ENV = {"AIP_PREDICT_ROUTE": DEFAULT_PREDICT, "AIP_HEALTH_ROUTE": DEFAULT_HEALTH, "AIP_HTTP_PORT": "8080"}
V1_ANSWER = {
    "predictions": [0.25, 0.75],
    "arrest": [False, True],
    "model_name": "arrest-predictor",
    "model_version": "7",
    "model_role": "champion",
    "id": "abc",
}


class Inner:
    """The wrapped app: records the path and body it got, answers ``status`` with ``answer``."""

    def __init__(self, answer: dict[str, Any] | None = None, status: int = 200) -> None:
        self.answer, self.status = answer or {"ok": True}, status
        self.seen: list[tuple[str, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.seen.append((scope["path"], body))
        payload = orjson.dumps(self.answer)
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _app(inner: Inner, env: dict[str, str] = ENV) -> VertexMiddleware:
    routes = VertexRoutes.from_env("arrest-predictor", env)
    assert routes is not None
    return VertexMiddleware(inner, routes)


def _call(
    app: Any, method: str, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None
):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "headers": headers or [],
    }
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent = run_asgi(app, scope, messages)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_instances_on_vertexs_default_predict_route_go_to_v1_and_come_back_as_predictions() -> None:
    inner = Inner(V1_ANSWER)
    body = json.dumps({"instances": [{"date": "x"}], "parameters": {"a": 1}}).encode()
    status, headers, answer = _call(_app(inner), "POST", DEFAULT_PREDICT, [body[:10], body[10:]])
    assert inner.seen == [("/v1/models/arrest-predictor:predict", body)]  # chunks reassembled, replayed whole
    assert status == 200
    assert orjson.loads(answer) == {
        "predictions": [
            {"arrest_probability": 0.25, "arrest": False},
            {"arrest_probability": 0.75, "arrest": True},
        ]
    }
    assert int(headers[b"content-length"]) == len(answer)


def test_a_v2_body_on_the_predict_route_goes_to_v2_unchanged() -> None:
    inner = Inner({"outputs": []})
    body = b'{"id": "1", "inputs": [{"name": "date", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}'
    status, _, answer = _call(_app(inner), "POST", DEFAULT_PREDICT, [body])
    assert inner.seen == [("/v2/models/arrest-predictor/infer", body)]
    assert (status, orjson.loads(answer)) == (200, {"outputs": []})


def test_a_binary_v2_body_is_recognised_by_its_header() -> None:
    inner = Inner()
    body = b'{"inputs": []}\x00\x01binary'
    _call(_app(inner), "POST", DEFAULT_PREDICT, [body], [(b"inference-header-content-length", b"14")])
    assert inner.seen == [("/v2/models/arrest-predictor/infer", body)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{bad", "request body is not JSON"),
        (b'{"rows": []}', "Vertex predict body must be"),
        (b"[]", "must be"),
    ],
)
def test_other_bodies_get_400_and_reach_nothing(body: bytes, message: str) -> None:
    inner = Inner()
    status, _, answer = _call(_app(inner), "POST", DEFAULT_PREDICT, [body])
    assert status == 400
    assert message in orjson.loads(answer)["error"]
    assert inner.seen == []


def test_a_failed_v1_answer_passes_unchanged() -> None:
    inner = Inner({"error": "missing required field(s): iucr"}, status=400)
    status, _, answer = _call(_app(inner), "POST", DEFAULT_PREDICT, [b'{"instances": [{}]}'])
    assert (status, orjson.loads(answer)) == (400, {"error": "missing required field(s): iucr"})


def test_the_health_route_is_readiness() -> None:
    inner = Inner()
    assert _call(_app(inner), "GET", DEFAULT_HEALTH, [])[0] == 200
    assert inner.seen[-1][0] == "/v2/health/ready"
    _call(_app(inner), "POST", DEFAULT_HEALTH, [b"{}"])  # only GET / HEAD are health checks
    assert inner.seen[-1][0] == DEFAULT_HEALTH


def test_other_routes_are_untouched() -> None:
    inner = Inner(V1_ANSWER)
    body = b'{"instances": [{}]}'
    _, _, answer = _call(_app(inner), "POST", "/v1/models/arrest-predictor:predict", [body])
    assert orjson.loads(answer) == V1_ANSWER  # not the predict route here: KServe's V1 answer as it is
    _call(_app(inner), "GET", DEFAULT_PREDICT, [])
    assert inner.seen[-1][0] == DEFAULT_PREDICT


def test_vertex_predictions_only_rewrites_a_v1_answer() -> None:
    assert vertex_predictions(b'{"predictions": [0.5], "arrest": [true]}') == orjson.dumps(
        {"predictions": [{"arrest_probability": 0.5, "arrest": True}]}
    )
    assert vertex_predictions(b'{"predictions": [0.5]}') is None
    assert vertex_predictions(b"not json") is None


def test_body_shape() -> None:
    assert body_shape(b'{"instances": []}', {}) == "v1"
    assert body_shape(b'{"inputs": []}', {}) == "v2"
    assert body_shape(b"\x00", {b"inference-header-content-length": b"0"}) == "v2"


def test_nothing_is_installed_outside_vertex() -> None:
    from types import SimpleNamespace

    added: list[Any] = []
    app = SimpleNamespace(state=SimpleNamespace(), add_middleware=lambda cls, **kw: added.append((cls, kw)))
    assert install(app, ServerSettings(), environ={"AIP_HTTP_PORT": "8080"}) is None
    assert added == []
    routes = install(app, ServerSettings(), environ=ENV)
    assert routes is not None
    assert routes.predict_route == DEFAULT_PREDICT
    assert added == [(VertexMiddleware, {"routes": routes})]
    install(app, ServerSettings(), environ=ENV)  # once per process
    assert len(added) == 1
