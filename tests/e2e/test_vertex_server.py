"""End-to-end: the real model server started as Vertex AI starts the uploaded model's container (issue 28).

The command and arguments are the pipeline's ``containerSpec`` (:func:`chicago_arrest.release.vertex.container_spec`)
with ``$(VAR)`` expanded by google-cloud-aiplatform's own ``_replace_env_var_reference`` (the expansion its local
serving, ``docker_utils/run.py``, does), and the environment is the one Vertex sets: ``AIP_HTTP_PORT``,
``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``, ``AIP_STORAGE_URI`` (here the committed golden model folder; on Vertex
its ``gs://`` copy), ``AIP_DEPLOYED_MODEL_ID``, ``AIP_ENDPOINT_ID``. Requests go where Vertex sends them: the
health check to the health route, ``Endpoint.predict``'s ``{"instances"}`` body and ``rawPredict``'s V2 body
(JSON and binary) both to the predict route.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from chicago_arrest.release.vertex import HEALTH_ROUTE, PREDICT_ROUTE, container_spec
from tests.e2e.helpers import GOLDEN, Server, child_env, free_port, spawn

pytestmark = pytest.mark.slow

EXPECTED = json.loads((GOLDEN / "v2_expected.json").read_text())
DEPLOYED_MODEL_ID = "7311"


def golden_request() -> dict[str, Any]:
    return json.loads((GOLDEN / "v2_request.json").read_text())


def golden_rows() -> list[dict[str, Any]]:
    body = golden_request()
    n = body["inputs"][0]["shape"][0]
    return [{i["name"]: i["data"][r] for i in body["inputs"]} for r in range(n)]


def vertex_argv(environ: dict[str, str]) -> list[str]:
    """The container's command and args as Vertex runs them: ``$(AIP_...)`` expanded from its variables."""
    run = pytest.importorskip("google.cloud.aiplatform.docker_utils.run")
    spec = container_spec("registry/chicago-arrest:test")
    argv = [run._replace_env_var_reference(a, environ) for a in [*spec["command"], *spec["args"]]]
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


@pytest.fixture(scope="module")
def vertex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("vertex-server")
    port = free_port()
    spec = container_spec("registry/chicago-arrest:test")
    aip = {
        "AIP_HTTP_PORT": str(port),
        "AIP_HEALTH_ROUTE": spec["healthRoute"],
        "AIP_PREDICT_ROUTE": spec["predictRoute"],
        "AIP_STORAGE_URI": str(GOLDEN / "model"),
        "AIP_DEPLOYED_MODEL_ID": DEPLOYED_MODEL_ID,
        "AIP_ENDPOINT_ID": "42",
    }
    argv = vertex_argv(aip)
    assert f"--http_port={port}" in argv
    assert f"--model_uri={GOLDEN / 'model'}" in argv
    base = spawn(argv, root / "vertex.log", child_env(ARREST_DATA_DIR=str(root / "data"), **aip))
    server = Server(base.proc, base.log, http_port=port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_the_health_route_answers_once_the_model_is_loaded(vertex: Server) -> None:
    r = vertex.session.get(vertex.url + HEALTH_ROUTE, timeout=10)
    assert r.status_code == 200, r.text


def test_vertex_predict_instances_get_predictions(vertex: Server) -> None:
    """Endpoint.predict's body ({"instances", "parameters"}) → Vertex's {"predictions"}, one per instance."""
    body = {"instances": golden_rows(), "parameters": {}}
    r = vertex.session.post(vertex.url + PREDICT_ROUTE, json=body, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"predictions"}
    predictions = answer["predictions"]
    assert len(predictions) == len(EXPECTED["arrest"])
    np.testing.assert_allclose(
        [p["arrest_probability"] for p in predictions], EXPECTED["arrest_probability"], rtol=0, atol=1e-9
    )
    assert [p["arrest"] for p in predictions] == EXPECTED["arrest"]
    assert r.headers["x-model-version"] == DEPLOYED_MODEL_ID
    assert int(r.headers["content-length"]) == len(r.content)


def test_raw_predict_v2_body_on_the_predict_route(vertex: Server) -> None:
    """rawPredict posts the V2 body unchanged to the predict route: a V2 answer."""
    r = vertex.session.post(
        vertex.url + PREDICT_ROUTE,
        data=json.dumps(golden_request()),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
    np.testing.assert_allclose(
        outputs["arrest_probability"], EXPECTED["arrest_probability"], rtol=0, atol=1e-9
    )
    assert outputs["arrest"] == EXPECTED["arrest"]
    assert r.json()["model_version"] == DEPLOYED_MODEL_ID


def test_raw_predict_binary_v2_body_on_the_predict_route(vertex: Server) -> None:
    import tritonclient.http as httpclient

    inputs = []
    for item in golden_request()["inputs"]:
        dt, data = item["datatype"], item["data"]
        if dt == "BYTES":
            array = np.array([("" if v is None else v).encode() for v in data], dtype=np.object_)
        elif dt == "BOOL":
            array = np.array(data, dtype=bool)
        elif dt == "INT64":
            array = np.array(data, dtype=np.int64)
        else:
            array = np.array([np.nan if v is None else v for v in data], dtype=np.float64)
        tensor = httpclient.InferInput(item["name"], list(array.shape), dt)
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput("arrest_probability", binary_data=False)]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, parameters={"content_type": "pd"}
    )
    headers = {"Inference-Header-Content-Length": str(json_size), "content-type": "application/octet-stream"}
    r = vertex.session.post(vertex.url + PREDICT_ROUTE, data=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    probability = next(o for o in r.json()["outputs"] if o["name"] == "arrest_probability")["data"]
    np.testing.assert_allclose(probability, EXPECTED["arrest_probability"], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"rows": []}', "Vertex predict body must be"),
        (b"[1, 2]", "Vertex predict body must be"),
        (b"{not json", "request body is not JSON"),
        (
            b'{"instances": [{"date": "2017-03-01T13:05:00.000"}]}',
            "missing required field(s): primary_type, iucr",
        ),
        (b'{"inputs": [{"name": "date"}]}', "inputs"),
    ],
)
def test_bad_bodies_on_the_predict_route_are_400(vertex: Server, body: bytes, message: str) -> None:
    r = vertex.session.post(
        vertex.url + PREDICT_ROUTE, data=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert r.status_code == 400, r.text
    assert message in r.text


def test_the_v2_route_is_unchanged(vertex: Server) -> None:
    """Under Vertex the V1 path is the predict route (Vertex's shapes); the V2 infer route is KServe's own."""
    r = vertex.session.post(vertex.infer_url, data=json.dumps(golden_request()))
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == DEPLOYED_MODEL_ID
    r = vertex.session.post(vertex.infer_url, json={"instances": golden_rows()})
    assert r.status_code == 400, r.text


def test_the_container_listens_only_on_aip_http_port(vertex: Server) -> None:
    """gRPC is off (--enable_grpc=false): Vertex uses one port, the first of containerSpec.ports."""
    assert "gRPC off" in vertex.output()


def test_the_smoke_runs_requests_are_answered_by_the_real_server(vertex: Server) -> None:
    """``make vertex-smoke``'s predict and rawPredict checks, sent to this server the way Vertex forwards them."""
    from types import SimpleNamespace

    from chicago_arrest.cli.vertex_smoke import Smoke
    from tests.vertex_fakes import FakeStorage, FakeVertex, task

    def forward_predict(
        instances: list[Any],
    ) -> Any:  # PredictionService.Predict: {"instances"} in, predictions out
        r = vertex.session.post(vertex.url + PREDICT_ROUTE, json={"instances": instances}, timeout=30)
        assert r.status_code == 200, r.text
        return SimpleNamespace(predictions=r.json()["predictions"], deployed_model_id=DEPLOYED_MODEL_ID)

    def forward_raw(body: bytes, headers: dict[str, str]) -> Any:  # RawPredict: the body as it is
        return vertex.session.post(vertex.url + PREDICT_ROUTE, data=body, headers=headers, timeout=30)

    storage = FakeStorage()

    def on_run(job: Any) -> None:
        params = job.kwargs["parameter_values"]
        storage.put(
            "gs://" + params["probe_dir"].removeprefix("/gcs/") + "/probe.json",
            b'{"uid": 10001, "version": "x"}',
        )
        job.tasks = [task("vertex-smoke-probe", "SUCCEEDED")]
        fake.add("model", 1, params["labels"])
        fake.add("endpoint", 2, params["labels"], {DEPLOYED_MODEL_ID: 100})

    fake = FakeVertex(on_run, forward_predict, forward_raw)
    lines: list[str] = []
    smoke = Smoke(
        fake, storage, project="p", region="r", bucket="b", image="img", poll_s=0, echo=lines.append
    )
    assert smoke.run() == 0, "\n".join(lines)
    assert any(
        line.startswith("PASS  predict") and f"deployed model {DEPLOYED_MODEL_ID}" in line for line in lines
    )
    assert any(
        line.startswith("PASS  rawPredict: a V2 body: V2 outputs arrest_probability") for line in lines
    )
