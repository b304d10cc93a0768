"""The KServe model ``arrest-predictor`` (V2 Open Inference Protocol and V1): champion/challenger in one process.

:class:`ArrestPredictor` loads the served version(s) (:mod:`arrest_server.loading`), routes each request to the
champion or the challenger (:mod:`arrest_server.router`), validates it (:mod:`arrest_server.validation`), scores
it within the time limit, logs it (:mod:`arrest_server.request_log`) and answers
(:mod:`arrest_server.responses`). Each ``--workers`` process gets a pickled copy that serves the same models.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse

from arrest_server.guard import RequestTimeoutError
from arrest_server.loading import load_model, resolve_uri
from arrest_server.observability import Metrics, get_metrics, log_access
from arrest_server.process import SERVED, die_with_parent, freeze_heap, setup_process
from arrest_server.request_log import RequestLog, open_request_log
from arrest_server.responses import build_response, with_explanations
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
    TooManyRows,
    claimed_rows,
    input_metadata,
    output_metadata,
    parse_v1,
    parse_v2,
    wants_explanation,
)
from arrest_server.workers import exit_cleanly_on_sigterm, handoff, take_over
from chicago_arrest.core.settings import Settings
from chicago_arrest.model.explain import explainer_for
from chicago_arrest.registry.aliases import MlflowAliases, registry_split
from chicago_arrest.registry.state import ModelRef, ServingState, load_state

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
MODEL_VERSION_HEADER = "x-model-version"
MODEL_ROLE_HEADER = "x-model-role"


@dataclass
class _Scored:
    """What the scoring thread got to (read by the request, also when it gave up waiting)."""

    rows: int = 0
    probabilities: np.ndarray | None = None


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
        self.request_log: RequestLog | None = None

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
            ref = resolve_uri(s.model_uri, s.model_version, self.library_settings.resolved_tracking_uri())
            deployment = Deployment(self._load(ref))
        else:
            self.source = f"serving state {self.library_settings.serving_config_path}"
            deployment = build_deployment(self._serving_state(), self._load)
        self._activate(deployment)
        return self.ready

    def _activate(self, deployment: Deployment) -> None:
        """Serve ``deployment``; watch the local serving state unless one model folder / URI is served."""
        s = self.settings
        self.metrics = self.metrics or get_metrics()
        self.request_log = open_request_log(s, self.library_settings.data_dir)
        SERVED[self.name] = self
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
        """What KServe pickles to start a ``--workers`` process: where the loaded models are, not threads or metrics.

        The models go through a file (:func:`arrest_server.workers.handoff`), so the pickle the parent writes
        into the worker's spawn pipe stays a few KiB and starting a worker never blocks the parent.
        """
        state = self.__dict__.copy()
        deployment = self.deployment
        state.update(
            holder=None,
            watcher=None,
            metrics=None,
            request_log=None,
            _deployment_file=handoff(deployment) if deployment is not None else None,
            _parent_pid=os.getpid(),
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in a new worker process: set the process up, serve the same models, watch the state.

        Each worker watches the serving state file on its own and swaps models the same way the single
        process does; ``/metrics`` of a worker counts that worker's requests only. SIGTERM ends the worker
        through ``atexit`` (:func:`arrest_server.workers.exit_cleanly_on_sigterm`).
        """
        path: str | None = state.pop("_deployment_file", None)
        parent_pid: int | None = state.pop("_parent_pid", None)
        self.__dict__.update(state)
        exit_cleanly_on_sigterm()
        die_with_parent(parent_pid)
        setup_process(self.settings)
        if path is not None:
            self._activate(take_over(path))

    def _on_swap(self, deployment: Deployment) -> None:
        """After every swap (and at start): publish what is served, then re-freeze the heap (:func:`freeze_heap`)."""
        self._publish(deployment)
        freeze_heap()

    def _publish(self, deployment: Deployment) -> None:
        if self.metrics is not None:
            versions: dict[str, str] = {role: m.version for role, m in deployment.models().items()}
            self.metrics.set_serving(versions, deployment.canary_percent)

    def stop(self) -> None:
        """Stop watching the serving state; write the request log's buffered records (safe to repeat).

        Called at the ASGI lifespan shutdown of every process, after the requests in flight have finished
        (:func:`arrest_server.workers.stop_on_shutdown`), and by KServe when it unloads the model.
        """
        if self.watcher is not None:
            self.watcher.stop()
        if self.request_log is not None:
            self.request_log.close()
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
        if self.request_log is not None:  # issue 13
            self.request_log.append(
                parsed.columns,
                probabilities,
                arrest,
                model_version=served.version,
                role=role,
                request_id=request_id,
                keys=parsed.keys,
            )
        response = build_response(self.name, payload, request_id, served, role, probabilities, arrest)
        if explanations is None:
            return response
        binary = bool(getattr(payload, "use_binary_outputs", False))
        return with_explanations(response, explanations, binary)

    async def explain(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        """KServe's explain verb (``POST /v1/models/arrest-predictor:explain``): infer plus explanations.

        Same validation, routing, limits and errors as :meth:`predict`. Each record's explanation has the
        calibrated ``arrest_probability``, the ``log_odds`` of the uncalibrated score, the ``base_value`` and
        the signed ``contributions`` of the raw fields sorted by magnitude (:mod:`chicago_arrest.model.explain`).
        """
        return await self.predict(payload, headers, {}, explain=True)

    @property
    def deployment(self) -> Deployment | None:
        """The active deployment (``None`` before :meth:`load`)."""
        return self.holder.current if self.holder else None

    @property
    def champion_version(self) -> str | None:
        """Version of the current champion."""
        current = self.deployment
        return current.models()[CHAMPION].version if current else None
