"""Retries of the steps that talk to services over the network, and the one home of their policy.

Five steps reach a service: ingest (Socrata, the object store), register (MLflow), deploy (MLflow, the object
store, the Kubernetes API), batch scoring and monitoring (MLflow, the object store; monitoring also the KFP API).
Each is marked :func:`retry_safe` here and tested to be safe to repeat (``tests/code/test_retry.py``): a second
run lands, registers, deploys, writes or starts nothing twice.

Two layers, because KFP 2.17.0 retries only half of what ``set_retry`` suggests:

* The pipelines give these tasks :data:`NETWORK` as KFP's ``set_retry`` (``chicago_arrest.pipelines.training``).
  The IR's ``RetryPolicy`` has only a count and a backoff (``api/v2alpha1/pipeline_spec.proto`` @ kubeflow/pipelines
  2.17.0); the backend turns it into an Argo ``retryStrategy`` with ``limit`` and ``backoff`` but no
  ``retryPolicy`` (``backend/src/v2/compiler/argocompiler/container.go`` @ 2.17.0,
  ``getTaskRetryStrategyFromInput``), and KFP's own Argo configuration gives every template
  ``retryPolicy: OnError`` (``manifests/kustomize/third-party/argo/base/workflow-controller-configmap-patch.yaml``
  @ 2.17.0, ``templateDefaults``), which Argo merges into the task's strategy
  (``workflow/controller/operator.go`` @ argo-workflows v4.0.5, ``mergedTemplateDefaultsInto``). With
  ``OnError`` Argo retries a node that *errored* (pod deleted or evicted, a failing init or wait container), not
  one that *failed* (``retryOnFailed = false``): a step whose Python raised is not retried by the backend.
  Changing that default cluster-wide is no fix: it also applies to KFP's DAG templates, so a failed step would
  re-run its whole DAG. (kubeflow/pipelines#13386, open, adds a policy to ``set_retry``.)
* So the step retries itself: :func:`run_step <chicago_arrest.steps.run_step>` calls a :func:`retry_safe` step
  again after a *transient* failure (:func:`is_transient`: a refused or reset connection, a time-out, HTTP 429
  or 5xx), with :data:`NETWORK`'s backoff, when it runs in a pod (``KUBERNETES_SERVICE_HOST``). Anything else
  (bad data, a refused release) fails at once.

Locally (``kfp.local``) neither applies: ``kfp.local`` would honour ``set_retry`` for every failure
(``kfp/local/orchestrator/task_executor.py`` @ kfp 2.17.0), but a local failure is a deterministic one (SQLite,
files) or a Socrata one that the Socrata client has already retried per request, so ``make pipeline-run``
strips the policy for its local run (:func:`chicago_arrest.pipelines.run.without_retries`) and fails fast.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Attribute that :func:`retry_safe` sets on a step function.
RETRY_SAFE = "__retry_safe__"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a network step is tried again.

    Attributes:
        retries: Attempts after the first.
        backoff_s: Wait before the first retry.
        factor: Each further wait is this many times the previous one.
        max_backoff_s: Upper bound of one wait (and KFP's ``backoff_max_duration``).
    """

    retries: int = 2
    backoff_s: float = 30.0
    factor: float = 2.0
    max_backoff_s: float = 300.0

    def delays(self) -> list[float]:
        """The wait before each retry: 30, 60 s by default."""
        return [min(self.backoff_s * self.factor**n, self.max_backoff_s) for n in range(self.retries)]

    def kfp_arguments(self) -> dict[str, Any]:
        """The arguments of KFP's ``PipelineTask.set_retry``."""
        return {
            "num_retries": self.retries,
            "backoff_duration": f"{self.backoff_s:g}s",
            "backoff_factor": self.factor,
            "backoff_max_duration": f"{self.max_backoff_s:g}s",
        }


#: The policy of every network step, in KFP and in the step process.
NETWORK = RetryPolicy()

#: HTTP statuses worth another try: too many requests, and the server's own failures.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: MLflow error codes of a server that is unavailable or overloaded (``mlflow.protos.databricks_pb2``; not
#: ``INTERNAL_ERROR``, MLflow's code for any error raised without one). A refused connection to the tracking
#: server is found through the exception's cause instead.
TRANSIENT_MLFLOW_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED"})
#: S3 error codes of a busy or restarting server (MinIO and S3).
TRANSIENT_S3_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})


def retry_safe(fn: F) -> F:
    """Mark a step function as safe to repeat, so that :func:`run_step` retries its transient failures in a pod."""
    setattr(fn, RETRY_SAFE, True)
    return fn


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (``raise ... from``) and contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one_is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):  # refused, reset, aborted; socket time-outs
        return True
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(status, int) and status in TRANSIENT_STATUSES:  # kubernetes ApiException, kfp_server_api
        return True
    module = type(exc).__module__.split(".", 1)[0]
    name = type(exc).__name__
    if module == "urllib3":  # ProtocolError, NewConnectionError, MaxRetryError, ReadTimeoutError, ...
        return name not in {"LocationParseError", "LocationValueError", "InsecureRequestWarning"}
    if module == "requests":
        return name in {"ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout", "ChunkedEncodingError"}
    if module == "botocore":
        return name in {
            "EndpointConnectionError",
            "ConnectionClosedError",
            "ReadTimeoutError",
            "ConnectTimeoutError",
        }
    if module == "minio" and name == "S3Error":
        return getattr(exc, "code", None) in TRANSIENT_S3_CODES
    if module == "mlflow" and name == "MlflowException":
        return getattr(exc, "error_code", None) in TRANSIENT_MLFLOW_CODES
    return False


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a network failure that another try may not meet.

    A refused or reset connection, a time-out, an HTTP 408/429/5xx answer (Kubernetes ``ApiException``,
    ``requests``), urllib3's and botocore's connection errors, MinIO's ``InternalError``/``SlowDown``, MLflow's
    ``TEMPORARILY_UNAVAILABLE``. Bad input, a 4xx answer and a refused release are not.
    """
    return any(_one_is_transient(link) for link in _chain(exc))


def on_cluster() -> bool:
    """Whether this process runs in a Kubernetes pod (a pipeline step on a cluster)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def call_with_retries(
    fn: Callable[..., T],
    *args: Any,
    policy: RetryPolicy = NETWORK,
    sleep: Callable[[float], Any] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call ``fn``; after a transient failure (:func:`is_transient`) wait and call it again, per ``policy``.

    Raises:
        BaseException: The last failure, once the retries are spent, or at once when it is not transient.
    """
    delays = policy.delays()
    attempt = 0
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt >= len(delays) or not is_transient(exc):
                raise
            log.warning(
                "%s: transient failure (%s: %s); attempt %d of %d in %.0f s",
                getattr(fn, "__name__", "step"),
                type(exc).__name__,
                exc,
                attempt + 2,
                len(delays) + 1,
                delays[attempt],
            )
            sleep(delays[attempt])
            attempt += 1
