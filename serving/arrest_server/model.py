"""The KServe model: ``arrest-predictor`` (V2 Open Inference Protocol and V1), champion/challenger in one process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from arrest_server.guard import RequestTimeoutError
from arrest_server.observability import (
    Metrics,
    configure_logging,
    get_metrics,
    log_access,
    quiet_client_errors,
)
from arrest_server.request_log import process_request_log
from arrest_server.router import (
    CHAMPION,
    Deployment,
    DeploymentHolder,
    LoadedModel,
    Role,
    StateWatcher,
    build_deployment,
)
from arrest_server.settings import ServerSettings
from arrest_server.validation import (
    ARREST_OUTPUT,
    OUTPUT_DATATYPES,
    PROBABILITY_OUTPUT,
    TooManyRows,
    claimed_rows,
    input_metadata,
    output_metadata,
    parse_v1,
    parse_v2,
    wants_explanation,
)
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.settings import Settings
from chicago_arrest.model.explain import explainer_for
from chicago_arrest.registry.aliases import MlflowAliases, registry_split
from chicago_arrest.registry.state import ModelRef, ServingState, load_state

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
#: V2 output holding each record's explanation (a JSON object per record) when the request asks for them.
EXPLANATION_OUTPUT = "explanation"
MODEL_VERSION_HEADER = "x-model-version"
MODEL_ROLE_HEADER = "x-model-role"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")
#: A record used to warm a freshly loaded model up before it gets traffic.
_WARMUP = {
    "date": ["2017-06-01T12:00:00.000"],
    "primary_type": ["THEFT"],
    "iucr": ["0820"],
    "domestic": [False],
}


@dataclass
class _Scored:
    """What the scoring thread got to (read by the request, also when it gave up waiting)."""

    rows: int = 0
    probabilities: np.ndarray | None = None


def _download(uri: str, tracking_uri: str, folder: str) -> str:
    """Copy the model behind a ``models:/`` or ``runs:/`` URI into ``folder``, resolved in ``tracking_uri``.

    MLflow resolves ``models:/`` URIs against its global registry URI; this resolves the version's location
    with a client of ``tracking_uri`` first, so the server never depends on (or sets) MLflow's global state.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    match = _MODELS_URI.match(uri)
    if match is not None:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        version = match["version"] or client.get_model_version_by_alias(match["name"], match["alias"]).version
        uri = client.get_model_version_download_uri(match["name"], str(version))
    return str(
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri)
    )


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


def _die_with_parent(parent_pid: int | None) -> None:
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

    from arrest_server.guard import install

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
    if settings.fast_infer:
        install_fast_infer(app)  # before the guard: the guard wraps it (token and body limit first)
    install(app, settings)
    install_metadata_route(app)


#: The predictors this process serves, by model name (the V2 metadata route answers for them).
_SERVED: dict[str, ArrestPredictor] = {}


async def _model_metadata(model_name: str) -> Any:
    from fastapi.responses import ORJSONResponse

    predictor = _SERVED.get(model_name)
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
    app.add_middleware(FastInferMiddleware, models=_SERVED, handlers=app.exception_handlers)
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


def load_model(
    ref: ModelRef, threads: int = 1, tracking_uri: str | None = None, batch_threads: int | None = None
) -> LoadedModel:
    """Load, pin and warm up one model.

    Args:
        ref: Version and URI (``models:/...``, ``runs:/...`` or a local MLflow model folder).
        threads: Classifier threads.
        tracking_uri: MLflow tracking/registry URI that ``models:/`` and ``runs:/`` URIs resolve against
            (passed explicitly: MLflow's global URI is not used).
        batch_threads: Classifier threads for large requests (``ArrestModel.set_threads``; default
            ``threads``).

    Returns:
        The loaded model.
    """
    from chicago_arrest.registry.models import load_arrest_model, model_card_reference

    start = time.perf_counter()
    if tracking_uri and ref.uri.startswith(("models:/", "runs:/")):
        with tempfile.TemporaryDirectory(prefix="arrest-model-") as tmp:
            folder = _download(ref.uri, tracking_uri, tmp)
            model, card = load_arrest_model(folder), model_card_reference(folder)
    else:
        model, card = load_arrest_model(ref.uri), model_card_reference(ref.uri)
    model.set_threads(threads, batch=batch_threads)
    # The first calls are slow (lazy imports, caches): pay them now, not in a request.
    model.predict_arrest_probability(pd.DataFrame(_WARMUP))
    explainer_for(model).explain(pd.DataFrame(_WARMUP))  # builds the explainer (a forest's is converted)
    log.info("loaded model version %s from %s in %.1fs", ref.version, ref.uri, time.perf_counter() - start)
    return LoadedModel(ref.version, ref.uri, model, card)


class ArrestPredictor(Model):
    """Scores raw crime records: V2 ``content_type: "pd"`` (one input per raw field) or V1 ``instances`` rows.

    Args:
        settings: Server settings.
        library_settings: Library settings (MLflow URI, data dir with the serving state).
        metrics: Collectors (default: the process-wide ones, created at :meth:`load`).
    """

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        library_settings: Settings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        super().__init__(self.settings.model_name, return_response_headers=True)
        self.library_settings = library_settings or Settings()
        self.metrics = metrics
        self.holder: DeploymentHolder | None = None
        self.watcher: StateWatcher | None = None
        self.source = ""

    # -- loading -----------------------------------------------------------------------------------------------

    def _load(self, ref: ModelRef) -> LoadedModel:
        return load_model(
            ref,
            self.settings.threads,
            self.library_settings.resolved_tracking_uri(),
            batch_threads=self.settings.classifier_batch_threads(),
        )

    def _serving_state(self) -> ServingState:
        """The local serving state; without the file, the registry aliases (in memory: nothing is written)."""
        path = self.library_settings.serving_config_path
        try:
            return load_state(path)
        except FileNotFoundError:
            aliases = MlflowAliases.from_settings(self.library_settings)
            state = ServingState.from_split(registry_split(aliases, f"no serving state at {path}"))
            log.info("no serving state at %s yet: serving the registry aliases", path)
            return state

    def load(self) -> bool:
        """Load the model(s): ``model_dir``, else ``model_uri``, else the local serving state (watched).

        Returns:
            ``True`` (``self.ready``).

        Raises:
            chicago_arrest.release.ReleaseError: When the serving state is invalid, or there is none and the
                registry has no champion.
        """
        s = self.settings
        if s.model_dir is not None:
            self.source = f"model_dir {s.model_dir}"
            deployment = Deployment(self._load(ModelRef(s.model_version or "local", str(s.model_dir))))
        elif s.model_uri:
            self.source = f"model_uri {s.model_uri}"
            deployment = Deployment(self._load(self._resolve_uri(s.model_uri, s.model_version)))
        else:
            self.source = f"serving state {self.library_settings.serving_config_path}"
            deployment = build_deployment(self._serving_state(), self._load)
        self._activate(deployment)
        return self.ready

    def _activate(self, deployment: Deployment) -> None:
        """Serve ``deployment``; watch the local serving state unless one model folder / URI is served."""
        s = self.settings
        self.metrics = self.metrics or get_metrics()
        _SERVED[self.name] = self
        self.holder = DeploymentHolder(deployment)
        self.holder.on_swap(self._on_swap)
        if s.model_dir is None and not s.model_uri:
            self.watcher = StateWatcher(
                self.library_settings.serving_config_path,
                self.holder,
                self._load,
                poll_interval_s=s.poll_interval_s,
                retry_s=s.reload_retry_s,
                on_reload=lambda outcome: (
                    self.metrics.reloads.labels(outcome).inc() if self.metrics else None
                ),
            )
            self.watcher.start()
        self.ready = True

    # -- KServe --workers: each worker process gets a pickled copy ---------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """What KServe pickles to start a ``--workers`` process: the loaded models, not threads or metrics."""
        state = self.__dict__.copy()
        state.update(
            holder=None, watcher=None, metrics=None, _deployment=self.deployment, _parent_pid=os.getpid()
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in a new worker process: set the process up, serve the same models, watch the state.

        Each worker watches the serving state file on its own and swaps models the same way the single
        process does; ``/metrics`` of a worker counts that worker's requests only.
        """
        deployment: Deployment | None = state.pop("_deployment", None)
        parent_pid: int | None = state.pop("_parent_pid", None)
        self.__dict__.update(state)
        _die_with_parent(parent_pid)
        setup_process(self.settings)
        if deployment is not None:
            self._activate(deployment)

    def _resolve_uri(self, uri: str, version: str | None) -> ModelRef:
        """Pin ``models:/<name>@<alias>`` to the version the alias names now (and report that version)."""
        match = _MODELS_URI.match(uri)
        if match is None:
            return ModelRef(version or "unknown", uri)
        if match["version"]:
            return ModelRef(version or match["version"], uri)
        aliases = MlflowAliases(self.library_settings.resolved_tracking_uri(), match["name"])
        resolved = aliases.get(match["alias"])
        if resolved is None:
            raise ReleaseError(f"{uri}: no such alias in the MLflow registry at {aliases.where()}")
        return ModelRef(version or resolved, f"models:/{match['name']}/{resolved}")

    def _on_swap(self, deployment: Deployment) -> None:
        """After every swap (and at start): publish what is served, then re-freeze the heap (:func:`freeze_heap`)."""
        self._publish(deployment)
        freeze_heap()

    def _publish(self, deployment: Deployment) -> None:
        if self.metrics is not None:
            versions: dict[str, str] = {role: m.version for role, m in deployment.models().items()}
            self.metrics.set_serving(versions, deployment.canary_percent)

    def stop(self) -> None:
        """Stop watching the serving state."""
        if self.watcher is not None:
            self.watcher.stop()
        super().stop()

    # -- metadata ----------------------------------------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the inputs (one per raw model field)."""
        return input_metadata()

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the outputs (``arrest_probability`` FP64, ``arrest`` BOOL)."""
        return output_metadata()

    def metadata(self) -> dict[str, Any]:
        """The V2 model metadata response, with the served versions and their model cards.

        KServe's own response has name, platform, inputs and outputs. This one adds the optional ``versions``
        (champion first, then the challenger under canary) and ``parameters``: the traffic split and where
        each served version's model card is (``model_card`` for the champion, ``challenger_model_card``).
        """
        parameters: dict[str, Any] = {}
        deployment = self.deployment
        if deployment is not None:
            for role, loaded in deployment.models().items():
                prefix = "" if role == CHAMPION else f"{role}_"
                parameters[f"{role}_version"] = loaded.version
                if loaded.card:
                    parameters[f"{prefix}model_card"] = loaded.card
            parameters["canary_percent"] = deployment.canary_percent
        return {
            "name": self.name,
            "versions": [m.version for m in deployment.models().values()] if deployment else [],
            "platform": "",
            "inputs": self.get_input_types(),
            "outputs": self.get_output_types(),
            "parameters": parameters,
        }

    # -- inference ---------------------------------------------------------------------------------------------

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest | bytes,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
        *,
        explain: bool = False,
    ) -> dict[str, Any] | InferResponse:
        """Validate, route to champion or challenger, score, within ``request_timeout_s``.

        Validation and scoring run in the event loop's thread pool, so the time limit holds and the server
        keeps answering (health, other requests) while a large request is scored.

        Args:
            payload: ``InferRequest`` (V2) or the decoded V1 body.
            headers: Request headers (``x-request-id`` is used for routing when the V2 body has no ``id``).
            response_headers: Filled with ``x-model-version``, ``x-model-role`` and ``x-request-id``.
            explain: Add each record's explanation (:meth:`explain`; V2: also the parameter
                ``"explain": true``): V2 output ``explanation`` (BYTES, one JSON object per record), V1
                ``"explanations"``.

        Returns:
            V2: outputs ``arrest_probability`` (FP64) and ``arrest`` (BOOL), ``model_version``, ``id``.
            V1: ``{"predictions": [p, ...], "arrest": [bool, ...], "model_version", "model_role", "id"}``.

        Raises:
            InvalidInput: On a bad request (HTTP 400), naming the field.
            TooManyRows: More rows than ``max_rows`` (HTTP 413).
            RequestTimeoutError: Over ``request_timeout_s`` (HTTP 504); the scoring finishes in the background.
            InferenceError: On a server fault (HTTP 500, short message; details in the server log).
        """
        start = time.perf_counter()
        if self.holder is None:
            raise InferenceError("model is not loaded")
        deployment = self.holder.current
        v2 = isinstance(payload, InferRequest)
        body_id = payload.id if isinstance(payload, InferRequest) else None
        client_id = body_id or (headers or {}).get(REQUEST_ID_HEADER) or None
        served, role = deployment.choose(client_id)
        request_id = client_id or uuid.uuid4().hex
        outcome, status, error = "ok", 200, None
        scored = _Scored()
        limit = self.settings.request_timeout_s
        try:
            if isinstance(payload, InferRequest) and wants_explanation(payload.parameters):
                explain = True
            if not explain and claimed_rows(payload) <= self.settings.inline_rows:
                # A few records take about a millisecond: scoring them here saves the thread hop (about a
                # quarter of such a request's CPU) and the GIL hand-offs between two threads (docs/benchmarks.md).
                response = self._score(payload, request_id, served, role, scored, explain)
            else:
                work = asyncio.get_running_loop().run_in_executor(
                    None, self._score, payload, request_id, served, role, scored, explain
                )
                response = await asyncio.wait_for(work, timeout=limit)
        except TimeoutError:
            error = f"request {request_id} took longer than {limit:g} s (ARREST_SERVER_REQUEST_TIMEOUT_S)"
            outcome, status = "timeout", 504
            raise RequestTimeoutError(f"{error}; it was abandoned: send fewer rows or retry") from None
        except TooManyRows as exc:
            outcome, status, error = "too_large", 413, str(exc)
            raise
        except InvalidInput as exc:
            outcome, status, error = "invalid", 400, str(exc)
            raise
        except Exception as exc:
            outcome, status, error = "error", 500, f"{type(exc).__name__}: {exc}"
            log.error("request %s failed in model version %s", request_id, served.version, exc_info=exc)
            raise InferenceError(
                f"internal error while scoring request {request_id} ({type(exc).__name__}); see the server log"
            ) from exc
        finally:
            seconds = time.perf_counter() - start
            if self.metrics is not None:
                self.metrics.observe(
                    model_version=served.version,
                    role=role,
                    outcome=outcome,
                    protocol="v2" if v2 else "v1",
                    seconds=seconds,
                    probabilities=scored.probabilities if outcome == "ok" else None,
                )
            log_access(
                request_id=request_id,
                model_name=self.name,
                model_version=served.version,
                role=role,
                protocol="v2" if v2 else "v1",
                rows=scored.rows,
                latency_ms=round(seconds * 1000, 3),
                status=status,
                **({"error": error} if error else {}),
                **({"explain": True} if explain else {}),
            )
        if response_headers is not None:
            response_headers[MODEL_VERSION_HEADER] = served.version
            response_headers[MODEL_ROLE_HEADER] = role
            response_headers[REQUEST_ID_HEADER] = request_id
        return response

    def _score(
        self,
        payload: dict[str, Any] | InferRequest | bytes,
        request_id: str,
        served: LoadedModel,
        role: Role,
        scored: _Scored,
        explain: bool = False,
    ) -> dict[str, Any] | InferResponse:
        """Parse, score and build the response (in a worker thread); fills ``scored`` as it goes."""
        if isinstance(payload, InferRequest):
            parsed = parse_v2(payload, self.settings.max_rows)
        else:
            parsed = parse_v1(payload, self.settings.max_rows)
        scored.rows = parsed.rows
        explanations = None
        if explain:
            explanation = explainer_for(served.model).explain(parsed.frame)
            probabilities, explanations = explanation.probability, explanation.records()
        else:
            probabilities = served.model.predict_arrest_probability(parsed.columns)
        scored.probabilities = probabilities
        arrest = probabilities >= served.model.threshold
        if (requests := process_request_log(self.settings, self.library_settings)) is not None:  # issue 13
            requests.append(
                parsed.columns,
                probabilities,
                arrest,
                model_version=served.version,
                role=role,
                request_id=request_id,
            )
        response = self._response(payload, request_id, served, role, probabilities, arrest)
        if explanations is None:
            return response
        binary = bool(getattr(payload, "use_binary_outputs", False))
        return _with_explanations(response, explanations, binary)

    async def explain(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        """KServe's explain verb (``POST /v1/models/arrest-predictor:explain``): infer plus explanations.

        Same validation, routing, limits and errors as :meth:`predict`. Each record's explanation has the
        calibrated ``arrest_probability``, the ``log_odds`` of the uncalibrated score, the ``base_value`` and
        the signed ``contributions`` of the raw fields sorted by magnitude (:mod:`chicago_arrest.model.explain`).
        """
        return await self.predict(payload, headers, {}, explain=True)

    def _response(
        self,
        payload: dict[str, Any] | InferRequest | bytes,
        request_id: str,
        served: LoadedModel,
        role: Role,
        probabilities: np.ndarray,
        arrest: np.ndarray,
    ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, InferRequest):
            # Built like kserve.utils.utils.get_predict_response (binary outputs, requested outputs), with
            # two named outputs and the response id always set (a request without "id" gets the routing id).
            outputs = []
            for name, values in (
                (PROBABILITY_OUTPUT, probabilities.astype(np.float64)),
                (ARREST_OUTPUT, arrest),
            ):
                datatype = OUTPUT_DATATYPES[name]
                if payload.use_binary_outputs:
                    output = InferOutput(name=name, shape=[len(values)], datatype=datatype)
                    output.set_data_from_numpy(values, binary_data=True)
                else:  # the values set_data_from_numpy would store, without its .item() per value
                    output = InferOutput(
                        name=name, shape=[len(values)], datatype=datatype, data=values.tolist()
                    )
                outputs.append(output)
            return InferResponse(
                response_id=request_id,
                model_name=self.name,
                infer_outputs=outputs,
                model_version=served.version,
                parameters={"model_role": role},
                use_binary_outputs=payload.use_binary_outputs,
                requested_outputs=payload.request_outputs,
            )
        return {
            "predictions": probabilities.tolist(),
            "arrest": arrest.tolist(),
            "model_name": self.name,
            "model_version": served.version,
            "model_role": role,
            "id": request_id,
        }

    @property
    def deployment(self) -> Deployment | None:
        """The active deployment (``None`` before :meth:`load`)."""
        return self.holder.current if self.holder else None

    @property
    def champion_version(self) -> str | None:
        """Version of the current champion."""
        current = self.deployment
        return current.models()[CHAMPION].version if current else None


def _with_explanations(
    response: dict[str, Any] | InferResponse, explanations: list[dict[str, Any]], binary: bool = False
) -> dict[str, Any] | InferResponse:
    """The response with one explanation per record (V2: output ``explanation``, BYTES JSON; V1: a list)."""
    if isinstance(response, dict):
        return {**response, "explanations": explanations}
    output = InferOutput(name=EXPLANATION_OUTPUT, shape=[len(explanations)], datatype="BYTES")
    values = np.array([json.dumps(e, separators=(",", ":")) for e in explanations], dtype=object)
    output.set_data_from_numpy(values, binary_data=binary)
    response.outputs.append(output)
    return response
