"""Prometheus metrics (served on the model server's ``/metrics``) and JSON access logs.

Metrics (all prefixed ``arrest_server_``):

* ``requests_total{model_version, role, outcome, protocol}``: inference requests; outcome ``ok`` (200),
  ``invalid`` (400) or ``error`` (500).
* ``request_duration_seconds{model_version, role}``: histogram of the time spent in the model server's
  predict handler (validation + model + response building; HTTP parsing excluded).
* ``rows_total{model_version}``: records scored.
* ``predicted_probability{model_version}``: histogram of the predicted arrest probabilities (0.1 buckets).
* ``canary_percent``: share of requests routed to the challenger.
* ``model_info{role, model_version}``: 1 for each served model.
* ``state_reloads_total{outcome}``: serving state changes applied (``ok``) or rejected (``error``).

Nothing is registered at import time: :func:`get_metrics` creates the collectors on first use.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

PREFIX = "arrest_server"
ACCESS_LOGGER = "arrest_server.access"
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class ProbabilityHistogram(Collector):
    """A Prometheus histogram fed a whole batch at once (``np.searchsorted``, not one ``observe`` per row).

    Args:
        name: Metric name (without ``_bucket``/``_sum``/``_count``).
        documentation: Help text.
        bounds: Upper bounds of the buckets (``+Inf`` is added).
    """

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(bounds, dtype=float)
        self._lock = threading.Lock()
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}

    def observe(self, model_version: str, values: np.ndarray) -> None:
        """Add a batch of probabilities for one model version."""
        values = np.asarray(values, dtype=float)
        values = values[~np.isnan(values)]
        counts = np.bincount(
            np.searchsorted(self.bounds, values, side="left"), minlength=len(self.bounds) + 1
        )
        with self._lock:
            if model_version not in self._counts:
                self._counts[model_version] = np.zeros(len(self.bounds) + 1, dtype=np.int64)
                self._sums[model_version] = 0.0
            self._counts[model_version] += counts
            self._sums[model_version] += float(values.sum())

    def describe(self) -> Iterator[Metric]:
        """The metric family, without samples."""
        yield HistogramMetricFamily(self.name, self.documentation, labels=["model_version"])

    def collect(self) -> Iterator[Metric]:
        """Cumulative buckets per model version."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=["model_version"])
        with self._lock:
            snapshot = {v: (c.copy(), self._sums[v]) for v, c in self._counts.items()}
        for version, (counts, total) in sorted(snapshot.items()):
            cumulative = np.cumsum(counts)
            buckets = [
                (floatToGoString(b), float(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)
            ]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric([version], buckets, total)
        yield family


class Metrics:
    """The server's collectors.

    Args:
        registry: Where to register them (KServe's ``/metrics`` exposes the default registry).
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            f"{PREFIX}_requests_total",
            "Inference requests by model version, role, outcome and protocol.",
            ["model_version", "role", "outcome", "protocol"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time in the predict handler (validation, model, response), by model version and role.",
            ["model_version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(f"{PREFIX}_rows_total", "Records scored.", ["model_version"], registry=registry)
        self.probability = ProbabilityHistogram(
            f"{PREFIX}_predicted_probability", "Predicted arrest probabilities.", PROBABILITY_BUCKETS
        )
        registry.register(self.probability)
        self.canary = Gauge(
            f"{PREFIX}_canary_percent", "Share of requests routed to the challenger.", registry=registry
        )
        self.model_info = Gauge(
            f"{PREFIX}_model_info",
            "1 for each served model version.",
            ["role", "model_version"],
            registry=registry,
        )
        self.reloads = Counter(
            f"{PREFIX}_state_reloads_total",
            "Serving state changes applied or rejected.",
            ["outcome"],
            registry=registry,
        )

    def observe(
        self,
        *,
        model_version: str,
        role: str,
        outcome: str,
        protocol: str,
        seconds: float,
        probabilities: np.ndarray | None = None,
    ) -> None:
        """Record one inference request."""
        self.requests.labels(model_version, role, outcome, protocol).inc()
        self.latency.labels(model_version, role).observe(seconds)
        if probabilities is not None and len(probabilities):
            self.rows.labels(model_version).inc(len(probabilities))
            self.probability.observe(model_version, probabilities)

    def set_serving(self, models: Mapping[str, str], canary_percent: int) -> None:
        """Publish what is served: ``{role: version}`` and the split."""
        self.model_info.clear()
        for role, version in models.items():
            self.model_info.labels(role, version).set(1)
        self.canary.set(canary_percent)


_default: Metrics | None = None
_default_lock = threading.Lock()


def get_metrics() -> Metrics:
    """The process-wide :class:`Metrics` on the default registry (created on first call)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``fields`` extra."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


def configure_logging(level: str = "INFO", access_log: bool = True, stream: IO[str] | None = None) -> None:
    """Send ``arrest_server`` / ``chicago_arrest`` logs and JSON access logs to ``stream`` (default stdout).

    Args:
        level: Level of the server's and library's loggers.
        access_log: Whether to emit the per-request JSON access log.
        stream: Where to write.
    """
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    for name in ("arrest_server", "chicago_arrest"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    access = logging.getLogger(ACCESS_LOGGER)
    access.handlers = [handler] if access_log else [logging.NullHandler()]
    access.setLevel(logging.INFO)
    access.disabled = not access_log
    access.propagate = False


class ClientErrorFilter(logging.Filter):
    """Log a client error (``InvalidInput``, HTTP 400) as one warning line instead of an ERROR with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite KServe's ``Exception:`` records for invalid input; keep everything else."""
        from kserve.errors import InvalidInput

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, InvalidInput):
            record.msg, record.args, record.exc_info, record.exc_text = (
                "invalid input: %s",
                (exc,),
                None,
                None,
            )
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_client_errors(logger_name: str = "kserve") -> None:
    """Install :class:`ClientErrorFilter` on KServe's logger (after KServe configured its logging)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())


def log_access(**fields: Any) -> None:
    """Write one access log line (``request_id``, ``model_version``, ``role``, ``rows``, ``latency_ms``, ...)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if logger.isEnabledFor(logging.INFO) and not logger.disabled:
        logger.info("inference", extra={"fields": fields})
