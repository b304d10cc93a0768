"""Kubernetes objects of the serving stack and the kubectl verbs that operate its canary.

This module is the one source of truth for every Kubernetes object the project owns:

* the ``manifests/`` folder is written from it (``python -m chicago_arrest.k8s write-manifests manifests/``,
  checked by a golden test), and ``kind-cluster/up.sh`` applies those files;
* the pipeline's deploy step builds the InferenceService with :func:`inference_service` and applies it with
  :func:`apply_inference_service` (kubectl) or :func:`apply_inference_service_api` (the Kubernetes Python
  client, for a pod that has no kubectl);
* ``make canary|promote|rollback|status TARGET=cluster`` call :func:`set_canary`, :func:`promote`,
  :func:`rollback` and :func:`status`.

Object builders are pure functions that return plain dicts (ready for ``yaml.safe_dump`` or ``json.dumps``).
The cluster verbs run kubectl through an injectable ``runner`` (default :func:`subprocess.run`) so tests can
check the exact argv without a cluster. Nothing runs at import time.

Serving model (KServe v0.20, Knative mode): the InferenceService ``arrest-predictor`` in namespace ``models``
runs the project image through the namespaced ServingRuntime ``arrest-predictor-runtime``. Every deploy that
changes the model (``storageUri`` and the ``ARREST_SERVER_MODEL_VERSION`` env var) creates a new Knative
revision; ``spec.predictor.canaryTrafficPercent`` then splits traffic between that latest revision (the
challenger) and the last fully rolled-out one (the champion). Promote = 100, rollback = 0.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from chicago_arrest import __version__

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_RESOURCES",
    "ISVC_NAME",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "MLFLOW_IN_CLUSTER_URI",
    "MODEL_FORMAT",
    "MODEL_VERSION_ENV",
    "NAMESPACE",
    "RUNTIME_NAME",
    "SERVICE_ACCOUNT",
    "InferenceServiceNotFoundError",
    "InferenceServiceStatus",
    "KubectlError",
    "KubectlNotFoundError",
    "RevisionTraffic",
    "apply_inference_service",
    "apply_inference_service_api",
    "deployer_rbac",
    "format_status",
    "inference_service",
    "main",
    "mlflow_server",
    "models_namespace",
    "network_policy",
    "parse_status",
    "promote",
    "render_manifests",
    "rollback",
    "s3_service_account",
    "serving_runtime",
    "set_canary",
    "status",
    "storage_uri_for",
    "validate_canary_percent",
    "validate_name",
    "write_manifests",
]

# ----------------------------------------------------------------------------------------------------------
# Names and defaults (change them here; manifests/ and the tests follow).
# ----------------------------------------------------------------------------------------------------------

#: The InferenceService and the model name in V2 URLs (``/v2/models/arrest-predictor/infer``).
ISVC_NAME = "arrest-predictor"
#: Namespace of the InferenceService, its ServingRuntime, S3 Secret and ServiceAccount.
NAMESPACE = "models"
#: Namespace of Kubeflow Pipelines (and of its SeaweedFS object store).
KFP_NAMESPACE = "kubeflow"
#: ServiceAccount that KFP runs pipeline steps as (``kubeflow/pipeline-runner``).
PIPELINE_RUNNER_SA = "pipeline-runner"
#: Namespace of the MLflow tracking server.
MLFLOW_NAMESPACE = "mlflow"
#: The project's namespaced ServingRuntime.
RUNTIME_NAME = "arrest-predictor-runtime"
#: Model format served by the runtime: an MLflow pyfunc directory produced by the training pipeline.
MODEL_FORMAT = "arrest-pyfunc"
#: ServiceAccount (and Secret) that give the KServe storage-initializer its S3 credentials.
SERVICE_ACCOUNT = "kserve-s3"
S3_SECRET = "kserve-s3"
#: Secret with the S3 keys of the MLflow server (created by kind-cluster/up.sh, never committed).
MLFLOW_S3_SECRET = "mlflow-s3"
#: The project image (``make image``), used by every KFP component and by the predictor.
DEFAULT_IMAGE = f"chicago-arrest:{__version__}"
#: Env var that tells each predictor revision which registry version it serves.
MODEL_VERSION_ENV = "ARREST_SERVER_MODEL_VERSION"
#: KFP's SeaweedFS S3 endpoint (KFP >= 2.15; ``minio-service.kubeflow:9000`` before).
S3_ENDPOINT = "seaweedfs.kubeflow:9000"
S3_REGION = "us-east-1"
#: Where the MLflow server stores artifacts (``--artifacts-destination``); ``mlflow-artifacts:/X`` maps to
#: ``<destination>/X``. The ``mlpipeline`` bucket exists from KFP's install on.
MLFLOW_ARTIFACTS_DESTINATION = "s3://mlpipeline/mlflow"
MLFLOW_PORT = 5000
#: NodePort of the MLflow Service; kind-cluster/kind-config.yaml maps it to localhost:5000.
MLFLOW_NODE_PORT = 30500
#: Tracking URI for pipeline steps inside the cluster.
MLFLOW_IN_CLUSTER_URI = f"http://mlflow.{MLFLOW_NAMESPACE}.svc.cluster.local:{MLFLOW_PORT}"
#: Trimmed resources for kind (KServe's runtimes default to 1 CPU / 2Gi per pod, and a canary runs two).
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
#: One thread per native library: the predictor gets one CPU at most, and oversubscription hurts latency.
THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}

KSERVE_GROUP = "serving.kserve.io"
ISVC_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"
ISVC_API_VERSION = f"{KSERVE_GROUP}/{ISVC_VERSION}"
RUNTIME_API_VERSION = f"{KSERVE_GROUP}/v1alpha1"
#: Field manager recorded in ``managedFields`` by :func:`apply_inference_service` and its API twin.
FIELD_MANAGER = "chicago-arrest"

_PART_OF = {"app.kubernetes.io/part-of": "chicago-arrest"}
# KServe's webhook regex for InferenceService names (inference_service_validation.go); also a DNS-1123 label.
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: ``latest-<name>-predictor`` must fit a 63-character DNS label.
MAX_ISVC_NAME_LENGTH = 46

Obj = dict[str, Any]
#: Signature of :func:`subprocess.run` as used here: ``runner(argv, input=..., capture_output=True,
#: text=True, check=False, timeout=...)`` returning a :class:`subprocess.CompletedProcess`.
Runner = Callable[..., subprocess.CompletedProcess[str]]

# ----------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------


def validate_name(
    name: str, *, what: str = "InferenceService name", max_length: int = MAX_ISVC_NAME_LENGTH
) -> str:
    """Check a resource name the way KServe's webhook does, plus a length limit.

    Args:
        name: The name to check.
        what: What the name is, for the error message.
        max_length: Longest accepted name.

    Returns:
        The name, unchanged.

    Raises:
        ValueError: If the name is empty, too long, or not ``^[a-z]([-a-z0-9]*[a-z0-9])?$``.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {what} {name!r}: use lower-case letters, digits and '-', starting with a letter "
            "and ending with a letter or digit"
        )
    if len(name) > max_length:
        raise ValueError(f"invalid {what} {name!r}: {len(name)} characters, at most {max_length} allowed")
    return name


def _validate_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _DNS_LABEL_RE.fullmatch(namespace) or len(namespace) > 63:
        raise ValueError(f"invalid namespace {namespace!r}: must be a DNS-1123 label")
    return namespace


def validate_canary_percent(percent: object) -> int:
    """Check a canary traffic percentage.

    The CRD types ``canaryTrafficPercent`` as a plain int64 and KServe's webhook does not bound it, so the
    range check lives here.

    Args:
        percent: Share of traffic for the latest revision.

    Returns:
        The percentage as an ``int``.

    Raises:
        ValueError: If it is not an integer (``bool`` included) in 0..100.
    """
    if isinstance(percent, bool) or not isinstance(percent, int):
        raise ValueError(f"canary percent must be an integer in 0..100, got {percent!r}")
    if not 0 <= percent <= 100:
        raise ValueError(f"canary percent must be in 0..100, got {percent}")
    return percent


# ----------------------------------------------------------------------------------------------------------
# Storage URIs
# ----------------------------------------------------------------------------------------------------------


def _s3_uri(bucket: str, key: str, *, source: str) -> str:
    if not bucket:
        raise ValueError(f"no bucket in {source!r}")
    segments = [segment for segment in key.split("/") if segment]
    if not segments:
        raise ValueError(f"{source!r} points at a whole bucket; refusing to serve every object in it")
    if any(segment in (".", "..") for segment in segments):
        raise ValueError(f"relative path segments are not allowed in {source!r}")
    return f"s3://{bucket}/{'/'.join(segments)}/"


def storage_uri_for(artifact_uri: str, *, artifacts_destination: str = MLFLOW_ARTIFACTS_DESTINATION) -> str:
    """Map an MLflow (or KFP) artifact location to a KServe ``storageUri``.

    KServe's storage-initializer downloads every object whose key starts with the URI's path, so the result
    always ends with ``/`` (``.../v1`` would also pull ``.../v10/...``).

    * ``mlflow-artifacts:/<path>`` (proxied artifacts, the MLflow server runs with
      ``--artifacts-destination <destination>``) → ``<destination>/<path>/``;
      ``mlflow-artifacts://host:port/<path>`` is treated the same way.
    * ``s3://bucket/key`` (MLflow direct mode) and ``minio://bucket/key`` (KFP artifacts) →
      ``s3://bucket/key/``.

    ``models:/`` and ``runs:/`` URIs must be resolved first, because only the tracking server knows where
    they live. With MLflow 3.17, ``ModelVersion.source`` is ``models:/m-<id>`` (and ``ModelVersion.model_id``
    may be ``None``); ``MlflowClient().get_logged_model("m-<id>").artifact_location`` then gives
    ``mlflow-artifacts:/<experiment>/models/m-<id>/artifacts``, the directory that holds ``MLmodel``.

    Args:
        artifact_uri: The artifact location of the model directory (the one that holds ``MLmodel``).
        artifacts_destination: The server's ``--artifacts-destination`` (an ``s3://`` URI).

    Returns:
        An ``s3://bucket/key/`` URI.

    Raises:
        ValueError: For other schemes, a missing bucket or key, or ``..`` segments.
    """
    if not isinstance(artifact_uri, str) or not artifact_uri.strip():
        raise ValueError("artifact URI is empty")
    parts = urlsplit(artifact_uri.strip())
    if parts.query or parts.fragment:
        raise ValueError(f"query strings and fragments are not supported: {artifact_uri!r}")
    scheme = parts.scheme.lower()
    if scheme == "mlflow-artifacts":
        destination = urlsplit(artifacts_destination)
        if destination.scheme.lower() != "s3" or not destination.netloc:
            raise ValueError(f"artifacts destination must be an s3:// URI, got {artifacts_destination!r}")
        key = f"{destination.path.strip('/')}/{parts.path.strip('/')}"
        if not parts.path.strip("/"):
            raise ValueError(f"{artifact_uri!r} has no path below the artifacts destination")
        return _s3_uri(destination.netloc, key, source=artifact_uri)
    if scheme in ("s3", "minio"):
        return _s3_uri(parts.netloc, parts.path, source=artifact_uri)
    if scheme in ("models", "runs"):
        raise ValueError(
            f"{artifact_uri!r} is a registry/run reference; resolve it to its artifact location first "
            "(MlflowClient().get_logged_model(model_id).artifact_location)"
        )
    raise ValueError(f"cannot map {artifact_uri!r} to an s3:// storageUri (scheme {scheme or 'none'!r})")


def _check_storage_uri(storage_uri: str) -> str:
    parts = urlsplit(storage_uri)
    if parts.scheme != "s3":
        raise ValueError(
            f"storage_uri must be an s3:// URI, got {storage_uri!r}; "
            "map MLflow artifact locations with storage_uri_for()"
        )
    return _s3_uri(parts.netloc, parts.path, source=storage_uri)


# ----------------------------------------------------------------------------------------------------------
# Object builders
# ----------------------------------------------------------------------------------------------------------


def _env_list(env: Mapping[str, str]) -> list[Obj]:
    return [{"name": key, "value": str(value)} for key, value in env.items()]


def _resources(resources: Mapping[str, Mapping[str, str]] | None) -> Obj:
    chosen = DEFAULT_RESOURCES if resources is None else resources
    unknown = set(chosen) - {"requests", "limits"}
    if unknown:
        raise ValueError(f"resources may only have 'requests' and 'limits', got {sorted(unknown)}")
    return {kind: {name: str(value) for name, value in values.items()} for kind, values in chosen.items()}


def inference_service(
    name: str = ISVC_NAME,
    namespace: str = NAMESPACE,
    *,
    storage_uri: str,
    model_version: str | int,
    canary_percent: int | None = None,
    image: str | None = None,
    service_account: str = SERVICE_ACCOUNT,
    resources: Mapping[str, Mapping[str, str]] | None = None,
    runtime: str = RUNTIME_NAME,
    min_replicas: int = 1,
    max_replicas: int = 1,
) -> Obj:
    """Build the InferenceService (KServe v1beta1, Knative mode, V2 protocol).

    Args:
        name: InferenceService name; also the model name in V2 URLs.
        namespace: Its namespace.
        storage_uri: ``s3://bucket/key`` of the MLflow model directory; a trailing ``/`` is added.
        model_version: Registry version served; set as ``ARREST_SERVER_MODEL_VERSION`` in the pod, so every
            revision knows (and reports) which version it serves.
        canary_percent: ``spec.predictor.canaryTrafficPercent`` (0..100) for the revision this spec creates;
            ``None`` leaves the field out, which sends 100% to the latest ready revision.
        image: Overrides the ServingRuntime's image for this InferenceService; ``None`` keeps the runtime's.
        service_account: ServiceAccount whose Secret holds the S3 credentials of the storage-initializer.
        resources: ``{"requests": {...}, "limits": {...}}``; default :data:`DEFAULT_RESOURCES`.
        runtime: ServingRuntime to use (set explicitly so runtime selection is deterministic).
        min_replicas: Minimum pods per revision (1: no scale-to-zero).
        max_replicas: Maximum pods per revision.

    Returns:
        The InferenceService as a dict.

    Raises:
        ValueError: On an invalid name, namespace, storage URI, model version, percentage or replica count.
    """
    validate_name(name)
    _validate_namespace(namespace)
    validate_name(service_account, what="ServiceAccount name", max_length=253)
    validate_name(runtime, what="ServingRuntime name", max_length=253)
    uri = _check_storage_uri(storage_uri)
    version = str(model_version).strip()
    if not version:
        raise ValueError("model_version is empty")
    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise ValueError(
            "need 0 <= min_replicas <= max_replicas and max_replicas >= 1, "
            f"got {min_replicas}, {max_replicas}"
        )

    model: Obj = {
        "modelFormat": {"name": MODEL_FORMAT},
        "runtime": runtime,
        "protocolVersion": "v2",
        "storageUri": uri,
    }
    if image is not None:
        if not image.strip():
            raise ValueError("image is empty")
        model["image"] = image
    model["env"] = _env_list({MODEL_VERSION_ENV: version})
    model["resources"] = _resources(resources)

    predictor: Obj = {
        "serviceAccountName": service_account,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = validate_canary_percent(canary_percent)
    predictor["model"] = model

    return {
        "apiVersion": ISVC_API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": name, **_PART_OF},
            "annotations": {
                # Canary traffic splitting only exists in Knative mode (ignored in Standard mode).
                "serving.kserve.io/deploymentMode": "Knative",
                # Adds the latest-/prev- tag hosts, so each side of a canary can be called directly.
                "serving.kserve.io/enable-tag-routing": "true",
            },
        },
        "spec": {"predictor": predictor},
    }


def serving_runtime(
    image: str = DEFAULT_IMAGE,
    namespace: str = NAMESPACE,
    *,
    name: str = RUNTIME_NAME,
    resources: Mapping[str, Mapping[str, str]] | None = None,
) -> Obj:
    """Build the namespaced ServingRuntime that runs ``python -m arrest_server`` from the project image.

    KServe renders ``{{.Name}}`` as the InferenceService name and mounts the model downloaded by the
    storage-initializer at ``/mnt/models``.

    Args:
        image: The project image.
        namespace: Namespace of the InferenceServices that use it.
        name: Runtime name (``spec.predictor.model.runtime``).
        resources: Default container resources; default :data:`DEFAULT_RESOURCES`.

    Returns:
        The ServingRuntime as a dict.

    Raises:
        ValueError: On an empty image or an invalid name/namespace.
    """
    validate_name(name, what="ServingRuntime name", max_length=253)
    _validate_namespace(namespace)
    if not image or not image.strip():
        raise ValueError("image is empty")
    return {
        "apiVersion": RUNTIME_API_VERSION,
        "kind": "ServingRuntime",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": name, **_PART_OF},
        },
        "spec": {
            "annotations": {"prometheus.kserve.io/port": "8080", "prometheus.kserve.io/path": "/metrics"},
            "supportedModelFormats": [{"name": MODEL_FORMAT, "autoSelect": True}],
            "protocolVersions": ["v2", "v1"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-m", "arrest_server"],
                    "args": ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"],
                    "env": _env_list(THREAD_ENV),
                    "ports": [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/v2/health/ready", "port": 8080},
                        "periodSeconds": 5,
                        "timeoutSeconds": 5,
                        "failureThreshold": 6,
                    },
                    "resources": _resources(resources),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def models_namespace(name: str = NAMESPACE) -> Obj:
    """Build the model namespace, labelled so KFP's ``seaweedfs`` NetworkPolicy lets it reach S3 (port 8333).

    Args:
        name: Namespace name.

    Returns:
        The Namespace as a dict.
    """
    _validate_namespace(name)
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kubeflow-profile"}},
    }


def s3_service_account(
    namespace: str = NAMESPACE, *, name: str = SERVICE_ACCOUNT, secret_name: str = S3_SECRET
) -> Obj:
    """Build the ServiceAccount that links the S3 Secret to the InferenceService's storage-initializer.

    The Secret itself (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` plus the ``serving.kserve.io/s3-*``
    annotations) is created by ``kind-cluster/up.sh`` from environment variables and is never committed.

    Args:
        namespace: Namespace of the InferenceService.
        name: ServiceAccount name (``spec.predictor.serviceAccountName``).
        secret_name: Name of the S3 Secret in the same namespace.

    Returns:
        The ServiceAccount as a dict.
    """
    _validate_namespace(namespace)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(_PART_OF)},
        "secrets": [{"name": secret_name}],
    }


def network_policy(namespaces: Sequence[str] = (NAMESPACE, MLFLOW_NAMESPACE)) -> Obj:
    """Build a NetworkPolicy in ``kubeflow`` that lets our namespaces reach SeaweedFS's S3 port.

    KFP 2.17 ships a ``seaweedfs`` NetworkPolicy that only admits its own namespace and namespaces labelled
    ``app.kubernetes.io/part-of=kubeflow-profile``; kind >= 0.24 enforces it. NetworkPolicies are additive, so
    this one opens port 8333 (the pod port behind Service port 9000) to ``models`` (the storage-initializer)
    and ``mlflow`` (the tracking server's proxied artifacts).

    Args:
        namespaces: Namespaces to admit.

    Returns:
        The NetworkPolicy as a dict.
    """
    for namespace in namespaces:
        _validate_namespace(namespace)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "seaweedfs-allow-chicago-arrest",
            "namespace": KFP_NAMESPACE,
            "labels": dict(_PART_OF),
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": "seaweedfs"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
                        for namespace in namespaces
                    ],
                    "ports": [{"protocol": "TCP", "port": 8333}],
                }
            ],
        },
    }


def deployer_rbac(namespace: str = NAMESPACE) -> list[Obj]:
    """Build the Role and RoleBinding that let KFP's ``pipeline-runner`` deploy InferenceServices.

    KFP's own ``pipeline-runner`` Role has no ``serving.kserve.io`` rules. Read access to Knative revisions
    lets a step report which model version each revision serves.

    Args:
        namespace: Namespace of the InferenceService.

    Returns:
        ``[Role, RoleBinding]``.
    """
    _validate_namespace(namespace)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "kserve-deployer", "namespace": namespace, "labels": dict(_PART_OF)},
        "rules": [
            {
                "apiGroups": [KSERVE_GROUP],
                "resources": ["inferenceservices", "inferenceservices/status"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            },
            {
                "apiGroups": [KSERVE_GROUP],
                "resources": ["servingruntimes"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["serving.knative.dev"],
                "resources": ["revisions"],
                "verbs": ["get", "list", "watch"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "kfp-pipeline-runner-kserve", "namespace": namespace, "labels": dict(_PART_OF)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kserve-deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": PIPELINE_RUNNER_SA, "namespace": KFP_NAMESPACE}],
    }
    return [role, binding]


def mlflow_server(
    image: str = DEFAULT_IMAGE,
    *,
    artifacts_destination: str = MLFLOW_ARTIFACTS_DESTINATION,
    s3_endpoint: str = S3_ENDPOINT,
) -> list[Obj]:
    """Build a lean MLflow tracking server: Namespace, PVC (SQLite), Deployment and NodePort Service.

    It runs from the project image (``mlflow`` and ``boto3`` are locked in ``uv.lock``), proxies artifacts
    to KFP's object store and uses the lean settings (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``,
    ``--workers 1``: about 0.5 GB instead of 2.4 GB). ``--allowed-hosts`` lists the in-cluster Service names
    and localhost (port-forward / kind NodePort); ``/health`` is exempt from the host check, so probes work.

    Args:
        image: Image with ``mlflow`` and ``boto3`` installed.
        artifacts_destination: ``--artifacts-destination``.
        s3_endpoint: ``host:port`` of the S3 API.

    Returns:
        ``[Namespace, PersistentVolumeClaim, Deployment, Service]``.
    """
    labels = {"app.kubernetes.io/name": "mlflow", **_PART_OF}
    service = f"mlflow.{MLFLOW_NAMESPACE}"
    hosts = [
        "mlflow",
        service,
        f"{service}.svc",
        f"{service}.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ]
    allowed_hosts = ",".join(host for name in hosts for host in (name, f"{name}:*"))
    cors = f"http://localhost:{MLFLOW_PORT},http://127.0.0.1:{MLFLOW_PORT}"
    secret_env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": MLFLOW_S3_SECRET, "key": key}}}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": MLFLOW_NAMESPACE, "labels": dict(_PART_OF)},
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "mlflow-data", "namespace": MLFLOW_NAMESPACE, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "mlflow", "namespace": MLFLOW_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one SQLite file on a ReadWriteOnce volume
            "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                    },
                    "containers": [
                        {
                            "name": "mlflow",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["mlflow", "server"],
                            "args": [
                                "--host=0.0.0.0",
                                f"--port={MLFLOW_PORT}",
                                "--workers=1",
                                "--backend-store-uri=sqlite:////mlflow/mlflow.db",
                                "--serve-artifacts",
                                f"--artifacts-destination={artifacts_destination}",
                                f"--allowed-hosts={allowed_hosts}",
                                f"--cors-allowed-origins={cors}",
                            ],
                            "workingDir": "/mlflow",
                            "env": [
                                *_env_list(
                                    {
                                        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                                        "MLFLOW_S3_ENDPOINT_URL": f"http://{s3_endpoint}",
                                        "AWS_DEFAULT_REGION": S3_REGION,
                                    }
                                ),
                                *secret_env,
                            ],
                            "ports": [{"name": "http", "containerPort": MLFLOW_PORT, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/health", "port": "http"},
                                "periodSeconds": 5,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/health", "port": "http"},
                                "initialDelaySeconds": 60,
                                "periodSeconds": 20,
                                "failureThreshold": 6,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "512Mi"},
                                "limits": {"cpu": "1", "memory": "2Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/mlflow"}],
                        }
                    ],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "mlflow-data"}}],
                },
            },
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "mlflow", "namespace": MLFLOW_NAMESPACE, "labels": labels},
        "spec": {
            "type": "NodePort",
            "selector": {"app.kubernetes.io/name": "mlflow"},
            "ports": [
                {
                    "name": "http",
                    "port": MLFLOW_PORT,
                    "targetPort": "http",
                    "nodePort": MLFLOW_NODE_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }
    return [namespace, pvc, deployment, svc]


# ----------------------------------------------------------------------------------------------------------
# manifests/
# ----------------------------------------------------------------------------------------------------------

#: Placeholders of the example InferenceServices in manifests/ (the pipeline deploys the real ones).
EXAMPLE_CHAMPION_URI = "s3://mlpipeline/mlflow/1/models/m-champion-placeholder/artifacts/"
EXAMPLE_CHALLENGER_URI = "s3://mlpipeline/mlflow/1/models/m-challenger-placeholder/artifacts/"

_HEADER = (
    "# Generated by `python -m chicago_arrest.k8s write-manifests manifests/`\n"
    "# from src/chicago_arrest/k8s.py. Do not edit: change k8s.py and regenerate\n"
    "# (tests/code/test_k8s.py checks that the committed files match).\n"
)


class _NoAliasDumper(yaml.SafeDumper):
    """Safe dumper that writes repeated dicts in full instead of as ``&id001`` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(objects: Sequence[Obj], *, header: str = "") -> str:
    """Serialise objects as a multi-document YAML string (keys in insertion order).

    Args:
        objects: Kubernetes objects.
        header: Comment lines put first.

    Returns:
        The YAML text.
    """
    docs = [
        yaml.dump(obj, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=120)
        for obj in objects
    ]
    return header + "---\n" + "---\n".join(docs)


def render_manifests(image: str = DEFAULT_IMAGE) -> dict[str, str]:
    """Render every file of ``manifests/``.

    Args:
        image: Image of the ServingRuntime and the MLflow server.

    Returns:
        ``{file name: YAML text}``.
    """
    champion = inference_service(storage_uri=EXAMPLE_CHAMPION_URI, model_version="1")
    canary = inference_service(storage_uri=EXAMPLE_CHALLENGER_URI, model_version="2", canary_percent=10)
    files: dict[str, tuple[str, list[Obj]]] = {
        "namespace.yaml": (
            "The model namespace (labelled for KFP's seaweedfs NetworkPolicy).",
            [models_namespace()],
        ),
        "serviceaccount.yaml": (
            "S3 ServiceAccount of the predictor; kind-cluster/up.sh creates its Secret (never committed).",
            [s3_service_account()],
        ),
        "networkpolicy.yaml": (
            "Lets models/ and mlflow/ reach SeaweedFS (kubeflow) on its S3 port.",
            [network_policy()],
        ),
        "rbac.yaml": ("Lets KFP's pipeline-runner deploy the InferenceService.", deployer_rbac()),
        "servingruntime.yaml": (
            "The project's ServingRuntime (python -m arrest_server).",
            [serving_runtime(image)],
        ),
        "mlflow.yaml": (
            "MLflow tracking server; its Secret mlflow-s3 is created by kind-cluster/up.sh.",
            mlflow_server(image),
        ),
        "inferenceservice-champion.yaml": (
            "EXAMPLE: a first deploy, 100% to one revision. Placeholder storageUri (the pipeline deploys).",
            [champion],
        ),
        "inferenceservice-canary.yaml": (
            "EXAMPLE: a challenger gets 10% of traffic, the previous revision 90%. Placeholder storageUri.",
            [canary],
        ),
    }
    return {
        filename: dump_yaml(objects, header=_HEADER + f"# {description}\n")
        for filename, (description, objects) in files.items()
    }


def write_manifests(directory: str | Path, *, image: str = DEFAULT_IMAGE) -> list[Path]:
    """Write :func:`render_manifests` into a folder (created if needed).

    Args:
        directory: Target folder, normally ``manifests/``.
        image: Image of the ServingRuntime and the MLflow server.

    Returns:
        The written paths, sorted.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render_manifests(image).items():
        path = target / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return sorted(written)


# ----------------------------------------------------------------------------------------------------------
# kubectl verbs
# ----------------------------------------------------------------------------------------------------------


class KubectlError(RuntimeError):
    """A kubectl call failed."""


class KubectlNotFoundError(KubectlError):
    """The kubectl binary could not be run."""


class InferenceServiceNotFoundError(KubectlError):
    """The InferenceService does not exist."""


def _base_argv(kubectl: str, context: str | None) -> list[str]:
    return [kubectl, *(["--context", context] if context else [])]


def _run(
    argv: list[str],
    *,
    runner: Runner,
    input_text: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    try:
        return runner(argv, input=input_text, capture_output=True, text=True, check=False, timeout=timeout)
    except FileNotFoundError as exc:
        raise KubectlNotFoundError(
            f"cannot run {argv[0]!r}: kubectl is not installed or not on PATH "
            "(install it, or pass kubectl=/path/to/kubectl)"
        ) from exc
    except PermissionError as exc:
        raise KubectlNotFoundError(f"cannot run {argv[0]!r}: permission denied") from exc
    except subprocess.TimeoutExpired as exc:
        raise KubectlError(f"{' '.join(argv[:6])} ... timed out after {timeout:g} s") from exc


def _raise_for(
    proc: subprocess.CompletedProcess[str], argv: Sequence[str], *, name: str, namespace: str
) -> None:
    if proc.returncode == 0:
        return
    stderr = (proc.stderr or "").strip()
    if "(NotFound)" in stderr and "inferenceservice" in stderr.lower():
        raise InferenceServiceNotFoundError(
            f"InferenceService {namespace}/{name} not found: deploy it first (the pipeline's deploy step, "
            "or `kubectl apply -f manifests/inferenceservice-champion.yaml` with a real storageUri). "
            f"kubectl said: {stderr}"
        )
    if "doesn't have a resource type" in stderr:
        raise KubectlError(
            f"KServe is not installed in this cluster (run `make kind-up`?). kubectl said: {stderr}"
        )
    raise KubectlError(
        f"`{' '.join(argv)}` failed with exit code {proc.returncode}: {stderr or proc.stdout.strip()}"
    )


def set_canary(
    percent: int,
    *,
    name: str = ISVC_NAME,
    namespace: str = NAMESPACE,
    kubectl: str = "kubectl",
    context: str | None = None,
    runner: Runner = subprocess.run,
) -> str:
    """Send ``percent``% of traffic to the latest revision (the challenger), the rest to the previous one.

    Runs ``kubectl -n <ns> patch isvc <name> --type merge -p <patch>`` with the patch
    ``{"spec":{"predictor":{"canaryTrafficPercent":P}}}``. Only the split changes: no new revision is created.

    Args:
        percent: 0..100.
        name: InferenceService name.
        namespace: Its namespace.
        kubectl: kubectl binary.
        context: kubeconfig context (``--context``), e.g. ``kind-chicago-arrest``; ``None``: the current one.
        runner: Runs the command (``subprocess.run`` signature).

    Returns:
        kubectl's output (``inferenceservice.serving.kserve.io/arrest-predictor patched``).

    Raises:
        ValueError: If ``percent`` is not in 0..100.
        KubectlNotFoundError: If kubectl cannot be run.
        InferenceServiceNotFoundError: If the InferenceService does not exist.
        KubectlError: On any other kubectl failure.
    """
    validate_canary_percent(percent)
    validate_name(name)
    _validate_namespace(namespace)
    patch = json.dumps({"spec": {"predictor": {"canaryTrafficPercent": percent}}}, separators=(",", ":"))
    argv = [
        *_base_argv(kubectl, context),
        "-n",
        namespace,
        "patch",
        "isvc",
        name,
        "--type",
        "merge",
        "-p",
        patch,
    ]
    proc = _run(argv, runner=runner)
    _raise_for(proc, argv, name=name, namespace=namespace)
    return proc.stdout.strip()


def promote(
    *,
    name: str = ISVC_NAME,
    namespace: str = NAMESPACE,
    kubectl: str = "kubectl",
    context: str | None = None,
    runner: Runner = subprocess.run,
) -> str:
    """Send 100% of traffic to the latest revision; it becomes the rolled-out one (the new champion).

    Args:
        name: InferenceService name.
        namespace: Its namespace.
        kubectl: kubectl binary.
        context: kubeconfig context; ``None``: the current one.
        runner: Runs the command.

    Returns:
        kubectl's output.
    """
    return set_canary(100, name=name, namespace=namespace, kubectl=kubectl, context=context, runner=runner)


def rollback(
    *,
    name: str = ISVC_NAME,
    namespace: str = NAMESPACE,
    kubectl: str = "kubectl",
    context: str | None = None,
    runner: Runner = subprocess.run,
) -> str:
    """Send 0% to the latest revision: all traffic goes back to the previously rolled-out revision.

    Args:
        name: InferenceService name.
        namespace: Its namespace.
        kubectl: kubectl binary.
        context: kubeconfig context; ``None``: the current one.
        runner: Runs the command.

    Returns:
        kubectl's output.
    """
    return set_canary(0, name=name, namespace=namespace, kubectl=kubectl, context=context, runner=runner)


@dataclass(frozen=True)
class RevisionTraffic:
    """One entry of ``status.components.predictor.traffic``.

    Attributes:
        revision: Knative revision name (``arrest-predictor-predictor-00002``).
        percent: Share of traffic.
        latest: Whether this is the "latest ready revision" target (the challenger during a canary).
        tag: Route tag (``latest`` / ``prev``), if any.
        url: Tag URL, if any.
        model_version: Registry version the revision serves (its ``ARREST_SERVER_MODEL_VERSION``), if known.
    """

    revision: str
    percent: int
    latest: bool
    tag: str | None = None
    url: str | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class InferenceServiceStatus:
    """What ``make status TARGET=cluster`` shows about the InferenceService.

    Attributes:
        name: InferenceService name.
        namespace: Its namespace.
        url: ``status.url`` (the Host to send through Kourier).
        ready: Whether the ``Ready`` condition is ``True``.
        ready_message: Reason and message of a ``Ready`` condition that is not ``True``.
        canary_percent: ``spec.predictor.canaryTrafficPercent`` (``None``: not set, 100% to latest).
        spec_model_version: Model version in the current spec (the latest created revision's).
        latest_created_revision: ``latestCreatedRevision``.
        latest_ready_revision: ``latestReadyRevision``.
        latest_rolled_out_revision: ``latestRolledoutRevision`` (the champion while a canary runs).
        previous_rolled_out_revision: ``previousRolledoutRevision``.
        traffic: The traffic targets.
        notes: Things worth telling the operator (e.g. revisions that could not be read).
    """

    name: str
    namespace: str
    url: str | None
    ready: bool
    ready_message: str | None
    canary_percent: int | None
    spec_model_version: str | None
    latest_created_revision: str | None
    latest_ready_revision: str | None
    latest_rolled_out_revision: str | None
    previous_rolled_out_revision: str | None
    traffic: tuple[RevisionTraffic, ...]
    notes: tuple[str, ...] = ()

    @property
    def latest(self) -> RevisionTraffic | None:
        """The traffic target of the latest ready revision, if it gets any."""
        return next((t for t in self.traffic if t.latest), None)

    @property
    def previous(self) -> RevisionTraffic | None:
        """The traffic target of the previous (rolled-out) revision while traffic is split."""
        return next((t for t in self.traffic if not t.latest), None)

    def to_dict(self) -> Obj:
        """Return a JSON-ready dict, with ``latest`` and ``previous`` spelled out."""
        data = asdict(self)
        data["traffic"] = [asdict(t) for t in self.traffic]
        data["notes"] = list(self.notes)
        data["latest"] = asdict(self.latest) if self.latest else None
        data["previous"] = asdict(self.previous) if self.previous else None
        return data


def _model_version_of(containers: Any) -> str | None:
    for container in containers or []:
        for env in container.get("env") or []:
            if env.get("name") == MODEL_VERSION_ENV and "value" in env:
                return str(env["value"])
    return None


def parse_status(
    isvc: Mapping[str, Any], revisions: Mapping[str, str | None] | None = None
) -> InferenceServiceStatus:
    """Summarise an InferenceService object (``kubectl get isvc -o json``).

    Args:
        isvc: The object.
        revisions: ``{revision name: model version}`` read from the Knative revisions, if available.

    Returns:
        The summary.
    """
    metadata = isvc.get("metadata") or {}
    spec_predictor = (isvc.get("spec") or {}).get("predictor") or {}
    spec_version = _model_version_of([spec_predictor.get("model") or {}])
    status_obj = isvc.get("status") or {}
    predictor = (status_obj.get("components") or {}).get("predictor") or {}
    versions = dict(revisions or {})
    latest_created = predictor.get("latestCreatedRevision")
    # The latest created revision runs the current spec, whatever the revision objects say.
    if latest_created and spec_version and not versions.get(latest_created):
        versions[latest_created] = spec_version

    ready_cond = next((c for c in status_obj.get("conditions") or [] if c.get("type") == "Ready"), None)
    ready = bool(ready_cond and str(ready_cond.get("status")) == "True")
    ready_message = None
    if ready_cond and not ready:
        ready_message = (
            ": ".join(str(x) for x in (ready_cond.get("reason"), ready_cond.get("message")) if x) or None
        )

    traffic = tuple(
        RevisionTraffic(
            revision=str(t.get("revisionName") or ""),
            percent=int(t.get("percent") or 0),
            latest=bool(t.get("latestRevision")),
            tag=t.get("tag"),
            url=t.get("url"),
            model_version=versions.get(str(t.get("revisionName") or "")),
        )
        for t in predictor.get("traffic") or []
    )
    canary = spec_predictor.get("canaryTrafficPercent")
    return InferenceServiceStatus(
        name=str(metadata.get("name") or ""),
        namespace=str(metadata.get("namespace") or ""),
        url=status_obj.get("url"),
        ready=ready,
        ready_message=ready_message,
        canary_percent=int(canary) if canary is not None else None,
        spec_model_version=spec_version,
        latest_created_revision=latest_created,
        latest_ready_revision=predictor.get("latestReadyRevision"),
        latest_rolled_out_revision=predictor.get("latestRolledoutRevision"),
        previous_rolled_out_revision=predictor.get("previousRolledoutRevision"),
        traffic=traffic,
    )


def _revision_versions(
    names: Sequence[str], *, namespace: str, kubectl: str, context: str | None, runner: Runner
) -> tuple[dict[str, str | None], str | None]:
    """Read ``ARREST_SERVER_MODEL_VERSION`` from Knative revisions, best effort (a note on failure)."""
    if not names:
        return {}, None
    argv = [
        *_base_argv(kubectl, context),
        "-n",
        namespace,
        "get",
        "revisions.serving.knative.dev",
        *names,
        "-o",
        "json",
    ]
    proc = _run(argv, runner=runner)
    items: list[Any] = []
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
        items = doc.get("items", [doc]) if doc.get("kind") != "Revision" else [doc]
    except (json.JSONDecodeError, AttributeError):
        items = []
    versions: dict[str, str | None] = {}
    for item in items:
        if not isinstance(item, Mapping) or "metadata" not in item:
            continue
        versions[str(item["metadata"].get("name"))] = _model_version_of(
            (item.get("spec") or {}).get("containers")
        )
    note = None
    if proc.returncode != 0:
        reason = (proc.stderr or "").strip() or f"exit code {proc.returncode}"
        note = f"could not read every Knative revision ({reason})"
    return versions, note


def status(
    *,
    name: str = ISVC_NAME,
    namespace: str = NAMESPACE,
    kubectl: str = "kubectl",
    context: str | None = None,
    runner: Runner = subprocess.run,
) -> InferenceServiceStatus:
    """Read the InferenceService and the model version behind each revision that gets traffic.

    Runs ``kubectl -n <ns> get isvc <name> -o json`` and then, best effort,
    ``kubectl -n <ns> get revisions.serving.knative.dev <revisions...> -o json``.

    Args:
        name: InferenceService name.
        namespace: Its namespace.
        kubectl: kubectl binary.
        context: kubeconfig context; ``None``: the current one.
        runner: Runs the commands.

    Returns:
        The summary (see :func:`format_status` for text).

    Raises:
        KubectlNotFoundError: If kubectl cannot be run.
        InferenceServiceNotFoundError: If the InferenceService does not exist.
        KubectlError: On any other kubectl failure or unreadable output.
    """
    validate_name(name)
    _validate_namespace(namespace)
    argv = [*_base_argv(kubectl, context), "-n", namespace, "get", "isvc", name, "-o", "json"]
    proc = _run(argv, runner=runner)
    _raise_for(proc, argv, name=name, namespace=namespace)
    try:
        isvc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise KubectlError(f"`{' '.join(argv)}` did not print JSON: {exc}") from exc
    summary = parse_status(isvc)
    names = sorted({t.revision for t in summary.traffic if t.revision})
    versions, note = _revision_versions(
        names, namespace=namespace, kubectl=kubectl, context=context, runner=runner
    )
    summary = parse_status(isvc, versions)
    if note:
        summary = replace(summary, notes=(*summary.notes, note))
    return summary


def format_status(summary: InferenceServiceStatus) -> str:
    """Render a status summary as a few lines of text.

    Args:
        summary: From :func:`status`.

    Returns:
        Text for a terminal.
    """

    def side(label: str, target: RevisionTraffic | None) -> str:
        if target is None:
            return f"  {label:<9} -"
        version = target.model_version if target.model_version is not None else "?"
        url = f"  ({target.url})" if target.url else ""
        return f"  {label:<9} {target.revision}  {target.percent:>3}%  model version {version}{url}"

    canary = "not set (100% to latest)" if summary.canary_percent is None else f"{summary.canary_percent}%"
    lines = [
        f"InferenceService {summary.namespace}/{summary.name}",
        f"  URL:      {summary.url or '-'}",
        f"  Ready:    {summary.ready}" + (f"  ({summary.ready_message})" if summary.ready_message else ""),
        f"  Canary:   {canary}; spec model version {summary.spec_model_version or '?'}",
        side("Latest:", summary.latest),
        side("Previous:", summary.previous),
    ]
    if summary.previous is None and summary.previous_rolled_out_revision:
        lines.append(
            f"  (previous rolled-out revision {summary.previous_rolled_out_revision} gets no traffic)"
        )
    if summary.latest_created_revision and summary.latest_created_revision != summary.latest_ready_revision:
        lines.append(
            f"  Note: revision {summary.latest_created_revision} is not ready yet; it gets no traffic"
        )
    lines.extend(f"  Note: {note}" for note in summary.notes)
    return "\n".join(lines)


def _check_isvc(obj: Mapping[str, Any]) -> tuple[str, str]:
    if obj.get("kind") != "InferenceService" or obj.get("apiVersion") != ISVC_API_VERSION:
        raise ValueError(
            f"expected a {ISVC_API_VERSION} InferenceService, got {obj.get('apiVersion')}/{obj.get('kind')}"
        )
    metadata = obj.get("metadata") or {}
    name = validate_name(str(metadata.get("name", "")))
    namespace = _validate_namespace(str(metadata.get("namespace", "")))
    predictor = (obj.get("spec") or {}).get("predictor") or {}
    if "canaryTrafficPercent" in predictor:
        validate_canary_percent(predictor["canaryTrafficPercent"])
    return name, namespace


def _merge_patch(obj: Mapping[str, Any]) -> Obj:
    """Merge patch that makes an existing InferenceService match ``obj`` in the fields we own.

    JSON merge patch keeps fields the patch omits, so the optional fields we manage are set to ``null`` when
    ``obj`` leaves them out: otherwise a ``canaryTrafficPercent: 0`` left by a rollback would starve the new
    revision, and an old image override would stick.
    """
    metadata = obj.get("metadata") or {}
    spec = json.loads(json.dumps(obj.get("spec") or {}))
    predictor = spec.setdefault("predictor", {})
    predictor.setdefault("canaryTrafficPercent", None)
    predictor.setdefault("model", {}).setdefault("image", None)
    patch: Obj = {"metadata": {}, "spec": spec}
    for key in ("labels", "annotations"):
        if metadata.get(key):
            patch["metadata"][key] = dict(metadata[key])
    return patch


def apply_inference_service(
    obj: Mapping[str, Any],
    *,
    kubectl: str = "kubectl",
    context: str | None = None,
    runner: Runner = subprocess.run,
    dry_run: bool = False,
    timeout: float = 120.0,
) -> Obj:
    """Create the InferenceService, or merge-patch the existing one to match ``obj`` (with kubectl).

    Runs ``kubectl -n <ns> patch isvc <name> --type merge -p <patch> -o json``; when that reports NotFound,
    ``kubectl create -f - -o json`` with ``obj`` on stdin. Optional fields we manage that ``obj`` omits
    (``canaryTrafficPercent``, ``model.image``) are removed, so the result matches ``obj``.

    Args:
        obj: From :func:`inference_service`.
        kubectl: kubectl binary.
        context: kubeconfig context; ``None``: the current one.
        runner: Runs the commands.
        dry_run: Ask the API server to validate only (``--dry-run=server``).
        timeout: Seconds per kubectl call.

    Returns:
        The object as the API server returned it.

    Raises:
        ValueError: If ``obj`` is not a valid InferenceService for us.
        KubectlNotFoundError: If kubectl cannot be run.
        KubectlError: If the create or patch fails.
    """
    name, namespace = _check_isvc(obj)
    dry = ["--dry-run=server"] if dry_run else []
    base = _base_argv(kubectl, context)
    patch = json.dumps(_merge_patch(obj), separators=(",", ":"))
    manager = f"--field-manager={FIELD_MANAGER}"
    argv = [
        *base,
        "-n",
        namespace,
        "patch",
        "isvc",
        name,
        "--type",
        "merge",
        "-p",
        patch,
        manager,
        "-o",
        "json",
    ]
    argv += dry
    proc = _run(argv, runner=runner, timeout=timeout)
    if proc.returncode != 0 and "(NotFound)" in (proc.stderr or ""):
        argv = [*base, "-n", namespace, "create", "-f", "-", manager, "-o", "json", *dry]
        proc = _run(argv, runner=runner, input_text=json.dumps(obj), timeout=timeout)
    _raise_for(proc, argv, name=name, namespace=namespace)
    try:
        result: Obj = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise KubectlError(f"`{' '.join(argv[:8])} ...` did not print JSON: {exc}") from exc
    return result


def _default_custom_objects_api() -> Any:
    """A ``CustomObjectsApi`` from the in-cluster config, else from ``~/.kube/config`` (imported lazily)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def apply_inference_service_api(obj: Mapping[str, Any], *, api: Any = None, dry_run: bool = False) -> Obj:
    """Create or merge-patch the InferenceService with the Kubernetes Python client (no kubectl needed).

    Meant for the pipeline's deploy step, which runs as ``kubeflow/pipeline-runner`` in the project image (see
    :func:`deployer_rbac`). Same semantics as :func:`apply_inference_service`.

    Args:
        obj: From :func:`inference_service`.
        api: A ``kubernetes.client.CustomObjectsApi`` (or a stand-in); default: in-cluster config, else
            kubeconfig.
        dry_run: Ask the API server to validate only.

    Returns:
        The object as the API server returned it.

    Raises:
        ValueError: If ``obj`` is not a valid InferenceService for us.
        kubernetes.client.exceptions.ApiException: If the API server refuses the request.
    """
    name, namespace = _check_isvc(obj)
    api = api if api is not None else _default_custom_objects_api()
    extra: Obj = {"field_manager": FIELD_MANAGER, **({"dry_run": "All"} if dry_run else {})}
    try:
        patched: Obj = api.patch_namespaced_custom_object(
            KSERVE_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, name, _merge_patch(obj), **extra
        )
        return patched
    except Exception as exc:
        if getattr(exc, "status", None) != 404:
            raise
    created: Obj = api.create_namespaced_custom_object(
        KSERVE_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, dict(obj), **extra
    )
    return created


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chicago_arrest.k8s",
        description="Kubernetes objects and canary verbs of chicago-arrest.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    write = sub.add_parser("write-manifests", help="(re)generate the manifests/ folder")
    write.add_argument("directory", type=Path)
    write.add_argument("--image", default=DEFAULT_IMAGE)

    render = sub.add_parser("render-isvc", help="print an InferenceService as YAML")
    render.add_argument(
        "--storage-uri", required=True, help="s3:// or mlflow-artifacts:/ location of the model dir"
    )
    render.add_argument("--model-version", required=True)
    render.add_argument("--canary", type=int, default=None, help="canaryTrafficPercent (0..100)")
    render.add_argument("--image", default=None)
    render.add_argument("--artifacts-destination", default=MLFLOW_ARTIFACTS_DESTINATION)

    def cluster_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default=ISVC_NAME)
        p.add_argument("--namespace", default=NAMESPACE)
        p.add_argument("--context", default=None, help="kubeconfig context, e.g. kind-chicago-arrest")
        p.add_argument("--kubectl", default="kubectl")

    canary = sub.add_parser("canary", help="send PERCENT%% of traffic to the latest revision")
    canary.add_argument("percent", type=int)
    cluster_args(canary)
    for verb, text in (
        ("promote", "100%% to the latest revision"),
        ("rollback", "0%% to the latest revision"),
    ):
        cluster_args(sub.add_parser(verb, help=text))
    show = sub.add_parser("status", help="show the InferenceService and its traffic split")
    cluster_args(show)
    show.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``write-manifests``, ``render-isvc``, ``canary``, ``promote``, ``rollback``, ``status``.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status.
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "write-manifests":
            for path in write_manifests(args.directory, image=args.image):
                print(path)
        elif args.command == "render-isvc":
            uri = storage_uri_for(args.storage_uri, artifacts_destination=args.artifacts_destination)
            obj = inference_service(
                storage_uri=uri,
                model_version=args.model_version,
                canary_percent=args.canary,
                image=args.image,
            )
            sys.stdout.write(dump_yaml([obj]))
        else:
            cluster = {
                "name": args.name,
                "namespace": args.namespace,
                "context": args.context,
                "kubectl": args.kubectl,
            }
            if args.command == "canary":
                print(set_canary(args.percent, **cluster))
            elif args.command == "promote":
                print(promote(**cluster))
            elif args.command == "rollback":
                print(rollback(**cluster))
            else:
                summary = status(**cluster)
                print(json.dumps(summary.to_dict(), indent=2) if args.json else format_status(summary))
    except (ValueError, KubectlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
