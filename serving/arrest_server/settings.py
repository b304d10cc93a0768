"""Server settings: environment variables with the prefix ``ARREST_SERVER_`` (command-line flags override them).

Nothing is read at import time: build :class:`ServerSettings` where it is needed.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chicago_arrest.names import ISVC_NAME


class ServerSettings(BaseSettings):
    """All knobs of the arrest model server.

    Where the model comes from, in order: ``model_dir`` (a local MLflow model folder, e.g. ``/mnt/models`` on
    the cluster), ``model_uri`` (``models:/chicago-crime-arrest-predictor@champion``), else the local serving
    state (champion and challenger with a canary split, watched for changes) at
    ``chicago_arrest.settings.Settings().serving_config_path`` (``<ARREST_DATA_DIR>/serving/serving.json``; the
    same file ``make canary|promote|rollback`` change).

    Attributes:
        model_name: Name in the URLs (``/v2/models/<model_name>/infer``).
        model_dir: Local MLflow model folder to serve alone.
        model_uri: MLflow model URI to serve alone.
        model_version: Version reported for ``model_dir`` / ``model_uri`` (the cluster sets it per revision);
            for a ``models:/<name>/<version>`` or ``@alias`` URI the registry version is used when unset.
        max_rows: Most rows one request may carry (more → HTTP 400).
        threads: Threads for the model and native libraries (1: single rows get slower with more).
        poll_interval_s: How often the serving state file is checked for changes.
        reload_retry_s: Wait before retrying a serving state whose models failed to load.
        access_log: One JSON line per inference request on the ``arrest_server.access`` logger.
        kserve_latency_log: KServe's own per-request latency log lines (off: the access log has the latency).
        uvicorn_access_log: uvicorn's plain-text access log (off: the JSON access log replaces it).
        log_level: Level of the ``arrest_server`` loggers.
    """

    model_config = SettingsConfigDict(env_prefix="ARREST_SERVER_", extra="ignore")

    model_name: str = ISVC_NAME
    model_dir: Path | None = None
    model_uri: str | None = None
    model_version: str | None = None
    max_rows: int = Field(default=10_000, gt=0)
    threads: int = Field(default=1, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    reload_retry_s: float = Field(default=10.0, gt=0)
    access_log: bool = True
    kserve_latency_log: bool = False
    uvicorn_access_log: bool = False
    log_level: str = "INFO"
