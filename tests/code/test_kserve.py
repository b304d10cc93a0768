"""manifests/ against the real KServe v0.20.0 CRD, and KServeTraffic against a recording API.

The YAML under manifests/ is hand-written; these tests check that every InferenceService in it (the files and
every rendered kustomization) validates, that the deploy path applies the same base (package data), and what
:class:`KServeTraffic` sends for deploy, canary, rollback and promote.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from chicago_arrest import names
from chicago_arrest.release import kserve
from chicago_arrest.release.base import ReleaseError, Split
from chicago_arrest.release.kserve import KServeTraffic
from chicago_arrest.settings import Settings
from tests.code import kustomize_lite
from tests.fake_kube import ISVC_PATH, REVISION_PATH, fake_kube

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "tests" / "data" / "crds"
SHARED_SCHEMAS = REPO_ROOT.parent / "shared" / "schemas"
MANIFESTS = REPO_ROOT / "manifests"
RESOURCES = REPO_ROOT / "src" / "chicago_arrest" / "resources"
KUSTOMIZATIONS = ["base", "overlays/kind", "overlays/canary", "platform"]
CRD_FILES = {
    "InferenceService": "kserve-v0.20.0-serving.kserve.io_inferenceservices.yaml",
    "ServingRuntime": "kserve-v0.20.0-serving.kserve.io_servingruntimes.yaml",
    "ClusterServingRuntime": "kserve-v0.20.0-serving.kserve.io_clusterservingruntimes.yaml",
}
IMAGE = "registry.local/chicago-arrest:test"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ------------------------------------------------------------------------------------------------------------
# CRD schemas
# ------------------------------------------------------------------------------------------------------------


def _crd_bytes(filename: str) -> bytes:
    return gzip.decompress((CRD_DIR / f"{filename}.gz").read_bytes())


def _sha256_table(readme: Path) -> dict[str, str]:
    return {
        name: digest
        for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+\.yaml)\s*$", readme.read_text(), flags=re.M)
    }


def tighten(schema: Any) -> Any:
    """Add ``additionalProperties: false`` to every object schema with ``properties`` (schema-aware walk)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: tighten(sub) for name, sub in out["properties"].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = tighten(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = tighten(out["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [tighten(sub) for sub in out[key]]
    return out


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    loaded = {}
    for kind, filename in CRD_FILES.items():
        crd = yaml.load(_crd_bytes(filename), Loader=_Loader)
        assert crd["spec"]["names"]["kind"] == kind
        loaded[kind] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return loaded


@pytest.fixture(scope="module")
def strict(schemas: dict[str, dict[str, Any]]) -> dict[str, jsonschema.Draft7Validator]:
    return {kind: jsonschema.Draft7Validator(tighten(schema)) for kind, schema in schemas.items()}


def crd_errors(strict: dict[str, jsonschema.Draft7Validator], obj: dict[str, Any]) -> list[str]:
    """Errors of an InferenceService against the tightened CRD, plus the rules the CRD leaves to the webhook."""
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in strict["InferenceService"].iter_errors(obj)]
    try:
        kserve.check_name(obj["metadata"]["name"], obj["metadata"]["namespace"])
        if "canaryTrafficPercent" in obj["spec"]["predictor"]:
            Split("1", "2", obj["spec"]["predictor"]["canaryTrafficPercent"])
    except ReleaseError as exc:
        errors.append(str(exc))
    return errors


def test_vendored_crds_match_recorded_sha256() -> None:
    recorded = _sha256_table(CRD_DIR / "README.md")
    assert set(recorded) == set(CRD_FILES.values())
    for filename in CRD_FILES.values():
        assert hashlib.sha256(_crd_bytes(filename)).hexdigest() == recorded[filename], filename


def test_vendored_crds_match_shared_schemas_readme() -> None:
    readme = SHARED_SCHEMAS / "README.md"
    if not readme.is_file():
        pytest.skip(f"{readme} not present (CI clone); the recorded sha256 is checked by the test above")
    shared = _sha256_table(readme)
    for filename in CRD_FILES.values():
        assert hashlib.sha256(_crd_bytes(filename)).hexdigest() == shared[filename], filename


def test_tighten_only_touches_schema_objects(schemas: dict[str, dict[str, Any]]) -> None:
    tight = tighten(schemas["InferenceService"])
    assert tight["additionalProperties"] is False
    # status keeps x-kubernetes-preserve-unknown-fields and stays open
    assert "additionalProperties" not in tight["properties"]["status"]
    # a property *named* like a keyword is a schema, not a keyword map
    model = tight["properties"]["spec"]["properties"]["predictor"]["properties"]["model"]
    assert model["additionalProperties"] is False
    assert model["properties"]["modelFormat"]["additionalProperties"] is False


def test_tightened_crd_catches_a_misspelt_field(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    obj = kserve.base_inference_service()
    obj["spec"]["predictor"]["containers"][0]["storageURI"] = "s3://x/"
    assert crd_errors(strict, obj)
    obj = kserve.base_inference_service()
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 150  # int64 for the CRD; 0..100 for us
    assert crd_errors(strict, obj)


# ------------------------------------------------------------------------------------------------------------
# manifests/: files, kustomizations, package data
# ------------------------------------------------------------------------------------------------------------


def _documents() -> list[tuple[str, Any]]:
    return [
        (str(path.relative_to(MANIFESTS)), doc)
        for path in sorted(MANIFESTS.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def test_every_inference_service_file_validates(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    isvcs = [
        (path, doc)
        for path, doc in _documents()
        if isinstance(doc, dict) and doc["kind"] == "InferenceService"
    ]
    assert [path for path, _ in isvcs] == ["base/inferenceservice.yaml"]
    for path, doc in isvcs:
        assert crd_errors(strict, doc) == [], path


def test_manifests_are_hand_written_and_hold_no_secrets() -> None:
    text = "\n".join(path.read_text() for path in MANIFESTS.rglob("*.yaml"))
    assert "Generated by" not in text
    assert "Do not edit" not in text
    assert "minio123" not in text
    assert "AWS_SECRET_ACCESS_KEY:" not in text  # only secretKeyRef keys, never values
    assert "MINIO_ROOT_PASSWORD:" not in text
    assert all(doc.get("kind") != "Secret" for _, doc in _documents() if isinstance(doc, dict))


def _rendered(kustomization: str) -> list[dict[str, Any]]:
    return kustomize_lite.build(MANIFESTS / kustomization)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_inference_service_validates(
    kustomization: str, strict: dict[str, jsonschema.Draft7Validator]
) -> None:
    for obj in _rendered(kustomization):
        if obj["kind"] == "InferenceService":
            assert crd_errors(strict, obj) == [], kustomization


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomize_lite_agrees_with_real_kustomize(kustomization: str) -> None:
    """Where kubectl is installed (not on CI), its kustomize must render what kustomize_lite renders."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH; kustomize_lite alone renders the overlays")
    proc = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / kustomization)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    real = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]

    def key(obj: dict[str, Any]) -> tuple[str, str, str]:
        return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]

    assert sorted(real, key=key) == sorted(_rendered(kustomization), key=key)


def test_overlays_are_what_a_run_applies() -> None:
    """overlays/kind and overlays/canary change exactly what KServeTraffic changes for a kind cluster."""
    (kind,) = _rendered("overlays/kind")
    (canary,) = _rendered("overlays/canary")
    assert kind == kserve.render("1", "s3://models/arrest-predictor/v1/", profile="kind")
    assert canary == kserve.render("2", "s3://models/arrest-predictor/v2/", canary_percent=10, profile="kind")
    (base,) = _rendered("base")
    assert base == kserve.base_inference_service()
    assert kserve.render("1", "s3://models/arrest-predictor/v1/") == base


def test_canary_overlay_guards_its_env_indices() -> None:
    """The canary patch addresses env entries by index; its `test` ops fail on a reordered env."""
    (base,) = _rendered("overlays/kind")
    ops = yaml.safe_load((MANIFESTS / "overlays" / "canary" / "patch-canary.yaml").read_text())
    reordered = copy.deepcopy(base)
    reordered["spec"]["predictor"]["containers"][0]["env"].reverse()
    with pytest.raises(kustomize_lite.KustomizeError, match="test failed"):
        kustomize_lite.apply_json6902(reordered, ops)


def test_kustomize_lite_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\nnamePrefix: x-\n"
    )
    with pytest.raises(kustomize_lite.KustomizeError, match="namePrefix"):
        kustomize_lite.build(tmp_path)


@pytest.mark.parametrize(
    ("packaged", "manifest"),
    [
        ("inferenceservice.yaml", "base/inferenceservice.yaml"),
        ("kind-resources.yaml", "overlays/kind/patch-resources.yaml"),
    ],
)
def test_package_data_is_the_manifest(packaged: str, manifest: str) -> None:
    from importlib import resources

    shipped = resources.files("chicago_arrest").joinpath("resources", packaged).read_bytes()
    assert shipped == (MANIFESTS / manifest).read_bytes()
    assert (RESOURCES / packaged).resolve() == (MANIFESTS / manifest).resolve()


def test_names_and_image_agree_with_the_manifests() -> None:
    base = kserve.base_inference_service()
    assert (base["metadata"]["name"], base["metadata"]["namespace"]) == (
        names.ISVC_NAME,
        names.MODELS_NAMESPACE,
    )
    container = base["spec"]["predictor"]["containers"][0]
    assert container["image"] == names.DEFAULT_IMAGE
    assert f"--model_name={names.ISVC_NAME}" in container["args"]
    assert names.MODEL_VERSION_ENV in {e["name"] for e in container["env"]}
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^IMAGE \?= (\S+)$", makefile, flags=re.M)
    assert match
    assert match.group(1) in (names.DEFAULT_IMAGE, f"{names.IMAGE_REPOSITORY}:$(VERSION)")
    (job,) = [doc for path, doc in _documents() if path == "platform/minio-buckets.yaml"]
    (buckets,) = job["spec"]["template"]["spec"]["containers"]
    assert buckets["command"] == ["chicago-arrest", "store", "ensure-buckets", *names.BUCKETS]
    assert buckets["image"] == names.DEFAULT_IMAGE


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
        self._fail("apply")
        assert (group, version, namespace, plural, name) == (
            "serving.kserve.io", "v1beta1", "models", "inferenceservices", names.ISVC_NAME
        )  # fmt: skip
        self.applied.append(copy.deepcopy(body))
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


def test_first_deploy_creates_the_kind_overlay_with_the_run_image(
    strict: dict[str, jsonschema.Draft7Validator],
) -> None:
    api, publish = RecordingApi(), Publisher()
    line = traffic(api, publish).write(Split("1"))
    assert publish.versions == ["1"]
    (body,) = api.applied
    (kind,) = _rendered("overlays/kind")
    assert body == _with_image(kind)  # the hand-written base, changed exactly like overlays/kind + image
    assert "canaryTrafficPercent" not in body["spec"]["predictor"]
    assert api.kwargs == [{"field_manager": "chicago-arrest", "force": True, "_request_timeout": (10, 60)}]
    assert crd_errors(strict, body) == []
    assert "serves champion 1 (s3://models/arrest-predictor/v1/), 100%" in line


def test_canary_widen_rollback_promote(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    api, publish = RecordingApi(), Publisher()
    cluster = traffic(api, publish)
    cluster.write(Split("1"))
    api.roll_out(REV[1], None, None)
    assert cluster.read() == Split("1")

    # canary: the challenger is published and becomes the spec; 10 % to it, the rolled-out v1 keeps 90 %
    line = cluster.write(Split("1", "2", 10))
    assert publish.versions == ["1", "2"]
    (canary,) = _rendered("overlays/canary")
    assert api.applied[-1] == _with_image(canary)
    assert crd_errors(strict, api.applied[-1]) == []
    assert "challenger 2" in line
    assert "canaryTrafficPercent 10" in line
    api.roll_out(REV[2], REV[1], 10)
    assert cluster.read() == Split("1", "2", 10)

    # widen: the same model, only the percentage changes (no new copy, no new revision)
    cluster.write(Split("1", "2", 50))
    assert publish.versions == ["1", "2"]
    assert api.applied[-1]["spec"]["predictor"]["canaryTrafficPercent"] == 50
    assert _env(api.applied[-1])[names.MODEL_VERSION_ENV] == "2"
    api.roll_out(REV[2], REV[1], 50)
    assert cluster.read() == Split("1", "2", 50)

    # rollback: p = 0, everything back to the champion's revision
    cluster.write(Split("1", "2", 0))
    assert api.applied[-1]["spec"]["predictor"]["canaryTrafficPercent"] == 0
    api.roll_out(REV[2], REV[1], 0)
    assert cluster.read() == Split("1", "2", 0)

    # promote: the challenger serves alone; canaryTrafficPercent is left out (server-side apply removes it)
    cluster.write(Split("2"))
    assert "canaryTrafficPercent" not in api.applied[-1]["spec"]["predictor"]
    assert _env(api.applied[-1])[names.MODEL_VERSION_ENV] == "2"
    assert publish.versions == ["1", "2"]
    api.roll_out(REV[2], None, None)
    assert cluster.read() == Split("2")
    for body in api.applied:
        assert crd_errors(strict, body) == []


def test_writing_the_split_in_force_applies_the_same_object() -> None:
    api = RecordingApi()
    cluster = traffic(api)
    cluster.write(Split("1"))
    api.roll_out(REV[1], None, None)
    cluster.write(Split("1"))
    assert api.applied[0] == api.applied[1]


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


def test_from_settings_sends_server_side_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch)
    with fake_kube(_canary_objects()) as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "config", context="kind-test")))
        cluster = KServeTraffic.from_settings(settings, context="kind-test")
        assert cluster.read() == Split("1", "2", 10)
        kube.requests.clear()
        cluster.write(Split("1", "2", 50))  # the spec already serves v2: nothing to publish
        assert cluster.details()["canary_percent"] == 50
    path = ISVC_PATH.format(namespace="models", name=names.ISVC_NAME)
    patch = next(r for r in kube.requests if r.method == "PATCH")
    assert patch.path == path
    assert patch.content_type == "application/apply-patch+yaml"
    # the Python client spells it True; the API server takes any case (apimachinery's bool conversion)
    assert {k: [v.lower() for v in vs] for k, vs in patch.query.items()} == {
        "fieldManager": ["chicago-arrest"],
        "force": ["true"],
    }
    assert patch.body["spec"]["predictor"]["canaryTrafficPercent"] == 50
    assert [r.method for r in kube.requests if r.path == path] == ["GET", "PATCH", "GET"]


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
