"""The V2 infer route of the served model without FastAPI's per-request machinery (issue 15's capacity).

KServe's ``POST /v2/models/{name}/infer`` goes through FastAPI: route matching over every registered route,
dependency solving, the pydantic body model, the data plane's decode and encode, ``jsonable_encoder`` over every
output value and the timing middleware. For one record that was as much CPU as the model itself
(docs/benchmarks.md). :class:`FastInferMiddleware` answers the common case itself, with the same objects and
the same answer:

- only ``POST /v2/models/<a model this process serves>/infer`` with a plain JSON body (no binary-data
  extension header, no CloudEvent) on a loaded model; anything else, or a body that does not parse as a V2
  request, continues to KServe's route unchanged (with the body already read replayed);
- the body becomes KServe's ``InferenceRequest`` and ``InferRequest`` as on KServe's route, and the model is
  called as KServe's data plane calls it (``Model.__call__``: its Prometheus histograms, then
  :meth:`ArrestPredictor.predict`: validation, routing, limits, metrics, access log);
- the response is KServe's ``InferenceResponse`` rendered like FastAPI's ``ORJSONResponse``; errors go to the
  exception handlers registered on the app (400, 413, 504, 500 with the same bodies).

It sits inside :class:`arrest_server.guard.GuardMiddleware`, so the token and the body limit apply first.
``ARREST_SERVER_FAST_INFER=false`` switches it off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse

from arrest_server.guard import ASGIApp, Receive, Scope, Send, replay

PREFIX = "/v2/models/"
SUFFIX = "/infer"
#: KServe's binary-data extension header: such requests take KServe's route.
BINARY_HEADER = b"inference-header-content-length"
#: Same options as FastAPI's ``ORJSONResponse``.
ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _plain_json(headers: Mapping[bytes, bytes]) -> bool:
    content_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
    return content_type == b"application/json" and BINARY_HEADER not in headers and b"ce-id" not in headers


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise ConnectionError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class FastInferMiddleware:
    """ASGI middleware: V2 inference of the served models without FastAPI's route (see the module).

    Args:
        app: The wrapped ASGI app (the rest of KServe's stack).
        models: Model name → predictor, the models this process serves (looked up per request: the server
            registers them after the middleware is built).
        handlers: Exception class → handler ``(request, exc) -> Response`` (the FastAPI app's
            ``exception_handlers``).
    """

    def __init__(
        self,
        app: ASGIApp,
        models: Mapping[str, Any],
        handlers: Mapping[Any, Callable[[Any, Exception], Any]],
    ) -> None:
        self.app = app
        self.models = models
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a plain V2 infer request of a served model; pass anything else on."""
        raw_headers = dict(scope.get("headers") or ()) if scope["type"] == "http" else {}
        predictor = self._predictor(scope, raw_headers)
        if predictor is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            request = InferenceRequest.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValueError):
            # KServe's route gives the error answer (FastAPI's validation, our 400 messages).
            await self.app(
                scope, replay({"type": "http.request", "body": body, "more_body": False}, receive), send
            )
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers.items()}
        try:
            infer_request = InferRequest.from_inference_request(request, predictor.name)
            response, response_headers = await predictor(infer_request, headers=headers)
            content, json_size = response.to_rest()
        except Exception as exc:
            await self._error(scope, receive, send, exc)
            return
        out = []
        if isinstance(content, bytes):  # binary outputs requested in the body's parameters
            payload = content  # KServe's route sends these without a content type
            if json_size is not None:
                out.append((BINARY_HEADER, str(json_size).encode()))
        else:
            out.append((b"content-type", b"application/json"))
            model = InferenceResponse.model_validate(content)
            payload = orjson.dumps(model.model_dump(mode="json", by_alias=True), option=ORJSON_OPTIONS)
        out += [
            (k.encode("latin-1"), str(v).encode("latin-1"))
            for k, v in response_headers.items()
            if k.lower() not in ("content-length", "content-type")
        ]
        out.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": payload})

    def _predictor(self, scope: Scope, headers: Mapping[bytes, bytes]) -> Any:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            return None
        predictor = self.models.get(path[len(PREFIX) : -len(SUFFIX)])
        if predictor is None or not predictor.ready:
            return None  # unknown (404), versioned path or not ready (503): KServe answers
        if not _plain_json(headers):
            return None
        return predictor

    async def _error(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        from starlette.requests import Request

        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                response = await handler(Request(scope, receive), exc)
                await response(scope, receive, send)
                return
        raise exc
