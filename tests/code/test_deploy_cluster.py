"""The deploy step's cluster path, offline: publish to an S3 models bucket (moto), apply the InferenceService.

The whole real path runs: ``deploy_step`` -> ``open_release("cluster")`` -> ``KServeTraffic.from_settings``
(the Kubernetes Python client, through a generated kubeconfig, against the fake API server of
``tests/fake_kube.py``) and its publish callback (the local MLflow registry -> moto). The bucket Job's
``store ensure-buckets`` command runs against the same moto server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from minio import Minio

from chicago_arrest.cli import main as cli
from chicago_arrest.core import names
from chicago_arrest.core.settings import Settings
from chicago_arrest.data.split import time_split
from chicago_arrest.data.synthetic import generate_crimes
from chicago_arrest.model.training import TrainConfig, train_model
from chicago_arrest.registry.models import (
    CHAMPION,
    MODEL_NAME,
    configure_mlflow,
    load_arrest_model,
    log_arrest_model,
)
from chicago_arrest.steps.release import deploy_step
from tests.code import kustomize_lite
from tests.fake_kube import ISVC_PATH, REVISION_PATH, FakeKube, fake_kube
from tests.moto_s3 import moto_server

ACCESS, SECRET = "test-access", "test-secret-key"
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_settings(settings: Settings, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    env = {
        "ARREST_STORE_BACKEND": "s3",
        "ARREST_S3_ENDPOINT": moto_endpoint,
        "ARREST_S3_ACCESS_KEY": ACCESS,
        "ARREST_S3_SECRET_KEY": SECRET,
        "ARREST_SERVING_IMAGE": "registry.local/chicago-arrest:test",
        "ARREST_SERVING_PROFILE": "kind",
        "ARREST_DATA_DIR": str(settings.data_dir),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture
def kube(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with fake_kube() as server:
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kubeconfig")))
        yield server


@pytest.fixture(scope="module")
def trained(stations: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    train, _, _ = time_split(generate_crimes(3_000, stations=stations, seed=11))
    return train_model(train, stations, TrainConfig(model_type="logreg")).model, train


def _register(settings: Settings, trained: tuple[Any, pd.DataFrame]) -> str:
    model, example = trained
    configure_mlflow(settings)
    with mlflow.start_run():
        return str(log_arrest_model(model, example, MODEL_NAME).registered_model_version)


def _env(obj: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in obj["spec"]["predictor"]["containers"][0]["env"]}


ISVC = ISVC_PATH.format(namespace="models", name=names.ISVC_NAME)


def _applied(kube: FakeKube) -> list[dict[str, Any]]:
    patches = [r for r in kube.requests if r.method == "PATCH"]
    assert all(r.path == ISVC and r.content_type == "application/apply-patch+yaml" for r in patches)
    return [r.body for r in patches]


def _roll_out(kube: FakeKube, revision: str, version: str) -> None:
    """KServe's part: the applied spec became a ready revision that gets all traffic."""
    env = [{"name": names.MODEL_VERSION_ENV, "value": version}]
    kube.objects[REVISION_PATH.format(namespace="models", name=revision)] = {
        "spec": {"containers": [{"env": env}]}
    }
    predictor = {
        "latestCreatedRevision": revision,
        "latestReadyRevision": revision,
        "latestRolledoutRevision": revision,
        "traffic": [{"revisionName": revision, "percent": 100, "latestRevision": True}],
    }
    kube.objects[ISVC]["status"] = {"components": {"predictor": predictor}}


def _deploy(settings: Settings, **decision: Any) -> dict[str, Any]:
    return deploy_step(decision, {}, {}, canary_percent=10, target="cluster", settings=settings)


def test_deploy_publishes_then_applies_champion_and_canary(
    s3_settings: Settings,
    trained: tuple[Any, pd.DataFrame],
    moto_endpoint: str,
    kube: FakeKube,
    tmp_path,
) -> None:
    client = configure_mlflow(s3_settings)
    first = _register(s3_settings, trained)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, first)
    result = _deploy(s3_settings, challenger_version=first, promoted=True, passed=True, reason="first model")
    assert result["action"] == "promote"
    (created,) = _applied(kube)
    # the hand-written base, changed like overlays/kind, with the run's model and image
    (expected,) = kustomize_lite.build(MANIFESTS / "overlays" / "kind")
    container = expected["spec"]["predictor"]["containers"][0]
    container["image"] = "registry.local/chicago-arrest:test"
    container["env"][0]["value"] = f"s3://models/arrest-predictor/v{first}/"
    container["env"][2]["value"] = first
    assert created == expected

    # what KServe's storage-initializer would download is a loadable copy of the registered model
    raw = Minio(moto_endpoint, access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")
    keys = sorted(
        o.object_name
        for o in raw.list_objects(bucket_name="models", prefix=f"arrest-predictor/v{first}/", recursive=True)
    )
    assert f"arrest-predictor/v{first}/MLmodel" in keys
    local = tmp_path / "mnt-models"
    for key in keys:
        raw.fget_object(bucket_name="models", object_name=key, file_path=str(local / key.split("/", 2)[2]))
    served = load_arrest_model(str(local))
    sample = trained[1].head(10)
    assert list(served.predict_arrest_probability(sample)) == pytest.approx(
        list(trained[0].predict_arrest_probability(sample))
    )

    # a passing challenger goes out as a canary: new model, 10 %, the champion's revision keeps the rest
    _roll_out(kube, f"{names.ISVC_NAME}-predictor-00001", first)
    second = _register(s3_settings, trained)
    result = _deploy(s3_settings, challenger_version=second, promoted=False, passed=True, reason="better")
    assert (result["action"], result["challenger"], result["canary_percent"]) == ("canary", second, 10)
    _, patch = _applied(kube)
    assert patch["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert _env(patch)["STORAGE_URI"] == f"s3://models/arrest-predictor/v{second}/"
    assert _env(patch)["ARREST_SERVER_MODEL_VERSION"] == second
    assert any(o.object_name.endswith("MLmodel") for o in raw.list_objects(
        bucket_name="models", prefix=f"arrest-predictor/v{second}/", recursive=True
    ))  # fmt: skip

    # a rejected challenger changes nothing
    kube.requests.clear()
    result = _deploy(s3_settings, challenger_version="9", promoted=False, passed=False, reason="worse")
    assert result["action"] == "none"
    assert kube.requests == []


def test_ensure_buckets_cli(
    s3_settings: Settings, moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["store", "ensure-buckets", "data-x", "mlflow-x"]) == 0
    assert cli.main(["store", "ensure-buckets", "data-x"]) == 0
    out = capsys.readouterr().out
    assert "bucket data-x: created" in out
    assert "bucket mlflow-x: created" in out
    assert "bucket data-x: exists" in out
    raw = Minio(moto_endpoint, access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")
    assert raw.bucket_exists(bucket_name="mlflow-x")


def test_ensure_buckets_needs_s3(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["store", "ensure-buckets", "data"]) == 1
    assert "ARREST_STORE_BACKEND=s3" in capsys.readouterr().err
    monkeypatch.setenv("ARREST_STORE_BACKEND", "s3")
    monkeypatch.setenv("ARREST_S3_ENDPOINT", "127.0.0.1:9")
    assert cli.main(["store", "ensure-buckets", "data", "Bad_Bucket"]) == 1
    assert "invalid bucket name 'Bad_Bucket'" in capsys.readouterr().err
    # an unreachable endpoint is one clear line, not a traceback
    assert cli.main(["store", "ensure-buckets", "data"]) == 1
    assert "127.0.0.1:9" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# Issue 25: a serving verb run on the host publishes through the cluster's MinIO, or refuses
# ------------------------------------------------------------------------------------------------------------


def _host_cluster(moto_endpoint: str, *, secret: bool = True) -> dict[str, dict[str, Any]]:
    """A serving InferenceService (version 9 alone) plus the steps' ConfigMap and (optionally) Secret."""
    import base64

    from chicago_arrest.release import kserve
    from tests.fake_kube import CONFIG_MAP_PATH, SECRET_PATH

    isvc = kserve.render("9", "s3://models/arrest-predictor/v9/", profile="kind")
    objects: dict[str, dict[str, Any]] = {
        ISVC: isvc,
        CONFIG_MAP_PATH.format(namespace="kubeflow", name=names.STEP_CONFIG_MAP): {
            "data": {
                "ARREST_MODELS_BUCKET": "models",
                "ARREST_SERVING_IMAGE": "registry.local/chicago-arrest:kind",
                "ARREST_SERVING_PROFILE": "kind",
            }
        },
    }
    if secret:
        keys = {"ARREST_S3_ACCESS_KEY": ACCESS, "ARREST_S3_SECRET_KEY": SECRET}
        objects[SECRET_PATH.format(namespace="kubeflow", name=names.STEP_SECRET)] = {
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()}
        }
    return objects


def test_host_publishes_through_the_clusters_minio(
    settings: Settings,
    trained: tuple[Any, pd.DataFrame],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chicago_arrest.core.targets import ClusterRecord
    from chicago_arrest.registry.state import Split
    from chicago_arrest.release.kserve import KServeTraffic

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert settings.store_backend == "local"  # the host's own store: never where the predictor reads
    version = _register(settings, trained)
    raw = Minio(moto_endpoint, access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")
    if not raw.bucket_exists(bucket_name="models"):
        raw.make_bucket(bucket_name="models")
    record = ClusterRecord(cluster_name="c", context="kind-c", kfp_host="http://x", s3_endpoint=moto_endpoint)
    with fake_kube(_host_cluster(moto_endpoint)) as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", context="kind-c")))
        line = KServeTraffic.from_settings(settings, context="kind-c", record=record).write(Split(version))
    (applied,) = _applied(kube)
    assert _env(applied)["STORAGE_URI"] == f"s3://models/arrest-predictor/v{version}/"
    keys = {
        o.object_name
        for o in raw.list_objects(
            bucket_name="models", prefix=f"arrest-predictor/v{version}/", recursive=True
        )
    }
    assert f"arrest-predictor/v{version}/MLmodel" in keys
    assert not (settings.store_dir / "models").exists()
    assert f"serves champion {version}" in line


@pytest.mark.parametrize(
    ("secret", "endpoint", "message"),
    [
        (False, True, "cannot read the steps' MinIO keys (Secret kubeflow/chicago-arrest-s3): HTTP 404"),
        (True, False, "no MinIO endpoint from this host"),
    ],
    ids=["no-secret", "no-endpoint"],
)
def test_host_refuses_to_publish_without_the_clusters_minio(
    settings: Settings,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    secret: bool,
    endpoint: bool,
    message: str,
) -> None:
    from chicago_arrest.core.errors import ReleaseError
    from chicago_arrest.core.targets import ClusterRecord
    from chicago_arrest.registry.state import Split
    from chicago_arrest.release.kserve import KServeTraffic

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    record = ClusterRecord(
        cluster_name="c",
        context="kind-c",
        kfp_host="http://x",
        s3_endpoint=moto_endpoint if endpoint else None,
    )
    with fake_kube(_host_cluster(moto_endpoint, secret=secret)) as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", context="kind-c")))
        cluster = KServeTraffic.from_settings(settings, context="kind-c", record=record)
        with pytest.raises(ReleaseError) as info:
            cluster.write(Split("7"))
    assert "cannot publish version 7 from this host to s3://models/arrest-predictor/v7/" in str(info.value)
    assert message in str(info.value)
    assert _applied(kube) == []  # nothing applied: the predictor never points at a missing prefix
