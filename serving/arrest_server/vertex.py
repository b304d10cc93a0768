"""Vertex AI's custom-container contract: its predict and rawPredict bodies on one route, its health route.

Vertex runs the container with ``AIP_HTTP_PORT``, ``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE`` and
``AIP_STORAGE_URI`` set (the model's ``containerSpec``; ``google-cloud-aiplatform`` 1.165.1 sets the same four
in ``docker_utils/run.py`` when it runs a serving container locally). It sends health checks as ``GET`` to the
health route and forwards the body of ``endpoints.predict`` as a ``POST`` to the predict route
(``ModelContainerSpec.predict_route``). ``endpoints.rawPredict`` passes an arbitrary body through unchanged; no
Vertex document read here says to which path, but the SDK's private-endpoint ``raw_predict`` and ``predict``
post to the same ``predict_http_uri``, and Google's local endpoint posts every request to the predict route.
So the predict route takes both shapes the server speaks:

* Vertex's own ``{"instances": [{field: value, ...}, ...], "parameters": ...}`` (``Endpoint.predict``, the
  console's test panel, batch prediction) goes to KServe's V1 route, and the answer is Vertex's documented
  response shape ``{"predictions": [{"arrest_probability": p, "arrest": bool}, ...]}``, one per instance (the
  model version is in the ``x-model-version`` header; Vertex adds the deployed model's id itself);
* a V2 inference request (``{"inputs": [...]}``, or KServe's binary extension) goes to the V2 infer route and
  is answered as V2 (``Endpoint.raw_predict``, ``gcloud ai endpoints raw-predict``);
* any other body gets HTTP 400 naming both shapes.

A ``GET`` on the health route is answered by the V2 readiness route (200 once the model is loaded). Without
``AIP_PREDICT_ROUTE`` / ``AIP_HEALTH_ROUTE`` in the environment nothing is installed: the cluster and local
servers are unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from arrest_server.guard import ASGIApp, Message, Receive, Scope, Send, replay
from arrest_server.settings import ServerSettings
from chicago_arrest.core.names import V1_PREDICT_ROUTE, V2_INFER_ROUTE, V2_READY_ROUTE

#: The variables Vertex AI sets in a serving container (``google.cloud.aiplatform.constants.prediction``).
AIP_HTTP_PORT = "AIP_HTTP_PORT"
AIP_HEALTH_ROUTE = "AIP_HEALTH_ROUTE"
AIP_PREDICT_ROUTE = "AIP_PREDICT_ROUTE"
AIP_STORAGE_URI = "AIP_STORAGE_URI"
#: KServe's binary-data extension header: a V2 request whose body is not JSON.
BINARY_HEADER = b"inference-header-content-length"
SHAPES = (
    'Vertex predict body must be {"instances": [{"date": ..., "primary_type": ..., "iucr": ...}, ...]} '
    '(Endpoint.predict) or a V2 inference request {"inputs": [...]} (rawPredict)'
)


@dataclass(frozen=True)
class VertexRoutes:
    """Where Vertex's requests arrive and where the server answers them.

    Attributes:
        predict_route: ``AIP_PREDICT_ROUTE`` (empty: not rerouted).
        health_route: ``AIP_HEALTH_ROUTE`` (empty: not rerouted).
        v1_route: KServe's V1 predict route of the served model.
        v2_route: KServe's V2 infer route of the served model.
        ready_route: The server's V2 readiness route.
    """

    predict_route: str
    health_route: str
    v1_route: str
    v2_route: str
    ready_route: str = V2_READY_ROUTE

    @classmethod
    def from_env(cls, model_name: str, environ: Mapping[str, str] | None = None) -> VertexRoutes | None:
        """The routes of the Vertex environment, or ``None`` outside Vertex (neither route variable set)."""
        env = os.environ if environ is None else environ
        predict, health = env.get(AIP_PREDICT_ROUTE, "").strip(), env.get(AIP_HEALTH_ROUTE, "").strip()
        if not predict and not health:
            return None
        return cls(
            predict_route=predict,
            health_route=health,
            v1_route=V1_PREDICT_ROUTE.format(name=model_name),
            v2_route=V2_INFER_ROUTE.format(name=model_name),
        )


def body_shape(body: bytes, headers: Mapping[bytes, bytes]) -> str:
    """``"v1"`` (Vertex's instances), ``"v2"`` (a V2 inference request) or an error message.

    Args:
        body: The request body.
        headers: The request headers (lower-case names).
    """
    if BINARY_HEADER in headers:
        return "v2"
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"request body is not JSON ({exc}); {SHAPES}"
    if isinstance(payload, dict) and "instances" in payload:
        return "v1"
    if isinstance(payload, dict) and "inputs" in payload:
        return "v2"
    return SHAPES


def vertex_predictions(body: bytes) -> bytes | None:
    """The V1 answer as Vertex's ``{"predictions": [...]}``, one object per instance; ``None`` if not a V1 answer."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    probabilities, arrests = answer.get("predictions"), answer.get("arrest")
    if (
        not isinstance(probabilities, list)
        or not isinstance(arrests, list)
        or len(arrests) != len(probabilities)
    ):
        return None
    predictions = [
        {"arrest_probability": p, "arrest": a} for p, a in zip(probabilities, arrests, strict=True)
    ]
    return orjson.dumps({"predictions": predictions})


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or ``None`` when the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _to(scope: Scope, path: str) -> Scope:
    return {**scope, "path": path, "raw_path": path.encode()}


class VertexMiddleware:
    """ASGI middleware: Vertex's predict route answers both request shapes; its health route is readiness.

    Args:
        app: The wrapped ASGI app (KServe's FastAPI app and the middlewares inside this one).
        routes: Where Vertex's requests arrive (:meth:`VertexRoutes.from_env`).
    """

    def __init__(self, app: ASGIApp, routes: VertexRoutes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Reroute Vertex's predict and health requests; pass everything else on unchanged."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        r = self.routes
        if r.health_route and path == r.health_route and method in ("GET", "HEAD") and path != r.ready_route:
            await self.app(_to(scope, r.ready_route), receive, send)
            return
        if not r.predict_route or path != r.predict_route or method != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        shape = body_shape(body, dict(scope.get("headers") or ()))
        replayed = replay({"type": "http.request", "body": body, "more_body": False}, receive)
        if shape == "v2":
            await self.app(_to(scope, r.v2_route), replayed, send)
        elif shape == "v1":
            await self.app(_to(scope, r.v1_route), replayed, _vertex_answer(send))
        else:
            await _answer(send, 400, shape)


def _vertex_answer(send: Send) -> Send:
    """A ``send`` that turns a successful V1 answer into Vertex's ``{"predictions"}`` (others pass unchanged)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def sending(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            if message.get("status") != 200:
                await send(message)
                return
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        rewritten = vertex_predictions(body)
        if rewritten is not None:
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            start = {**start, "headers": [*headers, (b"content-length", str(len(rewritten)).encode())]}
            body = rewritten
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return sending


def install(
    app: Any, settings: ServerSettings, environ: Mapping[str, str] | None = None
) -> VertexRoutes | None:
    """Add :class:`VertexMiddleware` to KServe's app when the Vertex environment is set (once per process).

    Installed inside the guard (the token and the body limit apply first) and outside the V2 fast path (a V2
    body rerouted here still takes it).

    Args:
        app: ``kserve.model_server.app``.
        settings: Server settings (the model's name).
        environ: The environment (default: ``os.environ``).

    Returns:
        The routes installed, or ``None`` outside Vertex.
    """
    routes = VertexRoutes.from_env(settings.model_name, environ)
    if routes is None or getattr(app.state, "arrest_vertex_installed", False):
        return routes
    app.add_middleware(VertexMiddleware, routes=routes)
    app.state.arrest_vertex_installed = True
    return routes
