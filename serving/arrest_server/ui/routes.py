"""The page's routes on KServe's FastAPI app: the static files under ``/ui/`` and its data under ``/ui/api/``.

=====================================  ========================================================================
``GET /ui/``, ``/ui/<file>``           the page (``index.html``, ``app.css``, ``*.js`` modules), no token
``GET /ui/api/config``                 model name, limits, whether a token is set
``GET /ui/api/choices``                the form's choices: what the served models know (their vocabularies)
``GET /ui/api/areas``                  the community-area map (SVG paths) from the landed boundaries
``GET /ui/api/versions``               the served versions: share, type, threshold, test metrics, tags
``GET /ui/api/card/{role}``            a served version's model card (HTML)
``POST /ui/api/explain``               ``{"record": {...}}``: every version that serves traffic explains it
``POST /ui/api/score?role=...``        a CSV file (the body): scored rows as CSV, refused rows with reasons
=====================================  ========================================================================

The explain and score routes are the page's own: they validate with the API's parser (same 400 messages) and
score with the served models, but the inference API's routing is untouched (no client can pick a version
through ``/v1`` or ``/v2``). Records scored here are hypothetical or a person's upload: they are not written to
the request log (which feeds drift monitoring), not counted in the inference metrics, and nothing is written on
the server; each call is one line in the access log (``protocol: ui``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from kserve.errors import InvalidInput

from arrest_server.observability import log_access
from arrest_server.router import CHALLENGER, CHAMPION, Deployment, LoadedModel, Role
from arrest_server.settings import ServerSettings
from arrest_server.ui.files import one_record_message, score_file
from arrest_server.ui.paths import STATIC_DIR, UI_PREFIX
from arrest_server.ui.versions import Registry, RegistryUnavailableError, describe, share
from arrest_server.validation import TooManyRows, parse_v1

log = logging.getLogger(__name__)
T = TypeVar("T")

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
_TYPES[".svg"] = "image/svg+xml"
#: The page may load its own files only; the model card is shown in a sandboxed frame (no scripts) and carries
#: its own inline styles and images.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


class UiError(Exception):
    """An answer of the page's API other than 200: ``status`` and a message a person can read."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(content: Any, status: int = 200) -> Any:
    import orjson
    from fastapi.responses import Response

    return Response(
        orjson.dumps(content),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _answers(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors of a handler into ``{"error": message}`` with the right status (never a traceback)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except UiError as exc:
            return _json({"error": str(exc)}, exc.status)
        except TooManyRows as exc:
            return _json({"error": str(exc)}, 413)
        except InvalidInput as exc:
            return _json({"error": str(exc)}, 400)
        except RegistryUnavailableError as exc:
            return _json({"error": str(exc)}, 503)
        except Exception as exc:
            request_id = uuid.uuid4().hex
            log.error("page request %s failed", request_id, exc_info=exc)
            return _json(
                {"error": f"internal error ({type(exc).__name__}, request {request_id}); see the server log"},
                500,
            )

    return wrapper


class UiApi:
    """The handlers of ``/ui/api/`` for the model this process serves.

    Args:
        settings: Server settings (model name, limits).
        served: The predictors this process serves, by model name (``arrest_server.process.SERVED``).
    """

    def __init__(self, settings: ServerSettings, served: Mapping[str, Any]) -> None:
        self.settings = settings
        self.served = served
        self._areas: dict[str, Any] | None = None
        self._registry: Registry | None = None

    # -- helpers ---------------------------------------------------------------------------------------------

    def predictor(self) -> Any:
        """The served :class:`~arrest_server.model.ArrestPredictor` (503 while none is loaded)."""
        predictor = self.served.get(self.settings.model_name)
        if predictor is None or predictor.deployment is None:
            raise UiError(
                503, f"the model {self.settings.model_name} is not loaded yet: try again in a moment"
            )
        return predictor

    def deployment(self) -> Deployment:
        """What is served right now."""
        deployment: Deployment = self.predictor().deployment
        return deployment

    def registry(self) -> Registry:
        """The MLflow registry reader (created on first use)."""
        if self._registry is None:
            from chicago_arrest.core.names import MODEL_NAME

            library = self.predictor().library_settings
            self._registry = Registry(library.resolved_tracking_uri(), MODEL_NAME)
        return self._registry

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the thread pool, within the request time limit (504 after it)."""
        limit = self.settings.request_timeout_s
        work = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        try:
            return await asyncio.wait_for(work, timeout=limit)
        except TimeoutError:
            raise UiError(
                504, f"the server took longer than {limit:g} s (ARREST_SERVER_REQUEST_TIMEOUT_S); try again"
            ) from None

    @staticmethod
    def pick(deployment: Deployment, role: str) -> tuple[LoadedModel, Role]:
        """The model serving ``role``."""
        models = deployment.models()
        if role not in (CHAMPION, CHALLENGER):
            raise UiError(400, f"role must be champion or challenger; got {role!r}")
        if role not in models:
            raise UiError(404, f"no {role} is served right now")
        return models[role], role

    # -- routes ----------------------------------------------------------------------------------------------

    @_answers
    async def config(self) -> Any:
        """Model name, limits and whether the data routes need a token."""
        s = self.settings
        return _json(
            {
                "model_name": s.model_name,
                "max_rows": s.max_rows,
                "max_body_bytes": s.max_body_bytes,
                "request_timeout_s": s.request_timeout_s,
                "token_required": s.api_token is not None,
            }
        )

    @_answers
    async def choices(self) -> Any:
        """The union of the served models' vocabularies (champion first)."""
        from chicago_arrest.model.vocabulary import merge_vocabularies, model_vocabulary

        deployment = self.deployment()
        vocabularies = [model_vocabulary(m.model) for m in deployment.models().values()]
        merged = functools.reduce(merge_vocabularies, vocabularies)
        return _json({**merged, "versions": [m.version for m in deployment.models().values()]})

    @_answers
    async def areas(self) -> Any:
        """The community-area map (read from the object store once per process, once found)."""
        if self._areas is not None:
            return _json(self._areas)
        from arrest_server.ui.areas import load_area_map
        from chicago_arrest.core.store import make_store

        library = self.predictor().library_settings
        found = await self.run(lambda: load_area_map(make_store(library)))
        if found["areas"]:  # kept; without boundaries, asked again next time (the pipeline may land them)
            self._areas = found
        return _json(found)

    @_answers
    async def versions(self) -> Any:
        """The served versions with their metrics (from the registry where it can be read)."""
        deployment = self.deployment()
        return _json(await self.run(describe, deployment, self.registry()))

    @_answers
    async def card(self, role: str) -> Any:
        """A served version's model card, as HTML."""
        from fastapi.responses import HTMLResponse

        loaded, _ = self.pick(self.deployment(), role)
        page = await self.run(self.registry().card, loaded)
        return HTMLResponse(page, headers={"cache-control": "no-store", "x-content-type-options": "nosniff"})

    @_answers
    async def explain(self, request: Request) -> Any:
        """Explain one record with every version that serves traffic (the challenger only under a canary)."""
        start = time.perf_counter()
        body = await _json_body(request)
        record = body.get("record") if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise InvalidInput(
                'the body must be {"record": {"date": ..., "primary_type": ..., "iucr": ..., ...}}'
            )
        deployment = self.deployment()
        serving = [
            (m, role)
            for role, m in deployment.models().items()
            if share(deployment, role) > 0 or role == CHAMPION
        ]
        answers = await self.run(_explain_all, record, serving, deployment, self.settings.max_rows)
        request_id = uuid.uuid4().hex
        for answer in answers:
            _access(
                request_id, self.settings.model_name, answer["version"], answer["role"], 1, start, "explain"
            )
        return _json({"id": request_id, "answers": answers})

    @_answers
    async def score(self, request: Request) -> Any:
        """Score a CSV file (the request body) with the champion, or ``?role=challenger``."""
        start = time.perf_counter()
        loaded, role = self.pick(self.deployment(), request.query_params.get("role", CHAMPION))
        body = await request.body()
        result = await self.run(score_file, body, loaded, role, self.settings.max_rows)
        _access(uuid.uuid4().hex, self.settings.model_name, loaded.version, role, result.rows, start, "score")
        return _json(result.as_dict())

    @_answers
    async def not_found(self, path: str) -> Any:
        """Any other ``/ui/api/`` path."""
        raise UiError(404, f"no such page API route: /ui/api/{path}")


async def _json_body(request: Request) -> Any:
    import orjson

    raw = await request.body()
    if not raw.strip():
        raise InvalidInput("invalid request: the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"invalid request: body is not valid JSON ({exc})") from None


def _explain_all(
    record: dict[str, Any], serving: list[tuple[LoadedModel, Role]], deployment: Deployment, max_rows: int
) -> list[dict[str, Any]]:
    """The record's explanation by each model (parsed once, with the V1 API's parser and messages)."""
    from chicago_arrest.model.explain import explainer_for

    try:
        parsed = parse_v1({"instances": [record]}, max_rows)
    except InvalidInput as exc:  # one record: the API's message without its row number
        raise InvalidInput(one_record_message(str(exc))) from None
    answers = []
    for loaded, role in serving:
        explanation = explainer_for(loaded.model).explain(parsed.frame).records()[0]
        threshold = float(loaded.model.threshold)
        answers.append(
            {
                "role": role,
                "version": loaded.version,
                "share": share(deployment, role),
                "threshold": threshold,
                "arrest": explanation["arrest_probability"] >= threshold,
                **explanation,
            }
        )
    return answers


def _access(request_id: str, model: str, version: str, role: str, rows: int, start: float, what: str) -> None:
    log_access(
        request_id=request_id,
        model_name=model,
        model_version=version,
        role=role,
        protocol="ui",
        route=what,
        rows=rows,
        latency_ms=round((time.perf_counter() - start) * 1000, 3),
        status=200,
    )


def _static(name: str) -> Any:
    """One of the page's files (404 for anything else).

    Only a file directly in :data:`STATIC_DIR` with a suffix of ``_TYPES`` is served (``.js`` as
    ``text/javascript``: a browser refuses an ES module sent with another type).
    """
    from fastapi.responses import FileResponse, JSONResponse

    path = STATIC_DIR / name
    if name.startswith(".") or path.parent != STATIC_DIR or not path.is_file() or path.suffix not in _TYPES:
        return JSONResponse({"error": f"no such file: {UI_PREFIX}/{name}"}, status_code=404)
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=HEADERS)


def install(app: Any, settings: ServerSettings, served: Mapping[str, Any]) -> None:
    """Add the page to KServe's FastAPI ``app`` (once per process).

    The page's routes live in an app of their own mounted at ``/ui``, so a request elsewhere passes two route
    checks (the mount and the ``/ui`` redirect) instead of one per page route; the app's middleware (the
    guard) runs before either.

    Args:
        app: ``kserve.model_server.app``.
        settings: Server settings.
        served: The predictors this process serves, by model name, looked up per request.
    """
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    if getattr(app.state, "arrest_ui_installed", False):
        return
    api = UiApi(settings, served)
    ui = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    add = ui.router.add_api_route
    add("/api/config", api.config, methods=["GET"])
    add("/api/choices", api.choices, methods=["GET"])
    add("/api/areas", api.areas, methods=["GET"])
    add("/api/versions", api.versions, methods=["GET"])
    add("/api/card/{role}", api.card, methods=["GET"])
    add("/api/explain", api.explain, methods=["POST"])
    add("/api/score", api.score, methods=["POST"])
    add("/api/{path:path}", api.not_found, methods=["GET", "POST"])

    async def page() -> Any:
        return _static("index.html")

    async def static(name: str) -> Any:
        return _static(name)

    async def redirect() -> Any:
        return RedirectResponse(f"{UI_PREFIX}/", status_code=308)

    add("/", page, methods=["GET", "HEAD"])
    add("/{name}", static, methods=["GET", "HEAD"])
    app.router.add_api_route(UI_PREFIX, redirect, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(UI_PREFIX, ui)
    app.state.arrest_ui_installed = True
    log.info("web page on %s/ (ARREST_SERVER_UI=false turns it off)", UI_PREFIX)
