"""Server settings: environment variables with the prefix ``ARREST_SERVER_`` (command-line flags override them).

Nothing is read at import time: build :class:`ServerSettings` where it is needed.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chicago_arrest.core.names import ISVC_NAME


class ServerSettings(BaseSettings):
    """All knobs of the arrest model server.

    Where the model comes from, in order: ``model_dir`` (a local MLflow model folder, e.g. ``/mnt/models`` on
    the cluster), ``model_uri`` (``models:/chicago-crime-arrest-predictor@champion``), else the local serving
    state (champion and challenger with a canary split, watched for changes) at
    ``chicago_arrest.core.settings.Settings().serving_config_path`` (``<ARREST_DATA_DIR>/serving/serving.json``; the
    same file ``make canary|promote|rollback`` change).

    Attributes:
        model_name: Name in the URLs (``/v2/models/<model_name>/infer``).
        model_dir: Local MLflow model folder to serve alone.
        model_uri: MLflow model URI to serve alone.
        model_version: Version reported for ``model_dir`` / ``model_uri`` (the cluster sets it per revision);
            for a ``models:/<name>/<version>`` or ``@alias`` URI the registry version is used when unset.
        max_rows: Most records one request may carry (more → HTTP 413).
        max_body_bytes: Largest request body accepted on any route (more → HTTP 413, before it is parsed).
        request_timeout_s: Time limit of one inference request in the model (validation, scoring, response);
            over it → HTTP 504 (the scoring thread finishes in the background; the server keeps answering).
            Requests of at most ``inline_rows`` records are scored without the thread and the limit.
        inline_rows: Requests claiming at most this many records (and not asking for explanations) are
            scored on the event loop: about a millisecond each, where the hop to a worker thread cost about a
            quarter of such a request's CPU (docs/benchmarks.md). 0: every request goes to a worker thread.
        api_token: When set, inference, explain, metadata and the web page's data routes need
            ``Authorization: Bearer <token>`` (HTTP 401 otherwise); health, ``/metrics`` and the web page's files
            stay open. gRPC is switched off (it has no auth).
        threads: Threads for the model and native libraries (1: single rows get slower with more).
        batch_threads: Classifier threads for a request of at least ``chicago_arrest.model.artifact.BATCH_ROWS``
            records, random forest and XGBoost (same probabilities, about half the time with two); 0: the
            CPUs this process may use.
        poll_interval_s: How often the serving state file is checked for changes.
        reload_retry_s: Wait before retrying a serving state whose models failed to load.
        access_log: One JSON line per inference request on the ``arrest_server.access`` logger.
        kserve_latency_log: KServe's own per-request latency log lines (off: the access log has the latency).
        uvicorn_access_log: uvicorn's plain-text access log (off: the JSON access log replaces it).
        log_level: Level of the ``arrest_server`` loggers.
        request_log: Log every scored record to rotating Parquet files under ``<data dir>/serving/requests``
            (``make monitor SOURCE=serving``; :mod:`arrest_server.request_log`).
        request_log_max_mb: Most megabytes the request log keeps (the oldest files go first).
        request_log_flush_s: How often buffered records are written.
        fast_infer: Answer plain-JSON V2 infer requests without FastAPI's route
            (:mod:`arrest_server.fast_infer`; same answers, less CPU per request).
        ui: Serve the web page at ``/ui/`` and its data at ``/ui/api/`` (:mod:`arrest_server.ui`).
    """

    model_config = SettingsConfigDict(env_prefix="ARREST_SERVER_", extra="ignore")

    model_name: str = ISVC_NAME
    model_dir: Path | None = None
    model_uri: str | None = None
    model_version: str | None = None
    max_rows: int = Field(default=10_000, gt=0)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    inline_rows: int = Field(default=8, ge=0)
    api_token: SecretStr | None = None
    threads: int = Field(default=1, gt=0)
    batch_threads: int = Field(default=0, ge=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    reload_retry_s: float = Field(default=10.0, gt=0)
    access_log: bool = True
    kserve_latency_log: bool = False
    uvicorn_access_log: bool = False
    log_level: str = "INFO"
    request_log: bool = True
    request_log_max_mb: float = Field(default=256.0, gt=0)
    request_log_flush_s: float = Field(default=10.0, gt=0)
    fast_infer: bool = True
    ui: bool = True

    def classifier_batch_threads(self) -> int:
        """``batch_threads``, with 0 resolved to the CPUs this process may use."""
        from chicago_arrest.core.runtime import available_cpus

        return self.batch_threads or available_cpus()

    @field_validator("api_token", mode="after")
    @classmethod
    def _empty_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty ``ARREST_SERVER_API_TOKEN`` means no auth (as if unset)."""
        return value if value is not None and value.get_secret_value().strip() else None
