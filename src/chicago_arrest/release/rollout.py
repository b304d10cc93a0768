"""Has the InferenceService's newest revision become ready? And if not, what are its pods doing?

After a write that changes the model, KServe writes a new Knative revision and moves traffic to it only once it is
ready: ``latestRevision: true`` resolves to the Configuration's latest *ready* revision
(``pkg/reconciler/route/traffic/traffic.go`` @ knative/serving knative-v1.21.1). Until then the split that
``make status`` states is not the one served. KServe reports both names on the predictor
(``status.components.predictor.latestCreatedRevision`` / ``latestReadyRevision``,
``pkg/apis/serving/v1beta1/inference_service_status.go`` @ kserve v0.20.0, ``PropagateStatus``), copied from the
Knative Service, which may still describe the template before the write: so the created revision must also run
the spec's model (its ``ARREST_SERVER_MODEL_VERSION``).

A revision whose image cannot be pulled stays ``Unknown`` for Knative's progress deadline (600 s by default,
``pkg/deployment/config.go``) before its conditions say why, and an init container's failure never reaches them
(``pkg/reconciler/revision/reconcile_resources.go`` @ knative-v1.21.1 reads container statuses only). So the
message of a revision that is not ready names its pods' state directly: the pods with label
``serving.knative.dev/revision=<name>`` (``pkg/reconciler/revision/resources/meta.go``, ``makeLabels``), their
unschedulable reason, and the waiting or failed state of each init and app container. Reading pods needs ``get``
and ``list`` on ``pods`` in ``models`` (``manifests/platform/models.yaml``, Role ``kserve-deployer``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chicago_arrest.core import names
from chicago_arrest.core.errors import ReleaseError

#: Label of a Knative revision's pods.
REVISION_LABEL = "serving.knative.dev/revision"


def _env(container: Mapping[str, Any], name: str) -> str | None:
    for entry in container.get("env") or []:
        if entry.get("name") == name and "value" in entry:
            return str(entry["value"])
    return None


def revision_version(revision: Mapping[str, Any] | None) -> str | None:
    """The registry version a Knative revision serves (its ``ARREST_SERVER_MODEL_VERSION``)."""
    for container in ((revision or {}).get("spec") or {}).get("containers") or []:
        if (version := _env(container, names.MODEL_VERSION_ENV)) is not None:
            return version
    return None


def pending(isvc: Mapping[str, Any], revision: Mapping[str, Any] | None) -> str | None:
    """Why the newest revision does not serve yet, or ``None`` when it does.

    Args:
        isvc: The InferenceService as the API returns it.
        revision: The Knative revision ``latestCreatedRevision`` names (``None`` when unread).
    """
    predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
    created, ready = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    containers = ((isvc.get("spec") or {}).get("predictor") or {}).get("containers") or [{}]
    wanted = _env(containers[0], names.MODEL_VERSION_ENV)
    if not created:
        return "no revision created yet"
    running = revision_version(revision)
    if wanted is not None and running is not None and running != wanted:
        return f"the newest revision {created} runs version {running}, not {wanted}: its successor is not created yet"
    if created != ready:
        return f"revision {created} is not ready (the latest ready is {ready or 'none'})"
    return None


def _conditions(obj: Mapping[str, Any], types: tuple[str, ...]) -> list[str]:
    out = []
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") in types and condition.get("status") != "True":
            text = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
            out.append(f"{condition['type']}={condition.get('status')}{' (' + text + ')' if text else ''}")
    return out


def _container_state(status: Mapping[str, Any], init: bool) -> str | None:
    name = f"{'init container ' if init else ''}{status.get('name')}"
    state = status.get("state") or {}
    if waiting := state.get("waiting"):
        if waiting.get("reason") in ("PodInitializing", "ContainerCreating") and not waiting.get("message"):
            return None  # the normal way there
        return f"{name} waiting: {waiting.get('reason')}{': ' + waiting['message'] if waiting.get('message') else ''}"
    terminated = state.get("terminated") or (status.get("lastState") or {}).get("terminated")
    if terminated and (terminated.get("exitCode") or 0) != 0:
        detail = terminated.get("message") or terminated.get("reason") or ""
        return f"{name} exited {terminated.get('exitCode')}{': ' + str(detail).strip() if detail else ''}"
    if not init and state.get("running") and not status.get("ready"):
        return f"{name} running, not ready (readiness probe)"
    return None


def pod_states(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per pod: its phase, an unschedulable reason, and every init or app container that is stuck."""
    lines = []
    for pod in pods:
        status = pod.get("status") or {}
        parts = [str(status.get("phase") or "Unknown")]
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                parts.append(f"unschedulable: {condition.get('reason')}: {condition.get('message')}")
        for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
            parts.extend(s for c in status.get(key) or [] if (s := _container_state(c, init)))
        lines.append(f"pod {(pod.get('metadata') or {}).get('name')}: {'; '.join(parts)}")
    return lines


def describe(
    isvc: Mapping[str, Any], revision: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]] | None
) -> str:
    """``pending(...)`` plus the revision's failing conditions and its pods' states, in one line."""
    why = pending(isvc, revision) or "ready"
    extra = _conditions(revision or {}, ("Ready", "ResourcesAvailable", "ContainerHealthy"))
    if pods is None:
        extra.append("its pods could not be read")
    elif not pods:
        extra.append("no pod yet")
    else:
        extra.extend(pod_states(pods))
    return why + (" | " + " | ".join(extra) if extra else "")


class RolloutWatch:
    """Reads the InferenceService, its newest revision and that revision's pods.

    Args:
        custom: A ``CustomObjectsApi`` (or a stand-in with ``get_namespaced_custom_object``).
        core: A ``CoreV1Api`` (or ``None``: pods are not read).
        name: InferenceService name.
        namespace: Its namespace.
    """

    def __init__(self, custom: Any, core: Any, name: str, namespace: str) -> None:
        self.custom, self.core, self.name, self.namespace = custom, core, name, namespace

    def isvc(self) -> dict[str, Any]:
        """The InferenceService (raises ``ReleaseError`` when it cannot be read)."""
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", self.namespace, "inferenceservices", self.name,
                _request_timeout=(10, 60),
            )  # fmt: skip
        except Exception as exc:
            raise ReleaseError(f"cannot read InferenceService {self.namespace}/{self.name}: {exc}") from exc
        return obj

    def revision(self, name: str | None) -> dict[str, Any] | None:
        """The Knative revision ``name``, or ``None`` (not there, or unreadable)."""
        if not name:
            return None
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "serving.knative.dev", "v1", self.namespace, "revisions", name, _request_timeout=(10, 60)
            )
        except Exception:
            return None
        return obj

    def pods(self, revision: str | None) -> list[dict[str, Any]] | None:
        """The revision's pods as plain dicts, or ``None`` when they cannot be read."""
        if self.core is None or not revision:
            return None
        try:
            response = self.core.list_namespaced_pod(
                self.namespace,
                label_selector=f"{REVISION_LABEL}={revision}",
                _preload_content=False,
                _request_timeout=(10, 60),
            )
            items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
        except Exception:
            return None
        return items

    def check(self) -> tuple[bool, str]:
        """``(done, message)`` now: done when the newest revision runs the spec and is ready."""
        isvc = self.isvc()
        created = (((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}).get(
            "latestCreatedRevision"
        )
        revision = self.revision(created)
        if pending(isvc, revision) is None:
            return True, f"revision {created} (version {revision_version(revision) or '?'}) is ready"
        return False, describe(isvc, revision, self.pods(created))


def wait_for_rollout(
    watch: RolloutWatch,
    timeout_s: float,
    *,
    poll_s: float = 5.0,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait until the newest revision runs the spec and is ready; return one line saying which.

    Raises:
        ReleaseError: After ``timeout_s``: the revision, why it is not ready, its conditions and its pods' state.
    """
    deadline = clock() + timeout_s
    while True:
        done, message = watch.check()
        if done:
            return message
        if clock() >= deadline:
            raise ReleaseError(f"after {timeout_s:.0f} s: {message}")
        sleep(poll_s)
