"""The real Makefile's cluster targets, run with fake ``kubectl``, ``kind`` and ``docker`` first on PATH.

``make canary|promote|rollback|status TARGET=cluster`` go through ``chicago_arrest.cli`` to
:mod:`chicago_arrest.k8s`; each fake tool appends its argv as one JSON line to a log, so the tests can assert
the exact command lines the targets produce. ``make image`` and ``make kind-load`` are checked the same way.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chicago_arrest import k8s

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
STAMP = ".venv/.synced"
MAKE = shutil.which("make")
IMAGE = "chicago-arrest:0.1.0"
CLUSTER = "chicago-arrest"

pytestmark = [
    pytest.mark.skipif(MAKE is None, reason="make is not installed"),
    pytest.mark.skipif(
        not VENV_PYTHON.exists(), reason=f"{VENV_PYTHON} missing: run `make install` to create .venv first"
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="the Makefile needs bash"),
]

ISVC = "arrest-predictor"
REV_1 = f"{ISVC}-predictor-00001"
REV_2 = f"{ISVC}-predictor-00002"
PATCHED = f"inferenceservice.serving.kserve.io/{ISVC} patched"

#: What `kubectl get isvc arrest-predictor -o json` returns during a 10% canary of version 2 over version 1: the
#: spec exactly as the deploy step builds it, plus the status KServe writes.
CANARY_ISVC: dict[str, Any] = {
    **k8s.inference_service(
        storage_uri="s3://mlpipeline/mlflow/1/models/m-2/artifacts/", model_version=2, canary_percent=10
    ),
    "status": {
        "url": f"http://{ISVC}.models.example.com",
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
    },
}


def _revision(name: str, version: str) -> dict[str, Any]:
    env = [{"name": "ARREST_SERVER_MODEL_VERSION", "value": version}]
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": name, "namespace": "models"},
        "spec": {"containers": [{"name": "kserve-container", "env": env}]},
    }


#: What `kubectl get revisions.serving.knative.dev REV_1 REV_2 -o json` returns (a List).
REVISIONS: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [_revision(REV_1, "1"), _revision(REV_2, "2")],
}

# The fakes run with the test's interpreter, in isolated mode (no site-packages, no PYTHON* variables).
_FAKE_KUBECTL = """\
#!{python} -I
import json, os, sys
argv = ["kubectl", *sys.argv[1:]]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\\n")
data = os.environ["FAKE_DATA"]
if "patch" in argv:
    print("inferenceservice.serving.kserve.io/" + argv[argv.index("patch") + 2] + " patched")
elif "get" in argv and "isvc" in argv:
    print(open(os.path.join(data, "isvc.json")).read())
elif "get" in argv and "revisions.serving.knative.dev" in argv:
    print(open(os.path.join(data, "revisions.json")).read())
else:
    sys.exit("fake kubectl: unexpected command " + " ".join(argv))
"""

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
    data: Path

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
                "FAKE_DATA": str(self.data),
                # Never the developer's cluster, MLflow server or .data/ folder.
                "KUBECONFIG": str(self.root / "no-kubeconfig"),
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
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(root=tmp_path, bin=tmp_path / "bin", log=tmp_path / "calls.jsonl", data=tmp_path / "data")
    box.bin.mkdir()
    box.data.mkdir()
    (box.data / "isvc.json").write_text(json.dumps(CANARY_ISVC))
    (box.data / "revisions.json").write_text(json.dumps(REVISIONS))
    box.tool("kubectl", _FAKE_KUBECTL)
    return box


def _patch(percent: int, *context: str) -> list[str]:
    return [
        "kubectl",
        *context,
        "-n",
        "models",
        "patch",
        "isvc",
        ISVC,
        "--type",
        "merge",
        "-p",
        '{"spec":{"predictor":{"canaryTrafficPercent":' + str(percent) + "}}}",
    ]


# ------------------------------------------------------------------------------------------------------------
# canary / rollback / status
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["canary", "PERCENT=10", "TARGET=cluster"], _patch(10)),
        (["canary", "PERCENT=50", "TARGET=cluster"], _patch(50)),
        (["rollback", "TARGET=cluster"], _patch(0)),
        (
            ["canary", "PERCENT=50", "TARGET=cluster", "KUBE_CONTEXT=kind-chicago-arrest"],
            _patch(50, "--context", "kind-chicago-arrest"),
        ),
    ],
    ids=["canary-10", "canary-50", "rollback", "canary-50-context"],
)
def test_traffic_targets_patch_the_inference_service(
    sandbox: Sandbox, args: list[str], expected: list[str]
) -> None:
    result = sandbox.make(*args)
    assert result.returncode == 0, result.stderr
    assert result.calls == [expected]
    assert PATCHED in result.stdout.splitlines()


def test_status_reads_the_inference_service_then_its_revisions(sandbox: Sandbox) -> None:
    result = sandbox.make("status", "TARGET=cluster")
    assert result.returncode == 0, result.stderr
    assert result.calls == [
        ["kubectl", "-n", "models", "get", "isvc", ISVC, "-o", "json"],
        ["kubectl", "-n", "models", "get", "revisions.serving.knative.dev", REV_1, REV_2, "-o", "json"],
    ]
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["InferenceService", f"models/{ISVC}"] in lines
    assert ["Canary:", "10%;", "spec", "model", "version", "2"] in lines
    assert ["Latest:", REV_2, "10%", "model", "version", "2"] in lines
    assert ["Previous:", REV_1, "90%", "model", "version", "1"] in lines


# ------------------------------------------------------------------------------------------------------------
# promote: kubectl, then the MLflow champion alias
# ------------------------------------------------------------------------------------------------------------

_SEED_REGISTRY = """\
from chicago_arrest.registry import CHALLENGER, CHAMPION, MODEL_NAME, configure_mlflow
from chicago_arrest.settings import Settings

client = configure_mlflow(Settings())
client.create_registered_model(MODEL_NAME)
for number in (1, 2):
    client.create_model_version(MODEL_NAME, source=f"s3://mlpipeline/mlflow/1/models/m-{number}/artifacts")
client.set_registered_model_alias(MODEL_NAME, CHAMPION, "1")
client.set_registered_model_alias(MODEL_NAME, CHALLENGER, "2")
"""


def test_promote_patches_100_percent_and_moves_the_champion_alias(sandbox: Sandbox) -> None:
    registry = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{sandbox.root / 'mlflow.db'}",
        "ARREST_DATA_DIR": str(sandbox.root / "arrest-data"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_"))} | registry
    # cwd: MLflow's default artifact root (./mlruns) must not land in the repository
    subprocess.run(
        [str(VENV_PYTHON), "-c", _SEED_REGISTRY], cwd=sandbox.root, env=env, check=True, capture_output=True
    )
    result = sandbox.make("promote", "TARGET=cluster", env=registry)
    assert result.returncode == 0, result.stderr
    assert result.calls == [_patch(100)]
    assert PATCHED in result.stdout.splitlines()
    assert "MLflow: champion alias -> version 2 (was 1)" in result.stdout.splitlines()


# ------------------------------------------------------------------------------------------------------------
# failures
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "message"),
    [("150", "must be in 0..100, got 150"), ("ten", "not an integer: 'ten'"), ("-1", "got -1")],
)
def test_bad_percent_fails_before_any_kubectl_call(sandbox: Sandbox, percent: str, message: str) -> None:
    result = sandbox.make("canary", f"PERCENT={percent}", "TARGET=cluster")
    assert result.returncode != 0
    assert "argument --percent" in result.stderr
    assert message in result.stderr
    assert result.calls == []


def test_no_kubectl_on_path_is_one_clear_error(sandbox: Sandbox) -> None:
    empty = sandbox.root / "empty-bin"
    empty.mkdir()
    result = sandbox.make("canary", "PERCENT=10", "TARGET=cluster", path=str(empty))
    assert result.returncode != 0
    assert "error: cannot run 'kubectl': kubectl is not installed or not on PATH" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.calls == []


# ------------------------------------------------------------------------------------------------------------
# image and kind-load (one image: KFP components and KServe predictor)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def tools(sandbox: Sandbox) -> Sandbox:
    """Fake docker and kind in a PATH of their own (plus grep, which the recipes use)."""
    sandbox.tool("docker", _FAKE_DOCKER)
    sandbox.tool("kind", _FAKE_KIND)
    grep = shutil.which("grep")
    assert grep is not None
    (sandbox.bin / "grep").symlink_to(grep)
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
