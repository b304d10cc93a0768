"""Dry runs of ``kind-cluster/up.sh`` and ``down.sh`` against stub ``docker``/``kind``/``kubectl`` binaries.

The stubs record every call and model what the real cluster does to the script: KServe's llmisvc webhooks
reject LLM objects once llmisvc is scaled to 0, Knative's config webhook rejects ConfigMap patches until its
Service has a ready endpoint. Nothing here talks to Docker or Kubernetes; the host-port pre-check binds real
ports on 127.0.0.1 (free ones, picked by the kernel, or one the test holds).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from chicago_arrest.core import names
from tests.code.test_cluster_scripts import KIND_DIR, S3_ENDPOINT, VERSIONS, container_env, platform

# ------------------------------------------------------------------------------------------------------------
# Dry runs with stub binaries
# ------------------------------------------------------------------------------------------------------------

STUB = r"""#!/usr/bin/env bash
# Test stub: records the call, saves stdin of `-f -`, answers a few queries.
name="$(basename "$0")"
printf '%s %s\n' "${name}" "$*" >>"${STUB_DIR}/calls.log"
args=" $* "
if [[ -n "${STUB_FAIL:-}" && "${args}" == *"${STUB_FAIL}"* ]]; then
  echo "stub failure: ${STUB_FAIL}" >&2
  exit 1
fi
if [[ "${args}" == *" -f - "* ]]; then
  n="$(find "${STUB_DIR}" -name 'stdin-*' | wc -l | tr -d ' ')"
  cat >"${STUB_DIR}/stdin-$(printf '%03d' "${n}").yaml"
fi
case "${name}" in
  kind)
    case "$1" in
      get) [[ -f "${STUB_DIR}/cluster-exists" ]] && printf '%s\n' other "${STUB_CLUSTER}" ;;
      create)
        touch "${STUB_DIR}/cluster-exists"
        prev=""
        for arg in "$@"; do
          [[ "${prev}" == --config ]] && cp "${arg}" "${STUB_DIR}/kind-config.yaml"
          prev="${arg}"
        done
        ;;
      delete) rm -f "${STUB_DIR}/cluster-exists" ;;
      version) echo "kind v0.30.0 go1.24.6 linux/amd64" ;;
    esac
    ;;
  docker)
    case "$1" in
      info)
        if [[ "${args}" == *NCPU* ]]; then
          echo "${STUB_NCPU:-8}"
        elif [[ "${args}" == *MemTotal* ]]; then
          echo "${STUB_MEM:-17179869184}"
        fi
        ;;
      image) [[ -z "${STUB_NO_IMAGE:-}" ]] || exit 1 ;;
      port) [[ -z "${STUB_DOCKER_PORT:-}" ]] || printf '127.0.0.1:%s\n' "${STUB_DOCKER_PORT}" ;;
    esac
    ;;
  kubectl)
    # The webhooks of a real cluster, as far as up.sh meets them:
    # - KServe's llmisvc webhooks (failurePolicy Fail) reject LLM objects once llmisvc is scaled to 0;
    # - Knative's config webhook rejects ConfigMap patches until its Service has a ready endpoint.
    if [[ "${args}" == *"kserve-cluster-resources.yaml"* && -f "${STUB_DIR}/llmisvc-at-0" ]]; then
      echo 'failed calling webhook "llminferenceserviceconfig...validator": no endpoints available' >&2
      exit 1
    fi
    if [[ "${args}" == *" scale deployment llmisvc-controller-manager --replicas=0"* ]]; then
      touch "${STUB_DIR}/llmisvc-at-0"
    fi
    if [[ "${args}" == *" -n knative-serving patch configmap/"* && ! -f "${STUB_DIR}/knative-webhook-ready" ]]; then
      echo 'failed calling webhook "config.webhook.serving.knative.dev": no endpoints available' >&2
      exit 1
    fi
    if [[ "${args}" == *"jsonpath={.data.ingress}"* ]]; then
      printf '%s' "${STUB_INGRESS}"
    elif [[ "${args}" == *" get secret minio-root "* ]]; then
      if [[ -n "${STUB_MINIO_KEYS:-}" ]]; then
        [[ "${args}" == *MINIO_ROOT_USER* ]] && printf 'stored-user' || printf 'stored-password-value'
      else
        exit 1
      fi
    elif [[ "${args}" == *" create secret generic "* ]]; then
      for arg in "$@"; do
        if [[ "${arg}" == --from-env-file=* ]]; then
          printf 'kind: Secret\nenv: |\n'
          sed 's/^/  /' "${arg#--from-env-file=}"
        fi
      done
    elif [[ "${args}" == *" get deployment llmisvc-controller-manager "* ]]; then
      exit 0
    elif [[ "${args}" == *" get endpointslices "* ]]; then
      n="$(cat "${STUB_DIR}/endpointslice-polls" 2>/dev/null || echo 0)"
      echo $((n + 1)) >"${STUB_DIR}/endpointslice-polls"
      if ((n >= ${STUB_ENDPOINT_AFTER:-0})); then
        touch "${STUB_DIR}/knative-webhook-ready"
        printf '10.244.0.17'
      fi
    elif [[ "${args}" == *" get secret minio-users "* ]]; then
      [[ -n "${STUB_MINIO_KEYS:-}" ]] || exit 1
      [[ "${args}" =~ \"(MINIO_[A-Z]+_[A-Z]+_KEY)\" ]] && printf 'stored-%s' "${BASH_REMATCH[1]}"
    elif [[ "${args}" == *" get secret mlflow-s3 "* ]]; then
      printf '%s' "${STUB_MLFLOW_S3_USER:-}"
    fi
    ;;
esac
exit 0
"""

INGRESS = '{"ingressGateway": "knative-serving/knative-ingress-gateway", "ingressDomain": "example.com"}'


PORT_VARIABLES = (
    "KFP_HOST_PORT",
    "KOURIER_HOST_PORT",
    "MINIO_HOST_PORT",
    "MINIO_CONSOLE_HOST_PORT",
    "MLFLOW_HOST_PORT",
)


def free_ports(count: int) -> list[int]:
    """Ports that were free on 127.0.0.1 a moment ago (the kernel's ephemeral picks)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def stubs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "git"):
        path = bin_dir / tool
        path.write_text(STUB)
        path.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "STUB_DIR": str(state),
        "STUB_CLUSTER": "test-cluster",
        "STUB_INGRESS": INGRESS,
        "CLUSTER_NAME": "test-cluster",
        "IMAGE": "chicago-arrest:test",
        "POLL_SECONDS": "0",
        "ARREST_DATA_DIR": str(tmp_path / "data"),
        "TMPDIR": str(tmp_path),
        # free host ports: the pre-check binds them for real
        **dict(zip(PORT_VARIABLES, map(str, free_ports(len(PORT_VARIABLES))), strict=True)),
    }
    return state, env


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KIND_DIR / script)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _calls(state: Path) -> list[str]:
    return (state / "calls.log").read_text().splitlines()


def _index(calls: list[str], needle: str) -> int:
    for i, call in enumerate(calls):
        if needle in call:
            return i
    raise AssertionError(f"no call contains {needle!r}")


def test_up_sh_first_run(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("up.sh", env)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = _calls(state)
    kubectl = [c for c in calls if c.startswith("kubectl ")]
    assert all(c.startswith("kubectl --context kind-test-cluster ") for c in kubectl)

    create = calls[_index(calls, "kind create cluster")]
    assert f"--image {VERSIONS['KIND_NODE_IMAGE']}" in create
    assert "--name test-cluster" in create
    # kind-config.yaml rendered with the chosen host ports (a temporary file, removed afterwards)
    rendered = yaml.safe_load((state / "kind-config.yaml").read_text())
    committed = yaml.safe_load((KIND_DIR / "kind-config.yaml").read_text())
    chosen = {
        30080: env["KFP_HOST_PORT"],
        31080: env["KOURIER_HOST_PORT"],
        30900: env["MINIO_HOST_PORT"],
        30901: env["MINIO_CONSOLE_HOST_PORT"],
        30500: env["MLFLOW_HOST_PORT"],
    }
    (node,) = rendered["nodes"]
    assert {m["containerPort"]: str(m["hostPort"]) for m in node["extraPortMappings"]} == chosen
    for mapping in (*node["extraPortMappings"], *committed["nodes"][0]["extraPortMappings"]):
        mapping.pop("hostPort")
    assert rendered == committed  # nothing else changed
    assert not list(Path(env["TMPDIR"]).glob("kind-config.*")), "the rendered config is removed"
    assert "kind load docker-image chicago-arrest:test --name test-cluster" in calls
    for port in chosen.values():
        assert f"{port} free" in result.stdout

    v = VERSIONS
    order = [
        "kind create cluster",
        "kind load docker-image",
        f"cert-manager/releases/download/{v['CERT_MANAGER_VERSION']}/cert-manager.yaml",
        f"kustomize/cluster-scoped-resources?ref={v['KFP_VERSION']}",
        "crd/applications.app.k8s.io",
        f"kustomize/env/platform-agnostic?ref={v['KFP_VERSION']}",
        "create configmap ml-pipeline-apiserver-config",
        "patch deployment ml-pipeline --type strategic",
        "-n kubeflow wait --for=condition=Available deployment --all",
        f"serving/releases/download/{v['KNATIVE_SERVING_VERSION']}/serving-crds.yaml",
        f"serving/releases/download/{v['KNATIVE_SERVING_VERSION']}/serving-core.yaml",
        f"net-kourier/releases/download/{v['KNATIVE_KOURIER_VERSION']}/kourier.yaml",
        "-n knative-serving wait --for=condition=Available deployment/webhook",
        "get endpointslices -l kubernetes.io/service-name=webhook",
        "config-network",
        "config-domain",
        "config-deployment",
        "-n knative-serving wait --for=condition=Available deployment --all",
        "create namespace kserve",
        f"kserve/releases/download/{v['KSERVE_VERSION']}/kserve.yaml",
        "certificate/serving-cert",
        "patch configmap inferenceservice-config",
        "rollout restart deployment/kserve-controller-manager",
        "scale deployment llmisvc-controller-manager --replicas=0",
        "create namespace minio",
        "create secret generic minio-root",
        "create secret generic minio-users",
        "manifests/platform/minio.yaml",
        "rollout status deployment/minio",
        "delete job minio-buckets --ignore-not-found",
        "wait --for=condition=complete job/minio-buckets",
        "manifests/platform/models.yaml",
        "create secret generic kserve-s3",
        "annotate secret kserve-s3",
        "create secret generic payload-sink-s3",
        "create configmap chicago-arrest-config",
        "create secret generic chicago-arrest-s3",
        "create secret generic mlflow-s3",
        "rollout status deployment/mlflow",
    ]
    positions = [_index(calls, needle) for needle in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))

    assert "apply --server-side --force-conflicts" in calls[_index(calls, "kserve.yaml")]
    # research option (a): nothing that llmisvc's webhooks check is applied, so scaling it to 0 is safe
    assert not any("kserve-cluster-resources" in c for c in calls)
    # KFP's MLflow plugin off: the 2.17.0 config.json without `plugins`, mounted over /config/config.json
    patch = calls[_index(calls, "patch deployment ml-pipeline")]
    body = json.loads(patch.split(" -p ", 1)[1])["spec"]["template"]
    (mount,) = body["spec"]["containers"][0]["volumeMounts"]
    assert body["spec"]["containers"][0]["name"] == "ml-pipeline-api-server"
    assert (mount["mountPath"], mount["subPath"]) == ("/config/config.json", "config.json")
    assert body["spec"]["volumes"][0]["configMap"]["name"] == "ml-pipeline-apiserver-config"
    config_map = calls[_index(calls, "create configmap ml-pipeline-apiserver-config")]
    assert f"--from-file=config.json={KIND_DIR / 'kfp-apiserver-config.json'}" in config_map
    assert "registries-skipping-tag-resolving" in calls[_index(calls, "config-deployment")]
    assert '"example.com":""' in calls[_index(calls, "config-domain")]
    assert '"nodePort":30080' in calls[_index(calls, "patch service ml-pipeline-ui")]
    assert '"nodePort":31080' in calls[_index(calls, "patch service kourier")]
    assert "scale deployment llmisvc-controller-manager --replicas=0" in " ".join(calls)

    # the ingress JSON is merged, not replaced
    patch_call = calls[_index(calls, "patch configmap inferenceservice-config")]
    assert "disableIstioVirtualHost" in patch_call
    assert "ingressGateway" in patch_call

    annotate = calls[_index(calls, "annotate secret kserve-s3")]
    assert f"serving.kserve.io/s3-endpoint={S3_ENDPOINT}" in annotate
    assert "serving.kserve.io/s3-usehttps=0" in annotate

    # credentials: generated on the first run, passed by file, never on a command line
    stdin = {p.name: p.read_text() for p in sorted(state.glob("stdin-*.yaml"))}
    # the payload sink (issue 26) is applied with the image of the run
    (sink,) = [
        text for text in stdin.values() if "name: payload-sink\n" in text and "kind: Deployment" in text
    ]
    assert "image: chicago-arrest:test" in sink
    secrets = [text for text in stdin.values() if text.startswith("kind: Secret")]
    # minio-root, minio-users, models/kserve-s3, models/payload-sink-s3, kubeflow/chicago-arrest-s3, mlflow/mlflow-s3
    assert len(secrets) == 6
    root = next(s for s in secrets if "MINIO_ROOT_USER" in s)
    user = re.search(r"MINIO_ROOT_USER=(\S+)", root)
    password = re.search(r"MINIO_ROOT_PASSWORD=(\S+)", root)
    assert user
    assert password
    assert re.fullmatch(r"admin-[0-9a-f]{8}", user.group(1))
    assert re.fullmatch(r"[0-9a-f]{48}", password.group(1))
    assert "MinIO keys: generated" in result.stdout
    # the root keys are in minio-root only; each app has its own MinIO user (created by the bucket Job)
    for secret in secrets:
        if secret is not root:
            assert user.group(1) not in secret
            assert password.group(1) not in secret
    users = dict(
        re.findall(r"(MINIO_\w+_KEY)=(\S+)", next(s for s in secrets if "MINIO_STEPS_ACCESS_KEY" in s))
    )
    from chicago_arrest.cli.minio_users import APPS

    assert set(users) == {key for app in APPS for key in app.env_keys()}
    for app, id_key, secret_key in (
        ("STEPS", "ARREST_S3_ACCESS_KEY", "ARREST_S3_SECRET_KEY"),
        ("MLFLOW", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ("KSERVE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ("SINK", "ARREST_S3_ACCESS_KEY", "ARREST_S3_SECRET_KEY"),
    ):
        access, secret = users[f"MINIO_{app}_ACCESS_KEY"], users[f"MINIO_{app}_SECRET_KEY"]
        assert re.fullmatch(rf"{app.lower()}-[0-9a-f]{{8}}", access)
        assert re.fullmatch(r"[0-9a-f]{48}", secret)
        (own,) = [s for s in secrets if f"{id_key}={access}\n" in s]
        assert f"{secret_key}={secret}\n" in own
        assert secret not in "\n".join(calls)
    assert password.group(1) not in "\n".join(calls)
    assert "minio123" not in "\n".join(stdin.values())
    # the pipeline steps' Secret and ConfigMap (names used by src/chicago_arrest/pipelines/training.py)
    from chicago_arrest.pipelines.training import CONFIG_KEYS, CONFIG_MAP, SECRET, SECRET_KEYS

    step_secret = next(s for s in secrets if f"ARREST_S3_ACCESS_KEY={users['MINIO_STEPS_ACCESS_KEY']}\n" in s)
    assert all(f"{key}=" in step_secret for key in SECRET_KEYS)
    config_call = calls[_index(calls, f"create configmap {CONFIG_MAP}")]
    assert all(f"{key}=" in config_call for key in CONFIG_KEYS)
    assert "MLFLOW_TRACKING_URI=http://mlflow.mlflow.svc.cluster.local:5000" in config_call
    assert f"ARREST_S3_ENDPOINT={S3_ENDPOINT}" in config_call
    assert "ARREST_SERVING_IMAGE=chicago-arrest:test" in config_call
    assert "ARREST_SERVING_PROFILE=kind" in config_call
    assert f"ARREST_MODELS_BUCKET={names.MODELS_BUCKET}" in config_call
    assert f"create secret generic {SECRET}" in "\n".join(calls)

    # the platform manifests are applied with the image substituted
    job = next(text for text in stdin.values() if "name: minio-buckets" in text)
    assert "image: chicago-arrest:test" in job
    assert f"image: {names.DEFAULT_IMAGE}" not in job
    assert [d["kind"] for d in yaml.safe_load_all(job) if d] == ["Job"]
    mlflow = next(text for text in stdin.values() if "name: mlflow-data" in text)
    assert "image: chicago-arrest:test" in mlflow

    for variable in ("KFP_HOST_PORT", "MLFLOW_HOST_PORT", "KOURIER_HOST_PORT", "MINIO_CONSOLE_HOST_PORT"):
        assert f"http://localhost:{env[variable]}" in result.stdout

    # the record that sends the make targets to this cluster (chicago_arrest.core.targets reads it)
    from chicago_arrest.core.targets import read_record

    record = read_record(Path(env["ARREST_DATA_DIR"]) / "cluster.json")
    assert record is not None
    assert (record.cluster_name, record.context, record.image) == (
        "test-cluster",
        CONTEXT,
        "chicago-arrest:test",
    )
    assert record.kfp_host == f"http://localhost:{env['KFP_HOST_PORT']}"
    assert record.mlflow_uri == f"http://localhost:{env['MLFLOW_HOST_PORT']}"
    assert record.ingress_url == f"http://localhost:{env['KOURIER_HOST_PORT']}"


CONTEXT = "kind-test-cluster"


def test_up_sh_rerun_after_success(stubs: tuple[Path, dict[str, str]]) -> None:
    """The same stub cluster twice: the stubs reject what the real webhooks would (LLM objects once llmisvc is at
    0, Knative ConfigMap patches before the webhook has an endpoint), so the old script failed here."""
    state, env = stubs
    first = _run("up.sh", env | {"STUB_ENDPOINT_AFTER": "2"})
    assert first.returncode == 0, first.stdout + first.stderr
    assert (state / "llmisvc-at-0").exists()
    polls = int((state / "endpointslice-polls").read_text())
    assert polls == 3  # polled until the Service had a ready endpoint
    (state / "calls.log").unlink()
    second = _run("up.sh", env | {"STUB_MINIO_KEYS": "1"})
    assert second.returncode == 0, second.stdout + second.stderr
    calls = _calls(state)
    assert not any(c.startswith("kind create") for c in calls)
    assert "Checking host ports" not in second.stdout  # the cluster holds its ports itself
    assert not any("kserve-cluster-resources" in c for c in calls)
    assert _index(calls, "get endpointslices") < _index(calls, "patch configmap/config-network")
    assert "scale deployment llmisvc-controller-manager --replicas=0" in " ".join(calls)
    assert "MinIO app users (steps mlflow kserve sink): 4 kept" in second.stdout


def test_up_sh_rerun_restarts_mlflow_when_it_still_has_the_root_keys(
    stubs: tuple[Path, dict[str, str]],
) -> None:
    state, env = stubs
    (state / "cluster-exists").touch()
    result = _run("up.sh", env | {"STUB_MINIO_KEYS": "1", "STUB_MLFLOW_S3_USER": "stored-user"})
    assert result.returncode == 0, result.stdout + result.stderr
    calls = _calls(state)
    assert _index(calls, "rollout restart deployment/mlflow") < _index(
        calls, "rollout status deployment/mlflow"
    )
    (state / "calls.log").unlink()
    same = env | {"STUB_MINIO_KEYS": "1", "STUB_MLFLOW_S3_USER": "stored-MINIO_MLFLOW_ACCESS_KEY"}
    assert _run("up.sh", same).returncode == 0
    assert not any("rollout restart deployment/mlflow" in c for c in _calls(state))


def test_up_sh_rerun_is_idempotent(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    (state / "cluster-exists").touch()
    env |= {
        "STUB_INGRESS": '{"ingressGateway": "x", "disableIstioVirtualHost": true}',
        "STUB_MINIO_KEYS": "1",
        "KEEP_LLMISVC": "1",
        "KEEP_KFP_MLFLOW_PLUGIN": "1",
        "S3_ACCESS_KEY": "ignored-user",
        "S3_SECRET_KEY": "ignored-password",
    }
    result = _run("up.sh", env)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = _calls(state)
    assert not any(c.startswith("kind create") for c in calls)
    assert "already exists: reusing it" in result.stdout
    assert not any("rollout restart" in c for c in calls)
    assert not any("patch configmap inferenceservice-config" in c for c in calls)
    assert not any(
        "apiserver-config" in c or "deployment ml-pipeline" in c for c in calls
    )  # KEEP_KFP_MLFLOW_PLUGIN
    # KEEP_LLMISVC=1 brings llmisvc back after an earlier run scaled it to 0
    assert "scale deployment llmisvc-controller-manager --replicas=1" in " ".join(calls)
    assert "--replicas=0" not in " ".join(calls)
    secrets = [p.read_text() for p in state.glob("stdin-*.yaml") if p.read_text().startswith("kind: Secret")]
    # the keys MinIO was created with are kept (a new pair would lock everyone out of the existing data)
    assert len(secrets) == 6
    root = [s for s in secrets if "MINIO_ROOT_USER" in s]
    assert root == [s for s in secrets if "=stored-user\n" in s and "=stored-password-value\n" in s]
    assert any("ARREST_S3_ACCESS_KEY=stored-MINIO_STEPS_ACCESS_KEY\n" in s for s in secrets)
    assert any("ARREST_S3_ACCESS_KEY=stored-MINIO_SINK_ACCESS_KEY\n" in s for s in secrets)
    assert "reusing Secret minio/minio-root" in result.stdout
    assert "S3_ACCESS_KEY differs" in result.stderr
    assert "stored-password-value" not in "\n".join(calls)


def test_up_sh_takes_keys_from_the_environment(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("up.sh", env | {"S3_ACCESS_KEY": "my-user", "S3_SECRET_KEY": "my-long-secret"})
    assert result.returncode == 0, result.stdout + result.stderr
    secrets = [p.read_text() for p in state.glob("stdin-*.yaml") if p.read_text().startswith("kind: Secret")]
    assert [s for s in secrets if "=my-user\n" in s and "=my-long-secret\n" in s] == [
        s for s in secrets if "MINIO_ROOT_USER" in s
    ]
    short = _run("up.sh", env | {"S3_ACCESS_KEY": "my-user", "S3_SECRET_KEY": "short"})
    assert short.returncode != 0
    assert "at least 8 characters" in short.stderr


def test_up_sh_agrees_with_the_manifests() -> None:
    """up.sh's endpoint, buckets, URIs and images are the ones manifests/platform and chicago_arrest.core.names use."""
    up = (KIND_DIR / "up.sh").read_text()

    def value(name: str) -> str:
        match = re.search(rf'^{name}="([^"]*)"$', up, flags=re.M)
        assert match, name
        return match.group(1)

    mlflow_env = container_env("Deployment", "mlflow")
    assert value("S3_ENDPOINT") == S3_ENDPOINT
    assert mlflow_env["MLFLOW_S3_ENDPOINT_URL"] == f"http://{S3_ENDPOINT}"
    assert value("S3_REGION") == mlflow_env["AWS_DEFAULT_REGION"]
    assert (
        value("DATA_BUCKET"),
        value("MLFLOW_BUCKET"),
        value("MODELS_BUCKET"),
        value("SERVED_BUCKET"),
    ) == names.BUCKETS
    (port,) = platform("Service", "mlflow")["spec"]["ports"]
    assert (
        value("MLFLOW_IN_CLUSTER_URI")
        == f"http://mlflow.{names.MLFLOW_NAMESPACE}.svc.cluster.local:{port['port']}"
    )
    assert value("DEFAULT_IMAGE") == names.DEFAULT_IMAGE
    (minio,) = platform("Deployment", "minio")["spec"]["template"]["spec"]["containers"]
    assert VERSIONS["MINIO_IMAGE"] == minio["image"]
    from chicago_arrest.core.settings import Settings

    assert Settings().s3_bucket == names.DATA_BUCKET
    assert Settings().models_bucket == names.MODELS_BUCKET


def test_up_sh_refuses_without_the_image(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("up.sh", env | {"STUB_NO_IMAGE": "1"})
    assert result.returncode != 0
    assert "make image" in result.stderr
    assert not any(c.startswith("kind create") for c in _calls(state))


def test_down_sh(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("down.sh", env)
    assert result.returncode == 0, result.stderr
    assert "nothing to delete" in result.stdout
    assert not any(c.startswith("kind delete") for c in _calls(state))

    (state / "cluster-exists").touch()
    result = _run("down.sh", env)
    assert result.returncode == 0, result.stderr
    assert "kind delete cluster --name test-cluster" in _calls(state)


# ------------------------------------------------------------------------------------------------------------
# Host ports: checked before anything is created, only when the cluster does not exist yet
# ------------------------------------------------------------------------------------------------------------


def test_up_sh_names_a_taken_port_and_creates_nothing(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = _run("up.sh", env | {"MLFLOW_HOST_PORT": str(taken)})
    assert result.returncode != 0
    assert f"port {taken} (MLflow, NodePort 30500) is taken on 127.0.0.1" in result.stderr
    assert "MLFLOW_HOST_PORT=<port> make kind-up" in result.stderr
    assert "1 host port(s) taken" in result.stderr
    calls = _calls(state)
    assert not any(c.startswith(("kind create", "kubectl")) for c in calls)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"KFP_HOST_PORT": "http"}, "KFP_HOST_PORT=http is not a port number"),
        ({"KOURIER_HOST_PORT": "70000"}, "KOURIER_HOST_PORT=70000 is not a port number"),
        ({"MINIO_HOST_PORT": "MINIO_CONSOLE_HOST_PORT"}, "is not a port number"),
    ],
)
def test_up_sh_refuses_bad_ports(
    stubs: tuple[Path, dict[str, str]], override: dict[str, str], message: str
) -> None:
    state, env = stubs
    result = _run("up.sh", env | override)
    assert result.returncode != 0
    assert message in result.stderr
    assert not any(c.startswith("kind create") for c in _calls(state))


def test_up_sh_refuses_a_port_given_twice(stubs: tuple[Path, dict[str, str]]) -> None:
    _state, env = stubs
    result = _run("up.sh", env | {"MINIO_CONSOLE_HOST_PORT": env["MINIO_HOST_PORT"]})
    assert result.returncode != 0
    assert f"MINIO_CONSOLE_HOST_PORT={env['MINIO_HOST_PORT']}: that host port is given twice" in result.stderr


def test_up_sh_rerun_keeps_the_clusters_ports(stubs: tuple[Path, dict[str, str]]) -> None:
    """On a re-run the cluster's own container holds the ports: no check, and the record takes Docker's mapping."""
    state, env = stubs
    (state / "cluster-exists").touch()
    with socket.socket() as holder:  # as the kind node would hold it
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = _run("up.sh", env | {"KFP_HOST_PORT": str(taken), "STUB_DOCKER_PORT": "3999"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Checking host ports" not in result.stdout
    record = json.loads((Path(env["ARREST_DATA_DIR"]) / "cluster.json").read_text())
    assert record["kfp_host"] == "http://localhost:3999"
    assert record["s3_endpoint"] == "localhost:3999"


def test_down_sh_removes_the_record_of_its_cluster(stubs: tuple[Path, dict[str, str]]) -> None:
    _state, env = stubs
    record = Path(env["ARREST_DATA_DIR"]) / "cluster.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"cluster_name": "other-cluster"}\n')
    assert _run("down.sh", env).returncode == 0
    assert record.exists()  # another cluster's record stays
    record.write_text('{\n  "cluster_name": "test-cluster",\n  "context": "kind-test-cluster"\n}\n')
    result = _run("down.sh", env)
    assert result.returncode == 0, result.stderr
    assert not record.exists()
    assert "run locally again" in result.stdout


# ------------------------------------------------------------------------------------------------------------
# Issue 25: a failure once the cluster exists writes the diagnostics archive and says where
# ------------------------------------------------------------------------------------------------------------


def test_up_sh_failure_writes_diagnostics_and_prints_where(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    env |= {"STUB_FAIL": "rollout status deployment/mlflow", "PYTHON": str(Path(env["HOME"]) / "no-python")}
    result = _run("up.sh", env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("diagnostics: "), result.stderr
    archive = Path(last.split(": ", 1)[1])
    assert archive.is_file()
    assert archive.parent == Path(env["ARREST_DATA_DIR"]) / "diagnostics"
    assert any(c.startswith("kubectl --context kind-test-cluster describe nodes") for c in _calls(state))
    assert not list(Path(env["TMPDIR"]).glob("kind-config.*")), "the rendered config is removed"
    # before the cluster exists there is nothing to diagnose; SKIP_DIAGNOSE=1 skips it
    (state / "calls.log").unlink()
    assert _run("up.sh", env | {"SKIP_DIAGNOSE": "1"}).returncode != 0
    assert not any("describe nodes" in c for c in _calls(state))


def test_up_sh_failure_before_the_cluster_writes_no_diagnostics(stubs: tuple[Path, dict[str, str]]) -> None:
    _state, env = stubs
    result = _run("up.sh", env | {"STUB_NO_IMAGE": "1"})
    assert result.returncode != 0
    assert "diagnostics" not in result.stderr
    assert not (Path(env["ARREST_DATA_DIR"]) / "diagnostics").exists()


# ------------------------------------------------------------------------------------------------------------
# Issue 25: the small profile (a 4 vCPU / 16 GB hosted runner) keeps the resource check, with its own numbers
# ------------------------------------------------------------------------------------------------------------

RUNNER = {"STUB_NCPU": "4", "STUB_MEM": str(16_000_000_000)}  # what Docker reports on a 16 GB runner: 14 GiB


def test_up_sh_small_profile_checks_a_runners_resources_and_records_the_profile(
    stubs: tuple[Path, dict[str, str]],
) -> None:
    _state, env = stubs
    laptop = _run("up.sh", env | RUNNER)
    assert laptop.returncode == 0, laptop.stdout + laptop.stderr
    assert "Docker has 4 CPUs / 14 GiB: 8 CPUs / 16 GB are recommended" in laptop.stderr
    record = json.loads((Path(env["ARREST_DATA_DIR"]) / "cluster.json").read_text())
    assert record["cluster_profile"] == "laptop"
    small = _run("up.sh", env | RUNNER | {"CLUSTER_PROFILE": "small"})
    assert small.returncode == 0, small.stdout + small.stderr
    assert "Docker has" not in small.stderr
    assert "profile small: the small profile needs 4 CPUs / 16 GB" in small.stdout
    record = json.loads((Path(env["ARREST_DATA_DIR"]) / "cluster.json").read_text())
    assert (record["cluster_profile"], record["serving_profile"]) == ("small", "kind")
    # the check is kept, not skipped: a smaller machine still gets the warning
    tiny = _run("up.sh", env | {"STUB_NCPU": "2", "STUB_MEM": str(8 * 1024**3), "CLUSTER_PROFILE": "small"})
    assert "Docker has 2 CPUs / 8 GiB: the small profile needs 4 CPUs / 16 GB" in tiny.stderr


def test_up_sh_refuses_an_unknown_profile(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("up.sh", env | {"CLUSTER_PROFILE": "huge"})
    assert result.returncode != 0
    assert "CLUSTER_PROFILE=huge is not one of laptop, small" in result.stderr
    assert not any(c.startswith("kind create") for c in _calls(state))
