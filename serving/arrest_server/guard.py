"""What stands between a client and the model: bearer-token auth, the body size limit, the limits' answers.

The answers: 401 without the token (when one is set), 413 too large, 504 too slow.

:class:`GuardMiddleware` is a plain ASGI middleware (no body copy for requests that declare their length): it
answers 401 / 413 itself, before FastAPI reads or parses anything. :func:`install` adds it and the exception
handlers to KServe's FastAPI app; it runs in the server process and in every ``--workers`` process.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson
from kserve.errors import InferenceError

from arrest_server.settings import ServerSettings
from arrest_server.ui.paths import is_static
from arrest_server.validation import TooManyRows

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Routes that stay open when a token is set: liveness/readiness probes and Prometheus scraping.
OPEN_PATHS = re.compile(
    r"^/(?:|metrics|v2/health/live|v2/health/ready|v2/models/[^/]+(?:/versions/[^/]+)?/ready)$"
)
#: KServe's V1 model readiness is ``GET /v1/models/<name>`` (the same path with ``:predict`` is inference).
V1_READY = re.compile(r"^/v1/models/[^/:]+$")


class RequestTimeoutError(InferenceError):
    """Scoring a request took longer than ``request_timeout_s`` (HTTP 504)."""


def is_open(method: str, path: str) -> bool:
    """Whether ``method path`` is a health or metrics route or a file of the web page (never needs the token).

    The page's files hold no data (:func:`arrest_server.ui.paths.is_static`); its data routes, ``/ui/api/...``, do.
    """
    return (
        bool(OPEN_PATHS.match(path))
        or (method in ("GET", "HEAD") and bool(V1_READY.match(path)))
        or is_static(method, path)
    )


def token_matches(header: bytes | None, token: bytes) -> bool:
    """Constant-time check of an ``Authorization`` header value against ``Bearer <token>``.

    Args:
        header: The raw header value (``None`` when absent).
        token: The expected token.

    Returns:
        Whether the header carries exactly that bearer token (scheme case-insensitive).
    """
    if not header:
        return False
    scheme, _, value = header.partition(b" ")
    # compare_digest takes time independent of where the values differ (not of their lengths).
    return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), token)


async def _answer(send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """ASGI middleware: bearer token (when configured) and the body size limit.

    Args:
        app: The wrapped ASGI app.
        max_body_bytes: Largest body accepted (a declared ``content-length`` above it is refused before any
            byte is read; a chunked body is counted as it arrives and refused when it passes the limit).
        token: Bearer token required outside :data:`OPEN_PATHS` (``None``: no auth).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, token: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.token = token.encode("utf-8") if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request; pass it on or answer 401 / 413."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        if (
            self.token is not None
            and not is_open(scope.get("method", ""), scope.get("path", ""))
            and not token_matches(headers.get(b"authorization"), self.token)
        ):
            await _answer(
                send,
                401,
                "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                "(ARREST_SERVER_API_TOKEN is set on this server)",
                [(b"www-authenticate", b'Bearer realm="arrest-predictor"')],
            )
            return
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length > limit:
                await _answer(send, 413, _too_large(f"{length:,} bytes", limit))
                return
            await self.app(scope, receive, send)  # the server enforces the declared length
            return
        # No declared length (chunked): read up to the limit, then replay the body.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(send, 413, _too_large(f"more than {limit:,} bytes", limit))
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, replay(body, receive), send)


def _too_large(what: str, limit: int) -> str:
    return f"request body is {what}; at most {limit:,} bytes are accepted (ARREST_SERVER_MAX_BODY_BYTES)"


def replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``first`` (a body already read, or a disconnect) once, then ``receive``'s."""
    pending = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def too_many_rows_handler(request: Any, exc: TooManyRows) -> Any:
    """``TooManyRows`` → HTTP 413 with the message."""
    from fastapi.responses import ORJSONResponse

    return ORJSONResponse(status_code=413, content={"error": str(exc)})


async def timeout_handler(request: Any, exc: RequestTimeoutError) -> Any:
    """``RequestTimeoutError`` → HTTP 504 with the message."""
    from fastapi.responses import ORJSONResponse

    return ORJSONResponse(status_code=504, content={"error": str(exc)})


def install(app: Any, settings: ServerSettings) -> None:
    """Add the guard middleware and the limit handlers to KServe's FastAPI ``app`` (once per process).

    Args:
        app: ``kserve.model_server.app``.
        settings: Server settings (limits, token).
    """
    from fastapi.exceptions import RequestValidationError

    from arrest_server.validation import request_validation_handler

    if getattr(app.state, "arrest_guard_installed", False):
        return
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes, token=token)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(TooManyRows, too_many_rows_handler)
    app.add_exception_handler(RequestTimeoutError, timeout_handler)
    app.state.arrest_guard_installed = True
