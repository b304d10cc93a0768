"""Waiting for the InferenceService's newest revision (``make kind-smoke`` after each serving verb), offline.

Through the real Kubernetes client against the fake API of ``tests/fake_kube.py``: the InferenceService, its
Knative revisions and the revision's pods (listed by the label ``serving.knative.dev/revision``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chicago_arrest.core import names
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.settings import Settings
from chicago_arrest.release import kserve, rollout
from chicago_arrest.release.kserve import KServeTraffic
from tests.fake_kube import ISVC_PATH, POD_PATH, REVISION_PATH, FakeKube, fake_kube

ISVC = ISVC_PATH.format(namespace="models", name=names.ISVC_NAME)
REV = [f"{names.ISVC_NAME}-predictor-0000{n}" for n in range(4)]


def _revision(version: str, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    env = [{"name": names.MODEL_VERSION_ENV, "value": version}]
    return {
        "spec": {"containers": [{"name": "kserve-container", "env": env}]},
        "status": {"conditions": conditions or []},
    }


def _objects(spec_version: str, created: str, ready: str) -> dict[str, dict[str, Any]]:
    isvc = kserve.render(spec_version, f"s3://models/arrest-predictor/v{spec_version}/", profile="kind")
    isvc["status"] = {
        "components": {"predictor": {"latestCreatedRevision": created, "latestReadyRevision": ready}}
    }
    revisions = {REVISION_PATH.format(namespace="models", name=REV[n]): _revision(str(n)) for n in (1, 2, 3)}
    return {ISVC: isvc, **revisions}


def _pod(name: str, revision: str, status: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    pod = {"metadata": {"name": name, "labels": {rollout.REVISION_LABEL: revision}}, "status": status}
    return POD_PATH.format(namespace="models", name=name), pod


STUCK = {
    "phase": "Pending",
    "initContainerStatuses": [
        {
            "name": "storage-initializer",
            "state": {
                "terminated": {"exitCode": 1, "message": "Access Denied: s3://models/arrest-predictor/v3/"}
            },
        }
    ],
    "containerStatuses": [
        {
            "name": "kserve-container",
            "state": {
                "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:latest"'}
            },
        },
        {"name": "queue-proxy", "state": {"waiting": {"reason": "PodInitializing"}}},
    ],
}
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu.",
        }
    ],
}


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    def connect(kube: FakeKube) -> KServeTraffic:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "config", context="kind-test")))
        return KServeTraffic.from_settings(Settings(), context="kind-test")

    return connect


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_stuck_revision_is_named_with_its_pods_state(cluster: Any) -> None:
    objects = _objects("3", REV[3], REV[2])
    objects[REVISION_PATH.format(namespace="models", name=REV[3])]["status"]["conditions"] = [
        {"type": "Ready", "status": "Unknown", "reason": "Deploying"}
    ]
    objects.update([_pod("p-1", REV[3], STUCK), _pod("p-2", REV[3], UNSCHEDULABLE), _pod("old", REV[2], {})])
    clock = Clock()
    with fake_kube(objects) as kube:
        watch = cluster(kube).watch()
        with pytest.raises(ReleaseError) as info:
            rollout.wait_for_rollout(watch, 60, poll_s=5, sleep=clock.sleep, clock=clock)
        pods = [r for r in kube.requests if r.path == "/api/v1/namespaces/models/pods"]
    message = str(info.value)
    assert message.startswith(f"after 60 s: revision {REV[3]} is not ready (the latest ready is {REV[2]})")
    assert "Ready=Unknown (Deploying)" in message
    assert "pod p-1: Pending; init container storage-initializer exited 1: Access Denied" in message
    assert 'kserve-container waiting: ImagePullBackOff: Back-off pulling image "x:latest"' in message
    assert "queue-proxy" not in message  # waiting for the init container is the normal way there
    assert (
        "pod p-2: Pending; unschedulable: Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."
        in message
    )
    assert "pod old" not in message
    assert clock.sleeps == [5.0] * 12
    assert pods[0].query["labelSelector"] == [f"serving.knative.dev/revision={REV[3]}"]


def test_waits_until_the_newest_revision_runs_the_spec_and_is_ready(cluster: Any) -> None:
    # just after the write: KServe's status still describes the template before it (revision 2 runs version 2)
    objects = _objects("3", REV[2], REV[2])
    clock = Clock()
    with fake_kube(objects) as kube:
        watch = cluster(kube).watch()
        assert watch.check() == (
            False,
            f"the newest revision {REV[2]} runs version 2, not 3: its successor is "
            "not created yet | no pod yet",
        )
        steps = iter([(REV[3], REV[2]), (REV[3], REV[3])])

        def sleep(seconds: float) -> None:
            clock.sleep(seconds)
            created, ready = next(steps)
            predictor = kube.objects[ISVC]["status"]["components"]["predictor"]
            predictor.update(latestCreatedRevision=created, latestReadyRevision=ready)

        line = rollout.wait_for_rollout(watch, 600, poll_s=5, sleep=sleep, clock=clock)
    assert line == f"revision {REV[3]} (version 3) is ready"
    assert clock.sleeps == [5.0, 5.0]


def test_a_percentage_change_is_ready_at_once(cluster: Any) -> None:
    with fake_kube(_objects("2", REV[2], REV[2])) as kube:
        assert rollout.wait_for_rollout(cluster(kube).watch(), 0) == f"revision {REV[2]} (version 2) is ready"


def test_status_says_why_the_newest_revision_is_not_ready(cluster: Any) -> None:
    objects = _objects("3", REV[3], REV[2])
    objects.update([_pod("p-1", REV[3], STUCK)])
    with fake_kube(objects) as kube:
        details = cluster(kube).details()
    assert details["pending"].startswith(f"revision {REV[3]} is not ready")
    assert "ImagePullBackOff" in details["pending"]


def test_the_deployer_role_may_read_pods() -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "manifests" / "platform" / "models.yaml"
    (role,) = [
        d
        for d in yaml.safe_load_all(path.read_text())
        if d and d["kind"] == "Role" and d["metadata"]["name"] == "kserve-deployer"
    ]
    rules = [r for r in role["rules"] if "pods" in r["resources"]]
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
