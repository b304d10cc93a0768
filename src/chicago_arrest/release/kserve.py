"""Traffic on the cluster: the ``arrest-predictor`` InferenceService, through the Kubernetes Python client.

The object applied is ``manifests/base/inferenceservice.yaml`` itself, shipped as package data
(``chicago_arrest/resources/inferenceservice.yaml``). A write changes only what a run changes: the model
(``STORAGE_URI`` and ``ARREST_SERVER_MODEL_VERSION``), ``canaryTrafficPercent``, the image and, with the ``kind``
profile, the resources (the values of ``manifests/overlays/kind``). It is sent with server-side apply (field
manager ``chicago-arrest``, forced), so a field that a write leaves out (``canaryTrafficPercent`` once a
challenger is promoted) is removed, not inherited.

A write that does not change the model (a canary's percentage, a rollback to 0 %, promoting the challenger the
spec already runs) patches ``spec.predictor.canaryTrafficPercent`` alone (a JSON merge patch; ``null`` removes
it): KServe puts the percentage only into the Knative Service's traffic, not into its revision template
(``pkg/controller/v1beta1/inferenceservice/reconcilers/knative/ksvc_reconciler.go`` @ kserve v0.20.0), so no
revision is created whatever the host's settings say. Such a patch owns the field afterwards as an update, not
as the apply: a later apply that leaves the field out would not remove it, so a champion-alone apply over a
spec that has one sets ``canaryTrafficPercent: 100``, which KServe routes exactly like no field at all (100 %
to the latest ready revision, the same file). The same holds after a ``kubectl patch`` of the percentage.
On the host the image and profile of an apply come from the cluster (:mod:`chicago_arrest.release.cluster`).

How KServe (v0.20, Knative mode) splits traffic: every change of the model creates a Knative revision;
``canaryTrafficPercent`` P sends P % to that latest revision (the challenger) and the rest to the last revision
that was rolled out at 100 % (the champion). Without the field the latest revision gets everything.

* ``Split(champion)``: the predictor serves the champion, no ``canaryTrafficPercent``;
* ``Split(champion, challenger, p)``: the predictor serves the challenger with ``canaryTrafficPercent`` p and
  KServe keeps the champion's rolled-out revision for the rest; p = 0 is a rollback.

A version is copied from the registry to ``s3://<models bucket>/arrest-predictor/v<N>/`` (the ``publish``
callback) only when the predictor does not serve it yet. Errors are :class:`ReleaseError` chosen by the HTTP
status of the API's answer, never by its text.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import yaml

from chicago_arrest.core import names
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.registry.state import Split, Target, check_percent

if TYPE_CHECKING:
    from chicago_arrest.core.settings import Settings

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
KNATIVE_GROUP, KNATIVE_VERSION, REVISIONS = "serving.knative.dev", "v1", "revisions"
#: Owner of the fields this module applies (``metadata.managedFields``).
FIELD_MANAGER = "chicago-arrest"
#: Content type of a server-side apply request, and of a JSON merge patch.
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
STORAGE_URI_ENV = "STORAGE_URI"
#: ``(connect, read)`` seconds per API request.
REQUEST_TIMEOUT = (10, 60)
#: KServe's webhook rule for InferenceService names; ``latest-<name>-predictor`` must fit a 63-character label.
_NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_NAME_LENGTH = 46

Obj = dict[str, Any]


def check_name(name: str, namespace: str) -> tuple[str, str]:
    """Return ``(name, namespace)`` if KServe and Kubernetes accept them.

    Raises:
        ReleaseError: On a name that is not ``[a-z]([-a-z0-9]*[a-z0-9])?`` of at most 46 characters, or a
            namespace that is not a DNS-1123 label.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise ReleaseError(
            f"invalid InferenceService name {name!r}: lower-case letters, digits and '-', starting with a letter, "
            f"ending with a letter or digit, at most {MAX_NAME_LENGTH} characters"
        )
    if not isinstance(namespace, str) or not _LABEL_RE.fullmatch(namespace) or len(namespace) > 63:
        raise ReleaseError(f"invalid namespace {namespace!r}: must be a DNS-1123 label")
    return name, namespace


def model_prefix(version: str) -> str:
    """Key prefix of a published version in the models bucket: ``arrest-predictor/v3``.

    Raises:
        ReleaseError: If ``version`` is not a positive integer.
    """
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise ReleaseError(f"model version must be a positive integer, got {version!r}")
    return f"{names.ISVC_NAME}/v{int(text)}"


@cache
def _resource(filename: str) -> Any:
    return yaml.safe_load(
        resources.files("chicago_arrest").joinpath("resources", filename).read_text("utf-8")
    )


def base_inference_service() -> Obj:
    """``manifests/base/inferenceservice.yaml`` (package data), as a fresh dict."""
    return copy.deepcopy(_resource("inferenceservice.yaml"))


def kind_resources() -> Obj:
    """The predictor resources that ``manifests/overlays/kind`` sets (its patch is package data too)."""
    (op,) = [op for op in _resource("kind-resources.yaml") if op["path"].endswith("/resources")]
    return copy.deepcopy(op["value"])


def _env(container: Mapping[str, Any], name: str) -> str | None:
    for entry in container.get("env") or []:
        if entry.get("name") == name and "value" in entry:
            return str(entry["value"])
    return None


def _container(isvc: Mapping[str, Any]) -> Obj:
    containers = ((isvc.get("spec") or {}).get("predictor") or {}).get("containers") or [{}]
    return containers[0]


def render(
    version: str,
    storage_uri: str,
    *,
    canary_percent: int | None = None,
    name: str = names.ISVC_NAME,
    namespace: str = names.MODELS_NAMESPACE,
    image: str | None = None,
    profile: Literal["standard", "kind"] = "standard",
) -> Obj:
    """The base InferenceService with what a run changes.

    Args:
        version: Registry version the predictor serves.
        storage_uri: Where that version is published (``s3://.../``).
        canary_percent: ``canaryTrafficPercent``, or ``None`` to leave the field out.
        name: InferenceService name.
        namespace: Its namespace.
        image: The project image; ``None`` keeps the base's.
        profile: ``kind`` applies the resources of ``overlays/kind``.

    Returns:
        The object to apply.

    Raises:
        ReleaseError: On an invalid name, version, URI or percentage, or a base that lost its env entries.
    """
    check_name(name, namespace)
    model_prefix(version)
    if not storage_uri.startswith("s3://") or not storage_uri.endswith("/"):
        raise ReleaseError(f"storage URI must be s3://bucket/key/ (ending in '/'), got {storage_uri!r}")
    obj = base_inference_service()
    obj["metadata"].update(name=name, namespace=namespace)
    predictor = obj["spec"]["predictor"]
    predictor.pop("canaryTrafficPercent", None)
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = check_percent(canary_percent)
    container = _container(obj)
    wanted = {STORAGE_URI_ENV: storage_uri, names.MODEL_VERSION_ENV: str(version).strip()}
    for entry in container["env"]:
        if entry["name"] in wanted:
            entry["value"] = wanted.pop(entry["name"])
    if wanted:
        raise ReleaseError(f"the base InferenceService has no env {sorted(wanted)} (manifests/base)")
    if image:
        container["image"] = image
    if profile == "kind":
        container["resources"] = kind_resources()
    return obj


def summarize(isvc: Mapping[str, Any], versions: Mapping[str, str | None] | None = None) -> Obj:
    """What ``status`` shows: URL, readiness, spec and each revision with its version and share of traffic.

    Args:
        isvc: The InferenceService as the API returns it.
        versions: ``{revision: registry version}`` read from the Knative revisions.

    Returns:
        A JSON-ready dict.
    """
    spec = (isvc.get("spec") or {}).get("predictor") or {}
    status = isvc.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    spec_version = _env(_container(isvc), names.MODEL_VERSION_ENV)
    known = dict(versions or {})
    latest_created = predictor.get("latestCreatedRevision")
    if latest_created and spec_version and not known.get(latest_created):
        known[latest_created] = spec_version  # the latest created revision runs the current spec
    ready: Obj = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    is_ready = str(ready.get("status")) == "True"
    message = None if is_ready else ": ".join(str(ready[k]) for k in ("reason", "message") if ready.get(k))
    metadata = isvc.get("metadata") or {}
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "exists": True,
        "url": status.get("url"),
        "ready": is_ready,
        "ready_message": message or None,
        "canary_percent": spec.get("canaryTrafficPercent"),
        "spec_model_version": spec_version,
        "storage_uri": _env(_container(isvc), STORAGE_URI_ENV),
        "latest_created_revision": latest_created,
        "latest_ready_revision": predictor.get("latestReadyRevision"),
        "latest_rolled_out_revision": predictor.get("latestRolledoutRevision"),
        "revisions": [
            {
                "revision": t.get("revisionName"),
                "percent": int(t.get("percent") or 0),
                "latest": bool(t.get("latestRevision")),
                "tag": t.get("tag"),
                "url": t.get("url"),
                "model_version": known.get(str(t.get("revisionName"))),
            }
            for t in predictor.get("traffic") or []
        ],
        "notes": [],
    }


class KServeTraffic:
    """The :class:`~chicago_arrest.release.base.Traffic` of the cluster: one InferenceService.

    Args:
        api: A ``kubernetes.client.CustomObjectsApi`` whose PATCH requests are server-side applies (as
            :meth:`from_settings` builds it), or a stand-in with the same three methods.
        publish: Copies registry version N to the models bucket and returns its URI (ending in ``/``).
        name: InferenceService name.
        namespace: Its namespace.
        image: The project image the predictor runs; ``None`` keeps the base's.
        profile: ``kind`` trims the resources like ``manifests/overlays/kind``.
        where: The cluster, for messages (a kubeconfig context).
        merge_api: The same API whose PATCH requests are JSON merge patches (the percentage alone); default
            ``api`` (a stand-in tells them apart by ``force``, which only an apply sends).
        template: Returns ``(image, profile)`` when an apply needs them (overrides ``image`` / ``profile``;
            on the host it reads the cluster's ConfigMap, once).
        core: A ``CoreV1Api``, to read the pods of a revision that is not ready (:meth:`watch`).
    """

    target: Target = "cluster"

    def __init__(
        self,
        api: Any,
        publish: Callable[[str], str],
        *,
        name: str = names.ISVC_NAME,
        namespace: str = names.MODELS_NAMESPACE,
        image: str | None = None,
        profile: Literal["standard", "kind"] = "standard",
        where: str = "the current kubeconfig context",
        merge_api: Any = None,
        template: Callable[[], tuple[str | None, Literal["standard", "kind"]]] | None = None,
        core: Any = None,
    ) -> None:
        self.name, self.namespace = check_name(name, namespace)
        self.api, self.publish, self.core = api, publish, core
        self.merge_api = merge_api if merge_api is not None else api
        self.image, self.profile, self.where = image, profile, where
        self._template_fn = template

    def template(self) -> tuple[str | None, Literal["standard", "kind"]]:
        """The image and profile an apply uses (asked for once, when the first apply needs them)."""
        if self._template_fn is not None:
            self.image, self.profile = self._template_fn()
            self._template_fn = None
        return self.image, self.profile

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        context: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        record: Any = None,
    ) -> KServeTraffic:
        """The real client: the kubeconfig ``context`` (in a pod without one: the in-cluster config).

        Publishing uses the MLflow registry and, in a pod, the store of ``settings`` (``models_bucket``). On the
        host (:mod:`chicago_arrest.release.cluster`) image and profile come from the cluster's ConfigMap (else
        the cluster ``record``), and a version is published to the cluster's MinIO through the record's
        ``s3_endpoint`` with the steps' keys, or the write is refused.

        Raises:
            ReleaseError: If no Kubernetes configuration can be loaded.
        """
        from kubernetes import client, config

        class ServerSideApplyClient(client.ApiClient):
            """Sends every PATCH as server-side apply (kubernetes 30.1 picks merge-patch for custom objects)."""

            def select_header_content_type(self, content_types: list[str]) -> str:
                if "application/merge-patch+json" in content_types:
                    return APPLY_PATCH
                return str(super().select_header_content_type(content_types))

        class MergePatchClient(client.ApiClient):
            """Sends every PATCH as a JSON merge patch (RFC 7386: ``null`` removes a field)."""

            def select_header_content_type(self, content_types: list[str]) -> str:
                if "application/merge-patch+json" in content_types:
                    return MERGE_PATCH
                return str(super().select_header_content_type(content_types))

        configuration = client.Configuration()
        in_cluster = context is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                # KUBECONFIG as it is now (the client reads it once, at import); None: ~/.kube/config.
                kubeconfig = os.environ.get("KUBECONFIG") or None
                config.load_kube_config(kubeconfig, context=context, client_configuration=configuration)
        except (config.ConfigException, OSError) as exc:
            source = (
                "in-cluster" if in_cluster else f"context {context}" if context else "the current context"
            )
            raise ReleaseError(
                f"no Kubernetes configuration ({source}): {exc} (set KUBECONFIG, pass --context, or make kind-up)"
            ) from exc

        from chicago_arrest.release import cluster

        core = client.CoreV1Api(client.ApiClient(configuration))
        config_cache: list[cluster.StepConfig] = []

        def step_config() -> cluster.StepConfig:
            if not config_cache:
                config_cache.append(cluster.read_step_config(core))
            return config_cache[0]

        def publish(version: str) -> str:
            from chicago_arrest.core.store import make_store
            from chicago_arrest.registry import models as registry

            prefix = model_prefix(version)
            if in_cluster:
                store, bucket = make_store(settings, bucket=settings.models_bucket), settings.models_bucket
            else:
                try:
                    store, bucket = cluster.host_models_store(settings, core, step_config, record)
                except ReleaseError as exc:
                    raise ReleaseError(
                        f"cannot publish version {version} from this host to s3://{settings.models_bucket}/"
                        f"{prefix}/, where the predictor would read it: {exc}"
                    ) from exc
            registry.publish_model_version(registry.configure_mlflow(settings), str(version), store, prefix)
            return f"s3://{bucket}/{prefix}/"

        def template() -> tuple[str | None, Literal["standard", "kind"]]:
            return cluster.host_template(settings, step_config, record)

        return cls(
            client.CustomObjectsApi(ServerSideApplyClient(configuration)),
            publish,
            name=name or names.ISVC_NAME,
            namespace=namespace or names.MODELS_NAMESPACE,
            image=settings.serving_image,
            profile=settings.serving_profile,
            where="in-cluster" if in_cluster else f"context {context}" if context else "the current context",
            merge_api=client.CustomObjectsApi(MergePatchClient(configuration)),
            template=None if in_cluster else template,
            core=core,
        )

    def watch(self) -> Any:
        """A :class:`~chicago_arrest.release.rollout.RolloutWatch` of this InferenceService (rollout waits)."""
        from chicago_arrest.release.rollout import RolloutWatch

        return RolloutWatch(self.api, self.core, self.name, self.namespace)

    # --- API calls ------------------------------------------------------------------------------------------

    def _call(self, verb: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API; turn its failures into one ReleaseError by HTTP status."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        what = f"{verb} InferenceService {self.namespace}/{self.name} ({self.where})"
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and verb == "get":
                raise
            hint = {
                401: "the credentials were refused: log in again or check the kubeconfig",
                403: f"forbidden: this identity may not {verb} inferenceservices.serving.kserve.io in namespace "
                f"{self.namespace} (RBAC in manifests/platform/models.yaml)",
                404: "the API has no inferenceservices.serving.kserve.io: is KServe installed (make kind-up)?",
                409: "conflict: retry",
                422: "the API refused the object (invalid)",
            }.get(exc.status or 0, f"the API answered {exc.status} {exc.reason}")
            raise ReleaseError(f"cannot {what}: {hint}") from exc
        except (HTTPError, OSError) as exc:
            raise ReleaseError(f"cannot {what}: the cluster is unreachable ({exc})") from exc

    def _get(self) -> Obj | None:
        from kubernetes.client.exceptions import ApiException

        try:
            obj: Obj = self._call("get", self.api.get_namespaced_custom_object, *self._where_isvc())
        except ApiException:  # 404 only: _call turns every other failure into a ReleaseError
            return None
        return obj

    def _apply(self, obj: Obj) -> Obj:
        patch = self.api.patch_namespaced_custom_object
        kwargs = {"field_manager": FIELD_MANAGER, "force": True}
        applied: Obj = self._call("apply", patch, *self._where_isvc(), obj, **kwargs)
        return applied

    def _patch_percent(self, percent: int | None) -> Obj:
        """Patch ``spec.predictor.canaryTrafficPercent`` alone (``None`` removes it): traffic moves, no revision."""
        body = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        patch = self.merge_api.patch_namespaced_custom_object
        patched: Obj = self._call("patch", patch, *self._where_isvc(), body, field_manager=FIELD_MANAGER)
        return patched

    def _where_isvc(self) -> tuple[str, str, str, str, str]:
        return GROUP, VERSION, self.namespace, PLURAL, self.name

    def _revision_versions(self, isvc: Mapping[str, Any]) -> tuple[dict[str, str | None], list[str]]:
        """``{revision: version}`` of the revisions that get traffic or were rolled out, best effort."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
        wanted = {t.get("revisionName") for t in predictor.get("traffic") or []}
        wanted.add(predictor.get("latestRolledoutRevision"))
        versions: dict[str, str | None] = {}
        notes = []
        for revision in sorted(r for r in wanted if r):
            where = (KNATIVE_GROUP, KNATIVE_VERSION, self.namespace, REVISIONS, revision)
            try:
                obj = self.api.get_namespaced_custom_object(*where, _request_timeout=REQUEST_TIMEOUT)
            except (ApiException, HTTPError, OSError) as exc:
                why = f"HTTP {exc.status}" if isinstance(exc, ApiException) else f"unreachable: {exc}"
                notes.append(f"could not read Knative revision {revision} ({why})")
                continue
            containers = (obj.get("spec") or {}).get("containers") or []
            versions[revision] = next(
                (v for c in containers if (v := _env(c, names.MODEL_VERSION_ENV)) is not None), None
            )
        return versions, notes

    # --- Traffic --------------------------------------------------------------------------------------------

    def _split(self, isvc: Mapping[str, Any]) -> Split:
        summary = summarize(isvc)
        version, percent = summary["spec_model_version"], summary["canary_percent"]
        if not version:
            raise ReleaseError(
                f"InferenceService {self.namespace}/{self.name} has no {names.MODEL_VERSION_ENV}: "
                "it was not deployed by this project"
            )
        rolled_out = summary["latest_rolled_out_revision"]
        if percent is None or int(percent) >= 100 or not rolled_out:
            return Split(version)  # no canary, or no earlier revision: the latest gets everything
        # The rolled-out revision serves the champion; read its version (the status may still lag the spec).
        versions, notes = self._revision_versions(isvc)
        champion = versions.get(rolled_out)
        if champion is None and rolled_out == summary["latest_created_revision"]:
            champion = version  # unreadable, but it is the latest revision: it runs the spec
        if champion is None:
            raise ReleaseError(
                f"cannot tell which version the rolled-out revision {rolled_out} serves "
                f"({'; '.join(notes) or 'no ' + names.MODEL_VERSION_ENV}); the identity needs get on "
                "revisions.serving.knative.dev"
            )
        return Split(version) if champion == version else Split(champion, version, int(percent))

    def read(self) -> Split | None:
        """The split in force, or ``None`` when the InferenceService does not exist yet."""
        isvc = self._get()
        return None if isvc is None else self._split(isvc)

    def write(self, split: Split) -> str:
        """Apply ``split``; publish the version to serve first if the predictor does not serve it yet.

        A canary needs the champion's revision rolled out. When the InferenceService does not serve the
        champion (it does not exist yet, or serves another version), the champion is applied alone and a
        :class:`ReleaseError` says to re-run once its revision is ready.
        """
        isvc = self._get()
        current = None if isvc is None else self._split(isvc)
        if split.challenger is not None and (current is None or current.champion != split.champion):
            self._write(isvc, Split(split.champion))
            served = "nothing" if current is None else current.describe()
            raise ReleaseError(
                f"InferenceService {self.namespace}/{self.name} served {served}, not champion "
                f"{split.champion}: it now serves champion {split.champion} alone. A canary needs that "
                "revision rolled out: re-run once `make status TARGET=cluster` shows it ready"
            )
        return self._write(isvc, split)

    def _write(self, isvc: Obj | None, split: Split) -> str:
        version = split.challenger or split.champion
        percent = split.canary_percent if split.challenger else None
        served = summarize(isvc) if isvc is not None else {}
        live = served.get("canary_percent")
        live = None if live is None or int(live) >= 100 else int(live)  # 100: the champion alone, as no field
        if served.get("spec_model_version") == version and served.get("storage_uri"):
            storage_uri = served["storage_uri"]  # already published and served: no copy, no new revision
            if live != percent:
                self._patch_percent(percent)
        else:
            storage_uri = self.publish(version)
            image, profile = self.template()
            obj = render(
                version,
                storage_uri,
                canary_percent=percent,
                name=self.name,
                namespace=self.namespace,
                image=image,
                profile=profile,
            )
            if percent is None and served.get("canary_percent") is not None:
                obj["spec"]["predictor"]["canaryTrafficPercent"] = 100  # owned by a patch: see the module doc
            self._apply(obj)
        where = f"InferenceService {self.namespace}/{self.name}"
        if split.challenger is None:
            return f"{where}: serves champion {version} ({storage_uri}), 100%"
        return (
            f"{where}: serves challenger {version} ({storage_uri}) at canaryTrafficPercent "
            f"{split.canary_percent}; the rolled-out revision (champion {split.champion}) gets the rest"
        )

    def details(self) -> dict[str, Any]:
        """URL, readiness, spec, and each revision with its registry version and share of traffic."""
        isvc = self._get()
        if isvc is None:
            return {"name": self.name, "namespace": self.namespace, "exists": False, "where": self.where}
        versions, notes = self._revision_versions(isvc)
        summary = summarize(isvc, versions)
        if summary["latest_created_revision"] != summary["latest_ready_revision"]:
            # the newest revision is not serving yet: say why (its conditions, its pods' state)
            summary["pending"] = self.watch().check()[1]
        summary["notes"] = notes
        summary["where"] = self.where
        return summary
