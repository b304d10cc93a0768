"""One server process (the main one and each ``--workers`` process): logging, threads, routes, the heap.

:func:`setup_process` runs once per process before it serves: KServe's and the server's logging, native thread
pools, the HTTP guard (:mod:`arrest_server.guard`), the fast V2 infer path (:mod:`arrest_server.fast_infer`),
the metadata route and the web page (:mod:`arrest_server.ui`). :data:`SERVED` names the predictors this process
serves, for the routes that look them up per request.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
from typing import Any

from arrest_server.observability import configure_logging, quiet_client_errors
from arrest_server.settings import ServerSettings
from arrest_server.workers import stop_on_shutdown


def freeze_heap() -> None:
    """Collect, then exclude every object alive now (libraries, the loaded models) from future collections.

    A full collection of the ~300,000 objects a server holds after loading a random forest takes ~150 ms, during
    which a worker answers nothing: under load that was the p99 (requests queued behind the pause). Frozen, the
    collector only walks what requests allocate. Unfrozen first, so a swapped-out model's reference cycles are
    collected before the new set is frozen (plain reference counting frees the rest either way).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _trim_malloc()


def _trim_malloc() -> None:
    """glibc: give the heap pages freed by a swapped-out model back to the system (``malloc_trim(0)``).

    The watcher thread loads models in its own malloc arena, which glibc does not shrink by itself. (In the soak
    benchmark this did not remove the one-time growth after the first promote/rollback: docs/benchmarks.md.)
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


def _no_orjson_deprecation_warning() -> None:
    """Stop FastAPI's per-response deprecation warning of ``ORJSONResponse`` (KServe's response class).

    FastAPI >= 0.120 warns at every instantiation. An "ignore" filter is not enough: ``warnings.catch_warnings``
    is not thread-safe, and while the watcher thread loaded a model, concurrent responses raised the warning as
    an exception (183 HTTP 500s in a soak run). The class itself is unchanged.
    """
    from fastapi import responses

    if getattr(responses.ORJSONResponse, "__deprecated__", None):
        responses.ORJSONResponse.__new__ = staticmethod(  # type: ignore[method-assign]
            lambda cls, *args, **kwargs: object.__new__(cls)
        )


def die_with_parent(parent_pid: int | None) -> None:
    """Linux: this worker gets SIGTERM when the server process that started it dies, even by SIGKILL.

    KServe's workers otherwise outlive a killed parent and keep the port (``prctl(PR_SET_PDEATHSIG)``).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if parent_pid is not None and os.getppid() != parent_pid:  # it died before the line above
        raise SystemExit("arrest_server worker: the server process that started it is gone")


def setup_process(settings: ServerSettings) -> None:
    """Logging, native thread pools and the HTTP guard of one server process (the main one and each worker).

    Args:
        settings: Server settings.
    """
    from kserve.logging import configure_logging as configure_kserve_logging
    from kserve.model_server import app
    from threadpoolctl import threadpool_limits

    configure_kserve_logging()  # KServe's loggers first (a no-op once configured), then ours adjust them
    configure_logging(settings.log_level, settings.access_log)
    quiet_client_errors()
    _no_orjson_deprecation_warning()
    if not settings.kserve_latency_log:
        # KServe logs several timing lines per request; the JSON access log carries the latency instead.
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    if not settings.uvicorn_access_log:
        logging.getLogger("uvicorn.access").disabled = True
    threadpool_limits(limits=settings.threads)
    install_routes(app, settings)


def install_routes(app: Any, settings: ServerSettings) -> None:
    """The server's own middleware and routes on KServe's FastAPI ``app`` (each once per process).

    The fast V2 infer path (``fast_infer``), Vertex AI's routes (only under its ``AIP_*`` environment), the
    guard (token, body limit), the metadata route, the predictors' stop at shutdown and, unless ``ui`` is off
    (``ARREST_SERVER_UI=false``), the web page.
    """
    from arrest_server.guard import install
    from arrest_server.vertex import install as install_vertex

    if settings.fast_infer:
        install_fast_infer(app)  # before the guard: the guard wraps it (token and body limit first)
    install_vertex(app, settings)  # only under Vertex AI's AIP_* environment (arrest_server.vertex)
    install(app, settings)
    install_metadata_route(app)
    stop_on_shutdown(app, SERVED)
    if settings.ui:
        from arrest_server.ui.routes import install as install_ui

        install_ui(app, settings, SERVED)


#: The predictors this process serves, by model name (``ArrestPredictor``; the metadata route and the fast
#: infer path look them up per request).
SERVED: dict[str, Any] = {}


async def _model_metadata(model_name: str) -> Any:
    from fastapi.responses import ORJSONResponse

    predictor = SERVED.get(model_name)
    if predictor is None:  # KServe's own answer (kserve.errors.ModelNotFound), without its logged traceback
        return ORJSONResponse({"error": f"Model with name {model_name} does not exist."}, status_code=404)
    return ORJSONResponse(predictor.metadata())


def install_fast_infer(app: Any) -> None:
    """Answer plain V2 infer requests of the served models without FastAPI's route (once per process).

    See :mod:`arrest_server.fast_infer`; errors go to the app's exception handlers.
    """
    from arrest_server.fast_infer import FastInferMiddleware

    if getattr(app.state, "arrest_fast_infer_installed", False):
        return
    app.add_middleware(FastInferMiddleware, models=SERVED, handlers=app.exception_handlers)
    app.state.arrest_fast_infer_installed = True


def install_metadata_route(app: Any) -> None:
    """Answer ``GET /v2/models/{name}`` with :meth:`ArrestPredictor.metadata` (once per process).

    The route goes first, ahead of KServe's own (registered when the server starts), so the served versions
    and their model cards are in the protocol's metadata response.
    """
    if getattr(app.state, "arrest_metadata_installed", False):
        return
    app.router.add_api_route("/v2/models/{model_name}", _model_metadata, methods=["GET"])
    app.router.routes.insert(0, app.router.routes.pop())
    app.state.arrest_metadata_installed = True
