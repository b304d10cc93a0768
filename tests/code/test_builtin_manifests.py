"""Built-in Kubernetes objects in manifests/ validate against the Kubernetes 1.34 OpenAPI schemas, strictly.

Every ``*.yaml`` under manifests/ (any depth) is read; each document that is a built-in kind (core ``v1``,
``apps/v1``, ``batch/v1``, ``rbac.authorization.k8s.io/v1``, ``networking.k8s.io/v1``, ``policy/v1``, ...)
is validated with kubernetes-validate in strict mode, so a misspelt or misplaced field is an error, as it is
for ``kubectl apply --validate=strict``; so is every object that a kustomization renders. Custom resources
(KServe, Knative, ...) are checked against their CRDs in test_manifests.py; ``kustomization.yaml`` files and JSON
6902 patch files (YAML lists) are not objects and are skipped.

The schema version is the kind node's Kubernetes minor (kind-cluster/versions.env, ``kindest/node:v1.34.0``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from tests.code import kustomize_lite

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "manifests"
VERSIONS_ENV = REPO_ROOT / "kind-cluster" / "versions.env"
#: Kubernetes minor of the kind node image; kubernetes-validate must ship schemas for exactly this one.
KUBERNETES_VERSION = "1.34"

#: API groups served by kube-apiserver itself ("" is the core group, ``apiVersion: v1``). Anything else is a
#: custom resource (``serving.kserve.io``, ``serving.knative.dev``, ``kustomize.config.k8s.io``, Gateway API
#: ``gateway.networking.k8s.io``, ...).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
    }
)
#: Kinds the project's manifests must contain somewhere under manifests/, whatever the folder layout.
EXPECTED_KINDS = frozenset(
    {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
    }
)


@dataclass(frozen=True)
class Document:
    path: str  # relative to manifests/
    index: int  # position in the file's YAML stream
    obj: Any

    @property
    def id(self) -> str:
        if isinstance(self.obj, dict):
            name = (self.obj.get("metadata") or {}).get("name", "?")
            return f"{self.path}#{self.index}:{self.obj.get('kind', '?')}/{name}"
        return f"{self.path}#{self.index}:{type(self.obj).__name__}"


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def is_builtin(obj: Any) -> bool:
    """Whether a YAML document is an object of a built-in API group (true for anything with a bad apiVersion)."""
    if not isinstance(obj, dict):
        return False
    api_version = obj.get("apiVersion")
    return not isinstance(api_version, str) or _group(api_version) in BUILTIN_GROUPS


def load_documents(root: Path = MANIFESTS) -> list[Document]:
    """Every non-empty YAML document of every ``*.yaml`` under ``root`` except ``kustomization.yaml``."""
    documents = []
    for path in sorted(root.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for index, obj in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if obj is not None:
                documents.append(Document(path.relative_to(root).as_posix(), index, obj))
    return documents


def validation_errors(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict validation errors of one object against the schemas of Kubernetes ``version`` (empty: valid)."""
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str):
            return [f"{key} is missing or not a string"]
    try:
        validated = kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        location = ".".join(str(part) for part in exc.path) or "<root>"
        return [f"{location}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    # kubernetes-validate silently falls back to an older schema set; the node's minor must be there.
    assert validated == version, f"validated against Kubernetes {validated}, not {version}"
    return []


DOCUMENTS = load_documents()
BUILTIN = [doc for doc in DOCUMENTS if is_builtin(doc.obj)]


def test_kubernetes_version_is_the_kind_node_version() -> None:
    match = re.search(r"^KIND_NODE_IMAGE=kindest/node:v(\d+\.\d+)\.\d+", VERSIONS_ENV.read_text(), flags=re.M)
    assert match, f"no KIND_NODE_IMAGE=kindest/node:vX.Y.Z in {VERSIONS_ENV}"
    assert match.group(1) == KUBERNETES_VERSION, "update KUBERNETES_VERSION to the kind node's minor"
    shipped = {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    assert KUBERNETES_VERSION in shipped


@pytest.mark.parametrize("doc", BUILTIN, ids=[doc.id for doc in BUILTIN])
def test_builtin_object_is_valid_in_strict_mode(doc: Document) -> None:
    assert validation_errors(doc.obj) == [], doc.id


@pytest.mark.parametrize("kustomization", ["base", "overlays/kind", "overlays/canary", "platform"])
def test_rendered_builtin_objects_are_valid(kustomization: str) -> None:
    rendered = [obj for obj in kustomize_lite.build(MANIFESTS / kustomization) if is_builtin(obj)]
    assert rendered or kustomization != "platform"
    for obj in rendered:
        assert validation_errors(obj) == [], (kustomization, obj["kind"], obj["metadata"]["name"])


def test_only_objects_and_patch_lists_are_skipped() -> None:
    """Nothing escapes validation by accident: a skipped document is a custom resource or a JSON 6902 patch."""
    for doc in DOCUMENTS:
        if is_builtin(doc.obj):
            continue
        if isinstance(doc.obj, list):
            assert all(isinstance(op, dict) and "op" in op and "path" in op for op in doc.obj), doc.id
        else:
            assert isinstance(doc.obj, dict), doc.id
            assert isinstance(doc.obj.get("kind"), str), doc.id


def test_expected_kinds_are_present() -> None:
    present = {doc.obj["kind"] for doc in BUILTIN if isinstance(doc.obj.get("kind"), str)}
    missing = EXPECTED_KINDS - present
    assert not missing, f"no {sorted(missing)} in any manifests/**/*.yaml (found {sorted(present)})"


# ------------------------------------------------------------------------------------------------------------
# The validator itself catches errors (so a passing run above means something)
# ------------------------------------------------------------------------------------------------------------

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "demo", "namespace": "models"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "demo"}},
        "template": {
            "metadata": {"labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "demo", "image": "chicago-arrest:0.1.0"}]},
        },
    },
}
SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "demo", "namespace": "models"},
    "spec": {"selector": {"app": "demo"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
}


def test_valid_examples_pass() -> None:
    assert validation_errors(DEPLOYMENT) == []
    assert validation_errors(SERVICE) == []


def _broken(obj: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_broken(DEPLOYMENT, ["spec", "replicas"], "one"), "spec.replicas: 'one' is not of type 'integer'"),
        (
            _broken(DEPLOYMENT, ["spec", "template", "spec", "containers", 0, "imagePullPolicyy"], "Never"),
            "spec.template.spec.containers.0: Additional properties are not allowed "
            "('imagePullPolicyy' was unexpected)",
        ),
        (
            _broken(SERVICE, ["spec", "prots"], [{"port": 80}]),
            "spec: Additional properties are not allowed ('prots' was unexpected)",
        ),
        (
            _broken(DEPLOYMENT, ["apiVersion"], "apps/v1beta1"),
            "Couldn't find schema for kind Deployment with api version apps/v1beta1",
        ),
        (_broken(SERVICE, ["kind"], "Servcie"), "Couldn't find schema for kind Servcie"),
    ],
    ids=["replicas-not-int", "container-typo", "service-typo", "removed-api-version", "kind-typo"],
)
def test_validator_catches_errors(obj: dict[str, Any], expected: str) -> None:
    errors = validation_errors(obj)
    assert len(errors) == 1
    assert errors[0].startswith(expected), errors


def test_missing_selector_is_an_error() -> None:
    deployment = copy.deepcopy(DEPLOYMENT)
    del deployment["spec"]["selector"]
    assert validation_errors(deployment) == ["spec: 'selector' is a required property"]


def test_discovery_is_recursive_and_skips_kustomizations(tmp_path: Path) -> None:
    (tmp_path / "overlays" / "kind").mkdir(parents=True)
    (tmp_path / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1beta1\n")
    (tmp_path / "overlays" / "kind" / "svc.yaml").write_text(
        yaml.safe_dump(SERVICE) + "---\n" + yaml.safe_dump(DEPLOYMENT)
    )
    (tmp_path / "overlays" / "kind" / "patch.yaml").write_text("- op: replace\n  path: /spec/x\n  value: 1\n")
    ids = [doc.id for doc in load_documents(tmp_path)]
    assert ids == [
        "overlays/kind/patch.yaml#0:list",
        "overlays/kind/svc.yaml#0:Service/demo",
        "overlays/kind/svc.yaml#1:Deployment/demo",
    ]
    custom = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService"}
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway"}
    assert [is_builtin(o) for o in (SERVICE, DEPLOYMENT, custom, gateway, [])] == [
        True,
        True,
        False,
        False,
        False,
    ]
