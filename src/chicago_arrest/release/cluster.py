"""What a serving verb run on the host needs to write the cluster's InferenceService as the deploy step does.

The pipeline's deploy step runs in a pod whose environment is the ConfigMap ``kubeflow/chicago-arrest-config`` and
the Secret ``kubeflow/chicago-arrest-s3`` (``kind-cluster/up.sh`` writes both): the predictor image the cluster
was installed with, the ``kind`` serving profile, and an S3 store on MinIO. ``make canary|promote|rollback`` run
on the host, whose own settings are the local ones (profile ``standard``, image ``chicago-arrest:<version>``, a
local store). Applying an InferenceService built from those would change the pod template, and KServe copies
the template into the Knative Service (``pkg/controller/v1beta1/inferenceservice/reconcilers/knative/
ksvc_reconciler.go`` @ kserve v0.20.0), where every change of it is a new revision
(``pkg/reconciler/configuration/resources/revision.go`` @ knative/serving knative-v1.21.1): 1 CPU / 1 Gi requests,
and an image the node may not have. And a version published to the host's local store is not where
``STORAGE_URI`` (``s3://models/...`` on MinIO) points.

So on the host (:func:`host_template`, :func:`host_models_store`):

* image and profile: what the user set explicitly (``ARREST_SERVING_IMAGE`` / ``ARREST_SERVING_PROFILE``), else
  the ConfigMap's, else the cluster record's (``make kind-up``'s ``.data/cluster.json``), else the settings';
* publishing: through MinIO's host port (the record's ``s3_endpoint``) with the pipeline steps' keys from the
  Secret, into the ConfigMap's models bucket; without them it refuses with one line that says what is missing.
  Explicit ``ARREST_STORE_BACKEND=s3`` settings win.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from chicago_arrest.core import names
from chicago_arrest.core.errors import ReleaseError

if TYPE_CHECKING:
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.core.store import ObjectStore
    from chicago_arrest.core.targets import ClusterRecord

Profile = Literal["standard", "kind"]
#: ``(connect, read)`` seconds per API request.
REQUEST_TIMEOUT = (10, 60)
#: Keys of the steps' Secret (``chicago_arrest.pipelines.training.SECRET_KEYS``; a test checks they agree).
ACCESS_KEY, SECRET_KEY = "ARREST_S3_ACCESS_KEY", "ARREST_S3_SECRET_KEY"


@dataclass
class StepConfig:
    """The pipeline steps' ConfigMap as the host reads it (empty when it could not be read, with the reason).

    Attributes:
        data: Its ``data``.
        problem: Why it could not be read, or ``None``.
    """

    data: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    @property
    def where(self) -> str:
        """The ConfigMap's name, for messages."""
        return f"ConfigMap {names.KFP_NAMESPACE}/{names.STEP_CONFIG_MAP}"


def _why(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else f"unreachable ({exc})"


def read_step_config(core: Any) -> StepConfig:
    """The ConfigMap ``kubeflow/chicago-arrest-config`` through ``core`` (a ``CoreV1Api``); never raises."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        obj = core.read_namespaced_config_map(
            names.STEP_CONFIG_MAP, names.KFP_NAMESPACE, _request_timeout=REQUEST_TIMEOUT
        )
    except (ApiException, HTTPError, OSError) as exc:
        return StepConfig(problem=_why(exc))
    return StepConfig(dict(getattr(obj, "data", None) or {}))


def host_template(
    settings: Settings, config: Callable[[], StepConfig], record: ClusterRecord | None
) -> tuple[str, Profile]:
    """The predictor's image and profile for a write from the host (see the module's docstring for the order)."""
    explicit = settings.model_fields_set
    image = settings.serving_image if "serving_image" in explicit else None
    profile: str | None = settings.serving_profile if "serving_profile" in explicit else None
    if image is None or profile is None:
        data = config().data
        image = image or data.get("ARREST_SERVING_IMAGE") or (record.image if record else None)
        profile = (
            profile or data.get("ARREST_SERVING_PROFILE") or (record.serving_profile if record else None)
        )
    profile = profile or settings.serving_profile
    if profile not in ("standard", "kind"):
        raise ReleaseError(f"serving profile {profile!r} is not one of standard, kind")
    return image or settings.serving_image, cast(Profile, profile)


def host_models_store(
    settings: Settings,
    core: Any,
    config: Callable[[], StepConfig],
    record: ClusterRecord | None,
) -> tuple[ObjectStore, str]:
    """The models bucket of the cluster's MinIO, reached from the host, and the bucket's name.

    Raises:
        ReleaseError: When the endpoint or the keys cannot be had: the message says which and what to do.
    """
    from chicago_arrest.core.settings import Settings as SettingsClass
    from chicago_arrest.core.store import make_store

    bucket = config().data.get("ARREST_MODELS_BUCKET") or settings.models_bucket
    if settings.store_backend == "s3" and "store_backend" in settings.model_fields_set:
        return make_store(settings, bucket=bucket), bucket  # the user named the store
    endpoint = record.s3_endpoint if record else None
    if not endpoint:
        raise ReleaseError(
            "no MinIO endpoint from this host: `make kind-up` records it in .data/cluster.json (s3_endpoint); "
            "or set ARREST_STORE_BACKEND=s3 ARREST_S3_ENDPOINT=host:port ARREST_S3_ACCESS_KEY=... "
            "ARREST_S3_SECRET_KEY=..."
        )
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    where = f"Secret {names.KFP_NAMESPACE}/{names.STEP_SECRET}"
    try:
        secret = core.read_namespaced_secret(
            names.STEP_SECRET, names.KFP_NAMESPACE, _request_timeout=REQUEST_TIMEOUT
        )
    except (ApiException, HTTPError, OSError) as exc:
        raise ReleaseError(f"cannot read the steps' MinIO keys ({where}): {_why(exc)}") from exc
    data = dict(getattr(secret, "data", None) or {})
    if not data.get(ACCESS_KEY) or not data.get(SECRET_KEY):
        raise ReleaseError(f"{where} has no {ACCESS_KEY} / {SECRET_KEY}: re-run `make kind-up`")
    keys = {k: base64.b64decode(data[k]).decode() for k in (ACCESS_KEY, SECRET_KEY)}
    cluster = SettingsClass(
        store_backend="s3",
        s3_endpoint=endpoint,
        s3_access_key=keys[ACCESS_KEY],
        s3_secret_key=keys[SECRET_KEY],  # type: ignore[arg-type]
        s3_secure=False,
        s3_region=settings.s3_region,
        models_bucket=bucket,
    )
    return make_store(cluster, bucket=bucket), bucket
