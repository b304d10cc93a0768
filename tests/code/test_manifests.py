"""manifests/ against the real KServe v0.20.0 CRD: the files, every rendered kustomization, the package data.

The YAML under manifests/ is hand-written; these tests check that every InferenceService in it validates, that
the overlays change what a run changes, and that the deploy path applies the same base (package data).
"""

from __future__ import annotations

import copy
import functools
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

from chicago_arrest.core import names
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.registry.state import Split
from chicago_arrest.release import kserve
from tests.code import kustomize_lite

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


def load_schemas() -> dict[str, dict[str, Any]]:
    loaded = {}
    for kind, filename in CRD_FILES.items():
        crd = yaml.load(_crd_bytes(filename), Loader=_Loader)
        assert crd["spec"]["names"]["kind"] == kind
        loaded[kind] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return loaded


@functools.cache
def isvc_validator() -> jsonschema.Draft7Validator:
    """The InferenceService CRD schema, tightened to reject unknown fields."""
    return jsonschema.Draft7Validator(tighten(load_schemas()["InferenceService"]))


def crd_errors(obj: dict[str, Any]) -> list[str]:
    """Errors of an InferenceService against the tightened CRD, plus the rules the CRD leaves to the webhook."""
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in isvc_validator().iter_errors(obj)]
    try:
        kserve.check_name(obj["metadata"]["name"], obj["metadata"]["namespace"])
        if "canaryTrafficPercent" in obj["spec"]["predictor"]:
            Split("1", "2", obj["spec"]["predictor"]["canaryTrafficPercent"])
    except ReleaseError as exc:
        errors.append(str(exc))
    logger = obj["spec"]["predictor"].get("logger")
    # kserve v0.20.0 pkg/apis/serving/v1beta1/component.go validateLogger: the webhook rejects an empty mode
    # (the CRD has no default), and a storage block without path, parameters and key.
    if logger is not None and logger.get("mode") not in ("all", "request", "response"):
        errors.append(
            f"spec.predictor.logger.mode must be all, request or response, got {logger.get('mode')!r}"
        )
    if (
        logger is not None
        and "storage" in logger
        and not {"path", "parameters", "key"} <= set(logger["storage"])
    ):
        errors.append("spec.predictor.logger.storage needs path, parameters and key")
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


def test_tighten_only_touches_schema_objects() -> None:
    schemas = load_schemas()
    assert set(schemas) == set(CRD_FILES)
    tight = tighten(schemas["InferenceService"])
    assert tight["additionalProperties"] is False
    # status keeps x-kubernetes-preserve-unknown-fields and stays open
    assert "additionalProperties" not in tight["properties"]["status"]
    # a property *named* like a keyword is a schema, not a keyword map
    model = tight["properties"]["spec"]["properties"]["predictor"]["properties"]["model"]
    assert model["additionalProperties"] is False
    assert model["properties"]["modelFormat"]["additionalProperties"] is False


def test_the_predictor_logs_to_the_payload_sink_and_the_rules_catch_a_broken_logger() -> None:
    """Issue 26: KServe's logger (mode all, url = the payload sink's Service), validated as the webhook would."""
    obj = kserve.base_inference_service()
    logger = obj["spec"]["predictor"]["logger"]
    sink = f"http://{names.PAYLOAD_SINK}.{names.MODELS_NAMESPACE}.svc.cluster.local/"
    assert logger == {"mode": "all", "url": sink}
    service = next(
        doc for path, doc in _documents() if path == "platform/payload-sink.yaml" and doc["kind"] == "Service"
    )
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (
        names.PAYLOAD_SINK,
        names.MODELS_NAMESPACE,
    )
    assert service["spec"]["ports"][0]["port"] == 80  # the url has no port
    for broken in ({"url": sink}, {"mode": "everything", "url": sink}, {"mode": "all", "urls": sink}):
        obj["spec"]["predictor"]["logger"] = broken
        assert crd_errors(obj), broken
    obj["spec"]["predictor"]["logger"] = {
        "mode": "all",
        "url": "s3://inference-logs",
        "storage": {"path": "p"},
    }
    assert crd_errors(obj)  # the blob sink needs path, parameters and key (not used here: docs/monitoring.md)


def test_tightened_crd_catches_a_misspelt_field() -> None:
    obj = kserve.base_inference_service()
    obj["spec"]["predictor"]["containers"][0]["storageURI"] = "s3://x/"
    assert crd_errors(obj)
    obj = kserve.base_inference_service()
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 150  # int64 for the CRD; 0..100 for us
    assert crd_errors(obj)


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


def test_every_inference_service_file_validates() -> None:
    isvcs = [
        (path, doc)
        for path, doc in _documents()
        if isinstance(doc, dict) and doc["kind"] == "InferenceService"
    ]
    assert [path for path, _ in isvcs] == ["base/inferenceservice.yaml"]
    for path, doc in isvcs:
        assert crd_errors(doc) == [], path


def test_manifests_are_hand_written_and_hold_no_secrets() -> None:
    text = "\n".join(path.read_text() for path in MANIFESTS.rglob("*.yaml"))
    assert "Generated by" not in text
    assert "Do not edit" not in text
    assert "minio123" not in text
    assert "AWS_SECRET_ACCESS_KEY:" not in text  # only secretKeyRef keys, never values
    assert "MINIO_ROOT_PASSWORD:" not in text
    assert all(doc.get("kind") != "Secret" for _, doc in _documents() if isinstance(doc, dict))


def rendered(kustomization: str) -> list[dict[str, Any]]:
    return kustomize_lite.build(MANIFESTS / kustomization)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_inference_service_validates(kustomization: str) -> None:
    for obj in rendered(kustomization):
        if obj["kind"] == "InferenceService":
            assert crd_errors(obj) == [], kustomization


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

    assert sorted(real, key=key) == sorted(rendered(kustomization), key=key)


def test_overlays_are_what_a_run_applies() -> None:
    """overlays/kind and overlays/canary change exactly what KServeTraffic changes for a kind cluster."""
    (kind,) = rendered("overlays/kind")
    (canary,) = rendered("overlays/canary")
    assert kind == kserve.render("1", "s3://models/arrest-predictor/v1/", profile="kind")
    assert canary == kserve.render("2", "s3://models/arrest-predictor/v2/", canary_percent=10, profile="kind")
    (base,) = rendered("base")
    assert base == kserve.base_inference_service()
    assert kserve.render("1", "s3://models/arrest-predictor/v1/") == base


def test_canary_overlay_guards_its_env_indices() -> None:
    """The canary patch addresses env entries by index; its `test` ops fail on a reordered env."""
    (base,) = rendered("overlays/kind")
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
    assert match.group(1) in (names.DEFAULT_IMAGE, f"{names.IMAGE_REPOSITORY}:$(PROJECT_VERSION)")
    (job,) = [doc for path, doc in _documents() if path == "platform/minio-buckets.yaml"]
    (buckets,) = job["spec"]["template"]["spec"]["containers"]
    assert buckets["command"] == ["chicago-arrest", "store", "ensure-buckets", *names.BUCKETS]
    assert buckets["image"] == names.DEFAULT_IMAGE
