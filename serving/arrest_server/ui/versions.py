"""The served versions for the page: what the loaded models say, plus their test metrics and model cards.

The loaded model itself knows its type, threshold and calibration AUC. The test metrics, the data window, the
gate's decision and the model card live in the MLflow registry with the version (the register step puts them
there): they are read with a client of the server's tracking URI, once per version (a version never changes),
and the page says so when the registry cannot be reached (on the cluster the predictor has no MLflow address
unless one is given). A local SQLite store that does not exist is not created: nothing is written.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrest_server.router import CHAMPION, Deployment, LoadedModel, Role

log = logging.getLogger(__name__)

#: The headline test metrics, in the order the page shows them (run metrics ``selected_test_<key>``).
HEADLINE = ("roc_auc", "pr_auc", "ece", "brier")
#: Registry tags of a version the page shows.
TAGS = ("train_window", "test_window", "gate", "gate_reason")
_RUN_URI = re.compile(r"^runs:/(?P<run>[^/]+)/")
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[^/@]+)$")


class RegistryUnavailableError(RuntimeError):
    """The MLflow registry cannot be read from this server (the message says where and why)."""


def share(deployment: Deployment, role: Role) -> int:
    """Percent of requests a role serves."""
    return 100 - deployment.canary_percent if role == CHAMPION else deployment.canary_percent


@dataclass
class RegistryRecord:
    """What the registry holds about one version (``note`` says why something is missing)."""

    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    note: str = ""


class Registry:
    """Reads versions' metrics, tags and model cards from MLflow, caching each version's answer.

    Args:
        tracking_uri: The server's MLflow tracking / registry URI.
        model_name: Registered model name.
    """

    def __init__(self, tracking_uri: str, model_name: str) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self._records: dict[tuple[str, str], RegistryRecord] = {}
        self._cards: dict[str, str] = {}
        self._lock = threading.Lock()

    def _client(self) -> Any:
        if self.tracking_uri.startswith("sqlite:///"):
            path = Path(self.tracking_uri.removeprefix("sqlite:///"))
            if not path.is_file():  # MLflow would create an empty store: this server writes nothing
                raise RegistryUnavailableError(
                    f"no MLflow store at {path} (set MLFLOW_TRACKING_URI to the registry's address)"
                )
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def record(self, loaded: LoadedModel) -> RegistryRecord:
        """The registry's record of a served version (cached once found; a failure is retried next time)."""
        key = (loaded.uri, loaded.version)
        with self._lock:
            cached = self._records.get(key)
        if cached is not None:
            return cached
        try:
            found = self._read(loaded)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, RegistryUnavailableError) else f"{type(exc).__name__}: {exc}"
            log.info("registry record of version %s unavailable: %s", loaded.version, reason)
            return RegistryRecord(note=f"the MLflow registry at {self.where()} could not be read: {reason}")
        with self._lock:
            self._records[key] = found
        return found

    def where(self) -> str:
        """The tracking URI without credentials."""
        return re.sub(r"//[^/@]*@", "//", self.tracking_uri)

    def _read(self, loaded: LoadedModel) -> RegistryRecord:
        client = self._client()
        out = RegistryRecord()
        run = _RUN_URI.match(loaded.card or "")
        out.run_id = run["run"] if run else None
        model = _MODEL_URI.match(loaded.uri)
        name, version = (model["name"], model["version"]) if model else (self.model_name, loaded.version)
        try:
            registered = client.get_model_version(name, version)
            out.tags = {k: str(v) for k, v in (registered.tags or {}).items() if k in TAGS}
            out.run_id = out.run_id or registered.run_id
        except Exception as exc:  # a model folder served under a version the registry does not have
            out.note = (
                f"version {version} of {name} is not in the registry at {self.where()}: {type(exc).__name__}"
            )
        if out.run_id:
            metrics = client.get_run(out.run_id).data.metrics
            for key, value in metrics.items():
                if key.startswith("selected_test_"):
                    out.metrics[key.removeprefix("selected_test_")] = float(value)
        return out

    def card(self, loaded: LoadedModel) -> str:
        """The version's model card (one self-contained HTML page), downloaded once.

        Raises:
            RegistryUnavailableError: When the version has no card or the registry cannot be read.
        """
        if not loaded.card:
            raise RegistryUnavailableError(f"version {loaded.version} was registered without a model card")
        with self._lock:
            cached = self._cards.get(loaded.card)
        if cached is not None:
            return cached
        self._client()  # the same checks as for the metrics
        import mlflow

        with tempfile.TemporaryDirectory(prefix="arrest-card-") as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=loaded.card, dst_path=tmp, tracking_uri=self.tracking_uri
                )
                page = Path(path).read_text(encoding="utf-8")
            except Exception as exc:
                raise RegistryUnavailableError(
                    f"the model card {loaded.card} could not be read from {self.where()}: {type(exc).__name__}"
                ) from exc
        with self._lock:
            self._cards[loaded.card] = page
        return page


def describe(deployment: Deployment, registry: Registry) -> dict[str, Any]:
    """The served versions as the page shows them (champion first)."""
    versions = []
    for role, loaded in deployment.models().items():
        info = loaded.model.info or {}
        record = registry.record(loaded)
        backtest = info.get("backtest") or {}
        versions.append(
            {
                "role": role,
                "version": loaded.version,
                "share": share(deployment, role),
                "model_type": info.get("model_type"),
                "threshold": float(loaded.model.threshold),
                "calibration_auc": info.get("calibration_auc"),
                "backtest_roc_auc": backtest.get("mean"),
                "metrics": {k: record.metrics[k] for k in HEADLINE if k in record.metrics},
                "intervals": {
                    k: [record.metrics[f"{k}_ci_low"], record.metrics[f"{k}_ci_high"]]
                    for k in HEADLINE
                    if f"{k}_ci_low" in record.metrics and f"{k}_ci_high" in record.metrics
                },
                "tags": record.tags,
                "card": bool(loaded.card),
                "note": record.note,
            }
        )
    return {"canary_percent": deployment.canary_percent, "versions": versions}
