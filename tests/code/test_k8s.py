"""Kubernetes objects (against the real KServe v0.20.0 CRD schemas), manifests/ golden files, kubectl verbs."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chicago_arrest import k8s
from tests.code import kustomize_lite

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "tests" / "data" / "crds"
SHARED_SCHEMAS = REPO_ROOT.parent / "shared" / "schemas"
MANIFESTS = REPO_ROOT / "manifests"
CRD_FILES = {
    "InferenceService": "kserve-v0.20.0-serving.kserve.io_inferenceservices.yaml",
    "ServingRuntime": "kserve-v0.20.0-serving.kserve.io_servingruntimes.yaml",
    "ClusterServingRuntime": "kserve-v0.20.0-serving.kserve.io_clusterservingruntimes.yaml",
}
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


def _errors(validator: jsonschema.Draft7Validator, obj: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]


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


# ------------------------------------------------------------------------------------------------------------
# The InferenceService validates against the CRD
# ------------------------------------------------------------------------------------------------------------

CHAMPION = "s3://models/arrest-predictor/v3/"


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = obj["spec"]["predictor"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("canary", [None, 0, 10, 100])
@pytest.mark.parametrize("profile", ["standard", "kind"])
def test_inference_service_validates(
    strict: dict[str, jsonschema.Draft7Validator], canary: int | None, profile: k8s.Profile
) -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=3, canary_percent=canary, profile=profile)
    assert _errors(strict["InferenceService"], obj) == []
    predictor = obj["spec"]["predictor"]
    assert predictor.get("canaryTrafficPercent") == canary
    assert predictor["minReplicas"] == 1
    assert predictor["serviceAccountName"] == "kserve-s3"
    assert "model" not in predictor  # a custom container, not a ServingRuntime
    container = _container(obj)
    assert container["name"] == "kserve-container"  # the name KServe looks for (STORAGE_URI, probes)
    assert container["image"] == k8s.DEFAULT_IMAGE
    assert container["command"] + container["args"] == [
        "python",
        "-m",
        "arrest_server",
        "--model_name=arrest-predictor",
        "--model_dir=/mnt/models",
        "--http_port=8080",
    ]
    env = _env(container)
    assert env["STORAGE_URI"] == CHAMPION
    assert env["PROTOCOL"] == "v2"
    assert env["ARREST_SERVER_MODEL_VERSION"] == "3"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert container["resources"] == k8s.RESOURCE_PROFILES[profile]
    assert container["securityContext"]["runAsNonRoot"] is True
    annotations = obj["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Knative"
    assert annotations["serving.kserve.io/enable-tag-routing"] == "true"
    assert set(obj["metadata"]) <= {"name", "namespace", "labels", "annotations"}


def test_kind_profile_is_trimmed() -> None:
    kind, standard = k8s.RESOURCE_PROFILES["kind"], k8s.RESOURCE_PROFILES["standard"]
    assert kind["requests"] == {"cpu": "100m", "memory": "512Mi"}
    assert standard["requests"]["cpu"] == "1"
    assert kind["limits"]["cpu"] == standard["limits"]["cpu"] == "1"  # the model is single-threaded


def test_inference_service_options(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    obj = k8s.inference_service(
        "arrest-predictor-b",
        "serving",
        storage_uri="s3://bucket/models/v1",
        model_version="7",
        image="registry.local/chicago-arrest:abc",
        service_account="other-sa",
        resources={"requests": {"cpu": "250m", "memory": "1Gi"}},
        max_replicas=3,
    )
    assert _errors(strict["InferenceService"], obj) == []
    container = _container(obj)
    assert _env(container)["STORAGE_URI"] == "s3://bucket/models/v1/"  # trailing slash: a prefix match
    assert "--model_name=arrest-predictor-b" in container["args"]
    assert container["image"] == "registry.local/chicago-arrest:abc"
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "1Gi"}}
    assert obj["spec"]["predictor"]["serviceAccountName"] == "other-sa"
    assert obj["metadata"]["namespace"] == "serving"


def test_model_locations() -> None:
    assert k8s.model_key_prefix(3) == "arrest-predictor/v3"
    assert k8s.model_storage_uri("12") == "s3://models/arrest-predictor/v12/"
    assert k8s.model_storage_uri(1, bucket="other") == "s3://other/arrest-predictor/v1/"
    # v1/ is not a prefix of v10/: the trailing slash keeps KServe from downloading both
    assert not k8s.model_storage_uri(10).startswith(k8s.model_storage_uri(1))
    for bad in (0, "-1", "abc", "", "1.5"):
        with pytest.raises(ValueError, match="positive integer"):
            k8s.model_key_prefix(bad)


# ------------------------------------------------------------------------------------------------------------
# Negative cases
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [150, 101, -1, True, 10.0, "10"])
def test_canary_percent_out_of_range_is_our_value_error(percent: Any) -> None:
    with pytest.raises(ValueError, match="canary percent"):
        k8s.inference_service(storage_uri=CHAMPION, model_version=1, canary_percent=percent)
    with pytest.raises(ValueError, match="canary percent"):
        k8s.set_canary(percent, runner=_unexpected_runner)


def test_schema_alone_does_not_bound_canary(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=1, canary_percent=10)
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 150
    assert _errors(strict["InferenceService"], obj) == []  # which is why our code checks 0..100
    obj["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    assert any("canaryTrafficPercent" in e for e in _errors(strict["InferenceService"], obj))


def test_typo_is_caught_only_by_the_tightened_schema(
    schemas: dict[str, dict[str, Any]], strict: dict[str, jsonschema.Draft7Validator]
) -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=1)
    container = _container(obj)
    container["readynessProbe"] = container.pop("readinessProbe")
    assert _errors(jsonschema.Draft7Validator(schemas["InferenceService"]), obj) == []
    errors = _errors(strict["InferenceService"], obj)
    assert any("readynessProbe" in e for e in errors), errors


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "predictor", "containers"), [{"image": "x"}]),  # container name is required
        (("spec", "predictor", "containers"), "kserve-container"),
        (("spec", "predictor", "minReplicas"), "one"),
        (("spec", "predictor", "canaryTraficPercent"), 10),
        (("spec", "predictor", "storageUri"), CHAMPION),  # not a predictor field in v0.20 (env STORAGE_URI)
    ],
)
def test_schema_rejects_broken_objects(
    strict: dict[str, jsonschema.Draft7Validator], path: tuple[str, ...], value: Any
) -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=1)
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert _errors(strict["InferenceService"], obj)


@pytest.mark.parametrize(
    "name", ["Arrest-Predictor", "arrest_predictor", "1arrest", "arrest-", "", "a" * 47, "arrest.predictor"]
)
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="invalid InferenceService name"):
        k8s.inference_service(name, storage_uri=CHAMPION, model_version=1)
    with pytest.raises(ValueError, match="invalid InferenceService name"):
        k8s.set_canary(10, name=name, runner=_unexpected_runner)


@pytest.mark.parametrize("namespace", ["Models", "models_", "", "-models"])
def test_bad_namespaces_are_rejected(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        k8s.inference_service(namespace=namespace, storage_uri=CHAMPION, model_version=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"storage_uri": "gs://bucket/model/"}, "s3://"),
        ({"storage_uri": "mlflow-artifacts:/1/models/m/artifacts"}, "s3://"),
        ({"storage_uri": "s3://bucket/"}, "whole bucket"),
        ({"storage_uri": "s3:///key"}, "no bucket"),
        ({"storage_uri": "s3://bucket/a/../b"}, "relative"),
        ({"storage_uri": "s3://b/key?versionId=1"}, "query"),
        ({"model_version": " "}, "model_version"),
        ({"resources": {"request": {"cpu": "1"}}}, "requests"),
        ({"profile": "laptop"}, "resource profile"),
        ({"min_replicas": 2, "max_replicas": 1}, "min_replicas"),
        ({"image": ""}, "image"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"storage_uri": CHAMPION, "model_version": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        k8s.inference_service(**args)


# ------------------------------------------------------------------------------------------------------------
# Platform objects
# ------------------------------------------------------------------------------------------------------------


def test_models_namespace_objects() -> None:
    assert k8s.models_namespace()["metadata"]["name"] == "models"
    sa = k8s.s3_service_account()
    assert sa["metadata"]["name"] == "kserve-s3"
    assert sa["secrets"] == [{"name": "kserve-s3"}]
    role, binding = k8s.deployer_rbac()
    assert role["rules"][0]["apiGroups"] == ["serving.kserve.io"]
    assert {"get", "patch", "create"} <= set(role["rules"][0]["verbs"])
    assert "delete" not in role["rules"][0]["verbs"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_minio_uses_the_quay_image_and_generated_keys() -> None:
    objs = {o["kind"]: o for o in k8s.minio_server()}
    assert set(objs) == {"Namespace", "PersistentVolumeClaim", "Deployment", "Service"}
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("quay.io/minio/minio:RELEASE.")
    env = _env(container)
    assert env["MINIO_ROOT_USER"] == {"secretKeyRef": {"name": "minio-root", "key": "MINIO_ROOT_USER"}}
    assert env["MINIO_ROOT_PASSWORD"]["secretKeyRef"]["name"] == "minio-root"
    assert pod["securityContext"]["runAsNonRoot"] is True
    ports = {p["name"]: (p["port"], p["nodePort"]) for p in objs["Service"]["spec"]["ports"]}
    assert ports == {"api": (9000, k8s.MINIO_NODE_PORT), "console": (9001, k8s.MINIO_CONSOLE_NODE_PORT)}
    assert k8s.S3_ENDPOINT == "minio.minio.svc.cluster.local:9000"


def test_store_network_policy() -> None:
    policy = k8s.store_network_policy()
    assert policy["metadata"]["namespace"] == "minio"
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "minio"}}
    pods, host = policy["spec"]["ingress"]
    allowed = [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in pods["from"]]
    # pipeline steps, KServe's storage-initializer, MLflow and the bucket Job; nobody else in the cluster
    assert allowed == ["kubeflow", "models", "mlflow", "minio"]
    assert pods["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert host["from"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [k8s.POD_SUBNET]}}]
    assert {p["port"] for p in host["ports"]} == {9000, 9001}


def test_bucket_job_creates_the_three_buckets() -> None:
    job = k8s.bucket_setup_job(image="img:1")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "img:1"
    assert container["command"][-4:] == ["ensure-buckets", "chicago-crime", "mlflow", "models"]
    env = _env(container)
    assert env["ARREST_S3_ENDPOINT"] == k8s.S3_ENDPOINT
    assert env["ARREST_S3_ACCESS_KEY"] == {"secretKeyRef": {"name": "minio-root", "key": "MINIO_ROOT_USER"}}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_mlflow_server_is_lean_and_stores_artifacts_in_minio() -> None:
    objs = {o["kind"]: o for o in k8s.mlflow_server(image="img:1")}
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = _env(container)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.minio.svc.cluster.local:9000"
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "mlflow-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert "--workers=1" in container["args"]
    assert "--artifacts-destination=s3://mlflow/artifacts" in container["args"]
    hosts = next(a for a in container["args"] if a.startswith("--allowed-hosts="))
    assert "mlflow.mlflow.svc.cluster.local:*" in hosts
    assert "localhost:*" in hosts
    assert container["image"] == "img:1"
    assert objs["Service"]["spec"]["ports"][0]["nodePort"] == k8s.MLFLOW_NODE_PORT
    assert k8s.MLFLOW_IN_CLUSTER_URI == "http://mlflow.mlflow.svc.cluster.local:5000"


# ------------------------------------------------------------------------------------------------------------
# manifests/: golden files, kustomize overlays, the CLI
# ------------------------------------------------------------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.rglob("*.yaml"))


def _manifest_docs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in _manifest_files():
        if path.name == "kustomization.yaml" or path.name.startswith("patch-"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield str(path.relative_to(MANIFESTS)), doc


def test_committed_manifests_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = k8s.write_manifests(tmp_path)
    rel = [str(p.relative_to(tmp_path)) for p in written]
    assert rel == [str(p.relative_to(MANIFESTS)) for p in _manifest_files()], (
        "run: python -m chicago_arrest.k8s write-manifests manifests/"
    )
    for path in written:
        text = path.read_text()
        assert text == (MANIFESTS / path.relative_to(tmp_path)).read_text(), (
            f"manifests/{path.relative_to(tmp_path)} is stale: "
            "run python -m chicago_arrest.k8s write-manifests manifests/"
        )
        assert text.startswith("# Generated by `python -m chicago_arrest.k8s write-manifests")
        assert "&id0" not in text  # no YAML anchors


def test_committed_manifests_validate(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    kinds = []
    for filename, doc in _manifest_docs():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), filename
        kinds.append(doc["kind"])
        if doc["kind"] in strict:
            assert _errors(strict[doc["kind"]], doc) == [], filename
    assert sorted(set(kinds)) == [
        "Deployment",
        "InferenceService",
        "Job",
        "Namespace",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]


def test_manifests_hold_no_secrets() -> None:
    for filename, doc in _manifest_docs():
        assert doc["kind"] != "Secret", filename
    text = "\n".join(p.read_text() for p in _manifest_files())
    assert "minio123" not in text
    assert "AWS_SECRET_ACCESS_KEY:" not in text  # only secretKeyRef keys, never values
    assert "MINIO_ROOT_PASSWORD:" not in text


OVERLAYS = {
    "base": {"profile": "standard", "version": 1, "canary": None},
    "overlays/kind": {"profile": "kind", "version": 1, "canary": None},
    "overlays/canary": {
        "profile": "kind",
        "version": k8s.EXAMPLE_CHALLENGER_VERSION,
        "canary": k8s.EXAMPLE_CANARY_PERCENT,
    },
}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_renders_what_the_generator_builds(
    overlay: str, strict: dict[str, jsonschema.Draft7Validator]
) -> None:
    """Each kustomization renders to exactly the generator's InferenceService, which validates."""
    (obj,) = kustomize_lite.build(MANIFESTS / overlay)
    assert _errors(strict["InferenceService"], obj) == []
    want = OVERLAYS[overlay]
    expected = k8s.inference_service(
        storage_uri=k8s.model_storage_uri(want["version"]),
        model_version=want["version"],
        canary_percent=want["canary"],
        profile=want["profile"],
    )
    assert obj == expected
    k8s.validate_name(obj["metadata"]["name"])
    if "canaryTrafficPercent" in obj["spec"]["predictor"]:
        assert 0 <= obj["spec"]["predictor"]["canaryTrafficPercent"] <= 100


def test_kustomize_platform_renders_every_platform_object() -> None:
    objects = kustomize_lite.build(MANIFESTS / "platform")
    names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}
    assert {
        ("Namespace", None, "minio"),
        ("Deployment", "minio", "minio"),
        ("NetworkPolicy", "minio", "minio-ingress"),
        ("Job", "minio", "minio-buckets"),
        ("Deployment", "mlflow", "mlflow"),
        ("ServiceAccount", "models", "kserve-s3"),
        ("RoleBinding", "models", "kfp-pipeline-runner-kserve"),
    } <= names
    for obj in objects:
        name = obj["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        assert len(name) <= 63, name


@pytest.mark.parametrize("kustomization", ["base", "overlays/kind", "overlays/canary", "platform"])
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

    assert sorted(real, key=key) == sorted(kustomize_lite.build(MANIFESTS / kustomization), key=key)


def test_canary_overlay_guards_its_env_indices(tmp_path: Path) -> None:
    """The canary patch addresses env entries by index; its `test` ops fail on a reordered env."""
    base = next(iter(kustomize_lite.build(MANIFESTS / "overlays" / "kind")))
    ops = yaml.safe_load((MANIFESTS / "overlays" / "canary" / "patch-canary.yaml").read_text())
    reordered = copy.deepcopy(base)
    reordered["spec"]["predictor"]["containers"][0]["env"].reverse()
    with pytest.raises(kustomize_lite.KustomizeError, match="test failed"):
        kustomize_lite.apply_json6902(reordered, ops)
    patched = kustomize_lite.apply_json6902(base, ops)
    assert _env(_container(patched))["STORAGE_URI"] == "s3://models/arrest-predictor/v2/"


def test_kustomize_lite_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\nnamePrefix: x-\n"
    )
    with pytest.raises(kustomize_lite.KustomizeError, match="namePrefix"):
        kustomize_lite.build(tmp_path)


def test_makefile_default_image_is_the_manifests_image() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^IMAGE \?= (\S+)$", makefile, flags=re.M)
    assert match
    assert match.group(1) == k8s.DEFAULT_IMAGE
    from chicago_arrest.settings import Settings

    assert Settings().serving_image == k8s.DEFAULT_IMAGE


def test_cli_write_and_render(tmp_path: Path, capsys: pytest.CaptureFixture[str], strict: Any) -> None:
    assert k8s.main(["write-manifests", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "overlays" / "canary" / "kustomization.yaml").is_file()
    capsys.readouterr()
    args = ["render-isvc", "--model-version", "9"]
    assert k8s.main([*args, "--canary", "25"]) == 0
    (obj,) = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert _env(_container(obj))["STORAGE_URI"] == "s3://models/arrest-predictor/v9/"
    assert _container(obj)["resources"] == k8s.RESOURCE_PROFILES["kind"]
    assert _errors(strict["InferenceService"], obj) == []
    assert k8s.main([*args, "--canary", "150"]) == 2
    assert "canary percent" in capsys.readouterr().err
    assert k8s.main([*args, "--storage-uri", "mlflow-artifacts:/1/m"]) == 2
    assert "s3://" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# kubectl verbs (fake runner)
# ------------------------------------------------------------------------------------------------------------


class FakeKubectl:
    """Records argv and kwargs; answers from a queue of (returncode, stdout, stderr)."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []
        self.kwargs: list[dict[str, Any]] = []

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        self.kwargs.append(kwargs)
        code, out, err = self.answers.pop(0) if self.answers else (0, "", "")
        return subprocess.CompletedProcess(list(argv), code, out, err)


def _unexpected_runner(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"kubectl must not run: {argv}")


def _patch_argv(percent: int, *, context: str | None = None) -> list[str]:
    return [
        "kubectl",
        *(["--context", context] if context else []),
        "-n",
        "models",
        "patch",
        "isvc",
        "arrest-predictor",
        "--type",
        "merge",
        "-p",
        f'{{"spec":{{"predictor":{{"canaryTrafficPercent":{percent}}}}}}}',
    ]


def test_set_canary_argv() -> None:
    fake = FakeKubectl((0, "inferenceservice.serving.kserve.io/arrest-predictor patched\n", ""))
    out = k8s.set_canary(10, namespace="models", runner=fake)
    assert fake.calls == [_patch_argv(10)]
    assert fake.calls[0][-1] == '{"spec":{"predictor":{"canaryTrafficPercent":10}}}'
    assert out == "inferenceservice.serving.kserve.io/arrest-predictor patched"
    assert fake.kwargs[0]["capture_output"] is True
    assert fake.kwargs[0]["text"] is True
    assert fake.kwargs[0]["check"] is False


def test_promote_and_rollback_argv() -> None:
    fake = FakeKubectl()
    k8s.promote(runner=fake)
    k8s.rollback(runner=fake, context="kind-chicago-arrest")
    k8s.set_canary(0, kubectl="/opt/bin/kubectl", runner=fake)
    assert fake.calls[0] == _patch_argv(100)
    assert fake.calls[1] == _patch_argv(0, context="kind-chicago-arrest")
    assert fake.calls[2] == ["/opt/bin/kubectl", *_patch_argv(0)[1:]]


def test_missing_kubectl_is_a_clear_error() -> None:
    def no_binary(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    with pytest.raises(k8s.KubectlNotFoundError, match="kubectl is not installed"):
        k8s.promote(runner=no_binary)
    # the real subprocess.run path
    with pytest.raises(k8s.KubectlNotFoundError):
        k8s.status(kubectl="/nonexistent/dir/kubectl")


NOT_FOUND = 'Error from server (NotFound): inferenceservices.serving.kserve.io "arrest-predictor" not found\n'


def test_missing_inference_service_is_a_clear_error() -> None:
    with pytest.raises(k8s.InferenceServiceNotFoundError, match="models/arrest-predictor not found"):
        k8s.set_canary(50, runner=FakeKubectl((1, "", NOT_FOUND)))
    with pytest.raises(k8s.InferenceServiceNotFoundError):
        k8s.status(runner=FakeKubectl((1, "", NOT_FOUND)))


def test_other_kubectl_failures() -> None:
    no_crd = 'error: the server doesn\'t have a resource type "isvc"\n'
    with pytest.raises(k8s.KubectlError, match="KServe is not installed"):
        k8s.rollback(runner=FakeKubectl((1, "", no_crd)))
    with pytest.raises(k8s.KubectlError, match="exit code 1: boom") as info:
        k8s.rollback(runner=FakeKubectl((1, "", "boom")))
    assert not isinstance(info.value, k8s.InferenceServiceNotFoundError)

    def slow(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    with pytest.raises(k8s.KubectlError, match="timed out"):
        k8s.promote(runner=slow)


def _isvc_json(canary: int | None = 10) -> dict[str, Any]:
    obj = k8s.inference_service(storage_uri=k8s.model_storage_uri(7), model_version=7, canary_percent=canary)
    obj["status"] = {
        "url": "http://arrest-predictor-predictor.models.example.com",
        "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestCreatedRevision": "arrest-predictor-predictor-00002",
                "latestReadyRevision": "arrest-predictor-predictor-00002",
                "latestRolledoutRevision": "arrest-predictor-predictor-00001",
                "previousRolledoutRevision": "",
                "traffic": [
                    {
                        "latestRevision": True,
                        "percent": 10,
                        "revisionName": "arrest-predictor-predictor-00002",
                        "tag": "latest",
                        "url": "http://latest-arrest-predictor-predictor.models.example.com",
                    },
                    {
                        "latestRevision": False,
                        "percent": 90,
                        "revisionName": "arrest-predictor-predictor-00001",
                        "tag": "prev",
                        "url": "http://prev-arrest-predictor-predictor.models.example.com",
                    },
                ],
                "url": "http://arrest-predictor-predictor.models.example.com",
            }
        },
    }
    return obj


def _revision(name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "kserve-container",
                    "env": [{"name": "ARREST_SERVER_MODEL_VERSION", "value": version}],
                },
                {"name": "queue-proxy"},
            ]
        },
    }


def test_status_summarises_the_canary() -> None:
    revisions = {
        "kind": "List",
        "items": [
            _revision("arrest-predictor-predictor-00001", "6"),
            _revision("arrest-predictor-predictor-00002", "7"),
        ],
    }
    fake = FakeKubectl((0, json.dumps(_isvc_json()), ""), (0, json.dumps(revisions), ""))
    summary = k8s.status(runner=fake, context="kind-chicago-arrest")
    assert fake.calls[0] == [
        "kubectl", "--context", "kind-chicago-arrest", "-n", "models", "get", "isvc", "arrest-predictor", "-o", "json"
    ]  # fmt: skip
    assert fake.calls[1] == [
        "kubectl", "--context", "kind-chicago-arrest", "-n", "models", "get", "revisions.serving.knative.dev",
        "arrest-predictor-predictor-00001", "arrest-predictor-predictor-00002", "-o", "json",
    ]  # fmt: skip
    assert summary.url == "http://arrest-predictor-predictor.models.example.com"
    assert summary.ready is True
    assert summary.canary_percent == 10
    assert summary.latest is not None
    assert summary.previous is not None
    assert (summary.latest.revision, summary.latest.percent, summary.latest.model_version) == (
        "arrest-predictor-predictor-00002",
        10,
        "7",
    )
    assert (summary.previous.revision, summary.previous.percent, summary.previous.model_version) == (
        "arrest-predictor-predictor-00001",
        90,
        "6",
    )
    text = k8s.format_status(summary)
    assert "00002   10%  model version 7" in text
    assert "00001   90%  model version 6" in text
    data = summary.to_dict()
    assert json.loads(json.dumps(data))["previous"]["model_version"] == "6"


def test_status_when_revisions_cannot_be_read() -> None:
    isvc = _isvc_json()
    fake = FakeKubectl(
        (0, json.dumps(isvc), ""), (1, "", "Error from server (Forbidden): revisions is forbidden")
    )
    summary = k8s.status(runner=fake)
    assert summary.latest is not None
    assert summary.latest.model_version == "7"
    assert summary.previous is not None
    assert summary.previous.model_version is None
    assert summary.notes
    assert "Forbidden" in summary.notes[0]
    assert "model version ?" in k8s.format_status(summary)


def test_status_single_revision_and_not_ready() -> None:
    isvc = _isvc_json(canary=None)
    predictor = isvc["status"]["components"]["predictor"]
    predictor["traffic"] = [{**predictor["traffic"][0], "percent": 100, "tag": None, "url": None}]
    predictor["latestCreatedRevision"] = "arrest-predictor-predictor-00003"
    isvc["status"]["conditions"][1] = {
        "type": "Ready",
        "status": "False",
        "reason": "RevisionFailed",
        "message": "x",
    }
    fake = FakeKubectl(
        (0, json.dumps(isvc), ""), (0, json.dumps(_revision("arrest-predictor-predictor-00002", "7")), "")
    )
    summary = k8s.status(runner=fake)
    assert summary.ready is False
    assert summary.ready_message == "RevisionFailed: x"
    assert summary.previous is None
    assert summary.latest is not None
    assert summary.latest.percent == 100
    text = k8s.format_status(summary)
    assert "not set (100% to latest)" in text
    assert "00003 is not ready yet" in text


def test_status_rejects_non_json() -> None:
    with pytest.raises(k8s.KubectlError, match="did not print JSON"):
        k8s.status(runner=FakeKubectl((0, "not json", "")))


# ------------------------------------------------------------------------------------------------------------
# apply_inference_service (kubectl) and apply_inference_service_api (Python client)
# ------------------------------------------------------------------------------------------------------------


def test_apply_patches_an_existing_service() -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=4)
    fake = FakeKubectl((0, json.dumps({"kind": "InferenceService"}), ""))
    assert k8s.apply_inference_service(obj, runner=fake, context="kind-x") == {"kind": "InferenceService"}
    (argv,) = fake.calls
    assert argv[:9] == [
        "kubectl",
        "--context",
        "kind-x",
        "-n",
        "models",
        "patch",
        "isvc",
        "arrest-predictor",
        "--type",
    ]
    assert argv[9:11] == ["merge", "-p"]
    assert argv[12:] == ["--field-manager=chicago-arrest", "-o", "json"]
    patch = json.loads(argv[11])
    # omitted optional fields are removed, so a rollback's 0% cannot starve the new revision
    assert patch["spec"]["predictor"]["canaryTrafficPercent"] is None
    # a hand-written ServingRuntime predictor (`model:`) is removed: KServe refuses both at once
    assert patch["spec"]["predictor"]["model"] is None
    assert _env(patch["spec"]["predictor"]["containers"][0])["STORAGE_URI"] == CHAMPION
    assert patch["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


def test_apply_creates_a_missing_service() -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=4, canary_percent=20)
    fake = FakeKubectl((1, "", NOT_FOUND), (0, '{"metadata": {"generation": 1}}', ""))
    result = k8s.apply_inference_service(obj, runner=fake, dry_run=True)
    assert result == {"metadata": {"generation": 1}}
    assert fake.calls[0][-1] == "--dry-run=server"
    create = ["kubectl", "-n", "models", "create", "-f", "-", "--field-manager=chicago-arrest"]
    assert fake.calls[1] == [*create, "-o", "json", "--dry-run=server"]
    assert json.loads(fake.kwargs[1]["input"]) == obj
    assert json.loads(fake.calls[0][9])["spec"]["predictor"]["canaryTrafficPercent"] == 20


def test_apply_rejects_bad_objects_before_running_kubectl() -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=4)
    bad = copy.deepcopy(obj)
    bad["spec"]["predictor"]["canaryTrafficPercent"] = 150
    with pytest.raises(ValueError, match="canary percent"):
        k8s.apply_inference_service(bad, runner=_unexpected_runner)
    with pytest.raises(ValueError, match="InferenceService"):
        k8s.apply_inference_service(k8s.minio_server()[2], runner=_unexpected_runner)
    renamed = copy.deepcopy(obj)
    renamed["metadata"]["name"] = "Bad_Name"
    with pytest.raises(ValueError, match="invalid InferenceService name"):
        k8s.apply_inference_service(renamed, runner=_unexpected_runner)
    with pytest.raises(k8s.KubectlError, match="exit code 1"):
        k8s.apply_inference_service(obj, runner=FakeKubectl((1, "", "admission webhook denied")))


class FakeApi:
    def __init__(self, missing: bool) -> None:
        self.missing = missing
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("patch", args, kwargs))
        if self.missing:
            from kubernetes.client.exceptions import ApiException

            raise ApiException(status=404, reason="Not Found")
        return {"patched": True}

    def create_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create", args, kwargs))
        return {"created": True}


def test_apply_with_the_python_client() -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=4)
    api = FakeApi(missing=False)
    assert k8s.apply_inference_service_api(obj, api=api) == {"patched": True}
    (_verb, args, kwargs) = api.calls[0]
    assert args[:5] == ("serving.kserve.io", "v1beta1", "models", "inferenceservices", "arrest-predictor")
    assert args[5]["spec"]["predictor"]["canaryTrafficPercent"] is None
    assert kwargs == {"field_manager": "chicago-arrest"}

    api = FakeApi(missing=True)
    assert k8s.apply_inference_service_api(obj, api=api, dry_run=True) == {"created": True}
    assert [c[0] for c in api.calls] == ["patch", "create"]
    assert api.calls[1][1][4] == obj
    assert api.calls[1][2] == {"field_manager": "chicago-arrest", "dry_run": "All"}


def test_apply_with_the_python_client_reraises_other_errors() -> None:
    from kubernetes.client.exceptions import ApiException

    class Forbidden(FakeApi):
        def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException):
        k8s.apply_inference_service_api(
            k8s.inference_service(storage_uri=CHAMPION, model_version=1), api=Forbidden(False)
        )


def test_cli_cluster_verbs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKubectl((0, "patched", ""), (1, "", NOT_FOUND))
    # the default runner (subprocess.run) is bound at definition time: route the CLI through the fake
    monkeypatch.setattr(k8s, "set_canary", _bind_runner(k8s.set_canary, fake))
    monkeypatch.setattr(k8s, "status", _bind_runner(k8s.status, fake))
    assert k8s.main(["canary", "30", "--context", "kind-chicago-arrest"]) == 0
    assert fake.calls[0] == _patch_argv(30, context="kind-chicago-arrest")
    assert k8s.main(["status"]) == 1
    assert "not found" in capsys.readouterr().err


def _bind_runner(func: Any, runner: Any) -> Any:
    def bound(*args: Any, **kwargs: Any) -> Any:
        return func(*args, runner=runner, **kwargs)

    return bound


def test_import_has_no_side_effects() -> None:
    code = (
        "import subprocess, sys\n"
        "def refuse(*a, **k): raise AssertionError('ran a command at import')\n"
        "subprocess.run = subprocess.Popen = refuse\n"
        "import chicago_arrest.k8s\n"
        "assert 'kubernetes' not in sys.modules, 'the kubernetes client must be imported lazily'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
