"""The real Makefile's cluster targets, against a fake Kubernetes API server and fake ``kind`` / ``docker``.

``make canary|promote|rollback|status TARGET=cluster`` run ``chicago-arrest serving ... --target cluster``,
which talks to the Kubernetes API through the Python client: here a fake API server on 127.0.0.1
(``tests/fake_kube.py``) named by a generated kubeconfig (``KUBECONFIG``), holding a 10 % canary of registry
version 2 over version 1. The tests assert the HTTP requests the targets send. ``make image`` and
``make kind-load`` run fake ``docker`` and ``kind`` first on PATH, which append their argv as one JSON line to a
log.

make runs with ``-o .venv/.synced``: the targets depend on the install stamp, and a test must never re-sync
``.venv`` (the stamp may be older than pyproject.toml / uv.lock while a change is in progress).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from chicago_arrest.core import names
from chicago_arrest.release import kserve
from tests.fake_kube import ISVC_PATH, REVISION_PATH, FakeKube, fake_kube

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
STAMP = ".venv/.synced"
MAKE = shutil.which("make")
IMAGE = names.DEFAULT_IMAGE
CLUSTER = "chicago-arrest"
CONTEXT = "kind-chicago-arrest"

pytestmark = [
    pytest.mark.skipif(MAKE is None, reason="make is not installed"),
    pytest.mark.skipif(
        not VENV_PYTHON.exists(), reason=f"{VENV_PYTHON} missing: run `make install` to create .venv first"
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="the Makefile needs bash"),
]

ISVC = ISVC_PATH.format(namespace="models", name=names.ISVC_NAME)
REV_1, REV_2 = (f"{names.ISVC_NAME}-predictor-0000{n}" for n in (1, 2))


def _revision(version: str) -> dict[str, Any]:
    env = [{"name": names.MODEL_VERSION_ENV, "value": version}]
    return {
        "metadata": {"name": f"rev-{version}"},
        "spec": {"containers": [{"name": "kserve-container", "env": env}]},
    }


def canary_objects() -> dict[str, dict[str, Any]]:
    """A 10 % canary of version 2 over version 1: the spec the deploy step applies, the status KServe writes."""
    isvc = kserve.render("2", "s3://models/arrest-predictor/v2/", canary_percent=10, profile="kind")
    isvc["status"] = {
        "url": f"http://{names.ISVC_NAME}.models.example.com",
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestCreatedRevision": REV_2,
                "latestReadyRevision": REV_2,
                "latestRolledoutRevision": REV_1,
                "traffic": [
                    {"revisionName": REV_2, "percent": 10, "latestRevision": True, "tag": "latest"},
                    {"revisionName": REV_1, "percent": 90, "latestRevision": False, "tag": "prev"},
                ],
            }
        },
    }
    revisions = {
        REVISION_PATH.format(namespace="models", name=r): _revision(v)
        for r, v in ((REV_1, "1"), (REV_2, "2"))
    }
    return {ISVC: isvc, **revisions}


_FAKE_KIND = """\
#!{python} -I
import json, os, sys
argv = ["kind", *sys.argv[1:]]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\\n")
if argv[1:3] == ["get", "clusters"]:
    clusters = os.environ.get("FAKE_KIND_CLUSTERS", "").split()
    print("\\n".join(clusters)) if clusters else print("No kind clusters found.", file=sys.stderr)
elif argv[1:3] == ["load", "docker-image"]:
    print("Image: " + argv[3] + " not yet present on node, loading...")
else:
    sys.exit("fake kind: unexpected command " + " ".join(argv))
"""

_FAKE_DOCKER = """\
#!{python} -I
import json, os, sys
argv = ["docker", *sys.argv[1:]]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\\n")
if argv[1:3] == ["image", "inspect"]:
    sys.exit(0 if os.environ.get("FAKE_DOCKER_HAS_IMAGE") == "1" else 1)
if argv[1] != "build":
    sys.exit("fake docker: unexpected command " + " ".join(argv))
"""

#: Make and Makefile variables that must not leak from the caller (e.g. `make test PERCENT=50`) into the runs.
_SCRUB = {
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
    "TARGET",
    "PERCENT",
    "KUBE_CONTEXT",
    "IMAGE",
    "CLUSTER_NAME",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]


@dataclass
class Sandbox:
    root: Path
    bin: Path
    log: Path
    kubeconfig: Path

    def tool(self, name: str, script: str) -> None:
        path = self.bin / name
        path.write_text(textwrap.dedent(script).format(python=sys.executable))
        path.chmod(0o755)

    def make(self, *args: str, path: str | None = None, env: Mapping[str, str] | None = None) -> Result:
        """Run the repository's Makefile; ``path`` replaces PATH (default: the fakes, then the real PATH)."""
        self.log.unlink(missing_ok=True)
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in _SCRUB and not k.startswith(("ARREST_", "MLFLOW_"))
        }
        base.update(
            {
                "PATH": path if path is not None else f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
                "FAKE_LOG": str(self.log),
                # Never the developer's cluster, MLflow server or .data/ folder.
                "KUBECONFIG": str(self.kubeconfig),
                "ARREST_DATA_DIR": str(self.root / "arrest-data"),
                "MLFLOW_TRACKING_URI": f"sqlite:///{self.root / 'empty-mlflow.db'}",
                **(env or {}),
            }
        )
        assert MAKE is not None
        proc = subprocess.run(
            [MAKE, "--no-print-directory", "-C", str(REPO_ROOT), "-o", STAMP, *args],
            env=base,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        calls = [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []
        return Result(proc.returncode, proc.stdout, proc.stderr, calls)


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with fake_kube(canary_objects()) as server:
        yield server


@pytest.fixture
def sandbox(tmp_path: Path, kube: FakeKube) -> Sandbox:
    box = Sandbox(tmp_path, tmp_path / "bin", tmp_path / "calls.jsonl", tmp_path / "kubeconfig")
    box.bin.mkdir()
    kube.kubeconfig(box.kubeconfig, context=CONTEXT)
    return box


def _patches(kube: FakeKube, kind: str = "apply") -> list[dict[str, Any]]:
    """The bodies of the PATCH requests the fake API received, asserting they are all of ``kind``.

    ``apply``: server-side applies of the whole object; ``percent``: JSON merge patches of
    ``spec.predictor.canaryTrafficPercent`` alone (a change of the split that keeps the model: no new revision).
    """
    patches = [r for r in kube.requests if r.method == "PATCH"]
    for request in patches:
        assert request.path == ISVC
        assert request.query["fieldManager"] == ["chicago-arrest"]
        if kind == "apply":
            assert request.content_type == "application/apply-patch+yaml"
        else:
            assert request.content_type == "application/merge-patch+json"
            assert "force" not in request.query
            assert list(request.body) == ["spec"]
            assert list(request.body["spec"]) == ["predictor"]
            assert list(request.body["spec"]["predictor"]) == ["canaryTrafficPercent"]
    return [r.body for r in patches]


def _env(body: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in body["spec"]["predictor"]["containers"][0]["env"]}


# ------------------------------------------------------------------------------------------------------------
# canary / rollback / status
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "percent"),
    [
        (["canary", "PERCENT=20", "TARGET=cluster"], 20),
        (["canary", "PERCENT=50", "TARGET=cluster"], 50),
        (["rollback", "TARGET=cluster"], 0),
        (["canary", "PERCENT=50", "TARGET=cluster", f"KUBE_CONTEXT={CONTEXT}"], 50),
    ],
    ids=["canary-20", "canary-50", "rollback", "canary-50-context"],
)
def test_traffic_targets_apply_the_inference_service(
    sandbox: Sandbox, kube: FakeKube, args: list[str], percent: int
) -> None:
    # the registry behind the 10 % canary (a rollback reads the challenger alias to know a canary is under way)
    result = sandbox.make(*args, env=seed_registry(sandbox))
    assert result.returncode == 0, result.stderr
    (body,) = _patches(
        kube, "percent"
    )  # issue 25: only the percentage, whatever the host's profile and image
    assert body["spec"]["predictor"]["canaryTrafficPercent"] == percent
    spec = kube.objects[ISVC]["spec"]["predictor"]
    assert (
        spec["containers"] == canary_objects()[ISVC]["spec"]["predictor"]["containers"]
    )  # template untouched
    assert _env(kube.objects[ISVC])[names.MODEL_VERSION_ENV] == "2"  # the challenger stays the spec
    assert f"canaryTrafficPercent {percent}" in result.stdout


def test_the_split_in_force_sends_no_patch(sandbox: Sandbox, kube: FakeKube) -> None:
    result = sandbox.make("canary", "PERCENT=10", "TARGET=cluster", env=seed_registry(sandbox))
    assert result.returncode == 0, result.stderr
    assert {r.method for r in kube.requests} == {"GET"}


def test_kube_context_picks_the_context(sandbox: Sandbox, kube: FakeKube) -> None:
    """The kubeconfig's current context is a dead server; KUBE_CONTEXT names the fake one."""
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    config["clusters"].append({"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}})
    config["contexts"].append({"name": "other", "context": {"cluster": "dead", "user": "fake"}})
    config["current-context"] = "other"
    sandbox.kubeconfig.write_text(json.dumps(config))
    result = sandbox.make("canary", "PERCENT=30", "TARGET=cluster", f"KUBE_CONTEXT={CONTEXT}")
    assert result.returncode == 0, result.stderr
    (body,) = _patches(kube, "percent")
    assert body["spec"]["predictor"]["canaryTrafficPercent"] == 30
    result = sandbox.make("canary", "PERCENT=30", "TARGET=cluster")
    assert result.returncode != 0
    assert "the cluster is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_reads_the_inference_service_and_its_revisions(sandbox: Sandbox, kube: FakeKube) -> None:
    result = sandbox.make("status", "TARGET=cluster")
    assert result.returncode == 0, result.stderr
    assert {r.path for r in kube.requests} == {
        ISVC,
        *(REVISION_PATH.format(namespace="models", name=r) for r in (REV_1, REV_2)),
    }
    assert all(r.method == "GET" for r in kube.requests)
    assert "Serving (cluster): champion 1 (90%), challenger 2 (10%)" in result.stdout
    assert f"http://{names.ISVC_NAME}.models.example.com" in result.stdout
    for revision, percent, version in ((REV_2, 10, "2"), (REV_1, 90, "1")):
        (line,) = [line for line in result.stdout.splitlines() if revision in line and "- {" in line]
        entry = json.loads(line.split("- ", 1)[1])
        assert (entry["percent"], entry["model_version"]) == (percent, version)


# ------------------------------------------------------------------------------------------------------------
# promote: the MLflow champion alias, then the InferenceService
# ------------------------------------------------------------------------------------------------------------

_SEED_REGISTRY = """\
from mlflow.tracking import MlflowClient
from chicago_arrest.core.names import CHALLENGER, CHAMPION, MODEL_NAME

client = MlflowClient()
client.create_registered_model(MODEL_NAME)
for number in (1, 2):
    client.create_model_version(MODEL_NAME, source=f"s3://mlpipeline/mlflow/1/models/m-{number}/artifacts")
client.set_registered_model_alias(MODEL_NAME, CHAMPION, "1")
client.set_registered_model_alias(MODEL_NAME, CHALLENGER, "2")
"""


def seed_registry(sandbox: Sandbox) -> dict[str, str]:
    """A SQLite registry with versions 1 (champion) and 2 (challenger); returns the env that names it."""
    registry = {"MLFLOW_TRACKING_URI": f"sqlite:///{sandbox.root / 'mlflow.db'}"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_"))} | registry
    # cwd: MLflow's default artifact root (./mlruns) must not land in the repository
    subprocess.run(
        [str(VENV_PYTHON), "-c", _SEED_REGISTRY], cwd=sandbox.root, env=env, check=True, capture_output=True
    )
    return registry


def test_promote_moves_the_champion_alias_then_serves_the_challenger_alone(
    sandbox: Sandbox, kube: FakeKube
) -> None:
    result = sandbox.make("promote", "TARGET=cluster", env=seed_registry(sandbox))
    assert result.returncode == 0, result.stderr
    (body,) = _patches(kube, "percent")  # the spec already runs version 2: the percentage goes, nothing else
    assert body["spec"]["predictor"] == {"canaryTrafficPercent": None}
    assert "canaryTrafficPercent" not in kube.objects[ISVC]["spec"]["predictor"]
    assert _env(kube.objects[ISVC])[names.MODEL_VERSION_ENV] == "2"
    lines = result.stdout.splitlines()
    registry_line = next(i for i, line in enumerate(lines) if "champion alias -> version 2 (was 1)" in line)
    traffic_line = next(i for i, line in enumerate(lines) if "serves champion 2" in line)
    assert registry_line < traffic_line


_SEED_PASSED = """\
from mlflow.tracking import MlflowClient
from chicago_arrest.core.names import GATE_TAG, MODEL_NAME
MlflowClient().set_model_version_tag(MODEL_NAME, "1", GATE_TAG, "passed")
"""


def test_promote_of_another_version_refuses_without_the_clusters_minio(
    sandbox: Sandbox, kube: FakeKube
) -> None:
    """Issue 25: the host cannot publish version 1 where STORAGE_URI points (no record, so no MinIO endpoint):
    one line says so, and the InferenceService is not pointed at a prefix that may not exist."""
    registry = seed_registry(sandbox)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_"))} | registry
    subprocess.run([str(VENV_PYTHON), "-c", _SEED_PASSED], cwd=sandbox.root, env=env, check=True)
    result = sandbox.make("promote", "VERSION=1", "TARGET=cluster", env=registry)
    assert result.returncode != 0
    assert "cannot publish version 1 from this host to s3://models/arrest-predictor/v1/" in result.stderr
    assert "no MinIO endpoint from this host" in result.stderr
    assert "Traceback" not in result.stderr
    assert _patches(kube) == []


# ------------------------------------------------------------------------------------------------------------
# failures
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("percent", ["150", "ten", "-1"])
def test_bad_percent_fails_before_any_request(sandbox: Sandbox, kube: FakeKube, percent: str) -> None:
    result = sandbox.make("canary", f"PERCENT={percent}", "TARGET=cluster")
    assert result.returncode != 0
    assert "--percent" in result.stderr
    assert kube.requests == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no-kubeconfig", "error: no Kubernetes configuration"),
        ("forbidden", "forbidden: this identity may not get inferenceservices.serving.kserve.io"),
        ("nothing-served", "run `make pipeline-run` first"),
    ],
)
def test_failures_are_one_clear_line(sandbox: Sandbox, kube: FakeKube, setup: str, message: str) -> None:
    if setup == "no-kubeconfig":
        sandbox.kubeconfig.unlink()
    elif setup == "forbidden":
        kube.fail[ISVC] = 403
    else:
        kube.objects.clear()  # no InferenceService, and an empty registry
    result = sandbox.make("canary", "PERCENT=10", "TARGET=cluster")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------------------
# image and kind-load (one image: KFP components and KServe predictor)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def tools(sandbox: Sandbox) -> Sandbox:
    """Fake docker and kind in a PATH of their own (plus grep and sed, which the Makefile uses)."""
    sandbox.tool("docker", _FAKE_DOCKER)
    sandbox.tool("kind", _FAKE_KIND)
    for name in ("grep", "sed"):
        real = shutil.which(name)
        assert real is not None
        (sandbox.bin / name).symlink_to(real)
    return sandbox


BUILD = ["docker", "build", "-t", IMAGE, "."]
GET_CLUSTERS = ["kind", "get", "clusters"]
LOAD = ["kind", "load", "docker-image", IMAGE, "--name", CLUSTER]


def test_image_loads_into_an_existing_cluster(tools: Sandbox) -> None:
    result = tools.make("image", path=str(tools.bin), env={"FAKE_KIND_CLUSTERS": f"other {CLUSTER}"})
    assert result.returncode == 0, result.stderr
    assert result.calls == [BUILD, GET_CLUSTERS, LOAD]
    assert f"Loading {IMAGE} into kind cluster {CLUSTER}" in result.stdout


def test_image_without_cluster_only_builds(tools: Sandbox) -> None:
    result = tools.make("image", path=str(tools.bin), env={"FAKE_KIND_CLUSTERS": f"{CLUSTER}-old"})
    assert result.returncode == 0, result.stderr
    assert result.calls == [BUILD, GET_CLUSTERS]
    assert "make kind-up will load" in result.stdout


def test_image_without_kind_only_builds(tools: Sandbox) -> None:
    (tools.bin / "kind").unlink()
    result = tools.make("image", path=str(tools.bin))
    assert result.returncode == 0, result.stderr
    assert result.calls == [BUILD]
    assert "kind is not installed" in result.stdout


def test_kind_load(tools: Sandbox) -> None:
    env = {"FAKE_KIND_CLUSTERS": CLUSTER, "FAKE_DOCKER_HAS_IMAGE": "1"}
    result = tools.make("kind-load", path=str(tools.bin), env=env)
    assert result.returncode == 0, result.stderr
    assert result.calls == [GET_CLUSTERS, ["docker", "image", "inspect", IMAGE], LOAD]
    assert f"Loaded {IMAGE} into kind cluster {CLUSTER}" in result.stdout


@pytest.mark.parametrize(
    ("missing", "env", "message"),
    [
        ("docker", {}, "error: docker is not installed"),
        ("kind", {}, "error: kind is not installed"),
        (None, {"FAKE_KIND_CLUSTERS": "other"}, f"error: kind cluster {CLUSTER} does not exist"),
        (None, {"FAKE_KIND_CLUSTERS": CLUSTER}, f"error: image {IMAGE} is not in the local Docker engine"),
    ],
    ids=["no-docker", "no-kind", "no-cluster", "no-image"],
)
def test_kind_load_failures(tools: Sandbox, missing: str | None, env: dict[str, str], message: str) -> None:
    if missing:
        (tools.bin / missing).unlink()
    result = tools.make("kind-load", path=str(tools.bin), env=env)
    assert result.returncode != 0
    assert message in result.stderr
    assert LOAD not in result.calls


def test_help_lists_kind_load() -> None:
    assert MAKE is not None
    out = subprocess.run(
        [MAKE, "--no-print-directory", "-C", str(REPO_ROOT), "help"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in _SCRUB},
    ).stdout
    targets = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"image", "kind-load", "kind-up", "canary", "promote", "rollback", "status"} <= targets


# ------------------------------------------------------------------------------------------------------------
# TARGET resolution: after make kind-up (its record in the data dir) the targets go to the cluster unasked
# ------------------------------------------------------------------------------------------------------------


class _FakeKfp(BaseHTTPRequestHandler):
    """A KFP API that records each request and answers 503 (the command then fails: only the address matters)."""

    paths: list[str] = []

    def _answer(self) -> None:
        type(self).paths.append(self.path)
        body = b'{"error": "fake KFP", "code": 14}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def kfp_host() -> Iterator[str]:
    _FakeKfp.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def record_cluster(sandbox: Sandbox, kfp: str = "http://127.0.0.1:9") -> Path:
    """What kind-cluster/up.sh writes at the end; the kubeconfig's current context is made a dead server."""
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    config["clusters"].append({"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}})
    config["contexts"].append({"name": "other", "context": {"cluster": "dead", "user": "fake"}})
    config["current-context"] = "other"
    sandbox.kubeconfig.write_text(json.dumps(config))
    path = sandbox.root / "arrest-data" / "cluster.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cluster_name": CLUSTER, "context": CONTEXT, "kfp_host": kfp}))
    return path


def _target_line(result: Result) -> str:
    """The command's first line (after make's echo of the recipe)."""
    lines = [line for line in result.stdout.splitlines() if not line.startswith(".venv/bin/python")]
    return lines[0] if lines else ""


def test_without_record_and_target_the_verbs_stay_local(sandbox: Sandbox, kube: FakeKube) -> None:
    result = sandbox.make("status")
    assert result.returncode == 0, result.stderr
    assert _target_line(result).startswith("target: local (no cluster recorded in ")
    assert "--target" not in result.stdout.splitlines()[0]  # TARGET empty: not passed
    assert kube.requests == []


@pytest.mark.parametrize("verb", [["status"], ["canary", "PERCENT=30"]], ids=["status", "canary"])
def test_after_kind_up_the_verbs_go_to_the_recorded_cluster(
    sandbox: Sandbox, kube: FakeKube, verb: list[str]
) -> None:
    path = record_cluster(sandbox)
    result = sandbox.make(*verb, env=seed_registry(sandbox))
    assert result.returncode == 0, result.stderr
    assert _target_line(result) == (
        f"target: cluster (make kind-up recorded kind cluster {CLUSTER} in {path}; TARGET=local runs locally)"
    )
    # the record's context, although the kubeconfig's current context is another (dead) server
    assert {r.path for r in kube.requests} >= {ISVC}
    if verb[0] == "canary":
        (body,) = _patches(kube, "percent")
        assert body["spec"]["predictor"]["canaryTrafficPercent"] == 30


def test_target_local_forces_the_local_path(sandbox: Sandbox, kube: FakeKube) -> None:
    record_cluster(sandbox)
    result = sandbox.make("status", "TARGET=local")
    assert result.returncode == 0, result.stderr
    assert _target_line(result) == "target: local (asked for: TARGET=local)"
    assert "Serving (local)" in result.stdout or "local" in result.stdout
    assert kube.requests == []


def test_pipeline_run_and_schedule_use_the_recorded_kfp(sandbox: Sandbox, kfp_host: str) -> None:
    record_cluster(sandbox, kfp=kfp_host)
    for target in ("pipeline-schedule", "pipeline-run"):
        _FakeKfp.paths = []
        result = sandbox.make(target, env={"KFP_HOST": ""})
        assert _target_line(result).startswith(
            f"target: cluster (make kind-up recorded kind cluster {CLUSTER}"
        )
        assert result.returncode != 0  # the fake KFP answers 503
        assert any(p.startswith("/apis/v2beta1/") for p in _FakeKfp.paths), (target, _FakeKfp.paths)


def test_pipeline_run_target_local_ignores_the_record(sandbox: Sandbox, kfp_host: str) -> None:
    record_cluster(sandbox, kfp=kfp_host)
    result = sandbox.make("pipeline-run", "TARGET=local", "MODELS=magic")  # stops at the usage error
    assert _target_line(result) == "target: local (asked for: TARGET=local)"
    assert "--models must list some of" in result.stderr
    assert _FakeKfp.paths == []
