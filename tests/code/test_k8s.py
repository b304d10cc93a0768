"""Kubernetes objects (against the real KServe v0.20.0 CRD schemas), manifests/ golden files, kubectl verbs."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chicago_arrest import k8s

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
# Objects validate against the CRDs
# ------------------------------------------------------------------------------------------------------------

CHAMPION = "s3://mlpipeline/mlflow/1/models/m-abc/artifacts/"


@pytest.mark.parametrize("canary", [None, 0, 10, 100])
def test_inference_service_validates(
    strict: dict[str, jsonschema.Draft7Validator], canary: int | None
) -> None:
    obj = k8s.inference_service(storage_uri=CHAMPION, model_version=3, canary_percent=canary)
    assert _errors(strict["InferenceService"], obj) == []
    predictor = obj["spec"]["predictor"]
    assert predictor.get("canaryTrafficPercent") == canary
    assert predictor["minReplicas"] == 1
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "arrest-pyfunc"}
    assert model["runtime"] == "arrest-predictor-runtime"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == CHAMPION
    assert {"name": "ARREST_SERVER_MODEL_VERSION", "value": "3"} in model["env"]
    assert model["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    annotations = obj["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Knative"
    assert annotations["serving.kserve.io/enable-tag-routing"] == "true"
    assert set(obj["metadata"]) <= {"name", "namespace", "labels", "annotations"}


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
    model = obj["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://bucket/models/v1/"  # trailing slash: storageUri is a prefix match
    assert model["image"] == "registry.local/chicago-arrest:abc"
    assert obj["spec"]["predictor"]["serviceAccountName"] == "other-sa"
    assert obj["metadata"]["namespace"] == "serving"


def test_serving_runtime_validates(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    obj = k8s.serving_runtime(image="chicago-arrest:test")
    assert _errors(strict["ServingRuntime"], obj) == []
    # the same spec is also a valid ClusterServingRuntime spec
    cluster = {**copy.deepcopy(obj), "kind": "ClusterServingRuntime"}
    del cluster["metadata"]["namespace"]
    assert _errors(strict["ClusterServingRuntime"], cluster) == []
    spec = obj["spec"]
    assert obj["metadata"] == {
        "name": "arrest-predictor-runtime",
        "namespace": "models",
        "labels": {
            "app.kubernetes.io/name": "arrest-predictor-runtime",
            "app.kubernetes.io/part-of": "chicago-arrest",
        },
    }
    assert spec["supportedModelFormats"][0]["name"] == "arrest-pyfunc"
    assert spec["protocolVersions"] == ["v2", "v1"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "chicago-arrest:test"
    assert container["command"] + container["args"] == [
        "python",
        "-m",
        "arrest_server",
        "--model_name={{.Name}}",
        "--model_dir=/mnt/models",
        "--http_port=8080",
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert container["securityContext"]["runAsNonRoot"] is True


def _manifest_docs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path.name, doc


def test_committed_manifests_validate(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    kinds = []
    for filename, doc in _manifest_docs():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), filename
        kinds.append(doc["kind"])
        if doc["kind"] in strict:
            assert _errors(strict[doc["kind"]], doc) == [], filename
    assert sorted(set(kinds)) == sorted(
        {
            "Deployment",
            "InferenceService",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServingRuntime",
        }
    )


def test_manifests_hold_no_secrets() -> None:
    for filename, doc in _manifest_docs():
        assert doc["kind"] != "Secret", filename
    text = "\n".join(p.read_text() for p in MANIFESTS.glob("*.yaml"))
    assert "minio123" not in text
    assert "AWS_SECRET_ACCESS_KEY:" not in text  # only secretKeyRef keys, never values


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
    model = obj["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    assert _errors(jsonschema.Draft7Validator(schemas["InferenceService"]), obj) == []
    errors = _errors(strict["InferenceService"], obj)
    assert any("storageURI" in e for e in errors), errors


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "predictor", "model", "modelFormat"), {"version": "1"}),  # name is required
        (("spec", "predictor", "model", "storageUri"), 42),
        (("spec", "predictor", "minReplicas"), "one"),
        (("spec", "predictor", "canaryTraficPercent"), 10),
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


def test_runtime_typo_is_caught(strict: dict[str, jsonschema.Draft7Validator]) -> None:
    obj = k8s.serving_runtime()
    obj["spec"]["supportedModelFormat"] = obj["spec"].pop("supportedModelFormats")
    assert _errors(strict["ServingRuntime"], obj)


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
        ({"storage_uri": "mlflow-artifacts:/1/models/m/artifacts"}, "storage_uri_for"),
        ({"storage_uri": "s3://bucket/"}, "whole bucket"),
        ({"storage_uri": "s3://bucket/a/../b"}, "relative"),
        ({"model_version": " "}, "model_version"),
        ({"resources": {"request": {"cpu": "1"}}}, "requests"),
        ({"min_replicas": 2, "max_replicas": 1}, "min_replicas"),
        ({"image": ""}, "image"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"storage_uri": CHAMPION, "model_version": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        k8s.inference_service(**args)


# ------------------------------------------------------------------------------------------------------------
# storage_uri_for
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # MLflow 3 proxied artifacts (checked against an MLflow 3.17.2 server with an S3 stand-in)
        (
            "mlflow-artifacts:/1/models/m-4dc9/artifacts",
            "s3://mlpipeline/mlflow/1/models/m-4dc9/artifacts/",
        ),
        ("mlflow-artifacts:/1/models/m-4dc9/artifacts/", "s3://mlpipeline/mlflow/1/models/m-4dc9/artifacts/"),
        (
            "mlflow-artifacts://mlflow.mlflow:5000/2/abc/artifacts/model",
            "s3://mlpipeline/mlflow/2/abc/artifacts/model/",
        ),
        ("s3://mlpipeline/mlflow/1/models/m-1/artifacts", "s3://mlpipeline/mlflow/1/models/m-1/artifacts/"),
        ("s3://other//double//slashes/", "s3://other/double/slashes/"),
        ("minio://mlpipeline/v2/artifacts/run/train/model", "s3://mlpipeline/v2/artifacts/run/train/model/"),
    ],
)
def test_storage_uri_for(uri: str, expected: str) -> None:
    assert k8s.storage_uri_for(uri) == expected


def test_storage_uri_for_custom_destination() -> None:
    assert (
        k8s.storage_uri_for("mlflow-artifacts:/3/x", artifacts_destination="s3://bucket/")
        == "s3://bucket/3/x/"
    )
    assert (
        k8s.storage_uri_for("mlflow-artifacts:/3/x", artifacts_destination="s3://bucket/deep/prefix/")
        == "s3://bucket/deep/prefix/3/x/"
    )


@pytest.mark.parametrize(
    ("uri", "destination", "match"),
    [
        ("models:/arrest@champion", k8s.MLFLOW_ARTIFACTS_DESTINATION, "resolve"),
        ("runs:/abc/model", k8s.MLFLOW_ARTIFACTS_DESTINATION, "resolve"),
        ("file:///tmp/model", k8s.MLFLOW_ARTIFACTS_DESTINATION, "cannot map"),
        ("/tmp/model", k8s.MLFLOW_ARTIFACTS_DESTINATION, "cannot map"),
        ("", k8s.MLFLOW_ARTIFACTS_DESTINATION, "empty"),
        ("mlflow-artifacts:/", k8s.MLFLOW_ARTIFACTS_DESTINATION, "no path"),
        ("mlflow-artifacts:/1/x", "gs://bucket/mlflow", "s3://"),
        ("s3://bucket", k8s.MLFLOW_ARTIFACTS_DESTINATION, "whole bucket"),
        ("s3:///key", k8s.MLFLOW_ARTIFACTS_DESTINATION, "no bucket"),
        ("s3://b/key?versionId=1", k8s.MLFLOW_ARTIFACTS_DESTINATION, "query"),
    ],
)
def test_storage_uri_for_rejects(uri: str, destination: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        k8s.storage_uri_for(uri, artifacts_destination=destination)


# ------------------------------------------------------------------------------------------------------------
# Other objects
# ------------------------------------------------------------------------------------------------------------


def test_support_objects() -> None:
    ns = k8s.models_namespace()
    assert ns["metadata"] == {"name": "models", "labels": {"app.kubernetes.io/part-of": "kubeflow-profile"}}
    sa = k8s.s3_service_account()
    assert sa["metadata"]["name"] == "kserve-s3"
    assert sa["secrets"] == [{"name": "kserve-s3"}]
    np = k8s.network_policy()
    assert np["metadata"]["namespace"] == "kubeflow"
    assert np["spec"]["podSelector"] == {"matchLabels": {"app": "seaweedfs"}}
    assert np["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8333}]
    allowed = [
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for f in np["spec"]["ingress"][0]["from"]
    ]
    assert allowed == ["models", "mlflow"]
    role, binding = k8s.deployer_rbac()
    assert role["rules"][0]["apiGroups"] == ["serving.kserve.io"]
    assert {"create", "patch", "get"} <= set(role["rules"][0]["verbs"])
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_mlflow_server_is_lean_and_uses_the_kfp_object_store() -> None:
    objs = {o["kind"]: o for o in k8s.mlflow_server(image="img:1")}
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs.kubeflow:9000"
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "mlflow-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert "--workers=1" in container["args"]
    assert "--artifacts-destination=s3://mlpipeline/mlflow" in container["args"]
    hosts = next(a for a in container["args"] if a.startswith("--allowed-hosts="))
    assert "mlflow.mlflow.svc.cluster.local:*" in hosts
    assert "localhost:*" in hosts
    assert container["image"] == "img:1"
    assert objs["Service"]["spec"]["ports"][0]["nodePort"] == k8s.MLFLOW_NODE_PORT
    assert k8s.MLFLOW_IN_CLUSTER_URI == "http://mlflow.mlflow.svc.cluster.local:5000"


# ------------------------------------------------------------------------------------------------------------
# manifests/ golden files and the CLI
# ------------------------------------------------------------------------------------------------------------


def test_committed_manifests_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = k8s.write_manifests(tmp_path)
    committed = sorted(p.name for p in MANIFESTS.glob("*.yaml"))
    assert [p.name for p in written] == committed, (
        "run: python -m chicago_arrest.k8s write-manifests manifests/"
    )
    for path in written:
        assert path.read_text() == (MANIFESTS / path.name).read_text(), (
            f"manifests/{path.name} is stale: run python -m chicago_arrest.k8s write-manifests manifests/"
        )
        assert path.read_text().startswith("# Generated by `python -m chicago_arrest.k8s write-manifests")
        assert "&id0" not in path.read_text()  # no YAML anchors


def test_manifest_examples() -> None:
    champion = yaml.safe_load_all((MANIFESTS / "inferenceservice-champion.yaml").read_text())
    canary = yaml.safe_load_all((MANIFESTS / "inferenceservice-canary.yaml").read_text())
    (champion_obj,) = [d for d in champion if d]
    (canary_obj,) = [d for d in canary if d]
    assert "canaryTrafficPercent" not in champion_obj["spec"]["predictor"]
    assert canary_obj["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert champion_obj["spec"]["predictor"]["model"]["storageUri"].endswith("/")
    runtime = yaml.safe_load_all((MANIFESTS / "servingruntime.yaml").read_text())
    assert next(d for d in runtime if d)["spec"]["containers"][0]["image"] == k8s.DEFAULT_IMAGE


def test_makefile_default_image_is_the_manifests_image() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^IMAGE \?= (\S+)$", makefile, flags=re.M)
    assert match
    assert match.group(1) == k8s.DEFAULT_IMAGE


def test_cli_write_and_render(tmp_path: Path, capsys: pytest.CaptureFixture[str], strict: Any) -> None:
    assert k8s.main(["write-manifests", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "servingruntime.yaml").is_file()
    capsys.readouterr()
    args = [
        "render-isvc",
        "--storage-uri",
        "mlflow-artifacts:/1/models/m-9/artifacts",
        "--model-version",
        "9",
    ]
    assert k8s.main([*args, "--canary", "25"]) == 0
    (obj,) = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://mlpipeline/mlflow/1/models/m-9/artifacts/"
    assert _errors(strict["InferenceService"], obj) == []
    assert k8s.main([*args, "--canary", "150"]) == 2
    assert "canary percent" in capsys.readouterr().err


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
    obj = k8s.inference_service(
        storage_uri="s3://mlpipeline/mlflow/1/models/m-new/artifacts/", model_version=7, canary_percent=canary
    )
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
    assert patch["spec"]["predictor"]["model"]["image"] is None
    assert patch["spec"]["predictor"]["model"]["storageUri"] == CHAMPION
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
        k8s.apply_inference_service(k8s.serving_runtime(), runner=_unexpected_runner)
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
