"""KServeTraffic: against a recording CustomObjectsApi, and through the real client against a fake API server.

What it applies for deploy, canary, widen, rollback and promote (always the hand-written base, validated against
the KServe CRD), what it reads back from a realistic status, and how API failures become one ReleaseError.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from chicago_arrest.core import names
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.settings import Settings
from chicago_arrest.registry.state import Split
from chicago_arrest.release import kserve
from chicago_arrest.release.kserve import KServeTraffic
from tests.code.test_manifests import crd_errors, rendered
from tests.fake_kube import (
    CONFIG_MAP_PATH,
    ISVC_PATH,
    REVISION_PATH,
    fake_kube,
    merge_patch,
)

IMAGE = "registry.local/chicago-arrest:test"

# ------------------------------------------------------------------------------------------------------------
# KServeTraffic against a recording CustomObjectsApi
# ------------------------------------------------------------------------------------------------------------

REV = [f"{names.ISVC_NAME}-predictor-0000{n}" for n in range(4)]


def revision(version: str) -> dict[str, Any]:
    """A Knative revision of the predictor serving ``version``."""
    env = [{"name": names.MODEL_VERSION_ENV, "value": version}]
    return {"spec": {"containers": [{"name": "kserve-container", "env": env}, {"name": "queue-proxy"}]}}


def rolled_out(latest: str, champion_revision: str | None, percent: int | None) -> dict[str, Any]:
    """What KServe writes into ``status`` once ``latest`` is ready and gets ``percent`` (None: 100)."""
    traffic = [
        {"revisionName": latest, "percent": 100 if percent is None else percent, "latestRevision": True}
    ]
    if percent is not None and champion_revision and champion_revision != latest:
        traffic[0]["tag"] = "latest"
        traffic.append(
            {
                "revisionName": champion_revision,
                "percent": 100 - percent,
                "latestRevision": False,
                "tag": "prev",
            }
        )
    return {
        "url": f"http://{names.ISVC_NAME}.models.example.com",
        "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestCreatedRevision": latest,
                "latestReadyRevision": latest,
                "latestRolledoutRevision": champion_revision or latest,
                "traffic": traffic,
            }
        },
    }


class RecordingApi:
    """Stands in for ``kubernetes.client.CustomObjectsApi``: one InferenceService and its Knative revisions."""

    def __init__(self, isvc: dict[str, Any] | None = None) -> None:
        self.isvc = copy.deepcopy(isvc)
        self.revisions: dict[str, dict[str, Any]] = {}
        self.applied: list[dict[str, Any]] = []
        self.patched: list[dict[str, Any]] = []  # merge patches of canaryTrafficPercent alone
        self.writes: list[str] = []  # "apply" / "patch", in order
        self.kwargs: list[dict[str, Any]] = []
        self.errors: dict[str, int] = {}  # "get" / "apply" / "revisions" -> HTTP status

    def _fail(self, what: str) -> None:
        if what in self.errors:
            raise ApiException(status=self.errors[what], reason="Test")

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        assert kwargs.keys() == {"_request_timeout"}
        if plural == "revisions":
            self._fail("revisions")
            if name not in self.revisions:
                raise ApiException(status=404, reason="Not Found")
            return self.revisions[name]
        assert (group, version, namespace, plural, name) == (
            "serving.kserve.io", "v1beta1", "models", "inferenceservices", names.ISVC_NAME
        )  # fmt: skip
        self._fail("get")
        if self.isvc is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.isvc)

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body, **kwargs):
        assert (group, version, namespace, plural, name) == (
            "serving.kserve.io", "v1beta1", "models", "inferenceservices", names.ISVC_NAME
        )  # fmt: skip
        if "force" not in kwargs:  # a JSON merge patch (only an apply is forced)
            self._fail("patch")
            assert self.isvc is not None
            self.patched.append(copy.deepcopy(body))
            self.writes.append("patch")
            self.isvc = merge_patch(self.isvc, body)
            return self.isvc
        self._fail("apply")
        self.applied.append(copy.deepcopy(body))
        self.writes.append("apply")
        self.kwargs.append(kwargs)
        status = (self.isvc or {}).get("status")
        self.isvc = copy.deepcopy(body) | ({"status": status} if status else {})
        return self.isvc

    def roll_out(self, revision_name: str, champion_revision: str | None, percent: int | None) -> None:
        """KServe's part: the spec became ``revision_name``; the champion's revision keeps the rest."""
        assert self.isvc is not None
        env = {e["name"]: e["value"] for e in self.isvc["spec"]["predictor"]["containers"][0]["env"]}
        self.revisions[revision_name] = revision(env[names.MODEL_VERSION_ENV])
        self.isvc["status"] = rolled_out(revision_name, champion_revision, percent)


class Publisher:
    def __init__(self) -> None:
        self.versions: list[str] = []

    def __call__(self, version: str) -> str:
        self.versions.append(version)
        return f"s3://models/arrest-predictor/v{version}/"


def traffic(api: RecordingApi, publish: Publisher | None = None) -> KServeTraffic:
    return KServeTraffic(api, publish or Publisher(), image=IMAGE, profile="kind", where="context test")


def _env(obj: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in obj["spec"]["predictor"]["containers"][0]["env"]}


def _with_image(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["spec"]["predictor"]["containers"][0]["image"] = IMAGE
    return obj


def test_first_deploy_creates_the_kind_overlay_with_the_run_image() -> None:
    api, publish = RecordingApi(), Publisher()
    line = traffic(api, publish).write(Split("1"))
    assert publish.versions == ["1"]
    (body,) = api.applied
    (kind,) = rendered("overlays/kind")
    assert body == _with_image(kind)  # the hand-written base, changed exactly like overlays/kind + image
    assert "canaryTrafficPercent" not in body["spec"]["predictor"]
    assert api.kwargs == [{"field_manager": "chicago-arrest", "force": True, "_request_timeout": (10, 60)}]
    assert crd_errors(body) == []
    assert "serves champion 1 (s3://models/arrest-predictor/v1/), 100%" in line


def test_canary_widen_rollback_promote() -> None:
    api, publish = RecordingApi(), Publisher()
    cluster = traffic(api, publish)
    cluster.write(Split("1"))
    api.roll_out(REV[1], None, None)
    assert cluster.read() == Split("1")

    # canary: the challenger is published and becomes the spec; 10 % to it, the rolled-out v1 keeps 90 %
    line = cluster.write(Split("1", "2", 10))
    assert publish.versions == ["1", "2"]
    (canary,) = rendered("overlays/canary")
    assert api.applied[-1] == _with_image(canary)
    assert crd_errors(api.applied[-1]) == []
    assert "challenger 2" in line
    assert "canaryTrafficPercent 10" in line
    assert cluster.read() == Split("1", "2", 10)  # before KServe's status catches up, too
    api.roll_out(REV[2], REV[1], 10)
    assert cluster.read() == Split("1", "2", 10)

    # widen: the same model, only the percentage changes: canaryTrafficPercent alone is patched (no new copy,
    # no new revision whatever this process's image or profile)
    applies = len(api.applied)
    cluster.write(Split("1", "2", 50))
    assert publish.versions == ["1", "2"]
    assert api.patched[-1] == {"spec": {"predictor": {"canaryTrafficPercent": 50}}}
    api.roll_out(REV[2], REV[1], 50)
    assert cluster.read() == Split("1", "2", 50)

    # rollback: p = 0, everything back to the champion's revision
    cluster.write(Split("1", "2", 0))
    assert api.patched[-1] == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    api.roll_out(REV[2], REV[1], 0)
    assert cluster.read() == Split("1", "2", 0)

    # promote: the challenger (already the spec) serves alone: canaryTrafficPercent is removed (null)
    cluster.write(Split("2"))
    assert api.patched[-1] == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    assert "canaryTrafficPercent" not in api.isvc["spec"]["predictor"]
    assert _env(api.isvc)[names.MODEL_VERSION_ENV] == "2"
    assert publish.versions == ["1", "2"]
    assert len(api.applied) == applies  # no apply since the canary started: the template never changed
    api.roll_out(REV[2], None, None)
    assert cluster.read() == Split("2")
    for body in api.applied:
        assert crd_errors(body) == []
    assert crd_errors(api.isvc | {"status": {}}) == []


def test_writing_the_split_in_force_sends_nothing() -> None:
    api = RecordingApi()
    cluster = traffic(api)
    cluster.write(Split("1"))
    api.roll_out(REV[1], None, None)
    cluster.write(Split("1"))
    assert len(api.applied) == 1
    assert api.patched == []


def test_an_apply_over_a_patched_percentage_states_100() -> None:
    """A percentage last set by a merge patch (or `kubectl patch`) is not owned by the apply, which then would not
    remove it: a champion-alone apply over it says 100, which KServe routes like no field at all."""
    api = RecordingApi()
    cluster = traffic(api)
    cluster.write(Split("1"))
    api.roll_out(REV[1], None, None)
    cluster.write(Split("1", "2", 10))
    api.roll_out(REV[2], REV[1], 10)
    cluster.write(Split("1", "2", 30))  # a patch
    api.roll_out(REV[2], REV[1], 30)
    cluster.write(Split("3"))  # a pinned version: a new model, so an apply
    body = api.applied[-1]
    assert body["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert _env(body)[names.MODEL_VERSION_ENV] == "3"
    assert crd_errors(body) == []
    api.roll_out(REV[3], None, None)
    assert cluster.read() == Split("3")
    assert cluster.details()["canary_percent"] == 100


def test_standard_profile_and_names() -> None:
    api = RecordingApi()
    KServeTraffic(api, Publisher()).write(Split("3"))
    (body,) = api.applied
    base = kserve.base_inference_service()
    container = body["spec"]["predictor"]["containers"][0]
    assert container["resources"] == base["spec"]["predictor"]["containers"][0]["resources"]
    assert container["image"] == names.DEFAULT_IMAGE
    assert _env(body)["STORAGE_URI"] == "s3://models/arrest-predictor/v3/"


def test_canary_without_the_champion_serving_applies_the_champion_first() -> None:
    api, publish = RecordingApi(), Publisher()
    with pytest.raises(ReleaseError, match="served nothing, not champion 4: it now serves champion 4 alone"):
        traffic(api, publish).write(Split("4", "5", 10))
    assert publish.versions == ["4"]
    (body,) = api.applied
    assert _env(body)[names.MODEL_VERSION_ENV] == "4"
    assert "canaryTrafficPercent" not in body["spec"]["predictor"]


def test_details_of_a_canary() -> None:
    api = RecordingApi()
    cluster = traffic(api)
    cluster.write(Split("6"))
    api.roll_out(REV[1], None, None)
    cluster.write(Split("6", "7", 10))
    api.roll_out(REV[2], REV[1], 10)
    details = cluster.details()
    assert details["url"] == "http://arrest-predictor.models.example.com"
    assert details["ready"] is True
    assert details["canary_percent"] == 10
    assert details["spec_model_version"] == "7"
    assert [(r["revision"], r["percent"], r["model_version"], r["latest"]) for r in details["revisions"]] == [
        (REV[2], 10, "7", True),
        (REV[1], 90, "6", False),
    ]
    assert details["notes"] == []


def test_details_when_revisions_cannot_be_read_and_not_ready() -> None:
    api = RecordingApi()
    cluster = traffic(api)
    cluster.write(Split("6"))
    api.roll_out(REV[1], None, None)
    cluster.write(Split("6", "7", 10))
    api.roll_out(REV[2], REV[1], 10)
    api.isvc["status"]["conditions"][1] = {"type": "Ready", "status": "False", "reason": "RevisionFailed"}
    api.errors["revisions"] = 403
    details = cluster.details()
    assert details["ready"] is False
    assert details["ready_message"] == "RevisionFailed"
    assert [r["model_version"] for r in details["revisions"]] == ["7", None]  # the latest runs the spec
    assert details["notes"] == [
        f"could not read Knative revision {REV[1]} (HTTP 403)",
        f"could not read Knative revision {REV[2]} (HTTP 403)",
    ]
    with pytest.raises(ReleaseError, match="cannot tell which version the rolled-out revision"):
        cluster.read()


def test_missing_inference_service() -> None:
    cluster = traffic(RecordingApi())
    assert cluster.read() is None
    assert cluster.details() == {
        "name": "arrest-predictor",
        "namespace": "models",
        "exists": False,
        "where": "context test",
    }


@pytest.mark.parametrize(
    ("what", "status", "message"),
    [
        (
            "get",
            403,
            "forbidden: this identity may not get inferenceservices.serving.kserve.io in namespace models",
        ),
        ("get", 401, "the credentials were refused"),
        ("get", 500, "the API answered 500 Test"),
        ("apply", 403, "forbidden: this identity may not apply"),
        ("apply", 404, "is KServe installed"),
        ("apply", 422, "refused the object"),
    ],
)
def test_api_errors_by_status(what: str, status: int, message: str) -> None:
    api = RecordingApi()
    api.errors[what] = status
    with pytest.raises(ReleaseError, match=re.escape(message)) as info:
        traffic(api).write(Split("1"))
    assert "InferenceService models/arrest-predictor (context test)" in str(info.value)
    assert isinstance(info.value.__cause__, ApiException)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Arrest_Predictor"}, "invalid InferenceService name"),
        ({"name": "a" * 47}, "at most 46 characters"),
        ({"name": "9lives"}, "starting with a letter"),
        ({"namespace": "Models"}, "invalid namespace"),
    ],
)
def test_names_are_checked(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ReleaseError, match=message):
        KServeTraffic(RecordingApi(), Publisher(), **kwargs)


@pytest.mark.parametrize("version", ["0", "-1", "v3", "", "1.5"])
def test_versions_are_checked(version: str) -> None:
    with pytest.raises(ReleaseError, match="positive integer"):
        kserve.model_prefix(version)
    assert kserve.model_prefix(" 12 ") == "arrest-predictor/v12"


def test_storage_uri_must_be_a_folder() -> None:
    with pytest.raises(ReleaseError, match="ending in '/'"):
        kserve.render("1", "s3://models/arrest-predictor/v1")


# ------------------------------------------------------------------------------------------------------------
# from_settings: the real client, over HTTP, against a fake API server
# ------------------------------------------------------------------------------------------------------------


def _canary_objects() -> dict[str, dict[str, Any]]:
    isvc = kserve.render("2", "s3://models/arrest-predictor/v2/", canary_percent=10, profile="kind")
    isvc["spec"]["predictor"]["containers"][0]["image"] = IMAGE
    isvc["status"] = rolled_out(REV[2], REV[1], 10)
    path = ISVC_PATH.format(namespace="models", name=names.ISVC_NAME)
    revisions = {REVISION_PATH.format(namespace="models", name=REV[n]): revision(str(n)) for n in (1, 2)}
    return {path: isvc, **revisions}


def _settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ARREST_SERVING_IMAGE", IMAGE)
    monkeypatch.setenv("ARREST_SERVING_PROFILE", "kind")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return Settings()


def test_from_settings_patches_only_the_percentage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Widening a canary from the host: one merge patch of canaryTrafficPercent, nothing else read or sent."""
    settings = _settings(monkeypatch)
    with fake_kube(_canary_objects()) as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "config", context="kind-test")))
        cluster = KServeTraffic.from_settings(settings, context="kind-test")
        assert cluster.read() == Split("1", "2", 10)
        kube.requests.clear()
        cluster.write(Split("1", "2", 50))  # the spec already serves v2: nothing to publish
        assert cluster.details()["canary_percent"] == 50
    path = ISVC_PATH.format(namespace="models", name=names.ISVC_NAME)
    (patch,) = [r for r in kube.requests if r.method == "PATCH"]
    assert patch.path == path
    assert patch.content_type == "application/merge-patch+json"
    assert patch.query == {
        "fieldManager": ["chicago-arrest"]
    }  # no force: the API refuses it on a merge patch
    assert patch.body == {"spec": {"predictor": {"canaryTrafficPercent": 50}}}
    assert [r.method for r in kube.requests if r.path == path] == ["GET", "PATCH", "GET"]
    assert not any("/configmaps/" in r.path or "/secrets/" in r.path for r in kube.requests)


def _step_config(image: str, profile: str = "kind") -> dict[str, Any]:
    path = CONFIG_MAP_PATH.format(namespace=names.KFP_NAMESPACE, name=names.STEP_CONFIG_MAP)
    data = {
        "ARREST_SERVING_IMAGE": image,
        "ARREST_SERVING_PROFILE": profile,
        "ARREST_MODELS_BUCKET": "models",
    }
    return {path: {"apiVersion": "v1", "kind": "ConfigMap", "data": data}}


@pytest.mark.parametrize("source", ["configmap", "record"])
def test_host_applies_take_image_and_profile_from_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Issue 25: a host's settings (profile standard, image chicago-arrest:<version>) never reach the template."""
    from chicago_arrest.core.targets import ClusterRecord

    for key in ("ARREST_SERVING_IMAGE", "ARREST_SERVING_PROFILE", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert (settings.serving_image, settings.serving_profile) == (names.DEFAULT_IMAGE, "standard")
    objects = _canary_objects()
    record = ClusterRecord(
        cluster_name="test", context="kind-test", kfp_host="http://x", image="registry.local/from-record:2"
    )
    if source == "configmap":
        objects |= _step_config("registry.local/from-configmap:1")
        record = record.model_copy(update={"serving_profile": "standard"})  # the ConfigMap wins
    else:
        record = record.model_copy(update={"serving_profile": "kind"})
    with fake_kube(objects) as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "config", context="kind-test")))
        cluster = KServeTraffic.from_settings(settings, context="kind-test", record=record)
        cluster.publish = Publisher()
        cluster.write(Split("3"))  # a pinned version: a new model, an apply
    (apply,) = [r for r in kube.requests if r.method == "PATCH"]
    assert apply.content_type == "application/apply-patch+yaml"
    container = apply.body["spec"]["predictor"]["containers"][0]
    expected = "registry.local/from-configmap:1" if source == "configmap" else "registry.local/from-record:2"
    assert container["image"] == expected
    assert container["resources"] == kserve.kind_resources()
    assert apply.body["spec"]["predictor"]["canaryTrafficPercent"] == 100  # a canary was live: see kserve.py
    assert crd_errors(apply.body) == []


def test_from_settings_without_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ReleaseError, match="no Kubernetes configuration"):
        KServeTraffic.from_settings(settings)
    with fake_kube() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "config")))
        with pytest.raises(ReleaseError, match="no Kubernetes configuration \\(context nope\\)"):
            KServeTraffic.from_settings(settings, context="nope")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # a pod without a service account token
    with pytest.raises(ReleaseError, match="no Kubernetes configuration \\(in-cluster\\)"):
        KServeTraffic.from_settings(settings)


def test_unreachable_cluster_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch)
    with fake_kube() as kube:
        config = kube.kubeconfig(tmp_path / "config")
    monkeypatch.setenv("KUBECONFIG", str(config))  # the server is gone
    cluster = KServeTraffic.from_settings(settings)
    with pytest.raises(ReleaseError, match="the cluster is unreachable"):
        cluster.read()


def test_import_loads_no_kubernetes_client() -> None:
    """The local target and the model server import chicago_arrest.release without paying for the client."""
    import subprocess
    import sys

    code = "import sys, chicago_arrest.release.kserve; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
