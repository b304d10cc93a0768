"""``make vertex-smoke`` (issue 28) offline: the pipeline, its probe step, and the runner against a fake project.

The fake (:mod:`tests.vertex_fakes`) plays ``google.cloud.aiplatform`` and ``google.cloud.storage``; the probe step
runs for real (a tiny model on generated records), and its model answers the fake endpoint's requests. The same
requests against the real server under Vertex's environment: tests/e2e/test_vertex_server.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from chicago_arrest.cli.vertex_smoke import SMOKE_RECORD, Smoke, new_smoke_id, run_smoke, v2_body
from chicago_arrest.core.errors import VertexError
from chicago_arrest.core.names import DEFAULT_IMAGE, ISVC_NAME, VERTEX_SMOKE_PIPELINE
from chicago_arrest.pipelines.vertex_submit import default_image
from chicago_arrest.steps.vertex import smoke_probe_step
from tests.vertex_fakes import FakeStorage, FakeVertex, task

pytest.importorskip("google_cloud_pipeline_components")

from chicago_arrest.pipelines.compile import COMPILED_DIR, compile_vertex_smoke

GOLDEN = COMPILED_DIR / f"{VERTEX_SMOKE_PIPELINE}.yaml"
REPO_ROOT = Path(__file__).resolve().parents[2]
SA = "arrest-pipeline@my-proj.iam.gserviceaccount.com"
IMAGE = "us-central1-docker.pkg.dev/my-proj/chicago-arrest/chicago-arrest:0.1.0"


def _spec(path: Path) -> dict[str, Any]:
    return next(yaml.safe_load_all(path.read_text(encoding="utf-8")))


# -- the pipeline -------------------------------------------------------------------------------------------


def test_committed_yaml_matches_the_source(tmp_path: Path) -> None:
    fresh = compile_vertex_smoke(tmp_path)
    assert fresh is not None
    assert _spec(fresh) == _spec(GOLDEN), "run `make compile` and commit the YAML"


def test_the_smoke_pipeline_probes_uploads_and_deploys() -> None:
    spec = _spec(GOLDEN)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"vertex-smoke-probe", "importer", "model-upload", "endpoint-create", "model-deploy"}
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-vertex-smoke-probe"]["container"]["image"] == DEFAULT_IMAGE
    assert tasks["importer"]["inputs"]["parameters"]["uri"]["taskOutputParameter"]["producerTask"] == (
        "vertex-smoke-probe"
    )
    container = executors["exec-importer"]["importer"]["metadata"]["containerSpec"]
    assert container["predictRoute"] == f"/v1/models/{ISVC_NAME}:predict"
    for name in ("model-upload", "endpoint-create"):
        params = tasks[name]["inputs"]["parameters"]
        assert params["labels"]["componentInputParameter"] == "labels", name
        assert params["display_name"]["componentInputParameter"] == "display_name", name
    deploy = tasks["model-deploy"]["inputs"]
    assert deploy["parameters"]["traffic_split"]["runtimeValue"]["constant"] == {"0": "100"}
    assert deploy["artifacts"]["endpoint"]["taskOutputArtifact"]["producerTask"] == "endpoint-create"
    assert deploy["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "model-upload"


# -- the probe step -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The probe step run once: ``(folder with probe/ and model/, its summary)``."""
    root = tmp_path_factory.mktemp("smoke-probe")
    summary = smoke_probe_step(root / "probe", root / "model")
    return root, summary


def test_the_probe_writes_and_reads_back_as_the_process_user(probed: tuple[Path, dict[str, Any]]) -> None:
    root, summary = probed
    probe = json.loads((root / "probe" / "probe.json").read_text())
    assert probe["uid"] == os.getuid() == summary["uid"]
    assert probe["version"] == summary["version"]
    assert summary["model_type"] == "logreg"


def test_the_probes_model_is_a_servable_folder(probed: tuple[Path, dict[str, Any]]) -> None:
    from chicago_arrest.registry.models import load_arrest_model

    model = load_arrest_model(str(probed[0] / "model"))
    p = model.predict_arrest_probability(pd.DataFrame([SMOKE_RECORD]))
    assert p.shape == (1,)
    assert 0 < p[0] < 1


def test_a_probe_the_mount_refuses_names_the_root_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(VertexError, match=r"cannot write .*probe\.json.*make vertex-image IMAGE_USER=0"):
        smoke_probe_step(tmp_path / "probe", tmp_path / "model")
    assert not (tmp_path / "model").exists()  # the probe goes first


# -- the requests -------------------------------------------------------------------------------------------


def test_the_smoke_requests_pass_the_servers_validation() -> None:
    """Both bodies parse with the server's own V1 and V2 validation (one record each)."""
    from arrest_server.validation import parse_v1, parse_v2
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    assert parse_v1({"instances": [SMOKE_RECORD], "parameters": {}}, 10).rows == 1
    request = InferenceRequest.model_validate_json(v2_body(SMOKE_RECORD))
    infer = InferRequest.from_inference_request(request, "arrest-predictor")
    assert parse_v2(infer, 10).rows == 1


def test_smoke_ids_are_valid_label_values() -> None:
    import re

    ids = {new_smoke_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[a-z0-9_-]{1,63}", i) for i in ids)


# -- the runner against a fake project ----------------------------------------------------------------------


def _model_answers(model_dir: Path) -> tuple[Any, Any]:
    """An endpoint's answers computed by the tiny model, in Vertex's and V2's shapes."""
    from chicago_arrest.registry.models import load_arrest_model

    model = load_arrest_model(str(model_dir))

    def predict(instances: list[dict[str, Any]]) -> Any:
        p = model.predict_arrest_probability(pd.DataFrame(instances))
        rows = [{"arrest_probability": float(x), "arrest": bool(x >= model.threshold)} for x in p]
        return SimpleNamespace(predictions=rows, deployed_model_id="555")

    def raw(body: bytes, headers: dict[str, str]) -> Any:
        inputs = {i["name"]: i["data"] for i in json.loads(body)["inputs"]}
        p = model.predict_arrest_probability(pd.DataFrame(inputs))
        answer = {
            "outputs": [
                {"name": "arrest_probability", "data": p.tolist()},
                {"name": "arrest", "data": [False]},
            ]
        }
        return SimpleNamespace(status_code=200, json=lambda: answer, text=json.dumps(answer))

    return predict, raw


def _succeeding_run(storage: FakeStorage, model_dir: Path) -> Any:
    """What a successful run leaves: the probe file, a labelled model, an endpoint serving it at 100 %."""

    def on_run(job: Any) -> None:
        params = job.kwargs["parameter_values"]
        probe_dir = params["probe_dir"]
        assert probe_dir.startswith("/gcs/")
        storage.put(
            "gs://" + probe_dir.removeprefix("/gcs/") + "/probe.json", b'{"uid": 10001, "version": "0.1.0"}'
        )
        storage.put(job.kwargs["pipeline_root"] + "/123/run/executor_output.json", b"{}")
        job.tasks = [task("vertex-smoke-probe", "SUCCEEDED"), task("model-deploy", "SUCCEEDED")]
        vertex.add("model", 9, params["labels"])
        vertex.add("endpoint", 7, params["labels"], {"555": 100})

    predict, raw = _model_answers(model_dir)
    vertex = FakeVertex(on_run, predict, raw, states=("PENDING", "RUNNING"))
    return vertex


def _smoke(vertex: FakeVertex, storage: FakeStorage, lines: list[str], **kwargs: Any) -> Smoke:
    return Smoke(
        vertex,
        storage,
        project="my-proj",
        region="us-central1",
        bucket="my-bucket",
        image=IMAGE,
        smoke_id="20260101-000000-abcd",
        poll_s=0,
        echo=lines.append,
        sleep=lambda s: None,
        **kwargs,
    )


def test_a_good_run_passes_every_check_and_leaves_nothing(probed: tuple[Path, dict[str, Any]]) -> None:
    storage = FakeStorage()
    storage.put("gs://my-bucket/pipeline-root/other-run/keep.json", b"{}")
    vertex = _succeeding_run(storage, probed[0] / "model")
    lines: list[str] = []
    assert _smoke(vertex, storage, lines, service_account=SA).run() == 0, "\n".join(lines)
    checks = [line.split(":", 1)[0] for line in lines if line.startswith(("PASS", "FAIL", "SKIP"))]
    assert checks == [
        "PASS  submit",
        "PASS  pipeline run",
        "PASS  image",
        "PASS  bucket",
        "PASS  account",
        "PASS  upload",
        "PASS  deploy",
        "PASS  predict",
        "PASS  rawPredict",
        "PASS  cleanup",
    ], "\n".join(lines)
    assert lines[-1] == "==> 10 passed, 0 failed"
    job = vertex.jobs[0]
    assert ("submit", SA) in vertex.calls
    assert job.kwargs["pipeline_root"] == "gs://my-bucket/pipeline-root/smoke-20260101-000000-abcd"
    assert job.kwargs["labels"] == {"smoke": "20260101-000000-abcd", "app": "chicago-arrest"}
    assert job.kwargs["parameter_values"]["display_name"] == "arrest-smoke-20260101-000000-abcd"
    assert job.kwargs["parameter_values"]["serving_image"] == IMAGE
    assert {
        e["container"]["image"] for e in job.spec["deploymentSpec"]["executors"].values() if "container" in e
    } >= {IMAGE}
    assert ("predict", [SMOKE_RECORD]) in vertex.calls
    assert vertex.resources == []  # endpoint and model deleted
    assert list(storage.objects) == [("my-bucket", "pipeline-root/other-run/keep.json")]
    assert any("written by uid 10001" in line for line in lines)
    assert any(f"ran as {SA}" in line for line in lines)


def test_a_probe_the_mount_refused_fails_image_and_bucket_and_still_cleans_up() -> None:
    storage = FakeStorage()
    denied = "uid 10001 cannot write /gcs/my-bucket/...: ... make vertex-image IMAGE_USER=0"

    def on_run(job: Any) -> None:
        job.tasks = [task("vertex-smoke-probe", "FAILED", denied)]
        job.final = "FAILED"
        storage.put(job.kwargs["pipeline_root"] + "/123/executor_output.json", b"{}")

    vertex = FakeVertex(on_run)
    lines: list[str] = []
    assert _smoke(vertex, storage, lines).run() == 1
    text = "\n".join(lines)
    assert f"FAIL  pipeline run: FAILED; vertex-smoke-probe: {denied}" in text
    assert (
        f"FAIL  image: the project image ran the probe step: task vertex-smoke-probe FAILED: {denied}" in text
    )
    assert "FAIL  bucket" in text
    assert "IMAGE_USER=0" in text
    assert "SKIP  predict / rawPredict" in text
    assert "PASS  cleanup" in text
    assert storage.objects == {}
    assert lines[-1] == "==> 3 passed, 5 failed"  # submit, account (the default) and cleanup passed


def test_a_run_over_its_time_is_cancelled_by_the_cleanup() -> None:
    storage = FakeStorage()
    vertex = FakeVertex(lambda job: None, states=("RUNNING",) * 50)
    clock = iter(range(0, 10_000, 100))
    lines: list[str] = []
    smoke = _smoke(vertex, storage, lines, timeout_s=500)
    smoke.clock = lambda: float(next(clock))
    assert smoke.run() == 1
    assert any(line.startswith("FAIL  pipeline run: still RUNNING after 500 s") for line in lines)
    assert ("cancel", "projects/p/locations/r/pipelineJobs/smoke-1") in vertex.calls
    assert any(line.startswith("PASS  cleanup: what the run created is deleted: cancelled") for line in lines)


def test_a_refused_submit_is_one_fail_and_the_cleanup_finds_leftovers() -> None:
    storage = FakeStorage()

    def refuse(job: Any) -> None:
        raise PermissionError("403 iam.serviceAccounts.actAs denied on arrest-pipeline@...")

    vertex = FakeVertex(refuse)
    vertex.add("endpoint", 3, {"smoke": "20260101-000000-abcd"})  # left by an earlier attempt with this id
    lines: list[str] = []
    assert _smoke(vertex, storage, lines).run() == 1
    assert lines[1].startswith("FAIL  submit: PermissionError: 403 iam.serviceAccounts.actAs denied")
    assert "roles/iam.serviceAccountUser" in lines[2]
    assert vertex.resources == []
    assert lines[-2].startswith(
        "PASS  cleanup: what the run created is deleted: deleted 1 endpoint(s), 0 model(s)"
    )


def test_keep_leaves_the_resources(probed: tuple[Path, dict[str, Any]]) -> None:
    storage = FakeStorage()
    vertex = _succeeding_run(storage, probed[0] / "model")
    lines: list[str] = []
    assert _smoke(vertex, storage, lines, keep=True).run() == 0
    assert len(vertex.resources) == 2
    assert any(line.startswith("SKIP  cleanup: --keep") for line in lines)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"project": ""}, "PROJECT is required"),
        ({"bucket": ""}, "BUCKET is required"),
        ({"service_account": "me@example.com"}, "SERVICE_ACCOUNT must be a service account's e-mail"),
    ],
)
def test_prerequisites_fail_in_one_line(kwargs: dict[str, str], message: str) -> None:
    vertex = FakeVertex(lambda job: None)
    lines: list[str] = []
    args = {"project": "p", "region": "r", "bucket": "b", **kwargs}
    assert run_smoke(**args, aiplatform=vertex, storage=FakeStorage(), echo=lines.append) == 1
    assert len(lines) == 1
    assert lines[0].startswith("FAIL  prerequisites: ")
    assert message in lines[0]
    assert vertex.calls == []


def test_run_smoke_defaults_to_the_artifact_registry_image(probed: tuple[Path, dict[str, Any]]) -> None:
    storage = FakeStorage()
    vertex = _succeeding_run(storage, probed[0] / "model")
    lines: list[str] = []
    code = run_smoke(
        project="my-proj",
        region="europe-west4",
        bucket="gs://b/",
        poll_s=0,
        aiplatform=vertex,
        storage=storage,
        echo=lines.append,
    )
    assert code == 0, "\n".join(lines)
    assert vertex.jobs[0].kwargs["parameter_values"]["serving_image"] == default_image(
        "my-proj", "europe-west4"
    )
    assert ("submit", None) in vertex.calls  # no SERVICE_ACCOUNT: Vertex's default


# -- make -----------------------------------------------------------------------------------------------------


def _make_n(*args: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "IMAGE")}
    return subprocess.run(
        [make, "-n", "--no-print-directory", "-o", ".venv/.synced", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_make_vertex_smoke_runs_the_cli_with_the_vertex_arguments() -> None:
    out = _make_n("vertex-smoke", "PROJECT=p", "REGION=r", "BUCKET=b", f"SERVICE_ACCOUNT={SA}", "IMAGE=img:1")
    assert "ARREST_IMAGE='img:1'" in out
    assert (
        f"-m chicago_arrest.cli pipeline vertex-smoke --project 'p' --region 'r' --bucket 'b' --service-account '{SA}'"
        in out
    )


def test_make_vertex_image_builds_for_amd64_and_pushes_where_the_submit_looks() -> None:
    image = default_image("my-proj", "us-central1")
    out = _make_n("vertex-image", "PROJECT=my-proj", "REGION=us-central1")
    assert f"docker build --platform linux/amd64 -t {image} ." in out
    assert f"docker push {image}" in out
    root = _make_n("vertex-image", "PROJECT=my-proj", "REGION=us-central1", "IMAGE_USER=0")
    assert f"docker build --platform linux/amd64 --build-arg RUN_AS=0 -t {image} ." in root


def test_the_cli_command_returns_the_smokes_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import chicago_arrest.cli.vertex_smoke as module
    from chicago_arrest.cli.main import main

    seen: dict[str, Any] = {}

    def fake(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 1

    monkeypatch.setattr(module, "run_smoke", fake)
    monkeypatch.setenv("ARREST_IMAGE", "img:2")
    code = main(
        ["pipeline", "vertex-smoke", "--project", "p", "--region", "r", "--bucket", "b", "--timeout", "60"]
    )
    assert code == 1
    assert seen == {
        "project": "p",
        "region": "r",
        "bucket": "b",
        "service_account": "",
        "image": "img:2",
        "timeout_s": 60,
        "keep": False,
    }


def test_v2_body_datatypes_follow_the_schema() -> None:
    body = json.loads(v2_body(SMOKE_RECORD))
    types = {i["name"]: i["datatype"] for i in body["inputs"]}
    assert types["domestic"] == "BOOL"
    assert types["ward"] == "INT64"
    assert types["latitude"] == "FP64"
    assert types["date"] == "BYTES"
    assert np.all([i["shape"] == [1] for i in body["inputs"]])


def test_the_fake_takes_what_the_installed_sdk_takes() -> None:
    """Every call the runner makes on the fake exists with those keywords in google-cloud-aiplatform / -storage."""
    import inspect

    aiplatform = pytest.importorskip("google.cloud.aiplatform")
    from google.cloud import storage

    def names(fn: Any) -> set[str]:
        return set(inspect.signature(fn).parameters) - {"self"}

    used = {
        aiplatform.PipelineJob.__init__: {"display_name", "template_path", "pipeline_root", "parameter_values",
                                          "enable_caching", "project", "location", "labels"},
        aiplatform.PipelineJob.submit: {"service_account"},
        aiplatform.Endpoint.list: {"filter"},
        aiplatform.Model.list: {"filter"},
        aiplatform.Endpoint.predict: {"instances"},
        aiplatform.Endpoint.raw_predict: {"body", "headers"},
        aiplatform.Endpoint.delete: {"force"},
        storage.Client.list_blobs: {"bucket_or_name", "prefix"},
    }  # fmt: skip
    for fn, keywords in used.items():
        assert keywords <= names(fn), fn
    assert callable(aiplatform.PipelineJob.cancel)
    assert callable(aiplatform.Model.delete)
    assert callable(storage.Blob.download_as_bytes)
    assert isinstance(aiplatform.PipelineJob.task_details, property)
    assert isinstance(aiplatform.PipelineJob.state, property)
